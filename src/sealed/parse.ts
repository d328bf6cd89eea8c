/**
 * Reading a SealedSecret from untrusted input (a file, the API): its shape, then its envelope chain's
 * structure. The shape is the CRD's schema (crd.ts, the one definition), checked by structure.ts;
 * what a schema cannot say (limits, digests, unique keys) is checked here. Problems with the spec are
 * ERR_INPUT; an apiVersion of ours that this kseal does not know is ERR_VERSION; a malformed envelope
 * is ERR_INTEGRITY, as for a Secret's envelope.
 */
import type {RecipientEntry} from '../../keys/types.js'
import type {Scope} from '../envelope/binding.js'
import {checkVersion, parseRecipients} from '../envelope/envelope.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {dict, isObj, type Obj} from '../core/guards.js'
import {SEALED_SPEC_SCHEMA} from './crd.js'
import {checkStructure} from './structure.js'
import {
  MAX_PART_RECIPIENTS,
  MAX_PARTS,
  SEALED_API_VERSION,
  SEALED_GROUP,
  SEALED_KIND,
  type SealedEnvelope,
  sealedLabel,
  type SealedPart,
  type SealedSecretObject,
  type SealedStatus,
  type SealedTemplate,
} from './types.js'

const DIGEST_RE = /^[A-Za-z0-9+/]{43}=$/

/** The CRD's schema of a part of the spec. */
const SPEC = SEALED_SPEC_SCHEMA.properties!

/**
 * A SealedSecret field checked against its schema (`spec.template`, say): the field pruned to what the
 * schema lists, nulls taken as absent, or the first problem as ERR_INPUT (`spec.template.type must be a
 * string`).
 */
export function checkField<T>(field: 'encryptedData' | 'template', value: unknown, where: Where): T | undefined {
  const r = checkStructure(SPEC[field], value, {nullIsAbsent: true}, `spec.${field}`)
  const p = r.problems[0]
  if (p) throw new KsealError('ERR_INPUT', `${p.path} ${p.must}`, where)
  return (r.value ?? undefined) as T | undefined
}

/** A mapping of strings from a Secret or a template (labels, annotations), checked and copied into a null-prototype record. */
export function stringMap(v: unknown, what: string, where: Where): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObj(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new KsealError('ERR_INPUT', `${what} must be a mapping of strings`, where)
  }
  return dict(Object.entries(v as Record<string, string>))
}

/**
 * Validates a SealedSecret's shape (untrusted input: a file, the API). Structural problems are
 * ERR_INPUT; an apiVersion of ours that this kseal does not know is ERR_VERSION. The envelope itself
 * is checked when it is used (ERR_INTEGRITY, as for a Secret's envelope).
 */
