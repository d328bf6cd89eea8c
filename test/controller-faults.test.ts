/**
 * The fault campaign of issue 14, kept in CI: two (then three) real `kseal controller` processes
 * with real leader election, each behind its own fault-injecting proxy (support/fault-proxy.ts) in
 * front of the Kubernetes API test server. Every scenario ends with the invariant checks
 * (support/invariants.ts): each SealedSecret's Secret holds exactly its sealed plaintext with the
 * right owner, marks and status, decoy Secrets are untouched, no status and no Secret ever went back
 * to an older generation, no plaintext reached a log.
 *
 * Each scenario states its bounds below and waits on state (the API server's objects, the proxies'
 * logs, the replicas' logs and metrics) with a bounded poll, never on a fixed sleep. The lease is
 * short for speed (4s; renew deadline 3s, retry 500ms) but long enough that a loaded 2-core machine
 * does not lose it by accident.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import crypto from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {RsaRecipient} from '../keys/rsa.js'
import {sealSecret} from '../src/sealed/seal.js'
import {namespaceClient, type Replica, startReplica, stopReplica} from './support/controller.js'
import {until} from './support/until.js'
import {type FaultProxy, isWrite, startFaultProxy} from './support/fault-proxy.js'
import {
  dataRegressions,
  type HistoryRecorder,
  logViolations,
  recordHistory,
  stateViolations,
  statusRegressions,
} from './support/invariants.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'

const KEY_NS = 'kseal-system'
const NS = 'faults'
/** SealedSecrets in play. */
const N = 40
const LEASE = ['--lease-duration', '4s', '--renew-deadline', '3s', '--retry-period', '500ms']
const LEASE_MS = 4000
/**
 * Every SealedSecret is synced within this once the faults stop (and, under the 30% storm, version 1
 * is written within it: each call is retried, a 409 is met again after a backoff).
 */
const CONVERGE_MS = 60_000
/** A standby leads within the lease duration plus this (its retry period, a loaded machine). */
const TAKEOVER_SLACK_MS = 12_000
const SCENARIO_MS = 180_000

let srv: K8sApiServer
let dir: string
let cert: RsaRecipient
const proxies: FaultProxy[] = []
const replicas: Replica[] = []
/** The proxy each replica talks through. */
const proxyOf = new Map<Replica, FaultProxy>()
const {applySealed} = namespaceClient(() => srv, NS)
let sealedHistory: HistoryRecorder
let secretHistory: HistoryRecorder

const names = Array.from({length: N}, (_, i) => `app-${String(i).padStart(2, '0')}`)
/** The plaintext of each SealedSecret's current spec; the version is part of every value. */
const expected = new Map<string, Record<string, string>>()
const plaintexts: string[] = []
const versionOf = (values: Record<string, string>) => {
  const m = /-v(\d+)$/.exec(values.password ?? '')
  return m ? Number(m[1]) : undefined
}
let decoys: KubeObject[] = []

async function replica(name: string, proxy: FaultProxy): Promise<Replica> {
  const kubeconfig = path.join(dir, `${name}.kubeconfig`)
  await proxy.writeKubeconfig(kubeconfig)
  const r = await startReplica({name, kubeconfig, keyNamespace: KEY_NS, lease: LEASE})
  replicas.push(r)
  proxyOf.set(r, proxy)
  return r
}

const alive = (r: Replica) => r.child.exitCode === null && r.child.signalCode === null

/**
 * Two live, ready replicas, one behind each proxy: those earlier tests left, and new ones where a
 * proxy has none (a test run by itself, a replica killed) — so each test stands alone.
 */
async function twoLive(): Promise<Replica[]> {
  for (const p of proxies) {
    if (replicas.some((r) => alive(r) && proxyOf.get(r) === p)) continue
    const name = `replica-${String.fromCharCode(97 + replicas.length)}`
    const r = await replica(name, p)
    await until(async () => (await r.get('/readyz')).status === 200, `${name} ready`)
  }
  const live = replicas.filter(alive)
  if (!cert) {
    const leader = await leaderAmong(live, 'a leader', LEASE_MS + TAKEOVER_SLACK_MS)
    cert = new RsaRecipient(new crypto.X509Certificate((await leader.get('/v1/cert.pem')).text).publicKey, 'rsa:controller')
  }
  return live
}
const isLeader = async (r: Replica) => alive(r) && (await r.metric('kseal_leader').catch(() => 0)) === 1

