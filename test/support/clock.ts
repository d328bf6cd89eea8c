/**
 * Test time for the protocol servers (AWS, Vault, Kubernetes tokens): real time plus an offset that a
 * test moves forward, so a credential or token expires without waiting and everything else (latency,
 * timers, the SDKs' own clocks) keeps running on real time.
 */
export interface Clock {
  /** Milliseconds since the epoch, like Date.now(). */
  now(): number
}

export const systemClock: Clock = {now: () => Date.now()}

export class TestClock implements Clock {
  /** How far this clock runs ahead of real time, in ms. */
  offsetMs = 0

  now(): number {
    return Date.now() + this.offsetMs
  }

  /** Move time forward (never back: servers compare against times they handed out). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`TestClock.advance: ${ms} is not a non-negative number of ms`)
    this.offsetMs += ms
  }
}
