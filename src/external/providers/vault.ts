/**
 * HashiCorp Vault KV version 2 over its HTTP API (no client library: http.ts).
 *
 * - Keys are paths inside the store's mount (`path`, default `secret`); a key may repeat the mount
 *   and `data/` as external-secrets allows (`secret/data/apps/db`). Every path segment is checked
 *   (no `.`, `..` or empty segment) and percent-encoded, so a key cannot climb out of the mount to
 *   another API (`../../auth/token/lookup-self` would put the controller's token in a Secret).
 * - `version` reads a KV version (`?version=N`).
 * - Auth: the Kubernetes method (a TokenRequest token for the store's ServiceAccount, or a JWT
 *   from a Secret, sent to `auth/MOUNT/login`), or a token from a Secret; tokens are kept alive by
 *   vault-token.ts. Enterprise namespaces go in X-Vault-Namespace (auth.namespace for the login).
 * - find lists `metadata/` folders recursively (bounded in depth and count) and matches the
 *   regexp against each path below the mount; tags match the version's custom_metadata, which the
 *   data read returns, so each candidate costs one read.
 * - 403 `permission denied` on a kept token logs in again once (the token may have been revoked);
 *   429 is ERR_THROTTLED with Retry-After.
 */
import {Limiter} from '../../core/limit.js'
import {type JsonNode, JsonSyntaxError, parseJson} from '../property.js'
import type {NameMatcher} from '../../core/regex.js'
import type {FindRef, VaultProviderSpec} from '../types.js'
import {detail} from './errors.js'
import {HttpClient, ResponseTooLarge} from './http.js'
import {READ_CONCURRENCY, type FetchRef, findBudget, MAX_FIND, type Provider, type ProviderInit, type RemoteValue} from './types.js'
import {type VaultLease, VaultTokenManager} from './vault-token.js'

export interface VaultOptions {
  /** Replaces the store's auth with this token (render: VAULT_TOKEN). */
  token?: string
  /** Replaces the store's server (render: VAULT_ADDR). */
  address?: string
  /** Extra PEM CA certificates (render: VAULT_CACERT). */
  ca?: string
  /** Lifetime asked for ServiceAccount tokens used to log in. */
  tokenExpirationSeconds?: number
  timeoutMs?: number
}

export type VaultContext = ProviderInit<VaultProviderSpec, VaultOptions>

const MAX_DEPTH = 32
const MAX_LISTED = 10_000

interface Answer {
  status: number
  body?: JsonNode
  retryAfterMs?: number
  errors: string
}

const field = (n: JsonNode | undefined, ...path: string[]): JsonNode | undefined => {
  for (const p of path) n = n?.type === 'object' ? n.entries.find(([k]) => k === p)?.[1] : undefined
  return n
}

