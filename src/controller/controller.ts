/**
 * `kseal controller` wired together: reflectors (SealedSecrets, the Secrets they produce, key
 * Secrets) run on every replica so a standby has warm caches and serves the certificate; the work
 * queue, its workers and the key schedule run only on the Lease holder, for one *term*: every API
 * call of the term carries its AbortSignal and a write fence (the elector's monotonic renew
 * deadline, read at the moment of each write), and losing the Lease aborts the calls in flight,
 * drops the queue and stops the workers. Shutdown drains the workers, then releases the Lease.
 */
import {performance} from 'node:perf_hooks'
import {RsaDecryptPool} from '../../keys/rsa-pool.js'
import {SEALED_GROUP, SEALED_PLURAL, SEALED_VERSION, type SealedSecretObject} from '../sealed/types.js'
import {HTTP_LIMITS, startHttpServer, type HttpServer} from './http/server.js'
import {KEY_WATCH_SELECTOR} from '../sealed/sealing-key.js'
import {type KeyListEntry, keyList, sealedOnOldKeys, sealingKeyOf} from './keystore/accounting.js'
import {KeyRenewer, type RenewTrigger} from './keystore/renewer.js'
import {KeyStore, type SealingKey} from './keystore/store.js'
import {KsealError} from '../core/errors.js'
import {type CallContext, clusterApi, type ClusterApi, type Secret} from '../kube/api.js'
import {loadKubeConfig} from '../kube/config.js'
import {describeError} from '../kube/errors.js'
import {LeaderElector} from './runtime/leader.js'
import {createLogger, type Logger} from './log.js'
import type {ControllerOptions} from './options.js'
import {ControllerMetrics} from './http/metrics.js'
import {WorkQueue} from './runtime/queue.js'
import {OWNED_SELECTOR, slimSecret} from './owned.js'
import {type Outcome, Reconciler} from './sealed/reconcile.js'
import {handleReseal, RESEAL_MAX_BYTES} from './sealed/reseal.js'
import {TokenBucket} from '../core/limit.js'
import {objectKey, Reflector} from './runtime/reflector.js'

export interface ControllerDeps {
  log?: Logger
  now?: () => Date
  /** An API adapter (tests); otherwise one is built from the kubeconfig. */
  api?: ClusterApi
  /** The elector's monotonic clock in ms (tests); default performance.now. */
  monotonic?: () => number
}

const WATCH_TIMEOUT = () => 300 + Math.floor(Math.random() * 300)

export class Controller {
  readonly keys: KeyStore
  readonly metrics: ControllerMetrics
  private readonly log: Logger
  private readonly now: () => Date
  private readonly pool = new RsaDecryptPool()
  private readonly sealed: Reflector<SealedSecretObject>[] = []
  /** The Secrets the controller wrote (label-selected, without data), per watched namespace. */
  private readonly owned: Reflector<Secret>[] = []
  private keyReflector!: Reflector<Secret>
  /** The current term as leader: its calls' context, and the controller that ends them. */
  private term?: {abort: AbortController; ctx: CallContext}
  private queue?: WorkQueue
  private workers: Promise<void>[] = []
  private renewer!: KeyRenewer
  private reconciler!: Reconciler
  private elector?: LeaderElector
  private leading = false
  private http?: HttpServer
  private resyncTimer?: NodeJS.Timeout
  private noKey = new Set<string>()
  /** SealedSecrets being reconciled now, and those whose Secret changed meanwhile (decided when the reconcile ends). */
  private readonly reconciling = new Set<string>()
  private readonly recheck = new Set<string>()
  private stopping?: Promise<void>
  private api!: ClusterApi

  constructor(
    readonly o: ControllerOptions,
    private readonly deps: ControllerDeps = {},
  ) {
    this.log = deps.log ?? createLogger({level: o.logLevel})
    this.now = deps.now ?? (() => new Date())
    this.keys = new KeyStore({pool: this.pool, log: this.log, onDecrypt: () => this.metrics.decryptions.inc(), now: this.now})
    this.metrics = new ControllerMetrics({
      keys: () => this.keys.size,
      keyAgeSeconds: () => {
        const k = this.keys.newest()
        return k ? Math.max(0, (this.now().getTime() - k.created.getTime()) / 1000) : 0
      },
      leader: () => this.leading && this.mayWrite(),
      queueDepth: () => this.queue?.length ?? 0,
      sealedOnOldKeys: () => this.sealedOnOldKeys(),
    })
  }

