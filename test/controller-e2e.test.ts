/**
 * `kseal controller` end to end: real controller processes (the built CLI) with a kubeconfig that
 * points at the Kubernetes API test server; `kseal cert` and `kseal seal --controller-*` through
 * the API server's service proxy. Key generation in the cluster, sealing, unsealing, updates,
 * tampering, ownership, garbage collection, restarts without decryption, leader election and
 * failover, graceful shutdown, and API faults.
 */
import {describe, it, expect, beforeAll, afterAll, afterEach} from '@jest/globals'
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import YAML from 'yaml'
import {RsaRecipient} from '../keys/rsa.js'
import {keySecret, TRUST_SECRET, trustRootOf} from '../src/sealed/sealing-key.js'
import {sealSecret} from '../src/sealed/seal.js'
import {kseal, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'
import {namespaceClient, type Replica, startReplica as startReplicaProcess, stopReplica} from './support/controller.js'
import {sleep, until} from './support/until.js'
import {startK8sApiServer, type K8sApiServer, type KubeObject} from './support/k8s-api-server.js'
import {startServiceProxy, type ServiceProxy} from './support/service-proxy.js'

const KEY_NS = 'kseal-system'
const NS = 'default'

let srv: K8sApiServer
let proxy: ServiceProxy
let dir: string
let kubeconfig: string
let proxyKubeconfig: string
const procs: Replica[] = []
/** Every plaintext value the tests seal: none may ever appear in a log line. */
const SECRET_VALUES = ['e2e-s3cret-one', 'e2e-s3cret-two', 'e2e-fixed-value', 'e2e-restart', 'e2e-failover', 'e2e-fault']

async function startReplica(name: string, extra: string[] = []): Promise<Replica> {
  const rep = await startReplicaProcess({name, kubeconfig, keyNamespace: KEY_NS, extra})
  procs.push(rep)
  return rep
}

const {call: api, sealedPath, sealedObj, secretObj, applySealed} = namespaceClient(() => srv, NS)
const value = (s: KubeObject | undefined, k: string) =>
  s?.data?.[k] === undefined ? undefined : Buffer.from(s.data[k], 'base64').toString()
const synced = (name: string) => (sealedObj(name)?.status?.conditions ?? []).find((c: KubeObject) => c.type === 'Synced')
const events = (name: string) => srv.listObjects('v1', 'Event', NS).filter((e) => e.involvedObject?.name === name)

const secretYaml = (name: string, values: Record<string, string>, labels: Record<string, string> = {app: name}) =>
  YAML.stringify({apiVersion: 'v1', kind: 'Secret', metadata: {name, namespace: NS, labels}, type: 'Opaque', stringData: values})

/** `kseal seal` through the service proxy: the certificate comes from the running controller. */
async function seal(name: string, values: Record<string, string>, labels?: Record<string, string>): Promise<KubeObject> {
  const r = await kseal(
    ['seal', '--controller-namespace', KEY_NS, '--controller-name', 'kseal-controller', '--kubeconfig', proxyKubeconfig, '-o', 'json'],
    {input: secretYaml(name, values, labels)},
  )
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  return JSON.parse(r.stdout) as KubeObject
}

/** Points the controller's Service (through the proxy) at a replica, as its Endpoints would. */
function routeService(rep: Replica): void {
  proxy.register(KEY_NS, 'kseal-controller', `http://127.0.0.1:${rep.port}`)
}

async function leaderOf(reps: Replica[]): Promise<Replica[]> {
  const live = reps.filter((r) => r.child.exitCode === null && r.child.signalCode === null)
  const flags = await Promise.all(live.map((r) => r.metric('kseal_leader').catch(() => 0)))
  return live.filter((_, i) => flags[i] === 1)
}

function checkLogs(rep: Replica): void {
  for (const line of rep.lines) {
    const rec = JSON.parse(line) as Record<string, unknown>
    expect(typeof rec.time).toBe('string')
    expect(['debug', 'info', 'warn', 'error']).toContain(rec.level)
    expect(typeof rec.msg).toBe('string')
    for (const v of SECRET_VALUES) expect(line).not.toContain(v)
  }
}

const stop = stopReplica

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', 'kube-system', KEY_NS]})
  proxy = await startServiceProxy(srv)
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-ctl-'))
  kubeconfig = path.join(dir, 'kubeconfig')
  proxyKubeconfig = path.join(dir, 'proxy-kubeconfig')
  await srv.writeKubeconfig(kubeconfig)
  await proxy.writeKubeconfig(proxyKubeconfig)
})

