/**
 * How the controller writes, in process, against the Kubernetes API test server through the real
 * @kubernetes/client-node: the write fence (CallContext: a check at the moment of each write attempt,
 * an AbortSignal), the leader's fence on its monotonic clock, writes that cannot go back in time
 * (resourceVersion on Secret updates and status patches, the generation annotation), conflicts that
 * back off without decrypting again (another writer, a mutating webhook — played by a fault proxy's
 * hook), and the watch on the Secrets the controller wrote (drift repaired at once, an older
 * controller's Secrets labelled, nothing of their data kept).
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {KsealError} from '../src/core/errors.js'
import {clusterApi, type ClusterApi, type Secret} from '../src/kube/api.js'
import {loadKubeConfig} from '../src/kube/config.js'
import {LeaderElector} from '../src/controller/runtime/leader.js'
import {createLogger} from '../src/controller/log.js'
import {silentLogger} from './support/log.js'
import {type Controller, startController} from '../src/controller/controller.js'
import {DEFAULTS} from '../src/controller/options.js'
import {GENERATION_ANNOTATION, OWNED_LABEL, slimSecret, SPEC_HASH_ANNOTATION} from '../src/controller/owned.js'
import {Reconciler} from '../src/controller/sealed/reconcile.js'
import {Reflector} from '../src/controller/runtime/reflector.js'
import {KeyStore} from '../src/controller/keystore/store.js'
import {RsaDecryptPool} from '../keys/rsa-pool.js'
import {sealedSpecHash} from '../src/sealed/hash.js'
import {sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject} from '../src/sealed/types.js'
import {recipientKids} from '../src/sealed/unseal.js'
import {compactSealed} from '../src/controller/sealed/compact.js'
import {slimSealed} from '../src/controller/sealed/slim.js'
import {OTHER_CERT} from './support/cli.js'
import {fixtureKeySecret, fixtureRecipient, TEST_TRUST_ROOT} from './support/controller.js'
import {sleep, until} from './support/until.js'
import {type FaultProxy, startFaultProxy} from './support/fault-proxy.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'

const KEY_NS = 'kseal-system'
const pool = new RsaDecryptPool(1)
let srv: K8sApiServer
let api: ClusterApi
let dir: string

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', KEY_NS, 'w', 'c1', 'c2', 'c3', 'c4', 'c5']})
  api = await clusterApi(srv.kubeConfig(), {baseMs: 5, maxMs: 20})
  srv.putObject(fixtureKeySecret('other', new Date('2026-01-01T00:00:00Z'), KEY_NS) as unknown as KubeObject)
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-writes-'))
})

afterAll(async () => {
  await pool.close()
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

const notLeader = () => new KsealError('ERR_NOT_LEADER', 'refused')

async function seal(ns: string, name: string, values: Record<string, string>): Promise<SealedSecretObject> {
  return sealSecret(
    {apiVersion: 'v1', kind: 'Secret', metadata: {name, namespace: ns}, stringData: values},
    [fixtureRecipient(OTHER_CERT)],
    'strict',
  )
}

/** Stores (creates or updates the spec of) a SealedSecret straight in the API server, as `kubectl apply` would. */
async function put(ns: string, name: string, values: Record<string, string>): Promise<SealedSecretObject> {
  const sealed = await seal(ns, name, values)
  const cur = srv.getObject('kseal.dev/v1', 'SealedSecret', ns, name)
  return srv.putObject({
    ...sealed,
    metadata: {...sealed.metadata, ...(cur ? {uid: cur.metadata.uid} : {})},
  } as unknown as KubeObject) as unknown as SealedSecretObject
}
const sealedOf = (ns: string, name: string) => srv.getObject('kseal.dev/v1', 'SealedSecret', ns, name) as unknown as SealedSecretObject
const secretOf = (ns: string, name: string) => srv.getObject('v1', 'Secret', ns, name)
const value = (s: KubeObject | undefined, k: string) => Buffer.from(s?.data?.[k] ?? '', 'base64').toString()
const synced = (ns: string, name: string) => (sealedOf(ns, name)?.status?.conditions ?? []).find((c) => c.type === 'Synced')
const writes = (ns: string) => srv.countRequests((r) => r.namespace === ns && r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch')

/** One controller without leader election for one namespace, no resync (one worker unless told). */
const singleController = (ns: string, deps: {api: ClusterApi; log: typeof silentLogger} = {api, log: silentLogger}, workers = 1) =>
  startController(
    {
      ...DEFAULTS,
      namespaces: [ns],
      keyNamespace: KEY_NS,
      keyBits: 2048,
      listen: '127.0.0.1:0',
      leaderElect: false,
      identity: ns,
      workers,
      resyncPeriodMs: 0,
    },
    deps,
  )

describe('the write fence: a CallContext at the moment of each write', () => {
  it('runs beforeWrite before every attempt of a write, retries included, never for a read; a refusal sends nothing', async () => {
    const onSecrets = (verb: string) => (r: {verb: string; resource?: string; namespace?: string}) =>
      r.verb === verb && r.resource === 'secrets' && r.namespace === 'w'
    let checks = 0
    srv.failNext(2, {status: 503, match: onSecrets('create')})
    const created = await api.createSecret('w', {metadata: {name: 'fence'}, data: {}}, {beforeWrite: () => void checks++})
    expect(checks).toBe(3)
    expect(srv.findRequests(onSecrets('create')).map((r) => r.status)).toEqual([503, 503, 201])

    checks = 0
    await api.getSecret('w', 'fence', {beforeWrite: () => void checks++})
    expect(checks).toBe(0)

    // The first attempt fails with a 503; by the second, the fence has closed: nothing more is sent.
    srv.clearRequests()
    srv.failNext(1, {status: 503, match: onSecrets('update')})
    let attempt = 0
    const refused = api.replaceSecret('w', 'fence', created, {
      beforeWrite: () => {
        if (++attempt === 2) throw notLeader()
      },
    })
    await expect(refused).rejects.toMatchObject({code: 'ERR_NOT_LEADER'})
    expect(srv.countRequests(onSecrets('update'))).toBe(1)
  })

  it('an aborted signal ends the call in flight and its retries, and a call on an aborted signal is never sent', async () => {
    srv.latencyMs = 400
    try {
      const ctl = new AbortController()
      srv.clearRequests()
      const call = api.getSecret('w', 'fence', {signal: ctl.signal})
      await until(() => srv.countRequests({resource: 'secrets', name: 'fence', verb: 'get'}) === 1, 'the call in flight')
      ctl.abort(notLeader())
      await expect(call).rejects.toBeDefined()
      // It ended on the abort, before the server (400 ms away) answered, and was not retried.
      expect(srv.findRequests({resource: 'secrets', name: 'fence', verb: 'get'}).map((r) => r.status)).toEqual([0])
    } finally {
      srv.latencyMs = 0
    }
    srv.clearRequests()
    const gone = new AbortController()
    gone.abort(notLeader())
    await expect(api.createSecret('w', {metadata: {name: 'never'}}, {signal: gone.signal})).rejects.toMatchObject({code: 'ERR_NOT_LEADER'})
    expect(srv.countRequests({resource: 'secrets', namespace: 'w'})).toBe(0)
  })
})

describe('the leader fence, on the monotonic clock', () => {
  const elector = (name: string, monotonic: () => number, o: {api?: ClusterApi} = {}) =>
    new LeaderElector({
      api: o.api ?? api,
      namespace: KEY_NS,
      name,
      identity: 'a',
      log: silentLogger,
      leaseDurationMs: 1000,
      renewDeadlineMs: 700,
      retryPeriodMs: 100,
      monotonic,
    })

  it('closes the write window the moment the clock passes the renew deadline, before any timer runs; a renewal reopens it', async () => {
    let offset = 0
    const e = elector('fence-1', () => performance.now() + offset)
    e.start({onStartedLeading: () => undefined, onStoppedLeading: () => undefined})
    try {
      await until(() => e.holds(), 'the Lease')
      offset += 5000 // as if the process had been stopped for 5 s
      expect(e.holds()).toBe(false) // read now, not when a timer fires
      expect(e.isLeader).toBe(true)
      await until(() => e.holds(), 'a fresh renewal') // no other replica took it: the next round renews
    } finally {
      await e.stop()
    }
  })

  it('a renewal answered after a pause extends nothing: the window counts from when the round started', async () => {
    let offset = 0
    let gate: Promise<void> | undefined
    let entered = false
    let renewedThroughGate = false
    const gated: ClusterApi = {
      ...api,
      async replaceLease(ns, name, body, ctx) {
        if (!gate) return api.replaceLease(ns, name, body, ctx)
        entered = true
        await gate
        const l = await api.replaceLease(ns, name, body, ctx)
        renewedThroughGate = true
        return l
      },
    }
    const e = elector('fence-2', () => performance.now() + offset, {api: gated})
    const events: string[] = []
    let holdsWhenStopped: boolean | undefined
    e.start({
      onStartedLeading: () => void events.push('started'),
      onStoppedLeading: () => {
        holdsWhenStopped = e.holds()
        events.push('stopped')
      },
    })
    try {
      await until(() => e.holds(), 'the Lease')
      let release!: () => void
      gate = new Promise((r) => (release = r))
      await until(() => entered, 'a renewal in flight')
      offset += 5000 // the process stops while its renewal is in flight ...
      gate = undefined
      release() // ... and on waking reads the answer: the Lease was renewed
      await until(() => events.includes('stopped'), 'the step-down')
      expect(renewedThroughGate).toBe(true)
      expect(holdsWhenStopped).toBe(false)
      await until(() => events.length === 3, 'leading again after a fresh round')
      expect(events).toEqual(['started', 'stopped', 'started'])
      expect(e.holds()).toBe(true)
    } finally {
      await e.stop()
    }
  })
})

describe('the reconciler never writes back in time', () => {
  const ns = 'c1'
  let decryptions = 0
  let store: KeyStore
  const reconciler = () => new Reconciler({api, unwrap: store.unwrap, log: silentLogger, identity: 'r'})

  beforeAll(() => {
    store = new KeyStore({pool, log: silentLogger, onDecrypt: () => decryptions++, trustRoot: TEST_TRUST_ROOT})
    store.upsertSecret(fixtureKeySecret('other', new Date('2026-01-01T00:00:00Z'), KEY_NS))
  })

  it('records the generation; a replica holding an older generation of the SealedSecret writes nothing', async () => {
    const mine = reconciler()
    await put(ns, 'gen', {v: 'one'})
    const old = sealedOf(ns, 'gen') // what a paused replica still holds
    expect((await mine.reconcile(old)).result).toBe('unsealed')
    await put(ns, 'gen', {v: 'two'})
    expect((await mine.reconcile(sealedOf(ns, 'gen'))).result).toBe('unsealed')
    const newer = secretOf(ns, 'gen')!
    expect(newer.metadata.annotations[GENERATION_ANNOTATION]).toBe('2')
    expect(newer.metadata.labels[OWNED_LABEL]).toBe('sealedsecret')

    const before = writes(ns)
    decryptions = 0
    const stale = await reconciler().reconcile(old)
    expect(stale).toMatchObject({result: 'stale', retry: 'backoff'})
    expect(writes(ns)).toBe(before)
    expect(decryptions).toBe(0)
    expect(secretOf(ns, 'gen')!.metadata.resourceVersion).toBe(newer.metadata.resourceVersion)
    expect(sealedOf(ns, 'gen').status?.observedGeneration).toBe(2)
  })

  it('patches the status only at the resourceVersion it read: an older view gets 409, and the status stays', async () => {
    await put(ns, 'viewed', {v: 'one'})
    expect((await reconciler().reconcile(sealedOf(ns, 'viewed'))).result).toBe('unsealed')
    const view = sealedOf(ns, 'viewed')
    srv.putObject({
      ...sealedOf(ns, 'viewed'),
      metadata: {...sealedOf(ns, 'viewed').metadata, labels: {touched: 'yes'}},
    } as unknown as KubeObject) // no new generation
    const status = sealedOf(ns, 'viewed').status
    await expect(reconciler().setStatus(view, 'False', 'ApiError', 'from an older view')).rejects.toMatchObject({code: 409})
    expect(sealedOf(ns, 'viewed').status).toEqual(status)
    // The same status at the current resourceVersion goes through.
    expect(await reconciler().setStatus(sealedOf(ns, 'viewed'), 'False', 'ApiError', 'current')).toBe(true)
    expect(synced(ns, 'viewed')).toMatchObject({status: 'False', message: 'current'})
  })

  it('updates a Secret only at the resourceVersion it was computed from; the retry after the 409 decrypts nothing', async () => {
    await put(ns, 'cas', {v: 'one'})
    await reconciler().reconcile(sealedOf(ns, 'cas'))
    const read = slimSecret(secretOf(ns, 'cas') as Secret) // what the watch held
    srv.putObject({
      ...secretOf(ns, 'cas'),
      metadata: {...secretOf(ns, 'cas')!.metadata, annotations: {...secretOf(ns, 'cas')!.metadata.annotations, other: 'writer'}},
    })
    await put(ns, 'cas', {v: 'two'})
    let cached: Secret | undefined = read
    let conflicts = 0
    const r = new Reconciler({
      api,
      unwrap: store.unwrap,
      log: silentLogger,
      identity: 'r',
      cachedSecret: () => cached,
      onConflict: () => void conflicts++,
    })
    decryptions = 0
    expect(await r.reconcile(sealedOf(ns, 'cas'))).toMatchObject({result: 'failed', reason: 'WriteConflict', retry: 'backoff'})
    expect(value(secretOf(ns, 'cas'), 'v')).toBe('one')
    expect(conflicts).toBe(1)
    expect(r.retainedCount).toBe(1)
    cached = slimSecret(secretOf(ns, 'cas') as Secret) // the watch caught up
    expect((await r.reconcile(sealedOf(ns, 'cas'))).result).toBe('unsealed')
    expect(value(secretOf(ns, 'cas'), 'v')).toBe('two')
    expect(decryptions).toBe(1)
    expect(r.retainedCount).toBe(0)
  })

  it('keeps a bounded number of decrypted Secrets for retries, and none once the replica stops leading', async () => {
    // The watch holds a Secret of each that the API server no longer has: every update is answered 404.
    const gone = (namespace: string, name: string): Secret => ({
      metadata: {
        name,
        namespace,
        resourceVersion: '1',
        ownerReferences: [
          {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name, uid: sealedOf(namespace, name).metadata.uid!, controller: true},
        ],
      },
    })
    const r = new Reconciler({api, unwrap: store.unwrap, log: silentLogger, identity: 'r', retainMax: 2, cachedSecret: gone})
    decryptions = 0
    for (const name of ['b1', 'b2', 'b3']) {
      await put(ns, name, {v: name})
      expect(await r.reconcile(sealedOf(ns, name))).toMatchObject({result: 'failed', reason: 'WriteConflict', retry: 'backoff'})
    }
    expect(decryptions).toBe(3)
    expect(r.retainedCount).toBe(2)
    r.reset()
    expect(r.retainedCount).toBe(0)
  })
})

describe('the controller against other writers (a fault proxy plays them)', () => {
  let proxy: FaultProxy
  let c: Controller | undefined

  beforeAll(async () => {
    proxy = await startFaultProxy(srv)
  })
  afterAll(async () => {
    await proxy.close()
  })

  let lines: string[] = []
  async function controller(ns: string): Promise<Controller> {
    const kubeconfig = path.join(dir, `${ns}.kubeconfig`)
    await proxy.writeKubeconfig(kubeconfig)
    lines = []
    c = await singleController(
      ns,
      {
        api: await clusterApi(await loadKubeConfig({kubeconfig}), {baseMs: 5, maxMs: 20}),
        log: createLogger({level: 'debug', write: (l) => lines.push(l)}),
      },
      2,
    )
    return c
  }
  /** The backoff delays the controller chose for a SealedSecret (logged when it requeues it), from line `from` on. */
  const delays = (key: string, from: number) =>
    lines
      .slice(from)
      .map((l) => JSON.parse(l) as {msg: string; sealedSecret?: string; retryInMs?: number})
      .filter(
        (r) => r.sealedSecret === key && (r.msg === 'requeued with backoff' || r.msg === 'Secret changed: its SealedSecret is requeued'),
      )
      .map((r) => r.retryInMs!)
  /** The queue's jittered exponential backoff: 200 ms doubling, each within a quarter of its nominal value. */
  const backoff = (ds: number[]) =>
    ds.forEach((d, k) => {
      expect(d).toBeGreaterThanOrEqual(0.75 * 200 * 2 ** k - 1)
      expect(d).toBeLessThanOrEqual(1.25 * 200 * 2 ** k + 1)
    })
  /** Runs `fn` against a controller for namespace `ns` (no leader election, no resync), then stops it and unhooks the proxy. */
  async function withController(ns: string, fn: (ctl: Controller) => Promise<void>): Promise<void> {
    const ctl = await controller(ns)
    try {
      await fn(ctl)
    } finally {
      proxy.hook = undefined
      await c?.stop()
      c = undefined
    }
  }
  const putsOf = (ns: string, name: string) =>
    proxy.log.filter(
      (r) => r.namespace === ns && r.name === name && r.resource === 'secrets' && (r.verb === 'update' || r.verb === 'create'),
    )
  /** What another controller writing the Secret leaves in managedFields (the test server does not record writers itself). */
  const rival = (ns: string, name: string, change: (s: KubeObject) => void) => {
    const s = secretOf(ns, name)
    if (!s) return
    change(s)
    s.metadata.managedFields = [
      {
        manager: 'rival-operator',
        operation: 'Update',
        apiVersion: 'v1',
        time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        fieldsType: 'FieldsV1',
        fieldsV1: {},
      },
    ]
    srv.putObject(s)
  }

  it('a writer that changes the Secret before each update: backoff, one decryption, a metric, then WriteConflict naming it', async () => {
    const ns = 'c2'
    await withController(ns, async (ctl) => {
      await put(ns, 'fought', {v: 'mine'})
      await until(() => secretOf(ns, 'fought'), 'the Secret')
      await until(() => synced(ns, 'fought')?.status === 'True', 'Synced')
      const decryptions = await ctl.metrics.decryptions.get()
      // From now on, another writer touches the Secret just before each update the controller sends: every one gets 409.
      proxy.hook = {
        before: (r, body) => {
          if (r.resource === 'secrets' && r.name === 'fought' && r.verb === 'update')
            rival(ns, 'fought', (s) => (s.metadata.annotations = {...s.metadata.annotations, rival: String(Date.now())}))
          return body
        },
      }
      const from = proxy.log.length
      const mark = lines.length
      await put(ns, 'fought', {v: 'mine, again'})
      await until(() => synced(ns, 'fought')?.reason === 'WriteConflict', 'the WriteConflict condition', 30_000)
      const updates = putsOf(ns, 'fought').filter((r) => proxy.log.indexOf(r) >= from)
      expect(synced(ns, 'fought')!.message).toMatch(
        /changed by another writer .* \(409 Conflict\), 5 times in a row; its last writer was field manager "rival-operator" \(Update at/,
      )
      expect(await ctl.metrics.conflicts.get({reason: 'Conflict'})).toBeGreaterThanOrEqual(5)
      // Five attempts, each after a backoff twice as long as the one before: no hot loop,
      expect(updates.length).toBeLessThanOrEqual(6)
      backoff(delays(`${ns}/fought`, mark).slice(0, 4))
      // and the retries reused what was decrypted once.
      expect((await ctl.metrics.decryptions.get()) - decryptions).toBe(1)
      expect(value(secretOf(ns, 'fought'), 'v')).toBe('mine') // never the newer data over the other writer's change
      const warnings = () =>
        srv.listObjects('v1', 'Event', ns).filter((e) => e.involvedObject?.name === 'fought' && e.reason === 'WriteConflict')
      await until(() => warnings().length, 'the Warning Event')
      expect(warnings()).toHaveLength(1)
    })
  })

  it("a mutating webhook that strips the controller's marks: bounded retries, one decryption, WriteConflict says so", async () => {
    const ns = 'c3'
    await withController(ns, async (ctl) => {
      proxy.hook = {
        before: (r, body) => {
          if (r.resource !== 'secrets' || (r.name !== undefined && r.name !== 'mutated')) return body
          const o = JSON.parse(body.toString()) as KubeObject
          if (o.metadata?.name !== 'mutated') return body
          delete o.metadata.annotations?.[SPEC_HASH_ANNOTATION]
          return Buffer.from(JSON.stringify(o))
        },
      }
      await put(ns, 'mutated', {v: 'x'})
      await until(() => synced(ns, 'mutated')?.reason === 'WriteConflict', 'the WriteConflict condition', 30_000)
      expect(synced(ns, 'mutated')!.message).toMatch(/changed on its way in: .*mutating admission webhook\?\), 5 times in a row/)
      expect(await ctl.metrics.conflicts.get({reason: 'Mutated'})).toBe(5)
      expect(putsOf(ns, 'mutated').length).toBe(5)
      backoff(delays(`${ns}/mutated`, 0).slice(0, 4))
      expect(await ctl.metrics.decryptions.get()).toBe(1)
    })
  })

  it('a writer that overwrites the Secret after each write: the repairs slow down, decrypting at most twice', async () => {
    const ns = 'c4'
    await withController(ns, async (ctl) => {
      proxy.hook = {
        after: (r, status, body) => {
          const name = r.name ?? (JSON.parse(body.toString()) as KubeObject).metadata?.name
          if (r.resource === 'secrets' && name === 'overwritten' && status < 300) {
            setTimeout(() => rival(ns, 'overwritten', (s) => delete s.metadata.annotations[SPEC_HASH_ANNOTATION]), 20)
          }
        },
      }
      await put(ns, 'overwritten', {v: 'x'})
      await until(() => synced(ns, 'overwritten')?.reason === 'WriteConflict', 'the WriteConflict condition', 30_000)
      // The first write, then one repair per overwrite, each after a backoff twice as long as the one before.
      expect(putsOf(ns, 'overwritten').length).toBe(6)
      backoff(delays(`${ns}/overwritten`, 0).slice(0, 5))
      expect(synced(ns, 'overwritten')!.message).toMatch(
        /changed or deleted by another writer after the controller wrote it, 5 times in a row; its last writer was field manager "rival-operator"/,
      )
      expect(await ctl.metrics.conflicts.get({reason: 'Overwritten'})).toBe(5)
      expect(await ctl.metrics.decryptions.get()).toBeLessThanOrEqual(2)
    })
  })

  it('repairs a hand-deleted or hand-edited Secret at once through its watch (no resync), with one write each', async () => {
    const ns = 'c5'
    await withController(ns, async (ctl) => {
      await put(ns, 'drift', {v: 'kept'})
      await until(() => synced(ns, 'drift')?.status === 'True', 'Synced')
      const from = putsOf(ns, 'drift').length
      srv.deleteObject('v1', 'Secret', ns, 'drift')
      await until(() => value(secretOf(ns, 'drift'), 'v') === 'kept', 'the Secret restored', 5000)
      const s = secretOf(ns, 'drift')!
      srv.putObject({...s, metadata: {...s.metadata, annotations: {}}, data: {v: Buffer.from('edited').toString('base64')}})
      await until(
        () => value(secretOf(ns, 'drift'), 'v') === 'kept' && secretOf(ns, 'drift')!.metadata.annotations?.[SPEC_HASH_ANNOTATION],
        'the edit undone',
        5000,
      )
      // The server holds the repair as soon as the write lands; the controller counts it once the
      // write's answer is back: wait for that reconcile to end (its third Secret written) before counting.
      await until(async () => (await ctl.metrics.reconciles.get({result: 'unsealed'})) === 3, "the repair's reconcile to end", 5000)
      expect(putsOf(ns, 'drift').length - from).toBe(2)
      // Each is a lost race (another writer undid the controller's write); the second repair reuses what the first decrypted.
      expect(await ctl.metrics.conflicts.get({reason: 'Overwritten'})).toBe(2)
      expect(await ctl.metrics.decryptions.get()).toBe(2)
      expect(synced(ns, 'drift')!.status).toBe('True')
    })
  })

  it("takes the echo of its own write for its own, also when the watch brings it before the write's answer", async () => {
    const ns = 'c7'
    await withController(ns, async (ctl) => {
      // Every answer to a Secret write is held back a while: the write's watch event reaches the controller first.
      proxy.hook = {answer: (r) => (r.resource === 'secrets' && r.namespace === ns ? sleep(300) : undefined)}
      const from = lines.length
      await put(ns, 'echo', {v: 'x'})
      await until(() => synced(ns, 'echo')?.status === 'True', 'Synced')
      await until(async () => (await ctl.metrics.reconciles.get({result: 'unsealed'})) === 1, 'the reconcile to end')
      // Its own write is no change: no requeue, no second reconcile, no lost race.
      expect(delays(`${ns}/echo`, from)).toEqual([])
      expect(await ctl.metrics.conflicts.get({reason: 'Overwritten'})).toBe(0)
      expect(putsOf(ns, 'echo')).toHaveLength(1)
    })
  })

  it('labels a Secret an older controller wrote, without decrypting, and watches it from then on', async () => {
    const ns = 'w'
    const sealed = await put(ns, 'legacy', {v: 'old'})
    // As the previous controller version left it: owned, the right spec hash and data, but no label and no generation.
    srv.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      data: {v: Buffer.from('old').toString('base64')},
      metadata: {
        name: 'legacy',
        namespace: ns,
        annotations: {[SPEC_HASH_ANNOTATION]: sealedSpecHash(sealed)},
        ownerReferences: [{apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: 'legacy', uid: sealed.metadata.uid, controller: true}],
      },
    })
    await withController(ns, async (ctl) => {
      await until(() => secretOf(ns, 'legacy')?.metadata.labels?.[OWNED_LABEL] === 'sealedsecret', 'the label')
      expect(secretOf(ns, 'legacy')!.metadata.annotations[GENERATION_ANNOTATION]).toBe('1')
      expect(value(secretOf(ns, 'legacy'), 'v')).toBe('old')
      expect(await ctl.metrics.decryptions.get()).toBe(0)
      srv.deleteObject('v1', 'Secret', ns, 'legacy') // now it is watched: restored at once
      await until(() => value(secretOf(ns, 'legacy'), 'v') === 'old', 'the Secret restored', 5000)
    })
  })
})

