/**
 * The controller's parts, in process, against the Kubernetes API test server over real HTTP through
 * the real @kubernetes/client-node: the reconciler (ownership, spec-hash short cut, status, Events),
 * the key store and its renewal schedule (injected clock), Lease leader election, the reflector's
 * recovery from dropped watches, 410 Gone and 5xx bursts, and the small pieces (queue, durations,
 * listen addresses, metrics, JSON logs).
 */
import {describe, it, expect, beforeAll, afterAll} from '@jest/globals'
import crypto from 'node:crypto'
import {RsaRecipient} from '../keys/rsa.js'
import {RsaDecryptPool} from '../keys/rsa-pool.js'
import {parseDuration} from '../src/core/duration.js'
import {parseListen} from '../src/controller/http/server.js'
import {KeyRenewer} from '../src/controller/keystore/renewer.js'
import {KeyStore} from '../src/controller/keystore/store.js'
import {KEY_CREATED_ANNOTATION, KEY_LABEL} from '../src/sealed/sealing-key.js'
import {clusterApi, type ClusterApi, type ListPage, type Secret} from '../src/kube/api.js'
import {LeaderElector} from '../src/controller/runtime/leader.js'
import {createLogger} from '../src/controller/log.js'
import {silentLogger} from './support/log.js'
import {startController} from '../src/controller/controller.js'
import {DEFAULTS} from '../src/controller/options.js'
import {ControllerMetrics} from '../src/controller/http/metrics.js'
import {sample} from './support/metrics.js'
import {WorkQueue} from '../src/controller/runtime/queue.js'
import {OWNED_LABEL, SPEC_HASH_ANNOTATION} from '../src/controller/owned.js'
import {MANAGED_ANNOTATION} from '../src/core/names.js'
import {Reconciler} from '../src/controller/sealed/reconcile.js'
import {Reflector} from '../src/controller/runtime/reflector.js'
import {sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject} from '../src/sealed/types.js'
import {OTHER_CERT, TEAM_CERT} from './support/cli.js'
import {fixtureKeySecret, fixtureRecipient, TEST_TRUST_ROOT} from './support/controller.js'
import {startK8sApiServer, type K8sApiServer, type KubeObject} from './support/k8s-api-server.js'
import {sleep, until} from './support/until.js'

const KEY_NS = 'kseal-system'

/** The trust root the key stores of these tests hold. */
const TEST_ROOT = TEST_TRUST_ROOT

const recipient = fixtureRecipient

let srv: K8sApiServer
let api: ClusterApi
const pool = new RsaDecryptPool(1)

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', 'kube-system', KEY_NS, 'team-a']})
  api = await clusterApi(srv.kubeConfig(), {baseMs: 5, maxMs: 20})
})

afterAll(async () => {
  await pool.close()
  await srv?.close()
})

describe('work queue', () => {
  it('queues a key once, never hands it to two workers, and requeues it when it changed meanwhile', async () => {
    const q = new WorkQueue()
    q.add('a')
    q.add('a')
    q.add('b')
    expect(q.length).toBe(2)
    expect(await q.get()).toBe('a')
    q.add('a') // changed while being worked on: not handed out again yet
    expect(await q.get()).toBe('b')
    let third: string | undefined = 'pending'
    const p = q.get().then((k) => (third = k))
    await sleep(5)
    expect(third).toBe('pending')
    q.done('a') // now it comes back
    await p
    expect(third).toBe('a')
    q.shutDown()
    expect(await q.get()).toBeUndefined()
  })

  it('backs off exponentially until forgotten; asking again while a key waits does not lengthen its wait; jitter spreads it', async () => {
    const q = new WorkQueue({baseDelayMs: 10, maxDelayMs: 50})
    const delays: (number | undefined)[] = []
    for (let i = 0; i < 4; i++) {
      delays.push(q.addRateLimited('x'))
      expect(q.addRateLimited('x')).toBeUndefined() // already waiting
      expect(await q.get()).toBe('x')
      q.done('x')
    }
    expect(delays).toEqual([10, 20, 40, 50])
    q.forget('x')
    expect(q.addRateLimited('x')).toBe(10)
    q.shutDown()
    const spread = (r: number) => {
      const j = new WorkQueue({baseDelayMs: 100, jitter: 0.25, random: () => r})
      const d = j.addRateLimited('y')
      j.shutDown()
      return d
    }
    expect([spread(0), spread(0.5), spread(1)]).toEqual([75, 100, 125])
  })
})