  /** The key that seals now: the newest, unless --key-cutoff has retired it (then none until the leader makes one). */
  sealingKey(): SealingKey | undefined {
    return sealingKeyOf(this.keys.all(), this.now(), this.o.keyCutoff)
  }

  private *sealedObjects(): Iterable<SealedSecretObject> {
    for (const r of this.sealed) yield* r.cache.values()
  }

  /** SealedSecrets still sealed (in any part) to an old key: when 0, the old keys can be retired. */
  sealedOnOldKeys(): number {
    return sealedOnOldKeys(this.keys.all(), this.sealedObjects(), this.o.keyCutoff)
  }

  /** `/v1/keys`: every key this replica holds, oldest first; public facts only. */
  keyList(): KeyListEntry[] {
    return keyList(this.keys.all(), this.sealedObjects(), this.now(), this.o.keyCutoff)
  }

  /**
   * An on-demand key renewal (SIGUSR1): the leader renews at once; any other replica leaves the
   * request on the leader Lease, where the leader picks it up on its next round.
   */
  async requestRenewal(trigger: RenewTrigger = 'signal'): Promise<void> {
    this.metrics.renewalRequests.inc({via: this.leading ? 'leader' : 'lease'})
    if (this.leading) {
      this.log.info('key renewal requested: renewing now', {trigger, identity: this.o.identity})
      await this.renewer.ensure(trigger)
      return
    }
    if (!this.elector) throw new Error('not leading yet: the request is dropped')
    this.log.info('key renewal requested: asking the leader through the Lease', {
      trigger,
      identity: this.o.identity,
      lease: `${this.o.keyNamespace}/${this.o.leaseName}`,
    })
    await this.elector.requestRenewal()
  }

  /** The leader re-checks its key schedule now rather than at its next timer (after a clock change; tests). */
  checkKeys(): Promise<void> {
    return this.leading ? this.renewer.wake() : Promise.resolve()
  }

  get isLeader(): boolean {
    return this.leading
  }

  get address(): string | undefined {
    return this.http?.address
  }

  /** Null when ready; else why not. */
  notReady(): string[] | null {
    const why: string[] = []
    if (this.keys.size === 0) why.push('no sealing key loaded')
    // Not the watch on owned Secrets: without it (say, RBAC not yet granting list/watch after an
    // upgrade) every Secret is read from the API instead, and its list/watch failures are logged.
    if (!this.keyReflector?.synced || this.sealed.some((r) => !r.synced)) why.push('SealedSecrets not listed yet')
    return why.length ? why : null
  }

