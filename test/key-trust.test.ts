/**
 * The controller trusts only keys it made (or an administrator imported), never a Secret that
 * something else put in its namespace. The planted-key attack, performed against a real controller
 * process through the Kubernetes API test server: a SealedSecret unsealed into the key namespace with
 * the sealing-key label and a creation date in 2099, one elsewhere carrying kseal's own labels, and
 * a key Secret created straight in the key namespace. Each is refused or ignored, and /v1/cert.pem
 * keeps serving the controller's own certificate.
 */
import crypto from 'node:crypto'
import {chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {RsaRecipient, rsaKid} from '../keys/rsa.js'
import {RsaDecryptPool} from '../keys/rsa-pool.js'
import {KeyStore} from '../src/controller/keystore/store.js'
import {BITNAMI_KEY_LABEL} from '../src/formats/bitnami.js'
import {
  KEY_CREATED_ANNOTATION,
  KEY_LABEL,
  KEY_MAC_ANNOTATION,
  KEY_USE_ANNOTATION,
  keySecret,
  TRUST_SECRET,
  trustRootOf,
} from '../src/sealed/sealing-key.js'
import {silentLogger} from './support/log.js'
import {sealSecret} from '../src/sealed/seal.js'
import {INTEROP, kseal, OTHER_CERT, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'
import {fixtureKeySecret, namespaceClient, type Replica, startReplica, stopReplica} from './support/controller.js'
import {sleep, until} from './support/until.js'
import {startK8sApiServer, type K8sApiServer, type KubeObject} from './support/k8s-api-server.js'

const KEY_NS = 'kseal-system'
const NS = 'default'
let srv: K8sApiServer
let dir: string
let rep: Replica
let ownCert: string
const pool = new RsaDecryptPool(1)

const attackerKeyPem = readFileSync(TEAM_KEY, 'utf8')
const attackerCertPem = readFileSync(TEAM_CERT, 'utf8')
const b64 = (s: string) => Buffer.from(s).toString('base64')

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: [NS, KEY_NS, 'kube-system']})
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-trust-'))
  const kubeconfig = path.join(dir, 'kubeconfig')
  await srv.writeKubeconfig(kubeconfig)
  rep = await startReplica({name: 'trust', kubeconfig, keyNamespace: KEY_NS})
  await until(async () => (await rep.get('/v1/cert.pem')).status === 200, 'the first key')
  ownCert = (await rep.get('/v1/cert.pem')).text
})

afterAll(async () => {
  if (rep) await stopReplica(rep)
  await pool.close()
  await srv?.close()
  rmSync(dir, {recursive: true, force: true})
})

/** The planted Secret as a SealedSecret would produce it: the attacker's key pair, labelled, dated 2099. */
function plantedSecret(ns: string, name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: {name, namespace: ns, labels: {[KEY_LABEL]: 'active'}, annotations: {[KEY_CREATED_ANNOTATION]: '2099-01-01T00:00:00.000Z'}},
    stringData: {'tls.key': attackerKeyPem, 'tls.crt': attackerCertPem},
  }
}

async function sealedFor(ns: string, name: string): Promise<KubeObject> {
  const recipient = new RsaRecipient(new crypto.X509Certificate(ownCert).publicKey, 'controller')
  return (await sealSecret(plantedSecret(ns, name), [recipient], 'strict')) as unknown as KubeObject
}