describe('without the watch on owned Secrets', () => {
  it('is ready and unseals, reading each Secret from the API, when it may not list Secrets (RBAC not yet upgraded)', async () => {
    const ns = 'c6'
    srv.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    srv.failNext(100_000, {
      status: 403,
      match: (r) => r.resource === 'secrets' && r.namespace === ns && (r.verb === 'list' || r.verb === 'watch'),
    })
    const ctl = await singleController(ns)
    try {
      await until(() => ctl.notReady() === null, 'ready')
      await put(ns, 'fallback', {v: 'read'})
      await until(() => value(secretOf(ns, 'fallback'), 'v') === 'read', 'the Secret')
      expect(srv.countRequests({resource: 'secrets', namespace: ns, verb: 'get', name: 'fallback'})).toBeGreaterThan(0)
      expect(
        srv.countRequests((r) => r.resource === 'secrets' && r.namespace === ns && r.verb === 'list' && r.status === 403),
      ).toBeGreaterThan(0)
    } finally {
      srv.clearFaults()
      await ctl.stop()
    }
  })
})

describe('the watched copy of an owned Secret', () => {
  it("keeps no data, no annotation but kseal's, and managedFields without field sets", async () => {
    const full: Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      data: {password: Buffer.from('hunter2').toString('base64')},
      metadata: {
        name: 's',
        namespace: 'n',
        uid: 'u',
        resourceVersion: '7',
        labels: {[OWNED_LABEL]: 'sealedsecret', app: 'x'},
        annotations: {
          [SPEC_HASH_ANNOTATION]: 'h',
          'kubectl.kubernetes.io/last-applied-configuration': '{"data":{"password":"aHVudGVyMg=="}}',
        },
        managedFields: [
          {
            manager: 'kubectl',
            operation: 'Update',
            time: new Date('2026-01-01T00:00:00Z'),
            fieldsType: 'FieldsV1',
            fieldsV1: {'f:data': {}},
          },
        ],
      },
    }
    const slim = slimSecret(full)
    expect(slim).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: 's',
        namespace: 'n',
        uid: 'u',
        resourceVersion: '7',
        creationTimestamp: undefined,
        labels: {[OWNED_LABEL]: 'sealedsecret'},
        annotations: {[SPEC_HASH_ANNOTATION]: 'h'},
        managedFields: [{manager: 'kubectl', operation: 'Update', time: new Date('2026-01-01T00:00:00Z'), subresource: undefined}],
      },
    })
    expect(JSON.stringify(slim)).not.toContain('aHVudGVyMg')

    // The reflector keeps only the reduced objects.
    const ns = 'w'
    srv.putObject({
      ...full,
      metadata: {name: 'slim', namespace: ns, labels: {[OWNED_LABEL]: 'sealedsecret'}, annotations: full.metadata!.annotations},
    } as KubeObject)
    const r = new Reflector<Secret>(
      {
        list: () => api.listSecrets(ns, `${OWNED_LABEL}=sealedsecret`),
        watch: (rv, onEvent, done) =>
          api.watch(api.secretsPath(ns), {resourceVersion: rv, labelSelector: `${OWNED_LABEL}=sealedsecret`}, onEvent, done),
      },
      {upsert: () => undefined, delete: () => undefined},
      {name: 'slim', log: silentLogger, transform: slimSecret},
    )
    r.start()
    try {
      await until(() => r.cache.get(`${ns}/slim`), 'the listed Secret')
      srv.putObject({...srv.getObject('v1', 'Secret', ns, 'slim'), data: {password: Buffer.from('changed').toString('base64')}})
      await until(
        () => r.cache.get(`${ns}/slim`)?.metadata?.resourceVersion === srv.getObject('v1', 'Secret', ns, 'slim')!.metadata.resourceVersion,
        'the watched change',
      )
      for (const s of r.cache.values()) {
        expect(s.data).toBeUndefined()
        expect(Object.keys(s.metadata?.annotations ?? {}).every((k) => k.startsWith('kseal.dev/'))).toBe(true)
      }
    } finally {
      await r.stop()
    }
  })
})

