/**
 * The key pairs a replica holds: every trusted sealing key Secret in its namespace (the format:
 * src/sealed/sealing-key.ts), loaded as its watch delivers them. Every replica loads all of them
 * (each opens the SealedSecrets sealed to it, chosen by key id); the newest is the one published for
 * sealing.
 */
import {RsaIdentity} from '../../../keys/rsa.js'
import type {RsaDecryptPool} from '../../../keys/rsa-pool.js'
import {KsealError} from '../../core/errors.js'
import type {Unwrap} from '../../keyring/keyring.js'
import type {Secret} from '../../kube/api.js'
import {KEY_LABEL, KEY_LABEL_ACTIVE, parseKeySecret, TRUST_SECRET, trustRootOf} from '../../sealed/sealing-key.js'
import type {Logger} from '../log.js'

export interface SealingKey {
  kid: string
  /** The Secret it is stored in. */
  secretName: string
  created: Date
  certPem: string
  /** Its private key (`identity.key`) opens values of formats without key ids too (Bitnami's: every key is tried). */
  identity: RsaIdentity
  /** An imported key that opens what was sealed to it and never seals. */
  decryptOnly: boolean
}

/** The newest key that may seal (keys oldest first): decrypt-only keys never do. */
export function newestSealer(keys: readonly SealingKey[]): SealingKey | undefined {
  return keys.filter((k) => !k.decryptOnly).at(-1)
}

export interface KeyStoreOptions {
  pool: RsaDecryptPool
  log: Logger
  /** Called once per private-key decryption (a metric). */
  onDecrypt?: () => void
  /** The trust root, when known at construction (tests); otherwise it arrives as its Secret. */
  trustRoot?: Buffer
  now?: () => Date
}

/** The key pairs this replica holds, by key id. */
export class KeyStore {
  private byKid = new Map<string, SealingKey>()
  private listeners: (() => void)[] = []
  private root?: Buffer
  /** Key Secrets seen before the trust root: checked once it arrives. */
  private pending = new Map<string, Secret>()

  constructor(private readonly o: KeyStoreOptions) {
    this.root = o.trustRoot
  }

  get size(): number {
    return this.byKid.size
  }

  get trustRoot(): Buffer | undefined {
    return this.root
  }

  all(): SealingKey[] {
    return [...this.byKid.values()].sort((a, b) => a.created.getTime() - b.created.getTime() || (a.secretName < b.secretName ? -1 : 1))
  }

  /** The key that seals: the most recently created, decrypt-only keys aside. */
  newest(): SealingKey | undefined {
    return newestSealer(this.all())
  }

  onChange(cb: () => void): void {
    this.listeners.push(cb)
  }

  /** Sets the trust root (once) and checks the key Secrets that waited for it. */
  setTrustRoot(root: Buffer): void {
    if (this.root) {
      if (!this.root.equals(root)) this.o.log.error('ignoring a second, different trust root', {secret: TRUST_SECRET})
      return
    }
    this.root = root
    const waiting = [...this.pending.values()]
    this.pending.clear()
    for (const s of waiting) this.upsertSecret(s)
  }

  /**
   * Loads (or reloads) a key Secret, or takes the trust root from its Secret. A malformed or untrusted
   * one is logged and skipped, never fatal.
   */
  upsertSecret(s: Secret): SealingKey | null {
    const name = `${s.metadata?.namespace}/${s.metadata?.name}`
    const root = trustRootOf(s)
    if (root) {
      this.setTrustRoot(root)
      return null
    }
    if (s.metadata?.labels?.[KEY_LABEL] !== KEY_LABEL_ACTIVE) return null
    if (!this.root) {
      this.pending.set(s.metadata?.name ?? '', s)
      return null
    }
    try {
      const k = this.parse(s)
      const had = this.byKid.get(k.kid)
      if (had && had.secretName === k.secretName && had.created.getTime() === k.created.getTime() && had.decryptOnly === k.decryptOnly)
        return had
      this.byKid.set(k.kid, k)
      this.o.log.info('sealing key loaded', {
        secret: name,
        kid: k.kid,
        created: k.created.toISOString(),
        ...(k.decryptOnly ? {use: 'decrypt only'} : {}),
      })
      this.changed()
      return k
    } catch (e) {
      this.o.log.warn('ignoring a key Secret', {secret: name, error: (e as Error).message})
      return null
    }
  }

  removeSecret(s: Secret): void {
    for (const [kid, k] of this.byKid) {
      if (k.secretName === s.metadata?.name) {
        this.byKid.delete(kid)
        this.o.log.warn('sealing key Secret deleted: SealedSecrets sealed to it can no longer be opened', {secret: s.metadata?.name, kid})
        this.changed()
      }
    }
  }

  private changed(): void {
    for (const cb of this.listeners) cb()
  }

  private parse(s: Secret): SealingKey {
    const k = parseKeySecret(s, this.root!, (this.o.now ?? (() => new Date()))())
    return {
      kid: k.kid,
      secretName: k.secretName,
      created: k.created,
      certPem: k.certPem,
      identity: new RsaIdentity(k.key, `Secret ${s.metadata?.namespace}/${s.metadata?.name}`, this.o.pool),
      decryptOnly: k.decryptOnly,
    }
  }

  /**
   * Opens a SealedSecret's data key: the envelope's key ids select the key, so exactly one private
   * decryption is made (never a trial of every key, as sealed-secrets must).
   */
  readonly unwrap: Unwrap = async (entries, binding) => {
    for (const entry of entries) {
      const k = entry.backend === 'rsa' ? this.byKid.get(entry.kid) : undefined
      if (!k) continue
      this.o.onDecrypt?.()
      const dataKey = await k.identity.unwrap(entry, binding)
      if (dataKey) return {dataKey, entry}
    }
    const wanted = entries.map((e) => `${e.backend}:${e.kid}`).join(', ')
    const held = [...this.byKid.keys()].join(', ') || 'none'
    throw new KsealError(
      'ERR_NO_KEY',
      `no controller key opens this SealedSecret: it is sealed for ${wanted}; the controller holds ${held}`,
    )
  }
}
