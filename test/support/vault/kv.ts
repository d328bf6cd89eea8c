/**
 * The KV version 2 secrets engine of the test Vault (vault-plugin-secrets-kv): versioned data under
 * `data/`, metadata and listing under `metadata/`, soft delete / undelete / destroy, check-and-set.
 * Answers are what the plugin returns: a deleted or destroyed version reads as 404 *with* the usual
 * body (`data.data` null, `data.metadata` filled in); a path never written reads as a bare 404.
 */
export type KvData = Record<string, unknown>

interface KvVersion {
  data: KvData
  created: number
  deleted?: number
  destroyed: boolean
}

interface KvKey {
  versions: Map<number, KvVersion>
  current: number
  oldest: number
  created: number
  updated: number
  customMetadata: Record<string, string> | null
  casRequired: boolean
  maxVersions: number
}

/** A key with no versions yet, created at `now`. */
const newKey = (now: number): KvKey => ({
  versions: new Map(),
  current: 0,
  oldest: 0,
  created: now,
  updated: now,
  customMetadata: null,
  casRequired: false,
  maxVersions: 0,
})

/** What a handler answers: a status, and the `data`/`warnings` of Vault's response envelope (or an error list). */
export type EngineResult =
  | {status: 200; data: unknown; warnings?: string[]}
  | {status: 204}
  | {status: 404; data?: unknown; warnings?: string[]}
  | {status: 400 | 405; errors: string[]}

export interface EngineRequest {
  method: string
  /** Path inside the mount, without a leading slash. */
  path: string
  list: boolean
  query: URLSearchParams
  body: Record<string, unknown>
}

const INVALID_PATH =
  "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."

function time(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString()
}

function versionsOf(body: Record<string, unknown>): number[] | undefined {
  const v = body.versions
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => !Number.isInteger(Number(x)))) return undefined
  return v.map(Number)
}

export class KvV2Engine {
  private readonly keys = new Map<string, KvKey>()

  constructor(private readonly now: () => number) {}

  /** Whether a write to `path` creates (false) or updates (true): Vault's existence check. */
  exists(path: string): boolean {
    const m = /^data\/(.+)$/.exec(path)
    return m ? this.keys.has(m[1]!) : true
  }

  // ---- direct access for tests ----

  write(path: string, data: KvData, cas?: number): number {
    const r = this.put(path, data, cas)
    if ('error' in r) throw new Error(`vault-server: ${r.error}`)
    return r.version
  }

  softDelete(path: string, versions?: number[]): void {
    const key = this.mustKey(path)
    for (const n of versions ?? [key.current]) {
      const v = key.versions.get(n)
      if (v && !v.destroyed && v.deleted === undefined) v.deleted = this.now()
    }
  }

  destroy(path: string, versions: number[]): void {
    const key = this.mustKey(path)
    for (const n of versions) {
      const v = key.versions.get(n)
      if (v) v.destroyed = true
    }
  }

  private mustKey(path: string): KvKey {
    const key = this.keys.get(path)
    if (!key) throw new Error(`vault-server: no KV secret at ${path}`)
    return key
  }

  private put(path: string, data: KvData, cas: number | undefined): {version: number; meta: KvVersion; key: KvKey} | {error: string} {
    const now = this.now()
    const key = this.keys.get(path) ?? newKey(now)
    if (cas !== undefined && cas !== key.current) return {error: 'check-and-set parameter did not match the current version'}
    if (cas === undefined && key.casRequired) return {error: 'check-and-set parameter required for this call'}
    this.keys.set(path, key)
    const version = key.current + 1
    const meta: KvVersion = {data: structuredClone(data), created: now, destroyed: false}
    key.versions.set(version, meta)
    key.current = version
    key.updated = now
    if (key.oldest === 0) key.oldest = version
    const max = key.maxVersions || 10
    while (key.versions.size > max) {
      key.versions.delete(key.oldest)
      key.oldest++
    }
    return {version, meta, key}
  }

  // ---- HTTP ----

  handle(req: EngineRequest): EngineResult {
    const m = /^(data|metadata|delete|undelete|destroy)\/(.*)$/.exec(req.path)
    if (!m) return {status: 404, data: null, warnings: [INVALID_PATH]}
    const [, kind, path] = m as unknown as [string, string, string]
    switch (kind) {
      case 'data':
        if (path === '' || path.endsWith('/')) return {status: 404, data: null, warnings: [INVALID_PATH]}
        return this.data(req, path)
      case 'metadata':
        return this.metadata(req, path)
      default:
        return this.versionOp(req, kind!, path)
    }
  }

