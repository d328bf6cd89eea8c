/**
 * SealedSecret: a Secret sealed with only the in-cluster unsealer's public certificate (spec:
 * docs/SEALED-FORMAT.md). This module turns a v1 Secret into a `kseal.dev/v1` SealedSecret, merges
 * new values into an existing one with the public key alone, and opens one again with whatever can
 * unwrap a data key (the controller's key ring, `kseal unseal --key`). It knows nothing about files
 * or the Kubernetes API.
 *
 * The envelope is a chain of parts. `kseal seal` writes one; each `--merge-into` appends one with a
 * fresh data key. A part's MAC (keyed from its own data key) covers its index, the previous part's
 * MAC, the digest of every value it wrote and of every value it superseded, so the whole chain is
 * checked on open: one RSA operation per part, never per value.
 */
import crypto from 'node:crypto'
import {type Binding, type Recipient, type RecipientEntry, type Scope, SCOPES} from '../../keys/types.js'
import {
  bindingFor, bindingV2, canonicalRecipients, checkVersion, cmp, type DataKeys, decryptValue, deriveKeys, encryptedAsFor, encryptValue, FORMAT_VERSION,
  macEqual, newDataKey, parseRecipients, type Version,
} from '../envelope/envelope.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {isCoreSecret} from '../manifest/parse.js'
import {valueBytes} from '../secret/secret.js'

export {loadCertificate, resolveCertificate, type CertificateContext, type CertificateSource, type LoadedCertificate} from '../client/cert.js'

export const SEALED_GROUP = 'kseal.dev'
export const SEALED_VERSION = 'v1'
export const SEALED_KIND = 'SealedSecret'
export const SEALED_PLURAL = 'sealedsecrets'
export const SEALED_API_VERSION = `${SEALED_GROUP}/${SEALED_VERSION}`

/** Annotations never copied from a Secret into a template: kubectl's copy of the applied object holds the plaintext. */
const DROPPED_ANNOTATIONS = ['kubectl.kubernetes.io/last-applied-configuration']
/** Kubernetes' rule for Secret data keys. */
const KEY_RE = /^[-._a-zA-Z0-9]+$/
const DIGEST_RE = /^[A-Za-z0-9+/]{43}=$/

/** One part of the envelope: the values one seal or one merge wrote, under one data key. */
export interface SealedPart {
  /** The part's data key, wrapped for each recipient (the controller's key id in `kid`). */
  recipients: RecipientEntry[]
  /** The encryptedData keys this part wrote, sorted. */
  keys: string[]
  /** For each key this part replaced: base64 SHA-256 of the token it replaced. */
  supersedes?: Record<string, string>
  /** HMAC-SHA256 over the part (see partMac), base64. */
  mac: string
}

export interface SealedEnvelope {
  version: Version
  scope: Scope
  parts: SealedPart[]
}

export interface SealedTemplate {
  metadata?: {labels?: Record<string, string>; annotations?: Record<string, string>}
  type?: string
  immutable?: boolean
}

export interface SealedSpec {
  /** Secret key → kseal token (`kseal:v1:...`), each bound to its place with AAD field `data`. */
  encryptedData: Record<string, string>
  template?: SealedTemplate
  envelope: SealedEnvelope
}

export interface SealedCondition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason?: string
  message?: string
  lastTransitionTime?: string
  observedGeneration?: number
}

export interface SealedStatus {
  observedGeneration?: number
  conditions?: SealedCondition[]
}

export interface SealedSecretObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    generation?: number
    resourceVersion?: string
    /** Typed as client-node's V1ObjectMeta types it (raw JSON holds a string); only its presence matters here. */
    deletionTimestamp?: Date
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  spec: SealedSpec
  status?: SealedStatus
}

export interface UnsealResult {
  /** A v1 Secret: apiVersion, kind, metadata (name, namespace, template labels/annotations), type, immutable?, data (base64). */
  secret: Record<string, unknown>
  /** The key ids that opened it, one per distinct key, in part order. */
  kids: string[]
}

/** Unwraps a data key from recipient entries (a Keyring's `open`). */
export type OpenDataKey = (entries: RecipientEntry[], binding: Binding) => Promise<Uint8Array>

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

