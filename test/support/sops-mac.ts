/**
 * An independent check of a SOPS file's MAC, written from sops's documentation and source
 * (`sops.go` Tree.Decrypt and ToBytes, `aes/cipher.go`) for tests only. It shares no code with
 * kseal's reader (src/formats/sops): it reads the YAML or JSON with the `yaml` package's ordinary
 * JSON view, decrypts with node:crypto, and hashes as the sops docs describe —
 *
 *   "the MAC is computed over all values in the tree (a SHA-512 of the values, in order), and
 *    stored encrypted with the data key and `lastmodified` as additional data";
 *   values are hashed as their text (`True`/`False` for booleans), nulls and comments are skipped,
 *   `mac_only_encrypted` hashes only encrypted values after sha256("sops").
 *
 * Supported: YAML or JSON, one document, unencrypted_suffix (default `_unencrypted`),
 * encrypted_regex, mac_only_encrypted; unencrypted values that are strings, booleans or integers.
 */
import crypto from 'node:crypto'
import {parse} from 'yaml'

const ENC = /^ENC\[AES256_GCM,data:([^,]*),iv:([^,]+),tag:([^,]+),type:(\w+)\]$/

function gcmOpen(key: Buffer, value: string, aad: string): {text: string; type: string} {
  const m = ENC.exec(value)
  if (!m) throw new Error(`not an encrypted value: ${value.slice(0, 30)}`)
  const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(m[2], 'base64'))
  d.setAAD(Buffer.from(aad))
  d.setAuthTag(Buffer.from(m[3], 'base64'))
  return {text: Buffer.concat([d.update(Buffer.from(m[1], 'base64')), d.final()]).toString('utf8'), type: m[4]}
}

export interface MacCheck {
  ok: boolean
  /** The decrypted tree without its sops entry. */
  plain: unknown
}

/** Recomputes the MAC of `text` with `dataKey` and compares it with the stored one. */
export function checkSopsMac(text: string, dataKey: Buffer): MacCheck {
  const tree = parse(text) as Record<string, unknown>
  const sops = tree.sops as Record<string, unknown>
  const suffix = (sops.unencrypted_suffix as string | undefined) ?? (sops.encrypted_regex ? undefined : '_unencrypted')
  const regex = sops.encrypted_regex ? new RegExp(sops.encrypted_regex as string) : undefined
  const macOnly = sops.mac_only_encrypted === true
  const hash = crypto.createHash('sha512')
  if (macOnly) hash.update(crypto.createHash('sha256').update('sops').digest())
  const isEncrypted = (path: string[]) => (regex ? path.some((p) => regex.test(p)) : !path.some((p) => p.endsWith(suffix!)))

  const walk = (v: unknown, path: string[]): unknown => {
    if (v === null || v === undefined) return v
    if (Array.isArray(v)) return v.map((x) => walk(x, path))
    if (typeof v === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (path.length === 0 && k === 'sops') continue
        out[k] = walk(x, [...path, k])
      }
      return out
    }
    const encrypted = isEncrypted(path)
    if (encrypted && typeof v === 'string' && v !== '') {
      const {text: t, type} = gcmOpen(dataKey, v, path.join(':') + ':')
      hash.update(type === 'bool' ? (t === 'True' || t === 'true' ? 'True' : 'False') : t)
      return type === 'str' ? t : type === 'bool' ? t === 'True' : Number(t)
    }
    if (!encrypted && macOnly) return v
    hash.update(typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v))
    return v
  }
  const plain = walk(tree, [])
  const stored = gcmOpen(dataKey, sops.mac as string, sops.lastmodified as string).text
  return {ok: stored === hash.digest('hex').toUpperCase(), plain}
}
