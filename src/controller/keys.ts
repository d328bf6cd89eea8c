/**
 * The controller's sealing keys: RSA key pairs kept as `kubernetes.io/tls` Secrets in its own
 * namespace, labelled `kseal.dev/sealing-key: active`. Every replica loads all of them (each opens
 * the SealedSecrets sealed to it, chosen by key id); the newest is the one published for sealing.
 * Only the leader generates: on first start, and again each renew period.
 */
import crypto from 'node:crypto'
import {promisify} from 'node:util'
import {rsaKid, RsaIdentity} from '../../keys/rsa.js'
import type {RsaDecryptPool} from '../../keys/rsa-pool.js'
import type {Binding, RecipientEntry} from '../../keys/types.js'
import {KsealError} from '../errors.js'
import {selfSignedCert} from '../keygen.js'
import {type CallContext, type ClusterApi, describeError, isAlreadyExists, type Secret, sleep} from './kube.js'
import type {Logger} from './log.js'

export const KEY_LABEL = 'kseal.dev/sealing-key'
export const KEY_LABEL_ACTIVE = 'active'
export const KEY_SELECTOR = `${KEY_LABEL}=${KEY_LABEL_ACTIVE}`
export const KEY_CREATED_ANNOTATION = 'kseal.dev/created-at'
export const KEY_ID_ANNOTATION = 'kseal.dev/key-id'
/** Certificates the controller makes are valid this long; sealing keys are renewed far sooner. */
const CERT_DAYS = 3650

export interface SealingKey {
  kid: string
  /** The Secret it is stored in. */
  secretName: string
  created: Date
  certPem: string
  identity: RsaIdentity
}

export interface KeyStoreOptions {
  pool: RsaDecryptPool
  log: Logger
  /** Called once per private-key decryption (a metric). */
  onDecrypt?: () => void
}

const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'))

/** The key pairs this replica holds, by key id. */
export class KeyStore {
  private byKid = new Map<string, SealingKey>()
  private listeners: (() => void)[] = []

  constructor(private readonly o: KeyStoreOptions) {}

  get size(): number {
    return this.byKid.size
  }

  all(): SealingKey[] {
    return [...this.byKid.values()].sort((a, b) => a.created.getTime() - b.created.getTime() || (a.secretName < b.secretName ? -1 : 1))
  }

  /** The key that seals: the most recently created. */
  newest(): SealingKey | undefined {
    return this.all().at(-1)
  }

  onChange(cb: () => void): void {
    this.listeners.push(cb)
  }

  /** Loads (or reloads) a key Secret; a malformed one is logged and skipped, never fatal. */
  upsertSecret(s: Secret): SealingKey | null {
    const name = `${s.metadata?.namespace}/${s.metadata?.name}`
    try {
      const k = this.parse(s)
      const had = this.byKid.get(k.kid)
      if (had && had.secretName === k.secretName && had.created.getTime() === k.created.getTime()) return had
      this.byKid.set(k.kid, k)
      this.o.log.info('sealing key loaded', {secret: name, kid: k.kid, created: k.created.toISOString()})
      this.changed()
      return k
    } catch (e) {
      this.o.log.warn('ignoring a malformed key Secret', {secret: name, error: (e as Error).message})
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
    const keyPem = b64(s.data?.['tls.key'])
    const certPem = b64(s.data?.['tls.crt'])
    if (!keyPem || !certPem) throw new Error('no tls.key or tls.crt')
    let key: crypto.KeyObject
    let cert: crypto.X509Certificate
    try {
      key = crypto.createPrivateKey(keyPem)
      cert = new crypto.X509Certificate(certPem)
    } catch {
      throw new Error('tls.key or tls.crt is not a PEM key or certificate')
    }
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`not an RSA key (${key.asymmetricKeyType})`)
    const kid = rsaKid(crypto.createPublicKey(key))
    if (rsaKid(cert.publicKey) !== kid) throw new Error('tls.crt does not belong to tls.key')
    const ann = s.metadata?.annotations?.[KEY_CREATED_ANNOTATION]
    const createdRaw = ann ?? s.metadata?.creationTimestamp
    const created = createdRaw ? new Date(createdRaw as string | Date) : new Date(0)
    return {
      kid,
      secretName: s.metadata?.name ?? '',
      created: Number.isNaN(created.getTime()) ? new Date(0) : created,
      certPem,
      identity: new RsaIdentity(key, `Secret ${s.metadata?.namespace}/${s.metadata?.name}`, this.o.pool),
    }
  }