describe('flags and small parts', () => {
  it('parses durations and listen addresses, refusing nonsense', () => {
    expect(parseDuration('30d', 'x')).toBe(30 * 86_400_000)
    expect(parseDuration('1h30m', 'x')).toBe(5_400_000)
    expect(parseDuration('500ms', 'x')).toBe(500)
    expect(parseDuration('0', 'x')).toBe(0)
    for (const bad of ['', '10', '5y', 'soon', '1h 2m']) expect(() => parseDuration(bad, 'key-renew-period')).toThrow(/--key-renew-period/)
    expect(parseListen(':8080')).toEqual({host: undefined, port: 8080})
    expect(parseListen('127.0.0.1:0')).toEqual({host: '127.0.0.1', port: 0})
    expect(parseListen('[::1]:9')).toEqual({host: '::1', port: 9})
    for (const bad of ['x', ':99999', 'host:']) expect(() => parseListen(bad)).toThrow(/--listen/)
  })

  it('logs one JSON object per line with time, level, msg and fields, honouring the level', () => {
    const lines: string[] = []
    const log = createLogger({level: 'info', write: (l) => lines.push(l), now: () => new Date('2026-01-02T03:04:05Z')}).with({
      identity: 'r1',
    })
    log.debug('hidden')
    log.info('hello', {n: 1, kids: ['a']})
    log.error('bad', {msg: 'cannot override'})
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      {time: '2026-01-02T03:04:05.000Z', level: 'info', msg: 'hello', identity: 'r1', n: 1, kids: ['a']},
      {time: '2026-01-02T03:04:05.000Z', level: 'error', msg: 'bad', identity: 'r1'},
    ])
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true)
  })

  it('renders Prometheus text that parses back', async () => {
    const m = new ControllerMetrics({keys: () => 2, keyAgeSeconds: () => 42.5, leader: () => true, queueDepth: () => 0})
    m.reconciles.inc({result: 'unsealed'}, 3)
    m.failures.inc({reason: 'NotOwned'})
    m.duration.observe(0.003)
    m.duration.observe(2)
    const text = await m.render()
    expect(sample(text, 'kseal_reconciles_total{result="unsealed"}')).toBe(3)
    expect(sample(text, 'kseal_reconcile_failures_total{reason="NotOwned"}')).toBe(1)
    expect(sample(text, 'kseal_reconcile_duration_seconds_bucket{le="0.005"}')).toBe(1)
    expect(sample(text, 'kseal_reconcile_duration_seconds_bucket{le="+Inf"}')).toBe(2)
    expect(sample(text, 'kseal_reconcile_duration_seconds_count')).toBe(2)
    expect(sample(text, 'kseal_keys')).toBe(2)
    expect(sample(text, 'kseal_key_age_seconds')).toBe(42.5)
    expect(sample(text, 'kseal_leader')).toBe(1)
    expect(sample(text, 'kseal_decryptions_total')).toBe(0)
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0)
    expect(text).toMatch(/^# TYPE kseal_reconcile_duration_seconds histogram$/m)
  })
})

