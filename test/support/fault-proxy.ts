/**
 * A fault-injecting HTTP proxy in front of the Kubernetes API test server: a client (a controller
 * replica, through its own kubeconfig) talks to the proxy, the proxy forwards to the server —
 * streaming, watches included — and on the way it can fail requests, delay them, cut watch streams,
 * answer 409s, or let a hook play another writer or a mutating webhook. Every request it saw is
 * logged with the time it arrived and the status it got, so a test can say exactly which replica
 * sent what, and when.
 *
 * Faithful: injected errors are the apiserver's own Status bodies (reason, message, details,
 * `Retry-After` for 429/503/504 — from k8s-api-server's faultError and conflictError); a cut watch is
 * a dropped connection, as when an apiserver or a load balancer goes away. Requests that are not
 * failed reach the real test server unchanged (a hook may rewrite a write's body, as a mutating
 * webhook rewrites the object before it is stored).
 */
import http from 'node:http'
import {readFile, writeFile} from 'node:fs/promises'
import type {AddressInfo, Socket} from 'node:net'
import {conflictError, faultError, type K8sApiServer, type RequestInfo, resolveRequest, type StatusError} from './k8s-api-server.js'

/** A request as the proxy saw it; a create's `name` is the object's, from its body (as in an audit log). */
export interface ProxyRecord extends RequestInfo {
  /** Date.now() when the request reached the proxy. */
  time: number
  /** The status the client got (0 until known; a watch's is known when its stream opens). */
  status: number
  /** Answered by the proxy itself (an injected fault), not by the server. */
  injected: boolean
}

export interface ErrorFault {
  /** Share of matching requests answered with an error, 0..1. */
  rate: number
  /** 500, 503, 429 or 504 (the apiserver's bodies; 429/503/504 carry Retry-After). */
  statuses: number[]
  retryAfter?: number
  match?: (r: RequestInfo) => boolean
}

export interface Faults {
  errors?: ErrorFault
  /** Share of Secret updates and SealedSecret status patches answered 409 Conflict without reaching the server. */
  conflictRate?: number
  /** Delay before forwarding each request: a fixed part plus up to `jitterMs` more. */
  latencyMs?: number
  jitterMs?: number
  /** Cut every open watch this often (ms). */
  cutWatchesEveryMs?: number
}

export interface WriteHook {
  /** Before a write is forwarded: may return a new body (a mutating webhook) or act as another writer on the server. */
  before?(r: RequestInfo, body: Buffer): Buffer | void
  /** After the server answered a write (`body` as forwarded). */
  after?(r: RequestInfo, status: number, body: Buffer): void
  /** Before the server's answer to a write is passed on: a promise holds it back, so the client sees the write's watch event first (as over a slow link). */
  answer?(r: RequestInfo): Promise<void> | void
}

export interface FaultProxy {
  readonly url: string
  readonly log: ProxyRecord[]
  /** Replaces the active faults ({} stops them all). */
  set(faults: Faults): void
  /** Drops every open watch stream now; returns how many. */
  cutWatches(): number
  hook?: WriteHook
  writeKubeconfig(path: string): Promise<void>
  close(): Promise<void>
}

const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection'])
export const isWrite = (r: RequestInfo) => r.isResourceRequest && WRITES.has(r.verb)

