/**
 * `kseal rotate`: changes who can open encrypted Secrets, and optionally the data keys themselves.
 *
 * - Re-wrapping (the default): the data key is opened once per Secret and wrapped for the new set of
 *   recipients. Values and MAC are untouched, so a git diff shows only recipient entries.
 * - `--data-key`: a fresh data key, every value re-encrypted. The step that actually locks a removed
 *   recipient out of the values from now on.
 * - With no recipient flags, every Secret is brought in line with its `.kseal.yaml` rule (recipients
 *   and scope; a changed scope re-encrypts the values, since they are bound to it).
 * - SOPS files get the same operations, with the same trust rule (rotate-sops.ts).
 */
import {splitUri, type Backends} from '../../keys/index.js'
import type {Recipient, RecipientEntry} from '../../keys/types.js'
import {keyBinding, type Scope} from '../envelope/binding.js'
import type {CreationRules} from '../config/config.js'
import {applyEdits, type Edit, replaceEnvelopeEdit} from '../manifest/edits.js'
import {computeMac, type Envelope, envelopeObject, type Slot} from '../envelope/envelope.js'
import {isKsealError, KsealError} from '../core/errors.js'
import type {Keyring} from '../keyring/keyring.js'
import {ENVELOPE_KEY, parseManifests, type SecretDoc} from '../manifest/parse.js'
import {freshEnvelope, type OpenedSecret, openSecret, vouchedRecipients} from '../secret/secret.js'
import {looksLikeSops} from '../formats/detect.js'
import type {SopsKeys} from './decrypt.js'

export interface RotatePlan {
  /** Recipients to add (`--add-recipient`). */
  add: Recipient[]
  /** Recipients to remove (`--remove-recipient`): URIs, `backend:kid`, or bare key ids. */
  remove: string[]
  /** A fresh data key and every value re-encrypted. */
  dataKey: boolean
  /** With neither add nor remove: each Secret follows its `.kseal.yaml` rule. */
  rules?: CreationRules
  /**
   * With add or remove: the `.kseal.yaml` rules, if any cover a file, only to vouch for recipients
   * that must be wrapped anew (their rule names them).
   */
  config?: CreationRules
}

/** What rotation did (or, with --dry-run, would do) to one Secret. */
export interface SecretChange {
  secret: string
  document: number
  added: string[]
  removed: string[]
  dataKey: boolean
  scope?: {from: Scope; to: Scope}
  /** Upgraded from format 1. */
  upgraded?: boolean
}

export interface RotateResult {
  text: string
  changes: SecretChange[]
}

const id = (r: {backend: string; kid: string}) => `${r.backend}:${r.kid}`

/** Resolves `--remove-recipient` values to `backend:kid` (or a bare kid) once per run. */
export async function removalIds(specs: string[], backends: Backends): Promise<Set<string>> {
  const out = new Set<string>()
  for (const spec of specs) {
    const uri = splitUri(spec)
    if (uri && /[/.]|^arn:|^age1/.test(uri.rest)) {
      const r = await backends.recipient(spec)
      out.add(id(r))
    } else {
      out.add(spec) // backend:kid or a bare kid
    }
  }
  return out
}

const matches = (e: RecipientEntry, ids: Set<string>) => ids.has(id(e)) || ids.has(e.kid)

export async function rotateText(
  text: string,
  file: string | undefined,
  plan: RotatePlan,
  removal: Set<string>,
  keyring: Keyring,
  sops?: SopsKeys,
): Promise<RotateResult> {
  // SOPS documents first (rotate-sops.ts); kseal's own pass leaves them alone (they have no envelope).
  let foreign: SecretChange[] = []
  if (sops && looksLikeSops(text)) {
    const r = await (await import('./rotate-sops.js')).rotateSops(text, file, plan, removal, await sops())
    text = r.text
    foreign = r.changes
  }
  const p = parseManifests(text, file)
  const results = await Promise.all(p.secrets.map((s) => rotateSecret(p.text, p.eol, s, file, plan, removal, keyring)))
  const edits = results.flatMap((r) => r?.edits ?? [])
  const changes = [...foreign, ...results.flatMap((r) => (r?.change ? [r.change] : []))].sort((a, b) => a.document - b.document)
  return {text: edits.length ? applyEdits(text, edits) : text, changes}
}

