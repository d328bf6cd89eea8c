/**
 * Per-store rate limiting, for the controller to pace its calls: one token bucket per store
 * (src/core/limit.ts's TokenBucket), and a pause when a store answers "slow down" (ERR_THROTTLED with
 * retryAfterMs): no call to that store before the pause ends, then calls resume at the steady rate
 * without a burst.
 */
import {TokenBucket} from '../core/limit.js'

export interface StoreLimiterOptions {
  /** Calls per second to one store. */
  rate: number
  /** Calls a store may get at once after a quiet spell. */
  burst: number
  now?: () => number
}

interface StoreState {
  bucket: TokenBucket
  pausedUntil: number
}

export class StoreLimiter {
  private readonly stores = new Map<string, StoreState>()
  private readonly now: () => number

  constructor(private readonly o: StoreLimiterOptions) {
    this.now = o.now ?? Date.now
  }

  private state(store: string): StoreState {
    let s = this.stores.get(store)
    if (!s) {
      s = {bucket: new TokenBucket(this.o.rate, this.o.burst, this.now), pausedUntil: 0}
      this.stores.set(store, s)
    }
    return s
  }

  /** 0 when a call to this store may go now (it is counted); else the ms to wait first (nothing is taken). */
  reserve(store: string): number {
    const s = this.state(store)
    const paused = s.pausedUntil - this.now()
    if (paused > 0) return paused
    return Math.ceil(s.bucket.take() * 1000)
  }

  /** The store throttled us: no call before retryAfterMs from now, then the steady rate. */
  throttled(store: string, retryAfterMs: number): void {
    const s = this.state(store)
    const until = this.now() + Math.max(0, retryAfterMs)
    if (until > s.pausedUntil) s.pausedUntil = until
    // After the pause: one call, then the steady rate with no burst (the store has shown its limit).
    s.bucket = new TokenBucket(this.o.rate, 1, () => Math.max(this.now(), s.pausedUntil))
  }

  /** Drops a store that is gone. */
  forget(store: string): void {
    this.stores.delete(store)
  }
}
