/**
 * A local HashiCorp Vault that speaks Vault's HTTP API (`/v1/...`, JSON, `X-Vault-Token`), for the
 * ExternalSecret Vault provider's tests. There is no official JavaScript client; the provider will
 * use plain HTTP, and so do the tests.
 *
 * Faithful: KV version 2 (vault/kv.ts: data / metadata / list, versions, soft delete, undelete,
 * destroy, check-and-set, 404 bodies); the Kubernetes auth method's login (vault/kubernetes-auth.ts:
 * role checks, then TokenReview against the Kubernetes test server, as Vault does); service tokens
 * with TTL and max TTL on an injectable clock (an expired token gets 403 `permission denied`),
 * `auth/token/lookup-self`, `renew-self` (capped at the max TTL with Vault's warning),
 * `revoke-self`; ACL policies per token (vault/acl.ts; a denied path gets 403 with Vault's
 * multierror text `1 error occurred:\n\t* permission denied\n\n`; `default` and `root` policies);
 * Enterprise namespaces (`X-Vault-Namespace` header and/or the namespace path prefix, nested
 * namespaces, tokens valid in their namespace and below, policies and mounts per namespace);
 * `no handler for route` 404s; rate-limit quotas answered 429 with Vault's body and
 * Retry-After / X-Ratelimit-* headers; `sys/health`; the response envelope (request_id, lease_id,
 * renewable, lease_duration, data, wrap_info, warnings, auth, mount_type); https with a given
 * certificate (`tls`).
 *
 * Deliberate simplifications: Node's HTTP parser rejects the `LIST` method, so listing is `GET
 * ...?list=true` only (which Vault also accepts); mounts, policies, roles and auth configuration
 * are set by test-side helpers, not through `sys/` APIs; no leases, entities, token roles, batch
 * tokens, num_uses, response wrapping or `sys/internal/ui/mounts`; only KV v2 engines and the
 * kubernetes and token auth methods; ACL priority is simplified to "most literal characters, then
 * exact before glob"; a request without a token is answered 403 `permission denied`; renewing a
 * non-renewable token answers 400 `lease is not renewable`.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'
import {randomBytes, randomUUID} from 'node:crypto'
import {type Clock, systemClock} from '../clock.js'
import {Listener, readBody, type TlsOptions} from '../http-listener.js'
import {type Capability, capabilities, type Policy} from './acl.js'
import {type EngineResult, type KvData, KvV2Engine} from './kv.js'
import {type KubernetesAuthConfig, kubernetesLogin, type KubernetesRole, LoginError} from './kubernetes-auth.js'

export type {Policy} from './acl.js'
export type {KubernetesAuthConfig, KubernetesRole} from './kubernetes-auth.js'

export interface VaultServerOptions {
  clock?: Clock
  latencyMs?: number
  /** Mount KV v2 at `secret/` in the root namespace, as `vault server -dev` does. Default true. */
  devMounts?: boolean
  /** Default token TTL in seconds (Vault: 768h). */
  defaultTtl?: number
  /** Maximum token TTL in seconds (Vault: 768h). */
  maxTtl?: number
  /** Serve https with this certificate (as Vault does with tls_cert_file / tls_key_file). */
  tls?: TlsOptions
}

export interface VaultCall {
  method: string
  /** Path after /v1/, as sent (namespace prefix included). */
  path: string
  /** Namespace the request resolved to ('' = root). */
  namespace: string
  status: number
  /** Accessor of the token used (never the token). */
  accessor?: string
  requestId: string
  durationMs: number
  /** Server clock when the request arrived. */
  time: number
}

export interface TokenOptions {
  policies?: string[]
  /** Seconds (default: the server default TTL). */
  ttl?: number
  /** explicit_max_ttl in seconds. */
  maxTtl?: number
  renewable?: boolean
  namespace?: string
  displayName?: string
  meta?: Record<string, string>
  /** Without the `default` policy (no lookup-self / renew-self). */
  noDefaultPolicy?: boolean
}

export interface CreatedToken {
  token: string
  accessor: string
}

