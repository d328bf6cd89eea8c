/**
 * `/v1/rotate`, as sealed-secrets' endpoint of the same name: a client POSTs a SealedSecret, the
 * controller opens it with whichever of its keys it was sealed to and returns it sealed to its
 * current sealing key. Name, namespace, scope, template and every other field come back as they
 * were; only `spec.encryptedData` (fresh ciphertext under a fresh data key) and `spec.envelope` (one
 * part, wrapped for the sealing key) change. The client never holds a private key and the response
 * never holds a plaintext value: failures are a status code and a one-line message naming places,
 * never values.
 */
import crypto from 'node:crypto'
import {parseAllDocuments} from 'yaml'
import {RsaRecipient} from '../../../keys/rsa.js'
import {deriveKeys, encryptValue, FORMAT_VERSION, newDataKey} from '../../envelope/envelope.js'
import {isKsealError, KsealError, type ErrorCode} from '../../core/errors.js'
import {refuseMergeKeys} from '../../manifest/parse.js'
import {dict, type OpenDataKey, parseSealedEnvelope, parseSealedSecret, partMac, sealedBinding, type SealedPart, tokenDigest, unsealSealedSecret} from '../../sealed/sealed.js'
import type {SealingKey} from '../keystore/store.js'

/** Requests larger than this are refused with 413 before they are parsed. */
export const ROTATE_MAX_BYTES = 1 << 20
/**
 * The most private-key operations one `/v1/rotate` request may cost. Opening costs one per envelope
 * part, so a SealedSecret with more parts is refused (422) before any work: re-seal it to compact it.
 */
export const ROTATE_WORK_BUDGET = 16

export interface ResealResult {
  /** The SealedSecret to write back: the input object with new encryptedData and envelope (or the input itself when unchanged). */
  sealed: Record<string, unknown>
  changed: boolean
  /** Key ids it was sealed to. */
  from: string[]
  /** The key id it is sealed to now. */
  to: string
}

const recipients = new Map<string, RsaRecipient>()
function recipientOf(k: SealingKey): RsaRecipient {
  let r = recipients.get(k.kid)
  if (!r) {
    r = new RsaRecipient(new crypto.X509Certificate(k.certPem).publicKey, `controller key ${k.kid}`)
    recipients.set(k.kid, r)
  }
  return r
}

/**
 * Opens a SealedSecret (every part, every MAC, every value checked) and seals it again to `key`.
 * A SealedSecret that is already one part sealed to `key` alone comes back unchanged, so running
 * reseal twice changes nothing the second time.
 */
export async function resealSealedSecret(raw: Record<string, unknown>, open: OpenDataKey, key: SealingKey): Promise<ResealResult> {
  const s = parseSealedSecret(raw)
  const {secret, kids} = await unsealSealedSecret(s, open)
  const env = parseSealedEnvelope(s.spec.envelope)
  const onlyPart = env.parts.length === 1 ? env.parts[0] : undefined
  if (env.version === FORMAT_VERSION && onlyPart && onlyPart.recipients.length === 1 && onlyPart.recipients[0].backend === 'rsa' && onlyPart.recipients[0].kid === key.kid) {
    return {sealed: raw, changed: false, from: kids, to: key.kid}
  }
  // Re-sealed in the current format, whatever the input's: this is how SealedSecrets are upgraded.
  const binding = sealedBinding(s, env.scope, FORMAT_VERSION)
  const values = secret.data as Record<string, string>
  const dataKey = newDataKey()
  const dk = deriveKeys(dataKey, FORMAT_VERSION)
  const wrapped = await recipientOf(key).wrap(dataKey, binding)
  const encryptedData = dict<string>()
  // Same keys, same order as the input.
  for (const k of Object.keys(s.spec.encryptedData)) encryptedData[k] = encryptValue(dk, binding, 'data', k, Buffer.from(values[k], 'base64'))
  const own: [string, string][] = Object.entries(encryptedData).map(([k, t]) => [k, tokenDigest(t)])
  const part: SealedPart = {recipients: [wrapped], keys: Object.keys(encryptedData).sort(), mac: partMac(dk, binding, 0, '', [wrapped], own, [])}
  const spec = raw.spec as Record<string, unknown>
  return {
    sealed: {...raw, spec: {...spec, encryptedData, envelope: {version: FORMAT_VERSION, scope: env.scope, parts: [part]}}},
    changed: true,
    from: kids,
    to: key.kid,
  }
}

