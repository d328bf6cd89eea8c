/**
 * The kubernetes provider: Secrets of another namespace (`remoteNamespace`), read through
 * @kubernetes/client-node as the ServiceAccount the store names — a TokenRequest token for that
 * ServiceAccount of the ExternalSecret's namespace, renewed before it expires — or with a bearer
 * token from a Secret. So RBAC decides what can be copied, never the controller's own rights.
 *
 * - A remote key is a Secret name; `property` is one of its data keys (render.ts); there are no
 *   versions.
 * - find lists the remote namespace (pages of 100, bounded) with `tags` as a label selector and
 *   matches the name regexp; the listing carries the values, so find costs one call a page.
 * - 404 is ERR_NOT_FOUND, 401/403 ERR_DENIED (with the API server's RBAC message), 429
 *   ERR_THROTTLED with Retry-After.
 */
import type {CoreV1Api, KubeConfig, V1Secret} from '@kubernetes/client-node'
import {apiClient} from '../../kube/agents.js'
import {loadK8s} from '../../kube/config.js'
import {retryingConnection} from '../../kube/api.js'
import {apiFailure} from '../../kube/errors.js'
import {isDnsSubdomain, isLabelValue, isQualifiedName} from '../fields.js'
import type {NameMatcher} from '../../core/regex.js'
import type {FindRef, KubernetesProviderSpec} from '../types.js'
import {detail} from './errors.js'
import {type FetchRef, findBudget, MAX_FIND, MAX_LIST_PAGES, type Provider, type ProviderInit, type RemoteValue} from './types.js'

export interface KubernetesOptions {
  /** The API server used when the store names none (the controller: its own cluster; render: the kubeconfig's). */
  defaultServer?: {url: string; ca?: string}
  /** render: read with these credentials (the caller's kubeconfig) instead of the store's auth. */
  kubeConfig?: KubeConfig
  tokenExpirationSeconds?: number
}

export type KubernetesContext = ProviderInit<KubernetesProviderSpec, KubernetesOptions>

/** A token is replaced when less than this share of its life is left. */
const REFRESH_LEFT = 0.2

export async function openKubernetes(c: KubernetesContext): Promise<Provider> {
  const k8s = await loadK8s()
  const {spec, errors} = c
  const now = c.now ?? Date.now
  const o = c.options ?? {}
  const server = spec.server ?? o.defaultServer?.url
  const ca = spec.caBundle ?? (spec.server ? undefined : o.defaultServer?.ca)
  if (!o.kubeConfig && !server)
    throw errors.error('ERR_CONFIG', undefined, 'the store names no server, and no default cluster is configured')

  let api: {client: CoreV1Api; until: number} | undefined

  async function clientFor(): Promise<CoreV1Api> {
    if (api && now() < api.until) return api.client
    if (o.kubeConfig) {
      api = {client: apiClient(k8s, o.kubeConfig, k8s.CoreV1Api), until: Infinity}
      return api.client
    }
    let token: string
    let until = Infinity
    if (spec.auth.kind === 'serviceAccount') {
      const exp = o.tokenExpirationSeconds ?? 600
      const t = await c.access.serviceAccountToken(c.namespace, {
        name: spec.auth.serviceAccount.name,
        audiences: spec.auth.serviceAccount.audiences,
        expirationSeconds: exp,
      })
      token = t.token
      const start = now()
      until = t.expiresAt - (t.expiresAt - start) * REFRESH_LEFT
    } else {
      token = Buffer.from(await c.access.secretKey(c.namespace, spec.auth.bearerToken))
        .toString('utf8')
        .trim()
    }
    const kc = new k8s.KubeConfig()
    kc.loadFromOptions({
      // (client-node insists on skipTLSVerify for a plain-http server, where there is nothing to verify:
      // only an injected default server can be http, a store's own must be https.)
      clusters: [
        {
          name: 'remote',
          server: server!,
          ...(ca ? {caData: Buffer.from(ca).toString('base64')} : {}),
          skipTLSVerify: server!.startsWith('http:'),
        },
      ],
      users: [{name: 'store', token}],
      contexts: [{name: 'store', cluster: 'remote', user: 'store'}],
      currentContext: 'store',
    })
    api = {client: apiClient(k8s, kc, k8s.CoreV1Api), until}
    return api.client
  }

  function fail(e: unknown, key: string | undefined): never {
    const f = apiFailure(e)
    if (!f) throw errors.error('ERR_BACKEND', key, `cannot reach the Kubernetes API: ${detail((e as Error)?.message ?? e)}`)
    const msg = detail(`HTTP ${f.code}${f.reason ? ` ${f.reason}` : ''}${f.message ? `: ${f.message}` : ''}`)
    if (f.code === 404) throw errors.error('ERR_NOT_FOUND', key, `no such Secret in namespace ${spec.remoteNamespace} (${msg})`)
    if (f.code === 401 || f.code === 403) {
      // A 401 may be a token that expired early: the next call asks for a new one.
      if (f.code === 401) api = undefined
      throw errors.error('ERR_DENIED', key, msg)
    }
    if (f.code === 429) throw errors.throttled(key, f.retryAfterMs ?? 1000, msg)
    throw errors.error('ERR_BACKEND', key, msg)
  }

  const entries = (s: V1Secret): RemoteValue => ({
    kind: 'map',
    entries: new Map(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  })

  return {
    name: 'kubernetes',
    async fetch(ref: FetchRef): Promise<RemoteValue> {
      if (ref.version !== undefined) throw errors.error('ERR_INPUT', ref.key, 'the kubernetes provider has no versions; remove version')
      if (!isDnsSubdomain(ref.key)) throw errors.error('ERR_INPUT', ref.key, 'is not a Secret name')
      const client = await clientFor()
      try {
        return entries(await retryingConnection(() => client.readNamespacedSecret({name: ref.key, namespace: spec.remoteNamespace})))
      } catch (e) {
        return fail(e, ref.key)
      }
    },
    async find(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>> {
      if (find.path) throw errors.error('ERR_INPUT', find.path, 'the kubernetes provider has no paths; remove find.path')
      const selector: string[] = []
      for (const [k, v] of Object.entries(find.tags ?? {})) {
        if (!isQualifiedName(k) || !isLabelValue(v))
          throw errors.error(
            'ERR_INPUT',
            undefined,
            `find.tags ${JSON.stringify(k.slice(0, 80))}: tags are a label selector here: a valid label key and value`,
          )
        selector.push(`${k}=${v}`)
      }
      const out = new Map<string, RemoteValue>()
      const count = findBudget(errors, undefined)
      let cont: string | undefined
      for (let page = 0; ; page++) {
        if (page >= MAX_LIST_PAGES)
          throw errors.error('ERR_INPUT', undefined, `find lists more than ${MAX_LIST_PAGES} pages; narrow it with tags`)
        const client = await clientFor()
        let list
        try {
          list = await retryingConnection(() =>
            client.listNamespacedSecret({
              namespace: spec.remoteNamespace,
              limit: 100,
              ...(cont ? {_continue: cont} : {}),
              ...(selector.length ? {labelSelector: selector.join(',')} : {}),
            }),
          )
        } catch (e) {
          return fail(e, undefined)
        }
        for (const s of list.items) {
          const name = s.metadata?.name
          if (!name || (match && !match.test(name))) continue
          out.set(name, count(entries(s)))
          if (out.size > MAX_FIND) throw errors.error('ERR_INPUT', undefined, `find matches more than ${MAX_FIND} Secrets; narrow it`)
        }
        cont = list.metadata?._continue || undefined
        if (!cont) return out
      }
    },
    async close() {
      api = undefined
    },
  }
}
