/**
 * A work queue in the manner of client-go's: each key is queued at most once, a key being worked on
 * is never handed to a second worker (a change that arrives meanwhile queues it again afterwards),
 * and failed keys come back after an exponential backoff that `forget` resets, spread by jitter so
 * keys that failed together do not all come back in the same instant.
 */

import {backoff} from '../../core/retry.js'

export interface QueueOptions {
  baseDelayMs?: number
  maxDelayMs?: number
  /** Each backoff delay is scaled by a random factor in [1 - jitter, 1 + jitter] (default 0), then capped. */
  jitter?: number
  random?: () => number
}

export class WorkQueue {
  private queue: string[] = []
  private dirty = new Set<string>()
  private processing = new Set<string>()
  private failures = new Map<string, number>()
  private timers = new Map<string, NodeJS.Timeout>()
  private waiters: ((key: string | undefined) => void)[] = []
  private shuttingDown = false

  constructor(private readonly o: QueueOptions = {}) {}

  get length(): number {
    return this.queue.length + this.timers.size
  }

  get busy(): number {
    return this.processing.size
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return
    this.dirty.add(key)
    if (this.processing.has(key)) return
    const w = this.waiters.shift()
    if (w) {
      this.dirty.delete(key)
      this.processing.add(key)
      w(key)
    } else {
      this.queue.push(key)
    }
  }

  /** Queues a key after a delay (an earlier pending delay for the same key wins). */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return
    if (ms <= 0) return this.add(key)
    if (this.timers.has(key)) return
    const t = setTimeout(() => {
      this.timers.delete(key)
      this.add(key)
    }, ms)
    t.unref()
    this.timers.set(key, t)
  }

  /**
   * Queues a key again after its next backoff delay and returns that delay; a key already waiting
   * out a backoff keeps it (undefined): asking again while it waits does not lengthen the next one.
   */
  addRateLimited(key: string): number | undefined {
    if (this.timers.has(key)) return undefined
    const n = (this.failures.get(key) ?? 0) + 1
    this.failures.set(key, n)
    const j = this.o.jitter ?? 0
    const delay = Math.round(
      backoff(n, {
        baseMs: this.o.baseDelayMs ?? 200,
        maxMs: this.o.maxDelayMs ?? 300_000,
        jitter: {min: 1 - j, max: 1 + j},
        random: this.o.random,
      }),
    )
    this.addAfter(key, delay)
    return delay
  }

  /** Resets a key's backoff after it succeeded. */
  forget(key: string): void {
    this.failures.delete(key)
  }

  /** The next key to work on; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift()
    if (key !== undefined) {
      this.dirty.delete(key)
      this.processing.add(key)
      return Promise.resolve(key)
    }
    if (this.shuttingDown) return Promise.resolve(undefined)
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  /** Marks a key as finished; it is queued again if it changed meanwhile. */
  done(key: string): void {
    this.processing.delete(key)
    if (this.dirty.has(key)) {
      this.dirty.delete(key)
      this.add(key)
    }
  }

  shutDown(): void {
    this.shuttingDown = true
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    this.queue = []
    this.dirty.clear()
    for (const w of this.waiters.splice(0)) w(undefined)
  }
}