  async start(): Promise<void> {
    const o = this.o
    this.api =
      this.deps.api ??
      (await clusterApi(await loadKubeConfig({kubeconfig: o.kubeconfig, context: o.context}), {
        onRetry: (e, attempt) => {
          this.metrics.apiRetries.inc()
          this.log.debug('retrying an API call', {error: describeError(e), attempt})
        },
      }))
    const api = this.api
    this.log.info('kseal controller starting', {
      identity: o.identity,
      namespaces: o.namespaces.length ? o.namespaces : ['*'],
      keyNamespace: o.keyNamespace,
      keyCutoff: o.keyCutoff?.toISOString(),
      keyRenewPeriod: o.keyRenewPeriodMs ? `${o.keyRenewPeriodMs / 1000}s` : 'never',
      leaderElect: o.leaderElect,
    })

    this.reconciler = new Reconciler({
      api,
      unwrap: this.keys.unwrap,
      log: this.log,
      identity: o.identity,
      now: this.now,
      keyNamespace: o.keyNamespace,
      cachedSecret: (ns, name) => this.ownedSecret(ns, name),
      onConflict: (reason) => this.metrics.conflicts.inc({reason}),
    })
    this.renewer = new KeyRenewer({
      api,
      store: this.keys,
      namespace: o.keyNamespace,
      periodMs: o.keyRenewPeriodMs,
      cutoff: o.keyCutoff,
      bits: o.keyBits,
      now: this.now,
      log: this.log,
      context: () => this.term?.ctx ?? {beforeWrite: () => this.refuse()},
      onGenerated: (_k, trigger) => {
        this.metrics.keysGenerated.inc()
        if (trigger !== 'initial') this.metrics.renewals.inc({trigger})
      },
    })
    this.keys.onChange(() => {
      // SealedSecrets that waited for a key get another chance at once.
      for (const key of this.noKey) this.queue?.add(key)
    })

    const keysPath = `/api/v1/namespaces/${encodeURIComponent(o.keyNamespace)}/secrets`
    this.keyReflector = new Reflector<Secret>(
      {
        // Keys and the trust root that vouches for them.
        list: () => api.listSecrets(o.keyNamespace, KEY_WATCH_SELECTOR),
        watch: (rv, onEvent, done) =>
          api.watch(
            keysPath,
            {resourceVersion: rv, labelSelector: KEY_WATCH_SELECTOR, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT()},
            onEvent,
            done,
          ),
      },
      {upsert: (s) => this.keys.upsertSecret(s), delete: (s) => this.keys.removeSecret(s)},
      {name: 'key Secrets', log: this.log},
    )

    for (const ns of o.namespaces.length ? o.namespaces : [undefined]) {
      const path = api.customPath(SEALED_GROUP, SEALED_VERSION, SEALED_PLURAL, ns)
      this.sealed.push(
        new Reflector<SealedSecretObject>(
          {
            list: () => api.listCustom<SealedSecretObject>(SEALED_GROUP, SEALED_VERSION, SEALED_PLURAL, ns),
            watch: (rv, onEvent, done) =>
              api.watch(path, {resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT()}, onEvent, done),
          },
          {
            upsert: (obj, old) => {
              // Status writes (ours) do not bump the generation: they need no reconcile.
              if (
                !old ||
                old.metadata.generation !== obj.metadata.generation ||
                old.metadata.uid !== obj.metadata.uid ||
                !!old.metadata.deletionTimestamp !== !!obj.metadata.deletionTimestamp ||
                obj.metadata.generation === undefined
              ) {
                this.queue?.add(objectKey(obj))
              }
            },
            delete: (obj) => {
              this.noKey.delete(objectKey(obj))
              this.reconciler.forget(obj.metadata.uid)
              this.log.debug('SealedSecret deleted; its Secret is garbage-collected', {sealedSecret: objectKey(obj)})
            },
          },
          {name: ns ? `SealedSecrets in ${ns}` : 'SealedSecrets', log: this.log},
        ),
      )
      // The Secrets it wrote, by label: drift (an edit, a deletion, another writer) re-queues the owner at once.
      const secrets = api.secretsPath(ns)
      this.owned.push(
        new Reflector<Secret>(
          {
            list: () => api.listSecrets(ns, OWNED_SELECTOR),
            watch: (rv, onEvent, done) =>
              api.watch(
                secrets,
                {resourceVersion: rv, labelSelector: OWNED_SELECTOR, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT()},
                onEvent,
                done,
              ),
          },
          {
            upsert: (s, old) => {
              if (old?.metadata?.resourceVersion !== s.metadata?.resourceVersion) this.secretChanged(s)
            },
            delete: (s) => this.secretChanged(s),
          },
          {name: ns ? `owned Secrets in ${ns}` : 'owned Secrets', log: this.log, transform: slimSecret},
        ),
      )
    }

    // Each /v1/rotate request costs RSA work and needs no credentials, so the rate is capped.
    const rotateBucket =
      o.rotateRateLimit > 0 ? new TokenBucket(o.rotateRateLimit, Math.max(1, o.rotateRateBurst), () => this.now().getTime()) : undefined
    this.http = await startHttpServer(o.listen, {
      certPem: () => this.sealingKey()?.certPem,
      notReady: () => this.notReady(),
      metrics: () => this.metrics.render(),
      keys: () => this.keyList(),
      maxBodyBytes: RESEAL_MAX_BYTES,
      limits: {...HTTP_LIMITS, ...o.httpLimits},
      resealAdmit: () => {
        const wait = rotateBucket?.take() ?? 0
        if (wait > 0) this.metrics.reseals.inc({result: 'limited'})
        return wait
      },
      reseal: async (body, contentType) => {
        const r = await handleReseal(body, contentType, this.keys.unwrap, this.sealingKey())
        this.metrics.reseals.inc({result: r.outcome})
        if (r.outcome === 'failed')
          this.log.warn('rotate request refused', {status: r.status, code: r.code, sealedSecret: r.sealedSecret, error: r.message})
        else
          this.log.info(
            r.outcome === 'resealed' ? 'resealed a SealedSecret to the newest key' : 'SealedSecret already sealed to the newest key',
            {sealedSecret: r.sealedSecret, from: r.from, to: r.to},
          )
        return r
      },
    })
    this.log.info('serving HTTP', {
      address: this.http.address,
      endpoints: ['/v1/cert.pem', '/v1/keys', '/v1/rotate', '/healthz', '/readyz', '/metrics'],
    })

    this.keyReflector.start()
    for (const r of [...this.sealed, ...this.owned]) r.start()

    const callbacks = {
      onStartedLeading: () => void this.startLeading(),
      onStoppedLeading: () => void this.stopLeading(),
      onNewLeader: (id: string) => {
        if (id !== o.identity) this.log.info('leader is another replica', {leader: id})
      },
      onRenewRequested: (at: Date) => {
        // Satisfied by any key made since the request (e.g. two requests before this round).
        this.renewer.ensure('signal', at).catch((e) => this.log.error('requested key renewal failed', {error: describeError(e)}))
      },
    }
    if (o.leaderElect) {
      this.elector = new LeaderElector({
        api,
        namespace: o.keyNamespace,
        name: o.leaseName,
        identity: o.identity,
        log: this.log,
        now: this.now,
        monotonic: this.deps.monotonic,
        leaseDurationMs: o.leaseDurationMs,
        renewDeadlineMs: o.renewDeadlineMs,
        retryPeriodMs: o.retryPeriodMs,
      })
      this.elector.start(callbacks)
    } else {
      callbacks.onStartedLeading()
    }
  }

