/**
 * RSA-OAEP private decryption spread over the machine's cores. `privateDecrypt` blocks the thread it
 * runs on, so when many unwraps are waiting at once the work moves off the main thread; a handful
 * run inline, where handing them over would cost more than it saves. Two ways to move it:
 *  - worker threads (the CLI): one per core, up to 8. Key material reaches them by message, never by
 *    file or argv. Each is a V8 isolate of its own, about 15 MB while it runs;
 *  - libuv's thread pool through WebCrypto (the controller, a long-running process that counts its
 *    memory): no isolate at all. Two things make it as fast as the workers, both measured here:
 *    each lane has a CryptoKey of its own (two decryptions on one CryptoKey do not run in parallel),
 *    and there are two lanes per core (one lane per core idles while the main thread hands it the
 *    next job). At most that many run at once, so other thread-pool work (file reads, DNS lookups)
 *    waits behind one RSA operation at most, never behind a burst. The lanes are bounded by the
 *    thread pool's size (UV_THREADPOOL_SIZE, 4 by default).
 */
import crypto from 'node:crypto'
import os from 'node:os'
import type {Worker} from 'node:worker_threads'

const WORKER_SOURCE = `
const {parentPort} = require('node:worker_threads')
const crypto = require('node:crypto')
const keys = new Map()
parentPort.on('message', (m) => {
  try {
    let key = keys.get(m.kid)
    if (!key) { key = crypto.createPrivateKey({key: Buffer.from(m.der), format: 'der', type: 'pkcs8'}); keys.set(m.kid, key) }
    const out = crypto.privateDecrypt({key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from(m.label)}, Buffer.from(m.ct))
    parentPort.postMessage({id: m.id, ok: true, out: new Uint8Array(out)})
  } catch (e) {
    parentPort.postMessage({id: m.id, ok: false})
  }
})`

export interface RsaPrivate {
  kid: string
  key: crypto.KeyObject
}

interface Job {
  k: RsaPrivate
  ct: Buffer
  label: Buffer
  resolve: (b: Buffer | null) => void
}

/** Unwraps waiting at once at which work moves to worker threads. */
const PARALLEL_AT = 8

/**
 * A worker's V8 heap: it holds a key and one message at a time, so a small one. Without limits each
 * worker's young generation grew to V8's default under a burst (measured here: two workers added
 * about 28 MB to the process for 2,000 unwraps).
 */
const WORKER_LIMITS = {maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, stackSizeMb: 1}

/** Idle time after which the threads stop (a long-running process, the controller, gives their memory back). */
const IDLE_MS = 10_000

interface Slot {
  w: Worker
  kids: Set<string>
  /** Jobs sent to this worker and not yet answered, by id (their count is how busy it is). */
  jobs: Map<number, Job>
}

/** Where a burst's unwraps run (see the module comment). */
export type RsaTransport = 'workers' | 'threadpool'