export async function startFaultProxy(upstream: K8sApiServer, random: () => number = Math.random): Promise<FaultProxy> {
  const up = new URL(upstream.url)
  const sockets = new Set<Socket>()
  const watches = new Set<{req: http.ClientRequest; res: http.ServerResponse}>()
  const log: ProxyRecord[] = []
  let faults: Faults = {}
  let cutTimer: NodeJS.Timeout | undefined

  const cutWatches = () => {
    const n = watches.size
    for (const w of watches) {
      w.req.destroy()
      w.res.socket?.destroy()
    }
    watches.clear()
    return n
  }

  const sendError = (res: http.ServerResponse, e: StatusError) => {
    const text = JSON.stringify(e.status)
    res.writeHead(e.code, {'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...e.headers})
    res.end(text)
  }

  const proxy: FaultProxy = {
    url: '',
    log,
    set(f) {
      faults = f
      if (cutTimer) clearInterval(cutTimer)
      cutTimer = undefined
      if (f.cutWatchesEveryMs) {
        cutTimer = setInterval(cutWatches, f.cutWatchesEveryMs)
        cutTimer.unref()
      }
    },
    cutWatches,
    async writeKubeconfig(path) {
      await upstream.writeKubeconfig(path)
      const text = await readFile(path, 'utf8')
      await writeFile(path, text.split(upstream.url).join(proxy.url), {mode: 0o600})
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (cutTimer) clearInterval(cutTimer)
        cutWatches()
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const query: Record<string, string> = {}
    for (const [k, v] of url.searchParams) if (!(k in query)) query[k] = v
    const info = resolveRequest((req.method ?? 'GET').toUpperCase(), url.pathname, query)
    const record: ProxyRecord = {...info, time: Date.now(), status: 0, injected: false}
    log.push(record)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const f = faults
        const delay = (f.latencyMs ?? 0) + (f.jitterMs ? random() * f.jitterMs : 0)
        if (delay > 0) await new Promise((r) => setTimeout(r, delay))
        if (res.destroyed) return
        const e = f.errors
        if (info.isResourceRequest && e && (e.match ? e.match(info) : true) && random() < e.rate) {
          record.injected = true
          record.status = e.statuses[Math.floor(random() * e.statuses.length)]
          return sendError(res, faultError({status: record.status, retryAfter: e.retryAfter}))
        }
        const secretUpdate = info.verb === 'update' && info.resource === 'secrets' && !info.subresource
        const statusPatch = info.verb === 'patch' && info.resource === 'sealedsecrets' && info.subresource === 'status'
        if ((secretUpdate || statusPatch) && f.conflictRate && random() < f.conflictRate) {
          record.injected = true
          record.status = 409
          return sendError(res, conflictError(info.apiGroup ?? '', info.resource!, info.name ?? ''))
        }
        let body: Buffer = Buffer.concat(chunks)
        if (info.verb === 'create' && !record.name) {
          // As an audit log's objectRef: a create names its object in the body.
          try {
            record.name = (JSON.parse(body.toString()) as {metadata?: {name?: string}}).metadata?.name
          } catch {
            // not JSON: no name
          }
        }
        if (isWrite(info)) {
          try {
            body = proxy.hook?.before?.(info, body) ?? body
          } catch (err) {
            // A broken hook must not leave the client waiting: it gets a 500, the test sees the cause.
            record.injected = true
            record.status = 500
            return sendError(res, faultError({status: 500, message: `fault-proxy hook: ${(err as Error).message}`}))
          }
        }
        const headers = {...req.headers, host: `${up.hostname}:${up.port}`}
        if (body.length || headers['content-length'] !== undefined) headers['content-length'] = String(body.length)
        const fwd = http.request({host: up.hostname, port: up.port, method: req.method, path: req.url, headers}, (ur) => {
          record.status = ur.statusCode ?? 502
          const pass = () => {
            res.writeHead(record.status, ur.headers)
            // At once, as the server sent them: a watch that has no event yet is open all the same.
            res.flushHeaders()
            ur.pipe(res)
          }
          if (isWrite(info)) ur.on('end', () => proxy.hook?.after?.(info, record.status, body))
          const held = isWrite(info) ? proxy.hook?.answer?.(info) : undefined
          if (held) held.then(pass, pass)
          else pass()
        })
        const entry = {req: fwd, res}
        if (info.verb === 'watch') watches.add(entry)
        fwd.on('error', () => res.destroy())
        res.on('close', () => {
          watches.delete(entry)
          fwd.destroy()
        })
        fwd.end(body)
      })()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  ;(proxy as {url: string}).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return proxy
}
