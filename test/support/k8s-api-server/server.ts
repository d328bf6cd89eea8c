import YAML from 'yaml'
import http from 'node:http'
import {KubeConfig} from '@kubernetes/client-node'
import {randomUUID} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import type {AddressInfo, Socket} from 'node:net'
import {scheduleGc} from './gc.js'
import {handle, sendError} from './http.js'
import {builtinResources} from './resources/builtins.js'
import {StatusError, errors, statusBody} from './status.js'
import {ServiceAccountTokens, type IssueOptions, type IssuedToken} from './tokens.js'
import type {
  Bucket,
  Def,
  FaultOptions,
  HistoryEvent,
  K8sApiServer,
  K8sApiServerOptions,
  KubeObject,
  KubeconfigOptions,
  RequestFilter,
  RequestRecord,
  ResourceDefinition,
  WatchEventType,
  WatchFilter,
} from './types.js'
import {apiVersionOf, clone, meta, nowTime, objKey, parseGroupVersion, sleep} from './util.js'
import {dispatch, endWatch, expiredStatus, sendBookmark, writeEvent, type Watcher} from './watch.js'
import {specChanged} from './write.js'

export interface Fault {
  remaining: number
  opts: FaultOptions
}

/**
 * The server's state and its storage: every handler module (http, list, write, watch, gc) works on
 * one Server. Its members are public to those modules; tests see only the K8sApiServer interface.
 */
export class Server implements K8sApiServer {
  latencyMs: number
  readonly requests: RequestRecord[] = []
  http: http.Server
  sockets = new Set<Socket>()
  connectionsAccepted = 0
  defs: Def[] = []
  buckets = new Map<string, Bucket>()
  rv: number
  watchers = new Set<Watcher>()
  nextWatcherId = 1
  faults: Fault[] = []
  gcTimer: NodeJS.Timeout | undefined
  gcWaiters: Array<() => void> = []
  closed = false
  readonly tokens: ServiceAccountTokens
  opts: Required<Omit<K8sApiServerOptions, 'token' | 'resources' | 'namespaces' | 'port' | 'host' | 'latencyMs' | 'tokens'>> & {
    token?: string
  }
  _port = 0
  host: string

  constructor(options: K8sApiServerOptions) {
    this.latencyMs = options.latencyMs ?? 0
    this.host = options.host ?? '127.0.0.1'
    this.rv = options.initialResourceVersion ?? 1000
    this.opts = {
      token: options.token,
      historySize: options.historySize ?? 500,
      requireNamespaces: options.requireNamespaces ?? false,
      gc: options.gc ?? true,
      gcDelayMs: options.gcDelayMs ?? 0,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      tooLargeResourceVersionWaitMs: options.tooLargeResourceVersionWaitMs ?? 3000,
      initialResourceVersion: this.rv,
      version: options.version ?? {major: '1', minor: '31'},
    }
    for (const d of [...builtinResources(), ...(options.resources ?? [])]) this.registerResource(d)
    this.tokens = new ServiceAccountTokens(
      {
        url: () => this.url,
        getObject: (apiVersion, kind, ns, name) => this.getObject(apiVersion, kind, ns, name),
        serves: (apiVersion, kind) =>
          this.defs.some((d) => apiVersionOf(d) === apiVersion && (d.kind.toLowerCase() === kind.toLowerCase() || d.resource === kind)),
        errors,
        status: (code, reason, message, details) => new StatusError(statusBody(code, reason, message, details)),
      },
      options.tokens,
    )
    for (const ns of options.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    }
    this.http = http.createServer((req, res) => {
      handle(this, req, res).catch((err: unknown) => {
        // Last resort: never leave a request hanging.
        if (!res.headersSent) {
          sendError(this, res, errors.internal(err instanceof Error ? err.message : String(err)))
        } else res.destroy()
      })
    })
    this.http.on('connection', (s: Socket) => {
      this.connectionsAccepted++
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(port, this.host, () => resolve())
    })
    this._port = (this.http.address() as AddressInfo).port
  }

  get port(): number {
    return this._port
  }

