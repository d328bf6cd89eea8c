/**
 * A SOPS file's data key: opened from whichever key-group entry the user holds, and wrapped for
 * the recipients of a file kseal writes. Entries are raw sops wrappings (no kseal binding): an
 * armored age file or OpenPGP message of the 32-byte key, or a KMS ciphertext with the entry's
 * EncryptionContext.
 *
 * Where keys come from:
 * - age: kseal's own key files (`--key`, `KSEAL_KEYS`, `~/.config/kseal/keys`) and sops's places —
 *   `SOPS_AGE_KEY` (identities in the variable), `SOPS_AGE_KEY_FILE`, and
 *   `$XDG_CONFIG_HOME/sops/age/keys.txt` (`~/.config/…`, or `~/Library/Application Support/…` on
 *   macOS). An entry is opened only by the identity whose recipient it names; plugin and SSH
 *   identities are not supported.
 * - pgp: the user's gpg (keys/pgp.ts), for entries whose key gpg holds a secret for.
 * - AWS KMS: the environment's credentials, the entry's context, role and profile (../awskms.ts).
 * - GCP KMS: an unwrap function the caller plugs in (kseal has no GCP KMS backend yet).
 * Azure Key Vault and HashiCorp Vault entries are named in errors but cannot be opened.
 * Entries are tried as sops orders them: age, then PGP, then the rest in file order; cloud services
 * are asked only when no local key opened the file. Shamir key groups are refused.
 */
import {promises as fs} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {type AgeIdentity, parseIdentityFile} from '../../../keys/age.js'
import {checkPrivateMode} from '../../../keys/keyfile.js'
import type {Backends} from '../../../keys/index.js'
import type {Recipient} from '../../../keys/types.js'
import {decryptError, type Gpg, normalizeFingerprint, type PgpBackend} from '../../../keys/pgp.js'
import {keyFileError, KsealError} from '../../core/errors.js'
import type {Keyring} from '../../keyring/keyring.js'
import {ForeignKms} from '../awskms.js'
import {DATA_KEY_BYTES} from './cipher.js'
import {formatRfc3339} from './go.js'
import {entryName, type KeyEntry} from './metadata.js'

/** Decrypts a GCP KMS ciphertext with the key `resourceId` (`projects/…/cryptoKeys/…`). */
export type GcpKmsUnwrap = (resourceId: string, ciphertext: Buffer) => Promise<Uint8Array>

export interface SopsMasterKeyOptions {
  /** kseal's own key sources; their age identities open age entries. */
  keyring?: Keyring
  /** GCP KMS decryption, when the caller has it. */
  gcpKms?: GcpKmsUnwrap
}

/** A recipient of a SOPS file kseal writes. */
export type SopsRecipient =
  | {kind: 'age'; recipient: string}
  | {kind: 'pgp'; fp: string}
  | {kind: 'kms'; arn: string; context?: Record<string, string>; role?: string; profile?: string}

const PGP_OUTPUT_BYTES = DATA_KEY_BYTES + 64

/** Opening and wrapping data keys for SOPS (and kubesec) files, with the run's backends. */
export class SopsMasterKeys {
  private ages?: Promise<AgeIdentity[]>
  readonly kms: ForeignKms

  constructor(
    readonly backends: Backends,
    private readonly opts: SopsMasterKeyOptions = {},
  ) {
    this.kms = new ForeignKms(backends)
  }

  get gcpKms(): GcpKmsUnwrap | undefined {
    return this.opts.gcpKms
  }

  async gpg(): Promise<Gpg> {
    return ((await this.backends.get('pgp')) as PgpBackend).gpg(this.backends.ctx)
  }

  /** Every age identity held: kseal's key sources first, then sops's places. */
  ageIdentities(): Promise<AgeIdentity[]> {
    this.ages ??= (async () => {
      const own = this.opts.keyring
        ? (await this.opts.keyring.all()).filter((id): id is AgeIdentity => id.backend === 'age' && 'decrypt' in id)
        : []
      return [...own, ...(await sopsAgeIdentities(this.backends.ctx.env))]
    })()
    return this.ages
  }

