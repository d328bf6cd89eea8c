/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
 * optimistic locking on the Lease's resourceVersion; another holder's lease counts as valid for
 * its duration measured on *our* clock from when we last saw the record change (no trust in
 * clock agreement between replicas); the leader renews every retry period and steps down when it
 * has not managed to renew within the renew deadline; on shutdown it releases the Lease (empty
 * holder, 1-second duration) so a standby takes over at once instead of waiting for expiry.
 *
 * client-go stops there ("does not guarantee that only one client is acting as a leader"). This
 * elector also fences: `holds()` says whether this replica may write *now*, read on the monotonic
 * clock at the moment of the write. The write window is the renew deadline, counted from the moment
 * the last successful renewal round *started* (before its requests were sent): another replica
 * waits a full lease duration from when it first sees that renewal, so every write sent inside the
 * window lands while the Lease is still ours, with the rest of the lease duration as slack for the
 * write in flight. A renewal answered late — say after the process was stopped (SIGSTOP) and
 * continued — extends nothing, and a paused process that wakes up finds its window closed before it
 * runs anything else.
 */
import {performance} from 'node:perf_hooks'
import {retry, sleep} from '../../core/retry.js'
import {type ClusterApi, type Lease} from '../../kube/api.js'
import {apiFailure, describeError, isAlreadyExists, isConflict} from '../../kube/errors.js'
import type {Logger} from '../log.js'

export interface LeaderOptions {
  api: ClusterApi
  namespace: string
  name: string
  identity: string
  leaseDurationMs: number
  renewDeadlineMs: number
  retryPeriodMs: number
  log: Logger
  /** Wall-clock time, for the times written on the Lease (informative only). */
  now?: () => Date
  /** A monotonic clock in milliseconds (default: performance.now) for every decision: it never jumps with the wall clock. */
  monotonic?: () => number
}

/** A Lease's MicroTime: RFC 3339 with six fractional digits, as the API server insists (like client-node's V1MicroTime). */
export class MicroTime extends Date {
  override toISOString(): string {
    return super.toISOString().slice(0, -1) + '000Z'
  }
}

export interface LeaderCallbacks {
  onStartedLeading(): void
  onStoppedLeading(): void
  onNewLeader?(identity: string): void
  /** The leader found (and cleared) a renewal request that another replica left on the Lease. */
  onRenewRequested?(requestedAt: Date, by: string): void
}

/** A replica that is not the leader asks for a key renewal by annotating the Lease; the leader acts on it and removes it. */
export const RENEW_REQUEST_ANNOTATION = 'kseal.dev/renew-requested-at'
const RENEW_REQUESTER_ANNOTATION = 'kseal.dev/renew-requested-by'

function withoutRequest(ann: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!ann) return ann
  const out = {...ann}
  delete out[RENEW_REQUEST_ANNOTATION]
  delete out[RENEW_REQUESTER_ANNOTATION]
  return out
}

export class LeaderElector {
  private leading = false
  private stopped = false
  private observed?: {holder: string; renewTime: string; rv: string; durationMs: number}
  /** The Lease as last read or written: the leader's fast path renews it without reading it first. */
  private lease?: Lease
  /** Monotonic time at which the observed record last changed. */
  private observedAt = 0
  /** Monotonic time at which the last successful round started: the write window runs from here. */
  private renewedAt = -Infinity
  private deadlineTimer?: NodeJS.Timeout
  private wake?: () => void
  private running?: Promise<void>
  private lastLeader = ''
  private cb?: LeaderCallbacks
  private readonly halt = new AbortController()

  constructor(private readonly o: LeaderOptions) {
    if (o.renewDeadlineMs >= o.leaseDurationMs) throw new Error('the renew deadline must be shorter than the lease duration')
    if (o.retryPeriodMs >= o.renewDeadlineMs) throw new Error('the retry period must be shorter than the renew deadline')
  }

  get isLeader(): boolean {
    return this.leading
  }

  /** Whether this replica may write now: it leads, and its last successful renewal started less than the renew deadline ago. */
  holds(): boolean {
    return this.leading && this.mono() - this.renewedAt < this.o.renewDeadlineMs
  }

  private mono(): number {
    return this.o.monotonic?.() ?? performance.now()
  }

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  private micro(d: Date): Date {
    return new MicroTime(d.getTime())
  }

