/**
 * The controller's sealing keys: RSA key pairs kept as `kubernetes.io/tls` Secrets in its own
 * namespace, labelled `kseal.dev/sealing-key: active`. Every replica loads all of them (each opens
 * the SealedSecrets sealed to it, chosen by key id); the newest is the one published for sealing.
 * Only the leader generates: on first start, and again each renew period.
 *
 * Trust: a label is not enough (anything that can create a Secret in the namespace, or a
 * SealedSecret unsealed into it, could set one). A key Secret is loaded only when it carries
 * `kseal.dev/key-mac`: an HMAC over its namespace, name, key id, creation time and certificate,
 * keyed with the trust root — 32 random bytes the controller keeps in the Secret `kseal-key-trust`
 * (label `kseal.dev/sealing-key: trust-root`) of the same namespace, which only the controller and
 * administrators can read. The controller signs the keys it generates; an administrator imports a
 * key with `kseal keys import` (which signs it with the root) or restores the namespace's keys
 * together with the trust root from a backup. When the controller creates the trust root (first
 * start, or the first start of a version with this check), it adopts the key Secrets already there,
 * logging each one. Keys dated in the future and RSA keys under 2048 bits are refused.
 */
import crypto from 'node:crypto'
import {promisify} from 'node:util'
import {rsaKid, RsaIdentity} from '../../../keys/rsa.js'
import type {RsaDecryptPool} from '../../../keys/rsa-pool.js'
import type {Unwrap} from '../../keyring/keyring.js'
import {macEqual} from '../../envelope/envelope.js'
import {KsealError} from '../../core/errors.js'
import {selfSignedCert} from '../../ops/keygen.js'
import {type CallContext, type ClusterApi, describeError, isAlreadyExists, type Secret, sleep} from '../../kube/api.js'
import type {Logger} from '../log.js'

export const KEY_LABEL = 'kseal.dev/sealing-key'
export const KEY_LABEL_ACTIVE = 'active'
export const KEY_SELECTOR = `${KEY_LABEL}=${KEY_LABEL_ACTIVE}`
export const KEY_CREATED_ANNOTATION = 'kseal.dev/created-at'
export const KEY_ID_ANNOTATION = 'kseal.dev/key-id'
export const KEY_MAC_ANNOTATION = 'kseal.dev/key-mac'
/** The Secret holding the trust root, and its label value. */
export const TRUST_SECRET = 'kseal-key-trust'
export const KEY_LABEL_TRUST = 'trust-root'
/** What the key reflector watches: every Secret with the label (keys and the trust root). */
export const KEY_WATCH_SELECTOR = KEY_LABEL
const MIN_KEY_BITS = 2048
/** A key's creation time may be this far ahead of the controller's clock (skew between replicas). */
const FUTURE_SKEW_MS = 5 * 60_000
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
  /** The trust root, when known at construction (tests); otherwise it arrives as its Secret. */
  trustRoot?: Buffer
  now?: () => Date
}

/** The MAC that makes a key Secret trusted: HMAC-SHA256(root, JSON [tag, namespace, name, kid, created, SHA-256 of the certificate PEM]). */
export function keyMac(root: Buffer, namespace: string, name: string, kid: string, created: string, certPem: string): string {
  const cert = crypto.createHash('sha256').update(certPem, 'utf8').digest('base64')
  return crypto.createHmac('sha256', root).update(JSON.stringify(['kseal/v1 sealing key', namespace, name, kid, created, cert])).digest('base64')
}

/** A new trust root Secret (32 random bytes). */
export function trustSecret(namespace: string, root: Buffer = crypto.randomBytes(32)): Secret {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: {name: TRUST_SECRET, namespace, labels: {[KEY_LABEL]: KEY_LABEL_TRUST}},
    data: {root: root.toString('base64')},
  }
}

/** The trust root in a Secret, when it is the trust root Secret. */
export function trustRootOf(s: Secret): Buffer | null {
  if (s.metadata?.name !== TRUST_SECRET || s.metadata?.labels?.[KEY_LABEL] !== KEY_LABEL_TRUST) return null
  const root = Buffer.from(s.data?.root ?? '', 'base64')
  return root.length === 32 ? root : null
}

const b64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'))

/**
 * Reads a key Secret and checks that it may be trusted: a PEM RSA key of at least 2048 bits and its
 * certificate, not dated in the future, signed with the trust root. Throws, saying why, otherwise.
 */
