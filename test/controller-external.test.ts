/**
 * ExternalSecrets through the controller, end to end: a real controller (in process, its own
 * kubeconfig) against the Kubernetes API test server, the local Secrets Manager (SigV4 checked,
 * through @aws-sdk) and the local Vault (Kubernetes login with a TokenRequest token, reviewed by the
 * API server). Create, refresh on a remote change, both deletion policies, Merge, the store rules
 * (another namespace's SecretStore, ClusterSecretStore conditions), kseal's own Secrets refused,
 * throttling paced per store, a Vault token expiring mid-run, fetch failures keeping the last good
 * Secret, fencing, and no value anywhere in logs, Events, status or metrics.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import crypto from 'node:crypto'
import {mkdtempSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {KsealError} from '../src/core/errors.js'
import {type Controller, startController} from '../src/controller/controller.js'
import {ExternalSync} from '../src/controller/external/sync.js'
import {nextRefresh, refreshPhase} from '../src/controller/external/schedule.js'
import {ControllerMetrics} from '../src/controller/http/metrics.js'
import {createLogger} from '../src/controller/log.js'
import {DEFAULTS} from '../src/controller/options.js'
import {kubeAccess} from '../src/external/access.js'
import {clusterApi} from '../src/kube/api.js'
import {startSecretsManagerServer, type SecretsManagerServer} from './support/aws/secretsmanager.js'
import {TestClock} from './support/clock.js'
import {namespaceClient} from './support/controller.js'
import {esManifest, storeManifest, vaultKubernetesLogin, vaultStoreManifest} from './support/external.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'
import {sample} from './support/metrics.js'
import {until} from './support/until.js'
import {startVaultServer, type VaultServer} from './support/vault/server.js'

const KEY_NS = 'kseal-system'
const NS = 'apps'
const CREDS = {accessKeyId: 'AKIAKSEALCONTROLLER1', secretAccessKey: 'controller/secret/not/a/real/one'}
const TENANT = {accessKeyId: 'AKIAKSEALTENANTKEY01', secretAccessKey: 'tenant/secret/not/a/real/one'}
/** Every value the stores hold: none may appear in a log line, an Event, a status or a metric. */
const VALUES = ['db-pass-v1', 'db-pass-v2', 'merge-value-1', 'temp-value', 'kept-value', 'vault-pass-1', 'vault-pass-2', 'slow-v', 'fast-v']
const SYNC_MS = 30_000

const clock = new TestClock()
let k8s: K8sApiServer
let sm: SecretsManagerServer
let vault: VaultServer
let c: Controller
const lines: string[] = []

const b64 = (s: string) => Buffer.from(s).toString('base64')
const secret = (ns: string, name: string) => k8s.getObject<KubeObject>('v1', 'Secret', ns, name)
const esObj = (ns: string, name: string) => k8s.getObject<KubeObject>('kseal.dev/v1', 'ExternalSecret', ns, name)
const cond = (ns: string, name: string, type: string) =>
  (esObj(ns, name)?.status?.conditions as KubeObject[] | undefined)?.find((x) => x.type === type)
const events = (ns: string, name: string) =>
  k8s
    .listObjects<KubeObject>('v1', 'Event', ns)
    .filter((e) => e.involvedObject?.kind === 'ExternalSecret' && e.involvedObject.name === name)

const {call} = namespaceClient(() => k8s, NS)

const plural: Record<string, string> = {
  ExternalSecret: 'externalsecrets',
  SecretStore: 'secretstores',
  ClusterSecretStore: 'clustersecretstores',
}
/** Create or replace (at the current resourceVersion) a kseal.dev/v1 object through the API, as kubectl apply would. */
async function apply(obj: KubeObject): Promise<KubeObject> {
  const ns = obj.metadata.namespace
  const base = `/apis/kseal.dev/v1${ns ? `/namespaces/${ns}` : ''}/${plural[obj.kind]}`
  for (let i = 0; ; i++) {
    const cur = k8s.getObject<KubeObject>('kseal.dev/v1', obj.kind, ns, obj.metadata.name)
    try {
      if (!cur) return await call('POST', base, obj)
      return await call('PUT', `${base}/${obj.metadata.name}`, {
        ...obj,
        metadata: {...obj.metadata, resourceVersion: cur.metadata.resourceVersion},
      })
    } catch (e) {
      if (i > 10 || !/: 409 /.test((e as Error).message)) throw e
    }
  }
}

