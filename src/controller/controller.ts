/**
 * `kseal controller` wired together: reflectors (SealedSecrets, the Secrets they produce, key
 * Secrets) run on every replica so a standby has warm caches and serves the certificate; the work
 * queue, its workers and the key schedule run only on the Lease holder, for one *term*: every API
 * call of the term carries its AbortSignal and a write fence (the elector's monotonic renew
 * deadline, read at the moment of each write), and losing the Lease aborts the calls in flight,
 * drops the queue and stops the workers. Shutdown drains the workers, then releases the Lease.
 * ExternalSecrets (external/sync.ts) run the same way beside SealedSecrets: their reflectors on every
 * replica, their queue, workers and refresh timers for the term, every write through the term's fence.
 */
import {readFileSync} from 'node:fs'
import {performance} from 'node:perf_hooks'
import {RsaDecryptPool} from '../../keys/rsa-pool.js'
import type {SealedSecretObject} from '../sealed/types.js'
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
import {OWNED_SELECTOR, labelledSecrets} from './owned.js'
import {type ConflictReason, type Outcome, Reconciler} from './sealed/reconcile.js'
import {bitnamiKind, type KeyDecrypt, KSEAL_KIND, type SealedKind} from './sealed/kind.js'
import {failure, handleReseal, handleVerify, RESEAL_MAX_BYTES} from './sealed/reseal.js'
import {bitnamiBody, rotateBitnami, verifyBitnami} from './sealed/bitnami-http.js'
import {slimSealed} from './sealed/slim.js'
import {carryCompaction} from './sealed/compact.js'
import {TokenBucket} from '../core/limit.js'
import {sleep} from '../core/retry.js'
import {objectKey, Reflector, specChanged} from './runtime/reflector.js'
import {SecretChanges} from './runtime/echoes.js'
import {runWorker} from './runtime/worker.js'
import type {KubeConfig} from '@kubernetes/client-node'
import type {StoreAccess} from '../external/store.js'
import type {AwsOptions, KubernetesOptions, VaultOptions} from '../external/providers/index.js'
import type {ExternalSync} from './external/sync.js'

export interface ControllerDeps {
  log?: Logger
  now?: () => Date
  /** An API adapter (tests); otherwise one is built from the kubeconfig. */
  api?: ClusterApi
  /** The elector's monotonic clock in ms (tests); default performance.now. */
  monotonic?: () => number
  /** What ExternalSecret stores may read in the cluster (tests); otherwise through the kubeconfig's credentials. */
  access?: StoreAccess
  /** Provider settings (tests: local endpoints, credentials); otherwise each SDK's defaults. */
  providers?: {aws?: AwsOptions; vault?: VaultOptions; kubernetes?: KubernetesOptions}
}

/** A sealed-secrets SealedSecret sent to a controller that does not serve them. */
const BITNAMI_OFF = failure(400, 'ERR_USAGE', 'a bitnami.com/v1alpha1 SealedSecret: this controller serves them only with --bitnami')

const WATCH_TIMEOUT = () => 300 + Math.floor(Math.random() * 300)
/** How long a new leader waits for the owned-Secret watch's first list before it reads Secrets from the API instead. */
const OWNED_LIST_WAIT_MS = 30_000

