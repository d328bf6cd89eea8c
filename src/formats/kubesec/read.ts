/**
 * Reading kubesec files: each Secret document whose text carries a `# kubesec:` footer is opened
 * as kubesec does — the data key from the first footer key the user holds (PGP through gpg, with
 * a valid signature required as kubesec requires it; AWS KMS with no EncryptionContext; GCP KMS
 * through a caller-supplied unwrap), every value decrypted, the MAC verified — and the plaintext
 * is written back in place with the footer removed. The YAML is read as kubesec's go-yaml v2 and
 * kubectl read it (YAML 1.1: src/manifest/parse.ts).
 *
 * What kubesec does not protect, and kseal cannot add: a value is bound only to its key name (not
 * to the field, the Secret or its namespace), the MAC concatenates keys and values without
 * separators, and a Secret's metadata is not covered at all.
 */
import type {Document} from 'yaml'
import {applyEdits, type Edit, valueEdit} from '../../manifest/edits.js'
import {KsealError, type Where} from '../../core/errors.js'
import {parseManifests, type SecretDoc, type SecretValue} from '../../manifest/parse.js'
import {normalizePgpId, pgpDecrypt, type SopsMasterKeys} from '../sops/masterkeys.js'
export {looksLikeKubesec} from '../detect.js'
import {decryptValue, type Footer, type KubesecKey, macAad, macMatches, parseFooter} from './format.js'

export interface KubesecDoc {
  secret: SecretDoc
  footer: Footer
}

export interface KubesecFile {
  text: string
  file?: string
  eol: string
  /** The Secrets that carry a kubesec footer. */
  secrets: KubesecDoc[]
}

export interface KubesecValue {
  value: SecretValue
  /** The decrypted text: base64 for `data` (as kubesec stores it), the string for `stringData`. */
  plaintext: string
}

export interface OpenedKubesecSecret {
  doc: KubesecDoc
  values: KubesecValue[]
}

export interface OpenedKubesec {
  kubesec: KubesecFile
  secrets: OpenedKubesecSecret[]
}

/** Finds the kubesec Secrets of a manifest stream and reads their footers (no key used yet). */
export function parseKubesec(text: string, file?: string): KubesecFile {
  const p = parseManifests(text, file)
  const secrets: KubesecDoc[] = []
  p.docs.forEach((doc: Document.Parsed, i) => {
    const start = i === 0 ? 0 : doc.range[0]
    const end = p.docs[i + 1]?.range[0] ?? text.length
    let footer: Footer | null
    try {
      footer = parseFooter(text, start, end)
    } catch (e) {
      throw (e as KsealError).at({file, document: i + 1})
    }
    if (!footer) return
    const secret = p.secrets.find((s) => s.map === doc.contents)
    if (!secret) throw new KsealError('ERR_INPUT', 'a kubesec footer on a document that is not a Secret', {file, document: i + 1})
    secrets.push({secret, footer})
  })
  return {text, file, eol: p.eol, secrets}
}

/** Opens every kubesec Secret (their keys at once): data key, values, MAC. Throws the first failure in document order, naming where. */
export async function openKubesec(k: KubesecFile, keys: SopsMasterKeys): Promise<OpenedKubesec> {
  const results = await Promise.allSettled(k.secrets.map((doc) => openSecret(doc, keys)))
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  return {kubesec: k, secrets: results.map((r) => (r as PromiseFulfilledResult<OpenedKubesecSecret>).value)}
}

async function openSecret(doc: KubesecDoc, keys: SopsMasterKeys): Promise<OpenedKubesecSecret> {
  const where: Where = doc.secret.where
  let dek: Buffer
  try {
    dek = await openDek(doc.footer.keys, keys)
  } catch (e) {
    throw (e as KsealError).at?.(where) ?? e
  }
  const values: KubesecValue[] = []
  const data = new Map<string, string>()
  const stringData = new Map<string, string>()
  for (const v of doc.secret.values) {
    const at = {...where, key: `${v.field}.${v.key}`}
    if (v.value === null) throw new KsealError('ERR_INPUT', 'a null value in a kubesec Secret (kubesec needs strings)', at)
    let plaintext: string
    try {
      plaintext = decryptValue(dek, v.key, v.value)
    } catch (e) {
      throw (e as KsealError).at(at)
    }
    ;(v.field === 'data' ? data : stringData).set(v.key, plaintext)
    values.push({value: v, plaintext})
  }
  if (!macMatches(dek, doc.footer.mac, macAad(data, stringData, doc.footer.keys))) {
    throw new KsealError(
      'ERR_INTEGRITY',
      'kubesec MAC mismatch: the Secret was altered after it was encrypted (a value or a key was changed, added or removed)',
      where,
    )
  }
  return {doc, values}
}

/** The data key from the first footer key held: PGP (held by gpg), then AWS KMS, then GCP KMS (when plugged in). */
async function openDek(entries: KubesecKey[], keys: SopsMasterKeys): Promise<Buffer> {
  const rank = {pgp: 0, aws: 1, gcp: 2}
  let failure: unknown = null
  for (const e of [...entries].sort((a, b) => rank[a.type] - rank[b.type])) {
    try {
      const dek = await openOne(e, keys)
      if (dek) {
        if (dek.length !== 32)
          throw new KsealError(
            'ERR_DECRYPT',
            `kubesec ${e.type} key ${e.id} opened to something that is not a data key (the footer was altered)`,
          )
        return dek
      }
    } catch (err) {
      failure ??= err
    }
  }
  if (failure) throw failure
  throw new KsealError(
    'ERR_NO_KEY',
    `no key for this kubesec Secret: it is encrypted for ${entries.map((e) => `${e.type}:${e.id}`).join(', ')}${entries.some((e) => e.type === 'gcp') && !keys.gcpKms ? ' (kseal has no GCP KMS backend yet)' : ''}`,
  )
}

async function openOne(e: KubesecKey, keys: SopsMasterKeys): Promise<Buffer | null> {
  switch (e.type) {
    case 'pgp': {
      const fp = normalizePgpId(e.id)
      if (!fp) throw new KsealError('ERR_INTEGRITY', `malformed kubesec footer: pgp key ${JSON.stringify(e.id.slice(0, 80))}`)
      const gpg = await keys.gpg()
      if (![...(await gpg.secretKeys())].some((held) => held.endsWith(fp))) return null
      return pgpDecrypt(gpg, e.dek.toString('latin1'), fp, {verify: true})
    }
    case 'aws':
      return keys.kms.decrypt({arn: e.id}, e.dek)
    case 'gcp':
      return keys.gcpKms ? Buffer.from(await keys.gcpKms(e.id, e.dek)) : null
  }
}

/** The text with every kubesec value decrypted in place and every footer line removed. */
export function decryptedKubesecText(o: OpenedKubesec): string {
  const {text, eol} = o.kubesec
  const edits: Edit[] = []
  for (const s of o.secrets) {
    const flow = Boolean(s.doc.secret.map.flow)
    for (const v of s.values) edits.push(valueEdit(text, v.value.node!, v.plaintext, eol, flow))
    for (const [start, end] of s.doc.footer.lines) edits.push({start, end, text: ''})
  }
  return applyEdits(text, edits)
}