const awsStore = (name: string, ns: string | undefined, extra: KubeObject = {}) =>
  storeManifest(name, ns, {aws: {service: 'SecretsManager', region: 'us-east-1'}}, extra)
const oneKey = (name: string, ns: string, key: string, spec: KubeObject = {}) =>
  esManifest(name, ns, {
    refreshInterval: '10s',
    secretStoreRef: {name: 'aws'},
    data: [{secretKey: 'password', remoteRef: {key}}],
    ...spec,
  })
const gets = (id?: string) => sm.calls.filter((x) => x.operation === 'GetSecretValue' && (!id || x.secretId === id)).length

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', KEY_NS, NS, 'other', 'shared-a', 'shared-b', 'vault', 'fenced'], tokens: {clock}})
  sm = await startSecretsManagerServer({
    credentials: {[CREDS.accessKeyId]: CREDS.secretAccessKey, [TENANT.accessKeyId]: TENANT.secretAccessKey},
  })
  vault = await startVaultServer({clock})
  vaultKubernetesLogin(k8s, vault, {namespace: NS, serviceAccount: 'es-reader', role: 'apps', ttl: 600})
  vault.putPolicy('apps', {'secret/data/apps/*': ['read']})

  const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-es-'))
  const kubeconfig = path.join(dir, 'kubeconfig')
  await k8s.writeKubeconfig(kubeconfig)
  c = await startController(
    {
      ...DEFAULTS,
      kubeconfig,
      keyNamespace: KEY_NS,
      keyBits: 2048,
      listen: '127.0.0.1:0',
      // Not 'fenced': the fencing test's replica is the only one there.
      namespaces: [NS, 'other', 'shared-a', 'shared-b', KEY_NS],
      leaderElect: false,
      identity: 'es-test',
      workers: 4,
      resyncPeriodMs: 0,
      storeRateLimit: 20,
      storeRateBurst: 5,
    },
    {
      log: createLogger({level: 'debug', write: (l) => lines.push(l)}),
      now: () => new Date(clock.now()),
      providers: {
        aws: {
          credentials: async () => CREDS,
          endpoints: {secretsmanager: sm.url},
          clientConfig: {maxAttempts: 1},
        },
      },
    },
  )
  await apply(awsStore('aws', NS))
})

afterAll(async () => {
  await c?.stop()
  await Promise.all([k8s?.close(), sm?.close(), vault?.close()])
})

describe('refresh slots', () => {
  it('spread 1,000 ExternalSecrets with a 1 h interval evenly over the hour: first refresh ¼ to 1¼ intervals after the sync, then one interval apart', () => {
    const hour = 3_600_000
    const perMinute = Array<number>(60).fill(0)
    const t = Date.parse('2026-01-01T00:00:00Z')
    for (let i = 0; i < 1000; i++) {
      const phase = refreshPhase(crypto.randomUUID(), hour)
      const next = nextRefresh(t, hour, phase)!
      expect(next - t).toBeGreaterThan(hour / 4)
      expect(next - t).toBeLessThanOrEqual((hour * 5) / 4)
      // Then every interval, on the same phase.
      expect(nextRefresh(next, hour, phase)).toBe(next + hour)
      perMinute[Math.floor((next - t - hour / 4) / 60_000)]++
    }
    // 16.7 a minute on average; no minute holds a burst.
    expect(Math.max(...perMinute)).toBeLessThan(40)
    expect(Math.min(...perMinute)).toBeGreaterThan(2)
    expect(nextRefresh(t, 0, 0)).toBeUndefined()
    expect(refreshPhase('uid-1', hour)).toBe(refreshPhase('uid-1', hour))
  })
})

