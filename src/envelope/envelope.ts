/**
 * The kseal envelope (spec: docs/FORMAT.md). Format 2 is written; format 1 is still read. This
 * module is all the crypto that touches values: data keys, per-value AES-256-GCM, the whole-Secret
 * MAC, and the wire forms of tokens and envelope metadata. It knows nothing about YAML or backends.
 *
 * Format 2 differs from 1 in what the MAC covers (also every recipient entry and the identity the
 * Secret was encrypted as), in recording that identity (a namespace may be left open), and in using
 * its own domain string everywhere (HKDF info, AAD, MAC, binding label, token prefix), so no piece
 * of one format can be mixed into the other and a Secret cannot be downgraded by editing `version`.
 */
import crypto from 'node:crypto'
import {KsealError} from '../core/errors.js'
import type {RecipientEntry} from '../../keys/types.js'
import {type Binding, type EncryptedAs, type Scope, SCOPES} from './binding.js'

/** The format this kseal writes. */
export const FORMAT_VERSION = 2
/** Every format this kseal reads. */
export const READ_VERSIONS: readonly Version[] = [1, 2]
export type Version = 1 | 2
export const DATA_KEY_BYTES = 32
/** At most this many recipient entries in one envelope: each one may cost a key operation. */
export const MAX_RECIPIENTS = 64
const NONCE_BYTES = 12
const TAG_BYTES = 16

export type Field = 'data' | 'stringData'

/** The metadata a Secret carries next to its encrypted values. */
export interface Envelope {
  version: Version
  scope: Scope
  /**
   * Format 2: the identity the Secret was encrypted as, per scope. `namespace` null: not bound (left
   * open, or the scope does not bind it); `name` null: the scope does not bind it. Format 1 records
   * none (its binding is read from the manifest).
   */
  encryptedAs?: EncryptedAs
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
  readonly version: Version
  readonly dataKey: Buffer
  readonly enc: Buffer
  readonly mac: Buffer
}

export function newDataKey(): Buffer {
  return crypto.randomBytes(DATA_KEY_BYTES)
}

/** The format a binding belongs to (format 1 unless it says 2). */
export const formatOf = (b: Binding): Version => (b.format === 2 ? 2 : 1)

export function deriveKeys(dataKey: Uint8Array, version: Version): DataKeys {
  if (dataKey.length !== DATA_KEY_BYTES) throw new KsealError('ERR_DECRYPT', 'cannot decrypt: the data key has the wrong length')
  const dk = Buffer.from(dataKey)
  const prk = hkdfExtract(dk)
  return {version, dataKey: dk, enc: hkdfExpand32(prk, `kseal/v${version} values`), mac: hkdfExpand32(prk, `kseal/v${version} mac`)}
}

/**
 * HKDF-SHA256 (RFC 5869) as two HMACs, with an empty salt (HashLen zero bytes) and 32 bytes out (one
 * block): the bytes of crypto.hkdfSync('sha256', ikm, '', info, 32), which spent about 35 µs a call
 * here setting up key objects — the largest cost of a bulk decrypt's main thread after the scan.
 * The pseudorandom key is extracted once for both derived keys. test/vectors.test.ts holds it to
 * hkdfSync over generated inputs.
 */
export function hkdfExtract(ikm: Uint8Array): Buffer {
  return crypto.createHmac('sha256', ZERO_SALT).update(ikm).digest()
}
export function hkdfExpand32(prk: Buffer, info: string): Buffer {
  return crypto.createHmac('sha256', prk).update(info, 'utf8').update(BLOCK_1).digest()
}
const ZERO_SALT = Buffer.alloc(32)
const BLOCK_1 = Buffer.from([1])

function aad(b: Binding, field: Field, key: string): Buffer {
  return Buffer.from(JSON.stringify([`kseal/v${formatOf(b)} value`, b.scope, b.namespace, b.name, field, key]), 'utf8')
}

const TOKEN_RE = /^kseal:v(\d+):([A-Za-z0-9_-]+)$/
const TOKEN_START_RE = /^\s*kseal:v\d+:/

/** True when a value string is (or claims to be) a kseal token; surrounding whitespace is ignored. */
export function looksLikeToken(value: string): boolean {
  return TOKEN_START_RE.test(value)
}

