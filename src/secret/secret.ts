/**
 * Encrypting and decrypting one Secret document: the bridge between the manifest layer (values and
 * their source ranges) and the envelope (data key, tokens, MAC). One data-key wrap or unwrap per
 * Secret, however many values it has.
 */
import type {Recipient, RecipientEntry} from '../../keys/types.js'
import {type Binding, bindingFor, bindingV2, describeIdentity, encryptedAsFor, keyBinding, type Scope} from '../envelope/binding.js'
import {
  computeMac,
  type DataKeys,
  decryptValue,
  deriveKeys,
  type Envelope,
  encryptValue,
  envelopeObject,
  type Field,
  FORMAT_VERSION,
  newDataKey,
  parseEnvelope,
  type Slot,
  verifyMac,
} from '../envelope/envelope.js'
import {isKsealError, KsealError} from '../core/errors.js'
import type {Keyring} from '../keyring/keyring.js'
import {ENVELOPE_KEY, type SecretDoc, type SecretValue} from '../manifest/parse.js'
import {valueBytes, valueText} from '../manifest/secrets.js'
import {type Edit, insertEnvelopeEdit, removeEnvelopeEdit, replaceEnvelopeEdit, tokenEdit, valueEdit} from '../manifest/edits.js'

export interface EncryptOptions {
  /**
   * Who a new Secret is encrypted for. For a format 1 Secret that gains values (and so is upgraded to
   * format 2), they are also what vouches for its existing recipients, besides the keys held.
   */
  recipients: Recipient[]
  scope: Scope
  /** Needed only to add plaintext values to a Secret that is already encrypted. */
  keyring?: Keyring
}

/** A Secret's plaintext, in document order; bytes are the decoded `data` or the UTF-8 of `stringData`. */
export interface PlainValue {
  field: Field
  key: string
  bytes: Buffer | null
}

export interface OpenedSecret {
  envelope: Envelope
  binding: Binding
  keys: DataKeys
  values: PlainValue[]
  /** The recipient entry whose key opened it. */
  openedBy: RecipientEntry
}

const place = (v: SecretValue) => `${v.field}.${v.key}`

function requireName(s: SecretDoc, scope: Scope): void {
  if (scope === 'strict' && !s.name) {
    throw new KsealError('ERR_INPUT', 'a Secret needs metadata.name to be encrypted with strict scope (or use --scope namespace|cluster)')
  }
}

const now = (s: SecretDoc) => (s.namespace ? `${s.namespace}/` : '') + (s.name || '(unnamed)')
const REMEDY =
  'decrypt where it was encrypted, before it is renamed or moved (e.g. kseal krm as a transformer in the kustomize base), ' +
  'or encrypt it with a wider --scope (namespace, cluster)'

/**
 * Where an encrypted Secret's values are bound. Format 2: the identity recorded in the envelope,
 * checked against the manifest before any key operation (a clear message naming both when they
 * differ). Format 1: the manifest's own namespace and name (its envelope records none).
 */
export function bindingOf(s: SecretDoc, envelope: Envelope): Binding {
  if (envelope.version === 1) {
    requireName(s, envelope.scope)
    return bindingFor(envelope.scope, s.namespace, s.name)
  }
  const as = envelope.encryptedAs!
  const moved = (as.name !== null && as.name !== s.name) || (as.namespace !== null && as.namespace !== s.namespace)
  if (moved) {
    throw new KsealError(
      'ERR_DECRYPT',
      `encrypted as ${describeIdentity(envelope.scope, as)}, now ${now(s)}: its ${envelope.scope} scope binds the values to where it was encrypted; ${REMEDY}`,
    )
  }
  return bindingV2(envelope.scope, as)
}

/** A format 1 key failure says what format 1 can: it records no identity, so a move looks like an altered entry. */
function v1Hint(e: unknown, s: SecretDoc, envelope: Envelope): unknown {
  if (envelope.version !== 1 || envelope.scope === 'cluster' || !isKsealError(e) || e.code !== 'ERR_DECRYPT') return e
  return new KsealError(
    e.code,
    `${e.message} (format 1 records no identity; it is now ${now(s)}: if it was renamed or moved, e.g. by a kustomize overlay, ${REMEDY})`,
    e.where,
  )
}