afterEach(() => {
  for (const p of procs) checkLogs(p)
})

afterAll(async () => {
  if (process.env.KSEAL_E2E_LOGS) for (const p of procs) writeFileSync(`${process.env.KSEAL_E2E_LOGS}/${p.name}.log`, p.lines.join('\n'))
  await Promise.all(procs.map((p) => stop(p, 'SIGKILL')))
  await proxy?.close()
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

describe('kseal controller, end to end', () => {
  let first: Replica | undefined

  /**
   * The replica that leads, shared by the tests in order; a test run alone (or after a failure) starts
   * one here, so each test sets up what it needs.
   */
  async function leading(): Promise<Replica> {
    if (!first || first.child.exitCode !== null || first.child.signalCode !== null)
      first = await startReplica(`replica-${procs.length + 1}`)
    const rep = first
    routeService(rep)
    await until(async () => (await rep.get('/readyz')).status === 200 && (await rep.metric('kseal_leader')) === 1, 'a ready leader')
    return rep
  }

  it('generates its key in the cluster, serves it (kseal cert), and unseals what kseal seal made: bytes, owner, template, status, Event', async () => {
    first = await startReplica('replica-1')
    const rep = first
    expect((await rep.get('/healthz')).status).toBe(200)
    await until(async () => (await rep.get('/readyz')).status === 200, 'readiness')
    const keys = srv.listObjects('v1', 'Secret', KEY_NS).filter((s) => s.metadata.labels?.['kseal.dev/sealing-key'] === 'active')
    expect(keys).toHaveLength(1)
    expect(keys[0].type).toBe('kubernetes.io/tls')
    expect(keys[0].metadata.annotations['kseal.dev/created-at']).toMatch(/^\d{4}-/)
    const keyCert = Buffer.from(keys[0].data['tls.crt'], 'base64').toString()

    const served = await rep.get('/v1/cert.pem')
    expect(served.status).toBe(200)
    expect(served.text).toBe(keyCert)
    routeService(rep)
    const cert = await kseal([
      'cert',
      '--controller-namespace',
      KEY_NS,
      '--controller-name',
      'kseal-controller',
      '--kubeconfig',
      proxyKubeconfig,
    ])
    expect(cert).toMatchObject({code: 0, stderr: ''})
    expect(cert.stdout).toBe(keyCert)
    expect(proxy.proxied).toContain(`${KEY_NS}/kseal-controller/v1/cert.pem`)
    const direct = await kseal(['cert', '--from-cluster-secret', '--controller-namespace', KEY_NS, '--kubeconfig', kubeconfig])
    expect(direct.stdout).toBe(keyCert)
    const missing = await kseal(['cert', '--controller-namespace', KEY_NS, '--controller-name', 'nope', '--kubeconfig', proxyKubeconfig])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(
      /^kseal: cannot fetch the certificate from the controller kseal-system\/nope: HTTP 404: services "nope" not found/,
    )
    expect(missing.stderr.trim().split('\n')).toHaveLength(1)

    const sealed = await seal('db', {password: 'e2e-s3cret-one', user: 'admin'}, {app: 'db', tier: 'backend'})
    expect(sealed).toMatchObject({apiVersion: 'kseal.dev/v1', kind: 'SealedSecret'})
    expect(JSON.stringify(sealed)).not.toContain('e2e-s3cret-one')
    const created = await applySealed(sealed)
    const secret = await until(() => secretObj('db'), 'the Secret')
    expect(value(secret, 'password')).toBe('e2e-s3cret-one')
    expect(value(secret, 'user')).toBe('admin')
    expect(secret.metadata.labels).toEqual({app: 'db', tier: 'backend', 'kseal.dev/owned-by': 'sealedsecret'})
    expect(secret.metadata.ownerReferences).toEqual([
      {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: 'db', uid: created.metadata.uid, controller: true},
    ])
    await until(() => synced('db')?.status === 'True', 'Synced=True')
    expect(sealedObj('db')!.status.observedGeneration).toBe(1)
    await until(() => events('db').length, 'the Event')
    expect(events('db').map((e) => [e.type, e.reason])).toEqual([['Normal', 'Unsealed']])
    expect(await rep.metric('kseal_decryptions_total')).toBe(1)
    expect(await rep.metric('kseal_keys')).toBe(1)
  })

  it('updates the Secret when the SealedSecret changes; a tampered one leaves it alone with Synced=False and a Warning', async () => {
    await leading()
    await applySealed(await seal('changing', {password: 'e2e-s3cret-one', user: 'admin'}, {app: 'changing', tier: 'backend'}))
    await until(() => synced('changing')?.status === 'True', 'the first version unsealed')
    await applySealed(await seal('changing', {password: 'e2e-s3cret-two', user: 'admin'}, {app: 'changing'}))
    await until(() => value(secretObj('changing'), 'password') === 'e2e-s3cret-two', 'the updated Secret')
    expect(secretObj('changing')!.metadata.labels).toEqual({app: 'changing', 'kseal.dev/owned-by': 'sealedsecret'})
    await until(() => sealedObj('changing')!.status?.observedGeneration === 2, 'observedGeneration 2')

    const before = secretObj('changing')!
    const cur = sealedObj('changing')!
    // Swap two values' ciphertexts: each is bound to its key, and the MAC covers them all.
    const ed = cur.spec.encryptedData
    await applySealed({...cur, spec: {...cur.spec, encryptedData: {...ed, password: ed.user, user: ed.password}}})
    await until(() => synced('changing')?.status === 'False', 'Synced=False')
    expect(synced('changing')!.reason).toMatch(/IntegrityFailed|DecryptFailed/)
    expect(sealedObj('changing')!.status.observedGeneration).toBe(3)
    await until(() => events('changing').some((e) => e.type === 'Warning'), 'a Warning Event')
    expect(secretObj('changing')!.data).toEqual(before.data)
    expect(secretObj('changing')!.metadata.resourceVersion).toBe(before.metadata.resourceVersion)

    // Fixed again: back to True.
    await applySealed(await seal('changing', {password: 'e2e-s3cret-two', user: 'admin'}, {app: 'changing'}))
    await until(() => synced('changing')?.status === 'True' && sealedObj('changing')!.status.observedGeneration === 4, 'Synced=True again')
  })

  it('leaves a Secret it does not own alone (NotOwned), and garbage collection follows a deleted SealedSecret', async () => {
    await leading()
    await api('POST', `/api/v1/namespaces/${NS}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'handmade'},
      stringData: {x: 'hand'},
    })
    await applySealed(await seal('handmade', {x: 'e2e-fixed-value'}))
    await until(() => synced('handmade')?.reason === 'NotOwned', 'NotOwned')
    expect(synced('handmade')!.status).toBe('False')
    expect(value(secretObj('handmade'), 'x')).toBe('hand')
    expect(
      events('handmade')
        .filter((e) => e.type === 'Warning')
        .map((e) => e.reason),
    ).toContain('NotOwned')

    await applySealed(await seal('temp', {t: 'e2e-fixed-value'}))
    await until(() => secretObj('temp'), 'the temp Secret')
    await api('DELETE', sealedPath('temp'))
    await until(() => !secretObj('temp'), 'garbage collection of the Secret')
  })

  it('a SealedSecret sealed to a key it lacks waits (NoKey) and opens as soon as that key is restored', async () => {
    const rep = await leading()
    const sealed = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'restored', namespace: NS}, stringData: {k: 'e2e-fixed-value'}},
      [new RsaRecipient(new crypto.X509Certificate(readFileSync(TEAM_CERT, 'utf8')).publicKey, 'team')],
      'strict',
    )
    await applySealed(sealed as unknown as KubeObject)
    await until(() => synced('restored')?.reason === 'NoKey', 'NoKey')
    expect(synced('restored')!.message).toMatch(/sealed for rsa:d5326737ee564566/)
    await sleep(1500) // let the retry backoff grow
    // An operator restores an old key from backup: older than the current one, so it does not become the sealing key.
    const keyPem = readFileSync(TEAM_KEY, 'utf8')
    const certPem = readFileSync(TEAM_CERT, 'utf8')
    const restoredAt = Date.now()
    const root = trustRootOf(srv.getObject('v1', 'Secret', KEY_NS, TRUST_SECRET) as never)!
    await api(
      'POST',
      `/api/v1/namespaces/${KEY_NS}/secrets`,
      keySecret(KEY_NS, {kid: TEAM_KID, keyPem, certPem}, new Date('2020-01-01T00:00:00Z'), root),
    )
    await until(() => value(secretObj('restored'), 'k') === 'e2e-fixed-value', 'the Secret after the key came back')
    expect(Date.now() - restoredAt).toBeLessThan(1000)
    expect(await rep.metric('kseal_keys')).toBe(2)
    expect((await rep.get('/v1/cert.pem')).text).not.toBe(certPem)
  })

  it('shuts down on SIGTERM, releasing the Lease; a restart with nothing changed decrypts nothing', async () => {
    const rep = await leading()
    await applySealed(await seal('restart', {v: 'e2e-restart'}))
    await until(() => synced('restart')?.status === 'True', 'a SealedSecret unsealed before the restart')
    expect(await stop(rep)).toBe(0)
    expect(srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'kseal-controller')!.spec.holderIdentity).toBe('')
    const total = srv.listObjects('kseal.dev/v1', 'SealedSecret', NS).length
    srv.clearRequests()
    const again = await startReplica('replica-1b')
    routeService(again)
    await until(async () => (await again.metric('kseal_leader')) === 1, 'leadership')
    await until(
      async () =>
        (await again.metric('kseal_reconciles_total{result="unchanged"}')) +
          (await again.metric('kseal_reconciles_total{result="failed"}')) >=
        total,
      'every SealedSecret reconciled',
    )
    expect(await again.metric('kseal_decryptions_total')).toBe(0)
    expect(await again.metric('kseal_reconciles_total{result="unsealed"}')).toBe(0)
    expect(await again.metric('kseal_keys_generated_total')).toBe(0)
    expect(srv.countRequests({resource: 'secrets', verb: 'update'}) + srv.countRequests({resource: 'secrets', verb: 'create'})).toBe(0)
    first = again
  })

  it('two replicas: exactly one leads and reconciles; SIGKILL → the other takes over when the Lease expires; SIGTERM → at once', async () => {
    const one = await leading()
    const second = await startReplica('replica-2')
    await until(async () => (await second.get('/readyz')).status === 200, 'the standby ready')
    expect(await leaderOf([one, second])).toEqual([one])
    expect((await second.get('/v1/cert.pem')).text).toBe((await one.get('/v1/cert.pem')).text)
    await applySealed(await seal('failover-1', {v: 'e2e-failover'}))
    await until(() => secretObj('failover-1'), 'the Secret from the leader')
    expect(await second.metric('kseal_reconciles_total{result="unsealed"}')).toBe(0)
    expect(await second.metric('kseal_decryptions_total')).toBe(0)

    const killedAt = Date.now()
    await stop(one, 'SIGKILL')
    routeService(second) // the Service's endpoints follow the live pods
    await until(async () => (await leaderOf([second])).length === 1, 'takeover after expiry', 8000)
    const takeover = Date.now() - killedAt
    expect(takeover).toBeGreaterThanOrEqual(1000) // it waited for the 2 s lease (less the time since the last renew)
    await applySealed(await seal('failover-2', {v: 'e2e-failover'}))
    await until(() => secretObj('failover-2'), 'the Secret from the new leader')
    expect(value(secretObj('failover-2'), 'v')).toBe('e2e-failover')
    expect(await second.metric('kseal_decryptions_total')).toBe(1) // only the new one: the rest were up to date

    const third = await startReplica('replica-3')
    await until(async () => (await third.get('/readyz')).status === 200, 'the new standby ready')
    await sleep(300)
    expect(await leaderOf([second, third])).toEqual([second])
    expect(await stop(second)).toBe(0)
    const released = srv.requests.length
    routeService(third)
    await until(async () => (await leaderOf([third])).length === 1, 'fast takeover after release', 4000)
    // The new leader claims the released Lease on its next look at it, not after waiting out the 2 s
    // lease (some ten looks at its 200 ms retry period).
    expect(srv.requests.slice(released).filter((r) => r.resource === 'leases' && r.verb === 'get').length).toBeLessThanOrEqual(2)
    expect(srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'kseal-controller')!.spec.holderIdentity).toBe('replica-3')
    first = third
  })

  it('converges through 5xx bursts, dropped watches and 410 Gone, losing nothing', async () => {
    const rep = await leading()
    await applySealed(await seal('doomed', {v: 'e2e-fault'}))
    await until(() => secretObj('doomed'), 'the Secret to be collected')
    const names = Array.from({length: 6}, (_, i) => `fault-${i}`)
    const sealedObjs = await Promise.all(names.map((n) => seal(n, {v: 'e2e-fault', id: n})))
    // Faults hit the controller's calls only (the test's own writes to SealedSecrets go through).
    // 1. A burst of 500s on the reconcile path: reads and writes of Secrets, status patches, Events.
    srv.failNext(10, {
      status: 500,
      match: (r) => r.resource === 'secrets' || r.resource === 'events' || (r.resource === 'sealedsecrets' && r.subresource === 'status'),
    })
    await applySealed(sealedObjs[0])
    await applySealed(sealedObjs[1])
    // 2. The watch is cut: it resumes from the last resourceVersion.
    srv.dropWatches({resource: 'sealedsecrets'})
    await applySealed(sealedObjs[2])
    // 3. Cut again, and the API answers 503 to list and watch a few times.
    srv.failNext(3, {status: 503, match: (r) => r.resource === 'sealedsecrets' && (r.verb === 'list' || r.verb === 'watch')})
    srv.dropWatches({resource: 'sealedsecrets'})
    await applySealed(sealedObjs[3])
    // 4. History compacted while a deletion and two creations happen: resuming gives 410 Gone, the controller lists again.
    await until(() => secretObj('fault-3'), 'fault-3 before the compaction', 15_000)
    srv.dropWatches({resource: 'sealedsecrets'})
    await api('DELETE', sealedPath('doomed'))
    await applySealed(sealedObjs[4])
    srv.compact({resource: 'sealedsecrets'})
    await applySealed(sealedObjs[5])
    for (const n of names) {
      await until(() => value(secretObj(n), 'id') === n && synced(n)?.status === 'True', `${n} unsealed`, 15_000)
    }
    await until(() => !secretObj('doomed'), 'garbage collection of the deleted one')
    expect(await rep.metric('kseal_api_retries_total')).toBeGreaterThan(0)
    expect(await rep.metric('kseal_leader')).toBe(1)
  })

  it('refuses bad flags with a usage error', async () => {
    const r = await kseal(['controller', '--kubeconfig', kubeconfig, '--key-renew-period', 'monthly'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--key-renew-period "monthly": expected a duration/)
    const l = await kseal(['controller', '--kubeconfig', kubeconfig, '--lease-duration', '1s', '--renew-deadline', '2s'])
    expect(l.code).toBe(2)
    const both = await kseal(['seal', '--cert', 'x.crt', '--controller-namespace', KEY_NS], {input: secretYaml('x', {a: 'b'})})
    expect(both.code).toBe(2)
    expect(both.stderr).toMatch(/alternatives/)
    const k = await kseal(['controller', '--kubeconfig', path.join(dir, 'missing')])
    expect(k.code).toBe(2)
    expect(k.stderr).toMatch(/cannot read the kubeconfig/)
  })
})