describe('a synced SealedSecret, kept without its ciphertexts (sealed/compact.ts)', () => {
  it('drops the ciphertexts once the Secret is written, keeps the key ids, and reads the SealedSecret again to rewrite a deleted Secret', async () => {
    const ns = 'c8'
    srv.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    const ctl = await singleController(ns)
    const cached = () =>
      [...(ctl as unknown as {sealedObjects(): Iterable<SealedSecretObject>}).sealedObjects()].find((o) => o.metadata.name === 'db')
    try {
      await until(() => ctl.notReady() === null, 'ready')
      const sealed = await put(ns, 'db', {password: 'first'})
      const wrapped = sealed.spec.envelope.parts[0]!.recipients[0]!.wrapped
      const token = Object.values(sealed.spec.encryptedData)[0]!
      await until(() => value(secretOf(ns, 'db'), 'password') === 'first', 'the Secret')
      // The status write's echo replaces the cached object; it is kept compact too.
      await until(() => synced(ns, 'db')?.status === 'True' && !JSON.stringify(cached()).includes(wrapped), 'the cached object compacted')
      const kept = JSON.stringify(cached())
      expect(kept).not.toContain(token)
      expect(kept).not.toContain(wrapped)
      expect(recipientKids(cached()!)).toEqual(recipientKids(sealed))
      expect(srv.countRequests({resource: 'sealedsecrets', namespace: ns, verb: 'get'})).toBe(0)

      // Someone deletes the Secret: the controller reads the SealedSecret once and writes it again.
      srv.deleteObject('v1', 'Secret', ns, 'db')
      await until(() => value(secretOf(ns, 'db'), 'password') === 'first', 'the Secret written again')
      expect(srv.countRequests({resource: 'sealedsecrets', namespace: ns, verb: 'get', name: 'db'})).toBe(1)

      // A new spec arrives whole through the watch, and is unsealed without a read.
      await put(ns, 'db', {password: 'second'})
      await until(() => value(secretOf(ns, 'db'), 'password') === 'second', 'the new value')
      expect(srv.countRequests({resource: 'sealedsecrets', namespace: ns, verb: 'get', name: 'db'})).toBe(1)
    } finally {
      await ctl.stop()
    }
  })

  it('a compacted object whose SealedSecret changed meanwhile is stale: no decryption from a view the cache does not hold', async () => {
    const ns = 'c8'
    const sealed = await put(ns, 'moved', {v: 'one'})
    const failingUnwrap = async (): Promise<never> => {
      throw new Error('no decryption was expected')
    }
    const reconciler = new Reconciler({api, unwrap: failingUnwrap, log: silentLogger, identity: 'r'})
    const cached = slimSealed(sealed)
    compactSealed(cached, sealedSpecHash(sealed))
    // The cluster moved on (a new spec, a new generation) before this replica's watch said so.
    await put(ns, 'moved', {v: 'two'})
    const before = writes(ns)
    const out = await reconciler.reconcile(cached)
    expect(out).toMatchObject({result: 'stale', retry: 'backoff'})
    expect(writes(ns)).toBe(before)
    expect(srv.countRequests({resource: 'sealedsecrets', namespace: ns, verb: 'get', name: 'moved'})).toBe(1)
  })
})