describe('key store and renewal', () => {
  it('generates the first key, renews it on schedule (injected clock), keeps the old one for decryption, seals to the newest', async () => {
    const ns = 'team-a' // a namespace of its own, so other tests' keys do not interfere
    let now = new Date('2026-01-01T00:00:00Z')
    const store = new KeyStore({pool, log: silentLogger, trustRoot: TEST_ROOT})
    const renewer = new KeyRenewer({api, store, namespace: ns, periodMs: 30 * 86_400_000, bits: 2048, now: () => now, log: silentLogger})
    const first = await renewer.ensure()
    expect(first).not.toBeNull()
    const stored = srv.getObject('v1', 'Secret', ns, first!.secretName)!
    expect(stored.type).toBe('kubernetes.io/tls')
    expect(stored.metadata.labels).toEqual({[KEY_LABEL]: 'active'})
    expect(stored.metadata.annotations[KEY_CREATED_ANNOTATION]).toBe('2026-01-01T00:00:00.000Z')
    expect(Object.keys(stored.data).sort()).toEqual(['tls.crt', 'tls.key'])

    now = new Date('2026-01-29T00:00:00Z') // 28 days: not due
    expect(await renewer.ensure()).toBeNull()
    // Another replica's renewer, with nothing loaded yet, finds the key instead of making a second one.
    const store2 = new KeyStore({pool, log: silentLogger, trustRoot: TEST_ROOT})
    const other = new KeyRenewer({
      api,
      store: store2,
      namespace: ns,
      periodMs: 30 * 86_400_000,
      bits: 2048,
      now: () => now,
      log: silentLogger,
    })
    expect(await other.ensure()).toBeNull()
    expect(store2.newest()?.kid).toBe(first!.kid)

    const oldSealed = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'old', namespace: ns}, stringData: {a: 'b'}},
      [new RsaRecipient(new crypto.X509Certificate(first!.certPem).publicKey, 'x')],
      'strict',
    )

    now = new Date('2026-01-31T00:00:01Z') // 30 days and a second: due
    const second = await renewer.ensure()
    expect(second).not.toBeNull()
    expect(second!.kid).not.toBe(first!.kid)
    expect(store.size).toBe(2)
    expect(store.newest()?.kid).toBe(second!.kid)
    expect(renewer.due()?.toISOString()).toBe('2026-03-02T00:00:01.000Z')
    expect(srv.listObjects('v1', 'Secret', ns).filter((s) => s.metadata.labels?.[KEY_LABEL] === 'active')).toHaveLength(2)

    // The old key still opens what was sealed to it: exactly one decryption, chosen by key id.
    let decryptions = 0
    const counting = new KeyStore({pool, log: silentLogger, onDecrypt: () => decryptions++, trustRoot: TEST_ROOT})
    for (const s of srv.listObjects('v1', 'Secret', ns)) counting.upsertSecret(s as Secret)
    const {unsealSealedSecret} = await import('../src/sealed/unseal.js')
    const r = await unsealSealedSecret(oldSealed, counting.unwrap)
    expect(Buffer.from((r.secret.data as Record<string, string>).a, 'base64').toString()).toBe('b')
    expect(r.kids).toEqual([first!.kid])
    expect(decryptions).toBe(1)

    // Period 0: never renews once a key exists.
    const never = new KeyRenewer({
      api,
      store,
      namespace: ns,
      periodMs: 0,
      bits: 2048,
      now: () => new Date('2030-01-01T00:00:00Z'),
      log: silentLogger,
    })
    expect(never.due()).toBeNull()
    expect(await never.ensure()).toBeNull()
  })

  it('skips a malformed key Secret and refuses a certificate that does not match its key', () => {
    const store = new KeyStore({pool, log: silentLogger, trustRoot: TEST_ROOT})
    const good = fixtureKeySecret('other', new Date(), KEY_NS)
    const team = fixtureKeySecret('team', new Date(), KEY_NS)
    const mismatched = {
      ...good,
      metadata: {...good.metadata, name: 'mismatch'},
      data: {'tls.key': good.data!['tls.key'], 'tls.crt': team.data!['tls.crt']},
    }
    expect(store.upsertSecret(mismatched)).toBeNull()
    expect(store.upsertSecret({...good, data: {'tls.crt': good.data!['tls.crt']}})).toBeNull()
    expect(store.upsertSecret(good)?.kid).toMatch(/^[0-9a-f]{16}$/)
    expect(store.size).toBe(1)
  })
})

