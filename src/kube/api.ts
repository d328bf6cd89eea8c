/**
 * The controller's view of the Kubernetes API: `@kubernetes/client-node` (imported lazily, 1.x
 * object-parameter style) behind a small adapter, so the reconciler, key store and leader election
 * talk to one narrow interface. Transient failures (5xx, 429, network) are retried here with
 * backoff; everything else surfaces as an ApiException whose `code` and Status `reason` callers test.
 */
import {existsSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type * as K8s from '@kubernetes/client-node'
import {KsealError} from '../core/errors.js'

export type K8sModule = typeof K8s

let k8sModule: Promise<K8sModule> | undefined
export function loadK8s(): Promise<K8sModule> {
  k8sModule ??= import('@kubernetes/client-node')
  return k8sModule
}

export interface KubeOptions {
  /** A kubeconfig file; without it: in-cluster config, then $KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string
  context?: string
  env?: Record<string, string | undefined>
}

/** Loads a KubeConfig, refusing (instead of client-node's silent localhost:8080) when there is none. */
export async function loadKubeConfig(o: KubeOptions): Promise<K8s.KubeConfig> {
  const k8s = await loadK8s()
  const env = o.env ?? process.env
  const kc = new k8s.KubeConfig()
  try {
    if (o.kubeconfig) {
      kc.loadFromFile(o.kubeconfig)
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
      kc.loadFromCluster()
    } else {
      const files = env.KUBECONFIG?.split(path.delimiter).filter(Boolean) ?? []
      const home = path.join(env.HOME || os.homedir(), '.kube', 'config')
      if (!files.some((f) => existsSync(f)) && !existsSync(home)) {
        throw new KsealError('ERR_CONFIG', 'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run inside a cluster')
      }
      kc.loadFromDefault()
    }
  } catch (e) {
    if (e instanceof KsealError) throw e
    throw new KsealError('ERR_CONFIG', `cannot read the kubeconfig${o.kubeconfig ? ` ${o.kubeconfig}` : ''}: ${(e as Error).message.split('\n')[0]}`)
  }
  if (o.context) {
    if (!kc.getContextObject(o.context)) throw new KsealError('ERR_CONFIG', `no context "${o.context}" in the kubeconfig`)
    kc.setCurrentContext(o.context)
  }
  if (!kc.getCurrentCluster()) throw new KsealError('ERR_CONFIG', 'the kubeconfig has no current cluster')
  reuseConnections(kc)
  return kc
}

/**
 * client-node 1.x builds a new http(s).Agent for every request, so every API call opens a new
 * connection (and, against a real cluster, a new TLS handshake). Agents are kept per set of TLS
 * options instead, with keep-alive, so calls share connections.
 */
function reuseConnections(kc: K8s.KubeConfig): void {
  const target = kc as unknown as {createAgent?: (cluster: unknown, opts: Record<string, unknown>) => unknown}
  const create = target.createAgent?.bind(kc)
  if (!create) return
  const agents = new Map<string, unknown>()
  target.createAgent = (cluster, opts) => {
    const key = JSON.stringify([opts.ca, opts.cert, opts.key, opts.pfx, opts.rejectUnauthorized, opts.servername].map((v) => (v === undefined ? null : String(v))))
    let agent = agents.get(key)
    if (!agent) {
      agent = create(cluster, {...opts, keepAlive: true})
      agents.set(key, agent)
    }
    return agent
  }
}

/** A failed API call reduced to what callers decide on (and what may be logged). */
export interface ApiFailure {
  code: number
  reason: string
  message: string
  retryAfterMs?: number
}

/** The HTTP code and Status reason of an ApiException (its body is the Status JSON as text), or null. */
export function apiFailure(e: unknown): ApiFailure | null {
  // An aborted call (DOMException AbortError/TimeoutError) has a numeric `code` that is no HTTP status.
  if (e instanceof DOMException) return null
  const x = e as {code?: unknown; body?: unknown; headers?: Record<string, string>; statusCode?: unknown}
  const code = typeof x?.code === 'number' ? x.code : typeof x?.statusCode === 'number' ? x.statusCode : undefined
  if (code === undefined) return null
  let status: {reason?: string; message?: string} = {}
  if (typeof x.body === 'string') {
    try {
      status = JSON.parse(x.body)
    } catch {
      // not a Status: keep the code only
    }
  } else if (x.body && typeof x.body === 'object') {
    status = x.body as typeof status
  }
  const ra = Number(x.headers?.['retry-after'])
  return {code, reason: status.reason ?? '', message: (status.message ?? '').slice(0, 300), retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined}
}

export const isNotFound = (e: unknown) => apiFailure(e)?.code === 404
export const isAlreadyExists = (e: unknown) => {
  const f = apiFailure(e)
  return f?.code === 409 && f.reason === 'AlreadyExists'
}
/** 409 from a stale resourceVersion (optimistic locking), as opposed to AlreadyExists. */
export const isConflict = (e: unknown) => {
  const f = apiFailure(e)
  return f?.code === 409 && f.reason !== 'AlreadyExists'
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET'])

/** Worth retrying: a server error, throttling, or the connection failing. */
export function isTransient(e: unknown): boolean {
  const f = apiFailure(e)
  if (f) return f.code >= 500 || f.code === 429
  const x = e as {code?: unknown; errno?: unknown; name?: string; type?: string}
  return (typeof x?.code === 'string' && NETWORK_CODES.has(x.code)) || x?.name === 'FetchError' || x?.type === 'system'
}

/** A one-line, value-free description of an API or network error for logs and conditions. */
export function describeError(e: unknown): string {
  const f = apiFailure(e)
  if (f) return `HTTP ${f.code}${f.reason ? ` ${f.reason}` : ''}${f.message ? `: ${f.message}` : ''}`
  const x = e as {code?: unknown; message?: string}
  if (e instanceof KsealError) return e.line
  return `${typeof x?.code === 'string' ? x.code + ': ' : ''}${(x?.message ?? String(e)).split('\n')[0].slice(0, 300)}`
}

export interface RetryOptions {
  attempts?: number
  baseMs?: number
  maxMs?: number
  onRetry?: (e: unknown, attempt: number) => void
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

export const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason)
  const t = setTimeout(() => {
    signal?.removeEventListener('abort', onAbort)
    resolve()
  }, ms)
  const onAbort = () => {
    clearTimeout(t)
    reject(signal!.reason)
  }
  signal?.addEventListener('abort', onAbort, {once: true})
})

/** Runs an API call, retrying transient failures with exponential backoff and jitter; `signal` ends the attempts (and the waits between them). */
export async function retrying<T>(fn: () => Promise<T>, o: RetryOptions = {}, signal?: AbortSignal): Promise<T> {
  const attempts = o.attempts ?? 5
  for (let i = 1; ; i++) {
    signal?.throwIfAborted()
    try {
      return await fn()
    } catch (e) {
      if (signal?.aborted) throw signal.reason
      if (i >= attempts || !isTransient(e)) throw e
      o.onRetry?.(e, i)
      const f = apiFailure(e)
      const backoff = Math.min(o.maxMs ?? 2000, (o.baseMs ?? 50) * 2 ** (i - 1))
      await (o.sleep ?? sleep)(Math.min(o.maxMs ?? 2000, f?.retryAfterMs ?? backoff * (0.5 + Math.random() / 2)), signal)
    }
  }
}

/**
 * What one API call carries besides its arguments. `signal` aborts the request in flight and any
 * retries; `beforeWrite` runs at the last moment before each write request (POST, PUT, PATCH,
 * DELETE — every retry included) is handed to the socket, and throws to refuse it: the leader's
 * fence, read on the monotonic clock at the moment of the write.
 */
export interface CallContext {
  signal?: AbortSignal
  beforeWrite?: () => void
  /** Tries for a transient failure (default: the adapter's, 5); 1 when the caller has its own retry loop. */
  attempts?: number
}

/** The controller refused a write because it cannot prove it holds the leader Lease, or its term ended. */
export const isNotLeader = (e: unknown) => (e as {code?: unknown})?.code === 'ERR_NOT_LEADER'

/** The objects the controller reads and writes, as plain JSON (client-node's models are structural). */
export type Secret = K8s.V1Secret
export type Lease = K8s.V1Lease
export type CoreEvent = K8s.CoreV1Event
export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata?: K8s.V1ObjectMeta
}