describe('a follower keeps its cache compact too', () => {
  it('compacts a SealedSecret whose Secret, as its watch holds it, was written from this spec; never one that drifted; writes nothing', async () => {
    const ns = 'c9'
    srv.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    // Another replica leads, for an hour.
    const now = new Date().toISOString().replace('Z', '000Z')
    srv.putObject({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {name: 'follower-test', namespace: KEY_NS},
      spec: {holderIdentity: 'someone-else', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now},
    })
    // Two SealedSecrets and the Secrets the leader wrote for them; one was edited by hand since (its hash no longer matches).
    const stored: Record<string, SealedSecretObject> = {}
    for (const name of ['in-sync', 'drifted']) {
      stored[name] = await put(ns, name, {v: name})
      const s = stored[name]
      srv.putObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name,
          namespace: ns,
          labels: {[OWNED_LABEL]: 'sealedsecret'},
          annotations: {
            [SPEC_HASH_ANNOTATION]: name === 'in-sync' ? sealedSpecHash(s) : 'another spec',
            [GENERATION_ANNOTATION]: String(s.metadata.generation),
          },
          ownerReferences: [{apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name, uid: s.metadata.uid!, controller: true}],
        },
        data: {v: Buffer.from(name).toString('base64')},
      })
    }
    const before = writes(ns)
    const ctl = await startController(
      {
        ...DEFAULTS,
        namespaces: [ns],
        keyNamespace: KEY_NS,
        keyBits: 2048,
        listen: '127.0.0.1:0',
        leaderElect: true,
        leaseName: 'follower-test',
        identity: 'follower',
        workers: 1,
        resyncPeriodMs: 0,
      },
      {api, log: silentLogger},
    )
    const cached = (name: string) =>
      [...(ctl as unknown as {sealedObjects(): Iterable<SealedSecretObject>}).sealedObjects()].find((o) => o.metadata.name === name)
    const wrapped = (name: string) => stored[name]!.spec.envelope.parts[0]!.recipients[0]!.wrapped
    try {
      await until(() => cached('in-sync') && !JSON.stringify(cached('in-sync')).includes(wrapped('in-sync')), 'in-sync compacted')
      await until(() => cached('drifted'), 'drifted listed')
      expect(JSON.stringify(cached('drifted'))).toContain(wrapped('drifted'))
      expect(recipientKids(cached('in-sync')!)).toEqual(recipientKids(stored['in-sync']!))
      expect(writes(ns)).toBe(before)
    } finally {
      await ctl.stop()
    }
  })
})
