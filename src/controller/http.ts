/**
 * The controller's HTTP endpoints: `/v1/cert.pem` (the newest sealing certificate — public),
 * `/healthz` (the process is alive), `/readyz` (keys loaded and SealedSecrets listed), `/metrics`
 * (Prometheus text). GET and HEAD only; nothing here ever returns private material.
 */
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {KsealError} from '../errors.js'

export interface HttpHandlers {
  certPem(): string | undefined
  /** Null when ready, else the reasons it is not. */
  notReady(): string[] | null
  metrics(): string
}

export interface HttpServer {
  /** `host:port` actually bound (the port is real even when 0 was asked for). */
  address: string
  port: number
  close(): Promise<void>
}

/** Parses `--listen`: `:8080`, `8080`, `127.0.0.1:0`, `[::1]:8080`. */
export function parseListen(s: string): {host?: string; port: number} {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(s.trim())
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new KsealError('ERR_USAGE', `--listen ${JSON.stringify(s)}: expected [HOST]:PORT, e.g. :8080 or 127.0.0.1:8080`)
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : undefined
  return {host: host || undefined, port}
}

export async function startHttpServer(listen: string, h: HttpHandlers): Promise<HttpServer> {
  const {host, port} = parseListen(listen)
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const send = (code: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(code, {'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra})
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n', {allow: 'GET, HEAD'})
    switch (url.pathname) {
      case '/v1/cert.pem': {
        const pem = h.certPem()
        return pem ? send(200, 'application/x-pem-file', pem) : send(503, 'text/plain; charset=utf-8', 'no sealing key yet\n')
      }
      case '/healthz':
        return send(200, 'text/plain; charset=utf-8', 'ok\n')
      case '/readyz': {
        const why = h.notReady()
        return why ? send(503, 'text/plain; charset=utf-8', `not ready: ${why.join('; ')}\n`) : send(200, 'text/plain; charset=utf-8', 'ok\n')
      }
      case '/metrics':
        return send(200, 'text/plain; version=0.0.4; charset=utf-8', h.metrics())
      default:
        return send(404, 'text/plain; charset=utf-8', 'not found\n')
    }
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new KsealError('ERR_IO', `cannot listen on ${listen}: ${e.code === 'EADDRINUSE' ? 'address in use' : e.code === 'EACCES' ? 'permission denied' : e.message}`)))
    server.listen(port, host, () => resolve())
  })
  const a = server.address() as AddressInfo
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    port: a.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