export class Controller {
  readonly keys: KeyStore
  readonly metrics: ControllerMetrics
  private readonly log: Logger
  private readonly now: () => Date
  /** Bursts of unwraps run on libuv's thread pool, not in worker threads: no V8 isolate per core to keep (keys/rsa-pool.ts). */
  private readonly pool = new RsaDecryptPool(undefined, undefined, 'threadpool')
  /** Bitnami values' RSA step on the same pool as kseal's unwraps: the event loop (and the Lease renewals) stay free. */
  private readonly poolDecrypt: KeyDecrypt = (k, ct, label) => this.pool.decrypt(k.identity, ct, label)
  private readonly sealed: Reflector<SealedSecretObject>[] = []
  /** sealed-secrets' SealedSecrets, with --bitnami (their queue keys carry the kind's prefix). */
  private readonly bitnami: Reflector<SealedSecretObject>[] = []
  /** The Secrets the controller wrote (label-selected, without data), per watched namespace. */
  private readonly owned: Reflector<Secret>[] = []
  private keyReflector!: Reflector<Secret>
  /** The current term as leader: its calls' context, and the controller that ends them. */
  private term?: {abort: AbortController; ctx: CallContext}
  private queue?: WorkQueue
  private workers: Promise<void>[] = []
  private renewer!: KeyRenewer
  private reconciler!: Reconciler
  private bitnamiReconciler?: Reconciler
  private bitnamiKind?: SealedKind
  private elector?: LeaderElector
  private leading = false
  private http?: HttpServer
  private resyncTimer?: NodeJS.Timeout
  private noKey = new Set<string>()
  /** Changes to the Secrets it wrote: another writer's, or the echo of its own write. */
  private readonly changes = new SecretChanges({
    isOwnWrite: (key, s) => this.kindOf(key)[1].isOwnWrite(s),
    watched: (key) => {
      const [ns, name] = this.kindOf(key)[2].split('/')
      return this.ownedSecret(ns, name)
    },
    requeued: (key, retryInMs) => this.log.debug('Secret changed: its SealedSecret is requeued', {sealedSecret: key, retryInMs}),
  })
  private stopping?: Promise<void>
  private api!: ClusterApi
  /** ExternalSecrets (unless --no-external-secrets). */
  private external?: ExternalSync

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
      queueDepth: () => (this.queue?.length ?? 0) + (this.external?.queueDepth ?? 0),
      sealedOnOldKeys: () => this.sealedOnOldKeys(),
      externalNotReady: () => this.external?.notReady() ?? 0,
      externalSyncAges: () => this.external?.syncAges() ?? [],
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
    if (!this.keyReflector?.synced || [...this.sealed, ...this.bitnami].some((r) => !r.synced)) why.push('SealedSecrets not listed yet')
    return why.length ? why : null
  }

  async start(): Promise<void> {
    const o = this.o
    const kc = this.deps.api ? undefined : await loadKubeConfig({kubeconfig: o.kubeconfig, context: o.context})
    this.api =
      this.deps.api ??
      (await clusterApi(kc!, {
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

    const reconcilerOptions = {
      api,
      unwrap: this.keys.unwrap,
      log: this.log,
      identity: o.identity,
      now: this.now,
      keyNamespace: o.keyNamespace,
      cachedSecret: (ns: string, name: string) => this.ownedSecret(ns, name),
      onConflict: (reason: ConflictReason) => this.metrics.conflicts.inc({reason}),
    }
    this.reconciler = new Reconciler(reconcilerOptions)
    if (o.bitnami) {
      this.bitnamiKind = bitnamiKind(
        () => this.keys.all(),
        () => this.metrics.decryptions.inc(),
        this.poolDecrypt,
      )
      this.bitnamiReconciler = new Reconciler({...reconcilerOptions, kind: this.bitnamiKind})
    }
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
        list: (page) => api.listSecrets(o.keyNamespace, KEY_WATCH_SELECTOR, undefined, page),
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
      this.sealed.push(this.sealedReflector(KSEAL_KIND, this.reconciler, ns))
      if (this.bitnamiKind) this.bitnami.push(this.sealedReflector(this.bitnamiKind, this.bitnamiReconciler!, ns))
      // The Secrets it wrote, by label: drift (an edit, a deletion, another writer) re-queues the owner at once.
      this.owned.push(
        labelledSecrets({
          api,
          namespace: ns,
          selector: OWNED_SELECTOR,
          name: ns ? `owned Secrets in ${ns}` : 'owned Secrets',
          log: this.log,
          watchTimeout: WATCH_TIMEOUT,
          changed: (s) => this.secretChanged(s),
        }),
      )
    }

    if (o.externalSecrets) await this.startExternal(kc)

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
        const bitnami = bitnamiBody(body)
        const r = bitnami
          ? this.bitnamiKind
            ? await rotateBitnami(bitnami, this.keys.all(), this.sealingKey(), this.poolDecrypt, () => this.metrics.decryptions.inc())
            : BITNAMI_OFF
          : await handleReseal(body, contentType, this.keys.unwrap, this.sealingKey())
        this.metrics.reseals.inc({result: r.outcome})
        if (r.outcome === 'failed')
          this.log.warn('rotate request refused', {status: r.status, code: r.code, sealedSecret: r.sealedSecret, error: r.message})
        else
          this.log.info(
            r.outcome === 'resealed' ? 'resealed a SealedSecret to the newest key' : 'SealedSecret already sealed to the newest key',
            {sealedSecret: r.sealedSecret, from: r.from, to: r.to, ...(bitnami ? {kind: 'bitnami.com/SealedSecret'} : {})},
          )
        return r
      },
      verify: async (body, contentType) => {
        const bitnami = bitnamiBody(body)
        const r = bitnami
          ? this.bitnamiKind
            ? await verifyBitnami(bitnami, this.keys.all(), this.poolDecrypt, () => this.metrics.decryptions.inc())
            : BITNAMI_OFF
          : await handleVerify(body, contentType, this.keys.unwrap)
        this.log.info('verify request', {
          status: r.status,
          sealedSecret: r.sealedSecret,
          ...(r.code ? {code: r.code, error: r.message} : {}),
        })
        return r
      },
    })
    this.log.info('serving HTTP', {
      address: this.http.address,
      endpoints: ['/v1/cert.pem', '/v1/keys', '/v1/rotate', '/v1/verify', '/healthz', '/readyz', '/metrics'],
    })

    this.keyReflector.start()
    for (const r of [...this.sealed, ...this.bitnami, ...this.owned]) r.start()
    this.external?.start()

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

  /** ExternalSecrets: their reflectors, and the sync that runs with each term as leader. */
  private async startExternal(kc: KubeConfig | undefined): Promise<void> {
    const {ExternalSync} = await import('./external/sync.js')
    const {clusterAccess} = await import('./external/access.js')
    const p = this.deps.providers ?? {}
    const cluster = kc?.getCurrentCluster()
    const ca = cluster?.caData
      ? Buffer.from(cluster.caData, 'base64').toString('utf8')
      : cluster?.caFile
        ? readFileSync(cluster.caFile, 'utf8')
        : undefined
    this.external = new ExternalSync({
      api: this.api,
      access: this.deps.access ?? clusterAccess(this.api),
      log: this.log,
      identity: this.o.identity,
      now: this.now,
      keyNamespace: this.o.keyNamespace,
      namespaces: this.o.namespaces,
      workers: this.o.workers,
      storeRate: this.o.storeRateLimit,
      storeBurst: this.o.storeRateBurst,
      aws: p.aws,
      vault: p.vault,
      // The kubernetes provider's default cluster: the one the controller runs in.
      kubernetes: p.kubernetes ?? (cluster ? {defaultServer: {url: cluster.server, ca}} : undefined),
      metrics: this.metrics,
      watchTimeout: WATCH_TIMEOUT,
    })
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
    // The first pass finds each Secret in the owned-Secret watch's cache instead of reading it with
    // one GET per SealedSecret: it waits for that watch's first list (a list refused, say by RBAC
    // not yet upgraded, ends the wait: Secrets are then read from the API), at most OWNED_LIST_WAIT_MS.
    await this.ownedListed(abort.signal)
    if (!this.leading || this.stopping || this.term !== term) return
    const queue = new WorkQueue({baseDelayMs: 200, maxDelayMs: 300_000, jitter: 0.25})
    this.queue = queue
    this.enqueueAll(queue)
    this.workers = Array.from({length: Math.max(1, this.o.workers)}, () => this.work(queue, term.ctx))
    this.external?.startLeading(term.ctx)
    if (this.o.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => this.enqueueAll(queue), this.o.resyncPeriodMs)
      this.resyncTimer.unref()
    }
    this.log.info('reconciling', {
      workers: this.workers.length,
      sealedSecrets: this.sealed.reduce((n, r) => n + r.cache.size, 0),
      ...(this.bitnamiKind ? {bitnamiSealedSecrets: this.bitnami.reduce((n, r) => n + r.cache.size, 0)} : {}),
    })
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
    this.bitnamiReconciler?.reset()
    await Promise.all([this.renewer?.stop(), ...workers, this.external?.stopLeading()])
    // Again once the old workers are done (they may have kept something on their way out), unless a new term began.
    if (!this.term) {
      this.reconciler?.reset()
      this.bitnamiReconciler?.reset()
    }
  }

  private async ownedListed(signal: AbortSignal): Promise<void> {
    const bound = new AbortController()
    const stop = () => bound.abort()
    signal.addEventListener('abort', stop, {once: true})
    try {
      await Promise.race([Promise.all(this.owned.map((r) => r.firstList)), sleep(OWNED_LIST_WAIT_MS, bound.signal).catch(() => undefined)])
    } finally {
      signal.removeEventListener('abort', stop)
      bound.abort()
    }
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

  /** A Secret the controller wrote changed or disappeared (runtime/echoes.ts decides whether its SealedSecret is reconciled again). */
  private secretChanged(s: Secret): void {
    const key = this.ownerPrefix(s) + objectKey(s)
    const sealed = this.lookup(key)
    if (!sealed) return
    // Every replica: a SealedSecret whose Secret now matches it is kept compact (sealed/compact.ts).
    this.kindOf(key)[1].compactIfSynced(sealed, this.ownedSecret(s.metadata?.namespace ?? '', s.metadata?.name ?? ''))
    if (this.queue) this.changes.changed(this.queue, key, s)
  }

  /** The queue-key prefix of the kind of SealedSecret that owns a Secret: Bitnami's by its ownerReference, else kseal's. */
  private ownerPrefix(s: Secret): string {
    const k = this.bitnamiKind
    const bitnamiOwned =
      k && (s.metadata?.ownerReferences ?? []).some((r) => r.controller && r.kind === k.kind && r.apiVersion === `${k.group}/${k.version}`)
    return bitnamiOwned ? k.queuePrefix : ''
  }

  /** A queue key's reflectors, reconciler and `namespace/name`. */
  private kindOf(key: string): [Reflector<SealedSecretObject>[], Reconciler, string] {
    const p = this.bitnamiKind?.queuePrefix
    if (p && key.startsWith(p)) return [this.bitnami, this.bitnamiReconciler!, key.slice(p.length)]
    return [this.sealed, this.reconciler, key]
  }

  private lookup(key: string): SealedSecretObject | undefined {
    const [reflectors, , plain] = this.kindOf(key)
    for (const r of reflectors) {
      const o = r.cache.get(plain)
      if (o) return o
    }
    return undefined
  }

  /** Every SealedSecret of every kind served, into the queue (a new term, a resync). */
  private enqueueAll(queue: WorkQueue): void {
    for (const r of this.sealed) for (const key of r.cache.keys()) queue.add(key)
    const p = this.bitnamiKind?.queuePrefix ?? ''
    for (const r of this.bitnami) for (const key of r.cache.keys()) queue.add(p + key)
  }

  /** The reflector of one kind's SealedSecrets in a namespace (all: undefined): a change of generation queues it. */
  private sealedReflector(kind: SealedKind, reconciler: Reconciler, ns: string | undefined): Reflector<SealedSecretObject> {
    const api = this.api
    const path = api.customPath(kind.group, kind.version, kind.plural, ns)
    const what = kind === KSEAL_KIND ? 'SealedSecrets' : `${kind.group} SealedSecrets`
    return new Reflector<SealedSecretObject>(
      {
        list: (page) => api.listCustom<SealedSecretObject>(kind.group, kind.version, kind.plural, ns, undefined, page),
        watch: (rv, onEvent, done) =>
          api.watch(path, {resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT()}, onEvent, done),
      },
      {
        upsert: (obj, old) => {
          // Status writes (ours) do not bump the generation: they need no reconcile, and an object
          // kept compact stays so (sealed/compact.ts).
          if (specChanged(obj, old)) this.queue?.add(kind.queuePrefix + objectKey(obj))
          else carryCompaction(obj, old)
          reconciler.compactIfSynced(obj, this.ownedSecret(obj.metadata.namespace ?? '', obj.metadata.name))
        },
        delete: (obj) => {
          this.noKey.delete(kind.queuePrefix + objectKey(obj))
          reconciler.forget(obj.metadata.uid)
          this.log.debug('SealedSecret deleted; its Secret is garbage-collected', {
            sealedSecret: objectKey(obj),
            kind: `${kind.group}/${kind.kind}`,
          })
        },
      },
      {name: ns ? `${what} in ${ns}` : what, log: this.log, transform: slimSealed},
    )
  }

  private work(queue: WorkQueue, ctx: CallContext): Promise<void> {
    return runWorker(
      queue,
      this.changes,
      (key) => this.lookup(key),
      (key, obj) => this.reconcileKey(queue, key, obj, ctx),
    )
  }

  /** One SealedSecret's reconcile, for a worker: its metrics, and whether and when it comes back. */
  private async reconcileKey(queue: WorkQueue, key: string, obj: SealedSecretObject, ctx: CallContext): Promise<void> {
    const t0 = performance.now()
    let out: Outcome
    try {
      out = await this.kindOf(key)[1].reconcile(obj, ctx)
    } catch (e) {
      this.log.error('reconcile failed unexpectedly', {sealedSecret: key, error: describeError(e)})
      out = {result: 'failed', reason: 'ApiError', message: describeError(e), retry: 'backoff'}
    }
    // The echo of this reconcile's own status write may have replaced the object in the cache meanwhile.
    const cur = this.lookup(key)
    if (cur && cur !== obj) carryCompaction(cur, obj)
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
  }

  /** Graceful shutdown: finish in-flight work, release the Lease, close everything. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('shutting down')
      await this.stopLeading()
      await this.elector?.stop()
      await Promise.all([
        this.keyReflector?.stop(),
        ...[...this.sealed, ...this.bitnami, ...this.owned].map((r) => r.stop()),
        this.external?.stop(),
      ])
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