function label(meta: {name?: unknown; namespace?: unknown}): string {
  const ns = typeof meta.namespace === 'string' && meta.namespace ? `${meta.namespace}/` : ''
  return ns + (typeof meta.name === 'string' && meta.name ? meta.name : '(unnamed)')
}

function stringMap(v: unknown, what: string, where: Where): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined
  if (!isObj(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new KsealError('ERR_INPUT', `${what} must be a mapping of strings`, where)
  }
  return dict(Object.entries(v as Record<string, string>))
}

/** True when an object claims to be a kseal SealedSecret (any version). */
export function isKsealSealedSecret(o: unknown): boolean {
  return isObj(o) && o.kind === SEALED_KIND && typeof o.apiVersion === 'string' && o.apiVersion.startsWith(`${SEALED_GROUP}/`)
}

/**
 * Validates a SealedSecret's shape (untrusted input: a file, the API). Structural problems are
 * ERR_INPUT; an apiVersion of ours that this kseal does not know is ERR_VERSION. The envelope itself
 * is checked when it is used (ERR_INTEGRITY, as for a Secret's envelope).
 */
export function parseSealedSecret(raw: unknown): SealedSecretObject {
  if (!isObj(raw)) throw new KsealError('ERR_INPUT', 'a SealedSecret must be a mapping')
  const meta = isObj(raw.metadata) ? raw.metadata : {}
  const where: Where = {secret: label(meta)}
  if (raw.kind !== SEALED_KIND) throw new KsealError('ERR_INPUT', `not a SealedSecret (kind ${JSON.stringify(raw.kind ?? null)})`, where)
  if (raw.apiVersion !== SEALED_API_VERSION) {
    if (typeof raw.apiVersion === 'string' && raw.apiVersion.startsWith(`${SEALED_GROUP}/`)) {
      throw new KsealError('ERR_VERSION', `unsupported SealedSecret apiVersion ${raw.apiVersion} (this kseal reads ${SEALED_API_VERSION}; upgrade kseal)`, where)
    }
    throw new KsealError('ERR_INPUT', `not a kseal SealedSecret (apiVersion ${JSON.stringify(raw.apiVersion ?? null)})`, where)
  }
  if (typeof meta.name !== 'string' || meta.name === '') throw new KsealError('ERR_INPUT', 'a SealedSecret needs metadata.name', where)
  if (meta.namespace !== undefined && meta.namespace !== null && typeof meta.namespace !== 'string') {
    throw new KsealError('ERR_INPUT', 'metadata.namespace must be a string', where)
  }
  if (!isObj(raw.spec)) throw new KsealError('ERR_INPUT', 'a SealedSecret needs a spec', where)
  const spec = raw.spec
  const encryptedData = stringMap(spec.encryptedData, 'spec.encryptedData', where) ?? {}
  let template: SealedTemplate | undefined
  if (spec.template !== undefined && spec.template !== null) {
    if (!isObj(spec.template)) throw new KsealError('ERR_INPUT', 'spec.template must be a mapping', where)
    const t = spec.template
    template = {}
    if (t.metadata !== undefined && t.metadata !== null) {
      if (!isObj(t.metadata)) throw new KsealError('ERR_INPUT', 'spec.template.metadata must be a mapping', where)
      const labels = stringMap(t.metadata.labels, 'spec.template.metadata.labels', where)
      const annotations = stringMap(t.metadata.annotations, 'spec.template.metadata.annotations', where)
      template.metadata = {...(labels ? {labels} : {}), ...(annotations ? {annotations} : {})}
    }
    if (t.type !== undefined && t.type !== null) {
      if (typeof t.type !== 'string') throw new KsealError('ERR_INPUT', 'spec.template.type must be a string', where)
      template.type = t.type
    }
    if (t.immutable !== undefined && t.immutable !== null) {
      if (typeof t.immutable !== 'boolean') throw new KsealError('ERR_INPUT', 'spec.template.immutable must be true or false', where)
      template.immutable = t.immutable
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

/** At most this many parts (merges) in one SealedSecret: opening costs one private-key operation per part. */
export const MAX_PARTS = 64
/** At most this many recipient entries in one part. */
export const MAX_PART_RECIPIENTS = 16

/** Validates the envelope (untrusted): ERR_VERSION for an unknown version, ERR_INTEGRITY for anything malformed. */
export function parseSealedEnvelope(raw: unknown): SealedEnvelope {
  const bad = (what: string) => new KsealError('ERR_INTEGRITY', `malformed kseal envelope: ${what}`)
  if (!isObj(raw)) throw bad('not a mapping')
  // The version first, so a newer format says "upgrade" rather than "malformed".
  if (typeof raw.version !== 'number' || !Number.isInteger(raw.version)) throw bad('missing version')
  checkVersion(raw.version)
  const version = raw.version
  if (typeof raw.scope !== 'string' || !(SCOPES as readonly string[]).includes(raw.scope)) throw bad('unknown scope')
  if (!Array.isArray(raw.parts) || raw.parts.length === 0) throw bad('no parts')
  if (raw.parts.length > MAX_PARTS) throw bad(`${raw.parts.length} parts (at most ${MAX_PARTS}; re-seal it to compact the chain)`)
  const parts = raw.parts.map((p, i): SealedPart => {
    const at = `part ${i + 1}`
    if (!isObj(p)) throw bad(`${at} is not a mapping`)
    if (Array.isArray(p.recipients) && p.recipients.length > MAX_PART_RECIPIENTS) throw bad(`${at}: ${p.recipients.length} recipients (at most ${MAX_PART_RECIPIENTS})`)
    let recipients: RecipientEntry[]
    try {
      recipients = parseRecipients(p.recipients)
    } catch (e) {
      if (isKsealError(e) && e.code === 'ERR_INTEGRITY') throw bad(`${at}: ${e.message.replace(/^malformed kseal envelope: /, '')}`)
      throw e
    }
    if (typeof p.mac !== 'string' || p.mac === '') throw bad(`${at}: missing mac`)
    if (!Array.isArray(p.keys) || p.keys.some((k) => typeof k !== 'string')) throw bad(`${at} needs keys (a list of key names)`)
    const keys = p.keys as string[]
    if (new Set(keys).size !== keys.length) throw bad(`${at} lists a key twice`)
    let supersedes: Record<string, string> | undefined
    if (p.supersedes !== undefined && p.supersedes !== null) {
      if (!isObj(p.supersedes) || Object.values(p.supersedes).some((d) => typeof d !== 'string' || !DIGEST_RE.test(d))) {
        throw bad(`${at}: supersedes must map key names to SHA-256 digests`)
      }
      supersedes = dict(Object.entries(p.supersedes as Record<string, string>))
      if (Object.keys(supersedes).length === 0) supersedes = undefined
    }
    return {recipients, keys: [...keys], ...(supersedes ? {supersedes} : {}), mac: p.mac}
  })
  return {version, scope: raw.scope as Scope, parts}
}

/** A null-prototype record: key names such as `__proto__` or `valueOf` are just keys. */
export function dict<T>(entries: Iterable<[string, T]> = []): Record<string, T> {
  const out = Object.create(null) as Record<string, T>
  for (const [k, v] of entries) out[k] = v
  return out
}

const has = (o: object, k: string) => Object.hasOwn(o, k)

/** Where the SealedSecret's values are bound under its scope (format 2 with its own domain strings). */
export function sealedBinding(sealed: SealedSecretObject, scope: Scope, version: Version): Binding {
  const ns = sealed.metadata.namespace ?? ''
  if (scope !== 'cluster' && !ns) {
    throw new KsealError('ERR_INPUT', `has no metadata.namespace, which its ${scope} scope binds the values to`, {secret: label(sealed.metadata)})
  }
  return version === 1 ? bindingFor(scope, ns, sealed.metadata.name) : bindingV2(scope, encryptedAsFor(scope, ns, sealed.metadata.name))
}

/** base64 SHA-256 of a token: what a part's MAC covers for each value. */
export function tokenDigest(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('base64')
}

type Pairs = [string, string][]

/**
 * The MAC of part `index`: binding, position in the chain, previous part's MAC, its values' and its
 * superseded values' digests; in format 2 also the part's recipient entries (canonical, sorted).
 */
export function partMac(keys: DataKeys, b: Binding, index: number, prev: string, recipients: readonly RecipientEntry[], own: Pairs, supersedes: Pairs): string {
  const sort = (p: Pairs) => [...p].sort((x, y) => cmp(x[0], y[0]))
  const body = keys.version === 2
    ? ['kseal/v2 sealed part', b.scope, b.namespace, b.name, index, prev, canonicalRecipients(recipients), sort(own), sort(supersedes)]
    : ['kseal/v1 sealed part', b.scope, b.namespace, b.name, index, prev, sort(own), sort(supersedes)]
  return crypto.createHmac('sha256', keys.mac).update(JSON.stringify(body)).digest('base64')
}

/** What the chain says about each part once checked for consistency (no key needed). */
interface PartPlan {
  /** [key, digest] for every key the part wrote: the current token's digest, or the one a later part recorded when it replaced it. */
  own: Pairs
  supersedes: Pairs
  /** Keys whose current value this part holds. */
  live: string[]
}

/**
 * Checks that the chain is consistent with the values (which part holds each value, what each part
 * replaced) and works out what each part's MAC must cover. A writer with only the public key runs
 * this before merging, so it never appends to a broken chain.
 */
function planParts(env: SealedEnvelope, data: Record<string, string>): PartPlan[] {
  const bad = (msg: string, key?: string) => new KsealError('ERR_INTEGRITY', msg, key === undefined ? {} : {key: `encryptedData.${key}`})
  const owner = new Map<string, number>()
  env.parts.forEach((p, i) => {
    for (const k of Object.keys(p.supersedes ?? {})) {
      if (!p.keys.includes(k)) throw bad(`malformed kseal envelope: part ${i + 1} supersedes "${k}" without writing it`)
    }
    for (const k of p.keys) {
      const replaces = owner.has(k)
      if (replaces !== (p.supersedes !== undefined && has(p.supersedes, k))) {
        throw bad(`integrity check failed: part ${i + 1} ${replaces ? 'replaces a value without recording it' : 'claims to replace a value no earlier part wrote'}`, k)
      }
      owner.set(k, i)
    }
  })
  for (const k of Object.keys(data)) {
    if (!owner.has(k)) throw bad('is not covered by the envelope: a value was added after sealing (seal it with kseal seal --merge-into)', k)
  }
  for (const k of owner.keys()) {
    if (!has(data, k)) throw bad('is missing: the envelope covers a value that was removed', k)
  }
  return env.parts.map((p, i): PartPlan => {
    const live: string[] = []
    const own: Pairs = p.keys.map((k) => {
      const next = env.parts.findIndex((q, j) => j > i && q.keys.includes(k))
      if (next === -1) {
        live.push(k)
        return [k, tokenDigest(data[k])]
      }
      return [k, env.parts[next].supersedes![k]]
    })
    return {own, supersedes: Object.entries(p.supersedes ?? {}), live}
  })
}

/** A Secret's values as bytes, in order: `data` decoded, then new `stringData` keys as UTF-8 (stringData wins, as in Kubernetes). */
function secretValues(secret: Obj, where: Where): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const field of ['data', 'stringData'] as const) {
    const m = secret[field]
    if (m === undefined || m === null) continue
    if (!isObj(m)) throw new KsealError('ERR_INPUT', `${field} must be a mapping of keys to strings`, where)
    for (const [key, v] of Object.entries(m)) {
      const at = {...where, key: `${field}.${key}`}
      if (!KEY_RE.test(key)) throw new KsealError('ERR_INPUT', 'is not a valid Secret key (letters, digits, "-", "_" and "." only)', at)
      if (v !== null && typeof v !== 'string') throw new KsealError('ERR_INPUT', `value is not a string (it reads as ${typeof v}; quote it)`, at)
      if (typeof v === 'string' && /^\s*kseal:v\d+:/.test(v)) {
        throw new KsealError('ERR_INPUT', 'is already encrypted with kseal: decrypt it first (kseal decrypt FILE | kseal seal ...)', at)
      }
      const bytes = v === null ? Buffer.alloc(0) : valueBytes({field, key, node: null, value: v, encrypted: false})
      out.set(key, bytes)
    }
  }
  return out
}

function checkSecret(secret: Record<string, unknown>, needName = true): {meta: Obj; where: Where} {
  if (!isObj(secret) || !isCoreSecret(secret.kind, secret.apiVersion)) {
    throw new KsealError('ERR_INPUT', 'only v1 Secrets can be sealed')
  }
  const meta = isObj(secret.metadata) ? secret.metadata : {}
  const where: Where = {secret: label(meta)}
  if ('kseal' in secret) throw new KsealError('ERR_INPUT', 'is encrypted with kseal: decrypt it first (kseal decrypt FILE | kseal seal ...)', where)
  if (needName && (typeof meta.name !== 'string' || meta.name === '')) throw new KsealError('ERR_INPUT', 'a Secret needs metadata.name to be sealed', where)
  if (meta.name !== undefined && meta.name !== null && typeof meta.name !== 'string') throw new KsealError('ERR_INPUT', 'metadata.name must be a string', where)
  if (meta.namespace !== undefined && meta.namespace !== null && typeof meta.namespace !== 'string') {
    throw new KsealError('ERR_INPUT', 'metadata.namespace must be a string', where)
  }
  return {meta, where}
}

function templateOf(secret: Obj, meta: Obj, where: Where): SealedTemplate {
  const labels = stringMap(meta.labels, 'metadata.labels', where)
  const annotations = stringMap(meta.annotations, 'metadata.annotations', where)
  for (const a of DROPPED_ANNOTATIONS) if (annotations) delete annotations[a]
  const metadata = {
    ...(labels && Object.keys(labels).length ? {labels} : {}),
    ...(annotations && Object.keys(annotations).length ? {annotations} : {}),
  }
  if (secret.type !== undefined && secret.type !== null && typeof secret.type !== 'string') throw new KsealError('ERR_INPUT', 'type must be a string', where)
  if (secret.immutable !== undefined && secret.immutable !== null && typeof secret.immutable !== 'boolean') {
    throw new KsealError('ERR_INPUT', 'immutable must be true or false', where)
  }
  return {
    ...(Object.keys(metadata).length ? {metadata} : {}),
    type: (secret.type as string | undefined) ?? 'Opaque',
    ...(typeof secret.immutable === 'boolean' ? {immutable: secret.immutable} : {}),
  }
}

async function wrapAll(recipients: Recipient[], dataKey: Buffer, binding: Binding): Promise<RecipientEntry[]> {
  if (recipients.length === 0) throw new KsealError('ERR_USAGE', 'no certificate to seal for: pass --cert FILE|URL')
  return Promise.all(recipients.map((r) => r.wrap(dataKey, binding)))
}

/**
 * Seals a parsed v1 Secret (base64 `data`, string `stringData`) into a SealedSecret: one fresh data
 * key, wrapped once per recipient; every value encrypted as `data` bytes; the template keeps the
 * Secret's labels, annotations (not kubectl's last-applied copy), type and immutable.
 */
export async function sealSecret(secret: Record<string, unknown>, recipients: Recipient[], scope: Scope): Promise<SealedSecretObject> {
  const {meta, where} = checkSecret(secret)
  const name = meta.name as string
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : undefined
  if (scope !== 'cluster' && !namespace) {
    throw new KsealError('ERR_INPUT', `a Secret needs metadata.namespace to be sealed with ${scope} scope (the values are bound to it), or use --scope cluster`, where)
  }
  const values = secretValues(secret, where)
  const template = templateOf(secret, meta, where)
  const binding = bindingV2(scope, encryptedAsFor(scope, namespace ?? '', name))
  const dataKey = newDataKey()
  const keys = deriveKeys(dataKey, FORMAT_VERSION)
  const wrapped = await wrapAll(recipients, dataKey, binding)
  const encryptedData = dict<string>()
  for (const [k, bytes] of values) encryptedData[k] = encryptValue(keys, binding, 'data', k, bytes)
  const own: Pairs = Object.entries(encryptedData).map(([k, t]) => [k, tokenDigest(t)])
  const part: SealedPart = {recipients: wrapped, keys: Object.keys(encryptedData).sort(cmp), mac: partMac(keys, binding, 0, '', wrapped, own, [])}
  return {
    apiVersion: SEALED_API_VERSION,
    kind: SEALED_KIND,
    metadata: {name, ...(namespace ? {namespace} : {})},
    spec: {encryptedData, template, envelope: {version: FORMAT_VERSION, scope, parts: [part]}},
  }
}

/**
 * Adds or replaces values in an existing SealedSecret with the public key alone: the new values get
 * their own data key in a new envelope part, whose MAC also covers the digests of the tokens they
 * replace and the previous part's MAC. The template, scope and every other value stay as they were.
 */
export async function mergeIntoSealed(existing: SealedSecretObject, secret: Record<string, unknown>, recipients: Recipient[]): Promise<SealedSecretObject> {
  const sealed = parseSealedSecret(existing)
  const at: Where = {secret: label(sealed.metadata)}
  // The Secret may leave out its name and namespace: the values go where the SealedSecret is.
  const {meta, where} = checkSecret(secret, false)
  for (const f of ['name', 'namespace'] as const) {
    const want = sealed.metadata[f] ?? ''
    if (typeof meta[f] === 'string' && meta[f] !== '' && meta[f] !== want) {
      throw new KsealError('ERR_USAGE', `the Secret's ${f} ${JSON.stringify(meta[f])} differs from the SealedSecret's ${JSON.stringify(want)}`, where)
    }
  }
  let env: SealedEnvelope
  let binding: Binding
  try {
    env = parseSealedEnvelope(sealed.spec.envelope)
    binding = sealedBinding(sealed, env.scope, env.version as Version)
    planParts(env, sealed.spec.encryptedData)
  } catch (e) {
    throw isKsealError(e) ? e.at(at) : e
  }
  const values = secretValues(secret, where)
  if (values.size === 0) throw new KsealError('ERR_INPUT', 'has no data or stringData to merge', where)
  // The new part is in the chain's own format: the writer holds no private key to upgrade the rest
  // (kseal reseal does, through the controller).
  const dataKey = newDataKey()
  const keys = deriveKeys(dataKey, env.version as Version)
  const wrapped = await wrapAll(recipients, dataKey, binding)
  const encryptedData = dict(Object.entries(sealed.spec.encryptedData))
  const supersedes = dict<string>()
  const own: Pairs = []
  for (const [k, bytes] of values) {
    if (has(encryptedData, k)) supersedes[k] = tokenDigest(encryptedData[k])
    encryptedData[k] = encryptValue(keys, binding, 'data', k, bytes)
    own.push([k, tokenDigest(encryptedData[k])])
  }
  const index = env.parts.length
  if (index >= MAX_PARTS) throw new KsealError('ERR_USAGE', `already has ${index} parts, the most a SealedSecret may have: re-seal it to compact the chain (kseal unseal | kseal seal)`, at)
  const mac = partMac(keys, binding, index, env.parts[index - 1].mac, wrapped, own, Object.entries(supersedes))
  const part: SealedPart = {recipients: wrapped, keys: [...values.keys()].sort(cmp), ...(Object.keys(supersedes).length ? {supersedes} : {}), mac}
  return {
    ...sealed,
    spec: {...sealed.spec, encryptedData, envelope: {version: env.version, scope: env.scope, parts: [...env.parts, part]}},
  }
}

/**
 * Opens one part with at most one private-key operation: its entries are tried one at a time (so
 * the key id that worked is known), each key id once, and the first entry whose key is held decides
 * — a failure there fails the part rather than trying the next entry.
 */
async function openPart(entries: RecipientEntry[], binding: Binding, open: OpenDataKey): Promise<{dataKey: Uint8Array; kid: string}> {
  const seen = new Set<string>()
  for (const e of entries) {
    const id = `${e.backend}:${e.kid}`
    if (seen.has(id)) continue
    seen.add(id)
    try {
      return {dataKey: await open([e], binding), kid: e.kid}
    } catch (err) {
      if (!(isKsealError(err) && err.code === 'ERR_NO_KEY')) throw err
    }
  }
  throw new KsealError('ERR_NO_KEY', `no key for this SealedSecret: it is sealed for ${[...seen].join(', ')}`)
}

/**
 * Opens a SealedSecret: checks the chain, unwraps each part's data key (one `open` per part), checks
 * each part's MAC, decrypts every value, and returns the v1 Secret it describes. Fails with
 * ERR_NO_KEY, ERR_DECRYPT, ERR_INTEGRITY or ERR_VERSION as a Secret would; never a partial result.
 */
export async function unsealSealedSecret(sealed: SealedSecretObject, open: OpenDataKey): Promise<UnsealResult> {
  const s = parseSealedSecret(sealed)
  const where: Where = {secret: label(s.metadata)}
  try {
    const env = parseSealedEnvelope(s.spec.envelope)
    const binding = sealedBinding(s, env.scope, env.version as Version)
    const data = s.spec.encryptedData
    const plans = planParts(env, data)
    const opened = await Promise.all(env.parts.map(async (part, i) => {
      const {dataKey, kid} = await openPart(part.recipients, binding, open)
      const keys = deriveKeys(dataKey, env.version as Version)
      const plan = plans[i]
      const prev = i === 0 ? '' : env.parts[i - 1].mac
      const decrypt = (k: string) => {
        try {
          return decryptValue(keys, binding, 'data', k, data[k])
        } catch (e) {
          throw isKsealError(e) ? e.at({key: `encryptedData.${k}`}) : e
        }
      }
      if (!macEqual(partMac(keys, binding, i, prev, part.recipients, plan.own, plan.supersedes), part.mac)) {
        // Name the value that does not belong, when one can be found; otherwise the chain changed.
        for (const k of plan.live) decrypt(k)
        throw new KsealError('ERR_INTEGRITY', `integrity check failed (envelope part ${i + 1}): values were added, removed, replaced, replayed or moved between parts${env.version === 2 ? ', or its recipients were altered' : ''}`)
      }
      return {kid, values: new Map(plan.live.map((k) => [k, decrypt(k)]))}
    }))
    const plain = new Map<string, Buffer>()
    for (const o of opened) for (const [k, v] of o.values) plain.set(k, v)
    const out = dict<string>()
    for (const k of Object.keys(data)) out[k] = plain.get(k)!.toString('base64')
    const t = s.spec.template ?? {}
    const metadata: Obj = {name: s.metadata.name}
    if (s.metadata.namespace) metadata.namespace = s.metadata.namespace
    if (t.metadata?.labels && Object.keys(t.metadata.labels).length) metadata.labels = {...t.metadata.labels}
    if (t.metadata?.annotations && Object.keys(t.metadata.annotations).length) metadata.annotations = {...t.metadata.annotations}
    const secret: Obj = {apiVersion: 'v1', kind: 'Secret', metadata, type: t.type ?? 'Opaque'}
    if (t.immutable !== undefined) secret.immutable = t.immutable
    secret.data = out
    return {secret, kids: [...new Set(opened.map((o) => o.kid))]}
  } catch (e) {
    throw isKsealError(e) ? e.at(where) : e
  }
}

/** Every key id the SealedSecret's parts are wrapped for, without duplicates, in part order. */
export function recipientKids(sealed: SealedSecretObject): string[] {
  const parts = (sealed.spec?.envelope as Partial<SealedEnvelope> | undefined)?.parts
  if (!Array.isArray(parts)) return []
  const kids = new Set<string>()
  for (const p of parts) {
    if (!isObj(p) || !Array.isArray(p.recipients)) continue
    for (const r of p.recipients as unknown[]) if (isObj(r) && typeof r.kid === 'string') kids.add(r.kid)
  }
  return [...kids]
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical)
  if (isObj(v)) {
    const out: Obj = {}
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = canonical(v[k])
    return out
  }
  return v
}

/**
 * A stable hash of what the produced Secret depends on: the SealedSecret's name, namespace and spec
 * (canonical JSON, keys sorted). The controller keeps it on the Secret so that a restart with
 * nothing changed decrypts nothing. Hex SHA-256.
 */
export function sealedSpecHash(sealed: SealedSecretObject): string {
  const body = ['kseal/v1 sealed spec', sealed.metadata.namespace ?? '', sealed.metadata.name, canonical(sealed.spec)]
  return crypto.createHash('sha256').update(JSON.stringify(body), 'utf8').digest('hex')
}