describe('reconciler', () => {
  const ns = 'default'
  let decryptions = 0
  let store: KeyStore
  let reconciler: Reconciler
  const teamRecipient = () => recipient(TEAM_CERT)
  const otherRecipient = () => recipient(OTHER_CERT)

  beforeAll(() => {
    store = new KeyStore({pool, log: silentLogger, onDecrypt: () => decryptions++, trustRoot: TEST_ROOT})
    store.upsertSecret(fixtureKeySecret('other', new Date('2026-01-01T00:00:00Z'), KEY_NS))
    reconciler = new Reconciler({api, unwrap: store.unwrap, log: silentLogger, identity: 'test-replica'})
  })

  async function apply(
    name: string,
    stringData: Record<string, string>,
    extra: {labels?: Record<string, string>; type?: string; immutable?: boolean} = {},
    recipients = [otherRecipient()],
  ): Promise<SealedSecretObject> {
    const secret: Record<string, unknown> = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name, namespace: ns, labels: extra.labels ?? {app: name}, annotations: {team: 'a'}},
      stringData,
    }
    if (extra.type) secret.type = extra.type
    if (extra.immutable !== undefined) secret.immutable = extra.immutable
    const sealed = await sealSecret(secret, recipients, 'strict')
    const existing = srv.getObject('kseal.dev/v1', 'SealedSecret', ns, name)
    return srv.putObject({
      ...sealed,
      metadata: {...sealed.metadata, ...(existing ? {uid: existing.metadata.uid} : {})},
    }) as unknown as SealedSecretObject
  }
  const get = (name: string) => srv.getObject('kseal.dev/v1', 'SealedSecret', ns, name) as unknown as SealedSecretObject
  const secretOf = (name: string) => srv.getObject('v1', 'Secret', ns, name)
  const value = (s: KubeObject | undefined, k: string) => Buffer.from(s?.data?.[k] ?? '', 'base64').toString()
  const events = (name: string) => srv.listObjects('v1', 'Event', ns).filter((e) => e.involvedObject?.name === name)
  const synced = (name: string) => (get(name).status?.conditions ?? []).find((c) => c.type === 'Synced')

  it('creates the Secret with the values, template metadata, type and a controller ownerReference; sets Synced; records an Event', async () => {
    const s = await apply('db', {password: 'hunter2', user: 'admin'}, {labels: {app: 'db', tier: 'x'}, type: 'kubernetes.io/basic-auth'})
    decryptions = 0
    const out = await reconciler.reconcile(get('db'))
    expect(out).toMatchObject({result: 'unsealed', reason: 'Unsealed', retry: 'no'})
    expect(decryptions).toBe(1)
    const secret = secretOf('db')!
    expect(value(secret, 'password')).toBe('hunter2')
    expect(value(secret, 'user')).toBe('admin')
    expect(secret.type).toBe('kubernetes.io/basic-auth')
    expect(secret.metadata.labels).toEqual({app: 'db', tier: 'x', [OWNED_LABEL]: 'sealedsecret'})
    expect(secret.metadata.annotations.team).toBe('a')
    expect(secret.metadata.annotations[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/)
    expect(secret.metadata.ownerReferences).toEqual([
      {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: 'db', uid: s.metadata.uid, controller: true},
    ])
    const cond = synced('db')!
    expect(cond).toMatchObject({status: 'True', reason: 'Unsealed'})
    expect(cond.lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(get('db').status?.observedGeneration).toBe(get('db').metadata.generation)
    const ev = events('db')
    expect(ev).toHaveLength(1)
    expect(ev[0]).toMatchObject({
      type: 'Normal',
      reason: 'Unsealed',
      source: {component: 'kseal-controller'},
      reportingComponent: 'kseal-controller',
      involvedObject: {kind: 'SealedSecret', apiVersion: 'kseal.dev/v1', name: 'db', namespace: ns, uid: s.metadata.uid},
    })
    expect(JSON.stringify(ev)).not.toContain('hunter2')
  })

  it('writes key names such as __proto__, constructor and valueOf like any other key', async () => {
    const names = ['__proto__', 'constructor', 'valueOf', 'toString', 'hasOwnProperty']
    await apply('protos', Object.fromEntries(names.map((k) => [k, `v-${k}`])))
    expect(await reconciler.reconcile(get('protos'))).toMatchObject({result: 'unsealed'})
    const data = secretOf('protos')!.data!
    for (const k of names) expect([k, Object.hasOwn(data, k) && Buffer.from(data[k], 'base64').toString()]).toEqual([k, `v-${k}`])
  })

  /** A SealedSecret of its own, unsealed once: the starting point of the tests that change one. */
  async function unsealed(name: string, stringData: Record<string, string>, extra: Parameters<typeof apply>[2] = {}) {
    await apply(name, stringData, extra)
    expect(await reconciler.reconcile(get(name))).toMatchObject({result: 'unsealed'})
  }

  it('does not decrypt (or write anything) again when the Secret already matches the spec', async () => {
    await unsealed('steady', {password: 'hunter2'})
    decryptions = 0
    srv.clearRequests()
    const out = await reconciler.reconcile(get('steady'))
    expect(out).toMatchObject({result: 'unchanged', retry: 'no'})
    expect(decryptions).toBe(0)
    expect(srv.countRequests((r) => r.verb !== 'get')).toBe(0)
  })

  it('updates the Secret when the SealedSecret changes, and replaces an immutable one', async () => {
    await unsealed(
      'changing',
      {password: 'hunter2', user: 'admin'},
      {labels: {app: 'changing', tier: 'x'}, type: 'kubernetes.io/basic-auth'},
    )
    await apply('changing', {password: 'rotated', user: 'admin'}, {labels: {app: 'changing'}, type: 'kubernetes.io/basic-auth'})
    expect((await reconciler.reconcile(get('changing'))).result).toBe('unsealed')
    expect(value(secretOf('changing'), 'password')).toBe('rotated')
    expect(secretOf('changing')!.metadata.labels).toEqual({app: 'changing', [OWNED_LABEL]: 'sealedsecret'})
    expect(get('changing').status?.observedGeneration).toBe(2)

    await apply('frozen', {k: 'v1'}, {immutable: true})
    await reconciler.reconcile(get('frozen'))
    expect(secretOf('frozen')!.immutable).toBe(true)
    await apply('frozen', {k: 'v2'}, {immutable: true})
    const out = await reconciler.reconcile(get('frozen'))
    expect(out.result).toBe('unsealed')
    expect(value(secretOf('frozen'), 'k')).toBe('v2')
  })

  it('leaves the Secret as it was when the SealedSecret is tampered with: condition False, one Warning Event, no retry storm', async () => {
    await unsealed('tampered', {password: 'hunter2', user: 'admin'})
    const before = secretOf('tampered')!
    const cur = get('tampered')
    const tampered = {...cur, spec: {...cur.spec, encryptedData: {...cur.spec.encryptedData, password: cur.spec.encryptedData.user}}}
    srv.putObject(tampered as unknown as KubeObject)
    decryptions = 0
    const out = await reconciler.reconcile(get('tampered'))
    expect(out).toMatchObject({result: 'failed', reason: 'IntegrityFailed', retry: 'no'})
    expect(secretOf('tampered')!.data).toEqual(before.data)
    expect(secretOf('tampered')!.metadata.resourceVersion).toBe(before.metadata.resourceVersion)
    expect(synced('tampered')).toMatchObject({status: 'False', reason: 'IntegrityFailed'})
    expect(synced('tampered')!.message).toMatch(/password/)
    const warnings = () => events('tampered').filter((e) => e.type === 'Warning')
    expect(warnings()).toHaveLength(1)
    expect(warnings()[0].reason).toBe('IntegrityFailed')
    // The same broken spec again (a resync): no second decryption, no second Event.
    await reconciler.reconcile(get('tampered'))
    expect(decryptions).toBe(1)
    expect(warnings()).toHaveLength(1)
  })

  it('never overwrites a Secret it does not own, until the Secret opts in with kseal.dev/managed', async () => {
    srv.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'handmade', namespace: ns},
      data: {x: Buffer.from('mine').toString('base64')},
    })
    await apply('handmade', {x: 'sealed'})
    decryptions = 0
    const out = await reconciler.reconcile(get('handmade'))
    expect(out).toMatchObject({result: 'failed', reason: 'NotOwned', retry: 'backoff'})
    expect(decryptions).toBe(0)
    expect(value(secretOf('handmade'), 'x')).toBe('mine')
    expect(synced('handmade')).toMatchObject({status: 'False', reason: 'NotOwned'})
    expect(synced('handmade')!.message).toMatch(/not owned by this SealedSecret.*kseal\.dev\/managed=true/)
    expect(
      events('handmade')
        .filter((e) => e.type === 'Warning')
        .map((e) => e.reason),
    ).toEqual(['NotOwned'])

    const s = secretOf('handmade')!
    srv.putObject({...s, metadata: {...s.metadata, annotations: {[MANAGED_ANNOTATION]: 'true'}}})
    expect((await reconciler.reconcile(get('handmade'))).result).toBe('unsealed')
    const taken = secretOf('handmade')!
    expect(value(taken, 'x')).toBe('sealed')
    expect(taken.metadata.ownerReferences?.[0]).toMatchObject({kind: 'SealedSecret', name: 'handmade', controller: true})
    expect(synced('handmade')).toMatchObject({status: 'True', reason: 'Unsealed'})
  })

  it('reports NoKey (and retries) for a SealedSecret sealed to a key it does not hold', async () => {
    await apply('elsewhere', {a: 'b'}, {}, [teamRecipient()])
    decryptions = 0
    const out = await reconciler.reconcile(get('elsewhere'))
    expect(out).toMatchObject({result: 'failed', reason: 'NoKey', retry: 'backoff'})
    expect(decryptions).toBe(0)
    expect(synced('elsewhere')!.message).toMatch(/rsa:d5326737ee564566/)
    expect(secretOf('elsewhere')).toBeUndefined()
  })

  it('garbage collection removes the Secret with its SealedSecret', async () => {
    await unsealed('collected', {k: 'v'})
    expect(secretOf('collected')).toBeDefined()
    srv.deleteObject('kseal.dev/v1', 'SealedSecret', ns, 'collected')
    await until(() => secretOf('collected') === undefined, 'GC of the Secret')
  })
})