export function parseKeySecret(s: Secret, root: Buffer, now: Date): Omit<SealingKey, 'identity'> & {key: crypto.KeyObject} {
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
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < MIN_KEY_BITS) throw new Error(`an RSA key of ${bits} bits is too small (at least ${MIN_KEY_BITS})`)
  const kid = rsaKid(crypto.createPublicKey(key))
  if (rsaKid(cert.publicKey) !== kid) throw new Error('tls.crt does not belong to tls.key')
  const ann = s.metadata?.annotations?.[KEY_CREATED_ANNOTATION]
  const createdRaw = ann ?? s.metadata?.creationTimestamp
  const created = createdRaw ? new Date(createdRaw as string | Date) : new Date(0)
  if (created.getTime() > now.getTime() + FUTURE_SKEW_MS) throw new Error(`dated in the future (${created.toISOString()}): refused, so it cannot outrank the real keys`)
  const mac = s.metadata?.annotations?.[KEY_MAC_ANNOTATION]
  const want = keyMac(root, s.metadata?.namespace ?? '', s.metadata?.name ?? '', kid, ann ?? '', certPem)
  if (!mac || !macEqual(want, mac)) {
    throw new Error(`not trusted: no valid ${KEY_MAC_ANNOTATION} (the controller signs the keys it makes; import others with kseal keys import)`)
  }
  return {
    kid,
    secretName: s.metadata?.name ?? '',
    created: Number.isNaN(created.getTime()) ? new Date(0) : created,
    certPem,
    key,
  }
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

  /** The key that seals: the most recently created. */
  newest(): SealingKey | undefined {
    return this.all().at(-1)
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
      if (had && had.secretName === k.secretName && had.created.getTime() === k.created.getTime()) return had
      this.byKid.set(k.kid, k)
      this.o.log.info('sealing key loaded', {secret: name, kid: k.kid, created: k.created.toISOString()})
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
    return {kid: k.kid, secretName: k.secretName, created: k.created, certPem: k.certPem,
      identity: new RsaIdentity(k.key, `Secret ${s.metadata?.namespace}/${s.metadata?.name}`, this.o.pool)}
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

/** The Secret a key pair is stored in, signed with the trust root. */
export function keySecret(namespace: string, k: {kid: string; keyPem: string; certPem: string}, created: Date, root: Buffer, name = `kseal-key-${k.kid}`): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {
      name,
      namespace,
      labels: {[KEY_LABEL]: KEY_LABEL_ACTIVE},
      annotations: {
        [KEY_CREATED_ANNOTATION]: created.toISOString(),
        [KEY_ID_ANNOTATION]: k.kid,
        [KEY_MAC_ANNOTATION]: keyMac(root, namespace, name, k.kid, created.toISOString(), k.certPem),
      },
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
    if (!root) throw new Error(`the trust root Secret ${ns}/${TRUST_SECRET} is not one kseal made (label ${KEY_LABEL}=${KEY_LABEL_TRUST}, data.root of 32 bytes): fix or delete it`)
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
        this.o.log.warn('adopting a key Secret that was here before the trust root (upgrade): review it with kseal keys --controller', {secret: `${ns}/${k.metadata?.name}`, kid})
        const signed: Secret = {...k, metadata: {...k.metadata, annotations: {...ann, [KEY_MAC_ANNOTATION]: keyMac(root, ns, k.metadata?.name ?? '', kid, ann[KEY_CREATED_ANNOTATION] ?? '', certPem)}}}
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

/**
 * `kseal keys --import`: the administrator's explicit path for a key the controller did not make (a
 * key from another cluster, a restored backup whose trust root is gone). Needs read access to the
 * trust root and create on Secrets in the key namespace. The key is dated by its certificate (or
 * `created`), so an old key does not become the sealing key unless it is the newest.
 */
export async function importKey(api: ClusterApi, namespace: string, keyPem: string, certPem: string | undefined, created?: Date): Promise<{kid: string; secret: string}> {
  const root = await api.getSecret(namespace, TRUST_SECRET).then((s) => (s ? trustRootOf(s) : null))
  if (!root) throw new KsealError('ERR_CONFIG', `no trust root (Secret ${namespace}/${TRUST_SECRET}): start the controller once before importing keys`)
  let key: crypto.KeyObject
  try {
    key = crypto.createPrivateKey(keyPem)
  } catch {
    throw new KsealError('ERR_CONFIG', 'not a PEM private key')
  }
  const cert = certPem ?? (await selfSignedCert(key, 'kseal-controller (imported)', created ?? new Date(), CERT_DAYS))
  const when = created ?? new Date(new crypto.X509Certificate(cert).validFrom)
  const kid = rsaKid(crypto.createPublicKey(key))
  const secret = keySecret(namespace, {kid, keyPem: key.export({type: 'pkcs8', format: 'pem'}) as string, certPem: cert}, when, root)
  parseKeySecret(secret, root, new Date()) // the controller's own checks: RSA, 2048 bits, matching certificate, not in the future
  try {
    await api.createSecret(namespace, secret)
  } catch (e) {
    if (isAlreadyExists(e)) throw new KsealError('ERR_USAGE', `a key Secret ${namespace}/${secret.metadata!.name} already exists`)
    throw new KsealError('ERR_BACKEND', `cannot create the key Secret: ${describeError(e)}`)
  }
  return {kid, secret: `${namespace}/${secret.metadata!.name}`}
}
