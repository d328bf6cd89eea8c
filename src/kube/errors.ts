/**
 * What a failed Kubernetes API call means: its HTTP code and Status reason (AlreadyExists tells a
 * create race from a resourceVersion Conflict), whether it is worth retrying, and a one-line,
 * value-free description for logs, conditions and messages.
 */
import {KsealError} from '../core/errors.js'

/** A failed API call reduced to what callers decide on (and what may be logged). */
export interface ApiFailure {
  code: number
  reason: string
  message: string
  retryAfterMs?: number
}

/** The HTTP code and Status reason of an ApiException (its body is the Status JSON as text), or null. */
export function apiFailure(e: unknown): ApiFailure | null {
  // An aborted call (DOMException AbortError/TimeoutError) has a numeric `code` that is no HTTP status.
  if (e instanceof DOMException) return null
  const x = e as {code?: unknown; body?: unknown; headers?: Record<string, string>; statusCode?: unknown}
  const code = typeof x?.code === 'number' ? x.code : typeof x?.statusCode === 'number' ? x.statusCode : undefined
  if (code === undefined) return null
  let status: {reason?: string; message?: string} = {}
  if (typeof x.body === 'string') {
    try {
      status = JSON.parse(x.body)
    } catch {
      // not a Status: keep the code only
    }
  } else if (x.body && typeof x.body === 'object') {
    status = x.body as typeof status
  }
  const ra = Number(x.headers?.['retry-after'])
  return {
    code,
    reason: status.reason ?? '',
    message: (status.message ?? '').slice(0, 300),
    retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined,
  }
}

export const isNotFound = (e: unknown) => apiFailure(e)?.code === 404
export const isAlreadyExists = (e: unknown) => {
  const f = apiFailure(e)
  return f?.code === 409 && f.reason === 'AlreadyExists'
}
/** 409 from a stale resourceVersion (optimistic locking), as opposed to AlreadyExists. */
export const isConflict = (e: unknown) => {
  const f = apiFailure(e)
  return f?.code === 409 && f.reason !== 'AlreadyExists'
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
])

/** Worth retrying: a server error, throttling, or the connection failing. */
export function isTransient(e: unknown): boolean {
  const f = apiFailure(e)
  if (f) return f.code >= 500 || f.code === 429
  const x = e as {code?: unknown; errno?: unknown; name?: string; type?: string}
  return (typeof x?.code === 'string' && NETWORK_CODES.has(x.code)) || x?.name === 'FetchError' || x?.type === 'system'
}

/** The connection failed before an HTTP answer came: refused, reset, or a kept connection the server had closed while it sat idle. */
export function isConnectionFailure(e: unknown): boolean {
  return !apiFailure(e) && isTransient(e)
}

/** A one-line, value-free description of an API or network error for logs and conditions. */
export function describeError(e: unknown): string {
  const f = apiFailure(e)
  if (f) return `HTTP ${f.code}${f.reason ? ` ${f.reason}` : ''}${f.message ? `: ${f.message}` : ''}`
  const x = e as {code?: unknown; message?: string}
  if (e instanceof KsealError) return e.line
  return `${typeof x?.code === 'string' ? x.code + ': ' : ''}${(x?.message ?? String(e)).split('\n')[0].slice(0, 300)}`
}

/** The controller refused a write because it cannot prove it holds the leader Lease, or its term ended. */
export const isNotLeader = (e: unknown) => (e as {code?: unknown})?.code === 'ERR_NOT_LEADER'

/** Work that must stop: this replica may not write any more (isNotLeader), or the call's term ended (its signal aborted). */
export const halted = (e: unknown, ctx: {signal?: AbortSignal}) => isNotLeader(e) || !!ctx.signal?.aborted

/** A write lost a race with another writer: the object changed, appeared or went meanwhile. */
export const lostRace = (e: unknown) => isConflict(e) || isAlreadyExists(e) || isNotFound(e)