export interface VaultFaultOptions {
  status?: number
  errors?: string[]
  /** Only requests whose path (after /v1/, namespace-relative) starts with this. */
  path?: string
}

export interface RateLimitOptions {
  /** Requests per second. */
  rate: number
  /** Only paths (namespace-relative) starting with this. */
  path?: string
  namespace?: string
}

interface Token {
  id: string
  accessor: string
  namespace: string
  policies: string[]
  meta: Record<string, string> | null
  displayName: string
  path: string
  issue: number
  creationTtl: number
  /** 0: never (root). */
  expire: number
  explicitMaxTtl: number
  maxExpire: number
  renewable: boolean
  entityId: string
}

type Mount =
  | {type: 'kv'; engine: KvV2Engine}
  | {type: 'kubernetes'; config?: KubernetesAuthConfig; roles: Map<string, KubernetesRole>}
  | {type: 'token'}

interface Namespace {
  path: string
  id: string
  mounts: Map<string, Mount>
  policies: Map<string, Policy>
}

interface Quota {
  opts: RateLimitOptions
  tokens: number
  last: number
}

interface Fault {
  remaining: number
  opts: VaultFaultOptions
}

const VAULT_DAY = 86_400
const PERMISSION_DENIED = 'permission denied'
const ACL_DENIED = '1 error occurred:\n\t* permission denied\n\n'
const MAX_BODY = 1024 * 1024

/** Go's time.Duration.String() for whole seconds: 1h0m0s, 10m0s, 45s. */
export function goDuration(seconds: number): string {
  if (seconds === 0) return '0s'
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  if (h > 0) return `${h}h${m}m${s}s`
  if (m > 0) return `${m}m${s}s`
  return `${s}s`
}

/** Vault durations: integer seconds, or "90s", "15m", "1h", "1h30m". */
function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
  if (typeof v !== 'string' || v === '') return undefined
  if (/^\d+$/.test(v)) return Number(v)
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v)
  if (!m || (m[1] ?? m[2] ?? m[3]) === undefined) return undefined
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)
}

function trimSlashes(s: string): string {
  return s.replace(/^\/+|\/+$/g, '')
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

class VaultError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
    readonly headers: Record<string, string> = {},
  ) {
    super(errors.join('; '))
  }
}

export class VaultServer {
  url = ''
  latencyMs: number
  readonly clock: Clock
  readonly calls: VaultCall[] = []
  /** The root token (policy root, never expires). */
  readonly rootToken: string
  private readonly namespaces = new Map<string, Namespace>()
  private readonly tokens = new Map<string, Token>()
  private quotas: Quota[] = []
  private faults: Fault[] = []
  private readonly defaultTtl: number
  private readonly maxTtl: number
  private readonly listener: Listener

  constructor(opts: VaultServerOptions = {}) {
    this.clock = opts.clock ?? systemClock
    this.listener = new Listener((req, res) => void this.handle(req, res), opts.tls)
    this.latencyMs = opts.latencyMs ?? 0
    this.defaultTtl = opts.defaultTtl ?? 32 * VAULT_DAY
    this.maxTtl = opts.maxTtl ?? 32 * VAULT_DAY
    this.namespaces.set('', this.newNamespace(''))
    if (opts.devMounts ?? true) this.mountKv('secret')
    this.rootToken = this.issue({
      namespace: '',
      policies: ['root'],
      ttl: 0,
      renewable: false,
      displayName: 'root',
      path: 'auth/token/root',
      meta: null,
    }).id
  }

  // ---- test-side helpers (plain Errors on misuse) ----

  /** Create an Enterprise namespace (its parent must exist): `team-a`, `team-a/payments`. */
  createNamespace(path: string): void {
    const p = trimSlashes(path)
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : ''
    if (!this.namespaces.has(parent)) throw new Error(`vault-server: parent namespace of ${p} does not exist`)
    if (this.namespaces.has(p)) throw new Error(`vault-server: namespace ${p} exists`)
    this.namespaces.set(p, this.newNamespace(p))
  }

