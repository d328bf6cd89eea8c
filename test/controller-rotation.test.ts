/**
 * Rotating the unsealer's keys. In process with an injected clock: renewal on schedule, and a
 * --key-cutoff that falls due (the certificate is never served for a key older than it). End to end
 * with real controller processes against the Kubernetes API test server: on-demand renewal by
 * SIGUSR1 to the leader and to a standby (through the Lease), old keys still opening old
 * SealedSecrets while new seals use the new key, /v1/keys and `kseal keys --controller`, `kseal
 * reseal` through the service proxy and --controller-url (the Secret's data unchanged), /v1/rotate's
 * refusals (422, 400, 413) without plaintext in answers or logs, the metrics, and --key-cutoff at start.
 */
import {describe, it, expect, beforeAll, afterAll, afterEach} from '@jest/globals'
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import YAML from 'yaml'
import {RsaRecipient} from '../keys/rsa.js'
import {KEY_LABEL} from '../src/sealed/sealing-key.js'
import {clusterApi, type ClusterApi} from '../src/kube/api.js'
import {RENEW_REQUEST_ANNOTATION} from '../src/controller/runtime/leader.js'
import {silentLogger} from './support/log.js'
import {startController} from '../src/controller/controller.js'
import {type ControllerOptions, DEFAULTS} from '../src/controller/options.js'
import {sample} from './support/metrics.js'
import {controllerResealer} from '../src/ops/reseal.js'
import {sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject} from '../src/sealed/types.js'
import {recipientKids, unsealSealedSecret} from '../src/sealed/unseal.js'
import {kseal, TEAM_CERT} from './support/cli.js'
import {namespaceClient, type Replica, startReplica as startReplicaProcess, stopReplica} from './support/controller.js'
import {sleep, until} from './support/until.js'
import {startK8sApiServer, type K8sApiServer, type KubeObject} from './support/k8s-api-server.js'
import {startServiceProxy, type ServiceProxy} from './support/service-proxy.js'

const KEY_NS = 'kseal-system'
const NS = 'default'
/** Every plaintext value sealed here: none may appear in a log line, an HTTP answer or a resealed file. */
const SECRET_VALUES = ['rot-s3cret-old', 'rot-s3cret-new', 'rot-s3cret-late', 'rot-plain-value', 'rot-s3cret-tamper']

let srv: K8sApiServer
let proxy: ServiceProxy
let api: ClusterApi
let dir: string
let kubeconfig: string
let proxyKubeconfig: string

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', KEY_NS, 'clock']})
  proxy = await startServiceProxy(srv)
  api = await clusterApi(srv.kubeConfig(), {baseMs: 5, maxMs: 20})
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-rot-'))
  kubeconfig = path.join(dir, 'kubeconfig')
  proxyKubeconfig = path.join(dir, 'proxy-kubeconfig')
  await srv.writeKubeconfig(kubeconfig)
  await proxy.writeKubeconfig(proxyKubeconfig)
})

