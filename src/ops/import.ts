/**
 * `kseal import`: other tools' encrypted Secrets converted in place to kseal's formats.
 *
 * - SOPS and kubesec Secrets are opened with the user's keys (their MACs verified), and their
 *   plaintext, written back in place, is encrypted as kseal format 2 for the recipients `-r` or
 *   `.kseal.yaml` names: the values replaced where they stood, the `sops` block or kubesec footer
 *   replaced by the `kseal:` envelope, every other byte (comments, layout) as it was.
 * - Bitnami SealedSecrets (`bitnami.com/v1alpha1`) are opened with the Bitnami controller's private
 *   key and become kseal SealedSecrets sealed to the kseal controller's certificate, or encrypted
 *   Secrets. Their document is written anew (a SealedSecret's layout says nothing of the Secret's);
 *   comments around it stay.
 *
 * What cannot be converted faithfully is refused, naming where: SOPS documents that are not
 * Secrets, SOPS encrypted comments (kseal's format would hold them in plaintext), Shamir key groups,
 * dotenv/INI files, values Kubernetes would read differently. A file is converted whole or not at all.
 */
import type crypto from 'node:crypto'
import type {Recipient} from '../../keys/types.js'
import {KsealError, type Where} from '../core/errors.js'
import type {Obj} from '../core/guards.js'
import type {Scope} from '../envelope/binding.js'
import {isBitnamiSealedSecret, unsealBitnami} from '../formats/bitnami.js'
import {looksLikeKubesec, looksLikeSops} from '../formats/detect.js'
import {decryptedKubesecText, openKubesec, parseKubesec} from '../formats/kubesec/index.js'
import {decryptedText, entryName, openSops, parseSops, type SopsMasterKeys} from '../formats/sops/index.js'
import {applyEdits, type Edit} from '../manifest/edits.js'
import {contentEdit, toYaml} from '../manifest/objects.js'
import {parseManifests, type SecretDoc} from '../manifest/parse.js'
import {sealSecret} from '../sealed/seal.js'
import {encryptSecret, type EncryptOptions} from '../secret/secret.js'

export interface ImportOptions {
  /** The recipients and scope each converted Secret is encrypted for (`-r`, or its `.kseal.yaml` rule). */
  optionsFor(s: SecretDoc): Promise<EncryptOptions>
  /** The keys for SOPS and kubesec files. */
  sops(): Promise<SopsMasterKeys>
  /** The Bitnami controller's RSA private keys (`--key`). */
  bitnamiKeys(): Promise<crypto.KeyObject[]>
  /** Bitnami SealedSecrets become kseal SealedSecrets for this certificate (`--cert`); otherwise encrypted Secrets. */
  sealFor?(): Promise<{recipient: Recipient; scope: Scope}>
}

/** One converted Secret, for the report line `file#doc ns/name: from → to`. */
export interface Converted {
  where: Where
  document: number
  secret: string
  from: string
  to: string
}

export interface ImportResult {
  text: string
  converted: Converted[]
}

const label = (namespace: string, name: string) => (namespace ? `${namespace}/` : '') + (name || '(unnamed)')

/** `sops(age,pgp)`: the kinds of key entries a SOPS file holds, in sops's order. */
function sopsKinds(names: string[]): string {
  const kinds = [...new Set(names.map((n) => n.slice(0, n.indexOf(':'))))]
  return `sops(${kinds.join(',')})`
}

const recipientList = (rs: {backend: string; kid: string}[]) => rs.map((r) => `${r.backend}:${r.kid}`).join(', ')

