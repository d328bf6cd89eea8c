/**
 * The leader's key schedule: the trust root on first start (adopting keys an older version left),
 * the first sealing key, and a new one whenever the newest is due (the renew period, --key-cutoff)
 * or an operator asks for one (SIGUSR1). Only the leader generates.
 */
import crypto from 'node:crypto'
import {rsaKid} from '../../../keys/rsa.js'
import {backoff, sleep} from '../../core/retry.js'
import type {CallContext, ClusterApi, Secret} from '../../kube/api.js'
import {describeError, isAlreadyExists} from '../../kube/errors.js'
import {
  generateSealingKey,
  KEY_CREATED_ANNOTATION,
  KEY_LABEL,
  KEY_LABEL_TRUST,
  KEY_MAC_ANNOTATION,
  KEY_SELECTOR,
  keyMac,
  keySecret,
  TRUST_SECRET,
  trustRootOf,
  trustSecret,
} from '../../sealed/sealing-key.js'
import type {Logger} from '../log.js'
import type {KeyStore, SealingKey} from './store.js'

const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'))

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
    await this.ensureTrustRoot()
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
    const root = this.o.store.trustRoot!
    let secret: Secret
    try {
      secret = await this.o.api.createSecret(this.o.namespace, keySecret(this.o.namespace, g, now, root), ctx)
    } catch (e) {
      if (!isAlreadyExists(e)) throw e
      secret = keySecret(this.o.namespace, g, now, root)
    }
    const k = this.o.store.upsertSecret(secret)
    if (!k) throw new Error('the generated key Secret could not be loaded')
    this.o.log.info('sealing key generated', {kid: k.kid, trigger, secret: `${this.o.namespace}/${k.secretName}`})
    this.o.onGenerated?.(k, trigger)
    return k
  }

  /**
   * Makes sure the trust root exists and is known. The replica that creates it (first start, or the
   * first start of a version that checks trust) adopts the key Secrets already there — signing each,
   * with a warning naming it — so an upgrade keeps its keys; after that, only signed keys load.
   */
  private async ensureTrustRoot(): Promise<void> {
    if (this.o.store.trustRoot) return
    const ns = this.o.namespace
    let created: Secret | null = null
    try {
      created = await this.o.api.createSecret(ns, trustSecret(ns))
    } catch (e) {
      if (!isAlreadyExists(e)) throw e
    }
    const s = created ?? (await this.o.api.getSecret(ns, TRUST_SECRET))
    const root = s ? trustRootOf(s) : null
    if (!root)
      throw new Error(
        `the trust root Secret ${ns}/${TRUST_SECRET} is not one kseal made (label ${KEY_LABEL}=${KEY_LABEL_TRUST}, data.root of 32 bytes): fix or delete it`,
      )
    if (created) {
      for (const k of (await this.o.api.listSecrets(ns, KEY_SELECTOR)).items) {
        const ann = k.metadata?.annotations ?? {}
        const certPem = b64(k.data?.['tls.crt'])
        if (!certPem) continue
        let kid: string
        try {
          kid = rsaKid(new crypto.X509Certificate(certPem).publicKey)
        } catch {
          continue
        }
        this.o.log.warn('adopting a key Secret that was here before the trust root (upgrade): review it with kseal keys --controller', {
          secret: `${ns}/${k.metadata?.name}`,
          kid,
        })
        const signed: Secret = {
          ...k,
          metadata: {
            ...k.metadata,
            annotations: {
              ...ann,
              [KEY_MAC_ANNOTATION]: keyMac(root, ns, k.metadata?.name ?? '', kid, ann[KEY_CREATED_ANNOTATION] ?? '', certPem),
            },
          },
        }
        await this.o.api.replaceSecret(ns, k.metadata?.name ?? '', signed)
      }
    }
    this.o.store.setTrustRoot(root)
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
      next = backoff(++attempt, {baseMs: 500, maxMs: 30_000})
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