afterAll(async () => {
  await Promise.all(procs.map((p) => stop(p, 'SIGKILL')))
  await proxy?.close()
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

/** `f`, run on the first call only; later calls get the same promise. */
function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined
  return () => (p ??= f())
}

const keySecrets = (ns: string) => srv.listObjects('v1', 'Secret', ns).filter((s) => s.metadata.labels?.[KEY_LABEL] === 'active')
const certKid = (pem: string) => new RsaRecipient(new crypto.X509Certificate(pem).publicKey, 'x').kid
const recipientFor = (pem: string) => new RsaRecipient(new crypto.X509Certificate(pem).publicKey, 'controller')

/** Options of an in-process controller, alone, with its keys in namespace `ns`; `extra` on top. */
const inProcess = (ns: string, identity: string, extra: Partial<ControllerOptions> = {}): ControllerOptions => ({
  ...DEFAULTS,
  namespaces: [ns],
  keyNamespace: ns,
  keyBits: 2048,
  listen: '127.0.0.1:0',
  leaderElect: false,
  identity,
  workers: 1,
  resyncPeriodMs: 0,
  ...extra,
})

describe('key schedule and cutoff, in process with an injected clock', () => {
  it('renews on schedule when the clock passes the renew period; old keys still open; metrics count the trigger', async () => {
    const ns = 'clock'
    let now = new Date('2026-01-01T00:00:00Z')
    const c = await startController(inProcess(ns, 'clock', {keyRenewPeriodMs: 30 * 86_400_000}), {api, log: silentLogger, now: () => now})
    const get = async (p: string) => {
      const r = await fetch(`http://${c.address}${p}`)
      return {status: r.status, text: await r.text()}
    }
    try {
      await until(() => c.keys.size === 1, 'the first key')
      const first = c.keys.newest()!
      const oldSealed = await sealSecret(
        {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'clocked', namespace: ns}, stringData: {v: 'rot-s3cret-old'}},
        [recipientFor((await get('/v1/cert.pem')).text)],
        'strict',
      )
      now = new Date('2026-01-30T23:59:59Z') // not yet due
      await c.checkKeys()
      expect(c.keys.size).toBe(1)
      now = new Date('2026-01-31T00:00:01Z') // 30 days and a second
      await c.checkKeys()
      expect(c.keys.size).toBe(2)
      const second = c.keys.newest()!
      expect(second.kid).not.toBe(first.kid)
      expect(second.created.toISOString()).toBe('2026-01-31T00:00:01.000Z')
      expect(certKid((await get('/v1/cert.pem')).text)).toBe(second.kid)
      const m = (await get('/metrics')).text
      expect(sample(m, 'kseal_key_renewals_total{trigger="schedule"}')).toBe(1)
      expect(sample(m, 'kseal_keys_generated_total')).toBe(2)
      expect(sample(m, 'kseal_key_age_seconds')).toBe(0)
      // The old key still opens what was sealed to it.
      const r = await unsealSealedSecret(oldSealed, c.keys.unwrap)
      expect(r.kids).toEqual([first.kid])
      expect(Buffer.from((r.secret.data as Record<string, string>).v, 'base64').toString()).toBe('rot-s3cret-old')
      const keys = JSON.parse((await get('/v1/keys')).text)
      expect(keys).toEqual([
        {kid: first.kid, created: '2026-01-01T00:00:00.000Z', active: false, retired: false, sealedSecrets: 0},
        {kid: second.kid, created: '2026-01-31T00:00:01.000Z', active: true, retired: false, sealedSecrets: 0},
      ])
    } finally {
      await c.stop()
    }
  })

  it('a --key-cutoff that falls due retires the newest key at once (no certificate) and the leader makes a newer one', async () => {
    const ns = 'cutoff'
    let now = new Date('2026-02-10T00:00:00Z')
    const cutoff = new Date('2026-02-10T12:00:00Z')
    // A key made before the cutoff, by a controller of its own.
    const earlier = await startController(inProcess(ns, 'before-cutoff'), {
      api,
      log: silentLogger,
      now: () => new Date('2026-02-01T00:00:00Z'),
    })
    try {
      await until(() => earlier.keys.size === 1, 'a key from before the cutoff')
    } finally {
      await earlier.stop()
    }
    const before = keySecrets(ns).length
    const c = await startController(inProcess(ns, 'cutoff', {keyRenewPeriodMs: 0, keyCutoff: cutoff}), {
      api,
      log: silentLogger,
      now: () => now,
    })
    const get = async (p: string) => {
      const r = await fetch(`http://${c.address}${p}`)
      return {status: r.status, text: await r.text()}
    }
    try {
      await until(() => c.keys.size === before, 'the existing keys')
      await sleep(100)
      expect(keySecrets(ns)).toHaveLength(before) // the cutoff has not passed yet: nothing made
      const newest = c.keys.newest()!
      expect(certKid((await get('/v1/cert.pem')).text)).toBe(newest.kid)
      now = new Date('2026-02-10T12:00:01Z') // the cutoff passed; the schedule has not run yet
      expect((await get('/v1/cert.pem')).status).toBe(503)
      const refused = await fetch(`http://${c.address}/v1/rotate`, {
        method: 'POST',
        body: '{}',
        headers: {'content-type': 'application/json'},
      })
      expect(refused.status).toBe(400) // not a SealedSecret: checked before the key
      await c.checkKeys()
      expect(c.keys.size).toBe(before + 1)
      const fresh = c.keys.newest()!
      expect(fresh.created.getTime()).toBeGreaterThanOrEqual(cutoff.getTime())
      expect(certKid((await get('/v1/cert.pem')).text)).toBe(fresh.kid)
      expect(sample((await get('/metrics')).text, 'kseal_key_renewals_total{trigger="cutoff"}')).toBe(1)
      const keys = JSON.parse((await get('/v1/keys')).text) as {kid: string; active: boolean; retired: boolean}[]
      expect(keys.map((k) => [k.active, k.retired])).toEqual([...Array(before).fill([false, true]), [true, false]])
    } finally {
      await c.stop()
    }
  })
})