describe('syncing an ExternalSecret (Owner)', () => {
  it('creates the Secret it owns; status Ready and SecretSynced, refreshTime, syncedResourceVersion, observedGeneration; one Event', async () => {
    sm.createSecret('apps/db', JSON.stringify({password: 'db-pass-v1', user: 'app'}))
    await apply(
      esManifest('db', NS, {
        refreshInterval: '10s',
        secretStoreRef: {name: 'aws'},
        target: {template: {metadata: {labels: {team: 'apps'}}}},
        data: [
          {secretKey: 'password', remoteRef: {key: 'apps/db', property: 'password'}},
          {secretKey: 'user', remoteRef: {key: 'apps/db', property: 'user'}},
        ],
      }),
    )
    const s = await until(() => secret(NS, 'db'), 'the Secret', SYNC_MS)
    expect(s.data).toEqual({password: b64('db-pass-v1'), user: b64('app')})
    expect(s.metadata.labels).toEqual({team: 'apps', 'kseal.dev/managed-by': 'external-secrets'})
    const es = esObj(NS, 'db')!
    expect(s.metadata.ownerReferences).toEqual([
      {apiVersion: 'kseal.dev/v1', kind: 'ExternalSecret', name: 'db', uid: es.metadata.uid, controller: true, blockOwnerDeletion: true},
    ])
    const st = await until(() => esObj(NS, 'db')?.status?.syncedResourceVersion && esObj(NS, 'db')!.status, 'the status', SYNC_MS)
    expect(st.syncedResourceVersion).toBe(secret(NS, 'db')!.metadata.resourceVersion)
    expect(st.observedGeneration).toBe(es.metadata.generation)
    expect(Date.parse(st.refreshTime)).toBeGreaterThan(0)
    expect(cond(NS, 'db', 'Ready')).toMatchObject({status: 'True', reason: 'SecretSynced'})
    expect(cond(NS, 'db', 'SecretSynced')).toMatchObject({status: 'True', reason: 'SecretSynced'})
    // Two properties of one remote secret: one remote call.
    expect(gets('apps/db')).toBe(1)
    await until(() => events(NS, 'db').length, 'the Event')
    expect(events(NS, 'db').map((e) => [e.type, e.reason])).toEqual([['Normal', 'SecretSynced']])
  })

  it('picks up a remote change at its next refresh: one call per refresh, an update, no new Event; an edit of the spec syncs at once', async () => {
    const before = gets('apps/db')
    sm.putSecretValue('apps/db', JSON.stringify({password: 'db-pass-v2', user: 'app'}))
    await until(() => secret(NS, 'db')?.data?.password === b64('db-pass-v2'), 'the new value', SYNC_MS)
    expect(gets('apps/db')).toBe(before + 1)
    expect(events(NS, 'db')).toHaveLength(1)
    // A spec change: synced at once, not at the next slot.
    const cur = esObj(NS, 'db')!
    await apply({...cur, spec: {...cur.spec, data: [{secretKey: 'pw', remoteRef: {key: 'apps/db', property: 'password'}}]}})
    await until(() => secret(NS, 'db')?.data?.pw, 'the edited spec', 5000)
    expect(Object.keys(secret(NS, 'db')!.data)).toEqual(['pw'])
  })

  it('repairs a Secret edited by hand (the watch on its Secrets), through backoff', async () => {
    const s = secret(NS, 'db')!
    k8s.putObject({...s, data: {pw: b64('tampered')}})
    await until(() => secret(NS, 'db')?.data?.pw === b64('db-pass-v2'), 'the repair', SYNC_MS)
  })
})

describe('immutable', () => {
  it('writes an immutable Secret once; a spec change replaces it (delete, create)', async () => {
    sm.createSecret('apps/frozen', 'db-pass-v1')
    sm.createSecret('apps/frozen2', 'db-pass-v2')
    await apply(oneKey('frozen', NS, 'apps/frozen', {target: {immutable: true}}))
    const first = await until(() => secret(NS, 'frozen'), 'the immutable Secret', SYNC_MS)
    expect(first.immutable).toBe(true)
    const cur = esObj(NS, 'frozen')!
    await apply({...cur, spec: {...cur.spec, data: [{secretKey: 'password', remoteRef: {key: 'apps/frozen2'}}]}})
    await until(() => secret(NS, 'frozen')?.data?.password === b64('db-pass-v2'), 'the replaced Secret', SYNC_MS)
    expect(secret(NS, 'frozen')!.metadata.uid).not.toBe(first.metadata.uid)
    expect(secret(NS, 'frozen')!.immutable).toBe(true)
  })
})