  mountKv(path: string, opts: {namespace?: string} = {}): void {
    this.ns(opts.namespace).mounts.set(`${trimSlashes(path)}/`, {type: 'kv', engine: new KvV2Engine(() => this.clock.now())})
  }

  /** Write a new version of a KV v2 secret (`writeSecret('secret', 'app/db', {...})`); returns the version. */
  writeSecret(mount: string, path: string, data: KvData, opts: {namespace?: string; cas?: number} = {}): number {
    return this.kv(mount, opts.namespace).write(trimSlashes(path), data, opts.cas)
  }

  /** Soft-delete versions (default: the current one). */
  deleteSecret(mount: string, path: string, opts: {namespace?: string; versions?: number[]} = {}): void {
    this.kv(mount, opts.namespace).softDelete(trimSlashes(path), opts.versions)
  }

  destroySecretVersions(mount: string, path: string, versions: number[], opts: {namespace?: string} = {}): void {
    this.kv(mount, opts.namespace).destroy(trimSlashes(path), versions)
  }

  putPolicy(name: string, policy: Policy, opts: {namespace?: string} = {}): void {
    if (name === 'root') throw new Error('vault-server: cannot update the root policy')
    this.ns(opts.namespace).policies.set(name, policy)
  }

  enableKubernetesAuth(config: KubernetesAuthConfig, opts: {namespace?: string; mount?: string} = {}): void {
    this.ns(opts.namespace).mounts.set(`auth/${trimSlashes(opts.mount ?? 'kubernetes')}/`, {type: 'kubernetes', config, roles: new Map()})
  }

  putKubernetesRole(name: string, role: KubernetesRole, opts: {namespace?: string; mount?: string} = {}): void {
    this.kubernetesMount(opts).roles.set(name, role)
  }

  deleteKubernetesRole(name: string, opts: {namespace?: string; mount?: string} = {}): void {
    this.kubernetesMount(opts).roles.delete(name)
  }

  /** A service token (what `vault token create` makes). */
  createToken(opts: TokenOptions = {}): CreatedToken {
    const policies = [...new Set([...(opts.noDefaultPolicy ? [] : ['default']), ...(opts.policies ?? [])])]
    const t = this.issue({
      namespace: trimSlashes(opts.namespace ?? ''),
      policies,
      ttl: opts.ttl ?? this.defaultTtl,
      explicitMaxTtl: opts.maxTtl,
      renewable: opts.renewable ?? true,
      displayName: `token${opts.displayName ? `-${opts.displayName}` : ''}`,
      path: 'auth/token/create',
      meta: opts.meta ?? null,
    })
    return {token: t.id, accessor: t.accessor}
  }

  revokeToken(token: string): void {
    this.tokens.delete(token)
  }

  /** A rate-limit quota (token bucket on the server clock); returns a remover. */
  rateLimit(opts: RateLimitOptions): () => void {
    if (!(opts.rate > 0)) throw new Error('rateLimit: rate must be > 0')
    const q: Quota = {
      opts: {...opts, namespace: opts.namespace === undefined ? undefined : trimSlashes(opts.namespace)},
      tokens: opts.rate,
      last: this.clock.now(),
    }
    this.quotas.push(q)
    return () => {
      this.quotas = this.quotas.filter((x) => x !== q)
    }
  }

  clearRateLimits(): void {
    this.quotas = []
  }

  /** The next n matching requests fail with this status (default 500) and errors. */
  failNext(n: number, opts: VaultFaultOptions = {}): void {
    if (n > 0) this.faults.push({remaining: n, opts: {...opts}})
  }

  clearFaults(): void {
    this.faults = []
  }

  count(filter: Partial<Pick<VaultCall, 'method' | 'path' | 'namespace' | 'status'>> = {}): number {
    return this.calls.filter((c) => Object.entries(filter).every(([k, v]) => c[k as keyof VaultCall] === v)).length
  }

  resetStats(): void {
    this.calls.length = 0
  }

  async listen(): Promise<this> {
    this.url = await this.listener.listen()
    return this
  }

  close(): Promise<void> {
    return this.listener.close()
  }

  // ---- internals ----