  /**
   * The data key from the first entry a held key opens. Throws ERR_NO_KEY naming every entry when
   * none is held, or the first failure of an entry that was held (wrong passphrase, altered entry,
   * a service error) when no other entry opened.
   */
  async open(groups: KeyEntry[][]): Promise<Buffer> {
    if (groups.length !== 1) {
      throw new KsealError(
        'ERR_INPUT',
        `this SOPS file splits its data key over ${groups.length} key groups (Shamir secret sharing), which kseal does not support`,
      )
    }
    const rank = (e: KeyEntry) => (e.kind === 'age' ? 0 : e.kind === 'pgp' ? 1 : 2)
    const entries = [...groups[0]].sort((a, b) => rank(a) - rank(b))
    let failure: unknown = null
    for (const entry of entries) {
      try {
        const key = await this.openEntry(entry)
        if (key) {
          if (key.length !== DATA_KEY_BYTES)
            throw new KsealError(
              'ERR_DECRYPT',
              `${entryName(entry)} opened to something that is not a SOPS data key (the entry was altered)`,
            )
          return key
        }
      } catch (e) {
        failure ??= e
      }
    }
    if (failure) throw failure
    throw new KsealError('ERR_NO_KEY', `no key for this SOPS file: it is encrypted for ${entries.map(entryName).join(', ')}`)
  }

  /** The entry's data key, or null when no key for it is held (or kseal cannot use its kind). */
  private async openEntry(entry: KeyEntry): Promise<Buffer | null> {
    switch (entry.kind) {
      case 'age': {
        const id = (await this.ageIdentities()).find((i) => i.kid === entry.recipient)
        if (!id) return null
        try {
          return Buffer.from(await id.decrypt(entry.enc))
        } catch {
          throw new KsealError(
            'ERR_DECRYPT',
            `cannot decrypt the data key with age key ${id.kid} (${id.source}): the SOPS key entry was altered`,
          )
        }
      }
      case 'pgp': {
        const fp = normalizePgpId(entry.fp)
        if (!fp) throw new KsealError('ERR_INTEGRITY', `malformed SOPS metadata: pgp fingerprint ${JSON.stringify(entry.fp.slice(0, 80))}`)
        const gpg = await this.gpg()
        if (![...(await gpg.secretKeys())].some((held) => held.endsWith(fp))) return null
        return pgpDecrypt(gpg, entry.enc, fp, {verify: false})
      }
      case 'kms':
        return this.kms.decrypt(
          {arn: entry.arn, context: entry.context, role: entry.role, profile: entry.awsProfile},
          strictBase64(entry.enc, entryName(entry)),
        )
      case 'gcp_kms':
        if (!this.opts.gcpKms) return null
        return Buffer.from(await this.opts.gcpKms(entry.resourceId, strictBase64(entry.enc, entryName(entry))))
      default:
        return null
    }
  }

  /** Wraps a data key for each recipient, as sops writes its key entries. */
  async wrap(recipients: SopsRecipient[], dataKey: Buffer, now: Date): Promise<KeyEntry[]> {
    const createdAt = formatRfc3339(now)
    return Promise.all(
      recipients.map(async (r): Promise<KeyEntry> => {
        switch (r.kind) {
          case 'age': {
            const age = await import('age-encryption')
            const e = new age.Encrypter()
            e.addRecipient(r.recipient)
            return {kind: 'age', recipient: r.recipient, enc: age.armor.encode(await e.encrypt(dataKey))}
          }
          case 'pgp':
            return {kind: 'pgp', fp: r.fp, createdAt, enc: (await (await this.gpg()).encrypt(r.fp, dataKey, true)).toString('utf8')}
          case 'kms': {
            const blob = await this.kms.encrypt({arn: r.arn, context: r.context, role: r.role, profile: r.profile}, dataKey)
            return {
              kind: 'kms',
              arn: r.arn,
              createdAt,
              enc: blob.toString('base64'),
              ...(r.context ? {context: r.context} : {}),
              ...(r.role ? {role: r.role} : {}),
              ...(r.profile ? {awsProfile: r.profile} : {}),
            }
          }
        }
      }),
    )
  }

