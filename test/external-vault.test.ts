/**
 * The Vault provider over HTTP against the local Vault (KV v2, Kubernetes auth with a real
 * TokenReview against the Kubernetes test server, TTLs on test time, ACLs, namespaces, rate limits,
 * TLS): login with a TokenRequest token for the store's ServiceAccount, token renewal at 2/3 of the
 * TTL and a fresh login when the token expired or was refused mid-run, versions, properties,
 * extract, find, token auth from a Secret, and every failure as a distinct error.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {kubeAccess} from '../src/external/access.js'
import {openProvider, type ProviderContext} from '../src/external/providers/index.js'
import type {Provider} from '../src/external/providers/types.js'
import {renderExternalSecret} from '../src/external/render.js'
import type {StoreAccess} from '../src/external/store.js'
import type {ExternalSecret, SecretStore} from '../src/external/types.js'
import {TestClock} from './support/clock.js'
import {decoded, es, store, TEST_TLS} from './support/external.js'
import {failure} from './support/failure.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import {startVaultServer, type VaultServer} from './support/vault/server.js'

const NS = 'apps'
const clock = new TestClock()
let k8s: K8sApiServer
let vault: VaultServer
let access: StoreAccess
const opened: Provider[] = []

const ctx = (extra: Partial<ProviderContext> = {}): ProviderContext => ({namespace: NS, access, now: () => clock.now(), ...extra})

async function open(s: SecretStore, c = ctx()): Promise<Provider> {
  const p = await openProvider(s, c)
  opened.push(p)
  return p
}

async function render(e: ExternalSecret, s: SecretStore, provider?: Provider) {
  return renderExternalSecret(e, s, {provider: provider ?? (await open(s))})
}

const k8sAuth = (extra: Record<string, unknown> = {}) => ({
  kubernetes: {mountPath: 'kubernetes', role: 'apps', serviceAccountRef: {name: 'es-reader'}, ...extra},
})
const vaultStore = (extra: Record<string, unknown> = {}, auth: Record<string, unknown> = k8sAuth()) =>
  store('vault', NS, {vault: {server: vault.url, path: 'secret', version: 'v2', auth, ...extra}})
const one = (key: string, extra: Record<string, unknown> = {}, name = 'db') =>
  es(name, NS, {secretStoreRef: {name: 'vault'}, data: [{secretKey: 'v', remoteRef: {key, ...extra}}]})
const logins = () => vault.count({path: 'auth/kubernetes/login', status: 200})

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', NS, 'other', 'vault'], tokens: {clock}})
  access = await kubeAccess(k8s.kubeConfig())
  for (const [ns, name] of [
    [NS, 'es-reader'],
    [NS, 'intruder'],
    ['vault', 'vault-reviewer'],
  ])
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name, namespace: ns}})
  vault = await startVaultServer({clock})
  vault.enableKubernetesAuth({
    kubernetesHost: k8s.url,
    tokenReviewerJwt: k8s.issueServiceAccountToken('vault', 'vault-reviewer', {expirationSeconds: 365 * 86_400}).token,
  })
  vault.putKubernetesRole('apps', {
    boundServiceAccountNames: ['es-reader'],
    boundServiceAccountNamespaces: [NS],
    audience: 'vault',
    policies: ['apps-read'],
    ttl: 600,
    maxTtl: 1800,
  })
  vault.putPolicy('apps-read', {
    'secret/data/apps/*': ['read'],
    'secret/metadata/apps/*': ['read', 'list'],
    'secret/metadata/apps/': ['list'],
  })
  vault.writeSecret('secret', 'apps/db', {username: 'app', password: 'v1-pass'})
  vault.writeSecret('secret', 'apps/db', {username: 'app', password: 'v2-pass', 'a.b': 'dotted', nested: {host: 'h', port: 5432}})
  vault.writeSecret('secret', 'infra/root', {password: 'not-for-apps'})
})

afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()))
  vault.clearFaults()
  vault.clearRateLimits()
  vault.resetStats()
})

afterAll(async () => {
  await Promise.all([vault.close(), k8s.close()])
})

describe('reading KV v2 after a Kubernetes login', () => {
  it('logs in once with a TokenRequest token (audience vault) for the store ServiceAccount; versions, properties, whole secret, extract', async () => {
    const tokenRequests = k8s.countRequests({resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'es-reader'})
    const r = await render(
      es('db', NS, {
        secretStoreRef: {name: 'vault'},
        data: [
          {secretKey: 'password', remoteRef: {key: 'apps/db', property: 'password'}},
          {secretKey: 'old', remoteRef: {key: 'apps/db', property: 'password', version: '1'}},
          {secretKey: 'dotted', remoteRef: {key: 'secret/data/apps/db', property: 'a.b'}},
          {secretKey: 'port', remoteRef: {key: 'secret/apps/db', property: 'nested.port'}},
          {secretKey: 'all', remoteRef: {key: 'apps/db', version: '1'}},
        ],
        dataFrom: [{extract: {key: 'apps/db'}}],
      }),
      vaultStore(),
    )
    expect(decoded(r.secret)).toEqual({
      password: 'v2-pass',
      old: 'v1-pass',
      dotted: 'dotted',
      port: '5432',
      all: '{"password":"v1-pass","username":"app"}',
      username: 'app',
      'a.b': 'dotted',
      nested: '{"host":"h","port":5432}',
    })
    expect(logins()).toBe(1)
    expect(k8s.countRequests({resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: 'es-reader'})).toBe(tokenRequests + 1)
    // apps/db at the current version (three spellings of one key) and at version 1: two reads.
    expect(vault.calls.filter((c) => c.path.startsWith('secret/data/')).map((c) => c.path)).toEqual([
      'secret/data/apps/db',
      'secret/data/apps/db',
    ])
  })

  it('find: lists folders recursively, matches the regexp against paths below the mount, tags against custom_metadata', async () => {
    for (const p of ['apps/team/one', 'apps/team/two', 'apps/team/deep/three', 'apps/solo']) vault.writeSecret('secret', p, {v: p})
    const meta = await fetch(`${vault.url}/v1/secret/metadata/apps/team/two`, {
      method: 'POST',
      headers: {'x-vault-token': vault.rootToken},
      body: JSON.stringify({custom_metadata: {owner: 'payments'}}),
    })
    expect(meta.status).toBe(204)
    const r = await render(
      es('found', NS, {secretStoreRef: {name: 'vault'}, dataFrom: [{find: {path: 'apps/team', name: {regexp: '/t[a-z]+$'}}}]}),
      vaultStore(),
    )
    expect(decoded(r.secret)).toEqual({apps_team_deep_three: '{"v":"apps/team/deep/three"}', apps_team_two: '{"v":"apps/team/two"}'})
    const tagged = await render(
      es('found', NS, {secretStoreRef: {name: 'vault'}, dataFrom: [{find: {path: 'apps', tags: {owner: 'payments'}}}]}),
      vaultStore(),
    )
    expect(Object.keys(tagged.secret!.data)).toEqual(['apps_team_two'])
  })

  it("token auth from a Secret of the ExternalSecret's namespace", async () => {
    const {token} = vault.createToken({policies: ['apps-read'], ttl: 3600})
    k8s.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'vault-token', namespace: NS}, stringData: {token}})
    const r = await render(one('apps/db', {property: 'username'}), vaultStore({}, {tokenSecretRef: {name: 'vault-token', key: 'token'}}))
    expect(decoded(r.secret)).toEqual({v: 'app'})
    expect(logins()).toBe(0)
  })

  it('Enterprise namespaces: X-Vault-Namespace on the login (auth.namespace) and on reads (namespace)', async () => {
    vault.createNamespace('team-a')
    vault.mountKv('secret', {namespace: 'team-a'})
    vault.enableKubernetesAuth({kubernetesHost: k8s.url}, {namespace: 'team-a'})
    vault.putKubernetesRole(
      'apps',
      {
        boundServiceAccountNames: ['es-reader'],
        boundServiceAccountNamespaces: [NS],
        audience: k8s.serviceAccountIssuer,
        policies: ['read'],
      },
      {namespace: 'team-a'},
    )
    vault.putPolicy('read', {'secret/data/*': ['read']}, {namespace: 'team-a'})
    vault.writeSecret('secret', 'apps/db', {password: 'team-a-pass'}, {namespace: 'team-a'})
    // Without a reviewer JWT Vault reviews the client's own token, so it must be valid for the API server's audience.
    const r = await render(
      one('apps/db', {property: 'password'}),
      vaultStore({namespace: 'team-a'}, k8sAuth({serviceAccountRef: {name: 'es-reader', audiences: [k8s.serviceAccountIssuer]}})),
    )
    expect(decoded(r.secret)).toEqual({v: 'team-a-pass'})
    expect(vault.calls.map((c) => [c.path, c.namespace, c.status])).toEqual([
      ['auth/kubernetes/login', 'team-a', 200],
      ['secret/data/apps/db', 'team-a', 200],
    ])
  })

  it('https with the store caBundle (base64 PEM); a server the bundle does not vouch for is refused', async () => {
    const tls = await startVaultServer({clock, tls: TEST_TLS})
    try {
      const {token} = tls.createToken({policies: ['root']})
      tls.writeSecret('secret', 'apps/db', {password: 'over-tls'})
      k8s.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'tls-token', namespace: NS}, stringData: {token}})
      const s = (ca?: string) =>
        store('vault', NS, {
          vault: {
            server: tls.url,
            auth: {tokenSecretRef: {name: 'tls-token', key: 'token'}},
            ...(ca ? {caBundle: Buffer.from(ca).toString('base64')} : {}),
          },
        })
      expect(tls.url).toMatch(/^https:/)
      expect(decoded((await render(one('apps/db', {property: 'password'}), s(TEST_TLS.ca))).secret)).toEqual({v: 'over-tls'})
      const untrusted = await failure(render(one('apps/db', {property: 'password'}), s()))
      expect(untrusted.code).toBe('ERR_BACKEND')
      expect(untrusted.message).toMatch(
        /^SecretStore apps\/vault \(vault\): remote key "apps\/db": cannot reach Vault: .*(self[- ]signed|unable to (get|verify)|certificate)/i,
      )
      expect(() =>
        store('vault', NS, {vault: {server: tls.url, caBundle: 'bm90IGEgY2VydA==', auth: {tokenSecretRef: {name: 't', key: 't'}}}}),
      ).toThrow(
        'SecretStore apps/vault: spec.provider.vault.caBundle: must be base64-encoded PEM certificates (as in external-secrets, the field is bytes)',
      )
    } finally {
      await tls.close()
    }
  })
})

describe('tokens on test time', () => {
  it('renews at 2/3 of the TTL, logs in again when renewal stops gaining (max TTL) and when the token expired between uses', async () => {
    const p = await open(vaultStore())
    const s = vaultStore()
    const read = async () => decoded((await render(one('apps/db', {property: 'password'}), s, p)).secret).v
    expect(await read()).toBe('v2-pass')
    expect(logins()).toBe(1)
    clock.advance(300_000) // half the 600 s TTL: still fresh
    await read()
    expect(vault.count({path: 'auth/token/renew-self'})).toBe(0)
    clock.advance(150_000) // 450 s: past 2/3, renewed (TTL 600 again, from now)
    await read()
    expect(vault.count({path: 'auth/token/renew-self', status: 200})).toBe(1)
    expect(logins()).toBe(1)
    // Renew until the 1800 s max TTL caps it: a shortened renewal means the next refresh logs in.
    for (let i = 0; i < 4; i++) {
      clock.advance(450_000)
      await read()
    }
    expect(logins()).toBe(2)
    // Idle longer than the TTL: the token expired; the next use logs in (no failed read first).
    clock.advance(700_000)
    const failedBefore = vault.count({status: 403})
    await read()
    expect(logins()).toBe(3)
    expect(vault.count({status: 403})).toBe(failedBefore)
  })

  it('a token refused mid-run (revoked, expired early) is replaced by one fresh login and the read retried', async () => {
    const p = await open(vaultStore())
    const s = vaultStore()
    await render(one('apps/db'), s, p)
    vault.failNext(1, {status: 403, errors: ['permission denied'], path: 'secret/data/apps/db'})
    expect(decoded((await render(one('apps/db', {property: 'username'}), s, p)).secret)).toEqual({v: 'app'})
    expect(logins()).toBe(2)
    // A policy denial is not a token problem: no second login, ERR_DENIED.
    const denied = await failure(render(one('infra/root'), s, p))
    expect(denied).toMatchObject({
      code: 'ERR_DENIED',
      message:
        'SecretStore apps/vault (vault): remote key "infra/root": read refused: permission denied (HTTP 403): 1 error occurred: * permission denied',
    })
    expect(logins()).toBe(2)
  })
})

describe('failures are distinct and name store and key, never a value', () => {
  it('not found, a deleted version, a bad version, a key outside the mount (no request made)', async () => {
    const p = await open(vaultStore())
    const s = vaultStore()
    expect(await failure(render(one('apps/none'), s, p))).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: 'SecretStore apps/vault (vault): remote key "apps/none": no such secret in Vault',
    })
    vault.writeSecret('secret', 'apps/gone', {x: '1'})
    vault.deleteSecret('secret', 'apps/gone')
    expect((await failure(render(one('apps/gone'), s, p))).message).toBe(
      'SecretStore apps/vault (vault): remote key "apps/gone": the current version is deleted or destroyed',
    )
    expect((await failure(render(one('apps/db', {version: 'latest'}), s, p))).message).toBe(
      'SecretStore apps/vault (vault): remote key "apps/db": version "latest" is not a KV version number',
    )
    vault.resetStats()
    for (const key of ['../../auth/token/lookup-self', 'apps/../../sys/health', 'apps//db', 'apps/./db']) {
      const f = await failure(render(one(key), s, p))
      expect(f).toMatchObject({
        code: 'ERR_INPUT',
        message: `SecretStore apps/vault (vault): remote key ${JSON.stringify(key)}: is not a path inside the mount (empty, "." and ".." segments are refused)`,
      })
    }
    expect(vault.calls).toEqual([])
  })

  it('a login Vault refuses, throttling with Retry-After, a server error', async () => {
    const intruder = await failure(render(one('apps/db'), vaultStore({}, k8sAuth({serviceAccountRef: {name: 'intruder'}}))))
    expect(intruder).toMatchObject({
      code: 'ERR_DENIED',
      message:
        'SecretStore apps/vault (vault): Kubernetes login (role "apps") refused: permission denied (HTTP 403): service account name not authorized',
    })

    const p = await open(vaultStore())
    vault.rateLimit({rate: 1, path: 'secret/'})
    const e = es('two', NS, {
      secretStoreRef: {name: 'vault'},
      data: [
        {secretKey: 'a', remoteRef: {key: 'apps/db'}},
        {secretKey: 'b', remoteRef: {key: 'apps/db', version: '1'}},
      ],
    })
    const throttled = await failure(render(e, vaultStore(), p))
    expect(throttled.code).toBe('ERR_THROTTLED')
    expect((throttled as unknown as {retryAfterMs: number}).retryAfterMs).toBe(1000)
    expect(throttled.message).toBe(
      'SecretStore apps/vault (vault): remote key "apps/db": Vault is rate limiting (HTTP 429): request path "secret/data/apps/db": rate limit quota exceeded',
    )
    vault.clearRateLimits()

    vault.failNext(1, {status: 503})
    expect((await failure(render(one('apps/db'), vaultStore(), p))).message).toBe(
      'SecretStore apps/vault (vault): remote key "apps/db": read refused: HTTP 503: Vault is sealed',
    )
  })
})
