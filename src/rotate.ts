/**
 * `kseal rotate`: changes who can open encrypted Secrets, and optionally the data keys themselves.
 *
 * - Re-wrapping (the default): the data key is opened once per Secret and wrapped for the new set of
 *   recipients. Values and MAC are untouched, so a git diff shows only recipient entries.
 * - `--data-key`: a fresh data key, every value re-encrypted. The step that actually locks a removed
 *   recipient out of the values from now on.
 * - With no recipient flags, every Secret is brought in line with its `.kseal.yaml` rule (recipients
 *   and scope; a changed scope re-encrypts the values, since they are bound to it).
 */
import {splitUri, type Backends} from '../keys/index.js'
import type {Recipient, RecipientEntry, Scope} from '../keys/types.js'
import type {CreationRules} from './config.js'
import {applyEdits, type Edit, replaceEnvelopeEdit, tokenEdit} from './edits.js'
import {bindingFor, computeMac, deriveKeys, type Envelope, encryptValue, envelopeObject, newDataKey, type Slot} from './envelope.js'
import {KsealError} from './errors.js'
import type {Keyring} from './keyring.js'
import {ENVELOPE_KEY, parseManifests, type SecretDoc} from './manifest.js'
import {openSecret} from './secret.js'

export interface RotatePlan {
  /** Recipients to add (`--add-recipient`). */
  add: Recipient[]
  /** Recipients to remove (`--remove-recipient`): URIs, `backend:kid`, or bare key ids. */
  remove: string[]
  /** A fresh data key and every value re-encrypted. */
  dataKey: boolean
  /** With neither add nor remove: each Secret follows its `.kseal.yaml` rule. */
  rules?: CreationRules
}

/** What rotation did (or, with --dry-run, would do) to one Secret. */
export interface SecretChange {
  secret: string
  document: number
  added: string[]
  removed: string[]
  dataKey: boolean
  scope?: {from: Scope; to: Scope}
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
  backends: Backends,
): Promise<RotateResult> {
  const p = parseManifests(text, file)
  const results = await Promise.all(p.secrets.map((s) => rotateSecret(p.text, p.eol, s, file, plan, removal, keyring, backends)))
  const edits = results.flatMap((r) => r?.edits ?? [])
  return {text: edits.length ? applyEdits(text, edits) : text, changes: results.flatMap((r) => (r?.change ? [r.change] : []))}
}

async function rotateSecret(
  text: string,
  eol: string,
  s: SecretDoc,
  file: string | undefined,
  plan: RotatePlan,
  removal: Set<string>,
  keyring: Keyring,
  backends: Backends,
): Promise<{edits: Edit[]; change: SecretChange} | null> {
  if (!s.envelopePair) return null
  try {
    // Opening checks the MAC and every value: rotating never launders a tampered Secret.
    const opened = (await openSecret(s, keyring))!
    const current = opened.envelope.recipients
    let targetScope = opened.envelope.scope
    let keep: RecipientEntry[]
    let add: Recipient[]
    if (plan.rules && plan.add.length === 0 && removal.size === 0) {
      const opts = await plan.rules.optionsFor(file, s, {})
      targetScope = opts.scope
      const wanted = new Map(opts.recipients.map((r) => [id(r), r]))
      keep = current.filter((e) => wanted.has(id(e)))
      add = [...wanted.values()].filter((r) => !current.some((e) => id(e) === id(r)))
    } else {
      keep = current.filter((e) => !matches(e, removal))
      add = dedupe(plan.add).filter((r) => !keep.some((e) => id(e) === id(r)))
    }
    const removed = current.filter((e) => !keep.includes(e))
    if (keep.length + add.length === 0) {
      throw new KsealError('ERR_USAGE', 'rotation would leave no recipient: add one with --add-recipient')
    }
    const scopeChanged = targetScope !== opened.envelope.scope
    const freshKey = plan.dataKey || scopeChanged
    if (!freshKey && add.length === 0 && removed.length === 0) return null

    const change: SecretChange = {
      secret: s.where.secret!, document: s.where.document!, added: add.map(id), removed: removed.map(id), dataKey: freshKey,
      ...(scopeChanged ? {scope: {from: opened.envelope.scope, to: targetScope}} : {}),
    }
    const edits: Edit[] = []
    let envelope: Envelope
    if (!freshKey) {
      const added = await Promise.all(add.map((r) => r.wrap(opened.keys.dataKey, opened.binding)))
      envelope = {...opened.envelope, recipients: [...keep, ...added]}
    } else {
      // Everyone who keeps access needs the new data key, so each kept entry needs its public key.
      const kept = await Promise.all(keep.map((e) => publicHalf(e, [...plan.add, ...add], keyring, backends)))
      const binding = bindingFor(targetScope, s.namespace, s.name)
      const dataKey = newDataKey()
      const keys = deriveKeys(dataKey)
      const slots: Slot[] = s.values.map((v, i) => {
        const bytes = opened.values[i].bytes
        if (bytes === null || !v.node) return {field: v.field, key: v.key, token: null}
        const token = encryptValue(keys, binding, v.field, v.key, bytes)
        edits.push(tokenEdit(text, v.node, token, eol))
        return {field: v.field, key: v.key, token}
      })
      const recipients = await Promise.all([...kept, ...add].map((r) => r.wrap(dataKey, binding)))
      envelope = {...opened.envelope, scope: targetScope, recipients, mac: computeMac(keys, binding, slots)}
    }
    edits.push(replaceEnvelopeEdit(text, s.map, s.envelopePair, envelopeObject(envelope), ENVELOPE_KEY, eol))
    return {edits, change}
  } catch (e) {
    if (e instanceof KsealError) e.at(s.where)
    throw e
  }
}

function dedupe(rs: Recipient[]): Recipient[] {
  const seen = new Set<string>()
  return rs.filter((r) => (seen.has(id(r)) ? false : (seen.add(id(r)), true)))
}

/**
 * A recipient for an entry that keeps access across a data-key rotation: from the recipients named
 * on the command line or in the rule, from a key held locally, or (KMS, age) from the entry itself.
 */
async function publicHalf(e: RecipientEntry, named: Recipient[], keyring: Keyring, backends: Backends): Promise<Recipient> {
  const given = named.find((r) => id(r) === id(e))
  if (given) return given
  for (const ident of await keyring.all()) {
    if (ident.backend === e.backend && ident.kid === e.kid && ident.recipient) return ident.recipient()
  }
  if (e.backend !== 'rsa') {
    try {
      return await backends.recipient(`${e.backend}:${e.kid}`)
    } catch {
      // fall through to the error below
    }
  }
  throw new KsealError('ERR_USAGE', `cannot re-wrap the new data key for ${id(e)}: pass its certificate with --add-recipient, or remove it with --remove-recipient`)
}