async function leaderAmong(reps: Replica[], what: string, timeoutMs: number): Promise<Replica> {
  return until(
    async () => {
      const flags = await Promise.all(reps.map(isLeader))
      const leaders = reps.filter((_, i) => flags[i])
      return leaders.length === 1 ? leaders[0] : undefined
    },
    what,
    timeoutMs,
  )
}

/** Seals version `v` of each named SealedSecret with the controller's certificate and applies it straight to the API server. */
async function applyVersion(list: string[], v: number): Promise<void> {
  for (const name of list) {
    const values = {user: `user-${name}`, password: `pw-${crypto.randomBytes(6).toString('hex')}-${name}-v${v}`}
    plaintexts.push(values.password)
    const sealed = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name, namespace: NS, labels: {app: name}}, stringData: values},
      [cert],
      'strict',
    )
    await applySealed(sealed)
    expected.set(name, values)
  }
}

const secretVersion = (name: string) => {
  const s = srv.getObject('v1', 'Secret', NS, name)
  return s ? versionOf({password: Buffer.from(s.data?.password ?? '', 'base64').toString()}) : undefined
}
const written = (v: number) => names.filter((n) => secretVersion(n) === v).length

/** Polls of the whole state share the test process with the API server and the proxies: not too often. */
const POLL_MS = 200

async function converged(what: string): Promise<void> {
  let last: string[] = []
  try {
    await until(() => (last = stateViolations({server: srv, namespace: NS, expected, decoys})).length === 0, what, CONVERGE_MS, POLL_MS)
  } catch (e) {
    throw new Error(`${(e as Error).message}; still: ${last.slice(0, 5).join('; ')}`)
  }
}

function checkHistory(): void {
  expect(statusRegressions(sealedHistory.events)).toEqual([])
  expect(dataRegressions(secretHistory.events, versionOf)).toEqual([])
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-faults-'))
  srv = await startK8sApiServer({namespaces: ['default', KEY_NS, NS], historySize: 100_000})
  // Decoys the controller must never touch: a plain Secret, and one wearing the controller's label without an owner.
  srv.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'decoy-plain', namespace: NS},
    data: {k: Buffer.from('decoy-1').toString('base64')},
  })
  srv.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'decoy-labelled', namespace: NS, labels: {'kseal.dev/owned-by': 'sealedsecret'}},
    data: {k: Buffer.from('decoy-2').toString('base64')},
  })
  decoys = ['decoy-plain', 'decoy-labelled'].map((n) => srv.getObject('v1', 'Secret', NS, n)!)
  sealedHistory = await recordHistory(srv, `/apis/kseal.dev/v1/namespaces/${NS}/sealedsecrets`)
  secretHistory = await recordHistory(srv, `/api/v1/namespaces/${NS}/secrets`)
  proxies.push(await startFaultProxy(srv), await startFaultProxy(srv))
})

afterEach(() => {
  const lines = replicas.flatMap((r) => r.lines.map((line) => ({replica: r.name, line})))
  expect(logViolations(lines, plaintexts)).toEqual([])
})

