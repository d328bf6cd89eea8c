/**
 * The controller serving sealed-secrets' `bitnami.com/v1alpha1` SealedSecrets (`--bitnami`): the
 * interop fixtures (real ciphertexts, all three scopes, and the templated ones of test/fixtures/bitnami)
 * become their expected Secrets through the test API server once an administrator imports the old
 * controller's key with `kseal keys --import`; the old controller's key Secret planted as it is (in
 * kube-system, or copied into the key namespace) is not trusted. Ownership, the Synced condition and
 * Events are those of kseal's own SealedSecrets, through the same reconciler; so are the generation
 * fence and conditional writes (in-process, as test/controller-writes.test.ts does for kseal's).
 */
import crypto from 'node:crypto'
import {chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {RsaDecryptPool} from '../keys/rsa-pool.js'
import {rsaKid} from '../keys/rsa.js'
import {KeyStore} from '../src/controller/keystore/store.js'
import {GENERATION_ANNOTATION, OWNED_LABEL, slimSecret, SPEC_HASH_ANNOTATION} from '../src/controller/owned.js'
import {bitnamiKind} from '../src/controller/sealed/kind.js'
import {Reconciler} from '../src/controller/sealed/reconcile.js'
import {clusterApi, type ClusterApi, type Secret} from '../src/kube/api.js'
import {KEY_LABEL, keySecret} from '../src/sealed/sealing-key.js'
import type {SealedSecretObject} from '../src/sealed/types.js'
import {BITNAMI_SEALED_DEFINITION, interopKeySecret, interopPair, SCOPES, SEALED_SECRETS} from './support/bitnami.js'
import {FIXTURES, kseal} from './support/cli.js'
import {startServiceProxy, type ServiceProxy} from './support/service-proxy.js'
import {unsealBitnami} from '../src/formats/bitnami.js'
import {type Replica, startReplica, stopReplica, TEST_TRUST_ROOT} from './support/controller.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'
import {silentLogger} from './support/log.js'
import {until} from './support/until.js'

const KEY_NS = 'kseal-system'
const NS = 'interop-ns'
const BITNAMI = 'bitnami.com/v1alpha1'
const KID = rsaKid(crypto.createPublicKey(readFileSync(path.join(SEALED_SECRETS, 'tls.key'))))
let srv: K8sApiServer
let dir: string

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: [NS, KEY_NS, 'kube-system'], resources: [BITNAMI_SEALED_DEFINITION]})
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-bitnami-'))
  await srv.writeKubeconfig(path.join(dir, 'kubeconfig'))
})

