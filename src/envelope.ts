/**
 * The kseal envelope, format version 1 (spec: docs/FORMAT.md). This module is all the crypto that
 * touches values: data keys, per-value AES-256-GCM, the whole-Secret MAC, and the wire forms of
 * tokens and envelope metadata. It knows nothing about YAML or key backends.
 */
import crypto from 'node:crypto'
import {KsealError} from './errors.js'
import {type Binding, type RecipientEntry, type Scope, SCOPES} from '../keys/types.js'

export const FORMAT_VERSION = 1
export const DATA_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16

export type Field = 'data' | 'stringData'

/** The metadata a Secret carries next to its encrypted values. */
export interface Envelope {
  version: number
  scope: Scope
  recipients: RecipientEntry[]
  mac: string
}

/** One data or stringData entry as the MAC sees it: its place and its token (null for a null value). */
export interface Slot {
  field: Field
  key: string
  token: string | null
}

/** Subkeys derived from a data key, so the AEAD key and the MAC key are never the same bytes. */
export interface DataKeys {
  readonly dataKey: Buffer
  readonly enc: Buffer
  readonly mac: Buffer
}

export function newDataKey(): Buffer {
  return crypto.randomBytes(DATA_KEY_BYTES)
}

export function deriveKeys(dataKey: Uint8Array): DataKeys {
  if (dataKey.length !== DATA_KEY_BYTES) throw new KsealError('ERR_DECRYPT', 'cannot decrypt: the data key has the wrong length')
  const dk = Buffer.from(dataKey)
  const derive = (info: string) => Buffer.from(crypto.hkdfSync('sha256', dk, Buffer.alloc(0), info, 32))
  return {dataKey: dk, enc: derive('kseal/v1 values'), mac: derive('kseal/v1 mac')}
}

/** The binding for a Secret at namespace/name under a scope: parts the scope does not bind are empty. */
export function bindingFor(scope: Scope, namespace: string, name: string): Binding {
  switch (scope) {
    case 'strict':
      return {scope, namespace, name}
    case 'namespace':
      return {scope, namespace, name: ''}
    case 'cluster':
      return {scope, namespace: '', name: ''}
  }
}

function aad(b: Binding, field: Field, key: string): Buffer {
  return Buffer.from(JSON.stringify(['kseal/v1 value', b.scope, b.namespace, b.name, field, key]), 'utf8')
}

const TOKEN_RE = /^kseal:v(\d+):([A-Za-z0-9_-]+)$/
const TOKEN_START_RE = /^\s*kseal:v\d+:/

/** True when a value string is (or claims to be) a kseal token; surrounding whitespace is ignored. */
export function looksLikeToken(value: string): boolean {
  return TOKEN_START_RE.test(value)
}

/** Encrypts one value: `kseal:v1:` + base64url(nonce ‖ ciphertext ‖ tag). Not valid base64, by design. */
export function encryptValue(keys: DataKeys, b: Binding, field: Field, key: string, plaintext: Uint8Array): string {
  const nonce = crypto.randomBytes(NONCE_BYTES)
  const cipher = crypto.createCipheriv('aes-256-gcm', keys.enc, nonce)
  cipher.setAAD(aad(b, field, key))
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return `kseal:v${FORMAT_VERSION}:` + Buffer.concat([nonce, ct, cipher.getAuthTag()]).toString('base64url')
}

/** Decrypts one token bound to its place; any mismatch or alteration is ERR_DECRYPT with one generic reason. */
export function decryptValue(keys: DataKeys, b: Binding, field: Field, key: string, token: string): Buffer {
  const m = TOKEN_RE.exec(token.trim())
  if (!m) throw new KsealError('ERR_INTEGRITY', 'not a valid kseal token (altered or truncated)')
  checkVersion(Number(m[1]))
  const raw = Buffer.from(m[2], 'base64url')
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw new KsealError('ERR_INTEGRITY', 'encrypted value is truncated')
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keys.enc, raw.subarray(0, NONCE_BYTES))
    decipher.setAAD(aad(b, field, key))
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES))
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()])
  } catch {
    throw new KsealError('ERR_INTEGRITY', 'cannot decrypt: the value was altered or moved here from another key or Secret')
  }
}

/**
 * The MAC over the whole Secret: every slot (field, key, token or null) sorted by field and key, so
 * removing, adding, renaming, duplicating or replaying a value changes it while reordering keys in
 * the file does not.
 */
export function computeMac(keys: DataKeys, b: Binding, slots: readonly Slot[]): string {
  const sorted = [...slots]
    .map((s) => [s.field, s.key, s.token === null ? null : s.token.trim()] as const)
    .sort((x, y) => (x[0] === y[0] ? cmp(x[1], y[1]) : cmp(x[0], y[0])))
  const h = crypto.createHmac('sha256', keys.mac)
  h.update(JSON.stringify(['kseal/v1 mac', b.scope, b.namespace, b.name, sorted]))
  return h.digest('base64')
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function verifyMac(keys: DataKeys, b: Binding, slots: readonly Slot[], mac: string): boolean {
  const want = Buffer.from(computeMac(keys, b, slots), 'base64')
  const got = Buffer.from(mac, 'base64')
  return got.length === want.length && crypto.timingSafeEqual(got, want)
}

function checkVersion(v: number): void {
  if (v !== FORMAT_VERSION) {
    throw new KsealError('ERR_VERSION', `unsupported kseal format version ${v} (this kseal reads version ${FORMAT_VERSION}; upgrade kseal)`)
  }
}

/** Validates the envelope metadata as read from a document (untrusted input). */
export function parseEnvelope(raw: unknown): Envelope {
  const bad = (what: string) => new KsealError('ERR_INTEGRITY', `malformed kseal envelope: ${what}`)
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a mapping')
  const o = raw as Record<string, unknown>
  if (typeof o.version !== 'number' || !Number.isInteger(o.version)) throw bad('missing version')
  checkVersion(o.version)
  if (typeof o.scope !== 'string' || !(SCOPES as readonly string[]).includes(o.scope)) throw bad('unknown scope')
  if (typeof o.mac !== 'string' || o.mac.length === 0) throw bad('missing mac')
  if (!Array.isArray(o.recipients) || o.recipients.length === 0) throw bad('no recipients')
  const recipients = o.recipients.map((r, i): RecipientEntry => {
    const e = r as Record<string, unknown>
    if (typeof e !== 'object' || e === null || typeof e.backend !== 'string' || typeof e.kid !== 'string' || typeof e.wrapped !== 'string') {
      throw bad(`recipient ${i + 1} needs backend, kid and wrapped`)
    }
    return {...(e as Record<string, string>), backend: e.backend, kid: e.kid, wrapped: e.wrapped}
  })
  return {version: o.version, scope: o.scope as Scope, recipients, mac: o.mac}
}

/** The envelope as a plain object in the order it is written to files. */
export function envelopeObject(e: Envelope): Record<string, unknown> {
  return {version: e.version, scope: e.scope, recipients: e.recipients.map((r) => ({...r})), mac: e.mac}
}