  async close(): Promise<void> {
    await this.kms.close()
  }
}

/**
 * Recipients from key URIs, checked as kseal checks its own: `age:age1…` (checksum), `pgp:FPR`
 * (the public key must be in the gpg keyring), `awskms:ARN`.
 */
export async function sopsRecipients(uris: string[], backends: Backends): Promise<SopsRecipient[]> {
  return Promise.all(uris.map(async (uri) => toSopsRecipient(await backends.recipient(uri))))
}

/** A kseal recipient (already checked by its backend) as a SOPS file's key entry; age, pgp and awskms only. */
export function toSopsRecipient(r: Recipient): SopsRecipient {
  switch (r.backend) {
    case 'age':
      return {kind: 'age', recipient: r.kid}
    case 'pgp':
      return {kind: 'pgp', fp: r.kid}
    case 'awskms':
      return {kind: 'kms', arn: r.kid}
    default:
      throw new KsealError(
        'ERR_USAGE',
        `${r.backend}:${r.kid}: SOPS files can be encrypted for age, pgp and awskms recipients, not ${r.backend}`,
      )
  }
}

/** A PGP key given as a fingerprint or a long key id (sops accepts both), upper-case. */
export function normalizePgpId(s: string): string | null {
  const full = normalizeFingerprint(s)
  if (full) return full
  const id = s.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase()
  return /^[0-9A-F]{16}$/.test(id) ? id : null
}

/** Decrypts a data key wrapped for a PGP key (armored or binary), checking gpg used that key. */
export async function pgpDecrypt(gpg: Gpg, message: string | Buffer, fp: string, opts: {verify: boolean}): Promise<Buffer> {
  const r = await gpg.decrypt(message, {verify: opts.verify, maxOutput: PGP_OUTPUT_BYTES})
  if (!r.ok) throw decryptError(r, `pgp:${fp}`)
  if (!r.primary.endsWith(fp) && !r.subkey.endsWith(fp)) {
    throw new KsealError(
      'ERR_DECRYPT',
      `cannot decrypt the data key with pgp:${fp}: it was encrypted to another key (the key entry was altered)`,
    )
  }
  return r.plaintext
}

function strictBase64(s: string, what: string): Buffer {
  const compact = s.replace(/[\r\n]/g, '')
  const b = Buffer.from(compact, 'base64')
  if (b.length === 0 || b.toString('base64') !== compact)
    throw new KsealError('ERR_INTEGRITY', `malformed SOPS metadata: ${what} has no valid encrypted data key`)
  return b
}

/** age identities from sops's places, read leniently where sops is (plugin lines are skipped). */
export async function sopsAgeIdentities(env: Record<string, string | undefined>): Promise<AgeIdentity[]> {
  const out: AgeIdentity[] = []
  const take = async (source: string, text: string) => {
    const lines = text.split(/\r?\n/).filter((l) => !l.trim().startsWith('AGE-PLUGIN-'))
    if (!lines.some((l) => l.trim().startsWith('AGE-SECRET-KEY-1'))) return
    out.push(...(await parseIdentityFile(source, lines.join('\n'))))
  }
  if (env.SOPS_AGE_KEY) await take('SOPS_AGE_KEY', env.SOPS_AGE_KEY)
  const files: {file: string; required: boolean}[] = []
  if (env.SOPS_AGE_KEY_FILE) files.push({file: env.SOPS_AGE_KEY_FILE, required: true})
  const home = env.HOME || os.homedir()
  const configDir =
    env.XDG_CONFIG_HOME || (process.platform === 'darwin' ? path.join(home, 'Library', 'Application Support') : path.join(home, '.config'))
  files.push({file: path.join(configDir, 'sops', 'age', 'keys.txt'), required: false})
  for (const {file, required} of files) {
    let text: string
    try {
      text = await fs.readFile(file, 'utf8')
    } catch (e) {
      if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw keyFileError(e, file)
    }
    await checkPrivateMode(file)
    await take(file, text)
  }
  return out
}
