/**
 * A kubesec encrypter for tests, built from kubesec's documented algorithm and source
 * (shyiko/kubesec `cmd/encrypt.go`: EncryptWithContext, computeMAC, marshalWithEncryptionContext;
 * `crypto/aes/cipher.go`; `gpg/gpg.go` EncryptAndSign). kubesec ships no decryptable files, so
 * kseal's kubesec fixtures are BUILT with this, not captured from kubesec. It shares no code with
 * kseal's reader (src/formats/kubesec).
 *
 * - values padded with NULs to a multiple of 48 bytes, AES-256-GCM with a 12-byte IV, the key name
 *   as additional data, written `b64(ct).b64(iv).b64(tag)` (a leading `.` trimmed when ct is empty);
 * - the MAC: the same cipher over an empty plaintext with additional data = data keys+values
 *   (sorted), stringData keys+values (sorted), key ids (kubesec's order), written `b64(iv).b64(tag)`;
 * - the footer: `# kubesec:v:3` (4 when there is stringData), one line per key, the MAC line.
 */
import crypto from 'node:crypto'
import {stringify} from 'yaml'

export interface GenKey {
  type: 'pgp' | 'gcp' | 'aws'
  id: string
  /** Wraps the data key as that key's kind does (gpg --sign -a -e, KMS Encrypt, …). */
  wrap(dek: Buffer): Buffer
}

const TYPE = {pgp: 0, gcp: 1, aws: 2}

function seal(dek: Buffer, plaintext: string, aad: string): string {
  const iv = crypto.randomBytes(12)
  const c = crypto.createCipheriv('aes-256-gcm', dek, iv)
  c.setAAD(Buffer.from(aad, 'utf8'))
  const ct = Buffer.concat([c.update(Buffer.from(plaintext, 'utf8')), c.final()])
  return [ct.toString('base64'), iv.toString('base64'), c.getAuthTag().toString('base64')].join('.').replace(/^\./, '')
}

/** Go's sort.Sort on kubesec's Keys (insertion sort for so few), with its Less. */
function kubesecSort(keys: GenKey[]): GenKey[] {
  const a = [...keys]
  for (let i = 1; i < a.length; i++) {
    for (let j = i; j > 0 && TYPE[a[j].type] < TYPE[a[j - 1].type] && a[j].id < a[j - 1].id; j--) [a[j], a[j - 1]] = [a[j - 1], a[j]]
  }
  return a
}

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

/** A kubesec-encrypted Secret (YAML, as kubesec's go-yaml v2 would lay it out: keys sorted). */
export function kubesecEncrypt(
  secret: {data?: Record<string, string>; stringData?: Record<string, string>; [k: string]: unknown},
  dek: Buffer,
  keys: GenKey[],
): string {
  const sorted = kubesecSort(keys)
  let aad = ''
  for (const m of [secret.data ?? {}, secret.stringData ?? {}]) for (const k of Object.keys(m).sort(utf8Order)) aad += k + m[k]
  for (const k of sorted) aad += k.id
  const mac = seal(dek, '', aad)
  const enc = (m?: Record<string, string>) =>
    m &&
    Object.fromEntries(
      Object.entries(m).map(([k, v]) => {
        const mod = Buffer.byteLength(v) % 48 // Go's len(): bytes
        return [k, seal(dek, v + '\u0000'.repeat(mod ? 48 - mod : 0), k)]
      }),
    )
  const body = stringify(
    {...secret, ...(secret.data ? {data: enc(secret.data)} : {}), ...(secret.stringData ? {stringData: enc(secret.stringData)} : {})},
    {sortMapEntries: true, lineWidth: 0},
  )
  const version = Object.keys(secret.stringData ?? {}).length ? 4 : 3
  const footer = [
    `# kubesec:v:${version}`,
    ...sorted.map((k) => `# kubesec:${k.type}:${k.id}:${k.wrap(dek).toString('base64')}`),
    `# kubesec:mac:${mac}`,
  ]
  return body + footer.join('\n') + '\n'
}

/** The plaintext of test/fixtures/kubesec/secret-v3.kubesec.yaml. */
export const secretV3 = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {name: 'db', namespace: 'prod'},
  type: 'Opaque',
  data: {password: Buffer.from('s3cr3t-password').toString('base64'), token: Buffer.from('a'.repeat(70)).toString('base64')},
}
/** The plaintext of test/fixtures/kubesec/secret-v4.kubesec.yaml. */
export const secretV4 = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {name: 'app', namespace: 'web'},
  data: {'tls.key': Buffer.from('key bytes \u0001\u00ff').toString('base64')},
  stringData: {user: 'admin', note: 'héllo wörld ✓ — a note longer than one 48-byte block of padding'},
}
