/**
 * Other tools' encrypted files in kseal's commands: SOPS and kubesec documents, in any stream beside
 * kseal's own and plain ones, opened with the user's keys (decrypt, textconv, krm) or described
 * without any (inspect, check). The commands import this module only when a text looks like one
 * (formats/detect.ts), so plain kseal files pay nothing for it.
 */
import {looksLikeKubesec, looksLikeSops} from '../formats/detect.js'
import {decryptedKubesecText, isKubesecCiphertext, openKubesec, parseKubesec} from '../formats/kubesec/index.js'
import {decryptedText, describeSops, entryName, openSops, parseSops, type SopsMasterKeys} from '../formats/sops/index.js'
import type {Finding} from './check.js'
import type {SecretInfo} from './inspect.js'

/**
 * The text with every SOPS and kubesec document decrypted in place (their MACs verified; the `sops`
 * blocks and kubesec footers removed); every other document and byte as it was. Throws the first
 * failure, naming where.
 */
export async function openForeign(text: string, file: string | undefined, keys: SopsMasterKeys): Promise<string> {
  let out = text
  if (looksLikeSops(out)) out = decryptedText(await openSops(parseSops(out, {file}), keys))
  if (looksLikeKubesec(out)) out = decryptedKubesecText(await openKubesec(parseKubesec(out, file), keys))
  return out
}

/** What SOPS's MAC covers, and what it does not (docs/formats/sops.md). */
const SOPS_AUTHENTICATED =
  "every value and its order, and each encrypted value's key path; not the recipients, the key names of unencrypted values, or the Secret's place"
const SOPS_MAC_ONLY_ENCRYPTED_AUTHENTICATED =
  "the encrypted values, their order and key paths; not the unencrypted values (mac_only_encrypted), the recipients, or the Secret's place"
const KUBESEC_AUTHENTICATED = "data and stringData keys and values, and the key ids; not the Secret's metadata (name, namespace)"

const recipient = (name: string) => {
  const i = name.indexOf(':')
  return {backend: name.slice(0, i), kid: name.slice(i + 1)}
}

/** `inspect`'s rows for the SOPS and kubesec documents of a text, read without any key. */
export function foreignInfo(text: string, file: string | undefined): SecretInfo[] {
  const out: SecretInfo[] = []
  const label = file ?? '(stdin)'
  if (looksLikeSops(text)) {
    for (const d of describeSops(parseSops(text, {file}))) {
      const [namespace, name] = splitLabel(d.where.secret)
      out.push({
        file: label,
        document: d.document + 1,
        format: 'sops',
        namespace,
        name,
        scope: '-',
        version: d.metadata.version,
        encryptedAs: null,
        recipientsAuthenticated: false,
        authenticated: d.metadata.macOnlyEncrypted ? SOPS_MAC_ONLY_ENCRYPTED_AUTHENTICATED : SOPS_AUTHENTICATED,
        recipients: d.metadata.keyGroups.flat().map((e) => recipient(entryName(e))),
        values: d.encrypted,
        plaintext: d.plaintext.length,
      })
    }
  }
  if (looksLikeKubesec(text)) {
    for (const k of parseKubesec(text, file).secrets) {
      out.push({
        file: label,
        document: k.secret.where.document!,
        format: 'kubesec',
        namespace: k.secret.namespace,
        name: k.secret.name,
        scope: '-',
        version: k.footer.version,
        encryptedAs: null,
        recipientsAuthenticated: true,
        authenticated: KUBESEC_AUTHENTICATED,
        recipients: k.footer.keys.map((key) => ({backend: KUBESEC_BACKENDS[key.type], kid: key.id})),
        values: k.secret.values.filter((v) => v.value !== null).length,
        plaintext: 0,
      })
    }
  }
  return out
}

const KUBESEC_BACKENDS = {pgp: 'pgp', aws: 'awskms', gcp: 'gcpkms'} as const

function splitLabel(label: string | undefined): [string, string] {
  if (label === undefined) return ['', '']
  const i = label.indexOf('/')
  return i < 0 ? ['', label] : [label.slice(0, i), label.slice(i + 1)]
}

/**
 * `check`'s view of SOPS and kubesec Secrets: their `ENC[…]` (SOPS) or `<data>.<iv>.<tag>` (kubesec)
 * values are encrypted; a `data`/`stringData` value the file keeps in plaintext — a SOPS file whose
 * `encrypted_regex` leaves it out, a kubesec value that is not ciphertext — is a finding. Returns
 * the findings and the documents they cover (check's own reading, which knows only kseal's
 * envelope, skips those).
 */
export function checkForeign(text: string, file: string): {plaintext: Finding[]; documents: Set<number>} {
  const plaintext: Finding[] = []
  const documents = new Set<number>()
  if (looksLikeSops(text)) {
    for (const d of describeSops(parseSops(text, {file}))) {
      if (d.where.secret === undefined) continue
      documents.add(d.document + 1)
      if (d.plaintext.length) plaintext.push({where: d.where, keys: d.plaintext})
    }
  }
  if (looksLikeKubesec(text)) {
    for (const k of parseKubesec(text, file).secrets) {
      documents.add(k.secret.where.document!)
      const keys = k.secret.values.filter((v) => v.value !== null && !isKubesecCiphertext(v.value)).map((v) => `${v.field}.${v.key}`)
      if (keys.length) plaintext.push({where: k.secret.where, keys})
    }
  }
  return {plaintext, documents}
}
