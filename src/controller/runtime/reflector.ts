/**
 * List-then-watch, kept alive: the controller's own informer. client-node's informer stops on any
 * error other than 410; this loop never stops until asked. It lists, watches from the list's
 * resourceVersion, resumes the watch from the last seen version when the stream drops, re-lists on
 * 410 Gone (or an ERROR event with code 410), and backs off on failures.
 */
import {backoff, sleep} from '../../core/retry.js'
import {type KubeObject, type ListPage, type ListResult, type WatchEvent, type WatchHandle} from '../../kube/api.js'
import {apiFailure, describeError} from '../../kube/errors.js'
import type {Logger} from '../log.js'

export interface ReflectorSource<T> {
  /** The whole list, or one page of it when `page` is given. */
  list(page?: ListPage): Promise<ListResult<T>>
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

/**
 * Objects per list page, as client-go's reflector asks for: a list of 10,000 objects arrives as 20
 * responses, each reduced (transform) and dropped before the next, so the process never holds the
 * whole list as the server sent it, with managedFields and last-applied copies.
 */
const LIST_PAGE = 500
/** Pages one list may take (5,000,000 objects): a server that keeps answering with a continue token cannot hold the reflector forever. */
const MAX_PAGES = 10_000

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
   * Lists in pages and replaces the cache; returns the list's resourceVersion. Each page's objects
   * are reduced as they arrive, so only the reduced copies outlive a page. When a continue token has
   * expired (410 between pages, after a compaction), the list is taken again whole, as client-go's
   * pager does (FullListIfExpired): a consistent list, and no loop of pages that keep expiring.
   */
  private async relist(): Promise<string> {
    const items: T[] = []
    let rv = ''
    let next: string | undefined
    for (let pages = 0; ; pages++) {
      if (pages >= MAX_PAGES) throw new Error(`the list of ${this.o.name} did not end after ${MAX_PAGES} pages`)
      let page: ListResult<T>
      try {
        page = await this.source.list({limit: LIST_PAGE, continue: next})
      } catch (e) {
        if (next === undefined || apiFailure(e)?.code !== 410) throw e
        this.o.log.info('list continue token expired: listing again whole', {watch: this.o.name})
        page = await this.source.list()
        items.length = 0
        next = undefined
      }
      if (this.stopped) return ''
      for (const raw of page.items) items.push(this.reduce(raw))
      rv = page.resourceVersion
      if (!page.continue) break
      if (page.continue === next) throw new Error(`the list of ${this.o.name} repeated its continue token`)
      next = page.continue
    }
    this.replace(items)
    return rv
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

  /** Replaces the cache with a fresh list (already reduced): deletes what is gone, upserts the rest. */
  private replace(items: T[]): void {
    const seen = new Set<string>()
    for (const obj of items) {
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