/** Returns the edits that encrypt a Secret's plaintext values; none when there is nothing to do. */
export async function encryptSecret(text: string, eol: string, s: SecretDoc, opts: EncryptOptions): Promise<Edit[]> {
  try {
    const plain = s.values.filter((v) => v.value !== null && !v.encrypted)
    if (!s.envelopePair) {
      if (s.values.some((v) => v.encrypted))
        throw new KsealError('ERR_INTEGRITY', 'has encrypted values but no kseal envelope (was it removed?)')
      if (plain.length === 0) return []
      if (opts.recipients.length === 0) throw new KsealError('ERR_USAGE', 'no recipients: pass -r rsa:PATH (or set up .kseal.yaml)')
      requireName(s, opts.scope)
      return await freshEnvelope(text, eol, s, opts.scope, opts.recipients, (v) => valueBytes(v))
    }
    if (plain.length === 0) return []
    // New plaintext values in an encrypted Secret: they join its existing data key, and the old
    // values keep their ciphertext, so the diff shows only what was added. Opening it first checks
    // the MAC over everything already there: adding a value never launders a tampered Secret.
    if (!opts.keyring) throw new KsealError('ERR_NO_KEY', 'adding values to an encrypted Secret needs its key (--key)')
    const opened = await openSecret(s, opts.keyring, {allowPlaintext: true})
    if (!opened) return []
    if (opened.envelope.version === 1) {
      // Format 1 cannot be extended without re-authenticating its recipients: upgrade to format 2
      // (a fresh data key, every value re-encrypted) for the recipients that can be vouched for.
      const recipients = await vouchedRecipients(
        opened,
        opened.envelope.recipients,
        opts.recipients,
        opts.keyring,
        'cannot upgrade from format 1 (recipients not authenticated) to format 2',
        'name it with -r (or in .kseal.yaml) to keep it, or drop it with kseal rotate --remove-recipient',
      )
      const bytes = new Map(s.values.map((v, i) => [v, opened.values[i].bytes]))
      return freshEnvelope(text, eol, s, opened.envelope.scope, recipients, (v) => bytes.get(v) ?? valueBytes(v), s.envelopePair)
    }
    const {edits, slots} = encryptValues(text, eol, s, opened.keys, opened.binding)
    const updated = {...opened.envelope, mac: computeMac(opened.keys, opened.binding, slots, opened.envelope.recipients)}
    edits.push(replaceEnvelopeEdit(text, s.map, s.envelopePair, envelopeObject(updated), ENVELOPE_KEY, eol))
    return edits
  } catch (e) {
    throw locate(e, s)
  }
}

/**
 * A new format 2 envelope: a fresh data key for the identity the Secret has now, every non-null
 * value encrypted (from `bytesOf`), wrapped for `recipients`. Replaces `existing` when given.
 */
export async function freshEnvelope(
  text: string,
  eol: string,
  s: SecretDoc,
  scope: Scope,
  recipients: Recipient[],
  bytesOf: (v: SecretValue) => Buffer | null,
  existing?: SecretDoc['envelopePair'],
): Promise<Edit[]> {
  const encryptedAs = encryptedAsFor(scope, s.namespace, s.name)
  const binding = bindingV2(scope, encryptedAs)
  const dataKey = newDataKey()
  const keys = deriveKeys(dataKey, FORMAT_VERSION)
  const entries = await Promise.all(recipients.map((r) => r.wrap(dataKey, keyBinding(binding))))
  const edits: Edit[] = []
  const slots: Slot[] = s.values.map((v) => {
    const bytes = v.value === null ? null : bytesOf(v)
    if (bytes === null || !v.node) return {field: v.field, key: v.key, token: null}
    const token = encryptValue(keys, binding, v.field, v.key, bytes)
    edits.push(tokenEdit(text, v.node, token, eol))
    return {field: v.field, key: v.key, token}
  })
  const envelope: Envelope = {
    version: FORMAT_VERSION,
    scope,
    encryptedAs,
    recipients: entries,
    mac: computeMac(keys, binding, slots, entries),
  }
  edits.push(
    existing
      ? replaceEnvelopeEdit(text, s.map, existing, envelopeObject(envelope), ENVELOPE_KEY, eol)
      : insertEnvelopeEdit(text, s.map, envelopeObject(envelope), ENVELOPE_KEY, eol),
  )
  return edits
}

/**
 * The recipients that entries keep when a new data key is wrapped for them (a format 1 upgrade, a
 * data-key rotation). None is wrapped for because it is in the file: each must be named (`named`:
 * -r, --add-recipient, the .kseal.yaml rule) or held (a loaded key with its key id, or the entry that
 * opened the Secret). Otherwise it is refused, naming the entries.
 */
export async function vouchedRecipients(
  opened: OpenedSecret,
  entries: RecipientEntry[],
  named: Recipient[],
  keyring: Keyring,
  what: string,
  remedy: string,
): Promise<Recipient[]> {
  const out: Recipient[] = []
  const unvouched: string[] = []
  for (const e of entries) {
    const r = named.find((n) => n.backend === e.backend && n.kid === e.kid) ?? (await keyring.heldRecipient(e, opened.openedBy))
    if (!r) unvouched.push(`${e.backend}:${e.kid}`)
    else if (!out.some((o) => o.backend === r.backend && o.kid === r.kid)) out.push(r)
  }
  if (unvouched.length) {
    throw new KsealError(
      'ERR_USAGE',
      `${what}: ${unvouched.join(', ')} ${unvouched.length > 1 ? 'are' : 'is'} neither named nor held here, so kseal will not wrap a new data key for ${unvouched.length > 1 ? 'them' : 'it'}; ${remedy}`,
    )
  }
  return out
}

