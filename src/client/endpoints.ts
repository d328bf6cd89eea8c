/**
 * Talking to the controller's HTTP endpoints from outside the cluster, the ways `kseal cert` does:
 * through the API server's service proxy (`/api/v1/namespaces/NS/services/http:NAME:http/proxy/PATH`,
 * credentials from the kubeconfig; GET needs "get services/proxy", POST "create services/proxy"),
 * or straight at a URL (`--controller-url http://127.0.0.1:8080` after a port-forward).
 */
import http from 'node:http'
import https from 'node:https'
import {KsealError} from '../core/errors.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../core/names.js'
import {keepAliveAgent} from '../kube/agents.js'
import {loadKubeConfig, type KubeOptions} from '../kube/config.js'
import {describeError} from '../kube/errors.js'

/** The controller `--controller-namespace` and `--controller-name` name when not given: the install's. */
export const DEFAULT_CONTROLLER_NAMESPACE = CONTROLLER_NAMESPACE
export const DEFAULT_CONTROLLER_NAME = CONTROLLER_NAME

export interface ControllerRef extends KubeOptions {
  namespace: string
  name: string
}

/** Either the Service behind the API server's proxy, or a base URL. */
export type ControllerTarget = ControllerRef | {url: string}

export interface ControllerResponse {
  status: number
  body: string
  contentType: string
  /** The Retry-After header, if any. */
  retryAfter?: string
}

/** The service-proxy path of one of the controller's endpoints (service port named `http`). */
export function proxyPath(namespace: string, name: string, endpoint: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/http:${encodeURIComponent(name)}:http/proxy${endpoint}`
}

export function describeTarget(t: ControllerTarget): string {
  return 'url' in t ? `the controller at ${t.url}` : `the controller ${t.namespace}/${t.name}`
}

/** A usable --controller-url: http(s), no credentials in it. */
export function parseControllerUrl(s: string): string {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    throw new KsealError('ERR_USAGE', `--controller-url ${JSON.stringify(s)}: expected an http(s) URL such as http://127.0.0.1:8080`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new KsealError('ERR_USAGE', `--controller-url: expected http:// or https://, not ${u.protocol}`)
  return u.toString().replace(/\/+$/, '')
}

/** One request to a controller endpoint; the body is capped at `maxBytes` (larger answers are an error). */
export async function controllerRequest(
  target: ControllerTarget,
  endpoint: string,
  o: {method?: string; body?: string; contentType?: string; accept?: string; timeoutMs?: number; maxBytes?: number} = {},
): Promise<ControllerResponse> {
  const timeoutMs = o.timeoutMs ?? 15_000
  const maxBytes = o.maxBytes ?? 4 << 20
  const headers: Record<string, string> = {accept: o.accept ?? '*/*'}
  if (o.body !== undefined) {
    headers['content-type'] = o.contentType ?? 'application/json'
    headers['content-length'] = String(Buffer.byteLength(o.body))
  }
  const opts: https.RequestOptions = {method: o.method ?? 'GET', headers, timeout: timeoutMs}
  let url: URL
  let server: string
  if ('url' in target) {
    url = new URL(target.url.replace(/\/+$/, '') + endpoint)
    server = target.url
  } else {
    const kc = await loadKubeConfig(target)
    server = kc.getCurrentCluster()!.server.replace(/\/+$/, '')
    url = new URL(server + proxyPath(target.namespace, target.name, endpoint))
    try {
      await kc.applyToHTTPSOptions(opts)
    } catch (e) {
      throw new KsealError('ERR_CONFIG', `cannot use the kubeconfig: ${(e as Error).message.split('\n')[0]}`)
    }
    opts.agent = keepAliveAgent(kc, opts) ?? opts.agent
    opts.headers = {...(opts.headers as Record<string, string>), ...headers}
  }
  return new Promise<ControllerResponse>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(url, opts, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (d: Buffer) => {
        size += d.length
        if (size <= maxBytes) chunks.push(d)
      })
      res.on('end', () => {
        if (size > maxBytes) return reject(new KsealError('ERR_BACKEND', `${describeTarget(target)} sent more than ${maxBytes} bytes`))
        const retryAfter = res.headers['retry-after']
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          contentType: String(res.headers['content-type'] ?? ''),
          ...(retryAfter ? {retryAfter} : {}),
        })
      })
      res.on('error', (e) => reject(new KsealError('ERR_BACKEND', `${describeTarget(target)}: ${describeError(e)}`)))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)))
    req.on('error', (e) =>
      reject(
        new KsealError(
          'ERR_BACKEND',
          `cannot reach ${'url' in target ? describeTarget(target) : `the Kubernetes API at ${server}`}: ${describeError(e)}`,
        ),
      ),
    )
    req.end(o.body)
  })
}

/** The one-line reason in an error answer: the controller's JSON `message`, a Kubernetes Status `message`, or the first line of text. */
export function errorDetail(body: string): string {
  try {
    const s = JSON.parse(body) as {message?: unknown}
    if (typeof s.message === 'string') return s.message.split('\n')[0].slice(0, 300)
  } catch {
    // not JSON
  }
  return body.trim().split('\n')[0].slice(0, 200)
}

/** A hint for a failed call, by status. */
export function statusHint(status: number, verb: 'get' | 'create' = 'get'): string {
  return status === 404
    ? ' (is the controller installed there? see --controller-namespace/--controller-name)'
    : status === 503
      ? ' (the controller is not ready or has no key yet)'
      : status === 403
        ? ` (you need ${verb} on services/proxy)`
        : status === 429
          ? ' (its --rotate-rate-limit; try again later)'
          : ''
}

/** The target the --controller-* flags name: --controller-url, else the Service through the kubeconfig's API server. */
export function controllerTarget(flags: {
  'controller-url'?: string
  'controller-namespace'?: string
  'controller-name'?: string
  kubeconfig?: string
  context?: string
}): ControllerTarget {
  if (flags['controller-url'] !== undefined) {
    if (flags.kubeconfig !== undefined || flags.context !== undefined) {
      throw new KsealError('ERR_USAGE', '--controller-url and --kubeconfig/--context are alternatives: pass one of them')
    }
    return {url: parseControllerUrl(flags['controller-url'])}
  }
  return {
    namespace: flags['controller-namespace'] ?? DEFAULT_CONTROLLER_NAMESPACE,
    name: flags['controller-name'] ?? DEFAULT_CONTROLLER_NAME,
    kubeconfig: flags.kubeconfig,
    context: flags.context,
  }
}