describe('leader election', () => {
  const elector = (identity: string, name: string) =>
    new LeaderElector({
      api,
      namespace: KEY_NS,
      name,
      identity,
      log: silentLogger,
      leaseDurationMs: 1000,
      renewDeadlineMs: 700,
      retryPeriodMs: 100,
    })

  it('elects exactly one leader; a released Lease is taken over at once', async () => {
    const a = elector('a', 'election-1')
    const b = elector('b', 'election-1')
    const leaders: string[] = []
    a.start({onStartedLeading: () => leaders.push('a'), onStoppedLeading: () => leaders.push('-a')})
    await until(() => a.isLeader, 'a to lead')
    b.start({onStartedLeading: () => leaders.push('b'), onStoppedLeading: () => leaders.push('-b')})
    await sleep(1300) // longer than a lease: a keeps renewing, so b never takes over
    expect(leaders).toEqual(['a'])
    expect(b.isLeader).toBe(false)
    const lease = srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'election-1')!
    expect(lease.spec).toMatchObject({holderIdentity: 'a', leaseDurationSeconds: 1, leaseTransitions: 0})
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)

    await a.stop()
    expect(srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'election-1')!.spec.holderIdentity).toBe('')
    const released = srv.requests.length
    await until(() => b.isLeader, 'b to take over')
    // b claims the released Lease on its next look at it, not after waiting out a lease duration
    // (which would take some ten looks, one per 100 ms retry period).
    const looks = srv.requests.slice(released).filter((r) => r.resource === 'leases' && r.name === 'election-1' && r.verb === 'get')
    expect(looks.length).toBeLessThanOrEqual(1)
    expect(srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'election-1')!.spec).toMatchObject({
      holderIdentity: 'b',
      leaseTransitions: 1,
    })
    await b.stop()
  })

  it('takes over a Lease whose holder stopped renewing only after it expires', async () => {
    const now = new Date()
    srv.putObject({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {name: 'election-2', namespace: KEY_NS},
      spec: {
        holderIdentity: 'crashed',
        leaseDurationSeconds: 1,
        renewTime: now.toISOString().replace('Z', '000Z'),
        acquireTime: now.toISOString().replace('Z', '000Z'),
      },
    })
    const c = elector('c', 'election-2')
    const t0 = Date.now()
    c.start({onStartedLeading: () => undefined, onStoppedLeading: () => undefined})
    await until(() => c.isLeader, 'c to take over', 3000)
    // A lower bound: waiting out the lease is the behaviour, and a slow machine only waits longer.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000)
    await c.stop()
  })

  it('steps down when it cannot renew within the renew deadline', async () => {
    const d = elector('d', 'election-3')
    let stopped = false
    d.start({onStartedLeading: () => undefined, onStoppedLeading: () => (stopped = true)})
    await until(() => d.isLeader, 'd to lead')
    srv.failNext(1000, {status: 503, match: (r) => r.resource === 'leases'})
    try {
      await until(() => stopped, 'd to step down', 3000)
      expect(d.isLeader).toBe(false)
    } finally {
      srv.clearFaults()
      await d.stop()
    }
  })
})