describe('deletion policies and failures', () => {
  it('Delete: the Secret goes once every remote key is gone; Retain: the last good Secret stays, SecretSynced False, Ready True', async () => {
    sm.createSecret('apps/temp', 'temp-value')
    sm.createSecret('apps/kept', 'kept-value')
    await apply(oneKey('temp', NS, 'apps/temp', {target: {deletionPolicy: 'Delete'}}))
    await apply(oneKey('kept', NS, 'apps/kept'))
    await until(() => secret(NS, 'temp') && secret(NS, 'kept'), 'both Secrets', SYNC_MS)
    sm.deleteSecret('apps/temp', {force: true})
    sm.deleteSecret('apps/kept', {force: true})
    await until(() => !secret(NS, 'temp'), 'the deletion', SYNC_MS)
    // The status follows the deletion.
    await until(() => cond(NS, 'temp', 'Ready')?.reason === 'SecretDeleted', 'SecretDeleted', SYNC_MS)
    expect(cond(NS, 'temp', 'Ready')!.status).toBe('False')
    await until(() => cond(NS, 'kept', 'SecretSynced')?.status === 'False', 'the failed refresh', SYNC_MS)
    expect(cond(NS, 'kept', 'SecretSynced')!.reason).toBe('SecretSyncedError')
    expect(cond(NS, 'kept', 'SecretSynced')!.message).toMatch(/apps\/kept/)
    expect(cond(NS, 'kept', 'Ready')).toMatchObject({status: 'True', reason: 'SecretSynced'})
    expect(secret(NS, 'kept')!.data).toEqual({password: b64('kept-value')})
    await until(() => events(NS, 'kept').length === 2, 'the Warning Event')
    expect(events(NS, 'kept').map((e) => [e.type, e.reason])).toEqual([
      ['Normal', 'SecretSynced'],
      ['Warning', 'SecretSyncedError'],
    ])
  })

  it('store failures keep the last good Secret (SecretSynced False, Ready True); the jittered backoff recovers once the store does', async () => {
    sm.createSecret('apps/flaky', 'db-pass-v1')
    await apply(oneKey('flaky', NS, 'apps/flaky'))
    await until(() => cond(NS, 'flaky', 'Ready')?.status === 'True', 'the first sync', SYNC_MS)
    sm.failNext(1000, 'InternalServiceError', {operation: 'GetSecretValue'})
    try {
      await until(() => cond(NS, 'flaky', 'SecretSynced')?.status === 'False', 'a failed refresh', SYNC_MS)
      expect(cond(NS, 'flaky', 'SecretSynced')!.reason).toBe('SecretSyncedError')
      expect(cond(NS, 'flaky', 'Ready')!.status).toBe('True')
      expect(secret(NS, 'flaky')!.data).toEqual({password: b64('db-pass-v1')})
    } finally {
      sm.clearFaults()
    }
    await until(() => cond(NS, 'flaky', 'SecretSynced')?.status === 'True', 'the recovery', SYNC_MS)
  })
})