/** Converts the SOPS, kubesec and Bitnami Secrets of one file's text; every other document as it was. */
export async function importText(text: string, file: string | undefined, opts: ImportOptions): Promise<ImportResult> {
  // 1. SOPS and kubesec documents decrypted in place (MACs verified), remembering which.
  const from = new Map<number, string>()
  let plain = text
  if (looksLikeSops(plain)) {
    const sops = parseSops(plain, {file})
    const opened = await openSops(sops, await opts.sops())
    for (const g of opened.groups) {
      const kinds = sopsKinds(g.metadata.keyGroups.flat().map(entryName))
      for (const i of g.documents) {
        const d = sops.stream.docs[i]
        const where: Where = {file, document: i + 1}
        const comments = g.comments.filter((c) => c.document === i).length
        if (comments) {
          throw new KsealError(
            'ERR_INPUT',
            `holds ${comments} encrypted comment${comments > 1 ? 's' : ''}, which kseal's format would keep in plaintext: remove ${comments > 1 ? 'them' : 'it'} first (sops edit), or convert by hand`,
            where,
          )
        }
        if (!isSecretMap(d.map)) {
          throw new KsealError('ERR_INPUT', 'is a SOPS document but not a v1 Secret: kseal encrypts only Secrets; leave it to sops', where)
        }
        from.set(i + 1, kinds)
      }
    }
    plain = decryptedText(opened)
  }
  if (looksLikeKubesec(plain)) {
    const opened = await openKubesec(parseKubesec(plain, file), await opts.sops())
    for (const s of opened.secrets) {
      const kinds = [...new Set(s.doc.footer.keys.map((k) => k.type))]
      from.set(s.doc.secret.where.document!, `kubesec v${s.doc.footer.version}(${kinds.join(',')})`)
    }
    plain = decryptedKubesecText(opened)
  }

  // 2. One reading of the plaintext as Kubernetes reads it: converted Secrets encrypted, Bitnami SealedSecrets replaced.
  const p = parseManifests(plain, file)
  const converted: Converted[] = []
  const edits: Edit[] = []
  const jobs: Promise<void>[] = []
  for (const s of p.secrets) {
    const doc = s.where.document!
    const source = from.get(doc)
    if (!source) continue
    if (p.docs[doc - 1].contents !== s.map)
      throw new KsealError('ERR_INPUT', 'a converted Secret must be its own document, not inside a List', s.where)
    if (s.envelopePair) throw new KsealError('ERR_INPUT', 'has a kseal envelope as well; decrypt it first', s.where)
    jobs.push(
      (async () => {
        const o = await opts.optionsFor(s)
        edits.push(...(await encryptSecret(p.text, p.eol, s, o)))
        converted.push({
          where: s.where,
          document: doc,
          secret: label(s.namespace, s.name),
          from: source,
          to: `kseal v2 (${recipientList(o.recipients)})`,
        })
      })(),
    )
  }
  for (const [i, doc] of p.docs.entries()) {
    if (!doc.contents) continue
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    if (!isBitnamiSealedSecret(js)) continue
    const where: Where = {file, document: i + 1}
    jobs.push(
      (async () => {
        let secret: Obj
        try {
          secret = unsealBitnami(js, await opts.bitnamiKeys())
        } catch (e) {
          throw (e as KsealError).at?.(where) ?? e
        }
        const meta = secret.metadata as {name: string; namespace?: string}
        const json = /^\s*\{/.test(plain.slice(doc.contents!.range[0]))
        const render = (o: unknown) => (json ? JSON.stringify(o, null, 2) + '\n' : toYaml(o))
        const name = label(meta.namespace ?? '', meta.name)
        if (opts.sealFor) {
          const {recipient, scope} = await opts.sealFor()
          const sealed = await sealSecret(secret, [recipient], scope)
          edits.push(contentEdit(p.text, p.eol, doc, render(sealed)))
          converted.push({
            where,
            document: i + 1,
            secret: name,
            from: 'bitnami',
            to: `kseal SealedSecret (${recipient.backend}:${recipient.kid})`,
          })
          return
        }
        const secretText = render(secret)
        const one = parseManifests(secretText, file)
        const o = await opts.optionsFor({...one.secrets[0], where})
        const encrypted = applyEdits(secretText, await encryptSecret(secretText, '\n', one.secrets[0], o))
        edits.push(contentEdit(p.text, p.eol, doc, encrypted))
        converted.push({where, document: i + 1, secret: name, from: 'bitnami', to: `kseal v2 (${recipientList(o.recipients)})`})
      })(),
    )
  }
  const settled = await Promise.allSettled(jobs)
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  converted.sort((a, b) => a.document - b.document)
  return {text: edits.length || plain !== text ? applyEdits(p.text, edits) : text, converted}
}

function isSecretMap(map: {get(k: string): unknown} | null): boolean {
  return map !== null && map.get('kind') === 'Secret' && map.get('apiVersion') === 'v1'
}