afterAll(async () => {
  if (process.env.KSEAL_E2E_LOGS) for (const r of replicas) writeFileSync(`${process.env.KSEAL_E2E_LOGS}/${r.name}.log`, r.lines.join('\n'))
  sealedHistory?.stop()
  secretHistory?.stop()
  await Promise.all(replicas.map((r) => stopReplica(r, 'SIGKILL')))
  await Promise.all(proxies.map((p) => p.close()))
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

describe('two controller replicas under faults', () => {
  it(
    'converge through 5xx/429 bursts (then a full outage), watch cuts, latency and 409s on both replicas',
    async () => {
      const a = await replica('replica-a', proxies[0])
      await leaderAmong([a], 'replica-a to lead', LEASE_MS + TAKEOVER_SLACK_MS)
      await until(async () => (await a.get('/readyz')).status === 200, 'replica-a ready')
      const pem = (await a.get('/v1/cert.pem')).text
      cert = new RsaRecipient(new crypto.X509Certificate(pem).publicKey, 'rsa:controller')
      const b = await replica('replica-b', proxies[1])
      await until(async () => (await b.get('/readyz')).status === 200, 'replica-b ready')

      // Faults on every call of both replicas: 30% errors, 30% of the Secret updates and status patches 409, 20-100 ms latency, watches cut every 1.5 s.
      const storm = {
        errors: {rate: 0.3, statuses: [500, 503, 429], retryAfter: 1},
        conflictRate: 0.3,
        latencyMs: 20,
        jitterMs: 80,
        cutWatchesEveryMs: 1500,
      }
      const injected = (p: FaultProxy, ...statuses: number[]) => p.log.filter((r) => r.injected && statuses.includes(r.status)).length
      const secret409s = () =>
        proxies.reduce((n, p) => n + p.log.filter((r) => r.injected && r.status === 409 && r.resource === 'secrets').length, 0)
      try {
        for (const p of proxies) p.set(storm)
        await applyVersion(names, 1)
        await until(() => written(1) === N, 'version 1 written through the storm', CONVERGE_MS, POLL_MS)
        await applyVersion(names.slice(0, N / 2), 2)
        // Version 2 makes headway through the storm too, until each kind of fault has hit the replicas again and again.
        await until(
          () => written(2) >= N / 4 && proxies.every((p) => injected(p, 500, 503, 429) >= 10) && secret409s() >= 1,
          'version 2 under way through the storm',
          CONVERGE_MS,
          POLL_MS,
        ).catch((e: Error) => {
          throw new Error(
            `${e.message}: version 2 ${written(2)}/${N / 2}, errors ${proxies.map((p) => injected(p, 500, 503, 429))}, Secret 409s ${secret409s()}`,
          )
        })
        // Then a full outage: every call of both replicas fails, until neither can prove it holds the Lease.
        for (const p of proxies) p.set({...storm, errors: {rate: 1, statuses: [500, 503, 429], retryAfter: 1}})
        await until(
          async () => !(await isLeader(a)) && !(await isLeader(b)),
          'both replicas to step down in the outage',
          LEASE_MS + TAKEOVER_SLACK_MS,
          POLL_MS,
        )
      } finally {
        for (const p of proxies) p.set({})
      }

      await leaderAmong([a, b], 'a leader after the outage', LEASE_MS + TAKEOVER_SLACK_MS)
      await converged('every SealedSecret synced after the storm')
      checkHistory()
      const sum = async (series: string) => (await a.metric(series)) + (await b.metric(series))
      expect(await sum('kseal_api_retries_total')).toBeGreaterThan(0)
      expect(await sum('kseal_secret_write_conflicts_total{reason="Conflict"}')).toBeGreaterThan(0)
    },
    SCENARIO_MS,
  )

  it(
    'SIGKILL of the leader mid-sync: the standby takes over after the lease and finishes, writing each Secret once',
    async () => {
      const live = await twoLive()
      const leader = await leaderAmong(live, 'a leader', LEASE_MS + TAKEOVER_SLACK_MS)
      const standby = live.find((r) => r !== leader)!
      const leaderProxy = proxyOf.get(leader)!
      const standbyProxy = proxyOf.get(standby)!
      leaderProxy.set({latencyMs: 150})
      let done: number
      let killedAt: number
      try {
        await applyVersion(names, 3)
        await until(() => written(3) >= 3, 'the leader to be mid-sync', 30_000)
        done = written(3)
        killedAt = Date.now()
        await stopReplica(leader, 'SIGKILL')
      } finally {
        leaderProxy.set({})
      }
      expect(done).toBeLessThan(N) // it really died mid-sync
      const before = await standby.metric('kseal_decryptions_total')
      await leaderAmong([standby], 'the standby to take over', LEASE_MS + TAKEOVER_SLACK_MS)
      const takeoverAt = Date.now()
      // It waited out the lease (less the time since the dead leader's last renewal).
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(LEASE_MS - 3000)
      await converged('every SealedSecret synced by the new leader')
      checkHistory()
      // Only what the dead leader had not written is decrypted and written again, each once.
      expect((await standby.metric('kseal_decryptions_total')) - before).toBeLessThanOrEqual(N - done)
      const secretWrites = standbyProxy.log.filter((r) => r.resource === 'secrets' && isWrite(r) && r.time >= takeoverAt - LEASE_MS)
      expect(secretWrites.length).toBeLessThanOrEqual(N - done)
    },
    SCENARIO_MS,
  )

  /**
   * Stops the leader with SIGSTOP (mid-sync when `busy`, else idle) for longer than its lease; the
   * other replica takes over and writes two newer versions while the stopped one's watches buffer
   * them; then SIGCONT. The woken replica must write nothing at all (its proxy's log from the
   * takeover on), and nothing may have gone back in time.
   */
  async function pauseLeader(reps: Replica[], busy: boolean, first: number): Promise<void> {
    const paused = await leaderAmong(reps, 'a leader', LEASE_MS + TAKEOVER_SLACK_MS)
    const other = reps.find((r) => r !== paused)!
    const pausedProxy = proxyOf.get(paused)!
    let stoppedAt: number
    if (busy) pausedProxy.set({latencyMs: 150})
    try {
      if (busy) {
        await applyVersion(names, first)
        await until(() => written(first) >= 3, 'the leader to be mid-sync', 30_000)
      }
      paused.child.kill('SIGSTOP')
      stoppedAt = Date.now()
    } finally {
      pausedProxy.set({})
    }
    await leaderAmong([other], 'the other replica to take over', LEASE_MS + TAKEOVER_SLACK_MS)
    const takeoverAt = Date.now()
    expect(takeoverAt - stoppedAt).toBeGreaterThanOrEqual(LEASE_MS - 3000)
    // The new leader applies two newer versions while the old one sleeps; the old one's watch buffers them all.
    await applyVersion(names, first + 1)
    await converged(`version ${first + 1} written by the new leader`)
    await applyVersion(names, first + 2)
    await converged(`version ${first + 2} written by the new leader`)

    const continuedAt = Date.now()
    const mark = paused.lines.length
    paused.child.kill('SIGCONT')
    // Proof that it ran after waking: it said it lost the Lease, and it asked for the Lease twice
    // more (by then its buffered watch events have been read and handed on).
    await until(
      () => paused.lines.slice(mark).some((l) => l.includes('"msg":"lost leadership')),
      'the woken replica to log that it lost the Lease',
      30_000,
    )
    await until(
      () => pausedProxy.log.filter((r) => r.resource === 'leases' && r.verb === 'get' && r.time > continuedAt).length >= 2,
      'two Lease rounds of the woken replica',
      30_000,
      POLL_MS,
    )
    expect(await isLeader(paused)).toBe(false)

    const late = pausedProxy.log.filter((r) => isWrite(r) && r.resource !== 'leases' && r.time >= takeoverAt)
    expect(late.map((r) => `${r.method} ${r.path}`)).toEqual([])
    await converged(`version ${first + 2} still everywhere`)
    checkHistory()
  }

  it(
    'SIGSTOP of the leader mid-sync, past its lease; the new leader applies two newer versions; SIGCONT: zero stale writes',
    async () => {
      // (After the SIGKILL test: a fresh standby behind the dead replica's proxy.)
      await pauseLeader(await twoLive(), true, 4)
    },
    SCENARIO_MS,
  )

  it(
    'SIGSTOP of an idle leader past its lease, the same again: zero stale writes',
    async () => {
      await pauseLeader(await twoLive(), false, 6)
    },
    SCENARIO_MS,
  )
})
