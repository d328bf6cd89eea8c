/**
 * The Kubernetes API as kseal uses it: client-node (1.x object-parameter style) behind one narrow
 * interface, so the reconciler, key store, leader election and the CLI's clients talk to it alone.
 * Transient failures (5xx, 429, network) are retried here with backoff; everything else surfaces as
 * an ApiException whose `code` and Status `reason` callers test (errors.ts).
 */
import type * as K8s from '@kubernetes/client-node'
import {CONTROLLER_NAME} from '../core/names.js'
import {backoff, retry, sleep} from '../core/retry.js'
import {apiClient} from './agents.js'
import {loadK8s} from './config.js'
import {apiFailure, isConnectionFailure, isNotFound, isTransient} from './errors.js'

export interface ApiRetryOptions {
  /** Tries in all (default 5). */
  attempts?: number
  baseMs?: number
  maxMs?: number
  onRetry?: (e: unknown, attempt: number) => void
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** Runs an API call, retrying transient failures with exponential backoff and jitter (or the server's Retry-After); `signal` ends the attempts (and the waits between them). */
export function retrying<T>(fn: () => Promise<T>, o: ApiRetryOptions = {}, signal?: AbortSignal): Promise<T> {
  const maxMs = o.maxMs ?? 2000
  return retry(
    fn,
    {
      attempts: o.attempts ?? 5,
      retryable: isTransient,
      delay: (e, n) => {
        const after = apiFailure(e)?.retryAfterMs
        return after !== undefined ? Math.min(maxMs, after) : backoff(n, {baseMs: o.baseMs ?? 50, maxMs, jitter: {min: 0.5, max: 1}})
      },
      onRetry: o.onRetry,
      sleep: o.sleep ?? sleep,
    },
    signal,
  )
}

/**
 * Runs a call again when its connection failed before any answer — above all a kept connection that
 * the server closed while it sat idle, which the next request can meet first (Go's HTTP transport
 * retries these too). HTTP answers, 429 and 5xx included, are the caller's to handle.
 */
export function retryingConnection<T>(fn: () => Promise<T>): Promise<T> {
  return retry(fn, {
    attempts: 3,
    retryable: isConnectionFailure,
    delay: (_e, n) => backoff(n, {baseMs: 50, maxMs: 500, jitter: {min: 0.5, max: 1}}),
  })
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
  /** Set when the list was asked for in pages and more follow: pass it back as `ListPage.continue`. */
  continue?: string
}

/** One page of a list (the API's `limit` and `continue`); without it, the whole list at once. */
export interface ListPage {
  limit: number
  continue?: string
}

export type WatchEvent<T> =
  | {type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: T}
  | {type: 'ERROR'; object: {code?: number; reason?: string; message?: string}}

export interface WatchHandle {
  abort(): void
}

/** Everything the controller does against the API server. Every call takes an optional CallContext. */
export interface ClusterApi {
  listCustom<T>(
    group: string,
    version: string,
    plural: string,
    namespace?: string,
    ctx?: CallContext,
    page?: ListPage,
  ): Promise<ListResult<T>>
  customPath(group: string, version: string, plural: string, namespace?: string): string
  /** One namespaced custom object, or null when there is none. */
  getCustom<T>(group: string, version: string, plural: string, namespace: string, name: string, ctx?: CallContext): Promise<T | null>
  /**
   * Merge-patches the status subresource. With `resourceVersion`, the patch is conditional: the API
   * server answers 409 when the object has changed since (apiserver Store.Update compares the patched
   * object's resourceVersion with the stored one). Resolves to the patched object.
   */
  patchCustomStatus(
    group: string,
    version: string,
    plural: string,
    namespace: string,
    name: string,
    status: unknown,
    resourceVersion?: string,
    ctx?: CallContext,
  ): Promise<KubeObject>
  getSecret(namespace: string, name: string, ctx?: CallContext): Promise<Secret | null>
  /** Secrets in one namespace, or in all of them (`namespace` undefined). */
  listSecrets(namespace: string | undefined, labelSelector?: string, ctx?: CallContext, page?: ListPage): Promise<ListResult<Secret>>
  secretsPath(namespace?: string): string
  createSecret(namespace: string, body: Secret, ctx?: CallContext): Promise<Secret>
  /** A PUT: conditional when `body.metadata.resourceVersion` is set. */
  replaceSecret(namespace: string, name: string, body: Secret, ctx?: CallContext): Promise<Secret>
  deleteSecret(namespace: string, name: string, preconditions?: {uid?: string; resourceVersion?: string}, ctx?: CallContext): Promise<void>
  createEvent(namespace: string, body: CoreEvent, ctx?: CallContext): Promise<void>
  /** A TokenRequest: a short-lived, audience-bound token for a ServiceAccount (not a write of state: no fence). */
  createServiceAccountToken(
    namespace: string,
    name: string,
    spec: {audiences: string[]; expirationSeconds: number},
    ctx?: CallContext,
  ): Promise<{token: string; expirationTimestamp?: Date}>
  getServiceAccount(namespace: string, name: string, ctx?: CallContext): Promise<K8s.V1ServiceAccount | null>
  getNamespace(name: string, ctx?: CallContext): Promise<K8s.V1Namespace | null>
  getLease(namespace: string, name: string, ctx?: CallContext): Promise<Lease | null>
  createLease(namespace: string, body: Lease, ctx?: CallContext): Promise<Lease>
  replaceLease(namespace: string, name: string, body: Lease, ctx?: CallContext): Promise<Lease>
  /** Starts a watch from a resourceVersion; `done` is called once, with an error or null when the server closed it. */
  watch(
    apiPath: string,
    params: Record<string, string | number | boolean | undefined>,
    onEvent: (e: WatchEvent<unknown>) => void,
    done: (err: unknown) => void,
  ): Promise<WatchHandle>
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** The field manager the controller's writes are recorded under (managedFields), so other writers can be told apart. */
export const FIELD_MANAGER = CONTROLLER_NAME

/** The ClusterApi over client-node, with transient-error retries on every call except watches. */
export async function clusterApi(kc: K8s.KubeConfig, retry: ApiRetryOptions = {}): Promise<ClusterApi> {
  const fieldManager = FIELD_MANAGER
  const k8s = await loadK8s()
  // Clients whose requests share connections (agents.ts), as kc.makeApiClient would make them otherwise.
  const core = apiClient(k8s, kc, k8s.CoreV1Api)
  const custom = apiClient(k8s, kc, k8s.CustomObjectsApi)
  const coord = apiClient(k8s, kc, k8s.CoordinationV1Api)
  const watcher = new k8s.Watch(kc)
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)
  // Sends a body as its own JSON. client-node's serializer copies `{[key: string]: string}` maps into
  // plain objects key by key, which silently drops a Secret key named `__proto__`; a Secret's data
  // must reach the API server exactly, whatever its key names.
  const rawJsonBody = (body: unknown) =>
    ({
      middleware: [
        {
          pre: (req: {setBody(b: string): void}) => (req.setBody(JSON.stringify(body)), new k8s.Observable(Promise.resolve(req))),
          post: <R>(res: R) => new k8s.Observable(Promise.resolve(res)),
        },
      ],
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
  const r = <T>(fn: () => Promise<T>, ctx?: CallContext) =>
    retrying(fn, ctx?.attempts ? {...retry, attempts: ctx.attempts} : retry, ctx?.signal)
  const orNull = async <T>(p: Promise<T>): Promise<T | null> => {
    try {
      return await p
    } catch (e) {
      if (isNotFound(e)) return null
      throw e
    }
  }
  const list = <T>(l: {items: T[]; metadata?: {resourceVersion?: string; _continue?: string; continue?: string}}): ListResult<T> => {
    const out: ListResult<T> = {items: l.items ?? [], resourceVersion: l.metadata?.resourceVersion ?? ''}
    // Typed lists come through client-node's models (V1ListMeta calls it `_continue`); custom ones as JSON.
    const next = l.metadata?._continue ?? l.metadata?.continue
    if (next) out.continue = next
    return out
  }
  const paged = (page: ListPage | undefined) => (page ? {limit: page.limit, _continue: page.continue} : {})
  return {
    async listCustom<T>(group: string, version: string, plural: string, namespace?: string, ctx?: CallContext, page?: ListPage) {
      const l = await r(
        () =>
          namespace
            ? custom.listNamespacedCustomObject({group, version, plural, namespace, ...paged(page)}, options(ctx))
            : custom.listClusterCustomObject({group, version, plural, ...paged(page)}, options(ctx)),
        ctx,
      )
      return list<T>(l)
    },
    getCustom: <T>(group: string, version: string, plural: string, namespace: string, name: string, ctx?: CallContext) =>
      r(() => orNull(custom.getNamespacedCustomObject({group, version, plural, namespace, name}, options(ctx)) as Promise<T>), ctx),
    customPath: (group, version, plural, namespace) =>
      `/apis/${group}/${version}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${plural}`,
    async patchCustomStatus(group, version, plural, namespace, name, status, resourceVersion, ctx) {
      const body = resourceVersion === undefined ? {status} : {metadata: {resourceVersion}, status}
      return (await r(
        () =>
          custom.patchNamespacedCustomObjectStatus({group, version, plural, namespace, name, body, fieldManager}, options(ctx, mergePatch)),
        ctx,
      )) as KubeObject
    },
    getSecret: (namespace, name, ctx) => r(() => orNull(core.readNamespacedSecret({namespace, name}, options(ctx))), ctx),
    async listSecrets(namespace, labelSelector, ctx, page) {
      return list(
        await r(
          () =>
            namespace === undefined
              ? core.listSecretForAllNamespaces({labelSelector, ...paged(page)}, options(ctx))
              : core.listNamespacedSecret({namespace, labelSelector, ...paged(page)}, options(ctx)),
          ctx,
        ),
      )
    },
    secretsPath: (namespace) =>
      namespace === undefined ? '/api/v1/secrets' : `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`,
    createSecret: (namespace, body, ctx) =>
      r(() => core.createNamespacedSecret({namespace, body, fieldManager}, options(ctx, rawJsonBody(body))), ctx),
    replaceSecret: (namespace, name, body, ctx) =>
      r(() => core.replaceNamespacedSecret({namespace, name, body, fieldManager}, options(ctx, rawJsonBody(body))), ctx),
    async deleteSecret(namespace, name, preconditions, ctx) {
      await r(() => core.deleteNamespacedSecret({namespace, name, body: preconditions ? {preconditions} : undefined}, options(ctx)), ctx)
    },
    async createEvent(namespace, body, ctx) {
      await r(() => core.createNamespacedEvent({namespace, body, fieldManager}, options(ctx)), ctx)
    },
    async createServiceAccountToken(namespace, name, spec, ctx) {
      const body = {apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec}
      // The token is no write of state: the leader's fence does not apply, the term's signal does.
      const t = await r(() => core.createNamespacedServiceAccountToken({namespace, name, body}, options(ctx && {signal: ctx.signal})), ctx)
      return {token: t.status?.token ?? '', expirationTimestamp: t.status?.expirationTimestamp}
    },
    getServiceAccount: (namespace, name, ctx) => r(() => orNull(core.readNamespacedServiceAccount({namespace, name}, options(ctx))), ctx),
    getNamespace: (name, ctx) => r(() => orNull(core.readNamespace({name}, options(ctx))), ctx),
    getLease: (namespace, name, ctx) => r(() => orNull(coord.readNamespacedLease({namespace, name}, options(ctx))), ctx),
    createLease: (namespace, body, ctx) => r(() => coord.createNamespacedLease({namespace, body, fieldManager}, options(ctx)), ctx),
    replaceLease: (namespace, name, body, ctx) =>
      r(() => coord.replaceNamespacedLease({namespace, name, body, fieldManager}, options(ctx)), ctx),
    async watch(apiPath, params, onEvent, done) {
      const ctl = await watcher.watch(apiPath, params, (type, object) => onEvent({type, object} as WatchEvent<unknown>), done)
      return {abort: () => ctl.abort()}
    },
  }
}
