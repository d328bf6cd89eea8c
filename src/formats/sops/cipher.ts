/**
 * SOPS's encrypted values: `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>]`, AES-256-GCM
 * under the file's 32-byte data key with a 32-byte IV, the additional data being the value's path
 * (map keys joined with `:`, plus a trailing `:`). The plaintext is the value's Go text (go.ts's
 * goBytes); `type` says how to read it back. Parsing is strict: only what sops writes is accepted.
 */
import crypto from 'node:crypto'
import {KsealError} from '../../core/errors.js'
import {type GoScalar, goBytes, parseDecimalInt, parseGoBool, parseGoFloat} from './go.js'

export const SOPS_TYPES = ['str', 'int', 'int64', 'float', 'bool', 'bytes', 'comment'] as const
export type SopsType = (typeof SOPS_TYPES)[number]

export const IV_BYTES = 32
const TAG_BYTES = 16
export const DATA_KEY_BYTES = 32

export interface EncValue {
  data: Buffer
  iv: Buffer
  tag: Buffer
  type: SopsType
}

const B64 = '(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?'
const ENC_RE = new RegExp(`^ENC\\[AES256_GCM,data:(${B64}),iv:(${B64}),tag:(${B64}),type:(${SOPS_TYPES.join('|')})\\]$`)

/** True when a string is meant as a SOPS encrypted value (well-formed or not). */
export function looksEncrypted(s: string): boolean {
  return s.startsWith('ENC[')
}

/** The parts of an encrypted value, or null when it is not one sops could have written. */
export function parseEnc(s: string): EncValue | null {
  const m = ENC_RE.exec(s)
  if (!m) return null
  const iv = Buffer.from(m[2], 'base64')
  const tag = Buffer.from(m[3], 'base64')
  // sops writes 32-byte IVs; a 12-byte one (GCM's usual size) is accepted as Go's GCM would.
  if ((iv.length !== IV_BYTES && iv.length !== 12) || tag.length !== TAG_BYTES) return null
  return {data: Buffer.from(m[1], 'base64'), iv, tag, type: m[4] as SopsType}
}

export function formatEnc(v: EncValue): string {
  return `ENC[AES256_GCM,data:${v.data.toString('base64')},iv:${v.iv.toString('base64')},tag:${v.tag.toString('base64')},type:${v.type}]`
}

/** The additional data for a value at `path` (map keys only; list positions do not count). */
export function pathAad(path: readonly string[]): string {
  return path.join(':') + ':'
}

/** Encrypts plaintext bytes; `iv` is fresh unless a caller reuses one for an unchanged value. */
export function encryptEnc(key: Buffer, plaintext: Buffer, aad: string, type: SopsType, iv: Buffer = crypto.randomBytes(IV_BYTES)): string {
  const c = crypto.createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(Buffer.from(aad, 'utf8'))
  const data = Buffer.concat([c.update(plaintext), c.final()])
  return formatEnc({data, iv, tag: c.getAuthTag(), type})
}

/** Decrypts an encrypted value; null when the tag does not verify (altered, moved, or another key). */
export function decryptEnc(key: Buffer, v: EncValue, aad: string): Buffer | null {
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, v.iv)
    d.setAAD(Buffer.from(aad, 'utf8'))
    d.setAuthTag(v.tag)
    return Buffer.concat([d.update(v.data), d.final()])
  } catch {
    return null
  }
}

/** A value sops can encrypt, with its type. */
export type TypedValue = Exclude<GoScalar, {type: 'null'} | {type: 'uint'}>

/** Encrypts a typed value at `aad` the way sops's Cipher.Encrypt does. Empty strings and bytes are not encrypted (sops leaves them empty). */
export function encryptTyped(key: Buffer, v: TypedValue, aad: string, iv?: Buffer): string {
  if ((v.type === 'str' && v.value === '') || (v.type === 'bytes' && v.value.length === 0)) return ''
  return encryptEnc(key, goBytes(v), aad, v.type, iv)
}

/**
 * Reads decrypted bytes as their recorded type, as sops's Cipher.Decrypt does (Atoi, ParseFloat,
 * ParseBool); throws when they do not parse, which sops could not have written.
 */
export function typedValue(type: Exclude<SopsType, 'comment'>, plain: Buffer): TypedValue {
  const text = plain.toString('utf8')
  const bad = () => new KsealError('ERR_INTEGRITY', `malformed SOPS value: its plaintext is not a valid ${type}`)
  switch (type) {
    case 'str':
      return {type: 'str', value: utf8(plain)}
    case 'bytes':
      return {type: 'bytes', value: plain}
    case 'int':
    case 'int64': {
      const v = parseDecimalInt(text)
      if (v === null) throw bad()
      return {type: 'int', value: v}
    }
    case 'float': {
      const v = parseGoFloat(text)
      if (v === null) throw bad()
      return {type: 'float', value: v}
    }
    case 'bool': {
      const v = parseGoBool(text)
      if (v === null) throw bad()
      return {type: 'bool', value: v}
    }
  }
}

/** UTF-8 text, refused when the bytes are not valid UTF-8 (a Go string may hold any bytes; YAML and JSON cannot). */
export function utf8(b: Buffer): string {
  try {
    return new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(b)
  } catch {
    throw new KsealError('ERR_INPUT', 'a SOPS value decrypts to bytes that are not valid UTF-8 text')
  }
}