describe('the planted sealing key', () => {
  it('a SealedSecret whose Secret would land in the key namespace is refused: Synced=False, a Warning Event, no Secret', async () => {
    const {applySealed, sealedObj} = namespaceClient(() => srv, KEY_NS)
    await applySealed(await sealedFor(KEY_NS, 'kseal-key-evil'))
    const cond = await until(
      () => (sealedObj('kseal-key-evil')?.status?.conditions ?? []).find((c: KubeObject) => c.type === 'Synced'),
      'a condition',
    )
    expect(cond).toMatchObject({status: 'False', reason: 'Refused'})
    expect(cond.message).toMatch(/would be written in kseal-system, the namespace of the controller's own keys/)
    const ev = await until(
      () => srv.listObjects('v1', 'Event', KEY_NS).find((e) => e.involvedObject?.name === 'kseal-key-evil'),
      'the Event',
    )
    expect(ev).toMatchObject({type: 'Warning', reason: 'Refused'})
    expect(srv.getObject('v1', 'Secret', KEY_NS, 'kseal-key-evil')).toBeUndefined()
  })

  it("a SealedSecret elsewhere whose template carries kseal's own labels or annotations is refused", async () => {
    const {applySealed, sealedObj} = namespaceClient(() => srv, NS)
    await applySealed(await sealedFor(NS, 'labelled'))
    const cond = await until(
      () => (sealedObj('labelled')?.status?.conditions ?? []).find((c: KubeObject) => c.type === 'Synced'),
      'a condition',
    )
    expect(cond).toMatchObject({
      status: 'False',
      reason: 'Refused',
      message: expect.stringMatching(/carries the label kseal\.dev\/sealing-key, which only kseal itself sets/),
    })
    expect(srv.getObject('v1', 'Secret', NS, 'labelled')).toBeUndefined()
  })

  it("a key Secret created straight in the key namespace (label, 2099, even a made-up MAC) is ignored: the certificate stays the controller's own", async () => {
    srv.putObject(plantedSecretStored('kseal-key-planted', 'bm90LWEtbWFj'))
    srv.putObject(plantedSecretStored('kseal-key-planted-2', undefined))
    await until(
      () => rep.lines.filter((l) => /"msg":"ignoring a key Secret"/.test(l) && /not trusted|dated in the future/.test(l)).length >= 2,
      'the planted keys to be ignored',
    )
    await sleep(200)
    expect((await rep.get('/v1/cert.pem')).text).toBe(ownCert)
    expect(JSON.parse((await rep.get('/v1/keys')).text).map((k: {kid: string}) => k.kid)).not.toContain(TEAM_KID)
    expect(await rep.metric('kseal_keys')).toBe(1)
    // kseal cert reading the key Secrets directly trusts the same keys only.
    const kc = path.join(dir, 'kubeconfig')
    const cert = await kseal(['cert', '--from-cluster-secret', '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(cert.code).toBe(0)
    expect(cert.stdout).toBe(ownCert.endsWith('\n') ? ownCert : ownCert + '\n')
  })
})

function plantedSecretStored(name: string, mac: string | undefined): KubeObject {
  const s = plantedSecret(KEY_NS, name) as {
    metadata: {annotations: Record<string, string>}
    stringData?: Record<string, string>
    data?: Record<string, string>
  }
  if (mac) s.metadata.annotations[KEY_MAC_ANNOTATION] = mac
  s.data = {'tls.key': b64(attackerKeyPem), 'tls.crt': b64(attackerCertPem)}
  delete s.stringData
  return s as unknown as KubeObject
}

describe("the administrator's import path", () => {
  it('kseal keys --import signs a key with the trust root: the running controller loads it (and still serves its own, newer certificate)', async () => {
    const kc = path.join(dir, 'kubeconfig')
    const r = await kseal(['keys', '--import', TEAM_KEY, '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(r.stderr).toBe(`kseal: imported key ${TEAM_KID} as Secret ${KEY_NS}/kseal-key-${TEAM_KID}, to open only\n`)
    expect(r.code).toBe(0)
    await until(async () => JSON.parse((await rep.get('/v1/keys')).text).some((k: {kid: string}) => k.kid === TEAM_KID), 'the imported key')
    expect((await rep.get('/v1/cert.pem')).text).toBe(ownCert)
    const again = await kseal(['keys', '--import', TEAM_KEY, '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/already exists/)
  })

  it("imports the sealed-secrets controller's key Secrets from kubectl's output: to open only, never to seal; again, only new ones", async () => {
    const kc = path.join(dir, 'kubeconfig')
    const file = path.join(dir, 'bitnami-keys.yaml')
    copyFileSync(path.join(INTEROP, 'sealed-secrets', 'sealed-secrets-key.yaml'), file)
    chmodSync(file, 0o600)
    const r = await kseal(['keys', '--import', file, '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(r.code).toBe(0)
    const kid = rsaKid(crypto.createPublicKey(readFileSync(path.join(INTEROP, 'sealed-secrets', 'tls.key'))))
    expect(r.stderr).toBe(
      `kseal: imported key ${kid} as Secret ${KEY_NS}/kseal-key-${kid}, to open only (from ${file}: Secret kube-system/sealed-secrets-key-interop)\n`,
    )
    const stored = srv.getObject('v1', 'Secret', KEY_NS, `kseal-key-${kid}`)!
    expect(stored.metadata.annotations[KEY_USE_ANNOTATION]).toBe('decrypt')
    const listed = await until(
      async () => JSON.parse((await rep.get('/v1/keys')).text).find((k: {kid: string}) => k.kid === kid),
      'the imported key',
    )
    expect(listed).toMatchObject({active: false, decryptOnly: true})
    expect((await rep.get('/v1/cert.pem')).text).toBe(ownCert)
    const again = await kseal(['keys', '--import', file, '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(again.code).toBe(0)
    expect(again.stderr).toMatch(new RegExp(`key ${kid} was already imported`))
  })

  it('a decrypt-only mark cannot be stripped: without it the MAC fails and the key is not loaded', () => {
    const root = Buffer.alloc(32, 9)
    const store = new KeyStore({pool, log: silentLogger, trustRoot: root, now: () => new Date()})
    const s = keySecret(
      KEY_NS,
      {kid: TEAM_KID, keyPem: attackerKeyPem, certPem: attackerCertPem},
      new Date('2026-01-01T00:00:00Z'),
      root,
      undefined,
      true,
    )
    const stripped = structuredClone(s)
    delete stripped.metadata!.annotations![KEY_USE_ANNOTATION]
    expect(store.upsertSecret(stripped)).toBeNull()
    expect(store.upsertSecret(s)?.decryptOnly).toBe(true)
    expect(store.newest()).toBeUndefined()
  })

  it('--import-from-cluster reads the key Secrets from the namespace of the old controller; --active lets the one imported key seal', async () => {
    const kc = path.join(dir, 'kubeconfig')
    const OTHER_KID = rsaKid(new crypto.X509Certificate(readFileSync(OTHER_CERT)).publicKey)
    const other = fixtureKeySecret('other', new Date('2025-01-01T00:00:00Z'), 'kube-system')
    other.metadata = {name: 'sealed-secrets-keyabcde', namespace: 'kube-system', labels: {[BITNAMI_KEY_LABEL]: 'active'}}
    srv.putObject(other as KubeObject)
    const none = await kseal(['keys', '--import-from-cluster', NS, '--controller-namespace', KEY_NS, '--kubeconfig', kc])
    expect(none).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /no Secret labelled sealedsecrets\.bitnami\.com\/sealed-secrets-key with a tls\.key in namespace default/,
      ),
    })
    const many = await kseal([
      'keys',
      '--import-from-cluster',
      'kube-system',
      '--active',
      '--controller-namespace',
      KEY_NS,
      '--kubeconfig',
      kc,
    ])
    expect(many.stderr).toBe(
      `kseal: imported key ${OTHER_KID} as Secret ${KEY_NS}/kseal-key-${OTHER_KID}, sealing from now on (from Secret kube-system/sealed-secrets-keyabcde)\n`,
    )
    await until(async () => (await rep.get('/v1/cert.pem')).text === readFileSync(OTHER_CERT, 'utf8'), 'the imported key to seal')
  })
})

describe('key store checks', () => {
  const root = Buffer.alloc(32, 9)
  const now = new Date('2026-06-01T00:00:00Z')
  const store = () => new KeyStore({pool, log: silentLogger, trustRoot: root, now: () => now})
  const signed = (created: Date, keyPem = attackerKeyPem, certPem = attackerCertPem) =>
    keySecret(KEY_NS, {kid: new RsaRecipient(new crypto.X509Certificate(certPem).publicKey, 'x').kid, keyPem, certPem}, created, root)

  it('loads a key signed with the trust root; refuses one signed with another root, renamed, or dated in the future', () => {
    expect(store().upsertSecret(signed(new Date('2026-01-01T00:00:00Z')))?.kid).toBe(TEAM_KID)
    const other = keySecret(
      KEY_NS,
      {kid: TEAM_KID, keyPem: attackerKeyPem, certPem: attackerCertPem},
      new Date('2026-01-01T00:00:00Z'),
      Buffer.alloc(32, 1),
    )
    expect(store().upsertSecret(other)).toBeNull()
    const renamed = signed(new Date('2026-01-01T00:00:00Z'))
    renamed.metadata!.name = 'kseal-key-other-name'
    expect(store().upsertSecret(renamed)).toBeNull()
    // Signed, but dated in the future: it would outrank every real key.
    expect(store().upsertSecret(signed(new Date('2099-01-01T00:00:00Z')))).toBeNull()
    expect(store().upsertSecret(signed(new Date(now.getTime() + 60_000)))?.kid).toBe(TEAM_KID) // within clock skew
  })

  it('refuses an RSA key under 2048 bits, signed or not', async () => {
    const {privateKey} = crypto.generateKeyPairSync('rsa', {modulusLength: 1024})
    const {selfSignedCert} = await import('../keys/rsa.js')
    const certPem = await selfSignedCert(privateKey, 'small', now, 30)
    const s = signed(new Date('2026-01-01T00:00:00Z'), privateKey.export({type: 'pkcs8', format: 'pem'}) as string, certPem)
    const lines: string[] = []
    const k = new KeyStore({
      pool,
      log: {...silentLogger, warn: (m: string, f?: Record<string, unknown>) => void lines.push(`${m} ${JSON.stringify(f)}`)},
      trustRoot: root,
      now: () => now,
    })
    expect(k.upsertSecret(s)).toBeNull()
    expect(lines.join('\n')).toMatch(/RSA key of 1024 bits is too small/)
  })

  it('keys seen before the trust root wait for it; a second, different trust root is ignored', () => {
    const k = new KeyStore({pool, log: silentLogger, now: () => now})
    expect(k.upsertSecret(signed(new Date('2026-01-01T00:00:00Z')))).toBeNull()
    expect(k.size).toBe(0)
    const rootSecret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: TRUST_SECRET, namespace: KEY_NS, labels: {[KEY_LABEL]: 'trust-root'}},
      data: {root: root.toString('base64')},
    }
    expect(trustRootOf(rootSecret)).toEqual(root)
    k.upsertSecret(rootSecret)
    expect(k.size).toBe(1)
    k.upsertSecret({...rootSecret, data: {root: Buffer.alloc(32, 3).toString('base64')}})
    expect(k.trustRoot).toEqual(root)
    // A Secret with the trust-root label but another name is not the trust root.
    expect(trustRootOf({...rootSecret, metadata: {...rootSecret.metadata, name: 'kseal-key-trust-2'}})).toBeNull()
  })
})
