/**
 * The one interface every provider implements. A provider is opened for one store and one
 * ExternalSecret namespace (the namespace its references resolve in), lives as long as its caller
 * wants (the controller keeps one per store and namespace: logins and tokens are reused), and makes
 * exactly one remote call per remote key asked for; properties, extraction, decoding and key names
 * are render.ts's, so they behave the same for every store.
 *
 * Failures are KsealErrors naming store, provider and remote key, never a value: ERR_NOT_FOUND (no
 * such key or version), ERR_DENIED (credentials or policy), ERR_THROTTLED (a ThrottledError with
 * retryAfterMs), ERR_BACKEND (anything else), ERR_INPUT / ERR_CONFIG (a key or store the provider
 * cannot use).
 */
import {Limiter} from '../../core/limit.js'
import type {JsonNode} from '../property.js'
import type {NameMatcher} from '../../core/regex.js'
import type {StoreAccess} from '../store.js'
import type {FindRef} from '../types.js'
import type {ProviderErrors} from './errors.js'

/** A remote value as the store holds it. */
export type RemoteValue =
  /** Secrets Manager (string or binary), Parameter Store. */
  | {kind: 'bytes'; bytes: Uint8Array}
  /** Vault KV v2: the version's data object, raw JSON kept. */
  | {kind: 'json'; node: JsonNode}
  /** kubernetes: a Secret's data. */
  | {kind: 'map'; entries: Map<string, Uint8Array>}

export interface FetchRef {
  key: string
  version?: string
}

export type ProviderName = 'aws SecretsManager' | 'aws ParameterStore' | 'vault' | 'kubernetes'

export interface Provider {
  readonly name: ProviderName
  /** Reads one remote key: one call. */
  fetch(ref: FetchRef): Promise<RemoteValue>
  /**
   * Finds remote keys by path, name and tags (`match` is the compiled find.name.regexp): the names
   * found and their current values. Bounded: more than MAX_FIND matches is an error.
   */
  find(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>>
  /**
   * One name for a remote value that a store lets callers spell several ways (Vault: `secret/data/a`
   * is `a`; Secrets Manager: no version is AWSCURRENT): the render cache's key. Default: key and version.
   */
  cacheKey?(ref: FetchRef): string
  /** Releases connections and forgets credentials. */
  close(): Promise<void>
}

/** What a provider module is opened with: its store's spec, where references resolve, and options. */
export interface ProviderInit<Spec, Options> {
  spec: Spec
  /** The ExternalSecret's namespace. */
  namespace: string
  access: StoreAccess
  errors: ProviderErrors
  options?: Options
  /** The clock for token lifetimes (ms since the epoch). */
  now?: () => number
}

/** Most remote keys one find may return. */
export const MAX_FIND = 500
/** Most bytes of values one find may hold (the Secret itself holds at most 1 MiB). */
export const MAX_FIND_BYTES = 8 * 1024 * 1024

export function valueSize(v: RemoteValue): number {
  if (v.kind === 'bytes') return v.bytes.length
  if (v.kind === 'json') return v.node.raw.length
  let n = 0
  for (const [k, b] of v.entries) n += k.length + b.length
  return n
}

/** Counts what a find has gathered; over MAX_FIND_BYTES it refuses (ERR_INPUT, naming `where`). */
export function findBudget(errors: ProviderErrors, where: string | undefined): (v: RemoteValue) => RemoteValue {
  let total = 0
  return (v) => {
    total += valueSize(v)
    if (total > MAX_FIND_BYTES) throw errors.error('ERR_INPUT', where, `find's values are larger than ${MAX_FIND_BYTES} bytes; narrow it`)
    return v
  }
}
/** Most listing pages one find may walk. */
export const MAX_LIST_PAGES = 200
/** Remote reads a find (or a render) runs at once. */
export const READ_CONCURRENCY = 8

/** A find's matches read one call each (READ_CONCURRENCY at a time), counted against its budget, in `names`' order. */
export async function readEach(
  names: string[],
  read: (name: string) => Promise<RemoteValue>,
  count: (v: RemoteValue) => RemoteValue,
): Promise<Map<string, RemoteValue>> {
  const limit = new Limiter(READ_CONCURRENCY)
  const values = await Promise.all(names.map((n) => limit.run(async () => count(await read(n)))))
  return new Map(names.map((n, i) => [n, values[i]]))
}