  get url(): string {
    return `http://${this.host}:${this._port}`
  }

  get resourceVersion(): string {
    return String(this.rv)
  }

  // --- lifecycle --------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const w of [...this.watchers]) endWatch(this, w, true)
    if (this.gcTimer) clearTimeout(this.gcTimer)
    this.gcTimer = undefined
    for (const r of this.gcWaiters.splice(0)) r()
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve())
      this.http.closeAllConnections()
      for (const s of this.sockets) s.destroy()
    })
  }

  kubeConfig(opts: KubeconfigOptions = {}): KubeConfig {
    const kc = new KubeConfig()
    kc.loadFromString(this.kubeconfigYaml(opts))
    return kc
  }

  async writeKubeconfig(path: string, opts: KubeconfigOptions = {}): Promise<void> {
    await writeFile(path, this.kubeconfigYaml(opts), {mode: 0o600})
  }

  kubeconfigYaml(opts: KubeconfigOptions): string {
    const context: KubeObject = {cluster: 'kseal-test', user: 'kseal-test'}
    if (opts.namespace) context.namespace = opts.namespace
    return YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: 'kseal-test', cluster: {server: this.url, 'insecure-skip-tls-verify': true}}],
      users: [{name: 'kseal-test', user: {token: opts.token ?? this.opts.token ?? 'kseal-test-token'}}],
      contexts: [{name: 'kseal-test', context}],
      'current-context': 'kseal-test',
      preferences: {},
    })
  }

  // --- resource registry ------------------------------------------------------------------

  registerResource(input: ResourceDefinition): void {
    const custom = input.custom ?? false
    const def: Def = {
      ...input,
      custom,
      statusSubresource: input.statusSubresource ?? false,
      storageKey: input.storageKey ?? `${input.group}/${input.resource}`,
      allowCreateOnUpdate: input.allowCreateOnUpdate ?? false,
      allowUnconditionalUpdate: input.allowUnconditionalUpdate ?? !custom,
      returnDeletedObject: input.returnDeletedObject ?? custom,
      generation: input.generation ?? custom,
    }
    this.defs = this.defs.filter((d) => !(d.group === def.group && d.version === def.version && d.resource === def.resource))
    this.defs.push(def)
    if (!this.buckets.has(def.storageKey)) {
      this.buckets.set(def.storageKey, {key: def.storageKey, objects: new Map(), history: [], compactedRv: this.rv})
    }
  }

  findDef(group: string, version: string, resource: string): Def | undefined {
    return this.defs.find((d) => d.group === group && d.version === version && d.resource === resource)
  }

  defFor(apiVersion: string, kindOrResource: string): Def {
    const {group, version} = parseGroupVersion(apiVersion)
    const lc = kindOrResource.toLowerCase()
    const d = this.defs.find(
      (x) => x.group === group && x.version === version && (x.kind === kindOrResource || x.resource === lc || x.singular === lc),
    )
    if (!d) throw new Error(`k8s-api-server: unknown resource ${apiVersion} ${kindOrResource}`)
    return d
  }

  /** Owner lookup for the GC: group + kind, any served version. */
  defForOwner(apiVersion: string, kind: string): Def | undefined {
    const {group} = parseGroupVersion(apiVersion)
    return this.defs.find((d) => d.group === group && d.kind === kind)
  }

  bucket(def: Def): Bucket {
    return this.buckets.get(def.storageKey)!
  }

  toView(def: Def, stored: KubeObject): KubeObject {
    const o = def.fromStorage ? def.fromStorage(clone(stored)) : clone(stored)
    o.apiVersion = apiVersionOf(def)
    o.kind = def.kind
    return o
  }

  toViewOrdered(def: Def, stored: KubeObject): KubeObject {
    const v = this.toView(def, stored)
    const {apiVersion, kind, metadata, ...rest} = v
    return {kind, apiVersion, metadata, ...rest}
  }

  toStorage(def: Def, obj: KubeObject): KubeObject {
    return def.toStorage ? def.toStorage(obj) : obj
  }

  // --- direct store access (tests) -----------------------------------------------------------

  getObject<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kindOrResource: string,
    namespace: string | undefined,
    name: string,
  ): T | undefined {
    const def = this.defFor(apiVersion, kindOrResource)
    const o = this.bucket(def).objects.get(objKey(def.namespaced ? namespace : '', name))
    return o ? (this.toViewOrdered(def, o) as T) : undefined
  }

  listObjects<T extends KubeObject = KubeObject>(apiVersion: string, kindOrResource: string, namespace?: string): T[] {
    const def = this.defFor(apiVersion, kindOrResource)
    return this.sortedObjects(this.bucket(def).objects)
      .filter((o) => !namespace || o.metadata?.namespace === namespace)
      .map((o) => this.toViewOrdered(def, o) as T)
  }

  putObject<T extends KubeObject = KubeObject>(input: T): T {
    if (typeof input.apiVersion !== 'string' || typeof input.kind !== 'string')
      throw new Error('putObject: apiVersion and kind are required')
    const def = this.defFor(input.apiVersion, input.kind)
    let obj = clone(input) as KubeObject
    if (def.decode) {
      const err = def.decode(obj)
      if (err) throw new Error(`putObject: ${err}`)
    }
    obj = this.toStorage(def, obj)
    const m = meta(obj)
    if (!m.name) throw new Error('putObject: metadata.name is required')
    if (def.namespaced) m.namespace = m.namespace || 'default'
    else delete m.namespace
    const b = this.bucket(def)
    const key = objKey(m.namespace, m.name)
    const existing = b.objects.get(key)
    m.uid = m.uid ?? existing?.metadata.uid ?? randomUUID()
    m.creationTimestamp = m.creationTimestamp ?? existing?.metadata.creationTimestamp ?? nowTime()
    if (def.generation && m.generation === undefined) {
      if (!existing) m.generation = 1
      else {
        m.generation = existing.metadata.generation ?? 1
        if (specChanged(def, obj, existing)) m.generation += 1
      }
    }
    if (!existing && def.kind === 'Namespace' && def.group === '') def.prepareForCreate?.(obj)
    const stored = this.commit(b, existing ? 'MODIFIED' : 'ADDED', obj, existing)
    return this.toViewOrdered(def, stored) as T
  }

  deleteObject(apiVersion: string, kindOrResource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.defFor(apiVersion, kindOrResource)
    const b = this.bucket(def)
    const existing = b.objects.get(objKey(def.namespaced ? namespace : '', name))
    if (!existing) return undefined
    const gone = this.commit(b, 'DELETED', clone(existing), existing)
    return this.toViewOrdered(def, gone)
  }

  // --- observation & fault injection -------------------------------------------------------

  filterRequests(filter?: RequestFilter): RequestRecord[] {
    if (!filter) return [...this.requests]
    if (typeof filter === 'function') return this.requests.filter(filter)
    return this.requests.filter((r) =>
      (Object.keys(filter) as Array<keyof typeof filter>).every((k) => filter[k] === undefined || r[k] === filter[k]),
    )
  }

  countRequests(filter?: RequestFilter): number {
    return this.filterRequests(filter).length
  }

  findRequests(filter?: RequestFilter): RequestRecord[] {
    return this.filterRequests(filter)
  }

  clearRequests(): void {
    this.requests.length = 0
  }

  failNext(n: number, opts: FaultOptions = {}): void {
    if (n > 0) this.faults.push({remaining: n, opts})
  }

  clearFaults(): void {
    this.faults = []
  }

  watchersMatching(filter: WatchFilter = {}): Watcher[] {
    return [...this.watchers].filter(
      (w) =>
        (filter.resource === undefined || w.def.resource === filter.resource) &&
        (filter.apiGroup === undefined || w.def.group === filter.apiGroup) &&
        (filter.namespace === undefined || w.namespace === filter.namespace),
    )
  }

  openWatches(filter?: WatchFilter): number {
    return this.watchersMatching(filter).length
  }

  async waitForWatches(count: number, filter?: WatchFilter, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.openWatches(filter) < count) {
      if (Date.now() > deadline) {
        throw new Error(
          `k8s-api-server: timed out waiting for ${count} watch(es) ${JSON.stringify(filter ?? {})}, have ${this.openWatches(filter)}`,
        )
      }
      await sleep(5)
    }
  }

  /** Destroy the sockets of open watches (abrupt connection loss). */
  dropWatches(filter?: WatchFilter): number {
    const ws = this.watchersMatching(filter)
    for (const w of ws) endWatch(this, w, true)
    return ws.length
  }

  /** End open watches cleanly, as when timeoutSeconds elapses (clients re-watch from their last RV). */
  closeWatches(filter?: WatchFilter): number {
    const ws = this.watchersMatching(filter)
    for (const w of ws) endWatch(this, w, false)
    return ws.length
  }

  /**
   * Forget the watch history (like an apiserver restart / etcd compaction) and end open watches
   * with an `ERROR` 410 Expired event, so clients must re-list.
   */
  expireWatches(filter?: WatchFilter): number {
    this.compact(filter)
    const ws = this.watchersMatching(filter)
    for (const w of ws) {
      writeEvent(w, 'ERROR', expiredStatus(w.afterRv, w.bucket.compactedRv))
      endWatch(this, w, false)
    }
    return ws.length
  }

  /** Forget history: resuming a watch (or a continue token / Exact list) from an older RV now gets 410. */
  compact(filter: WatchFilter = {}): void {
    for (const d of this.defs) {
      if (filter.resource !== undefined && d.resource !== filter.resource) continue
      if (filter.apiGroup !== undefined && d.group !== filter.apiGroup) continue
      const b = this.bucket(d)
      b.history = []
      b.compactedRv = this.rv
    }
  }

  sendBookmarks(): void {
    for (const w of this.watchers) if (w.allowBookmarks) sendBookmark(this, w)
  }

  /** Resolves once no garbage-collection work is pending. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000 && this.gcTimer; i++) {
      await new Promise<void>((r) => this.gcWaiters.push(r))
    }
  }

  get serviceAccountIssuer(): string {
    return this.tokens.issuer
  }

  issueServiceAccountToken(namespace: string, name: string, opts?: IssueOptions): IssuedToken {
    return this.tokens.issue(namespace, name, opts)
  }

  // --- storage ---------------------------------------------------------------------------------

  sortedObjects(objects: Map<string, KubeObject>): KubeObject[] {
    return [...objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o)
  }

  /** Persist a change: bump the global RV, record history, notify watches, poke the GC. */
  commit(b: Bucket, type: WatchEventType, obj: KubeObject, prev: KubeObject | undefined): KubeObject {
    const rv = ++this.rv
    const stored = clone(obj)
    meta(stored).resourceVersion = String(rv)
    const key = objKey(stored.metadata.namespace, stored.metadata.name)
    if (type === 'DELETED') b.objects.delete(key)
    else b.objects.set(key, stored)
    const ev: HistoryEvent = {type, rv, obj: stored, prev}
    b.history.push(ev)
    while (b.history.length > this.opts.historySize) {
      const dropped = b.history.shift()!
      b.compactedRv = dropped.rv
    }
    for (const w of this.watchers) if (w.bucket === b) dispatch(this, w, ev)
    scheduleGc(this)
    return stored
  }

  /** The state of a bucket at `rv`, rebuilt by rolling back history (etcd MVCC read). */
  snapshot(b: Bucket, rv: number): Map<string, KubeObject> {
    const m = new Map(b.objects)
    for (let i = b.history.length - 1; i >= 0 && b.history[i]!.rv > rv; i--) {
      const ev = b.history[i]!
      const key = objKey(ev.obj.metadata.namespace, ev.obj.metadata.name)
      if (ev.type === 'ADDED') m.delete(key)
      else m.set(key, ev.prev!)
    }
    return m
  }
}

/** Start a server on 127.0.0.1 (random port by default). Always `await handle.close()`. */
export async function startK8sApiServer(opts: K8sApiServerOptions = {}): Promise<K8sApiServer> {
  const s = new Server(opts)
  await s.listen(opts.port ?? 0)
  return s
}
