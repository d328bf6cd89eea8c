/**
 * SOPS's MAC: SHA-512 over the Go bytes of every value in document order (every value, or with
 * `mac_only_encrypted` only the encrypted ones, after a fixed 32-byte prefix), written as upper-case
 * hex and stored encrypted under the data key with `lastmodified` (Go's RFC 3339 round trip) as the
 * additional data. Null values and comments are not hashed. The MAC covers values and their order,
 * not key names: sops binds a value to its key through the value's AAD instead.
 */
import crypto from 'node:crypto'
import {decryptEnc, encryptEnc, parseEnc} from './cipher.js'

/** sha256("sops"): sops starts a `mac_only_encrypted` hash with it, so the two kinds of MAC never collide. */
export const MAC_ONLY_ENCRYPTED_INIT = Buffer.from('8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69', 'hex')

export class MacHash {
  private readonly h = crypto.createHash('sha512')

  constructor(readonly macOnlyEncrypted: boolean) {
    if (macOnlyEncrypted) this.h.update(MAC_ONLY_ENCRYPTED_INIT)
  }

  /** Adds a value's bytes; an unencrypted value counts only without `mac_only_encrypted`. */
  add(bytes: Buffer, encrypted: boolean): void {
    if (encrypted || !this.macOnlyEncrypted) this.h.update(bytes)
  }

  hex(): string {
    return this.h.digest('hex').toUpperCase()
  }
}

/** The encrypted MAC, as stored in `sops.mac`. */
export function encryptMac(dataKey: Buffer, hex: string, macAad: string, iv?: Buffer): string {
  return encryptEnc(dataKey, Buffer.from(hex, 'ascii'), macAad, 'str', iv)
}

/** True when the stored MAC opens under the data key and `lastmodified` and equals `hex`. */
export function macMatches(dataKey: Buffer, stored: string, macAad: string, hex: string): boolean {
  const parsed = parseEnc(stored)
  const plain = parsed && parsed.type === 'str' ? decryptEnc(dataKey, parsed, macAad) : null
  const want = Buffer.from(hex, 'ascii')
  return plain !== null && plain.length === want.length && crypto.timingSafeEqual(plain, want)
}
