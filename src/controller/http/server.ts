/**
 * The controller's HTTP endpoints: `/v1/cert.pem` (the newest sealing certificate — public),
 * `/healthz` (the process is alive), `/readyz` (keys loaded and SealedSecrets listed), `/metrics`
 * (Prometheus text), `/v1/keys` (the sealing keys: id, created, active — public facts),
 * `POST /v1/rotate` (re-seal a SealedSecret to the newest key: ciphertext in, ciphertext out) and
 * `POST /v1/verify` (does a SealedSecret open here: kubeseal --validate). Both POSTs share the body
 * limit (bodies over 1 MiB refused with 413) and the rate limit (429 and Retry-After). Nothing here
 * ever returns private material or a plaintext value.
 */
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {KsealError} from '../../core/errors.js'

export interface HttpHandlers {
  certPem(): string | undefined
  /** Null when ready, else the reasons it is not. */
  notReady(): string[] | null
  /** The Prometheus text exposition. */
  metrics(): string | Promise<string>
  /** `/v1/keys`: a JSON-ready list. */
  keys?(): unknown
  /** `POST /v1/rotate`. */
  reseal?(body: Buffer, contentType: string): Promise<{status: number; body: string}>
  /** `POST /v1/verify`. */
  verify?(body: Buffer, contentType: string): Promise<{status: number; body: string}>
  /** Largest request body accepted (bytes). */
  maxBodyBytes?: number
  /** Admits one `/v1/rotate` or `/v1/verify` request: 0, or the seconds to wait before asking again (answered 429). */
  resealAdmit?(): number
  /** Listener limits (defaults: HTTP_LIMITS). */
  limits?: Partial<HttpLimits>
}

/**
 * The listener's limits, so slow or numerous clients cannot hold it: how long a client may take to
 * send its headers and its whole request, and how many connections may be open at once (more are
 * closed as they arrive). Node's own defaults are 60 s, 300 s and no limit.
 */
export interface HttpLimits {
  headersTimeoutMs: number
  requestTimeoutMs: number
  maxConnections: number
}

export const HTTP_LIMITS: HttpLimits = {headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxConnections: 256}

export interface HttpServer {
  /** `host:port` actually bound (the port is real even when 0 was asked for). */
  address: string
  port: number
  /** Open connections now. */
  connections(): Promise<number>
  close(): Promise<void>
}

/** Parses `--listen`: `:8080`, `8080`, `127.0.0.1:0`, `[::1]:8080`. */
export function parseListen(s: string): {host?: string; port: number} {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(s.trim())
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535)
    throw new KsealError('ERR_USAGE', `--listen ${JSON.stringify(s)}: expected [HOST]:PORT, e.g. :8080 or 127.0.0.1:8080`)
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : undefined
  return {host: host || undefined, port}
}

export async function startHttpServer(listen: string, h: HttpHandlers): Promise<HttpServer> {
  const {host, port} = parseListen(listen)
  const limits = {...HTTP_LIMITS, ...h.limits}
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // How often those timeouts are checked: often enough to hold them within a fraction of themselves.
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      const send = (code: number, type: string, body: string, extra: Record<string, string> = {}) => {
        res.writeHead(code, {'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra})
        res.end(req.method === 'HEAD' ? undefined : body)
      }
      const post = url.pathname === '/v1/rotate' ? h.reseal : url.pathname === '/v1/verify' ? h.verify : undefined
      if (post) {
        const json = 'application/json'
        if (req.method !== 'POST')
          return send(405, json, JSON.stringify({code: 'ERR_USAGE', message: `POST a SealedSecret to ${url.pathname}`}) + '\n', {
            allow: 'POST',
          })
        const wait = h.resealAdmit?.() ?? 0
        if (wait > 0) {
          // Retry-After is whole seconds; the body carries the exact wait for clients that read it.
          req.resume()
          return send(
            429,
            json,
            JSON.stringify({
              code: 'ERR_BACKEND',
              message: `too many ${url.pathname} requests: retry in ${wait.toFixed(2)}s`,
              retryAfterSeconds: wait,
            }) + '\n',
            {'retry-after': String(Math.ceil(wait))},
          )
        }
        const limit = h.maxBodyBytes ?? 1 << 20
        const tooLarge = () =>
          send(413, json, JSON.stringify({code: 'ERR_INPUT', message: `the request body is larger than ${limit} bytes`}) + '\n', {
            connection: 'close',
          })
        if (Number(req.headers['content-length'] ?? 0) > limit) {
          req.resume()
          return tooLarge()
        }
        const chunks: Buffer[] = []
        let size = 0
        let over = false
        req.on('data', (c: Buffer) => {
          size += c.length
          if (size > limit) over = true
          else chunks.push(c)
        })
        req.on('end', () => {
          if (over) return tooLarge()
          post(Buffer.concat(chunks), String(req.headers['content-type'] ?? ''))
            .then((r) => send(r.status, json, r.body))
            .catch(() => send(500, json, JSON.stringify({code: 'ERR_BACKEND', message: 'internal error'}) + '\n'))
        })
        req.on('error', () => res.destroy())
        return
      }
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(405, 'text/plain; charset=utf-8', 'method not allowed\n', {allow: 'GET, HEAD'})
      switch (url.pathname) {
        case '/v1/keys':
          if (!h.keys) return send(404, 'text/plain; charset=utf-8', 'not found\n')
          return send(200, 'application/json', JSON.stringify(h.keys(), null, 2) + '\n')
        case '/v1/cert.pem': {
          const pem = h.certPem()
          return pem ? send(200, 'application/x-pem-file', pem) : send(503, 'text/plain; charset=utf-8', 'no sealing key yet\n')
        }
        case '/healthz':
          return send(200, 'text/plain; charset=utf-8', 'ok\n')
        case '/readyz': {
          const why = h.notReady()
          return why
            ? send(503, 'text/plain; charset=utf-8', `not ready: ${why.join('; ')}\n`)
            : send(200, 'text/plain; charset=utf-8', 'ok\n')
        }
        case '/metrics':
          Promise.resolve(h.metrics()).then(
            (text) => send(200, 'text/plain; version=0.0.4; charset=utf-8', text),
            () => send(500, 'text/plain; charset=utf-8', 'internal error\n'),
          )
          return
        default:
          return send(404, 'text/plain; charset=utf-8', 'not found\n')
      }
    },
  )
  server.keepAliveTimeout = 5000
  server.maxConnections = limits.maxConnections
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new KsealError(
          'ERR_IO',
          `cannot listen on ${listen}: ${e.code === 'EADDRINUSE' ? 'address in use' : e.code === 'EACCES' ? 'permission denied' : e.message}`,
        ),
      ),
    )
    server.listen(port, host, () => resolve())
  })
  const a = server.address() as AddressInfo
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    port: a.port,
    connections: () => new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n ?? 0))),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