describe('/v1/rotate rate limit', () => {
  it('refuses requests past the burst with 429 and Retry-After until the clock refills it; metrics count them', async () => {
    let now = new Date('2026-03-01T00:00:00Z')
    const c = await startController(inProcess('clock', 'limited', {keyRenewPeriodMs: 0, rotateRateLimit: 2, rotateRateBurst: 2}), {
      api,
      log: silentLogger,
      now: () => now,
    })
    const post = async () => {
      const r = await fetch(`http://${c.address}/v1/rotate`, {method: 'POST', body: '{}', headers: {'content-type': 'application/json'}})
      return {
        status: r.status,
        retryAfter: r.headers.get('retry-after'),
        body: (await r.json()) as {code: string; message: string; retryAfterSeconds?: number},
      }
    }
    try {
      expect((await post()).status).toBe(400) // not a SealedSecret, but admitted: it used a token
      expect((await post()).status).toBe(400)
      const limited = await post()
      expect(limited).toEqual({
        status: 429,
        retryAfter: '1',
        body: {code: 'ERR_BACKEND', message: 'too many /v1/rotate requests: retry in 0.50s', retryAfterSeconds: 0.5},
      })
      now = new Date(now.getTime() + 500)
      expect((await post()).status).toBe(400)
      expect((await post()).status).toBe(429)
      const metrics = await (await fetch(`http://${c.address}/metrics`)).text()
      expect(sample(metrics, 'kseal_rotate_requests_total{result="limited"}')).toBe(2)
      expect(sample(metrics, 'kseal_rotate_requests_total{result="failed"}')).toBe(3)
    } finally {
      await c.stop()
    }
  })

  it('kseal reseal waits out 429s and reseals every SealedSecret', async () => {
    const c = await startController(inProcess('clock', 'limited-e2e', {keyRenewPeriodMs: 0, rotateRateLimit: 20, rotateRateBurst: 1}), {
      api,
      log: silentLogger,
    })
    try {
      await until(() => c.keys.newest(), 'a sealing key')
      const recipient = recipientFor(c.keys.newest()!.certPem)
      const docs = await Promise.all(
        [...Array(8).keys()].map((i) =>
          sealSecret(
            {apiVersion: 'v1', kind: 'Secret', metadata: {name: `rl${i}`, namespace: 'clock'}, stringData: {v: 'rot-plain-value'}},
            [recipient],
            'strict',
          ),
        ),
      )
      const file = path.join(dir, 'limited.yaml')
      writeFileSync(file, docs.map((d) => YAML.stringify(d)).join('---\n'))
      const r = await kseal(['reseal', '--controller-url', `http://${c.address}`, file])
      expect(r.stderr).toBe('kseal: resealed 0 SealedSecrets; 8 already sealed to the newest key\n')
      expect(r.code).toBe(0)
      const metrics = await (await fetch(`http://${c.address}/metrics`)).text()
      expect(sample(metrics, 'kseal_rotate_requests_total{result="unchanged"}')).toBe(8)
      expect(sample(metrics, 'kseal_rotate_requests_total{result="limited"}')).toBeGreaterThanOrEqual(1)
    } finally {
      await c.stop()
    }
  })
  it('the reseal client keeps at most 4 requests in flight, honours a bare Retry-After (as through a proxy), and gives up after its window', async () => {
    let active = 0
    let most = 0
    let refuse = 6
    const server = http.createServer((req, res) => {
      active++
      most = Math.max(most, active)
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () =>
        setTimeout(() => {
          active--
          if (refuse-- > 0) {
            res.writeHead(429, {'retry-after': '0', 'content-type': 'text/plain'})
            return res.end('slow down\n')
          }
          res.writeHead(200, {'content-type': 'application/json'})
          res.end(Buffer.concat(chunks)) // the same SealedSecret: "unchanged"
        }, 30),
      )
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const sealed = await sealSecret(
        {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'p', namespace: 'clock'}, stringData: {v: 'rot-plain-value'}},
        [recipientFor(readFileSync(TEAM_CERT, 'utf8'))],
        'strict',
      )
      const stats = {resealed: 0, unchanged: 0}
      const reseal = controllerResealer({url}, stats)
      const results = await Promise.all([...Array(12).keys()].map(() => reseal(sealed as unknown as Record<string, unknown>)))
      expect(results.every((r) => !r.changed)).toBe(true)
      expect(stats).toEqual({resealed: 0, unchanged: 12})
      expect(most).toBeLessThanOrEqual(4)
      expect(most).toBeGreaterThan(1) // the cap, not one at a time
      refuse = Infinity
      const t0 = Date.now()
      await expect(controllerResealer({url}, stats, 300)(sealed as unknown as Record<string, unknown>)).rejects.toMatchObject({
        exitCode: 1,
        message: expect.stringMatching(/could not reseal it: HTTP 429: slow down \(its --rotate-rate-limit; try again later\)$/),
      })
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    } finally {
      server.close()
    }
  })
})

