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
import {isKsealError, KsealError, type ErrorCode} from '../../core/errors.js'
import {isObj} from '../../core/guards.js'
import type {Unwrap} from '../../keyring/keyring.js'
import {refuseMergeKeys} from '../../manifest/parse.js'
import {parseSealedEnvelope, parseSealedSecret} from '../../sealed/parse.js'
import {resealSealedSecret} from '../../sealed/reseal.js'
import {unsealSealedSecret} from '../../sealed/unseal.js'
import type {SealingKey} from '../keystore/store.js'

/** Requests larger than this are refused with 413 before they are parsed. */
export const RESEAL_MAX_BYTES = 1 << 20
/**
 * The most private-key operations one `/v1/rotate` request may cost. Opening costs one per envelope
 * part, so a SealedSecret with more parts is refused (422) before any work: re-seal it to compact it.
 */
export const RESEAL_WORK_BUDGET = 16

const recipients = new Map<string, RsaRecipient>()
/** A sealing key's public half, its certificate read once per key. */
export function recipientOf(k: SealingKey): RsaRecipient {
  let r = recipients.get(k.kid)
  if (!r) {
    r = new RsaRecipient(new crypto.X509Certificate(k.certPem).publicKey, `controller key ${k.kid}`)
    recipients.set(k.kid, r)
  }
  return r
}

export interface ResealResponse {
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

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_INPUT: 400,
  ERR_USAGE: 400,
  ERR_CONFIG: 400,
  ERR_NO_KEY: 422,
  ERR_DECRYPT: 422,
  ERR_INTEGRITY: 422,
  ERR_VERSION: 422,
}

export function failure(status: number, code: string, message: string, sealedSecret?: string): ResealResponse {
  const line = message.replace(/\s*\n\s*/g, ' ').slice(0, 500)
  return {status, body: JSON.stringify({code, message: line}) + '\n', outcome: 'failed', code, message: line, sealedSecret}
}

/** Reads the request body: JSON, or YAML holding exactly one document. Parser messages are not echoed (they quote the input). */
export function parseBody(body: Buffer, contentType: string): unknown {
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

/** `namespace/name` of a request's object, for logs and messages (names only). */
export function requestName(raw: unknown): string | undefined {
  const meta = isObj(raw) && isObj(raw.metadata) ? raw.metadata : {}
  return typeof meta.name === 'string'
    ? `${typeof meta.namespace === 'string' && meta.namespace ? meta.namespace + '/' : ''}${meta.name}`
    : undefined
}

/** A request body read (see parseBody) with its object's name, or the 400 answer. */
function readRequest(body: Buffer, contentType: string): {raw: unknown; name?: string} | ResealResponse {
  let raw: unknown
  try {
    raw = parseBody(body, contentType)
  } catch (e) {
    return failure(400, 'ERR_INPUT', isKsealError(e) ? e.line : 'the request body is not valid JSON or YAML')
  }
  return {raw, name: requestName(raw)}
}

/** The 503 answer while no key may seal. */
export const noSealingKey = (name?: string) =>
  failure(503, 'ERR_BACKEND', 'the controller has no sealing key yet (or only keys older than --key-cutoff); try again shortly', name)

/** Handles one POST /v1/rotate body. `key` is the current sealing key (undefined: none may seal now). */
export async function handleReseal(
  body: Buffer,
  contentType: string,
  unwrap: Unwrap,
  key: SealingKey | undefined,
): Promise<ResealResponse> {
  const req = readRequest(body, contentType)
  if ('status' in req) return req
  const {raw, name} = req
  if (!isObj(raw)) return failure(400, 'ERR_INPUT', 'the request body must be a SealedSecret object')
  try {
    parseSealedSecret(raw)
  } catch (e) {
    if (isKsealError(e)) return failure(STATUS[e.code] ?? 400, e.code, e.line, name)
    throw e
  }
  if (!key) return noSealingKey(name)
  try {
    // The work budget, checked before any private-key operation, and enforced on every one.
    const parts = parseSealedEnvelope((raw.spec as {envelope?: unknown}).envelope).parts.length
    if (parts > RESEAL_WORK_BUDGET) {
      return failure(
        422,
        'ERR_INPUT',
        `is sealed in ${parts} parts; /v1/rotate opens at most ${RESEAL_WORK_BUDGET} per request: re-seal it to compact it (kseal unseal | kseal seal)`,
        name,
      )
    }
    let spent = 0
    const budgeted: Unwrap = (entries, binding) => {
      if (++spent > RESEAL_WORK_BUDGET) throw new KsealError('ERR_INPUT', `needs more than ${RESEAL_WORK_BUDGET} private-key operations`)
      return unwrap(entries, binding)
    }
    const r = await resealSealedSecret(raw, budgeted, recipientOf(key))
    return {
      status: 200,
      body: JSON.stringify(r.sealed) + '\n',
      outcome: r.changed ? 'resealed' : 'unchanged',
      sealedSecret: name,
      from: r.from,
      to: r.to,
    }
  } catch (e) {
    return resealFailed(e, name)
  }
}

/** A /v1/rotate request that failed while opening or sealing: the status its error code calls for. */
export function resealFailed(e: unknown, name: string | undefined): ResealResponse {
  if (!isKsealError(e)) return failure(500, 'ERR_BACKEND', 'internal error while resealing', name)
  return failure(STATUS[e.code] ?? 500, e.code, e.line, name)
}

/**
 * `POST /v1/verify` for kseal's own SealedSecrets, as kubeseal --validate asks sealed-secrets: 200 when
 * it opens here (its MAC checked), 409 when it does not (another key, moved, tampered), 400 when it is
 * not a SealedSecret. The same work budget as /v1/rotate; nothing decrypted leaves.
 */
export async function handleVerify(body: Buffer, contentType: string, unwrap: Unwrap): Promise<ResealResponse> {
  const req = readRequest(body, contentType)
  if ('status' in req) return req
  const {raw, name} = req
  try {
    const parsed = parseSealedSecret(raw)
    const parts = parseSealedEnvelope((parsed.spec as {envelope?: unknown}).envelope).parts.length
    if (parts > RESEAL_WORK_BUDGET)
      return failure(422, 'ERR_INPUT', `is sealed in ${parts} parts; /v1/verify opens at most ${RESEAL_WORK_BUDGET} per request`, name)
    await unsealSealedSecret(parsed, unwrap)
    return verified(name)
  } catch (e) {
    return verifyFailed(e, name)
  }
}

/** The 200 answer of /v1/verify: it opens here. */
export const verified = (name: string | undefined): ResealResponse => ({
  status: 200,
  body: JSON.stringify({verified: true}) + '\n',
  outcome: 'unchanged',
  sealedSecret: name,
})

/** A /v1/verify request that failed: 409 when it does not open here (what /v1/rotate answers 422), else as /v1/rotate. */
export function verifyFailed(e: unknown, name: string | undefined): ResealResponse {
  if (!isKsealError(e)) return failure(500, 'ERR_BACKEND', 'internal error while verifying', name)
  const status = STATUS[e.code] === 422 ? 409 : (STATUS[e.code] ?? 500)
  return failure(status, e.code, e.line, name)
}