describe('creationPolicy Merge and Secrets it may not write', () => {
  it('Merge writes its keys into an existing Secret, keeps the others, owns nothing; a missing target is SecretMissing', async () => {
    sm.createSecret('apps/merge', 'merge-value-1')
    await apply(oneKey('merge-missing', NS, 'apps/merge', {target: {name: 'nowhere', creationPolicy: 'Merge'}}))
    await until(() => cond(NS, 'merge-missing', 'Ready')?.reason === 'SecretMissing', 'SecretMissing', SYNC_MS)
    expect(secret(NS, 'nowhere')).toBeUndefined()
    k8s.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'app-config', namespace: NS, labels: {app: 'x'}},
      data: {other: b64('o')},
    })
    await apply(oneKey('merge', NS, 'apps/merge', {target: {name: 'app-config', creationPolicy: 'Merge'}}))
    await until(() => secret(NS, 'app-config')?.data?.password, 'the merged key', SYNC_MS)
    const s = secret(NS, 'app-config')!
    expect(s.data).toEqual({other: b64('o'), password: b64('merge-value-1')})
    expect(s.metadata.labels).toEqual({app: 'x', 'kseal.dev/managed-by': 'external-secrets'})
    expect(s.metadata.ownerReferences).toBeUndefined()
  })

  it('Owner never takes a Secret it does not own, nor one of kseal own Secrets; nothing is written in the key namespace', async () => {
    k8s.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'theirs', namespace: NS}, data: {a: b64('x')}})
    k8s.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'sealed-one', namespace: NS, labels: {'kseal.dev/owned-by': 'sealedsecret'}},
      data: {a: b64('x')},
    })
    await apply(oneKey('theirs', NS, 'apps/merge'))
    await apply(oneKey('sealed-one', NS, 'apps/merge', {target: {creationPolicy: 'Merge'}}))
    await apply(awsStore('aws', KEY_NS))
    await apply(oneKey('planted', KEY_NS, 'apps/merge'))
    await until(() => cond(NS, 'theirs', 'Ready')?.reason === 'NotOwned', 'NotOwned', SYNC_MS)
    await until(() => cond(NS, 'sealed-one', 'Ready')?.reason === 'Refused', 'Refused (kseal own)', SYNC_MS)
    await until(() => cond(KEY_NS, 'planted', 'Ready')?.reason === 'Refused', 'Refused (key namespace)', SYNC_MS)
    expect(secret(NS, 'theirs')!.data).toEqual({a: b64('x')})
    expect(secret(NS, 'sealed-one')!.data).toEqual({a: b64('x')})
    expect(secret(KEY_NS, 'planted')).toBeUndefined()
  })
})

describe('store rules', () => {
  it('a SecretStore serves only its own namespace: another namespace cannot name it', async () => {
    const before = sm.calls.length
    await apply(oneKey('borrow', 'other', 'apps/db'))
    await until(() => cond('other', 'borrow', 'Ready')?.reason === 'StoreNotFound', 'StoreNotFound', SYNC_MS)
    expect(cond('other', 'borrow', 'Ready')!.message).toBe('SecretStore other/aws does not exist')
    expect(secret('other', 'borrow')).toBeUndefined()
    expect(sm.calls.slice(before).filter((x) => x.secretId === 'apps/db')).toEqual([])
  })

  it('a ClusterSecretStore serves the namespaces its conditions name (list and label selector), and refuses the others', async () => {
    sm.createSecret('shared/token', 'fast-v')
    await apply(awsStore('shared', undefined, {conditions: [{namespaces: ['shared-a']}]}))
    const ref = {secretStoreRef: {name: 'shared', kind: 'ClusterSecretStore'}}
    await apply(oneKey('tok', 'shared-a', 'shared/token', ref))
    await apply(oneKey('tok', 'shared-b', 'shared/token', ref))
    await until(() => secret('shared-a', 'tok'), 'the Secret in shared-a', SYNC_MS)
    await until(() => cond('shared-b', 'tok', 'Ready')?.reason === 'StoreRefused', 'StoreRefused', SYNC_MS)
    expect(cond('shared-b', 'tok', 'Ready')!.message).toMatch(/does not serve namespace shared-b/)
    expect(secret('shared-b', 'tok')).toBeUndefined()
    // The store changes: its ExternalSecrets sync again at once, with a provider opened afresh; the
    // namespace's new label is seen at the next refresh (a refusal is checked again at each).
    await apply(
      awsStore('shared', undefined, {conditions: [{namespaces: ['shared-a']}, {namespaceSelector: {matchLabels: {tier: 'gold'}}}]}),
    )
    const ns = await call('GET', '/api/v1/namespaces/shared-b')
    if (ns.metadata.labels?.tier !== 'gold')
      k8s.putObject({...ns, metadata: {...ns.metadata, labels: {...ns.metadata.labels, tier: 'gold'}}})
    await until(() => secret('shared-b', 'tok'), 'the Secret in shared-b', SYNC_MS)
  })
})

