/**
 * kubesec's format (shyiko/kubesec `cmd/encrypt.go`, `cmd/decrypt.go`, `crypto/aes/cipher.go`),
 * versions 3 and 4: a Secret whose `data` and `stringData` values are each
 * `base64(ciphertext).base64(iv).base64(tag)` — AES-256-GCM under a 32-byte data key (the DEK),
 * a 12-byte IV, the value's key name as additional data, the plaintext padded with NULs to a
 * multiple of 48 bytes — followed by footer comment lines:
 *
 *   # kubesec:v:3
 *   # kubesec:pgp:<fingerprint>:<base64 of an armored, signed and encrypted OpenPGP message of the DEK>
 *   # kubesec:aws:<KMS key ARN>:<base64 KMS ciphertext of the DEK>
 *   # kubesec:gcp:<projects/…/cryptoKeys/…>:<base64 Cloud KMS ciphertext of the DEK>
 *   # kubesec:mac:<base64(iv).base64(tag)>
 *
 * The MAC is AES-GCM with no plaintext (a GMAC) over the concatenation of every data key and its
 * value (sorted by key), then every stringData key and value, then the key ids in kubesec's order.
 * Versions 1 and 2 carry no MAC and are refused, as kubesec itself refuses them.
 */
import crypto from 'node:crypto'
import {KsealError} from '../../core/errors.js'

export const FOOTER_PREFIX = '# kubesec:'
const IV_BYTES = 12
const TAG_BYTES = 16
const MAX_KEYS = 11
const MAX_DEK_BYTES = 16 * 1024

export type KubesecKeyType = 'pgp' | 'gcp' | 'aws'

export interface KubesecKey {
  type: KubesecKeyType
  /** A PGP fingerprint, a KMS key ARN, a GCP key resource id. */
  id: string
  /** The wrapped data key (for PGP: the armored message's bytes). */
  dek: Buffer
}

export interface Footer {
  version: number
  keys: KubesecKey[]
  mac: string
  /** Source ranges of the footer lines (each with its line break). */
  lines: [number, number][]
}

const malformed = (what: string) => new KsealError('ERR_INTEGRITY', `malformed kubesec footer: ${what}`)

function strictBase64(s: string, what: string): Buffer {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) throw malformed(`${what} is not base64`)
  return Buffer.from(s, 'base64')
}

/**
 * The footer in a document's text (`start`..`end`), or null when it has none. Lines are read as
 * kubesec reads them (`# kubesec:<kind>:<fields>` split on `:`); duplicates and unknown kinds are refused.
 */
export function parseFooter(text: string, start: number, end: number): Footer | null {
  let version: number | undefined
  let mac: string | undefined
  const keys: KubesecKey[] = []
  const lines: [number, number][] = []
  for (let at = start; at < end;) {
    const nl = text.indexOf('\n', at)
    const lineEnd = nl === -1 || nl >= end ? end : nl + 1
    const line = text.slice(at, lineEnd).replace(/\r?\n$/, '')
    if (line.startsWith(FOOTER_PREFIX)) {
      lines.push([at, lineEnd])
      const n = lines.length
      const split = line.slice(FOOTER_PREFIX.length).split(':')
      if (split.length < 2) throw malformed(`footer line ${n} has no value`)
      const [kind, ...args] = split
      switch (kind) {
        case 'v':
          if (version !== undefined) throw malformed('two version lines')
          if (!/^[1-4]$/.test(args[0]) || args.length !== 1) {
            throw new KsealError(
              'ERR_VERSION',
              `unsupported kubesec format version ${JSON.stringify(args.join(':').slice(0, 20))} (kseal reads kubesec 3 and 4)`,
            )
          }
          version = Number(args[0])
          break
        case 'mac':
          if (mac !== undefined) throw malformed('two mac lines')
          if (args.length !== 1) throw malformed('the mac line has extra fields')
          mac = args[0]
          break
        case 'pgp':
        case 'gcp':
        case 'aws': {
          if (keys.length >= MAX_KEYS) throw malformed(`more than ${MAX_KEYS} keys`)
          if (kind === 'pgp' ? args.length !== 2 : args.length < 2)
            throw malformed(`the ${kind} key on footer line ${n} has the wrong number of fields`)
          const id = args.slice(0, -1).join(':')
          const encoded = args[args.length - 1]
          if (encoded.length > MAX_DEK_BYTES || id.length === 0 || id.length > 1024)
            throw malformed(`the ${kind} key on footer line ${n} is malformed`)
          keys.push({type: kind, id, dek: strictBase64(encoded, `the ${kind} key ${id}'s data key`)})
          break
        }
        default:
          throw malformed(`unknown footer line ${n} (${JSON.stringify(kind.slice(0, 20))})`)
      }
    }
    at = lineEnd
  }
  if (lines.length === 0) return null
  if (version === undefined) throw malformed('no version line (# kubesec:v:N)')
  if (version < 3)
    throw new KsealError(
      'ERR_VERSION',
      `kubesec format version ${version} carries no MAC, so kseal cannot check it; re-encrypt it with a current kubesec (kubesec edit -i --recompute-mac) first`,
    )
  if (mac === undefined) throw new KsealError('ERR_INTEGRITY', 'kubesec MAC is missing')
  if (keys.length === 0) throw malformed('no keys')
  return {version, keys, mac, lines}
}