/** Encrypts one value: `kseal:vN:` + base64url(nonce ‖ ciphertext ‖ tag). Not valid base64, by design. */
export function encryptValue(keys: DataKeys, b: Binding, field: Field, key: string, plaintext: Uint8Array): string {
  checkSameFormat(keys, b)
  const nonce = crypto.randomBytes(NONCE_BYTES)
  const cipher = crypto.createCipheriv('aes-256-gcm', keys.enc, nonce)
  cipher.setAAD(aad(b, field, key))
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return `kseal:v${keys.version}:` + Buffer.concat([nonce, ct, cipher.getAuthTag()]).toString('base64url')
}

/** Decrypts one token bound to its place; any mismatch or alteration is ERR_INTEGRITY with one generic reason. */
export function decryptValue(keys: DataKeys, b: Binding, field: Field, key: string, token: string): Buffer {
  checkSameFormat(keys, b)
  const m = TOKEN_RE.exec(token.trim())
  if (!m) throw new KsealError('ERR_INTEGRITY', 'not a valid kseal token (altered or truncated)')
  const v = Number(m[1])
  checkVersion(v)
  if (v !== keys.version) {
    throw new KsealError(
      'ERR_INTEGRITY',
      `is a format ${v} token in a format ${keys.version} envelope: values cannot be mixed between formats`,
    )
  }
  const raw = Buffer.from(m[2], 'base64url')
  if (raw.length < NONCE_BYTES + TAG_BYTES) throw new KsealError('ERR_INTEGRITY', 'encrypted value is truncated')
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keys.enc, raw.subarray(0, NONCE_BYTES))
    decipher.setAAD(aad(b, field, key))
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES))
    const plain = decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES))
    // GCM's final() checks the tag and gives no more bytes: no copy into a new Buffer.
    const rest = decipher.final()
    return rest.length ? Buffer.concat([plain, rest]) : plain
  } catch {
    throw new KsealError('ERR_INTEGRITY', 'cannot decrypt: the value was altered or moved here from another key or Secret')
  }
}

function checkSameFormat(keys: DataKeys, b: Binding): void {
  if (keys.version !== formatOf(b)) throw new Error(`internal: format ${keys.version} keys with a format ${formatOf(b)} binding`)
}

/**
 * One recipient entry in canonical form: all its fields (every one, known or not) as [name, value]
 * pairs sorted by name. Format 2's MAC covers the sorted list of these, so an entry added, removed or
 * altered in any field is detected while the order of entries in the file is not significant.
 */
export function canonicalRecipients(entries: readonly RecipientEntry[]): string[][][] {
  const one = (e: RecipientEntry) =>
    Object.keys(e)
      .sort(cmp)
      .map((k) => [k, String((e as unknown as Record<string, unknown>)[k])])
  return entries.map(one).sort((a, b) => cmp(JSON.stringify(a), JSON.stringify(b)))
}

/**
 * The MAC over the whole Secret: every slot (field, key, token or null) sorted by field and key, so
 * removing, adding, renaming, duplicating or replaying a value changes it while reordering keys in
 * the file does not. Format 2 also covers every recipient entry (canonical, sorted) and, through the
 * binding, the identity the Secret was encrypted as.
 */
