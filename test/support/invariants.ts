/**
 * What must hold after any fault the controller meets, checked against the API test server's state
 * and against what it streamed while the scenario ran:
 * - every SealedSecret has its Secret: owned by it (uid), labelled, annotated with its spec hash and
 *   generation, holding exactly the plaintext it was sealed from; its status says Synced=True for
 *   its current generation;
 * - Secrets that belong to no SealedSecret (decoys) are exactly as they were, resourceVersion included;
 * - no log line of any replica holds a plaintext value, and every line is JSON;
 * - over the whole run, no status went back to an older observedGeneration and no Secret went back
 *   to the data of an older generation (from watch streams a HistoryRecorder kept).
 * Each check returns the violations it found, as lines a failing test prints.
 */
import {sealedSpecHash} from '../../src/sealed/hash.js'
import {type SealedSecretObject} from '../../src/sealed/types.js'
import type {K8sApiServer, KubeObject} from './k8s-api-server.js'

const decode = (d: Record<string, string> | undefined) =>
  Object.fromEntries(Object.entries(d ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as KubeObject)[k])}`)
      .join(',')}}`
  return JSON.stringify(v)
}

export interface StateExpectation {
  server: K8sApiServer
  namespace: string
  /** The plaintext each SealedSecret's current spec was sealed from, by name. */
  expected: Map<string, Record<string, string>>
  /** Secrets owned by no SealedSecret, as they were before the scenario. */
  decoys: KubeObject[]
}

/** Every SealedSecret ↔ Secret pair, every status, every decoy. */
export function stateViolations(x: StateExpectation): string[] {
  const out: string[] = []
  const sealed = x.server.listObjects('kseal.dev/v1', 'SealedSecret', x.namespace) as unknown as SealedSecretObject[]
  const names = new Set(sealed.map((s) => s.metadata.name!))
  for (const name of x.expected.keys()) if (!names.has(name)) out.push(`SealedSecret ${name} is missing`)
  for (const s of sealed) {
    const name = s.metadata.name!
    const want = x.expected.get(name)
    if (!want) {
      out.push(`SealedSecret ${name} was not expected`)
      continue
    }
    const secret = x.server.getObject('v1', 'Secret', x.namespace, name)
    const cond = (s.status?.conditions ?? []).find((c) => c.type === 'Synced')
    if (s.status?.observedGeneration !== s.metadata.generation)
      out.push(`${name}: status.observedGeneration ${s.status?.observedGeneration} != generation ${s.metadata.generation}`)
    if (cond?.status !== 'True') out.push(`${name}: Synced is ${cond?.status}/${cond?.reason}, not True`)
    if (!secret) {
      out.push(`${name}: no Secret`)
      continue
    }
    const owner = (secret.metadata.ownerReferences ?? []).find((r: KubeObject) => r.controller)
    if (owner?.uid !== s.metadata.uid) out.push(`${name}: Secret not owned by the SealedSecret (${owner?.uid} != ${s.metadata.uid})`)
    if (secret.metadata.labels?.['kseal.dev/owned-by'] !== 'sealedsecret') out.push(`${name}: Secret lacks the kseal.dev/owned-by label`)
    if (secret.metadata.annotations?.['kseal.dev/spec-hash'] !== sealedSpecHash(s))
      out.push(`${name}: Secret spec-hash is not the SealedSecret's`)
    if (secret.metadata.annotations?.['kseal.dev/generation'] !== String(s.metadata.generation)) {
      out.push(`${name}: Secret generation ${secret.metadata.annotations?.['kseal.dev/generation']} != ${s.metadata.generation}`)
    }
    if (stable(decode(secret.data)) !== stable(want))
      out.push(`${name}: Secret data is not the sealed plaintext of generation ${s.metadata.generation}`)
  }
  for (const d of x.decoys) {
    const now = x.server.getObject('v1', 'Secret', d.metadata.namespace, d.metadata.name)
    if (stable(now) !== stable(d)) out.push(`decoy Secret ${d.metadata.namespace}/${d.metadata.name} was changed or removed`)
  }
  return out
}

/** Log lines that are not JSON or that hold one of the plaintext values. */
export function logViolations(lines: {replica: string; line: string}[], plaintexts: string[]): string[] {
  const out: string[] = []
  for (const {replica, line} of lines) {
    try {
      JSON.parse(line)
    } catch {
      out.push(`${replica}: a log line that is not JSON: ${line.slice(0, 120)}`)
    }
    for (const p of plaintexts) if (line.includes(p)) out.push(`${replica}: a log line holds a plaintext value`)
  }
  return out
}

export interface HistoryEvent {
  type: string
  object: KubeObject
}

/** A watch on the test server over HTTP, from its current resourceVersion on, keeping every event. */
export interface HistoryRecorder {
  readonly events: HistoryEvent[]
  stop(): void
}

export async function recordHistory(server: K8sApiServer, path: string): Promise<HistoryRecorder> {
  const ctl = new AbortController()
  const events: HistoryEvent[] = []
  const r = await fetch(`${server.url}${path}?watch=true&resourceVersion=${server.resourceVersion}`, {signal: ctl.signal})
  if (r.status !== 200 || !r.body) throw new Error(`cannot watch ${path}: HTTP ${r.status}`)
  void (async () => {
    let buf = ''
    const dec = new TextDecoder()
    try {
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, {stream: true})
        let i
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line.trim()) events.push(JSON.parse(line) as HistoryEvent)
        }
      }
    } catch {
      // aborted by stop()
    }
  })()
  return {events, stop: () => ctl.abort()}
}

/** Statuses that went back to an older observedGeneration (per SealedSecret uid). */
export function statusRegressions(events: HistoryEvent[]): string[] {
  const out: string[] = []
  const best = new Map<string, number>()
  for (const e of events) {
    const o = e.object
    const g = o.status?.observedGeneration
    if (e.type === 'ERROR' || typeof g !== 'number') continue
    const prev = best.get(o.metadata.uid) ?? 0
    if (g < prev)
      out.push(
        `${o.metadata.name}: status.observedGeneration went back from ${prev} to ${g} (resourceVersion ${o.metadata.resourceVersion})`,
      )
    best.set(o.metadata.uid, Math.max(prev, g))
  }
  return out
}

/**
 * Secrets whose data went back to an older generation. `generationOf` reads the generation a
 * Secret's plaintext belongs to (tests put it in the values), so this holds whatever the writer
 * annotated.
 */
export function dataRegressions(events: HistoryEvent[], generationOf: (values: Record<string, string>) => number | undefined): string[] {
  const out: string[] = []
  const best = new Map<string, number>()
  for (const e of events) {
    if (e.type !== 'ADDED' && e.type !== 'MODIFIED') continue
    const o = e.object
    const g = generationOf(decode(o.data))
    if (g === undefined) continue
    const key = `${o.metadata.name}/${(o.metadata.ownerReferences ?? [])[0]?.uid ?? ''}`
    const prev = best.get(key) ?? 0
    if (g < prev)
      out.push(`${o.metadata.name}: Secret data went back from generation ${prev} to ${g} (resourceVersion ${o.metadata.resourceVersion})`)
    best.set(key, Math.max(prev, g))
  }
  return out
}
