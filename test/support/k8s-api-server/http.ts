/**
 * HTTP routing: health, OIDC discovery, authentication and authorization, injected faults, API
 * discovery, then each verb of a resource request to its handler.
 */
import {randomUUID} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {parseBody} from './decode.js'
import {list, waitForRv} from './list.js'
import {resolveRequest} from './request.js'
import type {Server} from './server.js'
import {StatusError, errors, faultError, goQuote, statusBody} from './status.js'
import {ADMIN_USER} from './tokens.js'
import type {KubeObject, RequestInfo, RequestRecord} from './types.js'
import {objKey, sleep} from './util.js'
import {startWatch} from './watch.js'
import {create, deleteOptions, patch, remove, update} from './write.js'

export function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(code, {
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Cache-Control': 'no-cache, private',
    'Audit-Id': randomUUID(),
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  })
  res.end(text)
}

export function sendError(s: Server, res: ServerResponse, err: StatusError): void {
  send(res, err.code, err.status, err.headers)
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    const b = c as Buffer
    size += b.length
    if (size > 3 * 1024 * 1024)
      throw new StatusError(statusBody(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'))
    chunks.push(b)
  }
  return Buffer.concat(chunks)
}

export async function handle(s: Server, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const query: Record<string, string> = {}
  for (const [k, v] of url.searchParams) if (!(k in query)) query[k] = v
  const method = (req.method ?? 'GET').toUpperCase()
  const info = resolveRequest(method, url.pathname, query)
  const record: RequestRecord = {...info, status: 0, time: Date.now()}
  s.requests.push(record)
  res.on('finish', () => {
    record.status = res.statusCode
  })
  try {
    const body = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : await readBody(req)
    if (s.latencyMs > 0) await sleep(s.latencyMs)
    if (s.closed) {
      res.destroy()
      return
    }
    const health = ['/healthz', '/livez', '/readyz']
    if (health.includes(url.pathname)) {
      send(res, 200, 'ok')
      return
    }
    const discovery = s.tokens.serveDiscovery(method, url.pathname)
    if (discovery) {
      send(res, discovery.code, discovery.body, {'Content-Type': discovery.contentType})
      return
    }
    const user = s.tokens.authenticate(req.headers.authorization)
    if (!user && s.opts.token !== undefined && req.headers.authorization !== `Bearer ${s.opts.token}`) {
      throw errors.unauthorized()
    }
    record.user = (user ?? ADMIN_USER).username
    s.tokens.authorize(user ?? ADMIN_USER, info)
    const fault = s.faults.find((f) => f.remaining > 0 && (f.opts.match ? f.opts.match(info) : info.isResourceRequest))
    if (fault) {
      fault.remaining--
      s.faults = s.faults.filter((f) => f.remaining > 0)
      throw faultError(fault.opts)
    }
    if (!info.isResourceRequest) {
      serveNonResource(s, res, method, url.pathname)
      return
    }
    await serveResource(s, req, res, info, body)
  } catch (err) {
    if (err instanceof StatusError) sendError(s, res, err)
    else sendError(s, res, errors.internal(err instanceof Error ? err.message : String(err)))
  }
  if (res.headersSent) record.status = res.statusCode // watches: the stream is open, status is known
}

export function serveNonResource(s: Server, res: ServerResponse, method: string, path: string): void {
  if (method !== 'GET') throw errors.genericNotFound()
  const segs = path.split('/').filter(Boolean)
  if (path === '/version' || path === '/version/') {
    const {major, minor} = s.opts.version
    send(res, 200, {
      major,
      minor,
      gitVersion: `v${major}.${minor}.0`,
      gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean',
      buildDate: '2024-08-13T07:28:49Z',
      goVersion: 'go1.22.5',
      compiler: 'gc',
      platform: 'linux/amd64',
    })
    return
  }
  if (segs.length === 1 && segs[0] === 'api') {
    send(res, 200, {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress: `${s.host}:${s._port}`}],
    })
    return
  }
  if (segs.length === 2 && segs[0] === 'api') {
    sendResourceList(s, res, '', segs[1]!)
    return
  }
  if (segs.length === 1 && segs[0] === 'apis') {
    send(res, 200, {kind: 'APIGroupList', apiVersion: 'v1', groups: groups(s)})
    return
  }
  if (segs.length === 2 && segs[0] === 'apis') {
    const g = groups(s).find((x) => x.name === segs[1])
    if (!g) throw errors.genericNotFound()
    send(res, 200, {kind: 'APIGroup', apiVersion: 'v1', ...g})
    return
  }
  if (segs.length === 3 && segs[0] === 'apis') {
    sendResourceList(s, res, segs[1]!, segs[2]!)
    return
  }
  throw errors.genericNotFound()
}

export function groups(s: Server): KubeObject[] {
  const byGroup = new Map<string, string[]>()
  for (const d of s.defs) {
    if (!d.group) continue
    const vs = byGroup.get(d.group) ?? []
    if (!vs.includes(d.version)) vs.push(d.version)
    byGroup.set(d.group, vs)
  }
  for (const g of s.tokens.groups()) if (!byGroup.has(g)) byGroup.set(g, ['v1'])
  return [...byGroup.entries()].map(([name, versions]) => ({
    name,
    versions: versions.map((v) => ({groupVersion: `${name}/${v}`, version: v})),
    preferredVersion: {groupVersion: `${name}/${versions[0]}`, version: versions[0]},
  }))
}

