/**
 * age X25519 keys (`age:age1...`), through the `age-encryption` package (FiloSottile's typage).
 * The wrapped data key is a standard binary age file whose plaintext is the 32-byte data key
 * followed by the binding label (`KeyBinding.label`, which the envelope computes), so `age -d -i key.txt` opens it and unwrapping
 * refuses a wrapped key moved to another Secret. The key id is the recipient (`age1...`).
 * Identities are age key files as `age-keygen` writes them (`AGE-SECRET-KEY-1...` lines, `#`
 * comments), refused when group or others can read them, as for RSA keys.
 */
import {KsealError} from '../src/core/errors.js'
import {checkPrivateMode, isAgeKeyFile, keyPath, readKeyFile} from './keyfile.js'
import {type Backend, type BackendContext, type KeyBinding, type Identity, type Recipient, type RecipientEntry} from './types.js'

export const NAME = 'age'
const DATA_KEY_BYTES = 32
/** Bech32 `age1` + 58 data characters: an X25519 recipient. */
const RECIPIENT_RE = /^age1[02-9ac-hj-np-z]{58}$/
const IDENTITY_RE = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/

type AgeLib = typeof import('age-encryption')
let loading: Promise<AgeLib> | undefined
const lib = (): Promise<AgeLib> => (loading ??= import('age-encryption'))

export class AgeRecipient implements Recipient {
  readonly backend = NAME
  readonly uri: string
  constructor(readonly kid: string) {
    this.uri = `${NAME}:${kid}`
  }

  async wrap(dataKey: Uint8Array, binding: KeyBinding): Promise<RecipientEntry> {
    const age = await lib()
    const e = new age.Encrypter()
    e.addRecipient(this.kid)
    const file = await e.encrypt(Buffer.concat([dataKey, binding.label]))
    return {backend: NAME, kid: this.kid, wrapped: Buffer.from(file).toString('base64')}
  }
}

export class AgeIdentity implements Identity {
  readonly backend = NAME
  constructor(
    private readonly secret: string,
    readonly kid: string,
    readonly source: string,
  ) {}

  /** The recipient this identity opens (for re-wrapping, e.g. by rotate). */
  recipient(): Recipient {
    return new AgeRecipient(this.kid)
  }

  async unwrap(entry: RecipientEntry, binding: KeyBinding): Promise<Uint8Array | null> {
    if (entry.backend !== NAME || entry.kid !== this.kid) return null
    const file = Buffer.from(entry.wrapped, 'base64')
    if (file.length === 0)
      throw new KsealError('ERR_INTEGRITY', `malformed kseal envelope: the age recipient ${this.kid} has no wrapped key`)
    let plain: Uint8Array
    try {
      plain = await this.decrypt(file)
    } catch {
      throw new KsealError(
        'ERR_DECRYPT',
        `cannot decrypt the data key with age key ${this.kid} (${this.source}): the recipient entry was altered`,
      )
    }
    const label = binding.label
    const got = Buffer.from(plain)
    if (got.length !== DATA_KEY_BYTES + label.length || !got.subarray(DATA_KEY_BYTES).equals(label)) {
      throw new KsealError(
        'ERR_DECRYPT',
        `cannot decrypt the data key with age key ${this.kid} (${this.source}): the Secret was moved or renamed, or the recipient entry was altered`,
      )
    }
    return got.subarray(0, DATA_KEY_BYTES)
  }

  /** Opens any age file (binary or ASCII-armored) made for this identity, e.g. by `age -r` or sops. */
  async decrypt(file: Uint8Array | string): Promise<Uint8Array> {
    const age = await lib()
    const d = new age.Decrypter()
    d.addIdentity(this.secret)
    const bytes =
      typeof file === 'string' ? age.armor.decode(file) : isArmored(file) ? age.armor.decode(Buffer.from(file).toString('utf8')) : file
    return d.decrypt(bytes)
  }
}

function isArmored(b: Uint8Array): boolean {
  return Buffer.from(b.subarray(0, 40)).toString('latin1').trimStart().startsWith('-----BEGIN AGE ENCRYPTED FILE-----')
}

/**
 * Reads an age key file: one identity per `AGE-SECRET-KEY-1...` line; blank lines and `#` comments
 * are skipped. Errors name the line, never its content (it may be a key).
 */
export async function parseIdentityFile(file: string, text: string): Promise<AgeIdentity[]> {
  const age = await lib()
  const out: AgeIdentity[] = []
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('AGE-PLUGIN-'))
      throw new KsealError('ERR_CONFIG', `${file}: line ${i + 1}: age plugin identities are not supported`)
    if (!IDENTITY_RE.test(line))
      throw new KsealError('ERR_CONFIG', `${file}: line ${i + 1}: not an age identity (expected AGE-SECRET-KEY-1..., as age-keygen writes)`)
    let kid: string
    try {
      kid = await age.identityToRecipient(line)
    } catch {
      throw new KsealError('ERR_CONFIG', `${file}: line ${i + 1}: not a valid age identity (bad checksum?)`)
    }
    out.push(new AgeIdentity(line, kid, file))
  }
  if (out.length === 0) throw new KsealError('ERR_CONFIG', `${file}: no age identity in this file`)
  return out
}

/** Checks an `age1...` recipient, including its checksum. */
export async function parseRecipient(rest: string): Promise<AgeRecipient> {
  const bad = () => new KsealError('ERR_USAGE', `age:${rest}: not an age recipient (expected age:age1... as printed by age-keygen -y)`)
  if (!RECIPIENT_RE.test(rest)) throw bad()
  const age = await lib()
  try {
    // Wrapping an empty file checks the bech32 checksum and the curve point.
    const e = new age.Encrypter()
    e.addRecipient(rest)
    await e.encrypt(new Uint8Array(0))
  } catch {
    throw bad()
  }
  return new AgeRecipient(rest)
}

export class AgeBackend implements Backend {
  readonly name = NAME

  async recipient(rest: string): Promise<Recipient> {
    return parseRecipient(rest)
  }

  async identities(rest: string, ctx: BackendContext): Promise<Identity[]> {
    const file = keyPath(rest, ctx)
    return this.identitiesFromFile(file, await readKeyFile(file))
  }

  async identitiesFromFile(file: string, text: string): Promise<Identity[]> {
    if (!isAgeKeyFile(text)) throw new KsealError('ERR_CONFIG', `${file}: not an age key file (no AGE-SECRET-KEY-1... line)`)
    await checkPrivateMode(file)
    return parseIdentityFile(file, text)
  }
}

export const backend = (): Backend => new AgeBackend()