export interface ListResult<T> {
  items: T[]
  resourceVersion: string
}

export type WatchEvent<T> = {type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: T} | {type: 'ERROR'; object: {code?: number; reason?: string; message?: string}}

export interface WatchHandle {
  abort(): void
}

/** Everything the controller does against the API server. Every call takes an optional CallContext. */
export interface ClusterApi {
  listCustom<T>(group: string, version: string, plural: string, namespace?: string, ctx?: CallContext): Promise<ListResult<T>>
  customPath(group: string, version: string, plural: string, namespace?: string): string
  /**
   * Merge-patches the status subresource. With `resourceVersion`, the patch is conditional: the API
   * server answers 409 when the object has changed since (apiserver Store.Update compares the patched
   * object's resourceVersion with the stored one). Resolves to the patched object.
   */
  patchCustomStatus(group: string, version: string, plural: string, namespace: string, name: string, status: unknown, resourceVersion?: string, ctx?: CallContext): Promise<KubeObject>
  getSecret(namespace: string, name: string, ctx?: CallContext): Promise<Secret | null>
  /** Secrets in one namespace, or in all of them (`namespace` undefined). */
  listSecrets(namespace: string | undefined, labelSelector?: string, ctx?: CallContext): Promise<ListResult<Secret>>
  secretsPath(namespace?: string): string
  createSecret(namespace: string, body: Secret, ctx?: CallContext): Promise<Secret>
  /** A PUT: conditional when `body.metadata.resourceVersion` is set. */
  replaceSecret(namespace: string, name: string, body: Secret, ctx?: CallContext): Promise<Secret>
  deleteSecret(namespace: string, name: string, preconditions?: {uid?: string; resourceVersion?: string}, ctx?: CallContext): Promise<void>
  createEvent(namespace: string, body: CoreEvent, ctx?: CallContext): Promise<void>
  getLease(namespace: string, name: string, ctx?: CallContext): Promise<Lease | null>
  createLease(namespace: string, body: Lease, ctx?: CallContext): Promise<Lease>
  replaceLease(namespace: string, name: string, body: Lease, ctx?: CallContext): Promise<Lease>
  /** Starts a watch from a resourceVersion; `done` is called once, with an error or null when the server closed it. */
  watch(apiPath: string, params: Record<string, string | number | boolean | undefined>, onEvent: (e: WatchEvent<unknown>) => void, done: (err: unknown) => void): Promise<WatchHandle>
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** The field manager the controller's writes are recorded under (managedFields), so other writers can be told apart. */
export const FIELD_MANAGER = 'kseal-controller'

/** The ClusterApi over client-node, with transient-error retries on every call except watches. */
export async function clusterApi(kc: K8s.KubeConfig, retry: RetryOptions = {}): Promise<ClusterApi> {
  const fieldManager = FIELD_MANAGER
  const k8s = await loadK8s()
  const core = kc.makeApiClient(k8s.CoreV1Api)
  const custom = kc.makeApiClient(k8s.CustomObjectsApi)
  const coord = kc.makeApiClient(k8s.CoordinationV1Api)
  const watcher = new k8s.Watch(kc)
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)
  // Sends a body as its own JSON. client-node's serializer copies `{[key: string]: string}` maps into
  // plain objects key by key, which silently drops a Secret key named `__proto__`; a Secret's data
  // must reach the API server exactly, whatever its key names.
  const rawJsonBody = (body: unknown) => ({
    middleware: [{
      pre: (req: {setBody(b: string): void}) => (req.setBody(JSON.stringify(body)), new k8s.Observable(Promise.resolve(req))),
      post: <R>(res: R) => new k8s.Observable(Promise.resolve(res)),
    }],
    middlewareMergeStrategy: 'append',
  }) as unknown as typeof mergePatch
  // client-node's own transport; a call with a context goes through a wrapper that applies the
  // signal and runs beforeWrite last, after auth and middleware, just before fetch sends it.
  const transport = new k8s.IsomorphicFetchHttpLibrary()
  const options = (ctx: CallContext | undefined, base?: K8s.ConfigurationOptions): K8s.ConfigurationOptions | undefined => {
    if (!ctx?.signal && !ctx?.beforeWrite) return base
    return {
      ...base,
      httpApi: {
        send(req) {
          if (ctx.signal) {
            ctx.signal.throwIfAborted()
            req.setSignal(ctx.signal)
          }
          if (ctx.beforeWrite && WRITE_METHODS.has(req.getHttpMethod())) ctx.beforeWrite()
          return transport.send(req)
        },
      },
    }
  }
  const r = <T>(fn: () => Promise<T>, ctx?: CallContext) => retrying(fn, ctx?.attempts ? {...retry, attempts: ctx.attempts} : retry, ctx?.signal)
  const orNull = async <T>(p: Promise<T>): Promise<T | null> => {
    try {
      return await p
    } catch (e) {
      if (isNotFound(e)) return null
      throw e
    }
  }
  const list = <T>(l: {items: T[]; metadata?: {resourceVersion?: string}}): ListResult<T> => ({items: l.items ?? [], resourceVersion: l.metadata?.resourceVersion ?? ''})
  return {
    async listCustom<T>(group: string, version: string, plural: string, namespace?: string, ctx?: CallContext) {
      const l = await r(() => (namespace
        ? custom.listNamespacedCustomObject({group, version, plural, namespace}, options(ctx))
        : custom.listClusterCustomObject({group, version, plural}, options(ctx))), ctx)
      return list<T>(l)
    },
    customPath: (group, version, plural, namespace) =>
      `/apis/${group}/${version}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}`,
    async patchCustomStatus(group, version, plural, namespace, name, status, resourceVersion, ctx) {
      const body = resourceVersion === undefined ? {status} : {metadata: {resourceVersion}, status}
      return await r(() => custom.patchNamespacedCustomObjectStatus({group, version, plural, namespace, name, body, fieldManager}, options(ctx, mergePatch)), ctx) as KubeObject
    },
    getSecret: (namespace, name, ctx) => r(() => orNull(core.readNamespacedSecret({namespace, name}, options(ctx))), ctx),
    async listSecrets(namespace, labelSelector, ctx) {
      return list(await r(() => (namespace === undefined
        ? core.listSecretForAllNamespaces({labelSelector}, options(ctx))
        : core.listNamespacedSecret({namespace, labelSelector}, options(ctx))), ctx))
    },
    secretsPath: (namespace) => (namespace === undefined ? '/api/v1/secrets' : `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`),
    createSecret: (namespace, body, ctx) => r(() => core.createNamespacedSecret({namespace, body, fieldManager}, options(ctx, rawJsonBody(body))), ctx),
    replaceSecret: (namespace, name, body, ctx) => r(() => core.replaceNamespacedSecret({namespace, name, body, fieldManager}, options(ctx, rawJsonBody(body))), ctx),
    async deleteSecret(namespace, name, preconditions, ctx) {
      await r(() => core.deleteNamespacedSecret({namespace, name, body: preconditions ? {preconditions} : undefined}, options(ctx)), ctx)
    },
    async createEvent(namespace, body, ctx) {
      await r(() => core.createNamespacedEvent({namespace, body, fieldManager}, options(ctx)), ctx)
    },
    getLease: (namespace, name, ctx) => r(() => orNull(coord.readNamespacedLease({namespace, name}, options(ctx))), ctx),
    createLease: (namespace, body, ctx) => r(() => coord.createNamespacedLease({namespace, body, fieldManager}, options(ctx)), ctx),
    replaceLease: (namespace, name, body, ctx) => r(() => coord.replaceNamespacedLease({namespace, name, body, fieldManager}, options(ctx)), ctx),
    async watch(apiPath, params, onEvent, done) {
      const ctl = await watcher.watch(apiPath, params, (type, object) => onEvent({type, object} as WatchEvent<unknown>), done)
      return {abort: () => ctl.abort()}
    },
  }
}