export function sendResourceList(s: Server, res: ServerResponse, group: string, version: string): void {
  const defs = s.defs.filter((d) => d.group === group && d.version === version)
  const extra = s.tokens.resources(group, version)
  if (!defs.length && !extra.length) throw errors.genericNotFound()
  const resources: KubeObject[] = []
  for (const d of defs) {
    const r: KubeObject = {
      name: d.resource,
      singularName: d.singular ?? d.kind.toLowerCase(),
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
    }
    if (d.shortNames?.length) r.shortNames = d.shortNames
    if (d.categories?.length) r.categories = d.categories
    resources.push(r)
    if (d.statusSubresource) {
      resources.push({
        name: `${d.resource}/status`,
        singularName: '',
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: ['get', 'patch', 'update'],
      })
    }
    if (d.group === '' && d.resource === 'namespaces') {
      resources.push({name: 'namespaces/finalize', singularName: '', namespaced: false, kind: 'Namespace', verbs: ['update']})
    }
  }
  resources.push(...extra)
  send(res, 200, {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources})
}

export async function serveResource(s: Server, req: IncomingMessage, res: ServerResponse, info: RequestInfo, body: Buffer): Promise<void> {
  const tokenResponse = s.tokens.serve(info, body)
  if (tokenResponse) {
    send(res, tokenResponse.code, tokenResponse.body, tokenResponse.headers)
    return
  }
  const def = s.findDef(info.apiGroup ?? '', info.apiVersion ?? '', info.resource ?? '')
  if (!def) throw errors.genericNotFound()
  const {verb, name, subresource, query: q} = info
  let ns = info.namespace
  if (def.namespaced) {
    if (name !== undefined && ns === undefined && verb !== 'watch') throw errors.genericNotFound()
  } else if (ns !== undefined) throw errors.genericNotFound()
  if (subresource !== undefined) {
    const ok =
      (subresource === 'status' && def.statusSubresource) ||
      (subresource === 'finalize' && def.group === '' && def.resource === 'namespaces')
    if (!ok) throw errors.genericNotFound()
    if (!['get', 'update', 'patch'].includes(verb)) throw errors.methodNotAllowed()
    if (subresource === 'finalize' && verb !== 'update') throw errors.methodNotAllowed()
  }
  if (!def.namespaced) ns = undefined
  if ((verb === 'update' || verb === 'patch') && name === undefined) throw errors.methodNotAllowed()
  const dryRun = parseDryRun(q.dryRun)
  switch (verb) {
    case 'list':
      send(res, 200, await list(s, def, ns, q))
      return
    case 'watch': {
      const wq = {...q}
      if (name) wq.fieldSelector = [`metadata.name=${name}`, q.fieldSelector].filter(Boolean).join(',')
      startWatch(s, def, ns, wq, res)
      return
    }
    case 'get': {
      await waitForRv(s, q.resourceVersion, undefined)
      const o = s.bucket(def).objects.get(objKey(ns, name!))
      if (!o) throw errors.notFound(def, name!)
      send(res, 200, s.toViewOrdered(def, o))
      return
    }
    case 'create': {
      if (name !== undefined) throw errors.methodNotAllowed()
      if (def.namespaced && ns === undefined) throw errors.methodNotAllowed()
      const {obj, warnings} = parseBody(s, req, body, def, q)
      const created = create(s, def, ns, obj, dryRun)
      send(res, 201, created, warnings)
      return
    }
    case 'update': {
      const {obj, warnings} = parseBody(s, req, body, def, q)
      const {object, created} = update(s, def, ns, name!, subresource, obj, dryRun, 'update')
      send(res, created ? 201 : 200, object, warnings)
      return
    }
    case 'patch': {
      const object = patch(s, req, def, ns, name!, subresource, body, dryRun)
      send(res, 200, object)
      return
    }
    case 'delete': {
      const opts = deleteOptions(body, q, dryRun)
      const out = remove(s, def, ns, name!, opts)
      send(res, 200, out)
      return
    }
    case 'deletecollection': {
      if (def.namespaced && ns === undefined) throw errors.methodNotAllowed()
      const opts = deleteOptions(body, q, dryRun)
      const all = await list(s, def, ns, {...q, limit: '', continue: ''})
      const items: KubeObject[] = []
      for (const it of all.items as KubeObject[]) {
        try {
          remove(s, def, ns, it.metadata.name, opts)
          items.push(it)
        } catch (e) {
          if (!(e instanceof StatusError && e.code === 404)) throw e
        }
      }
      send(res, 200, {...all, items})
      return
    }
    default:
      throw errors.methodNotAllowed()
  }
}

export function parseDryRun(v: string | undefined): boolean {
  if (v === undefined || v === '') return false
  if (v === 'All') return true
  throw errors.badRequest(`Invalid dryRun parameter: ${goQuote(v)}: supported values: "All"`)
}
