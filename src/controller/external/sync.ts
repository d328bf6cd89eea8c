/**
 * ExternalSecrets in the controller, through the machinery SealedSecrets use: reflectors (on every
 * replica: warm caches for a standby) for ExternalSecrets, SecretStores, ClusterSecretStores and the
 * Secrets ExternalSecrets wrote (label-selected, without data: drift requeues the owner at once);
 * and, on the leader only and for one term, a work queue with workers whose every API call carries
 * the term's CallContext (abort signal and write fence), plus the refresh timers (schedule.ts).
 *
 * A change of an ExternalSecret's spec syncs it at once; a change of its store closes the store's
 * providers and syncs every ExternalSecret that uses it at once; otherwise each is refreshed at its
 * slot, and failures come back with the queue's jittered backoff.
 */
import type {AwsOptions, KubernetesOptions, VaultOptions} from '../../external/providers/index.js'
import {EXTERNAL_SECRET_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE} from '../../external/render.js'
import type {StoreAccess} from '../../external/store.js'
import {
  CLUSTER_SECRET_STORE_KIND,
  CLUSTER_SECRET_STORE_PLURAL,
  EXTERNAL_GROUP,
  EXTERNAL_SECRET_PLURAL,
  EXTERNAL_VERSION,
  SECRET_STORE_KIND,
  SECRET_STORE_PLURAL,
} from '../../external/types.js'
import type {CallContext, ClusterApi, KubeObject, ListPage, Secret} from '../../kube/api.js'
import {describeError} from '../../kube/errors.js'
import type {ControllerMetrics} from '../http/metrics.js'
import type {Logger} from '../log.js'
import {labelledSecrets} from '../owned.js'
import {WorkQueue} from '../runtime/queue.js'
import {runWorker} from '../runtime/worker.js'
import {objectKey, Reflector, specChanged} from '../runtime/reflector.js'
import {type CachedExternalSecret, type CachedStore, slimExternalSecret, slimStore} from './objects.js'
import {StoreProviders} from './providers.js'
import {type ExternalOutcome, ExternalReconciler, isReady} from './reconcile.js'
import {nextRefresh, refreshPhase, RefreshTimers} from './schedule.js'
import {SecretChanges} from '../runtime/echoes.js'