function encryptValues(text: string, eol: string, s: SecretDoc, keys: DataKeys, binding: Binding) {
  const edits: Edit[] = []
  const slots: Slot[] = s.values.map((v) => {
    if (v.value === null) return {field: v.field, key: v.key, token: null}
    if (v.encrypted) return {field: v.field, key: v.key, token: v.value}
    const token = encryptValue(keys, binding, v.field, v.key, valueBytes(v))
    edits.push(tokenEdit(text, v.node!, token, eol))
    return {field: v.field, key: v.key, token}
  })
  return {edits, slots}
}

export interface OpenOptions {
  /** Plaintext values beside encrypted ones are allowed (they are being added); they are not MAC slots. */
  allowPlaintext?: boolean
}

/** Opens an encrypted Secret: finds its key, checks the MAC over every value (and, in format 2, every recipient), decrypts them all. */
export async function openSecret(s: SecretDoc, keyring: Keyring, opts: OpenOptions = {}): Promise<OpenedSecret | null> {
  try {
    if (!s.envelopePair) {
      if (s.values.some((v) => v.encrypted))
        throw new KsealError('ERR_INTEGRITY', 'has encrypted values but no kseal envelope (was it removed?)')
      return null
    }
    const envelope = parseEnvelope(s.envelopeRaw)
    const binding = bindingOf(s, envelope)
    const stray = s.values.find((v) => v.value !== null && !v.encrypted)
    if (stray && !opts.allowPlaintext) {
      throw new KsealError(
        'ERR_INTEGRITY',
        'is not encrypted but the Secret is: a value was added after encryption (run kseal encrypt to add it)',
        {key: place(stray)},
      )
    }
    let got
    try {
      got = await keyring.unwrap(envelope.recipients, keyBinding(binding))
    } catch (e) {
      throw v1Hint(e, s, envelope)
    }
    const keys = deriveKeys(got.dataKey, envelope.version)
    const sealed = s.values.filter((v) => v.value === null || v.encrypted)
    const slots: Slot[] = sealed.map((v) => ({field: v.field, key: v.key, token: v.value}))
    if (!verifyMac(keys, binding, slots, envelope.mac, envelope.recipients)) {
      // Name the value that does not belong, when one can be found; otherwise the set changed.
      for (const v of sealed) {
        if (v.value === null) continue
        try {
          decryptValue(keys, binding, v.field, v.key, v.value)
        } catch (e) {
          throw locate(e, s, place(v))
        }
      }
      throw new KsealError(
        'ERR_INTEGRITY',
        envelope.version === 1
          ? 'integrity check failed: values were added, removed, renamed or replayed'
          : 'integrity check failed: values were added, removed, renamed or replayed, or a recipient entry was added, removed or altered',
      )
    }
    const values = s.values.map((v): PlainValue => {
      if (v.value === null || !v.encrypted) return {field: v.field, key: v.key, bytes: null}
      try {
        return {field: v.field, key: v.key, bytes: decryptValue(keys, binding, v.field, v.key, v.value)}
      } catch (e) {
        throw locate(e, s, place(v))
      }
    })
    return {envelope, binding, keys, values, openedBy: got.entry}
  } catch (e) {
    throw locate(e, s)
  }
}

/** Returns the edits that turn an encrypted Secret back into its plaintext form. */
export async function decryptSecret(text: string, eol: string, s: SecretDoc, keyring: Keyring): Promise<Edit[]> {
  const opened = await openSecret(s, keyring)
  if (!opened) return []
  return [...plaintextEdits(text, eol, s, opened), removeEnvelopeEdit(text, s.map, s.envelopePair!)]
}

/** The edits that write an opened Secret's values back as plaintext; the envelope is left to the caller. */
export function plaintextEdits(text: string, eol: string, s: SecretDoc, opened: OpenedSecret): Edit[] {
  const edits: Edit[] = []
  s.values.forEach((v, i) => {
    const bytes = opened.values[i].bytes
    if (bytes === null || !v.node) return
    let t: string
    try {
      t = valueText(v.field, bytes)
    } catch {
      throw locate(new KsealError('ERR_INTEGRITY', 'decrypted stringData is not UTF-8'), s, place(v))
    }
    edits.push(valueEdit(text, v.node, t, eol, s.map.flow ?? false))
  })
  return edits
}

function locate(e: unknown, s: SecretDoc, key?: string): unknown {
  if (e instanceof KsealError) return e.at({...s.where, ...(key ? {key} : {})})
  return e
}