export interface RotateResponse {
  status: number
  /** JSON text. */
  body: string
  /** For the log and metrics: what happened, and to which SealedSecret (names only). */
  outcome: 'resealed' | 'unchanged' | 'failed'
  sealedSecret?: string
  code?: string
  message?: string
  from?: string[]
  to?: string
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_INPUT: 400, ERR_USAGE: 400, ERR_CONFIG: 400,
  ERR_NO_KEY: 422, ERR_DECRYPT: 422, ERR_INTEGRITY: 422, ERR_VERSION: 422,
}

function failure(status: number, code: string, message: string, sealedSecret?: string): RotateResponse {
  const line = message.replace(/\s*\n\s*/g, ' ').slice(0, 500)
  return {status, body: JSON.stringify({code, message: line}) + '\n', outcome: 'failed', code, message: line, sealedSecret}
}

/** Reads the request body: JSON, or YAML holding exactly one document. Parser messages are not echoed (they quote the input). */
function parseBody(body: Buffer, contentType: string): unknown {
  const text = body.toString('utf8').replace(/^\uFEFF/, '')
  if (/json/i.test(contentType) || /^\s*[{[]/.test(text)) {
    try {
      return JSON.parse(text)
    } catch {
      if (/json/i.test(contentType)) throw new KsealError('ERR_INPUT', 'the request body is not valid JSON')
    }
  }
  const docs = parseAllDocuments(text, {version: '1.1'})
  if (!Array.isArray(docs)) throw new KsealError('ERR_INPUT', 'the request body is empty')
  const real = docs.filter((d) => d.contents !== null)
  if (real.some((d) => d.errors.length)) throw new KsealError('ERR_INPUT', 'the request body is not valid JSON or YAML')
  for (const d of real) refuseMergeKeys(d, {})
  if (real.length !== 1) throw new KsealError('ERR_INPUT', `the request body must hold one SealedSecret; it holds ${real.length} documents`)
  return real[0].toJS({maxAliasCount: 100}) as unknown
}

/** Handles one POST /v1/rotate body. `key` is the current sealing key (undefined: none may seal now). */
export async function handleRotate(body: Buffer, contentType: string, open: OpenDataKey, key: SealingKey | undefined): Promise<RotateResponse> {
  let raw: unknown
  try {
    raw = parseBody(body, contentType)
  } catch (e) {
    return failure(400, 'ERR_INPUT', isKsealError(e) ? e.line : 'the request body is not valid JSON or YAML')
  }
  const meta = isObj(raw) && isObj(raw.metadata) ? raw.metadata : {}
  const name = typeof meta.name === 'string' ? `${typeof meta.namespace === 'string' && meta.namespace ? meta.namespace + '/' : ''}${meta.name}` : undefined
  if (!isObj(raw)) return failure(400, 'ERR_INPUT', 'the request body must be a SealedSecret object')
  try {
    parseSealedSecret(raw)
  } catch (e) {
    if (isKsealError(e)) return failure(STATUS[e.code] ?? 400, e.code, e.line, name)
    throw e
  }
  if (!key) return failure(503, 'ERR_BACKEND', 'the controller has no sealing key yet (or only keys older than --key-cutoff); try again shortly', name)
  try {
    // The work budget, checked before any private-key operation, and enforced on every one.
    const parts = parseSealedEnvelope((raw.spec as {envelope?: unknown}).envelope).parts.length
    if (parts > ROTATE_WORK_BUDGET) {
      return failure(422, 'ERR_INPUT', `is sealed in ${parts} parts; /v1/rotate opens at most ${ROTATE_WORK_BUDGET} per request: re-seal it to compact it (kseal unseal | kseal seal)`, name)
    }
    let spent = 0
    const budgeted: OpenDataKey = (entries, binding) => {
      if (++spent > ROTATE_WORK_BUDGET) throw new KsealError('ERR_INPUT', `needs more than ${ROTATE_WORK_BUDGET} private-key operations`)
      return open(entries, binding)
    }
    const r = await resealSealedSecret(raw, budgeted, key)
    return {
      status: 200, body: JSON.stringify(r.sealed) + '\n', outcome: r.changed ? 'resealed' : 'unchanged', sealedSecret: name, from: r.from, to: r.to,
    }
  } catch (e) {
    if (!isKsealError(e)) return failure(500, 'ERR_BACKEND', 'internal error while resealing', name)
    return failure(STATUS[e.code] ?? 500, e.code, e.line, name)
  }
}
