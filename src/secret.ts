/**
 * Encrypting and decrypting one Secret document: the bridge between the manifest layer (values and
 * their source ranges) and the envelope (data key, tokens, MAC). One data-key wrap or unwrap per
 * Secret, however many values it has.
 */
import type {Recipient, Scope} from '../keys/types.js'
import {
  bindingFor, computeMac, type DataKeys, decryptValue, deriveKeys, type Envelope, encryptValue, envelopeObject,
  type Field, FORMAT_VERSION, newDataKey, parseEnvelope, type Slot, verifyMac,
} from './envelope.js'
import {KsealError} from './errors.js'
import type {Keyring} from './keyring.js'
import {ENVELOPE_KEY, type SecretDoc, type SecretValue} from './manifest.js'
import {type Edit, insertEnvelopeEdit, removeEnvelopeEdit, replaceEnvelopeEdit, tokenEdit, valueEdit} from './edits.js'
import type {Binding} from '../keys/types.js'

export interface EncryptOptions {
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
}

const place = (v: SecretValue) => `${v.field}.${v.key}`

/** The bytes a value stands for: base64-decoded `data`, UTF-8 `stringData`. */
export function valueBytes(v: SecretValue): Buffer {
  const s = v.value ?? ''
  if (v.field === 'stringData') {
    // UTF-8 cannot carry a lone surrogate (an escape like "\ud800"); encoding would quietly turn it into U+FFFD.
    if (/\p{Cs}/u.test(s)) throw new KsealError('ERR_INPUT', 'not valid Unicode text (a lone surrogate escape); use data with base64 for bytes', {key: place(v)})
    return Buffer.from(s, 'utf8')
  }
  // Kubernetes (Go's StdEncoding) takes padded standard base64, ignoring line breaks.
  const compact = s.replace(/[\r\n]/g, '')
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) {
    throw new KsealError('ERR_INPUT', 'not valid base64 (data values are base64; use stringData for plain text)', {key: place(v)})
  }
  return Buffer.from(compact, 'base64')
}

/** The text a value is written back as. */
export function valueText(field: Field, bytes: Buffer): string {
  if (field === 'data') return bytes.toString('base64')
  // ignoreBOM keeps a value's leading U+FEFF: it is part of the value, not a marker to strip.
  return new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(bytes)
}

function bindingOf(s: SecretDoc, scope: Scope): Binding {
  if (scope === 'strict' && !s.name) {
    throw new KsealError('ERR_INPUT', 'a Secret needs metadata.name to be encrypted with strict scope (or use --scope namespace|cluster)')
  }
  return bindingFor(scope, s.namespace, s.name)
}

/** Returns the edits that encrypt a Secret's plaintext values; none when there is nothing to do. */
export async function encryptSecret(text: string, eol: string, s: SecretDoc, opts: EncryptOptions): Promise<Edit[]> {
  try {
    const plain = s.values.filter((v) => v.value !== null && !v.encrypted)
    if (!s.envelopePair) {
      if (s.values.some((v) => v.encrypted)) throw new KsealError('ERR_INTEGRITY', 'has encrypted values but no kseal envelope (was it removed?)')
      if (plain.length === 0) return []
      if (opts.recipients.length === 0) throw new KsealError('ERR_USAGE', 'no recipients: pass -r rsa:PATH (or set up .kseal.yaml)')
      const binding = bindingOf(s, opts.scope)
      const dataKey = newDataKey()
      const keys = deriveKeys(dataKey)
      const recipients = await Promise.all(opts.recipients.map((r) => r.wrap(dataKey, binding)))
      const {edits, slots} = encryptValues(text, eol, s, keys, binding)
      const envelope: Envelope = {version: FORMAT_VERSION, scope: binding.scope, recipients, mac: computeMac(keys, binding, slots)}
      edits.push(insertEnvelopeEdit(text, s.map, envelopeObject(envelope), ENVELOPE_KEY, eol))
      return edits
    }
    if (plain.length === 0) return []
    // New plaintext values in an encrypted Secret: they join its existing data key, and the old
    // values keep their ciphertext, so the diff shows only what was added.
    if (!opts.keyring) throw new KsealError('ERR_NO_KEY', 'adding values to an encrypted Secret needs its key (--key)')
    const envelope = parseEnvelope(s.envelopeRaw)
    const binding = bindingOf(s, envelope.scope)
    const keys = deriveKeys(await opts.keyring.open(envelope.recipients, binding))
    for (const v of s.values) if (v.encrypted) decryptValue(keys, binding, v.field, v.key, v.value!)
    const {edits, slots} = encryptValues(text, eol, s, keys, binding)
    const updated = {...envelope, mac: computeMac(keys, binding, slots)}
    edits.push(replaceEnvelopeEdit(text, s.map, s.envelopePair, envelopeObject(updated), ENVELOPE_KEY, eol))
    return edits
  } catch (e) {
    throw locate(e, s)
  }
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

/** Opens an encrypted Secret: finds its key, checks the MAC over every value, decrypts them all. */
export async function openSecret(s: SecretDoc, keyring: Keyring): Promise<OpenedSecret | null> {
  try {
    if (!s.envelopePair) {
      if (s.values.some((v) => v.encrypted)) throw new KsealError('ERR_INTEGRITY', 'has encrypted values but no kseal envelope (was it removed?)')
      return null
    }
    const envelope = parseEnvelope(s.envelopeRaw)
    const binding = bindingOf(s, envelope.scope)
    const stray = s.values.find((v) => v.value !== null && !v.encrypted)
    if (stray) {
      throw new KsealError('ERR_INTEGRITY', 'is not encrypted but the Secret is: a value was added after encryption (run kseal encrypt to add it)', {key: place(stray)})
    }
    const keys = deriveKeys(await keyring.open(envelope.recipients, binding))
    const slots: Slot[] = s.values.map((v) => ({field: v.field, key: v.key, token: v.value}))
    if (!verifyMac(keys, binding, slots, envelope.mac)) {
      // Name the value that does not belong, when one can be found; otherwise the set changed.
      for (const v of s.values) {
        if (v.value === null) continue
        try {
          decryptValue(keys, binding, v.field, v.key, v.value)
        } catch (e) {
          throw locate(e, s, place(v))
        }
      }
      throw new KsealError('ERR_INTEGRITY', 'integrity check failed: values were added, removed, renamed or replayed')
    }
    const values = s.values.map((v): PlainValue => {
      if (v.value === null) return {field: v.field, key: v.key, bytes: null}
      try {
        return {field: v.field, key: v.key, bytes: decryptValue(keys, binding, v.field, v.key, v.value)}
      } catch (e) {
        throw locate(e, s, place(v))
      }
    })
    return {envelope, binding, keys, values}
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