  private newNamespace(path: string): Namespace {
    return {
      path,
      id: path === '' ? 'root' : randomBytes(3).toString('base64url').slice(0, 5),
      mounts: new Map([['auth/token/', {type: 'token'}]]),
      policies: new Map(),
    }
  }

  private ns(path: string | undefined): Namespace {
    const n = this.namespaces.get(trimSlashes(path ?? ''))
    if (!n) throw new Error(`vault-server: no namespace ${path}`)
    return n
  }

  private kv(mount: string, namespace: string | undefined): KvV2Engine {
    const m = this.ns(namespace).mounts.get(`${trimSlashes(mount)}/`)
    if (m?.type !== 'kv') throw new Error(`vault-server: no KV v2 mount ${mount}`)
    return m.engine
  }

  private kubernetesMount(opts: {namespace?: string; mount?: string}): Extract<Mount, {type: 'kubernetes'}> {
    const m = this.ns(opts.namespace).mounts.get(`auth/${trimSlashes(opts.mount ?? 'kubernetes')}/`)
    if (m?.type !== 'kubernetes') throw new Error(`vault-server: kubernetes auth is not enabled at ${opts.mount ?? 'kubernetes'}`)
    return m
  }

  private issue(o: {
    namespace: string
    policies: string[]
    ttl: number
    explicitMaxTtl?: number
    renewable: boolean
    displayName: string
    path: string
    meta: Record<string, string> | null
  }): Token {
    const now = this.clock.now()
    const max = Math.min(o.explicitMaxTtl || this.maxTtl, this.maxTtl)
    // Only a root token lives forever; for any other, a TTL of 0 means the default.
    const ttl = o.ttl === 0 && o.policies.includes('root') ? 0 : Math.min(o.ttl || this.defaultTtl, max)
    const t: Token = {
      id: `hvs.${randomBytes(24).toString('base64url')}`,
      accessor: randomBytes(18).toString('base64url'),
      namespace: o.namespace,
      policies: [...o.policies].sort(),
      meta: o.meta,
      displayName: o.displayName,
      path: o.path,
      issue: now,
      creationTtl: ttl,
      expire: ttl === 0 ? 0 : now + ttl * 1000,
      explicitMaxTtl: o.explicitMaxTtl ?? 0,
      maxExpire: ttl === 0 ? 0 : now + max * 1000,
      renewable: o.renewable,
      entityId: o.policies.includes('root') ? '' : randomUUID(),
    }
    this.tokens.set(t.id, t)
    return t
  }

  /** A token if it exists, has not expired, and may act in namespace `ns`. */
  private liveToken(id: string | undefined, ns: string): Token | undefined {
    const t = id ? this.tokens.get(id) : undefined
    if (!t) return undefined
    if (t.expire !== 0 && this.clock.now() >= t.expire) {
      this.tokens.delete(t.id)
      return undefined
    }
    return t.namespace === '' || ns === t.namespace || ns.startsWith(`${t.namespace}/`) ? t : undefined
  }

  /** Split a request into (namespace, path inside it): the header names a namespace, the path may name children. */
  private resolveNamespace(header: string | undefined, path: string): {ns: Namespace; rel: string} {
    const full = [trimSlashes(header ?? ''), path].filter((x) => x !== '').join('/')
    let best = this.namespaces.get('')!
    for (const n of this.namespaces.values()) {
      if (n.path !== '' && full.startsWith(`${n.path}/`) && n.path.length > best.path.length) best = n
    }
    return {ns: best, rel: best.path === '' ? full : full.slice(best.path.length + 1)}
  }

  private checkQuota(ns: string, rel: string): void {
    const now = this.clock.now()
    for (const q of this.quotas) {
      if (q.opts.namespace !== undefined && q.opts.namespace !== ns) continue
      if (q.opts.path !== undefined && !rel.startsWith(trimSlashes(q.opts.path))) continue
      q.tokens = Math.min(q.opts.rate, q.tokens + ((now - q.last) / 1000) * q.opts.rate)
      q.last = now
      if (q.tokens < 1) {
        const reset = Math.max(1, Math.ceil((1 - q.tokens) / q.opts.rate))
        throw new VaultError(429, [`request path ${JSON.stringify(rel)}: rate limit quota exceeded`], {
          'Retry-After': String(reset),
          'X-Ratelimit-Limit': String(q.opts.rate),
          'X-Ratelimit-Remaining': '0',
          'X-Ratelimit-Reset': String(reset),
        })
      }
      q.tokens -= 1
    }
  }