afterAll(async () => {
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

const sealedOf = (ns: string, name: string) => srv.getObject(BITNAMI, 'SealedSecret', ns, name)
const secretOf = (ns: string, name: string) => srv.getObject('v1', 'Secret', ns, name)
const synced = (ns: string, name: string) => (sealedOf(ns, name)?.status?.conditions ?? []).find((c: KubeObject) => c.type === 'Synced')
async function apply(obj: KubeObject): Promise<KubeObject> {
  const r = await fetch(`${srv.url}/apis/bitnami.com/v1alpha1/namespaces/${obj.metadata.namespace}/sealedsecrets`, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify(obj),
  })
  const j = (await r.json()) as KubeObject
  if (r.status >= 300) throw new Error(`${r.status} ${j.message}`)
  return j
}
/** The namespace-wide interop SealedSecret under another name (its values are bound to the namespace only). */
function renamed(name: string): KubeObject {
  const {sealed} = interopPair('namespace-wide')
  sealed.metadata.name = name
  return sealed
}

describe('kseal controller --bitnami', () => {
  let rep: Replica
  beforeAll(async () => {
    rep = await startReplica({name: 'bitnami', kubeconfig: path.join(dir, 'kubeconfig'), keyNamespace: KEY_NS, extra: ['--bitnami']})
    await until(async () => (await rep.get('/v1/cert.pem')).status === 200, 'the first key')
  })
  afterAll(async () => {
    if (rep) await stopReplica(rep)
  })

  it("does not trust the old controller's key Secret where it lies, nor copied into the key namespace: NoKey, no Secret", async () => {
    srv.putObject(interopKeySecret())
    const planted = interopKeySecret()
    planted.metadata = {name: 'kseal-key-planted', namespace: KEY_NS, labels: {[KEY_LABEL]: 'active'}}
    srv.putObject(planted)
    await apply(interopPair('strict').sealed)
    await until(() => synced(NS, 'interop-strict')?.reason === 'NoKey', 'NoKey')
    expect(synced(NS, 'interop-strict')).toMatchObject({status: 'False', message: expect.stringMatching(/none of the 1 key\(s\)/)})
    expect(secretOf(NS, 'interop-strict')).toBeUndefined()
    expect(rep.lines.some((l) => /ignoring a key Secret/.test(l) && /kseal-key-planted/.test(l))).toBe(true)
  })

  it('once the key is imported, every scope and the templated ones become the Secrets sealed-secrets writes, owned by their SealedSecret', async () => {
    const file = path.join(dir, 'bitnami-keys.yaml')
    copyFileSync(path.join(SEALED_SECRETS, 'sealed-secrets-key.yaml'), file)
    chmodSync(file, 0o600)
    const r = await kseal(['keys', '--import', file, '--controller-namespace', KEY_NS, '--kubeconfig', path.join(dir, 'kubeconfig')])
    expect(r.code).toBe(0)
    for (const scope of SCOPES) {
      if (scope !== 'strict') await apply(interopPair(scope).sealed)
      await apply(interopPair(scope, true).sealed)
    }
    for (const scope of SCOPES) {
      for (const templated of [false, true]) {
        const {sealed, expected} = interopPair(scope, templated)
        const name = sealed.metadata.name
        await until(() => synced(NS, name)?.status === 'True', `${name} Synced`, 20_000)
        const s = secretOf(NS, name)!
        expect(s.data).toEqual(expected.data)
        expect(s.type).toBe(expected.type)
        expect(s.metadata.labels).toEqual({...(expected.metadata.labels ?? {}), [OWNED_LABEL]: 'sealedsecret'})
        expect(s.metadata.annotations).toMatchObject(expected.metadata.annotations ?? {})
        const ss = sealedOf(NS, name)!
        expect(s.metadata.ownerReferences).toEqual([
          {apiVersion: BITNAMI, kind: 'SealedSecret', name, uid: ss.metadata.uid, controller: true},
        ])
        expect(synced(NS, name)).toMatchObject({reason: 'Unsealed', message: `Secret ${name} created (key ${KID})`})
        expect(ss.status.observedGeneration).toBe(ss.metadata.generation)
      }
    }
    const ev = srv.listObjects('v1', 'Event', NS).find((e) => e.involvedObject?.name === 'interop-templated-strict')
    expect(ev).toMatchObject({type: 'Normal', reason: 'Unsealed', involvedObject: {apiVersion: BITNAMI, kind: 'SealedSecret'}})
    expect(await rep.metric('kseal_reconciles_total{result="unsealed"}')).toBeGreaterThanOrEqual(6)
    // Served for sealing is still the controller's own key, not the imported one.
    expect(JSON.parse((await rep.get('/v1/keys')).text).find((k: {kid: string}) => k.kid === KID)).toMatchObject({active: false})
  })

  it('writes a Secret deleted or changed by hand again at once (its watch on the Secrets it wrote knows their kind)', async () => {
    const {expected} = interopPair('cluster-wide', true)
    srv.deleteObject('v1', 'Secret', NS, 'interop-templated-cluster-wide')
    await until(() => secretOf(NS, 'interop-templated-cluster-wide')?.data?.dsn === expected.data.dsn, 'the Secret restored', 5000)
    const s = secretOf(NS, 'interop-templated-cluster-wide')!
    srv.putObject({...s, metadata: {...s.metadata, annotations: {}}, data: {...s.data, dsn: 'eA=='}})
    await until(() => secretOf(NS, 'interop-templated-cluster-wide')?.data?.dsn === expected.data.dsn, 'the value restored', 5000)
  })

  it("leaves a Secret it does not own alone (NotOwned) until sealed-secrets' managed annotation lets it take it over", async () => {
    srv.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'taken', namespace: NS}, data: {mine: 'eA=='}})
    await apply(renamed('taken'))
    await until(() => synced(NS, 'taken')?.reason === 'NotOwned', 'NotOwned')
    expect(secretOf(NS, 'taken')!.data).toEqual({mine: 'eA=='})
    const s = secretOf(NS, 'taken')!
    srv.putObject({...s, metadata: {...s.metadata, annotations: {'sealedsecrets.bitnami.com/managed': 'true'}}})
    await until(() => synced(NS, 'taken')?.status === 'True', 'taken over', 20_000)
    expect(Object.keys(secretOf(NS, 'taken')!.data)).toEqual(['empty', 'large', 'unicode'])
  })

  describe("kubeseal's calls, through the API server's service proxy under the names kubeseal looks for", () => {
    let proxy: ServiceProxy
    const base = () => `${proxy.url}/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http/proxy`
    // kubeseal --validate / --re-encrypt: the file's bytes as they are (YAML here), client-go's JSON content type.
    const post = (p: string, body: string | Buffer) =>
      fetch(base() + p, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: typeof body === 'string' ? body : new Uint8Array(body),
      })
    const yamlOf = (scope: (typeof SCOPES)[number], templated = false) =>
      readFileSync(
        templated ? path.join(FIXTURES, 'bitnami', `templated-${scope}.yaml`) : path.join(SEALED_SECRETS, `sealedsecret-${scope}.yaml`),
      )
    beforeAll(async () => {
      proxy = await startServiceProxy(srv)
      proxy.register('kube-system', 'sealed-secrets-controller', `http://127.0.0.1:${rep.port}`, ['http'])
    })
    afterAll(() => proxy?.close())

    it("/v1/cert.pem: the controller's own sealing certificate (kubeseal --fetch-cert)", async () => {
      const r = await fetch(`${base()}/v1/cert.pem`)
      expect(r.status).toBe(200)
      expect(await r.text()).toBe((await rep.get('/v1/cert.pem')).text)
    })

    it('/v1/verify: 200 when it opens, 409 when moved or tampered, 400 when not a SealedSecret (kubeseal --validate)', async () => {
      for (const scope of SCOPES) expect((await post('/v1/verify', yamlOf(scope))).status).toBe(200)
      expect((await post('/v1/verify', yamlOf('strict', true))).status).toBe(200)
      const moved = yamlOf('strict')
        .toString()
        .replace(/name: interop-strict/g, 'name: elsewhere')
      expect((await post('/v1/verify', moved)).status).toBe(409)
      const {sealed} = interopPair('strict')
      const raw = Buffer.from(sealed.spec.encryptedData.unicode, 'base64')
      raw[raw.length - 1] ^= 1
      sealed.spec.encryptedData.unicode = raw.toString('base64')
      const tampered = await post('/v1/verify', JSON.stringify(sealed))
      expect(tampered.status).toBe(409)
      expect(await tampered.json()).toMatchObject({code: 'ERR_INTEGRITY'})
      expect((await post('/v1/verify', 'apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nspec: 7\n')).status).toBe(400)
      // The body limit of every /v1 POST, straight at the controller (the proxy turns its early close into a 503).
      const big = await fetch(`http://127.0.0.1:${rep.port}/v1/verify`, {method: 'POST', body: new Uint8Array((1 << 20) + 1)})
      expect(big.status).toBe(413)
    })

    it('/v1/verify refuses a SealedSecret with more values than one request may open, before any private-key work', async () => {
      const {sealed} = interopPair('namespace-wide')
      for (let i = 0; i < 65; i++) sealed.spec.encryptedData[`v${i}`] = sealed.spec.encryptedData.empty
      const before = await rep.metric('kseal_decryptions_total')
      const r = await post('/v1/verify', JSON.stringify(sealed))
      expect(r.status).toBe(400)
      expect((await r.json()).message).toMatch(/holds 68 values; one request opens at most 64/)
      expect(await rep.metric('kseal_decryptions_total')).toBe(before)
      // The counter does count this endpoint's work: the three values of the fixture, with the imported key tried first.
      expect((await post('/v1/verify', yamlOf('namespace-wide'))).status).toBe(200)
      expect(await rep.metric('kseal_decryptions_total')).toBe(before + 3)
    })

    it("/v1/rotate: sealed again to the current key in Bitnami's format, templates kept; applied, it becomes the same Secret (kubeseal --re-encrypt)", async () => {
      const r = await post('/v1/rotate', yamlOf('namespace-wide', true))
      expect(r.status).toBe(200)
      expect(r.headers.get('content-type')).toBe('application/json')
      const rotated = (await r.json()) as KubeObject
      const {sealed, expected} = interopPair('namespace-wide', true)
      expect(rotated.spec.template).toEqual(sealed.spec.template)
      expect(Object.keys(rotated.spec.encryptedData)).toEqual(Object.keys(sealed.spec.encryptedData))
      for (const k of Object.keys(sealed.spec.encryptedData)) expect(rotated.spec.encryptedData[k]).not.toBe(sealed.spec.encryptedData[k])
      // Not the old controller's key any more: the interop key no longer opens it.
      const interopKey = crypto.createPrivateKey(readFileSync(path.join(SEALED_SECRETS, 'tls.key')))
      expect(() => unsealBitnami(rotated, [interopKey])).toThrow(expect.objectContaining({code: 'ERR_NO_KEY'}))
      rotated.metadata.name = 'rotated'
      await apply(rotated)
      await until(() => synced(NS, 'rotated')?.status === 'True', 'the rotated SealedSecret unsealed', 20_000)
      expect(secretOf(NS, 'rotated')!.data).toEqual(expected.data)
      const own = JSON.parse((await rep.get('/v1/keys')).text).find((k: {active: boolean}) => k.active).kid
      expect(synced(NS, 'rotated').message).toBe(`Secret rotated created (key ${own})`)
    })
  })

  it('refuses, by name, what it does not implement: InvalidSpec, no Secret', async () => {
    const skip = renamed('skips-owner')
    skip.spec.template.metadata.annotations = {'sealedsecrets.bitnami.com/skip-set-owner-references': 'true'}
    await apply(skip)
    const tpl = renamed('random')
    tpl.spec.template.data = {token: '{{ randAlphaNum 16 }}'}
    await apply(tpl)
    await until(() => synced(NS, 'skips-owner')?.reason === 'InvalidSpec', 'InvalidSpec')
    expect(synced(NS, 'skips-owner').message).toMatch(/skip-set-owner-references is not supported/)
    await until(() => synced(NS, 'random')?.reason === 'InvalidSpec', 'InvalidSpec')
    expect(synced(NS, 'random').message).toMatch(/spec\.template\.data\.token: line 1, column 4: function "randAlphaNum" is not supported/)
    expect(secretOf(NS, 'skips-owner')).toBeUndefined()
    expect(secretOf(NS, 'random')).toBeUndefined()
  })
})

