/**
 * Waiting and trying again: the one sleep (abortable), the one backoff rule, and the one retry loop.
 * Clocks and randomness are injected where tests need to see the delays.
 */

/** Resolves after `ms`; rejects with the signal's reason as soon as it aborts. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, {once: true})
  })

export interface BackoffOptions {
  /** The delay after the first failure. */
  baseMs: number
  /** No delay is longer. */
  maxMs: number
  /** Each delay is scaled by a random factor from min to max (default 1 to 1: no jitter), so failures that came together do not all retry together. */
  jitter?: {min: number; max: number}
  /** Injected for tests; Math.random otherwise. */
  random?: () => number
}

/**
 * Exponential backoff: the delay after `n` failures in a row (n ≥ 1) is baseMs × 2^(n−1), capped at
 * maxMs, then scaled by the jitter factor (and capped again).
 */
export function backoff(n: number, o: BackoffOptions): number {
  const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(Math.max(0, n - 1), 30))
  const j = o.jitter ?? {min: 1, max: 1}
  const factor = j.min === j.max ? j.min : j.min + (j.max - j.min) * (o.random ?? Math.random)()
  return Math.min(o.maxMs, exp * factor)
}

export interface RetryOptions {
  /** Tries in all, the first included. */
  attempts: number
  /** Whether a failure is worth another try. */
  retryable: (e: unknown) => boolean
  /** The wait before try n + 1 after failure n (n ≥ 1). */
  delay: (e: unknown, n: number) => number
  onRetry?: (e: unknown, n: number) => void
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** Runs `fn` until it succeeds, fails with something not retryable, or has been tried `attempts` times; `signal` ends the tries and the waits between them. */
export async function retry<T>(fn: () => Promise<T>, o: RetryOptions, signal?: AbortSignal): Promise<T> {
  for (let i = 1; ; i++) {
    signal?.throwIfAborted()
    try {
      return await fn()
    } catch (e) {
      if (signal?.aborted) throw signal.reason
      if (i >= o.attempts || !o.retryable(e)) throw e
      o.onRetry?.(e, i)
      await (o.sleep ?? sleep)(o.delay(e, i), signal)
    }
  }
}