  private takeFault(rel: string): VaultError | undefined {
    const f = this.faults.find((x) => x.remaining > 0 && (x.opts.path === undefined || rel.startsWith(trimSlashes(x.opts.path))))
    if (!f) return undefined
    f.remaining--
    this.faults = this.faults.filter((x) => x.remaining > 0)
    const status = f.opts.status ?? 500
    return new VaultError(
      status,
      f.opts.errors ?? [status === 503 ? 'Vault is sealed' : status === 429 ? 'rate limit quota exceeded' : 'internal error'],
    )
  }

  private envelope(
    requestId: string,
    data: unknown,
    mountType: string,
    extra: {warnings?: string[]; auth?: unknown} = {},
  ): Record<string, unknown> {
    return {
      request_id: requestId,
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data,
      wrap_info: null,
      warnings: extra.warnings?.length ? extra.warnings : null,
      auth: extra.auth ?? null,
      mount_type: mountType,
    }
  }

  private authBlock(t: Token, ttl: number): Record<string, unknown> {
    return {
      client_token: t.id,
      accessor: t.accessor,
      policies: t.policies,
      token_policies: t.policies,
      metadata: t.meta,
      lease_duration: ttl,
      renewable: t.renewable,
      entity_id: t.entityId,
      token_type: 'service',
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    }
  }