  /**
   * Opens a SealedSecret's data key: the envelope's key ids select the key, so exactly one private
   * decryption is made (never a trial of every key, as sealed-secrets must).
   */
  readonly open = async (entries: RecipientEntry[], binding: Binding): Promise<Uint8Array> => {
    for (const entry of entries) {
      const k = entry.backend === 'rsa' ? this.byKid.get(entry.kid) : undefined
      if (!k) continue
      this.o.onDecrypt?.()
      const dk = await k.identity.unwrap(entry, binding)
      if (dk) return dk
    }
    const wanted = entries.map((e) => `${e.backend}:${e.kid}`).join(', ')
    const held = [...this.byKid.keys()].join(', ') || 'none'
    throw new KsealError('ERR_NO_KEY', `no controller key opens this SealedSecret: it is sealed for ${wanted}; the controller holds ${held}`)
  }
}

export interface GeneratedKey {
  kid: string
  keyPem: string
  certPem: string
}

/** A new RSA key pair (node:crypto) and its self-signed certificate (node-forge). */
export async function generateSealingKey(bits: number, now: Date, commonName = 'kseal-controller'): Promise<GeneratedKey> {
  const {privateKey} = await promisify(crypto.generateKeyPair)('rsa', {modulusLength: bits})
  const certPem = await selfSignedCert(privateKey, commonName, now, CERT_DAYS)
  return {kid: rsaKid(crypto.createPublicKey(privateKey)), keyPem: privateKey.export({type: 'pkcs8', format: 'pem'}) as string, certPem}
}

/** The Secret a key pair is stored in. */
export function keySecret(namespace: string, k: {kid: string; keyPem: string; certPem: string}, created: Date): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name: `kseal-key-${k.kid}`,
      namespace,
      labels: {[KEY_LABEL]: KEY_LABEL_ACTIVE},
      annotations: {[KEY_CREATED_ANNOTATION]: created.toISOString(), [KEY_ID_ANNOTATION]: k.kid},
    },
    data: {'tls.crt': Buffer.from(k.certPem).toString('base64'), 'tls.key': Buffer.from(k.keyPem).toString('base64')},
  }
}

export interface RenewerOptions {
  api: ClusterApi
  store: KeyStore
  namespace: string
  /** Renew when the newest key is this old; 0 never renews (a key is still made when there is none). */
  periodMs: number
  /** Keys created before this no longer seal: once it has passed, a newest key older than it is renewed at once. */
  cutoff?: Date
  bits: number
  now: () => Date
  log: Logger
  onGenerated?: (k: SealingKey, trigger: KeyTrigger) => void
  /** The leader's term: its signal and write fence, carried by the renewer's API calls. */
  context?: () => CallContext
}

/** Why a key was generated: the first key, the renew period, an operator's request (SIGUSR1), or --key-cutoff. */
export type KeyTrigger = 'initial' | 'schedule' | 'signal' | 'cutoff'
export type RenewTrigger = Exclude<KeyTrigger, 'initial'>

/** True when `k` may seal at `now`: a cutoff that has passed retires every key created before it. */
export function sealsAt(k: SealingKey, now: Date, cutoff?: Date): boolean {
  return !cutoff || now.getTime() < cutoff.getTime() || k.created.getTime() >= cutoff.getTime()
}

/** The leader's key schedule: makes the first key, and a new one whenever the newest is due or one is asked for. */
export class KeyRenewer {
  private timer?: NodeJS.Timeout
  private stopped = true
  private running?: Promise<unknown>
  /** ensure() calls run one at a time: the schedule, a signal and the Lease request never race to make two keys. */
  private tail: Promise<unknown> = Promise.resolve()

  constructor(private readonly o: RenewerOptions) {}