export function parseSealedSecret(raw: unknown): SealedSecretObject {
  if (!isObj(raw)) throw new KsealError('ERR_INPUT', 'a SealedSecret must be a mapping')
  const meta = isObj(raw.metadata) ? raw.metadata : {}
  const where: Where = {secret: sealedLabel(meta)}
  if (raw.kind !== SEALED_KIND) throw new KsealError('ERR_INPUT', `not a SealedSecret (kind ${JSON.stringify(raw.kind ?? null)})`, where)
  if (raw.apiVersion !== SEALED_API_VERSION) {
    if (typeof raw.apiVersion === 'string' && raw.apiVersion.startsWith(`${SEALED_GROUP}/`)) {
      throw new KsealError(
        'ERR_VERSION',
        `unsupported SealedSecret apiVersion ${raw.apiVersion} (this kseal reads ${SEALED_API_VERSION}; upgrade kseal)`,
        where,
      )
    }
    throw new KsealError('ERR_INPUT', `not a kseal SealedSecret (apiVersion ${JSON.stringify(raw.apiVersion ?? null)})`, where)
  }
  if (typeof meta.name !== 'string' || meta.name === '') throw new KsealError('ERR_INPUT', 'a SealedSecret needs metadata.name', where)
  if (meta.namespace !== undefined && meta.namespace !== null && typeof meta.namespace !== 'string') {
    throw new KsealError('ERR_INPUT', 'metadata.namespace must be a string', where)
  }
  if (!isObj(raw.spec)) throw new KsealError('ERR_INPUT', 'a SealedSecret needs a spec', where)
  const spec = raw.spec
  const encryptedData = dict(Object.entries(checkField<Record<string, string>>('encryptedData', spec.encryptedData, where) ?? {}))
  // Pruned to the schema: metadata (labels and annotations, as null-prototype records), type, immutable.
  const template = checkField<SealedTemplate>('template', spec.template, where)
  if (template?.metadata) {
    const m = template.metadata as Obj
    template.metadata = {
      ...(m.labels ? {labels: dict(Object.entries(m.labels as Record<string, string>))} : {}),
      ...(m.annotations ? {annotations: dict(Object.entries(m.annotations as Record<string, string>))} : {}),
    }
  }
  if (spec.envelope === undefined || spec.envelope === null) {
    throw new KsealError('ERR_INTEGRITY', 'has no kseal envelope (spec.envelope was removed?)', where)
  }
  const metadata: SealedSecretObject['metadata'] = {...(meta as SealedSecretObject['metadata']), name: meta.name}
  if (metadata.namespace === null) delete metadata.namespace
  return {
    apiVersion: raw.apiVersion,
    kind: SEALED_KIND,
    metadata,
    spec: {encryptedData, ...(template ? {template} : {}), envelope: spec.envelope as SealedEnvelope},
    ...(isObj(raw.status) ? {status: raw.status as SealedStatus} : {}),
  }
}

/** Validates the envelope (untrusted): ERR_VERSION for an unknown version, ERR_INTEGRITY for anything malformed. */
export function parseSealedEnvelope(raw: unknown): SealedEnvelope {
  const bad = (what: string) => new KsealError('ERR_INTEGRITY', `malformed kseal envelope: ${what}`)
  if (!isObj(raw)) throw bad('not a mapping')
  // The version first, so a newer format says "upgrade" rather than "malformed".
  if (typeof raw.version !== 'number' || !Number.isInteger(raw.version)) throw bad('missing version')
  checkVersion(raw.version)
  const version = raw.version
  const shape = checkStructure(SPEC.envelope, raw, {nullIsAbsent: true}).problems[0]
  if (shape) throw bad(`${shape.path} ${shape.must}`)
  const rawParts = raw.parts as Obj[]
  if (rawParts.length > MAX_PARTS) throw bad(`${rawParts.length} parts (at most ${MAX_PARTS}; re-seal it to compact the chain)`)
  const parts = rawParts.map((p, i): SealedPart => {
    const at = `part ${i + 1}`
    if (Array.isArray(p.recipients) && p.recipients.length > MAX_PART_RECIPIENTS)
      throw bad(`${at}: ${p.recipients.length} recipients (at most ${MAX_PART_RECIPIENTS})`)
    let recipients: RecipientEntry[]
    try {
      recipients = parseRecipients(p.recipients)
    } catch (e) {
      if (isKsealError(e) && e.code === 'ERR_INTEGRITY') throw bad(`${at}: ${e.message.replace(/^malformed kseal envelope: /, '')}`)
      throw e
    }
    if (p.mac === '') throw bad(`${at}: missing mac`)
    const keys = p.keys as string[]
    if (new Set(keys).size !== keys.length) throw bad(`${at} lists a key twice`)
    let supersedes: Record<string, string> | undefined
    if (p.supersedes !== undefined && p.supersedes !== null) {
      if (Object.values(p.supersedes as Obj).some((d) => !DIGEST_RE.test(d as string))) {
        throw bad(`${at}: supersedes must map key names to SHA-256 digests`)
      }
      supersedes = dict(Object.entries(p.supersedes as Record<string, string>))
      if (Object.keys(supersedes).length === 0) supersedes = undefined
    }
    return {recipients, keys: [...keys], ...(supersedes ? {supersedes} : {}), mac: p.mac as string}
  })
  return {version, scope: raw.scope as Scope, parts}
}