describe('the same reconcile path for Bitnami objects: adoption, the generation fence, conditional writes', () => {
  // In interop-ns, where the fixtures' values are bound; the controller process above has stopped.
  const pool = new RsaDecryptPool(1)
  let api: ClusterApi
  let store: KeyStore
  let rsa = 0
  const reconciler = (o: Partial<ConstructorParameters<typeof Reconciler>[0]> = {}) =>
    new Reconciler({
      api,
      unwrap: store.unwrap,
      log: silentLogger,
      identity: 'r',
      kind: bitnamiKind(
        () => store.all(),
        () => rsa++,
      ),
      ...o,
    })
  const put = (name: string, over: (o: KubeObject) => void = () => undefined): SealedSecretObject => {
    const o = renamed(name)
    const cur = sealedOf(NS, name)
    if (cur) o.metadata.uid = cur.metadata.uid
    over(o)
    return srv.putObject(o) as unknown as SealedSecretObject
  }

  beforeAll(async () => {
    api = await clusterApi(srv.kubeConfig(), {baseMs: 5, maxMs: 20})
    store = new KeyStore({pool, log: silentLogger, trustRoot: TEST_TRUST_ROOT})
    const keyPem = readFileSync(path.join(SEALED_SECRETS, 'tls.key'), 'utf8')
    const certPem = readFileSync(path.join(SEALED_SECRETS, 'tls.crt'), 'utf8')
    store.upsertSecret(keySecret(KEY_NS, {kid: KID, keyPem, certPem}, new Date('2026-01-01T00:00:00Z'), TEST_TRUST_ROOT, undefined, true))
    expect(store.size).toBe(1)
  })
  afterAll(() => pool.close())

  it("adopts the Secret the sealed-secrets controller wrote (its ownerReference, no kseal marks): opened once, rewritten with kseal's marks", async () => {
    const sealed = put('adopt')
    srv.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'adopt',
        namespace: NS,
        ownerReferences: [{apiVersion: BITNAMI, kind: 'SealedSecret', name: 'adopt', uid: sealed.metadata.uid, controller: true}],
      },
      data: {old: 'eA=='},
    })
    rsa = 0
    expect(await reconciler().reconcile(sealedOf(NS, 'adopt') as unknown as SealedSecretObject)).toMatchObject({result: 'unsealed'})
    expect(rsa).toBe(3)
    const s = secretOf(NS, 'adopt')!
    expect(Object.keys(s.data)).toEqual(['empty', 'large', 'unicode'])
    expect(s.metadata.labels[OWNED_LABEL]).toBe('sealedsecret')
    expect(s.metadata.annotations[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/)
    // Up to date: no RSA operation on the next pass (a restart, a failover).
    rsa = 0
    expect(await reconciler().reconcile(sealedOf(NS, 'adopt') as unknown as SealedSecretObject)).toMatchObject({result: 'unchanged'})
    expect(rsa).toBe(0)
  })

  it('a replica holding an older generation writes nothing; an update goes only at the resourceVersion it was computed from', async () => {
    const mine = reconciler()
    put('gen')
    const old = sealedOf(NS, 'gen') as unknown as SealedSecretObject
    expect((await mine.reconcile(old)).result).toBe('unsealed')
    put('gen', (o) => {
      o.spec.template.metadata.labels = {v: '2'}
    })
    expect((await mine.reconcile(sealedOf(NS, 'gen') as unknown as SealedSecretObject)).result).toBe('unsealed')
    expect(secretOf(NS, 'gen')!.metadata.annotations[GENERATION_ANNOTATION]).toBe('2')
    const rv = secretOf(NS, 'gen')!.metadata.resourceVersion
    rsa = 0
    expect(await reconciler().reconcile(old)).toMatchObject({result: 'stale', retry: 'backoff'})
    expect(rsa).toBe(0)
    expect(secretOf(NS, 'gen')!.metadata.resourceVersion).toBe(rv)

    // A write computed from a Secret another writer has changed since: 409, retried without decrypting again.
    const read = slimSecret(secretOf(NS, 'gen') as Secret)
    const cur = secretOf(NS, 'gen')!
    srv.putObject({...cur, metadata: {...cur.metadata, annotations: {...cur.metadata.annotations, other: 'writer'}}})
    put('gen', (o) => {
      o.spec.template.metadata.labels = {v: '3'}
    })
    let cached: Secret | undefined = read
    const r = reconciler({cachedSecret: () => cached})
    rsa = 0
    expect(await r.reconcile(sealedOf(NS, 'gen') as unknown as SealedSecretObject)).toMatchObject({
      reason: 'WriteConflict',
      retry: 'backoff',
    })
    expect(secretOf(NS, 'gen')!.metadata.labels.v).toBe('2')
    cached = slimSecret(secretOf(NS, 'gen') as Secret)
    expect((await r.reconcile(sealedOf(NS, 'gen') as unknown as SealedSecretObject)).result).toBe('unsealed')
    expect(secretOf(NS, 'gen')!.metadata.labels.v).toBe('3')
    expect(rsa).toBe(3)
  })
})
