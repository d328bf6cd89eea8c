/**
 * Connections that last. client-node 1.x builds a new http(s).Agent for every request, so every API
 * call opens a new connection (against a real cluster, a new TLS handshake). kseal's API clients
 * authenticate each request with the KubeConfig's public `applyToHTTPSOptions` (the credentials,
 * headers and TLS material client-node itself would use) and hand it a keep-alive Agent shared by
 * every request with the same TLS options, so calls share connections. Only public client-node API
 * is used: `createConfiguration` with an authentication method of kseal's, and `RequestContext.setAgent`.
 * Through a proxy (`proxy-url` in the kubeconfig) client-node's own agent is kept.
 */
import http from 'node:http'
import https from 'node:https'
import type * as K8s from '@kubernetes/client-node'
import type {K8sModule} from './config.js'

const pools = new WeakMap<K8s.KubeConfig, Map<string, http.Agent>>()

/** The options of a request as KubeConfig.applyToHTTPSOptions fills them in. */
type TlsOptions = https.RequestOptions

/**
 * The keep-alive Agent for a request's TLS options (CA, client certificate and key, verification,
 * server name): one per distinct set, per KubeConfig, so credentials that change (a rotated client
 * certificate file) get a connection of their own. Null through a proxy.
 */
export function keepAliveAgent(kc: K8s.KubeConfig, opts: TlsOptions): http.Agent | null {
  const cluster = kc.getCurrentCluster()
  if (!cluster || cluster.proxyUrl) return null
  let pool = pools.get(kc)
  if (!pool) pools.set(kc, (pool = new Map()))
  const key = JSON.stringify(
    [cluster.server, opts.ca, opts.cert, opts.key, opts.pfx, opts.rejectUnauthorized, opts.servername].map((v) =>
      v === undefined ? null : String(v),
    ),
  )
  let agent = pool.get(key)
  if (!agent) {
    agent = cluster.server.startsWith('http:')
      ? new http.Agent({keepAlive: true})
      : new https.Agent({
          ca: opts.ca,
          cert: opts.cert,
          key: opts.key,
          pfx: opts.pfx,
          passphrase: opts.passphrase,
          rejectUnauthorized: opts.rejectUnauthorized,
          servername: opts.servername,
          keepAlive: true,
        })
    pool.set(key, agent)
  }
  return agent
}

/** The KubeConfig's credentials for one request, on a kept connection. */
function authentication(kc: K8s.KubeConfig): K8s.SecurityAuthentication {
  return {
    getName: () => 'kubeconfig (kept connections)',
    async applySecurityAuthentication(context: K8s.RequestContext) {
      const opts: TlsOptions = {}
      await kc.applyToHTTPSOptions(opts)
      for (const [name, value] of Object.entries(opts.headers ?? {})) context.setHeaderParam(name, String(value))
      if (opts.auth) context.setHeaderParam('Authorization', `Basic ${Buffer.from(opts.auth).toString('base64')}`)
      context.setAgent(keepAliveAgent(kc, opts) ?? (opts.agent as http.Agent))
    },
  }
}

/** An API client of the KubeConfig's current cluster (as `kc.makeApiClient` makes one) whose requests share connections. */
export function apiClient<T>(k8s: K8sModule, kc: K8s.KubeConfig, Api: new (config: K8s.Configuration) => T): T {
  const cluster = kc.getCurrentCluster()
  if (!cluster) throw new Error('No active cluster!')
  return new Api(
    k8s.createConfiguration({baseServer: new k8s.ServerConfiguration(cluster.server, {}), authMethods: {default: authentication(kc)}}),
  )
}