/** The label every Secret an ExternalSecret writes carries: the watch on them selects by it. */
const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`

export interface ExternalSyncOptions {
  api: ClusterApi
  access: StoreAccess
  log: Logger
  identity: string
  now: () => Date
  keyNamespace: string
  /** Namespaces to watch; empty: all. */
  namespaces: string[]
  workers: number
  /** Calls a second to one store, and the burst after a quiet spell. */
  storeRate: number
  storeBurst: number
  aws?: AwsOptions
  vault?: VaultOptions
  kubernetes?: KubernetesOptions
  metrics: ControllerMetrics
  /** A watch's timeoutSeconds (spread, so watches do not all end together). */
  watchTimeout: () => number
}

export class ExternalSync {
  private readonly secrets: Reflector<CachedExternalSecret>[] = []
  private readonly stores: Reflector<CachedStore>[] = []
  private readonly managed: Reflector<Secret>[] = []
  private readonly providers: StoreProviders
  private readonly reconciler: ExternalReconciler
  private term?: {queue: WorkQueue; timers: RefreshTimers; workers: Promise<void>[]}
  /** ExternalSecrets whose store changed: fetched on their next reconcile even if nothing is due. */
  private readonly forced = new Set<string>()
  /** Changes to the Secrets ExternalSecrets wrote: another writer's, or the echo of the controller's own write. */
  private readonly changes = new SecretChanges({
    isOwnWrite: (key, s) => !!s && this.reconciler.isOwnWrite(this.lookup(key)?.metadata.uid, s),
    watched: (key) => {
      const owner = this.lookup(key)
      const name = owner?.es?.target.name
      return name ? this.cachedSecret(owner.metadata.namespace ?? '', name) : undefined
    },
    requeued: (key, retryInMs) => this.o.log.debug('Secret changed: its ExternalSecret is requeued', {externalSecret: key, retryInMs}),
  })

  constructor(private readonly o: ExternalSyncOptions) {
    this.providers = new StoreProviders({
      access: o.access,
      aws: o.aws,
      vault: o.vault,
      kubernetes: o.kubernetes,
      rate: o.storeRate,
      burst: o.storeBurst,
      now: () => o.now().getTime(),
      onCall: (provider, result) => o.metrics.externalCalls.inc({provider, result}),
      onThrottled: (store, retryAfterMs) => {
        o.metrics.externalThrottled.inc()
        o.log.warn('a store is throttling: its calls are paused, then paced', {store, retryAfterMs})
      },
    })
    this.reconciler = new ExternalReconciler({
      api: o.api,
      providers: this.providers,
      log: o.log,
      identity: o.identity,
      now: o.now,
      keyNamespace: o.keyNamespace,
      store: (kind, ns, name) => this.store(kind, ns, name),
      cachedSecret: (ns, name) => this.cachedSecret(ns, name),
      namespaceLabels: (ns) => o.access.namespaceLabels(ns),
      onConflict: (reason) => o.metrics.conflicts.inc({reason}),
    })
    const api = o.api
    const custom = <T extends KubeObject>(plural: string, ns: string | undefined, name: string, transform: (raw: T) => T) => ({
      source: {
        list: (page?: ListPage) => api.listCustom<T>(EXTERNAL_GROUP, EXTERNAL_VERSION, plural, ns, undefined, page),
        watch: (rv: string, onEvent: Parameters<ClusterApi['watch']>[2], done: (err: unknown) => void) =>
          api.watch(
            api.customPath(EXTERNAL_GROUP, EXTERNAL_VERSION, plural, ns),
            {resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: o.watchTimeout()},
            onEvent,
            done,
          ),
      },
      opts: {name, log: o.log, transform},
    })
    for (const ns of o.namespaces.length ? o.namespaces : [undefined]) {
      const es = custom<CachedExternalSecret>(EXTERNAL_SECRET_PLURAL, ns, ns ? `ExternalSecrets in ${ns}` : 'ExternalSecrets', (raw) =>
        slimExternalSecret(raw),
      )
      this.secrets.push(
        new Reflector(
          es.source,
          {
            upsert: (obj, old) => {
              // Status writes (ours) do not bump the generation: they need no sync.
              if (specChanged(obj, old)) this.term?.queue.add(objectKey(obj))
            },
            delete: (obj) => {
              const key = objectKey(obj)
              this.term?.timers.cancel(key)
              this.forced.delete(key)
              this.reconciler.forget(obj.metadata.uid)
              o.log.debug('ExternalSecret deleted', {externalSecret: key})
            },
          },
          es.opts,
        ),
      )
      const st = custom<CachedStore>(SECRET_STORE_PLURAL, ns, ns ? `SecretStores in ${ns}` : 'SecretStores', (raw) => slimStore(raw))
      this.stores.push(new Reflector(st.source, this.storeHandlers(SECRET_STORE_KIND), st.opts))
      this.managed.push(
        labelledSecrets({
          api,
          namespace: ns,
          selector: MANAGED_SELECTOR,
          name: ns ? `ExternalSecret Secrets in ${ns}` : 'ExternalSecret Secrets',
          log: o.log,
          watchTimeout: o.watchTimeout,
          changed: (s) => this.secretChanged(s),
        }),
      )
    }
    const css = custom<CachedStore>(CLUSTER_SECRET_STORE_PLURAL, undefined, 'ClusterSecretStores', (raw) => slimStore(raw))
    this.stores.push(new Reflector(css.source, this.storeHandlers(CLUSTER_SECRET_STORE_KIND), css.opts))
  }

  private storeHandlers(kind: string) {
    return {
      upsert: (obj: CachedStore, old: CachedStore | undefined) => {
        const changed = !!old && (old.metadata.generation !== obj.metadata.generation || old.metadata.uid !== obj.metadata.uid)
        if (changed) this.providers.forgetStore(kind, obj.metadata.namespace ?? '', obj.metadata.name)
        if (!old || changed) this.storeUsers(kind, obj, changed)
      },
      delete: (obj: CachedStore) => {
        this.providers.forgetStore(kind, obj.metadata.namespace ?? '', obj.metadata.name)
        this.storeUsers(kind, obj, false)
      },
    }
  }

  /** Queues every ExternalSecret that names this store (`force`: fetch even if nothing is due). */
  private storeUsers(kind: string, store: CachedStore, force: boolean): void {
    const queue = this.term?.queue
    if (!queue) return
    for (const r of this.secrets)
      for (const [key, obj] of r.cache) {
        const ref = obj.es?.secretStoreRef
        if (!ref || ref.kind !== kind || ref.name !== store.metadata.name) continue
        if (kind === SECRET_STORE_KIND && obj.metadata.namespace !== store.metadata.namespace) continue
        if (force) this.forced.add(key)
        queue.add(key)
      }
  }

  private store(kind: string, ns: string, name: string): CachedStore | undefined {
    const key = `${ns}/${name}`
    for (const r of this.stores) {
      const s = r.cache.get(key)
      if (s && (kind === CLUSTER_SECRET_STORE_KIND ? !s.metadata.namespace : s.metadata.namespace === ns)) return s
    }
    return undefined
  }

  private cachedSecret(ns: string, name: string): Secret | undefined {
    for (const r of this.managed) {
      const s = r.cache.get(`${ns}/${name}`)
      if (s) return s
    }
    return undefined
  }

  private lookup(key: string): CachedExternalSecret | undefined {
    for (const r of this.secrets) {
      const o = r.cache.get(key)
      if (o) return o
    }
    return undefined
  }

  /** Every ExternalSecret this replica holds. */
  *all(): Iterable<CachedExternalSecret> {
    for (const r of this.secrets) yield* r.cache.values()
  }

  get size(): number {
    return this.secrets.reduce((n, r) => n + r.cache.size, 0)
  }

  /** ExternalSecrets whose Ready condition is not True (a metric). */
  notReady(): number {
    let n = 0
    for (const o of this.all()) if (!isReady(o.status)) n++
    return n
  }

  /** Seconds since each ExternalSecret's last successful sync (a metric). */
  *syncAges(): Iterable<[string, string, number]> {
    const now = this.o.now().getTime()
    for (const o of this.all()) {
      const t = o.status.refreshTime ? Date.parse(o.status.refreshTime) : NaN
      if (!Number.isNaN(t)) yield [o.metadata.namespace ?? '', o.metadata.name, Math.max(0, (now - t) / 1000)]
    }
  }

  get synced(): boolean {
    return [...this.secrets, ...this.stores].every((r) => r.synced)
  }

  get queueDepth(): number {
    return this.term?.queue.length ?? 0
  }

  start(): void {
    for (const r of [...this.secrets, ...this.stores, ...this.managed]) r.start()
  }

  /** The leader's work for one term: every ExternalSecret queued, then each at its refresh slot. */
  startLeading(ctx: CallContext): void {
    if (this.term) return
    const queue = new WorkQueue({baseDelayMs: 1000, maxDelayMs: 300_000, jitter: 0.25})
    const timers = new RefreshTimers(
      (key) => queue.add(key),
      () => this.o.now().getTime(),
    )
    this.term = {queue, timers, workers: []}
    for (const o of this.all()) queue.add(objectKey(o))
    this.term.workers = Array.from({length: Math.max(1, this.o.workers)}, () => this.work(queue, timers, ctx))
    this.o.log.info('syncing ExternalSecrets', {workers: this.term.workers.length, externalSecrets: this.size})
  }

  async stopLeading(): Promise<void> {
    const term = this.term
    this.term = undefined
    if (!term) return
    term.timers.clear()
    term.queue.shutDown()
    this.reconciler.reset()
    await Promise.all(term.workers)
    if (!this.term) this.reconciler.reset()
  }

  async stop(): Promise<void> {
    await this.stopLeading()
    await Promise.all([...this.secrets, ...this.stores, ...this.managed].map((r) => r.stop()))
    await this.providers.closeAll()
  }

  /** A Secret an ExternalSecret wrote changed or went (runtime/echoes.ts decides whether it syncs again). */
  private secretChanged(s: Secret): void {
    const queue = this.term?.queue
    const name = s.metadata?.annotations?.[EXTERNAL_SECRET_ANNOTATION]
    if (!queue || !name) return
    const key = `${s.metadata?.namespace ?? ''}/${name}`
    if (this.lookup(key)) this.changes.changed(queue, key, s)
  }

  private work(queue: WorkQueue, timers: RefreshTimers, ctx: CallContext): Promise<void> {
    return runWorker(
      queue,
      this.changes,
      (key) => this.lookup(key),
      (key, obj) => this.syncKey(queue, timers, key, obj, ctx),
    )
  }

  /** One ExternalSecret's sync, for a worker: its metric, and whether and when it comes back (queue, refresh timer). */
  private async syncKey(queue: WorkQueue, timers: RefreshTimers, key: string, obj: CachedExternalSecret, ctx: CallContext): Promise<void> {
    const forced = this.forced.delete(key)
    let out: ExternalOutcome
    try {
      out = await this.reconciler.reconcile(obj, forced, ctx)
    } catch (e) {
      this.o.log.error('ExternalSecret sync failed unexpectedly', {externalSecret: key, error: describeError(e)})
      out = {result: 'failed', reason: 'ApiError', retry: 'backoff'}
    }
    this.o.metrics.externalSyncs.inc({provider: out.provider ?? 'none', result: out.result})
    // Not fetched this time: the store change is still to be picked up.
    if (forced && ['paced', 'aborted', 'stale'].includes(out.result)) this.forced.add(key)
    if (out.retry === 'backoff') {
      const ms = queue.addRateLimited(key)
      if (ms !== undefined)
        this.o.log.debug('ExternalSecret requeued with backoff', {externalSecret: key, reason: out.reason, retryInMs: ms})
    } else if (typeof out.retry === 'number') {
      // Paced by its store: back when the store's limit allows, spread a little so the waiting ones do not return together.
      queue.addAfter(key, Math.round(out.retry * (1 + Math.random() * 0.25)))
    } else {
      queue.forget(key)
    }
    if (out.refreshAt !== undefined) timers.at(key, out.refreshAt)
    else if (out.result === 'failed' && out.retry === 'no' && obj.es) {
      // A refusal (store conditions, a Secret it may not write) is checked again at each refresh: what it depends on may change unwatched.
      const at = nextRefresh(
        this.o.now().getTime(),
        obj.es.refreshIntervalMs,
        refreshPhase(obj.metadata.uid ?? obj.metadata.name, obj.es.refreshIntervalMs),
      )
      if (at !== undefined) timers.at(key, at)
    } else if (out.retry === 'no') timers.cancel(key)
  }
}
