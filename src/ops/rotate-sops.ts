/**
 * `kseal rotate` on SOPS files: the data key re-wrapped for a new set of recipients, or (`--data-key`)
 * a fresh data key and every value re-encrypted. The file is opened first (MAC verified), and every
 * value keeps its `ENC[…]` when the data key stays; `lastmodified` and the MAC are new.
 *
 * The trust rule is kseal's: a data key is wrapped only for recipients the user names
 * (`--add-recipient`, the `.kseal.yaml` rule) or demonstrably holds (an age identity, a gpg secret
 * key) — never because an entry is in the file. SOPS does not authenticate its key entries: anyone
 * who could write the file could have added one (a former recipient who kept the data key, say).
 * KMS entries are wrapped for as the user names them: the role, profile and EncryptionContext that a
 * file's entry carries are not carried over (they come from the unauthenticated file).
 */
import crypto from 'node:crypto'
import type {Recipient} from '../../keys/types.js'
import {isKsealError, KsealError} from '../core/errors.js'
import {
  decryptedText,
  entryName,
  type KeyEntry,
  type OpenedSops,
  openSops,
  parseSops,
  reencryptSops,
  type SopsMasterKeys,
  type SopsRecipient,
  toSopsRecipient,
} from '../formats/sops/index.js'
import {normalizePgpId} from '../formats/sops/masterkeys.js'
import {parseManifests} from '../manifest/parse.js'
import {configured, type RotatePlan, type RotateResult, type SecretChange} from './rotate.js'

/** An entry's identity as `--remove-recipient` and `--add-recipient` name it: `age:age1…`, `pgp:FPR`, `awskms:ARN`. */
function entryId(e: KeyEntry): string {
  if (e.kind === 'pgp') return `pgp:${normalizePgpId(e.fp) ?? e.fp}`
  if (e.kind === 'kms') return `awskms:${e.arn}`
  return entryName(e)
}

const recipientId = (r: Recipient) => `${r.backend}:${r.backend === 'pgp' ? r.kid.toUpperCase() : r.kid}`
const kidOf = (id: string) => id.slice(id.indexOf(':') + 1)

export async function rotateSops(
  text: string,
  file: string | undefined,
  plan: RotatePlan,
  removal: Set<string>,
  keys: SopsMasterKeys,
): Promise<RotateResult> {
  const sops = parseSops(text, {file})
  if (sops.groups.length === 0) return {text, changes: []}
  const opened = await openSops(sops, keys)
  const secrets = parseManifests(text, file).secrets
  const changes: SecretChange[] = []
  let rotated = false
  const groups = await Promise.all(
    opened.groups.map(async (g) => {
      const first = g.documents[0]
      const s = secrets.find((x) => x.where.document === first + 1)
      const where = {file, document: first + 1, ...(s ? {secret: s.where.secret} : {})}
      try {
        const current = g.metadata.keyGroups[0]
        let keep: KeyEntry[]
        let add: Recipient[]
        let named: Recipient[]
        if (plan.rules && plan.add.length === 0 && removal.size === 0 && s && (await plan.rules.cover(file))) {
          named = (await plan.rules.optionsFor(file, s, {})).recipients
          const wanted = new Set(named.map(recipientId))
          keep = current.filter((e) => wanted.has(entryId(e)))
          add = named.filter((r) => !current.some((e) => entryId(e) === recipientId(r)))
        } else {
          keep = current.filter((e) => !removal.has(entryId(e)) && !removal.has(kidOf(entryId(e))))
          add = plan.add.filter((r, i) => plan.add.findIndex((o) => recipientId(o) === recipientId(r)) === i)
          add = add.filter((r) => !keep.some((e) => entryId(e) === recipientId(r)))
          named = [...plan.add, ...(s ? await configured(plan.config, file, s) : [])]
        }
        const removed = current.filter((e) => !keep.includes(e))
        if (keep.length + add.length === 0)
          throw new KsealError('ERR_USAGE', 'rotation would leave no recipient: add one with --add-recipient')
        if (!plan.dataKey && add.length === 0 && removed.length === 0) return g
        const kept = await vouched(keep, named, keys)
        const dataKey = plan.dataKey ? crypto.randomBytes(32) : g.dataKey
        const recipients: SopsRecipient[] = [...kept, ...add.map(toSopsRecipient)]
        const entries = await keys.wrap(recipients, dataKey, new Date())
        for (const d of g.documents) {
          const sd = secrets.find((x) => x.where.document === d + 1)
          changes.push({
            secret: sd?.where.secret ?? '(not a Secret)',
            document: d + 1,
            added: add.map(recipientId),
            removed: removed.map(entryId),
            dataKey: plan.dataKey,
          })
        }
        rotated = true
        return {
          ...g,
          dataKey,
          metadata: {...g.metadata, keyGroups: [entries]},
          // A fresh data key re-encrypts every value: no ciphertext is kept.
          values: plan.dataKey ? g.values.map((v) => ({...v, ciphertext: undefined})) : g.values,
        }
      } catch (e) {
        throw isKsealError(e) ? e.at(where) : e
      }
    }),
  )
  if (!rotated) return {text, changes}
  const next: OpenedSops = {...opened, groups}
  return {text: reencryptSops(next, decryptedText(opened)), changes: changes.sort((a, b) => a.document - b.document)}
}

/**
 * The recipients kept entries are wrapped for: each named, or held here (an age identity for its
 * recipient, a gpg secret key for its fingerprint). An entry only in the file is refused, naming it.
 */
async function vouched(keep: KeyEntry[], named: Recipient[], keys: SopsMasterKeys): Promise<SopsRecipient[]> {
  const out: SopsRecipient[] = []
  const unvouched: string[] = []
  const ages = keep.some((e) => e.kind === 'age') ? await keys.ageIdentities() : []
  const gpgHeld = keep.some((e) => e.kind === 'pgp') ? await (await keys.gpg()).secretKeys() : new Set<string>()
  for (const e of keep) {
    const id = entryId(e)
    const byName = named.find((r) => recipientId(r) === id)
    if (byName) out.push(toSopsRecipient(byName))
    else if (e.kind === 'age' && ages.some((a) => a.kid === e.recipient)) out.push({kind: 'age', recipient: e.recipient})
    else if (e.kind === 'pgp' && [...gpgHeld].some((h) => h.endsWith(kidOf(id)))) out.push({kind: 'pgp', fp: kidOf(id)})
    else unvouched.push(entryName(e))
  }
  if (unvouched.length) {
    throw new KsealError(
      'ERR_USAGE',
      `cannot wrap the data key: ${unvouched.join(', ')} ${unvouched.length > 1 ? 'are' : 'is'} neither named nor held here, and SOPS does not authenticate its key entries, so kseal will not wrap for ${unvouched.length > 1 ? 'them' : 'it'} because ${unvouched.length > 1 ? 'they are' : 'it is'} in the file; pass it with --add-recipient (or name it in .kseal.yaml) to keep it, or remove it with --remove-recipient`,
    )
  }
  return out
}