/** libuv's thread pool size: UV_THREADPOOL_SIZE as libuv reads it (1 to 1024), 4 without it. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10)
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1024) : 4
}

export class RsaDecryptPool {
  private workers: Slot[] = []
  /** threadpool: the lanes' CryptoKeys, by key id (one per lane), and the jobs running and waiting. */
  private laneKeys = new Map<string, Promise<CryptoKey[] | null>>()
  private readonly lanes: number
  private freeLanes: number[]
  private waiting: Job[] = []
  private running = new Set<Promise<void>>()
  /** Until when (performance.now()) a small batch still goes to the lanes: a burst's tail does not run inline. */
  private lanesUntil = 0
  /** The most unwraps that ran on the thread pool at once (tests). */
  peakLanes = 0
  private starting: Promise<void> | null = null
  private queue: Job[] = []
  private flushScheduled = false
  private nextId = 0
  private idleTimer?: NodeJS.Timeout

  constructor(
    private readonly threads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8)),
    private readonly idleMs = IDLE_MS,
    readonly transport: RsaTransport = 'workers',
  ) {
    this.lanes = transport === 'threadpool' && threads >= 2 ? Math.min(2 * threads, threadPoolSize()) : 0
    this.freeLanes = Array.from({length: this.lanes}, (_, i) => i)
  }

  /**
   * Decrypts, or resolves null when the ciphertext does not open with this key. Requests are
   * gathered until the current burst of work has been issued, so the pool sees how many are waiting.
   */
  decrypt(k: RsaPrivate, ct: Buffer, label: Buffer): Promise<Buffer | null> {
    return new Promise((resolve) => {
      this.queue.push({k, ct, label, resolve})
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => void this.flush())
      }
    })
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false
    const jobs = this.queue
    this.queue = []
    if (this.transport === 'threadpool') {
      // As with the workers, a burst goes on using the lanes until idleMs after its last unwrap.
      const inBurst = this.running.size > 0 || performance.now() < this.lanesUntil
      if (this.lanes < 2 || (!inBurst && jobs.length < PARALLEL_AT)) {
        for (const j of jobs) j.resolve(inline(j.k, j.ct, j.label))
        return
      }
      this.waiting.push(...jobs)
      this.pump()
      return
    }
    if (this.workers.length === 0 && (jobs.length < PARALLEL_AT || this.threads < 2)) {
      for (const j of jobs) j.resolve(inline(j.k, j.ct, j.label))
      return
    }
    clearTimeout(this.idleTimer)
    await this.start()
    for (const j of jobs) this.dispatch(j)
  }

  /** threadpool: starts waiting jobs on free lanes, each on the lane's own CryptoKey. */
  private pump(): void {
    while (this.waiting.length > 0 && this.freeLanes.length > 0) {
      const job = this.waiting.shift()!
      const lane = this.freeLanes.pop()!
      const run = this.onLane(job, lane).finally(() => {
        this.lanesUntil = performance.now() + this.idleMs
        this.running.delete(run)
        this.freeLanes.push(lane)
        this.pump()
      })
      this.running.add(run)
      this.peakLanes = Math.max(this.peakLanes, this.running.size)
    }
  }

  private async onLane(job: Job, lane: number): Promise<void> {
    const keys = await this.cryptoKeys(job.k)
    if (!keys) return job.resolve(inline(job.k, job.ct, job.label))
    try {
      job.resolve(Buffer.from(await crypto.subtle.decrypt({name: 'RSA-OAEP', label: job.label}, keys[lane]!, job.ct)))
    } catch {
      job.resolve(null)
    }
  }

  /** One CryptoKey per lane for a key (null when WebCrypto does not take it: its unwraps run inline). */
  private cryptoKeys(k: RsaPrivate): Promise<CryptoKey[] | null> {
    let keys = this.laneKeys.get(k.kid)
    if (!keys) {
      const der = k.key.export({format: 'der', type: 'pkcs8'})
      const alg = {name: 'RSA-OAEP', hash: 'SHA-256'}
      keys = Promise.all(Array.from({length: this.lanes}, () => crypto.subtle.importKey('pkcs8', der, alg, false, ['decrypt']))).catch(
        () => null,
      )
      this.laneKeys.set(k.kid, keys)
    }
    return keys
  }

  /**
   * Starts the threads now, for a caller that knows a burst is coming; they stop again after idleMs
   * if none does. Nothing on a single core, where work runs inline, nor on the thread pool.
   */
  prestart(): void {
    if (this.threads < 2 || this.workers.length || this.transport === 'threadpool') return
    void this.start().then(() => this.settle())
  }

  private start(): Promise<void> {
    this.starting ??= (async () => {
      const {Worker} = await import('node:worker_threads')
      for (let i = 0; i < this.threads; i++) {
        const w = new Worker(WORKER_SOURCE, {eval: true, resourceLimits: WORKER_LIMITS})
        w.unref()
        const slot: Slot = {w, kids: new Set<string>(), jobs: new Map()}
        w.on('message', (m: {id: number; ok: boolean; out?: Uint8Array}) => {
          const job = slot.jobs.get(m.id)
          if (!job) return
          slot.jobs.delete(m.id)
          job.resolve(m.ok && m.out ? Buffer.from(m.out) : null)
          this.settle()
        })
        // A worker that dies (out of its memory limit, say) loses no job: what it held runs here.
        w.on('error', () => undefined)
        w.on('exit', () => this.lost(slot))
        this.workers.push(slot)
      }
    })()
    return this.starting
  }

  private lost(slot: Slot): void {
    const i = this.workers.indexOf(slot)
    if (i >= 0) this.workers.splice(i, 1)
    if (this.workers.length === 0) this.starting = null
    const jobs = [...slot.jobs.values()]
    slot.jobs.clear()
    for (const j of jobs) j.resolve(inline(j.k, j.ct, j.label))
  }

  private dispatch(job: Job): void {
    if (this.workers.length === 0) return job.resolve(inline(job.k, job.ct, job.label))
    const slot = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a))
    // Each worker gets a key's material once; later jobs name it by key id.
    let der: Buffer | undefined
    if (!slot.kids.has(job.k.kid)) {
      der = job.k.key.export({format: 'der', type: 'pkcs8'})
      slot.kids.add(job.k.kid)
    }
    const id = this.nextId++
    slot.jobs.set(id, job)
    // Small Buffers are views into Node's shared 8 KiB pool, and posting a view copies its whole
    // backing store: send exact-size copies.
    slot.w.postMessage({id, kid: job.k.kid, der, ct: new Uint8Array(job.ct), label: new Uint8Array(job.label)})
  }

  /** When the last job is answered, the threads stop after idleMs without new work. */
  private settle(): void {
    if (this.working()) return
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => void this.stopThreads(), this.idleMs)
    this.idleTimer.unref()
  }

  /** Whether a job is waiting or not yet answered. */
  private working(): boolean {
    return this.queue.length > 0 || this.workers.some((s) => s.jobs.size > 0)
  }

  private async stopThreads(): Promise<void> {
    if (!this.working()) await this.terminate()
  }

  /** Stops every thread (not as a lost one: no exit handler runs); returns their slots. */
  private async terminate(): Promise<Slot[]> {
    const ws = this.workers
    this.workers = []
    this.starting = null
    for (const s of ws) s.w.removeAllListeners('exit')
    await Promise.all(ws.map((s) => s.w.terminate()))
    return ws
  }

  /** Worker threads running now (0 while all work has run inline, and again once they stopped when idle). */
  get threadsStarted(): number {
    return this.workers.length
  }

  async close(): Promise<void> {
    // The thread pool's jobs: those waiting run here, those running finish.
    for (const j of this.waiting.splice(0)) j.resolve(inline(j.k, j.ct, j.label))
    await Promise.all(this.running)
    this.laneKeys.clear()
    clearTimeout(this.idleTimer)
    // Threads still starting (prestart) are stopped with the rest.
    await this.starting?.catch(() => undefined)
    clearTimeout(this.idleTimer)
    const ws = await this.terminate()
    // Anything still waiting on a stopped worker is answered here.
    for (const s of ws) this.lost(s)
  }
}

function inline(k: RsaPrivate, ct: Buffer, label: Buffer): Buffer | null {
  try {
    return crypto.privateDecrypt({key: k.key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label}, ct)
  } catch {
    return null
  }
}