/** An encrypted value or MAC: `data.iv.tag`, or `iv.tag` when there is no ciphertext. */
function parseCiphertext(s: string, what: string): {data: Buffer; iv: Buffer; tag: Buffer} {
  const chunks = s.split('.')
  if (chunks.length === 2) chunks.unshift('')
  if (chunks.length !== 3) throw new KsealError('ERR_INTEGRITY', `malformed kubesec ${what}`)
  const [data, iv, tag] = chunks.map((c) => strictBase64(c, what))
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new KsealError('ERR_INTEGRITY', `malformed kubesec ${what}`)
  return {data, iv, tag}
}

/** Whether a value has kubesec's ciphertext form (`<data>.<iv>.<tag>`, or `<iv>.<tag>` for an empty value). */
export function isKubesecCiphertext(s: string): boolean {
  try {
    parseCiphertext(s, 'value')
    return true
  } catch {
    return false
  }
}

function gcmOpen(dek: Buffer, v: {data: Buffer; iv: Buffer; tag: Buffer}, aad: Buffer): Buffer | null {
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', dek, v.iv)
    d.setAAD(aad)
    d.setAuthTag(v.tag)
    return Buffer.concat([d.update(v.data), d.final()])
  } catch {
    return null
  }
}

/** Decrypts one value (AAD: its key name) and strips kubesec's NUL padding. */
export function decryptValue(dek: Buffer, key: string, value: string): string {
  const plain = gcmOpen(dek, parseCiphertext(value, 'value'), Buffer.from(key, 'utf8'))
  if (!plain) throw new KsealError('ERR_INTEGRITY', 'cannot decrypt: the value was altered, or moved here from another key')
  const nul = plain.indexOf(0)
  const text = plain.subarray(0, nul === -1 ? plain.length : nul)
  try {
    return new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(text)
  } catch {
    throw new KsealError('ERR_INTEGRITY', 'a kubesec value decrypts to bytes that are not UTF-8 text')
  }
}

const TYPE_ORDER: Record<KubesecKeyType, number> = {pgp: 0, gcp: 1, aws: 2}

/**
 * kubesec's key order for the MAC: Go's insertion sort (what sort.Sort does for so few elements)
 * with kubesec's `Less`, which is `type < type && id < id` — not a strict order, so it must be
 * reproduced step by step rather than by a sort of our own.
 */
export function macKeyOrder(keys: readonly KubesecKey[]): KubesecKey[] {
  const out = [...keys]
  const less = (a: KubesecKey, b: KubesecKey) => TYPE_ORDER[a.type] < TYPE_ORDER[b.type] && a.id < b.id
  for (let i = 1; i < out.length; i++) {
    for (let j = i; j > 0 && less(out[j], out[j - 1]); j--) [out[j], out[j - 1]] = [out[j - 1], out[j]]
  }
  return out
}

/** Go's sort.Strings order: byte-wise over UTF-8. */
function goStringSort(keys: string[]): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
}

/** The bytes kubesec authenticates: data keys and values, stringData keys and values, key ids. */
export function macAad(data: Map<string, string>, stringData: Map<string, string>, keys: readonly KubesecKey[]): Buffer {
  const parts: string[] = []
  for (const m of [data, stringData]) for (const k of goStringSort([...m.keys()])) parts.push(k, m.get(k)!)
  for (const k of macKeyOrder(keys)) parts.push(k.id)
  return Buffer.from(parts.join(''), 'utf8')
}

export function macMatches(dek: Buffer, mac: string, aad: Buffer): boolean {
  const v = parseCiphertext(mac, 'MAC')
  return v.data.length === 0 && gcmOpen(dek, v, aad) !== null
}