export function computeMac(keys: DataKeys, b: Binding, slots: readonly Slot[], recipients: readonly RecipientEntry[]): string {
  checkSameFormat(keys, b)
  const sorted = [...slots]
    .map((s) => [s.field, s.key, s.token === null ? null : s.token.trim()] as const)
    .sort((x, y) => (x[0] === y[0] ? cmp(x[1], y[1]) : cmp(x[0], y[0])))
  const body =
    keys.version === 2
      ? ['kseal/v2 mac', b.scope, b.namespace, b.name, canonicalRecipients(recipients), sorted]
      : ['kseal/v1 mac', b.scope, b.namespace, b.name, sorted]
  return crypto.createHmac('sha256', keys.mac).update(JSON.stringify(body)).digest('base64')
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function verifyMac(keys: DataKeys, b: Binding, slots: readonly Slot[], mac: string, recipients: readonly RecipientEntry[]): boolean {
  return macEqual(computeMac(keys, b, slots, recipients), mac)
}

/** Compares two base64 MACs in constant time; an empty or malformed one never matches. */
export function macEqual(want: string, got: string): boolean {
  const w = Buffer.from(want, 'base64')
  const g = Buffer.from(got, 'base64')
  return g.length === w.length && w.length > 0 && crypto.timingSafeEqual(g, w)
}

export function checkVersion(v: number): asserts v is Version {
  if (!(READ_VERSIONS as readonly number[]).includes(v)) {
    throw new KsealError(
      'ERR_VERSION',
      `unsupported kseal format version ${v} (this kseal reads versions ${READ_VERSIONS.join(' and ')}; upgrade kseal)`,
    )
  }
}

const bad = (what: string) => new KsealError('ERR_INTEGRITY', `malformed kseal envelope: ${what}`)

/** Validates recipient entries (untrusted): each a mapping of strings with backend, kid and wrapped; at most MAX_RECIPIENTS. */
export function parseRecipients(raw: unknown): RecipientEntry[] {
  if (!Array.isArray(raw) || raw.length === 0) throw bad('no recipients')
  if (raw.length > MAX_RECIPIENTS) throw bad(`${raw.length} recipients (at most ${MAX_RECIPIENTS})`)
  return raw.map((r, i): RecipientEntry => {
    const e = r as Record<string, unknown>
    if (
      typeof e !== 'object' ||
      e === null ||
      Array.isArray(e) ||
      typeof e.backend !== 'string' ||
      typeof e.kid !== 'string' ||
      typeof e.wrapped !== 'string'
    ) {
      throw bad(`recipient ${i + 1} needs backend, kid and wrapped`)
    }
    const out = Object.create(null) as Record<string, string>
    for (const [k, v] of Object.entries(e)) {
      if (typeof v !== 'string') throw bad(`recipient ${i + 1}: ${JSON.stringify(k)} is not a string`)
      out[k] = v
    }
    return out as unknown as RecipientEntry
  })
}

/** Validates the envelope metadata as read from a document (untrusted input). */
export function parseEnvelope(raw: unknown): Envelope {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a mapping')
  const o = raw as Record<string, unknown>
  if (typeof o.version !== 'number' || !Number.isInteger(o.version)) throw bad('missing version')
  checkVersion(o.version)
  if (typeof o.scope !== 'string' || !(SCOPES as readonly string[]).includes(o.scope)) throw bad('unknown scope')
  const scope = o.scope as Scope
  if (typeof o.mac !== 'string' || o.mac.length === 0) throw bad('missing mac')
  const recipients = parseRecipients(o.recipients)
  if (o.version === 1) return {version: 1, scope, recipients, mac: o.mac}
  return {version: 2, scope, encryptedAs: parseEncryptedAs(o, scope), recipients, mac: o.mac}
}

/**
 * Format 2's identity fields, checked against the scope: strict has `name`; strict and namespace
 * have either `namespace` or `openNamespace: true`; cluster has none of them.
 */
function parseEncryptedAs(o: Record<string, unknown>, scope: Scope): EncryptedAs {
  const str = (v: unknown) => typeof v === 'string' && v !== ''
  if (scope === 'cluster') {
    if (o.namespace !== undefined || o.name !== undefined || o.openNamespace !== undefined)
      throw bad('cluster scope records no namespace or name')
    return {namespace: null, name: null}
  }
  const open = o.openNamespace === true
  if (o.openNamespace !== undefined && !open) throw bad('openNamespace must be true when present')
  if (open === (o.namespace !== undefined)) throw bad(`${scope} scope records either namespace or openNamespace: true`)
  if (!open && !str(o.namespace)) throw bad('namespace must be a non-empty string')
  if (scope === 'strict' && !str(o.name)) throw bad('strict scope records the name')
  if (scope === 'namespace' && o.name !== undefined) throw bad('namespace scope records no name')
  return {namespace: open ? null : (o.namespace as string), name: scope === 'strict' ? (o.name as string) : null}
}

/** The envelope as a plain object in the order it is written to files. */
export function envelopeObject(e: Envelope): Record<string, unknown> {
  const out: Record<string, unknown> = {version: e.version, scope: e.scope}
  if (e.version === 2 && e.scope !== 'cluster') {
    const as = e.encryptedAs!
    if (as.namespace === null) out.openNamespace = true
    else out.namespace = as.namespace
    if (e.scope === 'strict') out.name = as.name
  }
  out.recipients = e.recipients.map((r) => ({...r}))
  out.mac = e.mac
  return out
}