  start(cb: LeaderCallbacks): void {
    this.cb = cb
    this.running ??= this.run(cb)
  }

  private async run(cb: LeaderCallbacks): Promise<void> {
    while (!this.stopped) {
      const started = this.mono()
      const ok = await this.tryAcquireOrRenew()
      if (this.stopped) break
      if (ok) {
        this.renewedAt = started
        this.armDeadline()
      }
      if (ok && !this.leading) {
        // A round that took longer than the window proves nothing: the next one decides.
        if (this.mono() - started < this.o.renewDeadlineMs) {
          this.leading = true
          this.o.log.info('became leader', {lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity})
          cb.onStartedLeading()
        }
      } else if (!ok && this.leading) {
        const taken = !!this.observed?.holder && this.observed.holder !== this.o.identity
        if (taken) this.stepDown('lost leadership: another replica holds the Lease')
        else if (!this.holds()) this.stepDown('lost leadership: the Lease could not be renewed within the renew deadline')
      }
      const holder = this.observed?.holder ?? ''
      if (holder !== this.lastLeader) {
        this.lastLeader = holder
        if (holder) cb.onNewLeader?.(holder)
      }
      await this.pause(this.jitter(this.o.retryPeriodMs))
    }
  }

  /**
   * Steps down the moment the write window closes without a renewal. A timer, so that a process that
   * was paused runs it (timers first) before the watch data that piled up meanwhile; the fence in
   * holds() does not depend on it, it only makes the stop prompt.
   */
  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer)
    const ms = Math.max(0, this.renewedAt + this.o.renewDeadlineMs - this.mono()) + 1
    this.deadlineTimer = setTimeout(() => {
      if (this.leading && !this.holds()) this.stepDown('lost leadership: the Lease could not be renewed within the renew deadline')
    }, ms)
    this.deadlineTimer.unref()
  }

  private stepDown(why: string): void {
    if (!this.leading) return
    this.leading = false
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer)
    this.o.log.warn(why, {
      lease: `${this.o.namespace}/${this.o.name}`,
      holder: this.observed?.holder,
      sinceRenewalMs: Math.round(this.mono() - this.renewedAt),
      renewDeadlineMs: this.o.renewDeadlineMs,
    })
    this.cb?.onStoppedLeading()
  }

  private jitter(ms: number): number {
    return this.leading ? ms : ms * (1 + Math.random() * 0.2)
  }

  private pause(ms: number): Promise<void> {
    return Promise.race([sleep(ms), new Promise<void>((r) => (this.wake = r))])
  }

  /**
   * One round: create the Lease, renew ours, or take over an expired or released one. Each call is
   * tried once (the loop retries every retry period, so a failing API server delays nothing), and
   * the whole round is bounded by the renew deadline, as client-go's.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const {api, namespace, name, identity} = this.o
    const now = this.now()
    const ctx = {signal: AbortSignal.any([this.halt.signal, AbortSignal.timeout(this.o.renewDeadlineMs)]), attempts: 1}
    // Fast path, as client-go's: the leader renews the record it last saw without reading it first;
    // when that is no longer current (409) or the call fails, the round reads it and tries again.
    if (this.leading && this.lease?.spec?.holderIdentity === identity) {
      try {
        this.renewed(await api.replaceLease(namespace, name, this.claim(this.lease, now), ctx), this.lease, now)
        return true
      } catch (e) {
        if (ctx.signal.aborted) return false
      }
    }
    let lease: Lease | null
    try {
      lease = await api.getLease(namespace, name, ctx)
    } catch (e) {
      if (!this.stopped) this.o.log.warn('cannot read the leader Lease', {error: describeError(e)})
      return false
    }
    if (!lease) {
      try {
        const durationSeconds = Math.max(1, Math.ceil(this.o.leaseDurationMs / 1000))
        const created = await api.createLease(
          namespace,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: {name, namespace},
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: this.micro(now),
              renewTime: this.micro(now),
              leaseTransitions: 0,
            },
          },
          ctx,
        )
        this.observe(created)
        return true
      } catch (e) {
        if (!isAlreadyExists(e) && !this.stopped) this.o.log.warn('cannot create the leader Lease', {error: describeError(e)})
        return false
      }
    }
    this.observe(lease)
    const holder = lease.spec?.holderIdentity ?? ''
    if (holder && holder !== identity && this.observedAt + this.observed!.durationMs > this.mono()) return false
    try {
      this.renewed(await api.replaceLease(namespace, name, this.claim(lease, now), ctx), lease, now)
      if (holder !== identity) this.o.log.info('acquired the leader Lease', {previousHolder: holder || null, identity})
      return true
    } catch (e) {
      if (!isConflict(e) && !this.stopped)
        this.o.log.warn('cannot update the leader Lease', {error: describeError(e), code: apiFailure(e)?.code})
      return false
    }
  }

  /** The Lease with this replica as its holder, renewed now; a renewal request on it is cleared in the same optimistic update. */
  private claim(lease: Lease, now: Date): Lease {
    const spec = lease.spec ?? {}
    const ours = spec.holderIdentity === this.o.identity
    const requested = lease.metadata?.annotations?.[RENEW_REQUEST_ANNOTATION] !== undefined
    return {
      ...lease,
      metadata: requested ? {...lease.metadata, annotations: withoutRequest(lease.metadata?.annotations)} : lease.metadata,
      spec: {
        ...spec,
        holderIdentity: this.o.identity,
        leaseDurationSeconds: Math.max(1, Math.ceil(this.o.leaseDurationMs / 1000)),
        renewTime: this.micro(now),
        acquireTime: ours ? spec.acquireTime : this.micro(now),
        leaseTransitions: ours ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    }
  }

  /** After a successful claim of `from`: exactly one leader acts on the renewal request it cleared. */
  private renewed(updated: Lease, from: Lease, now: Date): void {
    this.observe(updated)
    const requested = from.metadata?.annotations?.[RENEW_REQUEST_ANNOTATION]
    if (requested === undefined) return
    const at = new Date(requested)
    const by = from.metadata?.annotations?.[RENEW_REQUESTER_ANNOTATION] ?? ''
    this.o.log.info('key renewal requested on the Lease', {requestedAt: requested, requestedBy: by || null})
    this.cb?.onRenewRequested?.(Number.isNaN(at.getTime()) ? now : at, by)
  }

  private observe(l: Lease): void {
    const rec = {
      holder: l.spec?.holderIdentity ?? '',
      renewTime: String(l.spec?.renewTime ?? ''),
      rv: l.metadata?.resourceVersion ?? '',
      durationMs: (l.spec?.leaseDurationSeconds ?? 0) * 1000,
    }
    if (!this.observed || this.observed.holder !== rec.holder || this.observed.renewTime !== rec.renewTime) this.observedAt = this.mono()
    this.observed = rec
    this.lease = l
  }

  /**
   * Asks the leader for a key renewal by annotating the Lease (kept until the leader's next round
   * clears it). Retries on a conflict with the leader's own renewals.
   */
  async requestRenewal(): Promise<void> {
    const {api, namespace, name, identity} = this.o
    await retry(
      async () => {
        const lease = await api.getLease(namespace, name)
        if (!lease) throw new Error(`the leader Lease ${namespace}/${name} does not exist yet`)
        const annotations = {
          ...lease.metadata?.annotations,
          [RENEW_REQUEST_ANNOTATION]: this.micro(this.now()).toISOString(),
          [RENEW_REQUESTER_ANNOTATION]: identity,
        }
        await api.replaceLease(namespace, name, {...lease, metadata: {...lease.metadata, annotations}})
      },
      {attempts: 21, retryable: isConflict, delay: () => 20 + Math.random() * 50},
    )
  }

  /** Stops campaigning; a leader releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true
    this.halt.abort()
    this.wake?.()
    await this.running
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer)
    if (!this.leading) return
    this.leading = false
    try {
      const lease = await this.o.api.getLease(this.o.namespace, this.o.name)
      if (lease?.spec?.holderIdentity !== this.o.identity) return
      const now = this.micro(this.now())
      await this.o.api.replaceLease(this.o.namespace, this.o.name, {
        ...lease,
        spec: {...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now},
      })
      this.o.log.info('released the leader Lease', {lease: `${this.o.namespace}/${this.o.name}`})
    } catch (e) {
      this.o.log.warn('cannot release the leader Lease; another replica takes over when it expires', {error: describeError(e)})
    }
  }
}