  // ---- HTTP plumbing ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now()
    const requestId = randomUUID()
    const method = (req.method ?? 'GET').toUpperCase()
    const call: VaultCall = {method, path: '', namespace: '', status: 0, requestId, durationMs: 0, time: this.clock.now()}
    let status: number
    let payload: unknown
    let headers: Record<string, string> = {}
    try {
      const body = await readBody(req, MAX_BODY, () => new VaultError(413, ['http: request body too large']))
      if (this.latencyMs > 0) await sleep(this.latencyMs)
      const url = new URL(req.url ?? '/', 'http://vault')
      if (!url.pathname.startsWith('/v1/')) throw new VaultError(404, [])
      const raw = url.pathname.slice('/v1/'.length)
      call.path = raw
      const nsHeader = req.headers['x-vault-namespace']
      let decoded: string
      try {
        decoded = decodeURIComponent(raw)
      } catch {
        throw new VaultError(400, [`invalid request path ${JSON.stringify(raw)}`])
      }
      const {ns, rel} = this.resolveNamespace(Array.isArray(nsHeader) ? nsHeader[0] : nsHeader, decoded)
      call.namespace = ns.path
      const list = method === 'GET' && ['true', '1'].includes(url.searchParams.get('list') ?? '')
      this.checkQuota(ns.path, rel)
      const fault = this.takeFault(rel)
      if (fault) throw fault
      ;({status, payload} = await this.route(req, method, ns, rel, list, url.searchParams, body, requestId, call))
    } catch (e) {
      const err = e instanceof VaultError ? e : new VaultError(500, [`vault-server bug: ${e instanceof Error ? e.stack : String(e)}`])
      status = err.status
      payload = {errors: err.errors}
      headers = err.headers
    }
    call.status = status
    call.durationMs = Date.now() - started
    this.calls.push(call)
    if (res.destroyed) return
    if (status === 204) {
      res.writeHead(204, {'Cache-Control': 'no-store', ...headers}).end()
      return
    }
    const text = JSON.stringify(payload)
    res
      .writeHead(status, {
        'Content-Type': 'application/json',
        'Cache-Control': 'no-store',
        'Content-Length': Buffer.byteLength(text),
        ...headers,
      })
      .end(text)
  }

  private parseBody(body: Buffer): Record<string, unknown> {
    if (body.length === 0) return {}
    try {
      const v = JSON.parse(body.toString('utf8'))
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v
    } catch {
      // fall through
    }
    throw new VaultError(400, ['error parsing JSON'])
  }

  private async route(
    req: IncomingMessage,
    method: string,
    ns: Namespace,
    rel: string,
    list: boolean,
    query: URLSearchParams,
    rawBody: Buffer,
    requestId: string,
    call: VaultCall,
  ): Promise<{status: number; payload?: unknown}> {
    if (rel === 'sys/health' && method === 'GET') {
      return {
        status: 200,
        payload: {
          initialized: true,
          sealed: false,
          standby: false,
          performance_standby: false,
          replication_performance_mode: 'disabled',
          replication_dr_mode: 'disabled',
          server_time_utc: Math.floor(this.clock.now() / 1000),
          version: '1.17.3+ent',
          cluster_name: 'kseal-test',
          cluster_id: 'kseal-test',
        },
      }
    }
    const mountPath = [...ns.mounts.keys()].filter((p) => `${rel}/`.startsWith(p)).sort((a, b) => b.length - a.length)[0]
    const mount = mountPath !== undefined ? ns.mounts.get(mountPath)! : undefined
    const sub = mountPath !== undefined ? rel.slice(mountPath.length) : rel
    const body = this.parseBody(rawBody)

    if (mount?.type === 'kubernetes' && sub === 'login' && (method === 'POST' || method === 'PUT')) {
      return this.login(ns, mountPath!, mount, body, requestId)
    }

    // Everything else needs a live token allowed in this namespace, and the ACL's permission.
    const header = req.headers['x-vault-token']
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1]
    const token = this.liveToken((Array.isArray(header) ? header[0] : header) ?? bearer, ns.path)
    if (!token) throw new VaultError(403, [PERMISSION_DENIED])
    call.accessor = token.accessor
    const need: Capability = list
      ? 'list'
      : method === 'GET'
        ? 'read'
        : method === 'DELETE'
          ? 'delete'
          : method === 'PATCH'
            ? 'patch'
            : mount?.type === 'kv' && !mount.engine.exists(sub)
              ? 'create'
              : 'update'
    // Vault treats a list request's path as a folder (trailing slash), for the ACL too.
    const aclRel = list && !rel.endsWith('/') ? `${rel}/` : rel
    const aclPath = [ns.path === token.namespace ? '' : ns.path.slice(token.namespace === '' ? 0 : token.namespace.length + 1), aclRel]
      .filter((x) => x !== '')
      .join('/')
    if (!capabilities(token.policies, (name) => this.namespaces.get(token.namespace)?.policies.get(name), aclPath).has(need))
      throw new VaultError(403, [ACL_DENIED])
    if (!mount) throw new VaultError(404, [`no handler for route ${JSON.stringify(rel)}. route entry not found.`])

    switch (mount.type) {
      case 'token':
        return this.tokenEndpoint(method, sub, token, body, requestId)
      case 'kv':
        return this.kvResponse(mount.engine.handle({method, path: sub, list, query, body}), requestId)
      default:
        throw new VaultError(405, ['unsupported operation'])
    }
  }

  private kvResponse(r: EngineResult, requestId: string): {status: number; payload?: unknown} {
    if (r.status === 204) return {status: 204}
    if ('errors' in r) return {status: r.status, payload: {errors: r.errors}}
    if (r.status === 404 && r.data === undefined && r.warnings === undefined) return {status: 404, payload: {errors: []}}
    return {status: r.status, payload: this.envelope(requestId, r.data ?? null, 'kv', {warnings: r.warnings})}
  }

  private async login(
    ns: Namespace,
    mountPath: string,
    mount: Extract<Mount, {type: 'kubernetes'}>,
    body: Record<string, unknown>,
    requestId: string,
  ): Promise<{status: number; payload: unknown}> {
    const roleName = typeof body.role === 'string' ? body.role : ''
    const jwt = typeof body.jwt === 'string' ? body.jwt : ''
    if (roleName === '') throw new VaultError(400, ['missing role'])
    if (jwt === '') throw new VaultError(400, ['missing jwt'])
    const role = mount.roles.get(roleName)
    if (!role) throw new VaultError(400, [`invalid role name ${JSON.stringify(roleName)}`])
    if (!mount.config) throw new VaultError(500, ['could not load backend configuration'])
    let sa
    try {
      sa = await kubernetesLogin(mount.config, role, jwt, this.clock.now())
    } catch (e) {
      if (e instanceof LoginError) throw new VaultError(e.status, [e.message])
      throw e
    }
    const ttl = role.ttl ?? this.defaultTtl
    const max = role.maxTtl ?? this.maxTtl
    const warnings =
      ttl > max
        ? [
            `TTL of ${JSON.stringify(goDuration(ttl))} exceeded the effective max_ttl of ${JSON.stringify(goDuration(max))}; TTL value is capped accordingly`,
          ]
        : []
    const t = this.issue({
      namespace: ns.path,
      policies: [...new Set(['default', ...(role.policies ?? [])])],
      ttl,
      explicitMaxTtl: max,
      renewable: true,
      displayName: `${mountPath.slice('auth/'.length, -1)}-${sa.namespace}-${sa.name}`,
      path: `${mountPath}login`,
      meta: {
        role: roleName,
        service_account_name: sa.name,
        service_account_namespace: sa.namespace,
        service_account_secret_name: '',
        service_account_uid: sa.uid,
      },
    })
    return {status: 200, payload: this.envelope(requestId, null, 'kubernetes', {warnings, auth: this.authBlock(t, t.creationTtl)})}
  }

  private tokenEndpoint(
    method: string,
    sub: string,
    t: Token,
    body: Record<string, unknown>,
    requestId: string,
  ): {status: number; payload?: unknown} {
    const now = this.clock.now()
    const remaining = () => (t.expire === 0 ? 0 : Math.max(0, Math.round((t.expire - now) / 1000)))
    if (sub === 'lookup-self' && method === 'GET') {
      const data = {
        accessor: t.accessor,
        creation_time: Math.floor(t.issue / 1000),
        creation_ttl: t.creationTtl,
        display_name: t.displayName,
        entity_id: t.entityId,
        expire_time: t.expire === 0 ? null : new Date(t.expire).toISOString(),
        explicit_max_ttl: t.explicitMaxTtl,
        id: t.id,
        issue_time: new Date(t.issue).toISOString(),
        meta: t.meta,
        namespace_path: t.namespace === '' ? '' : `${t.namespace}/`,
        num_uses: 0,
        orphan: true,
        path: t.path,
        policies: t.policies,
        renewable: t.renewable,
        ttl: remaining(),
        type: 'service',
      }
      return {status: 200, payload: this.envelope(requestId, data, 'token')}
    }
    if (sub === 'renew-self' && (method === 'POST' || method === 'PUT')) {
      if (!t.renewable || t.expire === 0) throw new VaultError(400, ['lease is not renewable'])
      const increment = body.increment === undefined ? 0 : parseDuration(body.increment)
      if (increment === undefined)
        throw new VaultError(400, [`error parsing increment: time: invalid duration ${JSON.stringify(String(body.increment))}`])
      const want = increment > 0 ? increment : t.creationTtl
      const warnings: string[] = []
      t.expire = now + want * 1000
      if (t.expire > t.maxExpire) {
        t.expire = t.maxExpire
        warnings.push(
          `TTL of ${JSON.stringify(goDuration(want))} exceeded the effective max_ttl of ${JSON.stringify(goDuration(remaining()))}; TTL value is capped accordingly`,
        )
      }
      return {status: 200, payload: this.envelope(requestId, null, 'token', {warnings, auth: this.authBlock(t, remaining())})}
    }
    if (sub === 'revoke-self' && (method === 'POST' || method === 'PUT')) {
      this.tokens.delete(t.id)
      return {status: 204}
    }
    throw new VaultError(405, ['unsupported operation'])
  }
}

/** Start a Vault test server on 127.0.0.1 with a random port. */
export async function startVaultServer(opts: VaultServerOptions = {}): Promise<VaultServer> {
  return new VaultServer(opts).listen()
}
