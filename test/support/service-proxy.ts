/**
 * The API server's service proxy (`/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`),
 * as a front for the Kubernetes API test server: proxy requests for a registered Service go to a
 * local URL (the controller's HTTP server), everything else is passed through to the test server
 * unchanged (watch streams included). `kseal cert` and `kseal seal --controller-*` use it the way
 * they use a real cluster, where kubeseal's `--fetch-cert` goes the same way.
 *
 * Faithful: the path form, 404 `services "NAME" not found` Status for an unknown Service, 503
 * ServiceUnavailable when the port name is unknown or the backend cannot be reached, the backend's
 * status, content type and body passed back as they are; GET, HEAD and POST (a POST's body and
 * content type forwarded, as for `kseal reseal`'s /v1/rotate). Not faithful: no Endpoints objects
 * (a Service is registered directly with its backend URL), no other methods.
 */
import http from 'node:http'
import {readFile, writeFile} from 'node:fs/promises'
import type {AddressInfo, Socket} from 'node:net'
import type {K8sApiServer} from './k8s-api-server.js'

export interface ServiceProxy {
  readonly url: string
  /** Routes `services/[http:]NAME[:PORT]/proxy/...` in NAMESPACE to `target` (e.g. http://127.0.0.1:PORT). */
  register(namespace: string, name: string, target: string, ports?: string[]): void
  unregister(namespace: string, name: string): void
  /** A kubeconfig whose server is this front, not the test server behind it. */
  writeKubeconfig(path: string): Promise<void>
  /** Proxy requests served, as `NS/NAME/PATH`. */
  readonly proxied: string[]
  close(): Promise<void>
}

const PROXY_RE = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy(\/.*)?$/

function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? {details} : {}),
    code,
  })
}

export async function startServiceProxy(upstream: K8sApiServer): Promise<ServiceProxy> {
  const services = new Map<string, {target: string; ports: string[]}>()
  const proxied: string[] = []
  const up = new URL(upstream.url)
  const sockets = new Set<Socket>()

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const m = PROXY_RE.exec(url.pathname)
    if (!m) {
      // Pass through to the test server, streaming both ways.
      const fwd = http.request({host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers}, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers)
        ur.pipe(res)
      })
      fwd.on('error', () => res.destroy())
      res.on('close', () => fwd.destroy())
      req.pipe(fwd)
      return
    }
    const ns = decodeURIComponent(m[1])
    const ref = decodeURIComponent(m[2])
    const rest = m[3] ?? '/'
    const parts = ref.split(':')
    const [scheme, name, port] = parts.length === 3 ? parts : parts.length === 2 ? ['', parts[0], parts[1]] : ['', parts[0], '']
    const send = (code: number, body: string) => {
      res.writeHead(code, {'content-type': 'application/json'})
      res.end(body)
    }
    const svc = services.get(`${ns}/${name}`)
    if (!svc) return send(404, status(404, 'NotFound', `services "${name}" not found`, {name, kind: 'services'}))
    if (scheme && scheme !== 'http') return send(503, status(503, 'ServiceUnavailable', `no endpoints available for service "${ref}"`))
    if (port && !svc.ports.includes(port))
      return send(503, status(503, 'ServiceUnavailable', `no endpoints available for service "${ref}"`))
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST')
      return send(405, status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'))
    proxied.push(`${ns}/${name}${rest}`)
    const target = new URL(rest + url.search, svc.target)
    const headers: Record<string, string> = {accept: req.headers.accept ?? '*/*'}
    for (const h of ['content-type', 'content-length'] as const) if (req.headers[h]) headers[h] = String(req.headers[h])
    const fwd = http.request(target, {method: req.method, headers}, (ur) => {
      res.writeHead(ur.statusCode ?? 502, {'content-type': ur.headers['content-type'] ?? 'application/octet-stream'})
      ur.pipe(res)
    })
    fwd.on('error', (e: NodeJS.ErrnoException) =>
      send(
        503,
        status(
          503,
          'ServiceUnavailable',
          `error trying to reach service: dial tcp ${target.host}: ${e.code === 'ECONNREFUSED' ? 'connect: connection refused' : e.message}`,
        ),
      ),
    )
    if (req.method === 'POST') req.pipe(fwd)
    else fwd.end()
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    proxied,
    register: (namespace, name, target, ports = ['http']) => void services.set(`${namespace}/${name}`, {target, ports}),
    unregister: (namespace, name) => void services.delete(`${namespace}/${name}`),
    async writeKubeconfig(path) {
      await upstream.writeKubeconfig(path)
      const text = await readFile(path, 'utf8')
      await writeFile(path, text.split(upstream.url).join(url), {mode: 0o600})
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