  /** When the newest key is due for renewal (null: never): its period, or the cutoff when it was made before it. */
  due(): Date | null {
    const newest = this.o.store.newest()
    if (!newest) return this.o.now()
    const times: number[] = []
    if (this.o.periodMs > 0) times.push(newest.created.getTime() + this.o.periodMs)
    if (this.o.cutoff && newest.created.getTime() < this.o.cutoff.getTime()) times.push(this.o.cutoff.getTime())
    return times.length ? new Date(Math.min(...times)) : null
  }

  /**
   * Generates a key if there is none, the newest is due, or `force` asks for one now. Lists the key
   * Secrets first, so a key that another replica made moments ago (not yet seen by this one's watch)
   * is not made twice. `notBefore`: a forced renewal is already satisfied by a key made at or after it.
   */
  ensure(force?: RenewTrigger, notBefore?: Date): Promise<SealingKey | null> {
    const run = () => this.ensureNow(force, notBefore)
    const p = this.tail.then(run, run)
    this.tail = p.catch(() => undefined)
    return p
  }

  private async ensureNow(force?: RenewTrigger, notBefore?: Date): Promise<SealingKey | null> {
    const ctx = this.o.context?.() ?? {}
    for (const s of (await this.o.api.listSecrets(this.o.namespace, KEY_SELECTOR, ctx)).items) this.o.store.upsertSecret(s)
    const due = this.due()
    const now = this.o.now()
    const newest = this.o.store.newest()
    let trigger: KeyTrigger | undefined
    if (!newest) trigger = 'initial'
    else if (due && due.getTime() <= now.getTime()) {
      trigger = this.o.cutoff && !sealsAt(newest, now, this.o.cutoff) ? 'cutoff' : 'schedule'
    } else if (force && !(notBefore && newest.created.getTime() >= notBefore.getTime())) trigger = force
    if (!trigger) return null
    const reason = {
      initial: 'no sealing key yet',
      schedule: 'the newest sealing key is due for renewal',
      cutoff: 'the newest sealing key is older than --key-cutoff',
      signal: 'renewal requested',
    }[trigger]
    this.o.log.info('generating a sealing key', {reason, trigger, bits: this.o.bits, namespace: this.o.namespace})
    const g = await generateSealingKey(this.o.bits, now)
    let secret: Secret
    try {
      secret = await this.o.api.createSecret(this.o.namespace, keySecret(this.o.namespace, g, now), ctx)
    } catch (e) {
      if (!isAlreadyExists(e)) throw e
      secret = keySecret(this.o.namespace, g, now)
    }
    const k = this.o.store.upsertSecret(secret)
    if (!k) throw new Error('the generated key Secret could not be loaded')
    this.o.log.info('sealing key generated', {kid: k.kid, trigger, secret: `${this.o.namespace}/${k.secretName}`})
    this.o.onGenerated?.(k, trigger)
    return k
  }

  /** Runs `ensure` now and then whenever the newest key falls due, until stopped. */
  start(): Promise<void> {
    this.stopped = false
    const first = this.loop()
    return first
  }

  /** Checks the schedule now (e.g. after the clock moved) instead of at the next timer. */
  wake(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    if (this.timer) clearTimeout(this.timer)
    return this.loop()
  }

  private async loop(attempt = 0): Promise<void> {
    if (this.stopped) return
    let next: number
    try {
      this.running = this.ensure()
      await this.running
      const due = this.due()
      // Wake up at the due time, or hourly to notice clock jumps; timers cannot wait longer than ~24 days.
      next = due ? Math.max(1000, Math.min(3_600_000, due.getTime() - this.o.now().getTime())) : 3_600_000
      attempt = 0
    } catch (e) {
      // Stopped (this replica's term as leader ended, its calls aborted): nothing failed.
      if (this.stopped) return
      this.o.log.error('sealing key generation failed; retrying', {error: describeError(e)})
      next = Math.min(30_000, 500 * 2 ** attempt++)
      if (this.o.store.size === 0) {
        // Nothing can be unsealed without a key: keep trying until there is one.
        await sleep(next)
        return this.loop(attempt)
      }
    }
    if (this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.loop(attempt), next)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.running?.catch(() => undefined)
    await this.tail
  }
}
