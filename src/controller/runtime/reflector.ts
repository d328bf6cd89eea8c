/**
 * List-then-watch, kept alive: the controller's own informer. client-node's informer stops on any
 * error other than 410; this loop never stops until asked. It lists, watches from the list's
 * resourceVersion, resumes the watch from the last seen version when the stream drops, re-lists on
 * 410 Gone (or an ERROR event with code 410), and backs off on failures.
 */
import {backoff, sleep} from '../../core/retry.js'
import {type KubeObject, type ListResult, type WatchEvent, type WatchHandle} from '../../kube/api.js'
import {apiFailure, describeError} from '../../kube/errors.js'
import type {Logger} from '../log.js'

export interface ReflectorSource<T> {
  list(): Promise<ListResult<T>>
  watch(resourceVersion: string, onEvent: (e: WatchEvent<unknown>) => void, done: (err: unknown) => void): Promise<WatchHandle>
}

export interface ReflectorHandlers<T> {
  /** A new object, or a changed one (`old` is the previous version in the cache). */
  upsert(obj: T, old: T | undefined): void
  delete(obj: T): void
  /** Called after every successful (re)list. */
  synced?(): void
}

export interface ReflectorOptions<T> {
  name: string
  log: Logger
  /** Reduces each object before it is cached and handed on (e.g. drops Secret data), as client-go's SetTransform. */
  transform?: (obj: T) => T
  /** First retry delay after a failure (doubles up to maxBackoffMs). */
  baseBackoffMs?: number
  maxBackoffMs?: number
}

const isStreamCut = (e: unknown) => ['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE'].includes(String((e as {code?: unknown})?.code))

export const objectKey = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`

/**
 * Whether a watched object needs reconciling: it is new, its spec changed (generation), it was
 * replaced (uid), its deletion began, or it has no generation to tell. A status write (the
 * controller's own) bumps none of these.
 */
export function specChanged(obj: KubeObject, old: KubeObject | undefined): boolean {
  const m = obj.metadata ?? {}
  const o = old?.metadata
  return (
    !o || o.generation !== m.generation || o.uid !== m.uid || !!o.deletionTimestamp !== !!m.deletionTimestamp || m.generation === undefined
  )
}

export class Reflector<T extends KubeObject> {
  readonly cache = new Map<string, T>()
  private stopped = false
  private current?: WatchHandle
  private wake?: () => void
  private hasSynced = false
  private running?: Promise<void>
  private tried!: () => void
  /** Settles once the first list has been tried: it filled the cache, or it failed (or the reflector stopped). */
  readonly firstList = new Promise<void>((resolve) => (this.tried = resolve))
  relists = 0

  constructor(
    private readonly source: ReflectorSource<T>,
    private readonly handlers: ReflectorHandlers<T>,
    private readonly o: ReflectorOptions<T>,
  ) {}

  get synced(): boolean {
    return this.hasSynced
  }

  start(): void {
    this.running ??= this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.tried()
    this.current?.abort()
    this.wake?.()
    await this.running
  }

  private async run(): Promise<void> {
    let rv = ''
    // Consecutive attempts that got nowhere: errors, or watches that closed at once without an event.
    let failures = 0
    while (!this.stopped) {
      try {
        if (!rv) {
          rv = await this.relist()
          if (this.stopped) return
          failures = 0
          this.relists++
          this.hasSynced = true
          this.tried()
          this.handlers.synced?.()
        }
        const r = await this.watchOnce(rv)
        if (r.gone) {
          // Expected after a compaction: list again at once, no backoff.
          this.o.log.info('watch expired (410 Gone): listing again', {watch: this.o.name})
          rv = ''
          continue
        }
        rv = r.rv
        failures = r.events > 0 || r.ms > 5000 ? 0 : failures + 1
        // A stream that closes at once, again and again, must not spin.
        if (failures > 1) await this.pause(this.backoff(failures - 1))
      } catch (e) {
        this.tried()
        if (this.stopped) return
        if (apiFailure(e)?.code === 410) {
          rv = ''
          continue
        }
        failures++
        const delay = this.backoff(failures)
        this.o.log.warn('list/watch failed; retrying', {watch: this.o.name, error: describeError(e), retryInMs: Math.round(delay)})
        await this.pause(delay)
      }
    }
  }

  /**
   * Lists and replaces the cache; returns the list's resourceVersion. Its own frame, so the list
   * response (every object in full, as the server sent it) is garbage once the cache holds the
   * reduced copies, instead of staying alive in run()'s frame for as long as the watch runs.
   */
  private async relist(): Promise<string> {
    const l = await this.source.list()
    if (this.stopped) return ''
    this.replace(l.items)
    return l.resourceVersion
  }

  private backoff(n: number): number {
    return backoff(n, {baseMs: this.o.baseBackoffMs ?? 200, maxMs: this.o.maxBackoffMs ?? 5_000, jitter: {min: 0.75, max: 1}})
  }

  private pause(ms: number): Promise<void> {
    return Promise.race([sleep(ms), new Promise<void>((r) => (this.wake = r))])
  }

  /** One watch stream: resolves when it ends cleanly, rejects on an error. */
  private watchOnce(fromRv: string): Promise<{rv: string; gone: boolean; events: number; ms: number}> {
    const started = Date.now()
    let rv = fromRv
    let gone = false
    let events = 0
    return new Promise((resolve, reject) => {
      let finished = false
      const done = (err: unknown) => {
        if (finished) return
        finished = true
        this.current = undefined
        if (this.stopped) return resolve({rv, gone, events, ms: Date.now() - started})
        // A stream cut mid-way (a dropped connection) ends the watch like a clean close: resume from rv.
        if (err && !gone && !isStreamCut(err)) return reject(err)
        resolve({rv, gone, events, ms: Date.now() - started})
      }
      const onEvent = (e: WatchEvent<unknown>) => {
        if (finished || this.stopped) return
        if (e.type === 'ERROR') {
          if (e.object?.code === 410) gone = true
          else this.o.log.warn('watch error event', {watch: this.o.name, code: e.object?.code, reason: e.object?.reason})
          // The server ends the stream after an ERROR event; treat it as over now.
          this.current?.abort()
          done(null)
          return
        }
        events++
        const next = (e.object as T)?.metadata?.resourceVersion
        if (next) rv = next
        if (e.type === 'BOOKMARK') return
        const obj = this.reduce(e.object as T)
        const key = objectKey(obj)
        if (e.type === 'DELETED') {
          this.cache.delete(key)
          this.handlers.delete(obj)
        } else {
          const old = this.cache.get(key)
          this.cache.set(key, obj)
          this.handlers.upsert(obj, old)
        }
      }
      this.source.watch(fromRv, onEvent, done).then((h) => {
        if (finished || this.stopped) h.abort()
        else this.current = h
      }, done)
    })
  }

  private reduce(obj: T): T {
    return this.o.transform ? this.o.transform(obj) : obj
  }

  /** Replaces the cache with a fresh list: deletes what is gone, upserts the rest. */
  private replace(items: T[]): void {
    const seen = new Set<string>()
    for (const raw of items) {
      const obj = this.reduce(raw)
      const key = objectKey(obj)
      seen.add(key)
      const old = this.cache.get(key)
      this.cache.set(key, obj)
      this.handlers.upsert(obj, old)
    }
    for (const [key, obj] of [...this.cache]) {
      if (!seen.has(key)) {
        this.cache.delete(key)
        this.handlers.delete(obj)
      }
    }
  }
}