// ---- end to end: real controller processes -------------------------------------------------

const procs: Replica[] = []

async function startReplica(name: string, extra: string[] = []): Promise<Replica> {
  const rep = await startReplicaProcess({name, kubeconfig, keyNamespace: KEY_NS, extra})
  procs.push(rep)
  return rep
}

const stop = stopReplica

afterEach(() => {
  for (const p of procs) {
    for (const line of p.lines) {
      const rec = JSON.parse(line) as Record<string, unknown>
      expect(typeof rec.msg).toBe('string')
      for (const v of SECRET_VALUES) expect(line).not.toContain(v)
    }
  }
})

const {sealedObj, secretObj, applySealed} = namespaceClient(() => srv, NS)
const secretYaml = (name: string, values: Record<string, string>) =>
  YAML.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name, namespace: NS, labels: {app: name}},
    type: 'Opaque',
    stringData: values,
  })
const proxyFlags = () => ['--controller-namespace', KEY_NS, '--controller-name', 'kseal-controller', '--kubeconfig', proxyKubeconfig]

async function sealViaController(name: string, values: Record<string, string>): Promise<SealedSecretObject> {
  const r = await kseal(['seal', ...proxyFlags(), '-o', 'json'], {input: secretYaml(name, values)})
  expect(r).toMatchObject({code: 0, stderr: ''})
  return JSON.parse(r.stdout) as SealedSecretObject
}