  private versionMetadata(key: KvKey, n: number, v: KvVersion): Record<string, unknown> {
    return {
      created_time: time(v.created),
      custom_metadata: key.customMetadata,
      deletion_time: time(v.deleted),
      destroyed: v.destroyed,
      version: n,
    }
  }

  private data(req: EngineRequest, path: string): EngineResult {
    if (req.method === 'GET') {
      const key = this.keys.get(path)
      if (!key) return {status: 404}
      const asked = Number(req.query.get('version') ?? 0)
      const n = Number.isInteger(asked) && asked > 0 ? asked : key.current
      const v = key.versions.get(n)
      if (!v) return {status: 404}
      const metadata = this.versionMetadata(key, n, v)
      if (v.destroyed || (v.deleted !== undefined && v.deleted <= this.now())) return {status: 404, data: {data: null, metadata}}
      return {status: 200, data: {data: structuredClone(v.data), metadata}}
    }
    if (req.method === 'POST' || req.method === 'PUT') {
      const data = req.body.data
      if (typeof data !== 'object' || data === null || Array.isArray(data)) return {status: 400, errors: ['no data provided']}
      const options = (req.body.options ?? {}) as Record<string, unknown>
      const cas = options.cas === undefined ? undefined : Number(options.cas)
      const r = this.put(path, data as KvData, cas)
      if ('error' in r) return {status: 400, errors: [r.error]}
      return {status: 200, data: {...this.versionMetadata(r.key, r.version, r.meta)}}
    }
    if (req.method === 'DELETE') {
      if (this.keys.has(path)) this.softDelete(path)
      return {status: 204}
    }
    return {status: 405, errors: ['unsupported operation']}
  }

  private metadata(req: EngineRequest, path: string): EngineResult {
    if (req.method === 'GET' && req.list) {
      const prefix = path === '' || path.endsWith('/') ? path : `${path}/`
      const keys = new Set<string>()
      for (const [k, key] of this.keys) {
        if (!k.startsWith(prefix) || key.versions.size === 0) continue
        const rest = k.slice(prefix.length)
        const slash = rest.indexOf('/')
        keys.add(slash < 0 ? rest : rest.slice(0, slash + 1))
      }
      if (keys.size === 0) return {status: 404}
      return {status: 200, data: {keys: [...keys].sort()}}
    }
    const key = this.keys.get(path)
    if (req.method === 'GET') {
      if (!key) return {status: 404}
      return {
        status: 200,
        data: {
          cas_required: key.casRequired,
          created_time: time(key.created),
          current_version: key.current,
          custom_metadata: key.customMetadata,
          delete_version_after: '0s',
          max_versions: key.maxVersions,
          oldest_version: key.oldest,
          updated_time: time(key.updated),
          versions: Object.fromEntries(
            [...key.versions].map(([n, v]) => [
              String(n),
              {created_time: time(v.created), deletion_time: time(v.deleted), destroyed: v.destroyed},
            ]),
          ),
        },
      }
    }
    if (req.method === 'POST' || req.method === 'PUT') {
      const now = this.now()
      const k = key ?? newKey(now)
      if (req.body.max_versions !== undefined) k.maxVersions = Number(req.body.max_versions)
      if (req.body.cas_required !== undefined) k.casRequired = req.body.cas_required === true
      if (req.body.custom_metadata !== undefined) k.customMetadata = req.body.custom_metadata as Record<string, string>
      k.updated = now
      this.keys.set(path, k)
      return {status: 204}
    }
    if (req.method === 'DELETE') {
      this.keys.delete(path)
      return {status: 204}
    }
    return {status: 405, errors: ['unsupported operation']}
  }

  private versionOp(req: EngineRequest, kind: string, path: string): EngineResult {
    if (req.method !== 'POST' && req.method !== 'PUT') return {status: 405, errors: ['unsupported operation']}
    const versions = versionsOf(req.body)
    if (!versions) return {status: 400, errors: ['no version number provided']}
    const key = this.keys.get(path)
    if (!key) return {status: 204}
    for (const n of versions) {
      const v = key.versions.get(n)
      if (!v) continue
      if (kind === 'delete' && !v.destroyed && v.deleted === undefined) v.deleted = this.now()
      if (kind === 'undelete' && !v.destroyed) delete v.deleted
      if (kind === 'destroy') v.destroyed = true
    }
    return {status: 204}
  }
}