async function rotateSecret(
  text: string,
  eol: string,
  s: SecretDoc,
  file: string | undefined,
  plan: RotatePlan,
  removal: Set<string>,
  keyring: Keyring,
): Promise<{edits: Edit[]; change: SecretChange} | null> {
  if (!s.envelopePair) return null
  try {
    // Opening checks the MAC and every value (in format 2 also every recipient): rotating never
    // launders a tampered Secret.
    const opened = (await openSecret(s, keyring))!
    const current = opened.envelope.recipients
    let targetScope = opened.envelope.scope
    let keep: RecipientEntry[]
    let add: Recipient[]
    let named: Recipient[]
    // With no recipient flags a Secret follows its .kseal.yaml rule; without a rule for its file it
    // keeps its recipients (a format 1 Secret is still upgraded, for the recipients held).
    if (plan.rules && plan.add.length === 0 && removal.size === 0 && (await plan.rules.cover(file))) {
      const opts = await plan.rules.optionsFor(file, s, {})
      targetScope = opts.scope
      const wanted = new Map(opts.recipients.map((r) => [id(r), r]))
      keep = current.filter((e) => wanted.has(id(e)))
      add = [...wanted.values()].filter((r) => !current.some((e) => id(e) === id(r)))
      named = opts.recipients
    } else {
      keep = current.filter((e) => !matches(e, removal))
      add = dedupe(plan.add).filter((r) => !keep.some((e) => id(e) === id(r)))
      named = [...plan.add, ...(await configured(plan.config, file, s))]
    }
    const removed = current.filter((e) => !keep.includes(e))
    if (keep.length + add.length === 0) {
      throw new KsealError('ERR_USAGE', 'rotation would leave no recipient: add one with --add-recipient')
    }
    const upgrade = opened.envelope.version === 1
    const scopeChanged = targetScope !== opened.envelope.scope
    // Format 1 is upgraded to format 2, which needs a fresh data key (old copies of the data key,
    // in git history, must not open the upgraded Secret).
    const freshKey = plan.dataKey || scopeChanged || upgrade
    if (!freshKey && add.length === 0 && removed.length === 0) return null

    const change: SecretChange = {
      secret: s.where.secret!,
      document: s.where.document!,
      added: add.map(id),
      removed: removed.map(id),
      dataKey: freshKey,
      ...(scopeChanged ? {scope: {from: opened.envelope.scope, to: targetScope}} : {}),
      ...(upgrade ? {upgraded: true} : {}),
    }
    if (!freshKey) {
      // Format 2, same data key: wrap it for the added recipients only; the kept entries were
      // authenticated by the MAC just checked, and the new MAC covers the new set.
      const added = await Promise.all(add.map((r) => r.wrap(opened.keys.dataKey, keyBinding(opened.binding))))
      const recipients = [...keep, ...added]
      const slots: Slot[] = s.values.map((v) => ({field: v.field, key: v.key, token: v.value}))
      const envelope: Envelope = {...opened.envelope, recipients, mac: computeMac(opened.keys, opened.binding, slots, recipients)}
      return {edits: [replaceEnvelopeEdit(text, s.map, s.envelopePair, envelopeObject(envelope), ENVELOPE_KEY, eol)], change}
    }
    // Everyone who keeps access needs the new data key: each kept entry must be named or held,
    // never wrapped for because it is in the file.
    const kept = await vouched(opened, keep, named, keyring)
    const bytes = new Map(s.values.map((v, i) => [v, opened.values[i].bytes]))
    const edits = await freshEnvelope(text, eol, s, targetScope, [...kept, ...add], (v) => bytes.get(v) ?? null, s.envelopePair)
    return {edits, change}
  } catch (e) {
    if (e instanceof KsealError) e.at(s.where)
    throw e
  }
}

/** The recipients of a `.kseal.yaml` rule that covers the Secret, if any (to vouch for entries). */
export async function configured(rules: CreationRules | undefined, file: string | undefined, s: SecretDoc): Promise<Recipient[]> {
  if (!rules || !(await rules.cover(file))) return []
  try {
    return (await rules.optionsFor(file, s, {})).recipients
  } catch (e) {
    if (isKsealError(e) && e.code === 'ERR_USAGE') return [] // no rule matches this Secret
    throw e
  }
}

function dedupe(rs: Recipient[]): Recipient[] {
  const seen = new Set<string>()
  return rs.filter((r) => (seen.has(id(r)) ? false : (seen.add(id(r)), true)))
}

/**
 * The recipients for entries that keep access across a new data key: named on the command line or
 * by the rule, or held locally (a key with that id, or the entry that opened the Secret). An entry
 * that is only in the file is refused, naming it.
 */
async function vouched(opened: OpenedSecret, keep: RecipientEntry[], named: Recipient[], keyring: Keyring): Promise<Recipient[]> {
  const what =
    opened.envelope.version === 1
      ? 'cannot upgrade from format 1 (recipients not authenticated) to format 2'
      : 'cannot wrap the new data key'
  return vouchedRecipients(
    opened,
    keep,
    named,
    keyring,
    what,
    'pass it with --add-recipient (or name it in .kseal.yaml) to keep it, or remove it with --remove-recipient',
  )
}