export async function openVault(c: VaultContext): Promise<Provider> {
  const {spec, errors} = c
  let ca = c.options?.ca ?? spec.caBundle
  if (spec.caSecretRef)
    ca = [ca, Buffer.from(await c.access.secretKey(c.namespace, spec.caSecretRef)).toString('utf8')].filter(Boolean).join('\n')
  const http = new HttpClient({ca, timeoutMs: c.options?.timeoutMs})
  const base = (c.options?.address ?? spec.server).replace(/\/+$/, '')
  const mount = spec.path

  async function call(
    method: string,
    path: string,
    token: string | undefined,
    namespace: string | undefined,
    key: string | undefined,
    body?: unknown,
  ): Promise<Answer> {
    const headers: Record<string, string> = {accept: 'application/json'}
    if (token) headers['x-vault-token'] = token
    if (namespace) headers['x-vault-namespace'] = namespace
    let res
    try {
      res = await http.request(new URL(`${base}/v1/${path}`), method, headers, body === undefined ? undefined : JSON.stringify(body))
    } catch (e) {
      if (e instanceof ResponseTooLarge) throw errors.error('ERR_BACKEND', key, e.message)
      throw errors.error('ERR_BACKEND', key, `cannot reach Vault: ${detail((e as Error).message)}`)
    }
    let parsed: JsonNode | undefined
    if (res.text) {
      try {
        parsed = parseJson(res.text)
      } catch (e) {
        if (!(e instanceof JsonSyntaxError)) throw e
        throw errors.error('ERR_BACKEND', key, `HTTP ${res.status}: the answer is not JSON`)
      }
    }
    const list = field(parsed, 'errors')
    const texts = list?.type === 'array' ? list.items.map((x) => (x.type === 'string' ? x.value : x.raw)) : []
    const ra = Number(res.headers['retry-after'])
    return {
      status: res.status,
      body: parsed,
      retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined,
      errors: detail(texts.join('; ')),
    }
  }

  // ---- auth ----
  const authNamespace = spec.authNamespace ?? spec.namespace
  let tokens: VaultTokenManager
  const fixed =
    c.options?.token ??
    (spec.auth.kind === 'token'
      ? Buffer.from(await c.access.secretKey(c.namespace, spec.auth.tokenSecretRef))
          .toString('utf8')
          .trim()
      : undefined)
  if (fixed !== undefined) {
    if (!fixed) throw errors.error('ERR_CONFIG', undefined, 'the Vault token is empty')
    tokens = new VaultTokenManager(
      {
        login: async () => ({token: fixed, ttlSeconds: 0, renewable: false}),
        renew: async () => ({token: fixed, ttlSeconds: 0, renewable: false}),
      },
      c.now,
    )
  } else {
    const auth = spec.auth as Extract<VaultProviderSpec['auth'], {kind: 'kubernetes'}>
    const lease = (a: Answer, what: string): VaultLease => {
      const block = field(a.body, 'auth')
      const tok = field(block, 'client_token')
      const ttl = field(block, 'lease_duration')
      if (a.status !== 200 || tok?.type !== 'string') fail(a, undefined, what)
      return {
        token: (tok as {value: string}).value,
        ttlSeconds: ttl?.type === 'number' ? ttl.value : 0,
        renewable: field(block, 'renewable')?.type === 'true',
      }
    }
    tokens = new VaultTokenManager(
      {
        login: async () => {
          const jwt = auth.serviceAccount
            ? (
                await c.access.serviceAccountToken(c.namespace, {
                  name: auth.serviceAccount.name,
                  audiences: auth.serviceAccount.audiences.length ? auth.serviceAccount.audiences : ['vault'],
                  expirationSeconds: c.options?.tokenExpirationSeconds ?? 600,
                })
              ).token
            : Buffer.from(await c.access.secretKey(c.namespace, auth.secretRef!))
                .toString('utf8')
                .trim()
          const a = await call('POST', `auth/${auth.mountPath}/login`, undefined, authNamespace, undefined, {role: auth.role, jwt})
          return lease(a, `Kubernetes login (role ${JSON.stringify(auth.role)}) refused`)
        },
        renew: async (token) =>
          lease(await call('POST', 'auth/token/renew-self', token, authNamespace, undefined, {}), 'token renewal refused'),
      },
      c.now,
    )
  }

  function fail(a: Answer, key: string | undefined, what: string): never {
    const why = a.errors ? `: ${a.errors}` : ''
    if (a.status === 429) throw errors.throttled(key, a.retryAfterMs ?? 1000, `Vault is rate limiting (HTTP 429)${why}`)
    if (a.status === 403 || a.status === 401) throw errors.error('ERR_DENIED', key, `${what}: permission denied (HTTP ${a.status})${why}`)
    if (a.status === 404) throw errors.error('ERR_NOT_FOUND', key, `${what}: not found`)
    throw errors.error('ERR_BACKEND', key, `${what}: HTTP ${a.status}${why}`)
  }

  /** One authenticated call; a refused kept token is replaced by a fresh login once. */
  async function authed(method: string, path: string, key: string | undefined): Promise<Answer> {
    let token = await tokens.token()
    let a = await call(method, path, token, spec.namespace, key)
    if (a.status === 403 && /^permission denied$/.test(a.errors)) {
      tokens.invalidate(token)
      token = await tokens.token()
      a = await call(method, path, token, spec.namespace, key)
    }
    return a
  }

  // ---- paths ----
  function relative(key: string): string {
    let rel = key.replace(/^\/+/, '')
    if (rel.startsWith(`${mount}/`)) {
      rel = rel.slice(mount.length + 1)
      if (rel.startsWith('data/')) rel = rel.slice('data/'.length)
    }
    const segments = rel.split('/')
    if (rel === '' || segments.some((s) => s === '' || s === '.' || s === '..')) {
      throw errors.error('ERR_INPUT', key, 'is not a path inside the mount (empty, "." and ".." segments are refused)')
    }
    return rel
  }
  const encode = (rel: string) => rel.split('/').map(encodeURIComponent).join('/')
  const mountPath = encode(mount)

  async function read(rel: string, version: string | undefined, key: string): Promise<{data: JsonNode; custom: JsonNode | undefined}> {
    let q = ''
    if (version !== undefined) {
      if (!/^[1-9][0-9]{0,9}$/.test(version))
        throw errors.error('ERR_INPUT', key, `version ${JSON.stringify(version.slice(0, 40))} is not a KV version number`)
      q = `?version=${version}`
    }
    const a = await authed('GET', `${mountPath}/data/${encode(rel)}${q}`, key)
    if (a.status === 404) {
      const deleted = field(a.body, 'data', 'metadata')
      throw errors.error(
        'ERR_NOT_FOUND',
        key,
        deleted ? `${version ? `version ${version}` : 'the current version'} is deleted or destroyed` : 'no such secret in Vault',
      )
    }
    if (a.status !== 200) fail(a, key, 'read refused')
    const data = field(a.body, 'data', 'data')
    if (data?.type !== 'object') throw errors.error('ERR_BACKEND', key, 'the answer has no data object')
    return {data, custom: field(a.body, 'data', 'metadata', 'custom_metadata')}
  }

  async function list(folder: string): Promise<string[]> {
    const a = await authed('GET', `${mountPath}/metadata/${folder ? `${encode(folder)}/` : ''}?list=true`, folder || undefined)
    if (a.status === 404) return []
    if (a.status !== 200) fail(a, folder || undefined, 'listing refused')
    const keys = field(a.body, 'data', 'keys')
    return keys?.type === 'array' ? keys.items.flatMap((k) => (k.type === 'string' ? [k.value] : [])) : []
  }

  return {
    name: 'vault',
    cacheKey: (ref) => `${relative(ref.key)}\u0000${ref.version ?? ''}`,
    async fetch(ref: FetchRef): Promise<RemoteValue> {
      const {data} = await read(relative(ref.key), ref.version, ref.key)
      return {kind: 'json', node: data}
    },
    async find(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>> {
      const root = find.path ? relative(find.path) : ''
      const names: string[] = []
      let listed = 0
      const walk = async (folder: string, depth: number): Promise<void> => {
        if (depth > MAX_DEPTH) throw errors.error('ERR_INPUT', folder, `folders nested deeper than ${MAX_DEPTH}`)
        for (const k of await list(folder)) {
          if (++listed > MAX_LISTED) throw errors.error('ERR_INPUT', find.path, `more than ${MAX_LISTED} entries to list; narrow find.path`)
          const full = folder ? `${folder}/${k.replace(/\/$/, '')}` : k.replace(/\/$/, '')
          if (k.endsWith('/')) await walk(full, depth + 1)
          else if (!match || match.test(full)) names.push(full)
        }
      }
      await walk(root, 0)
      // Each candidate costs a read (tags are checked on what it returns): bound the candidates.
      if (names.length > MAX_FIND)
        throw errors.error('ERR_INPUT', find.path, `find matches more than ${MAX_FIND} secrets; narrow it with find.path or name.regexp`)
      const tags = Object.entries(find.tags ?? {})
      const limit = new Limiter(READ_CONCURRENCY)
      const out = new Map<string, RemoteValue>()
      const count = findBudget(errors, find.path)
      await Promise.all(
        names.map((n) =>
          limit.run(async () => {
            const {data, custom} = await read(n, undefined, n)
            const tagged = tags.every(([k, want]) => {
              const v = field(custom, k)
              return v?.type === 'string' && v.value === want
            })
            if (!tagged) return
            out.set(n, count({kind: 'json', node: data}))
          }),
        ),
      )
      return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    },
    async close() {
      http.close()
    },
  }
}