describe('reflector', () => {
  it('survives dropped watches, 410 Gone and 5xx bursts without losing an event', async () => {
    const ns = 'team-a'
    const seen = new Map<string, string>()
    const deleted: string[] = []
    const sel = 'reflector-test=yes' // Secrets of this test only
    const r = new Reflector<Secret>(
      {
        list: () => api.listSecrets(ns, sel),
        watch: (rv, onEvent, done) =>
          api.watch(`/api/v1/namespaces/${ns}/secrets`, {resourceVersion: rv, labelSelector: sel}, onEvent, done),
      },
      {
        upsert: (s) => seen.set(s.metadata!.name!, Buffer.from(s.data?.v ?? '', 'base64').toString()),
        delete: (s) => deleted.push(s.metadata!.name!),
      },
      {name: 'test', log: silentLogger, baseBackoffMs: 10, maxBackoffMs: 50},
    )
    const put = (name: string, v: string) =>
      srv.putObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {name, namespace: ns, labels: {'reflector-test': 'yes'}},
        data: {v: Buffer.from(v).toString('base64')},
      })
    put('r1', '1')
    r.start()
    await until(() => r.synced && seen.get('r1') === '1', 'initial list')
    await srv.waitForWatches(1, {resource: 'secrets', namespace: ns})

    srv.dropWatches({resource: 'secrets'})
    put('r2', '2')
    await until(() => seen.get('r2') === '2', 'event after a dropped watch')

    // The watch drops and history is compacted: resuming gives 410 and the reflector lists again.
    const relists = r.relists
    srv.dropWatches({resource: 'secrets'})
    put('r3', '3')
    srv.deleteObject('v1', 'Secret', ns, 'r1')
    srv.compact({resource: 'secrets'})
    await until(() => seen.get('r3') === '3' && deleted.includes('r1'), 'state after 410 Gone')
    expect(r.relists).toBeGreaterThan(relists)

    // A burst of 5xx on every secrets request while the watch is down.
    srv.failNext(6, {status: 500, match: (q) => q.resource === 'secrets'})
    srv.dropWatches({resource: 'secrets'})
    put('r4', '4')
    await until(() => seen.get('r4') === '4', 'event after a 5xx burst', 8000)
    expect(r.cache.has(`${ns}/r1`)).toBe(false)
    await r.stop()
  })

  it('lists in pages of 500, holding only reduced copies, and lists again whole when a continue token expires', async () => {
    const ns = 'paged'
    srv.putObject({apiVersion: 'v1', kind: 'Namespace', metadata: {name: ns}})
    const sel = 'paged-test=yes'
    const put = (name: string) =>
      srv.putObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {name, namespace: ns, labels: {'paged-test': 'yes'}},
        data: {v: Buffer.from('x'.repeat(64)).toString('base64')},
      })
    for (let i = 0; i < 1203; i++) put(`s-${String(i).padStart(4, '0')}`)
    // Every object reached a handler reduced: the transform saw the page's raw objects, the handlers and cache never did.
    const reflector = (onPage?: (page: ListPage | undefined) => void) =>
      new Reflector<Secret>(
        {
          list: (page) => (onPage?.(page), api.listSecrets(ns, sel, undefined, page)),
          watch: (rv, onEvent, done) =>
            api.watch(`/api/v1/namespaces/${ns}/secrets`, {resourceVersion: rv, labelSelector: sel}, onEvent, done),
        },
        {upsert: (s) => expect(s.data).toBeUndefined(), delete: () => undefined},
        {name: 'paged', log: silentLogger, transform: (s) => ({metadata: s.metadata})},
      )
    const lists = () =>
      srv.requests.filter((q) => q.verb === 'list' && q.namespace === ns).map((q) => [q.query.limit, Boolean(q.query.continue)])

    const r = reflector()
    r.start()
    await r.firstList
    expect(r.cache.size).toBe(1203)
    expect([...r.cache.values()].every((s) => s.data === undefined)).toBe(true)
    expect(lists()).toEqual([
      ['500', false],
      ['500', true],
      ['500', true],
    ])
    await r.stop()

    // Between the first and the second page, a write and a compaction: the token is too old (410),
    // and the reflector takes the list again in one piece, the new object in it.
    srv.clearRequests()
    let compacted = false
    const r2 = reflector((page) => {
      if (page?.continue && !compacted) {
        compacted = true
        put('s-late')
        srv.compact({resource: 'secrets'})
      }
    })
    r2.start()
    await r2.firstList
    expect(compacted).toBe(true)
    expect(r2.cache.size).toBe(1204)
    expect(r2.cache.has(`${ns}/s-late`)).toBe(true)
    expect(
      srv.requests.filter((q) => q.verb === 'list' && q.namespace === ns).map((q) => [q.query.limit, Boolean(q.query.continue), q.status]),
    ).toEqual([
      ['500', false, 200],
      ['500', true, 410],
      [undefined, false, 200],
    ])
    await r2.stop()
  })
})

