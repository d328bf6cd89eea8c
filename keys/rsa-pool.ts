/**
 * RSA-OAEP private decryption spread over the machine's cores. `privateDecrypt` blocks the thread it
 * runs on (WebCrypto's RSA-OAEP measured no faster in parallel here), so when many unwraps are
 * waiting at once the work moves to worker threads; a handful run inline, where a worker's start-up
 * would cost more than it saves. Key material reaches workers by message, never by file or argv.
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

export class RsaDecryptPool {
  private workers: Slot[] = []
  private starting: Promise<void> | null = null
  private queue: Job[] = []
  private flushScheduled = false
  private nextId = 0
  private idleTimer?: NodeJS.Timeout

  constructor(
    private readonly threads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8)),
    private readonly idleMs = IDLE_MS,
  ) {}

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
    if (this.workers.length === 0 && (jobs.length < PARALLEL_AT || this.threads < 2)) {
      for (const j of jobs) j.resolve(inline(j.k, j.ct, j.label))
      return
    }
    clearTimeout(this.idleTimer)
    await this.start()
    for (const j of jobs) this.dispatch(j)
  }

  /**
   * Starts the threads now, for a caller that knows a burst is coming; they stop again after idleMs
   * if none does. Nothing on a single core, where work runs inline.
   */
  prestart(): void {
    if (this.threads < 2 || this.workers.length) return
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