describe('throttling', () => {
  it('a throttling store is paused and paced; another store of the same service is unaffected', async () => {
    // The slow store signs with the tenant's keys (in a Secret of its namespace), which the service throttles.
    k8s.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'aws-keys', namespace: NS},
      data: {id: b64(TENANT.accessKeyId), secret: b64(TENANT.secretAccessKey)},
    })
    await apply(
      storeManifest('slow', NS, {
        aws: {
          service: 'SecretsManager',
          region: 'us-east-1',
          auth: {
            secretRef: {
              accessKeyIDSecretRef: {name: 'aws-keys', key: 'id'},
              secretAccessKeySecretRef: {name: 'aws-keys', key: 'secret'},
            },
          },
        },
      }),
    )
    const N = 8
    for (let i = 0; i < N; i++) {
      sm.createSecret(`slow/k${i}`, `slow-v${i}`)
      sm.createSecret(`fast/k${i}`, `fast-v${i}`)
    }
    const release = sm.throttle({perSecond: 2, burst: 2, operation: 'GetSecretValue', accessKeyId: TENANT.accessKeyId})
    try {
      const throttledBefore = await c.metrics.externalThrottled.get()
      const from = sm.calls.length
      for (let i = 0; i < N; i++) {
        await apply(oneKey(`slow-${i}`, NS, `slow/k${i}`, {secretStoreRef: {name: 'slow'}}))
        await apply(oneKey(`fast-${i}`, NS, `fast/k${i}`))
      }
      for (let i = 0; i < N; i++) await until(() => secret(NS, `fast-${i}`), `fast-${i}`, SYNC_MS)
      for (let i = 0; i < N; i++) await until(() => secret(NS, `slow-${i}`), `slow-${i}`, SYNC_MS)
      expect(await c.metrics.externalThrottled.get()).toBeGreaterThan(throttledBefore)
      const calls = sm.calls.slice(from).filter((x) => x.operation === 'GetSecretValue')
      const fast = calls.filter((x) => x.accessKeyId === CREDS.accessKeyId && String(x.secretId).startsWith('fast/'))
      const slowCalls = calls.filter((x) => x.accessKeyId === TENANT.accessKeyId)
      // The fast store: every key read, no call refused.
      expect(new Set(fast.map((x) => x.secretId)).size).toBe(N)
      expect(fast.filter((x) => x.status !== 200)).toEqual([])
      expect(slowCalls.some((x) => x.status === 400)).toBe(true)
      // After each "slow down" reached the controller, no call went to that store before its pause (1 s) was over
      // (calls already on their way when the answer left the server are not the controller's choice).
      for (const x of slowCalls.filter((y) => y.status === 400)) {
        const answered = x.time + x.durationMs + 200
        expect(slowCalls.filter((y) => y.time > answered && y.time < x.time + 900)).toEqual([])
      }
    } finally {
      release()
    }
  })
})

describe('Vault', () => {
  it('logs in with a TokenRequest token; when the Vault token and the ServiceAccount token expire mid-run, it requests a new token and logs in again', async () => {
    vault.writeSecret('secret', 'apps/vdb', {password: 'vault-pass-1'})
    await apply(vaultStoreManifest('vault', NS, vault.url, 'es-reader', 'apps'))
    const tokenRequests = () => k8s.countRequests({resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'es-reader'})
    const logins = () => vault.count({path: 'auth/kubernetes/login', status: 200})
    await apply(
      oneKey('vdb', NS, 'apps/vdb', {
        secretStoreRef: {name: 'vault'},
        data: [{secretKey: 'pw', remoteRef: {key: 'apps/vdb', property: 'password'}}],
      }),
    )
    await until(() => secret(NS, 'vdb')?.data?.pw === b64('vault-pass-1'), 'the Vault value', SYNC_MS)
    expect([tokenRequests(), logins()]).toEqual([1, 1])
    // Past the Vault token's max TTL and the ServiceAccount token's lifetime.
    clock.advance(3_600_000)
    vault.writeSecret('secret', 'apps/vdb', {password: 'vault-pass-2'})
    await until(() => secret(NS, 'vdb')?.data?.pw === b64('vault-pass-2'), 'the value after the token expired', SYNC_MS)
    expect(tokenRequests()).toBe(2)
    expect(logins()).toBe(2)
  })
})