  /** Whether this replica may write now: it holds the Lease (by the elector's monotonic deadline), or leader election is off. */
  private mayWrite(): boolean {
    return !this.elector || this.elector.holds()
  }

  /** A write this replica may not make: counted, and refused with ERR_NOT_LEADER. */
  private refuse(): never {
    this.metrics.fencedWrites.inc()
    throw new KsealError('ERR_NOT_LEADER', 'write refused: this replica cannot prove it holds the leader Lease')
  }

  private async startLeading(): Promise<void> {
    if (this.leading || this.stopping) return
    this.leading = true
    const abort = new AbortController()
    const term = {abort, ctx: {} as CallContext}
    term.ctx = {
      signal: abort.signal,
      // At the moment of each write: still this term, and the Lease still provably ours.
      beforeWrite: () => {
        if (this.term !== term || !this.mayWrite()) this.refuse()
      },
    }
    this.term = term
    // Keys first: nothing unseals without one, and only the leader makes them.
    await this.renewer.start()
    if (!this.leading || this.stopping || this.term !== term) return
    const queue = new WorkQueue({baseDelayMs: 200, maxDelayMs: 300_000, jitter: 0.25})
    this.queue = queue
    for (const r of this.sealed) for (const key of r.cache.keys()) queue.add(key)
    this.workers = Array.from({length: Math.max(1, this.o.workers)}, () => this.work(queue, term.ctx))
    if (this.o.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => {
        for (const r of this.sealed) for (const key of r.cache.keys()) queue.add(key)
      }, this.o.resyncPeriodMs)
      this.resyncTimer.unref()
    }
    this.log.info('reconciling', {workers: this.workers.length, sealedSecrets: this.sealed.reduce((n, r) => n + r.cache.size, 0)})
  }

  private async stopLeading(): Promise<void> {
    this.leading = false
    if (this.resyncTimer) clearInterval(this.resyncTimer)
    // Taken synchronously: leadership may come back before the in-flight work has drained.
    const term = this.term
    const queue = this.queue
    const workers = this.workers
    this.term = undefined
    this.queue = undefined
    this.workers = []
    // Calls in flight fail now; no queued key is handed out again; nothing decrypted stays in memory.
    term?.abort.abort(new KsealError('ERR_NOT_LEADER', 'this replica stopped leading'))
    queue?.shutDown()
    this.reconciler?.reset()
    await Promise.all([this.renewer?.stop(), ...workers])
    // Again once the old workers are done (they may have kept something on their way out), unless a new term began.
    if (!this.term) this.reconciler?.reset()
  }

  /** The watched copy of a Secret the controller wrote (no data), if its watch holds one. */
  private ownedSecret(namespace: string, name: string): Secret | undefined {
    const key = `${namespace}/${name}`
    for (const r of this.owned) {
      const s = r.cache.get(key)
      if (s) return s
    }
    return undefined
  }

  /**
   * A Secret the controller wrote changed or disappeared: its SealedSecret is reconciled again
   * (through the key's backoff, so a writer fighting over it is met less and less often), unless the
   * change is the echo of the controller's own last write. While its SealedSecret is being reconciled
   * the echo cannot be told yet — the watch may bring the controller's own write before the write's
   * answer says which resourceVersion it got — so the decision waits for the reconcile to end.
   */
  private secretChanged(s: Secret): void {
    const key = objectKey(s)
    if (!this.queue || !this.lookup(key)) return
    if (this.reconciling.has(key)) {
      this.recheck.add(key)
      return
    }
    if (this.reconciler.isOwnWrite(s)) return
    this.requeueChanged(this.queue, key)
  }

  private requeueChanged(queue: WorkQueue, key: string): void {
    const ms = queue.addRateLimited(key)
    if (ms !== undefined) this.log.debug('Secret changed: its SealedSecret is requeued', {sealedSecret: key, retryInMs: ms})
  }

  /** After a reconcile: a change to its Secret seen meanwhile is another writer's, unless the watched copy is now the controller's own write. */
  private recheckChanged(queue: WorkQueue, key: string): void {
    if (!this.recheck.delete(key)) return
    const [ns, name] = key.split('/')
    const s = this.ownedSecret(ns, name)
    if (s && this.reconciler.isOwnWrite(s)) return
    this.requeueChanged(queue, key)
  }

  private lookup(key: string): SealedSecretObject | undefined {
    for (const r of this.sealed) {
      const o = r.cache.get(key)
      if (o) return o
    }
    return undefined
  }

  private async work(queue: WorkQueue, ctx: CallContext): Promise<void> {
    for (;;) {
      const key = await queue.get()
      if (key === undefined) return
      const obj = this.lookup(key)
      if (!obj) {
        queue.forget(key)
        queue.done(key)
        continue
      }
      const t0 = performance.now()
      let out: Outcome
      this.reconciling.add(key)
      try {
        out = await this.reconciler.reconcile(obj, ctx)
      } catch (e) {
        this.log.error('reconcile failed unexpectedly', {sealedSecret: key, error: describeError(e)})
        out = {result: 'failed', reason: 'ApiError', message: describeError(e), retry: 'backoff'}
      } finally {
        this.reconciling.delete(key)
      }
      this.metrics.duration.observe((performance.now() - t0) / 1000)
      this.metrics.reconciles.inc({result: out.result})
      if (out.result === 'failed') this.metrics.failures.inc({reason: out.reason})
      if (out.reason === 'NoKey') this.noKey.add(key)
      else this.noKey.delete(key)
      if (out.retry === 'backoff') {
        // A timer, never at once: a reconcile refused by the fence must not spin while the elector steps down.
        const ms = queue.addRateLimited(key)
        if (ms !== undefined) this.log.debug('requeued with backoff', {sealedSecret: key, reason: out.reason, retryInMs: ms})
      } else if (!out.contested) {
        queue.forget(key)
      }
      this.recheckChanged(queue, key)
      queue.done(key)
    }
  }

  /** Graceful shutdown: finish in-flight work, release the Lease, close everything. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down')
      await this.stopLeading()
      await this.elector?.stop()
      await Promise.all([this.keyReflector?.stop(), ...[...this.sealed, ...this.owned].map((r) => r.stop())])
      await this.http?.close()
      await this.pool.close()
      this.log.info('stopped')
    })()
    return this.stopping
  }
}

export async function startController(o: ControllerOptions, deps: ControllerDeps = {}): Promise<Controller> {
  const c = new Controller(o, deps)
  try {
    await c.start()
  } catch (e) {
    await c.stop().catch(() => undefined)
    throw e
  }
  return c
}