describe("rotating the unsealer's keys, end to end", () => {
  let leader: Replica
  let standby: Replica
  let firstKid: string
  let oldSealed: SealedSecretObject
  let lateSealed: SealedSecretObject

  // The tests below go on from one another's state; each stage runs once, when the first test that
  // needs it runs (so a test run alone sets up what it needs).
  const renewed = once(async () => {
    leader = await startReplica('rot-1')
    await until(async () => (await leader.get('/readyz')).status === 200 && (await leader.metric('kseal_leader')) === 1, 'the leader ready')
    proxy.register(KEY_NS, 'kseal-controller', `http://127.0.0.1:${leader.port}`)
    firstKid = certKid((await leader.get('/v1/cert.pem')).text)
    oldSealed = await sealViaController('old', {password: 'rot-s3cret-old'})
    lateSealed = await sealViaController('late', {password: 'rot-s3cret-late'}) // applied only after the keys were renewed
    expect(recipientKids(oldSealed)).toEqual([firstKid])
    await applySealed(oldSealed)
    await until(() => secretObj('old'), 'the old Secret')

    standby = await startReplica('rot-2')
    await until(async () => (await standby.get('/readyz')).status === 200, 'the standby ready')
    expect(await standby.metric('kseal_leader')).toBe(0)
    standby.child.kill('SIGUSR1')
    await until(() => keySecrets(KEY_NS).length === 2, "a key renewed on the standby's request")
    expect(await leader.metric('kseal_key_renewals_total{trigger="signal"}')).toBe(1)
    expect(await standby.metric('kseal_key_renewal_requests_total{via="lease"}')).toBe(1)
    expect(await standby.metric('kseal_keys_generated_total')).toBe(0)
    await until(
      () =>
        srv.getObject('coordination.k8s.io/v1', 'Lease', KEY_NS, 'kseal-controller')!.metadata.annotations?.[RENEW_REQUEST_ANNOTATION] ===
        undefined,
      'the request cleared from the Lease',
    )
    expect(standby.lines.some((l) => /"msg":"key renewal requested: asking the leader through the Lease"/.test(l))).toBe(true)
    expect(leader.lines.some((l) => /"msg":"key renewal requested on the Lease".*"requestedBy":"rot-2"/.test(l))).toBe(true)
    expect(leader.lines.some((l) => /"msg":"sealing key generated".*"trigger":"signal"/.test(l))).toBe(true)

    leader.child.kill('SIGUSR1')
    await until(() => keySecrets(KEY_NS).length === 3, "a key renewed on the leader's own signal")
    expect(await leader.metric('kseal_key_renewals_total{trigger="signal"}')).toBe(2)
    expect(await leader.metric('kseal_key_renewal_requests_total{via="leader"}')).toBe(1)
    // Both replicas serve the newest certificate.
    const newestKid = await until(async () => {
      const a = certKid((await leader.get('/v1/cert.pem')).text)
      const b = certKid((await standby.get('/v1/cert.pem')).text)
      return a === b && a !== firstKid && (await leader.metric('kseal_keys')) === 3 && a
    }, 'the newest certificate served everywhere')
    expect(
      JSON.parse((await standby.get('/v1/keys')).text)
        .map((k: {kid: string; active: boolean}) => [k.kid, k.active])
        .at(-1),
    ).toEqual([newestKid, true])
  })
  const sealedAfterRenewal = once(async () => {
    await renewed()
    await applySealed(lateSealed)
    await until(() => secretObj('late'), 'the Secret from a SealedSecret sealed to the first key')
    expect(Buffer.from(secretObj('late')!.data.password, 'base64').toString()).toBe('rot-s3cret-late')
    const fresh = await sealViaController('new', {password: 'rot-s3cret-new'})
    const newestKid = certKid((await leader.get('/v1/cert.pem')).text)
    expect(recipientKids(fresh)).toEqual([newestKid])
    await applySealed(fresh)
    await until(() => secretObj('new'), 'the Secret from the new seal')
    await until(async () => (await leader.metric('kseal_sealed_secrets_on_old_keys')) === 2, 'two SealedSecrets on old keys')
    expect(await standby.metric('kseal_sealed_secrets_on_old_keys')).toBe(2)
    // The age is the newest key's: younger than the first key, which was renewed twice since.
    const first = keySecrets(KEY_NS).find((k) => k.metadata.annotations['kseal.dev/key-id'] === firstKid)!
    expect(await leader.metric('kseal_key_age_seconds')).toBeLessThan(
      (Date.now() - Date.parse(first.metadata.annotations['kseal.dev/created-at'])) / 1000,
    )
  })

  it('SIGUSR1 to a standby: the request goes through the Lease and the leader renews; SIGUSR1 to the leader renews at once', () =>
    renewed())

  it('old keys still open old SealedSecrets; new seals use the newest key; the metric counts what is still on old keys', () =>
    sealedAfterRenewal())

  it("kseal keys --controller lists the unsealer's keys, as a table and as JSON", async () => {
    await sealedAfterRenewal()
    const json = await kseal(['keys', '--controller', ...proxyFlags(), '--json'])
    expect(json).toMatchObject({code: 0, stderr: ''})
    const keys = JSON.parse(json.stdout) as {kid: string; created: string; active: boolean; sealedSecrets: number}[]
    expect(keys).toHaveLength(3)
    expect(keys[0]).toMatchObject({kid: firstKid, active: false, sealedSecrets: 2})
    expect(keys.filter((k) => k.active)).toHaveLength(1)
    expect(keys[2].active).toBe(true)
    expect(keys[2].sealedSecrets).toBe(1)
    expect(keys.every((k) => /^\d{4}-\d\d-\d\dT/.test(k.created))).toBe(true)
    expect(proxy.proxied).toContain(`${KEY_NS}/kseal-controller/v1/keys`)
    const table = await kseal(['keys', '--controller', '--controller-url', `http://127.0.0.1:${standby.port}`])
    expect(table.code).toBe(0)
    const rows = table.stdout.trim().split('\n')
    expect(rows[0]).toMatch(/^KEY ID\s+CREATED\s+ACTIVE\s+SEALED SECRETS$/)
    expect(rows).toHaveLength(4)
    expect(rows[1]).toMatch(new RegExp(`^${firstKid}\\s+\\d{4}-\\S+\\s+no\\s+2$`))
    expect(rows[3]).toMatch(/\syes\s+1$/)
    const cert = await kseal(['cert', '--controller-url', `http://127.0.0.1:${standby.port}/`])
    expect(cert).toMatchObject({code: 0, stderr: ''})
    expect(certKid(cert.stdout)).toBe(keys[2].kid)
    const missing = await kseal([
      'keys',
      '--controller',
      '--controller-namespace',
      KEY_NS,
      '--controller-name',
      'nope',
      '--kubeconfig',
      proxyKubeconfig,
    ])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^kseal: cannot list the keys of the controller kseal-system\/nope: HTTP 404/)
  })

  it("kseal reseal -i moves SealedSecret files to the newest key; other documents and comments stay; the Secret's data is unchanged", async () => {
    await sealedAfterRenewal()
    const newestKid = certKid((await leader.get('/v1/cert.pem')).text)
    const configMap =
      '# config, untouched\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: default}\ndata:\n  k: "v"   # odd spacing kept\n'
    const file = path.join(dir, 'old.yaml')
    const text = `${configMap}---\n# the database password\n${YAML.stringify(oldSealed, {lineWidth: 0})}`
    writeFileSync(file, text)
    const jsonFile = path.join(dir, 'late.json')
    writeFileSync(jsonFile, JSON.stringify(lateSealed, null, 2) + '\n')
    const before = {old: secretObj('old')!.data, late: secretObj('late')!.data}

    const r = await kseal(['reseal', '-i', ...proxyFlags(), file, jsonFile])
    expect(r).toMatchObject({code: 0, stderr: 'kseal: resealed 2 SealedSecrets\n'})
    expect(proxy.proxied).toContain(`${KEY_NS}/kseal-controller/v1/rotate`)
    const out = readFileSync(file, 'utf8')
    expect(out.startsWith(configMap + '---\n# the database password\n')).toBe(true)
    const resealed = YAML.parseAllDocuments(out)[1].toJS() as SealedSecretObject
    expect(recipientKids(resealed)).toEqual([newestKid])
    expect(resealed.metadata).toEqual(oldSealed.metadata)
    expect(resealed.spec.template).toEqual(oldSealed.spec.template)
    expect(resealed.spec.envelope.scope).toBe(oldSealed.spec.envelope.scope)
    expect(Object.keys(resealed.spec.encryptedData)).toEqual(Object.keys(oldSealed.spec.encryptedData))
    expect(resealed.spec.encryptedData.password).not.toBe(oldSealed.spec.encryptedData.password)
    const lateOut = JSON.parse(readFileSync(jsonFile, 'utf8')) as SealedSecretObject
    expect(recipientKids(lateOut)).toEqual([newestKid])
    for (const v of SECRET_VALUES) expect(out + JSON.stringify(lateOut)).not.toContain(v)

    // Applied, the controller produces the same Secret data; nothing is left on old keys.
    await applySealed(resealed)
    await applySealed(lateOut)
    await until(async () => (await leader.metric('kseal_sealed_secrets_on_old_keys')) === 0, 'no SealedSecret left on old keys')
    await until(
      () => sealedObj('old')!.status?.observedGeneration === 2 && sealedObj('late')!.status?.observedGeneration === 2,
      'both reconciled again',
    )
    await until(
      () => (sealedObj('old')!.status?.conditions ?? []).some((c: KubeObject) => c.type === 'Synced' && c.status === 'True'),
      'old Synced',
    )
    expect(secretObj('old')!.data).toEqual(before.old)
    expect(secretObj('late')!.data).toEqual(before.late)

    // Again: already on the newest key, nothing rewritten. Through --controller-url this time, to stdout.
    const again = await kseal(['reseal', '--controller-url', `http://127.0.0.1:${standby.port}`, file])
    expect(again.code).toBe(0)
    expect(again.stdout).toBe(out)
    expect(again.stderr).toBe('kseal: resealed 0 SealedSecrets; 1 already sealed to the newest key\n')
    expect(await leader.metric('kseal_rotate_requests_total{result="resealed"}')).toBe(2)
    expect(await standby.metric('kseal_rotate_requests_total{result="unchanged"}')).toBe(1)
    expect(
      leader.lines.some((l) =>
        /"msg":"resealed a SealedSecret to the newest key","sealedSecret":"default\/old","from":\["[0-9a-f]{16}"\],"to":"[0-9a-f]{16}"/.test(
          l,
        ),
      ),
    ).toBe(true)
  })

  it('/v1/rotate refuses tampered (422), foreign (422), malformed (400) and oversized (413) input with a one-line JSON error and no plaintext', async () => {
    await renewed()
    const url = `http://127.0.0.1:${leader.port}/v1/rotate`
    const post = async (body: string, type = 'application/json') => {
      const r = await fetch(url, {method: 'POST', body, headers: {'content-type': type}})
      const text = await r.text()
      for (const v of SECRET_VALUES) expect(text).not.toContain(v)
      expect(text.trim().split('\n')).toHaveLength(1)
      return {status: r.status, json: JSON.parse(text) as {code: string; message: string}}
    }
    const tamperSrc = await sealViaController('tamper', {a: 'rot-s3cret-tamper', b: 'rot-s3cret-new'})
    const ed = tamperSrc.spec.encryptedData
    const tampered = {...tamperSrc, spec: {...tamperSrc.spec, encryptedData: {a: ed.b, b: ed.a}}}
    expect(await post(JSON.stringify(tampered))).toMatchObject({status: 422, json: {code: 'ERR_INTEGRITY'}})
    const moved = {...tamperSrc, metadata: {...tamperSrc.metadata, name: 'elsewhere'}}
    expect((await post(JSON.stringify(moved))).status).toBe(422)
    const foreign = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'f', namespace: NS}, stringData: {x: 'rot-s3cret-tamper'}},
      [recipientFor(readFileSync(TEAM_CERT, 'utf8'))],
      'strict',
    )
    const f = await post(JSON.stringify(foreign))
    expect(f).toMatchObject({status: 422, json: {code: 'ERR_NO_KEY'}})
    expect(f.json.message).toMatch(/sealed for rsa:d5326737ee564566/)
    // YAML works as input too.
    expect((await post(YAML.stringify(tamperSrc), 'application/yaml')).status).toBe(200)
    expect(await post('{"kind": "SealedSecret", ')).toMatchObject({status: 400, json: {code: 'ERR_INPUT'}})
    expect(await post('a: [b\nc: rot-plain-value', 'application/yaml')).toMatchObject({status: 400, json: {code: 'ERR_INPUT'}})
    // A plain Secret posted by mistake: refused without echoing its values.
    const plain = await post(
      JSON.stringify({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'p', namespace: NS}, stringData: {k: 'rot-plain-value'}}),
    )
    expect(plain).toMatchObject({status: 400, json: {code: 'ERR_INPUT', message: 'Secret default/p: not a SealedSecret (kind "Secret")'}})
    const big = JSON.stringify({...tamperSrc, metadata: {...tamperSrc.metadata, annotations: {pad: 'x'.repeat(1 << 20)}}})
    expect(await post(big)).toMatchObject({status: 413, json: {code: 'ERR_INPUT'}})
    expect((await fetch(url)).status).toBe(405)
    expect(await leader.metric('kseal_rotate_requests_total{result="failed"}')).toBeGreaterThanOrEqual(5)

    // kseal reseal on a tampered file: exit 3, the file untouched, one line naming it.
    const file = path.join(dir, 'tampered.yaml')
    writeFileSync(file, YAML.stringify(tampered))
    const before = readFileSync(file, 'utf8')
    const r = await kseal(['reseal', '-i', ...proxyFlags(), file])
    expect(r.code).toBe(3)
    expect(r.stderr.split('\n')).toContain(
      `kseal: ${file}: document 1 (Secret default/tamper): the controller kseal-system/kseal-controller could not reseal it: HTTP 422: ` +
        'Secret default/tamper: encryptedData.a: cannot decrypt: the value was altered or moved here from another key or Secret',
    )
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('--key-cutoff at start: keys before it stop sealing, a new key is made at once, old keys still open', async () => {
    await renewed()
    expect(await stop(standby)).toBe(0)
    expect(await stop(leader)).toBe(0)
    const oldKids = keySecrets(KEY_NS).map((s) => s.metadata.annotations['kseal.dev/key-id'])
    await sleep(10)
    const cutoff = new Date().toISOString()
    const bad = await kseal(['controller', '--kubeconfig', kubeconfig, '--key-cutoff', 'last tuesday'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--key-cutoff "last tuesday": expected an RFC 3339 time/)
    const c = await startReplica('rot-cutoff', ['--key-cutoff', cutoff])
    await until(
      async () => (await c.get('/readyz')).status === 200 && (await c.metric('kseal_key_renewals_total{trigger="cutoff"}')) === 1,
      'a key made for the cutoff',
    )
    const kid = certKid((await c.get('/v1/cert.pem')).text)
    expect(oldKids).not.toContain(kid)
    expect(keySecrets(KEY_NS)).toHaveLength(oldKids.length + 1)
    const keys = JSON.parse((await c.get('/v1/keys')).text) as {kid: string; active: boolean; retired: boolean}[]
    expect(
      keys
        .filter((k) => k.retired)
        .map((k) => k.kid)
        .sort(),
    ).toEqual([...oldKids].sort())
    expect(keys.filter((k) => k.active).map((k) => k.kid)).toEqual([kid])
    // Everything applied so far is sealed to keys older than the cutoff.
    await until(
      async () => (await c.metric('kseal_sealed_secrets_on_old_keys')) === srv.listObjects('kseal.dev/v1', 'SealedSecret', NS).length,
      'the metric against the cutoff',
    )
    // An old key still opens a SealedSecret sealed to it.
    const oldKeyCert = Buffer.from(
      keySecrets(KEY_NS).find((s) => s.metadata.annotations['kseal.dev/key-id'] === firstKid)!.data['tls.crt'],
      'base64',
    ).toString()
    const viaOld = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'after-cutoff', namespace: NS}, stringData: {p: 'rot-s3cret-old'}},
      [recipientFor(oldKeyCert)],
      'strict',
    )
    await applySealed(viaOld)
    await until(() => secretObj('after-cutoff'), 'a SealedSecret on a pre-cutoff key unsealed')
    // ... and /v1/rotate moves it past the cutoff.
    const r = await fetch(`http://127.0.0.1:${c.port}/v1/rotate`, {
      method: 'POST',
      body: JSON.stringify(viaOld),
      headers: {'content-type': 'application/json'},
    })
    expect(r.status).toBe(200)
    expect(recipientKids((await r.json()) as SealedSecretObject)).toEqual([kid])
    expect(await stop(c)).toBe(0)
  })
})