describe('fencing', () => {
  it('a replica whose writes the fence refuses writes nothing for ExternalSecrets (Secrets, status, Events)', async () => {
    const metrics = new ControllerMetrics({keys: () => 0, keyAgeSeconds: () => 0, leader: () => true, queueDepth: () => 0})
    const api = await clusterApi(k8s.kubeConfig(), {baseMs: 5, maxMs: 20})
    sm.createSecret('apps/fenced', 'db-pass-v1')
    await apply(awsStore('aws', 'fenced'))
    await apply(oneKey('fenced', 'fenced', 'apps/fenced'))
    const sync = new ExternalSync({
      api,
      access: await kubeAccess(k8s.kubeConfig()),
      log: createLogger({level: 'debug', write: (l) => lines.push(l)}),
      identity: 'fenced',
      now: () => new Date(),
      keyNamespace: KEY_NS,
      namespaces: ['fenced'],
      workers: 1,
      storeRate: 10,
      storeBurst: 10,
      aws: {credentials: async () => CREDS, endpoints: {secretsmanager: sm.url}, clientConfig: {maxAttempts: 1}},
      metrics,
      watchTimeout: () => 300,
    })
    let refused = 0
    sync.start()
    await until(() => sync.synced, 'the caches')
    const before = k8s.requests.length
    sync.startLeading({
      beforeWrite: () => {
        refused++
        throw new KsealError('ERR_NOT_LEADER', 'write refused: this replica cannot prove it holds the leader Lease')
      },
    })
    await until(async () => (await metrics.externalSyncs.get({provider: 'none', result: 'aborted'})) > 0, 'an aborted sync')
    await sync.stop()
    expect(refused).toBeGreaterThan(0)
    const writes = k8s.requests
      .slice(before)
      .filter((r) => r.isResourceRequest && r.namespace === 'fenced' && ['create', 'update', 'patch', 'delete'].includes(r.verb))
    expect(writes).toEqual([])
    expect(secret('fenced', 'fenced')).toBeUndefined()
  })
})

describe('no value leaks', () => {
  it('no value appears in the logs, Events, statuses or metrics', async () => {
    const text = [
      lines.join('\n'),
      JSON.stringify(k8s.listObjects('v1', 'Event')),
      JSON.stringify(
        ['default', NS, 'other', 'shared-a', 'shared-b', KEY_NS].flatMap((ns) =>
          k8s.listObjects('kseal.dev/v1', 'ExternalSecret', ns).map((o) => o.status),
        ),
      ),
      await c.metrics.render(),
    ].join('\n')
    expect(text.length).toBeGreaterThan(1000)
    for (const v of [...VALUES, ...Array.from({length: 8}, (_, i) => `slow-v${i}`), ...Array.from({length: 8}, (_, i) => `fast-v${i}`)]) {
      expect({value: v, found: text.includes(v) || text.includes(b64(v))}).toEqual({value: v, found: false})
    }
  })

  it('exports sync results by provider, time since each last sync, and the ExternalSecrets not Ready', async () => {
    const m = await c.metrics.render()
    expect(sample(m, 'kseal_external_secret_syncs_total{provider="aws SecretsManager",result="synced"}')).toBeGreaterThan(0)
    expect(sample(m, 'kseal_external_store_calls_total{provider="aws SecretsManager",result="ok"}')).toBeGreaterThan(0)
    expect(sample(m, 'kseal_external_store_calls_total{provider="vault",result="ok"}')).toBeGreaterThan(0)
    expect(sample(m, 'kseal_external_secret_sync_age_seconds{namespace="apps",name="db"}')).toBeGreaterThanOrEqual(0)
    const notReady = ['merge-missing', 'theirs', 'sealed-one', 'temp'].length + ['borrow', 'planted'].length
    expect(sample(m, 'kseal_external_secrets_not_ready')).toBeGreaterThanOrEqual(notReady)
  })
})