describe('the controller, wired in process', () => {
  it('is not ready and serves no certificate until it leads and has a key; then renews on schedule and serves the newest', async () => {
    const ns = 'wiring'
    const other = new LeaderElector({
      api,
      namespace: ns,
      name: 'kseal-controller',
      identity: 'other',
      log: silentLogger,
      leaseDurationMs: 1000,
      renewDeadlineMs: 700,
      retryPeriodMs: 100,
    })
    other.start({onStartedLeading: () => undefined, onStoppedLeading: () => undefined})
    await until(() => other.isLeader, 'the other replica to lead')
    const c = await startController(
      {
        ...DEFAULTS,
        namespaces: [],
        keyNamespace: ns,
        keyRenewPeriodMs: 1500,
        keyBits: 2048,
        listen: '127.0.0.1:0',
        leaseName: 'kseal-controller',
        leaseDurationMs: 1000,
        renewDeadlineMs: 700,
        retryPeriodMs: 100,
        identity: 'wired',
        workers: 2,
        resyncPeriodMs: 0,
      },
      {api, log: silentLogger},
    )
    const get = async (p: string) => {
      const r = await fetch(`http://${c.address}${p}`)
      return {status: r.status, text: await r.text()}
    }
    try {
      expect((await get('/healthz')).status).toBe(200)
      await sleep(300)
      const ready = await get('/readyz')
      expect(ready.status).toBe(503)
      expect(ready.text).toMatch(/no sealing key loaded/)
      expect((await get('/v1/cert.pem')).status).toBe(503)
      expect(sample((await get('/metrics')).text, 'kseal_leader')).toBe(0)
      expect((await fetch(`http://${c.address}/metrics`, {method: 'POST'})).status).toBe(405)
      expect((await get('/nope')).status).toBe(404)

      await other.stop() // releases the Lease: this controller leads, and makes the first key
      await until(async () => (await get('/readyz')).status === 200, 'readiness')
      const first = (await get('/v1/cert.pem')).text
      expect(first).toMatch(/^-----BEGIN CERTIFICATE-----/)
      expect(sample((await get('/metrics')).text, 'kseal_leader')).toBe(1)
      await until(() => c.keys.size === 2, 'the renewed key', 5000)
      const second = (await get('/v1/cert.pem')).text
      expect(second).not.toBe(first)
      expect(second).toBe(c.keys.newest()!.certPem)
      const asked = Date.now()
      const m = (await get('/metrics')).text
      const answered = Date.now()
      expect(sample(m, 'kseal_keys')).toBe(2)
      expect(sample(m, 'kseal_keys_generated_total')).toBe(2)
      // The age is the newest key's (the second: a third may have come since), read while /metrics was answering.
      const newest = c.keys.all()[1]!.created.getTime()
      expect(sample(m, 'kseal_key_age_seconds')).toBeGreaterThanOrEqual((asked - newest) / 1000)
      expect(sample(m, 'kseal_key_age_seconds')).toBeLessThanOrEqual((answered - newest) / 1000)
    } finally {
      await c.stop()
      await other.stop()
    }
    expect(srv.getObject('coordination.k8s.io/v1', 'Lease', ns, 'kseal-controller')!.spec.holderIdentity).toBe('')
  })

  it('watches only --namespaces, uses a pre-created key without generating one, and resyncs a Secret deleted by hand', async () => {
    const keyNs = 'ns-keys'
    srv.putObject(fixtureKeySecret('other', new Date(), keyNs) as unknown as KubeObject)
    const mk = async (ns: string) =>
      srv.putObject(
        (await sealSecret(
          {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'scoped', namespace: ns}, stringData: {k: ns}},
          [recipient(OTHER_CERT)],
          'strict',
        )) as unknown as KubeObject,
      )
    await mk('team-a')
    await mk('kube-system')
    srv.clearRequests()
    const c = await startController(
      {
        ...DEFAULTS,
        namespaces: ['team-a'],
        keyNamespace: keyNs,
        keyBits: 2048,
        listen: '127.0.0.1:0',
        leaderElect: false,
        identity: 'scoped',
        workers: 2,
        resyncPeriodMs: 300,
      },
      {api, log: silentLogger},
    )
    try {
      await until(() => srv.getObject('v1', 'Secret', 'team-a', 'scoped'), 'the Secret in the watched namespace')
      expect(await c.metrics.keysGenerated.get()).toBe(0)
      expect(c.keys.size).toBe(1)
      await sleep(400)
      expect(srv.getObject('v1', 'Secret', 'kube-system', 'scoped')).toBeUndefined()
      expect(srv.countRequests({resource: 'sealedsecrets', verb: 'list', namespace: 'team-a'})).toBeGreaterThan(0)
      expect(srv.countRequests((r) => r.resource === 'sealedsecrets' && r.verb === 'list' && r.namespace === undefined)).toBe(0)
      srv.deleteObject('v1', 'Secret', 'team-a', 'scoped')
      await until(() => srv.getObject('v1', 'Secret', 'team-a', 'scoped'), 'the Secret restored by the resync', 3000)
      expect(Buffer.from(srv.getObject('v1', 'Secret', 'team-a', 'scoped')!.data.k, 'base64').toString()).toBe('team-a')
    } finally {
      await c.stop()
    }
  })
})
