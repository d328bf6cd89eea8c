/**
 * A Secret the controller wrote changed or disappeared: its owner is reconciled again (through the
 * queue's backoff, so a writer fighting over it is met less and less often), unless the change is
 * the echo of the controller's own last write. While the owner is being reconciled the echo cannot be
 * told yet — the watch may bring the controller's own write before the write's answer says which
 * resourceVersion it got — so the decision waits for the reconcile to end.
 */
import type {Secret} from '../../kube/api.js'
import type {WorkQueue} from './queue.js'

export interface SecretChangesOptions {
  /** Whether this Secret (the watch's event, or, after a reconcile, its watched copy) is the controller's own last write for `key`. */
  isOwnWrite(key: string, s: Secret): boolean
  /** The watched copy of `key`'s Secret now, if any. */
  watched(key: string): Secret | undefined
  /** A requeue, for the log. */
  requeued(key: string, retryInMs: number): void
}

export class SecretChanges {
  private readonly reconciling = new Set<string>()
  private readonly recheck = new Set<string>()

  constructor(private readonly o: SecretChangesOptions) {}

  /** The watch saw `s`, a Secret of the owner `key`. */
  changed(queue: WorkQueue, key: string, s: Secret): void {
    if (this.reconciling.has(key)) {
      this.recheck.add(key)
      return
    }
    if (!this.o.isOwnWrite(key, s)) this.requeue(queue, key)
  }

  /** A reconcile of `key` begins. */
  begin(key: string): void {
    this.reconciling.add(key)
  }

  /** It ended: a change seen meanwhile is another writer's, unless the watched copy is now the controller's own write. */
  end(queue: WorkQueue, key: string): void {
    this.reconciling.delete(key)
    if (!this.recheck.delete(key)) return
    const s = this.o.watched(key)
    if (s && this.o.isOwnWrite(key, s)) return
    this.requeue(queue, key)
  }

  private requeue(queue: WorkQueue, key: string): void {
    const ms = queue.addRateLimited(key)
    if (ms !== undefined) this.o.requeued(key, ms)
  }
}
