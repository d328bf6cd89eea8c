/**
 * The error family. Every failure a user can meet is a KsealError with a stable string code, an
 * exit code from the one table below, and a one-line message that says what and where — never a
 * secret value. Compare `code`, not `instanceof`: errors cross module and worker boundaries.
 */

/** Exit codes: the only place they are defined. */
export const EXIT = {
  OK: 0,
  /** Runtime failure: I/O, a key backend or service. */
  RUNTIME: 1,
  /** Usage error or malformed input. */
  USAGE: 2,
  /** Decryption or integrity failure: no matching key, wrong key, tampered data, unknown format. */
  DECRYPT: 3,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

const CODES = {
  ERR_USAGE: EXIT.USAGE,
  ERR_INPUT: EXIT.USAGE,
  ERR_CONFIG: EXIT.USAGE,
  ERR_KEY_PERMISSIONS: EXIT.USAGE,
  ERR_IO: EXIT.RUNTIME,
  ERR_BACKEND: EXIT.RUNTIME,
  /** An external store (or the Kubernetes API) has no such secret, key or version. */
  ERR_NOT_FOUND: EXIT.RUNTIME,
  /** An external store (or RBAC) refused the credentials or the access. */
  ERR_DENIED: EXIT.RUNTIME,
  /** An external store is throttling: ThrottledError.retryAfterMs says when to try again. */
  ERR_THROTTLED: EXIT.RUNTIME,
  /** The controller refused a write: this replica cannot prove it holds the leader Lease (never reaches a user's exit code). */
  ERR_NOT_LEADER: EXIT.RUNTIME,
  ERR_NO_KEY: EXIT.DECRYPT,
  ERR_DECRYPT: EXIT.DECRYPT,
  ERR_INTEGRITY: EXIT.DECRYPT,
  ERR_VERSION: EXIT.DECRYPT,
} as const

export type ErrorCode = keyof typeof CODES

/** Where in the input a problem is: every part optional, rendered as `file: document 2 (Secret ns/name) data.key:`. */
export interface Where {
  file?: string
  document?: number
  secret?: string
  key?: string
}

/**
 * Removes credentials from every URL in a text: `http://user:password@host/x` becomes
 * `http://host/x`. The one place this is done; every error message goes through it (KsealError),
 * and so do the controller's log lines and Events.
 */
export function scrubUrls(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi, '$1')
}

export class KsealError extends Error {
  readonly code: ErrorCode
  readonly exitCode: ExitCode
  where: Where

  constructor(code: ErrorCode, message: string, where: Where = {}) {
    super(scrubUrls(message))
    this.name = 'KsealError'
    this.code = code
    this.exitCode = CODES[code]
    this.where = {...where}
  }

  /** Adds location details that an inner layer did not know (the inner ones win). */
  at(where: Where): this {
    for (const k of Object.keys(where) as (keyof Where)[]) {
      if (this.where[k] === undefined && where[k] !== undefined) (this.where as Record<string, unknown>)[k] = where[k]
    }
    return this
  }

  /** The one line shown to users. */
  get line(): string {
    return formatWhere(this.where) + this.message
  }
}

/** A store that answered "slow down": the caller (a per-store rate limiter) waits retryAfterMs before the next call. */
export class ThrottledError extends KsealError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
    where: Where = {},
  ) {
    super('ERR_THROTTLED', message, where)
  }
}

export function formatWhere(w: Where): string {
  const parts: string[] = []
  if (w.file !== undefined) parts.push(w.file)
  const doc: string[] = []
  if (w.document !== undefined) doc.push(`document ${w.document}`)
  if (w.secret !== undefined) doc.push(w.document === undefined ? `Secret ${w.secret}` : `(Secret ${w.secret})`)
  if (doc.length) parts.push(doc.join(' '))
  if (w.key !== undefined) parts.push(w.key)
  return parts.length ? parts.join(': ') + ': ' : ''
}

export function isKsealError(e: unknown): e is KsealError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as KsealError).code === 'string' &&
    (e as KsealError).code in CODES &&
    typeof (e as KsealError).exitCode === 'number'
  )
}

/** The most severe of several exit codes: decryption (3) over usage (2) over runtime (1). */
export function worstExit(codes: Iterable<number>): ExitCode {
  const rank = (c: number) => (c === EXIT.DECRYPT ? 3 : c === EXIT.USAGE ? 2 : c === EXIT.RUNTIME ? 1 : 0)
  let worst = 0
  for (const c of codes) if (rank(c) > rank(worst)) worst = c
  return worst as ExitCode
}

/** Turns a Node system error into a one-line I/O error without its stack or errno noise. */
export function ioError(err: unknown, file: string, verb = 'read'): KsealError {
  const e = err as NodeJS.ErrnoException
  const why: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
    ENOSPC: 'no space left on device',
    EROFS: 'read-only file system',
  }
  const reason = (e?.code && why[e.code]) ?? e?.message ?? String(err)
  return new KsealError('ERR_IO', `cannot ${verb}: ${reason}`, {file})
}

/**
 * An I/O error about a key or config file: the path goes into the message, so the error's location
 * stays the manifest being processed.
 */
export function keyFileError(err: unknown, file: string): KsealError {
  const e = ioError(err, file)
  return new KsealError('ERR_IO', `${file}: ${e.message}`)
}
