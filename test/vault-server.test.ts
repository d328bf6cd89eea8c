/**
 * The local Vault server through plain HTTP requests written from Vault's API documentation (there
 * is no official JavaScript client; the provider will speak HTTP too): KV v2, Kubernetes auth with
 * TokenReview against the Kubernetes test server, token TTLs and renewal on test time, ACL
 * policies, Enterprise namespaces, rate limits.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {TestClock} from './support/clock.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import {startVaultServer, type VaultServer} from './support/vault/server.js'

const clock = new TestClock()
let k8s: K8sApiServer
let vault: VaultServer

interface VaultResponse {
  status: number
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any
  headers: Headers
}

/** One request to Vault's HTTP API, as the provider will make it. */
async function v(
  path: string,
  opts: {method?: string; token?: string; namespace?: string; body?: unknown; bearer?: boolean} = {},
): Promise<VaultResponse> {
  const headers: Record<string, string> = {}
  if (opts.token !== undefined) {
    if (opts.bearer) headers.authorization = `Bearer ${opts.token}`
    else headers['x-vault-token'] = opts.token
  }
  if (opts.namespace !== undefined) headers['x-vault-namespace'] = opts.namespace
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${vault.url}/v1/${path}`, {
    method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  })
  const text = await res.text()
  return {status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers}
}

const saJwt = (name: string, ns = 'apps', audiences = ['vault'], expirationSeconds = 3600) =>
  k8s.issueServiceAccountToken(ns, name, {audiences, expirationSeconds}).token
/** Vault's own token for TokenReview calls: the API server's audience, long-lived. */
const reviewerJwt = () => k8s.issueServiceAccountToken('vault', 'vault-reviewer', {expirationSeconds: 365 * 86_400}).token
const login = (jwt: string, role = 'external-secrets', namespace?: string) => v('auth/kubernetes/login', {body: {role, jwt}, namespace})
const ACL_DENIED = {errors: ['1 error occurred:\n\t* permission denied\n\n']}
const DENIED = {errors: ['permission denied']}

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', 'apps', 'other', 'vault'], tokens: {clock}})
  for (const [ns, name] of [
    ['apps', 'kseal-controller'],
    ['apps', 'intruder'],
    ['other', 'kseal-controller'],
    ['vault', 'vault-reviewer'],
  ]) {
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name, namespace: ns}})
  }
  vault = await startVaultServer({clock})
  // As Vault is usually configured: its own ServiceAccount's token reviews the clients' tokens.
  vault.enableKubernetesAuth({kubernetesHost: k8s.url, tokenReviewerJwt: reviewerJwt()})
  vault.putKubernetesRole('external-secrets', {
    boundServiceAccountNames: ['kseal-controller'],
    boundServiceAccountNamespaces: ['apps'],
    audience: 'vault',
    policies: ['apps-read'],
    ttl: 600,
    maxTtl: 1800,
  })
  vault.putPolicy('apps-read', {'secret/data/apps/*': ['read'], 'secret/metadata/apps/*': ['read', 'list']})
  vault.writeSecret('secret', 'apps/db', {username: 'app', password: 'v1-pass'})
  vault.writeSecret('secret', 'apps/db', {username: 'app', password: 'v2-pass'})
  vault.writeSecret('secret', 'infra/root', {password: 'not-for-apps'})
})

afterAll(async () => {
  await Promise.all([vault.close(), k8s.close()])
})

afterEach(() => {
  vault.clearFaults()
  vault.clearRateLimits()
  vault.latencyMs = 0
})

describe('KV version 2', () => {
  it('reads the current or a given version in the data.data / data.metadata shape and Vault envelope', async () => {
    const r = await v('secret/data/apps/db', {token: vault.rootToken})
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toBe('application/json')
    expect(r.json).toEqual({
      request_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: {
        data: {username: 'app', password: 'v2-pass'},
        metadata: {
          created_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          custom_metadata: null,
          deletion_time: '',
          destroyed: false,
          version: 2,
        },
      },
      wrap_info: null,
      warnings: null,
      auth: null,
      mount_type: 'kv',
    })
    expect((await v('secret/data/apps/db?version=1', {token: vault.rootToken})).json.data.data.password).toBe('v1-pass')
    for (const path of ['secret/data/apps/db?version=9', 'secret/data/apps/none']) {
      expect(await v(path, {token: vault.rootToken})).toMatchObject({status: 404, json: {errors: []}})
    }
    const v1Path = await v('secret/apps/db', {token: vault.rootToken})
    expect(v1Path.status).toBe(404)
    expect(v1Path.json.warnings).toEqual([expect.stringMatching(/^Invalid path for a versioned K\/V secrets engine\./)])
  })

  it('a deleted or destroyed version reads as 404 with its metadata; undelete restores it', async () => {
    vault.writeSecret('secret', 'apps/rotating', {v: '1'})
    vault.writeSecret('secret', 'apps/rotating', {v: '2'})
    const root = {token: vault.rootToken}
    expect((await v('secret/data/apps/rotating', {method: 'DELETE', ...root})).status).toBe(204)
    const deleted = await v('secret/data/apps/rotating', root)
    expect(deleted.status).toBe(404)
    expect(deleted.json.data).toEqual({
      data: null,
      metadata: expect.objectContaining({version: 2, destroyed: false, deletion_time: expect.stringMatching(/Z$/)}),
    })
    expect((await v('secret/data/apps/rotating?version=1', root)).json.data.data).toEqual({v: '1'})
    expect((await v('secret/undelete/apps/rotating', {body: {versions: [2]}, ...root})).status).toBe(204)
    expect((await v('secret/data/apps/rotating', root)).json.data.data).toEqual({v: '2'})
    expect((await v('secret/destroy/apps/rotating', {method: 'PUT', body: {versions: [1]}, ...root})).status).toBe(204)
    const destroyed = await v('secret/data/apps/rotating?version=1', root)
    expect([destroyed.status, destroyed.json.data.metadata.destroyed, destroyed.json.data.data]).toEqual([404, true, null])
    const meta = await v('secret/metadata/apps/rotating', root)
    expect(meta.json.data).toMatchObject({
      current_version: 2,
      oldest_version: 1,
      versions: {'1': {destroyed: true}, '2': {destroyed: false, deletion_time: ''}},
    })
  })

  it('writes with check-and-set, lists keys (folders end in /), deletes all metadata', async () => {
    const root = {token: vault.rootToken}
    const w = await v('secret/data/listing/a', {body: {data: {k: 'v'}, options: {cas: 0}}, ...root})
    expect([w.status, w.json.data.version]).toEqual([200, 1])
    const cas = await v('secret/data/listing/a', {body: {data: {k: 'w'}, options: {cas: 0}}, ...root})
    expect(cas).toMatchObject({status: 400, json: {errors: ['check-and-set parameter did not match the current version']}})
    vault.writeSecret('secret', 'listing/sub/b', {k: 'v'})
    const list = await v('secret/metadata/listing?list=true', root)
    expect([list.status, list.json.data.keys]).toEqual([200, ['a', 'sub/']])
    expect((await v('secret/metadata/nothing-here?list=true', root)).json).toEqual({errors: []})
    expect((await v('secret/metadata/listing/a', {method: 'DELETE', ...root})).status).toBe(204)
    expect((await v('secret/data/listing/a', root)).status).toBe(404)
  })
})

describe('Kubernetes auth', () => {
  it('logs a ServiceAccount in after a TokenReview, with the role policies and TTL', async () => {
    const jwt = saJwt('kseal-controller')
    k8s.clearRequests()
    const r = await login(jwt)
    expect(r.status).toBe(200)
    const uid = k8s.getObject('v1', 'ServiceAccount', 'apps', 'kseal-controller')!.metadata.uid
    expect(r.json).toMatchObject({
      data: null,
      mount_type: 'kubernetes',
      auth: {
        client_token: expect.stringMatching(/^hvs\./),
        accessor: expect.any(String),
        policies: ['apps-read', 'default'],
        token_policies: ['apps-read', 'default'],
        metadata: {
          role: 'external-secrets',
          service_account_name: 'kseal-controller',
          service_account_namespace: 'apps',
          service_account_secret_name: '',
          service_account_uid: uid,
        },
        lease_duration: 600,
        renewable: true,
        token_type: 'service',
        orphan: true,
      },
    })
    // Vault asked the Kubernetes API, authenticated as its reviewer ServiceAccount.
    expect(k8s.findRequests({resource: 'tokenreviews'})).toEqual([
      expect.objectContaining({verb: 'create', status: 201, user: 'system:serviceaccount:vault:vault-reviewer'}),
    ])
    const token = r.json.auth.client_token
    expect((await v('secret/data/apps/db', {token})).json.data.data.password).toBe('v2-pass')
    expect(await v('secret/data/infra/root', {token})).toMatchObject({status: 403, json: ACL_DENIED})
    expect((await v('secret/metadata/apps?list=true', {token})).json.data.keys).toContain('db')
    expect((await v('secret/data/apps/db', {token, bearer: true})).status).toBe(200)
  })

  it('refuses with the plugin errors: missing fields, unknown role, audience, expiry, ServiceAccount name and namespace, a token the TokenReview rejects', async () => {
    expect(await v('auth/kubernetes/login', {body: {jwt: 'x'}})).toMatchObject({status: 400, json: {errors: ['missing role']}})
    expect(await v('auth/kubernetes/login', {body: {role: 'external-secrets'}})).toMatchObject({
      status: 400,
      json: {errors: ['missing jwt']},
    })
    expect(await login(saJwt('kseal-controller'), 'nope')).toMatchObject({status: 400, json: {errors: ['invalid role name "nope"']}})
    expect(await login(saJwt('kseal-controller', 'apps', ['sts.amazonaws.com']))).toMatchObject({
      status: 403,
      json: {errors: ['invalid audience (aud) claim: audience claim does not match any expected audience']},
    })
    expect(await login(saJwt('intruder'))).toMatchObject({status: 403, json: {errors: ['service account name not authorized']}})
    expect(await login(saJwt('kseal-controller', 'other'))).toMatchObject({status: 403, json: {errors: ['namespace not authorized']}})
    expect(await login('not.a-jwt')).toMatchObject({status: 403, json: DENIED})

    // Claims rewritten to pass the role checks: only the TokenReview can tell, and it does.
    const [h, p, s] = saJwt('intruder').split('.')
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString())
    const forged = {
      ...claims,
      sub: 'system:serviceaccount:apps:kseal-controller',
      'kubernetes.io': {
        ...claims['kubernetes.io'],
        serviceaccount: {name: 'kseal-controller', uid: claims['kubernetes.io'].serviceaccount.uid},
      },
    }
    expect(await login(`${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`)).toMatchObject({status: 403, json: DENIED})

    const expiring = saJwt('kseal-controller', 'apps', ['vault'], 600)
    const before = clock.offsetMs
    try {
      clock.advance(661_000)
      expect(await login(expiring)).toMatchObject({status: 403, json: {errors: ['invalid expiration time (exp) claim: token is expired']}})
    } finally {
      clock.offsetMs = before
    }

    // The ServiceAccount is gone (or recreated): the token no longer reviews.
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'kseal-controller', namespace: 'apps'}})
    const old = saJwt('kseal-controller')
    k8s.deleteObject('v1', 'ServiceAccount', 'apps', 'kseal-controller')
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'kseal-controller', namespace: 'apps'}})
    expect(await login(old)).toMatchObject({status: 403, json: DENIED})
    expect((await login(saJwt('kseal-controller'))).status).toBe(200)
  })

  it('without a reviewer JWT the client’s own JWT reviews itself, so it must be valid for the API server’s audience', async () => {
    vault.enableKubernetesAuth({kubernetesHost: k8s.url}, {mount: 'k8s-self'})
    vault.putKubernetesRole('r', {boundServiceAccountNames: ['*'], boundServiceAccountNamespaces: ['apps']}, {mount: 'k8s-self'})
    k8s.clearRequests()
    const r = await v('auth/k8s-self/login', {body: {role: 'r', jwt: saJwt('intruder', 'apps', [k8s.serviceAccountIssuer])}})
    expect(r.json.auth.metadata.service_account_name).toBe('intruder')
    expect(r.json.auth.policies).toEqual(['default'])
    expect(k8s.findRequests({resource: 'tokenreviews'}).map((x) => [x.user, x.status])).toEqual([
      ['system:serviceaccount:apps:intruder', 201],
    ])
    // A token for another audience cannot authenticate to the API server (401), so the login is refused.
    k8s.clearRequests()
    expect(await v('auth/k8s-self/login', {body: {role: 'r', jwt: saJwt('intruder')}})).toMatchObject({status: 403, json: DENIED})
    expect(k8s.findRequests({resource: 'tokenreviews'}).map((x) => x.status)).toEqual([401])
  })
})

describe('tokens', () => {
  it('expire on test time; renew-self extends them up to the max TTL, with Vault’s warning when capped', async () => {
    const token = (await login(saJwt('kseal-controller'))).json.auth.client_token
    const self = await v('auth/token/lookup-self', {token})
    expect(self.json.data).toMatchObject({
      creation_ttl: 600,
      ttl: 600,
      explicit_max_ttl: 1800,
      display_name: 'kubernetes-apps-kseal-controller',
      path: 'auth/kubernetes/login',
      policies: ['apps-read', 'default'],
      renewable: true,
      type: 'service',
      namespace_path: '',
      meta: {role: 'external-secrets', service_account_name: 'kseal-controller'},
    })
    expect(Date.parse(self.json.data.expire_time)).toBe(Date.parse(self.json.data.issue_time) + 600_000)

    const before = clock.offsetMs
    try {
      clock.advance(500_000)
      expect((await v('auth/token/lookup-self', {token})).json.data.ttl).toBe(100)
      const renewed = await v('auth/token/renew-self', {token, body: {increment: '10m'}})
      expect(renewed.json).toMatchObject({auth: {client_token: token, lease_duration: 600, renewable: true}, warnings: null})
      clock.advance(550_000)
      const capped = await v('auth/token/renew-self', {token, body: {increment: '20m'}})
      expect(capped.json.auth.lease_duration).toBe(750)
      expect(capped.json.warnings).toEqual(['TTL of "20m0s" exceeded the effective max_ttl of "12m30s"; TTL value is capped accordingly'])
      expect((await v('secret/data/apps/db', {token})).status).toBe(200)
      clock.advance(751_000)
      expect(await v('secret/data/apps/db', {token})).toMatchObject({status: 403, json: DENIED})
      expect(await v('auth/token/lookup-self', {token})).toMatchObject({status: 403, json: DENIED})
    } finally {
      clock.offsetMs = before
    }
  })

  it('no token, an unknown token, a revoked token → 403 permission denied; non-renewable tokens cannot renew; TTL 0 is the default TTL; without the default policy a token cannot look itself up', async () => {
    expect(await v('secret/data/apps/db')).toMatchObject({status: 403, json: DENIED})
    expect(await v('secret/data/apps/db', {token: 'hvs.not-a-token'})).toMatchObject({status: 403, json: DENIED})
    const {token} = vault.createToken({policies: ['apps-read'], renewable: false, ttl: 60})
    expect(await v('auth/token/renew-self', {token, body: {}})).toMatchObject({status: 400, json: {errors: ['lease is not renewable']}})
    expect((await v('auth/token/revoke-self', {token, method: 'POST'})).status).toBe(204)
    expect(await v('auth/token/lookup-self', {token})).toMatchObject({status: 403, json: DENIED})
    // A TTL of 0 means the default (768h), not "never": only the root token does not expire.
    const zero = vault.createToken({ttl: 0}).token
    expect((await v('auth/token/lookup-self', {token: zero})).json.data).toMatchObject({ttl: 32 * 86_400, creation_ttl: 32 * 86_400})
    expect((await v('auth/token/lookup-self', {token: vault.rootToken})).json.data).toMatchObject({
      ttl: 0,
      expire_time: null,
      policies: ['root'],
    })
    const bare = vault.createToken({policies: ['apps-read'], noDefaultPolicy: true}).token
    expect(await v('auth/token/lookup-self', {token: bare})).toMatchObject({status: 403, json: ACL_DENIED})
    expect(await v('nothing/mounted/here', {token: vault.rootToken})).toMatchObject({
      status: 404,
      json: {errors: ['no handler for route "nothing/mounted/here". route entry not found.']},
    })
  })
})

describe('Enterprise namespaces', () => {
  beforeAll(() => {
    vault.createNamespace('team-a')
    vault.createNamespace('team-a/payments')
    vault.mountKv('secret', {namespace: 'team-a'})
    vault.mountKv('kv', {namespace: 'team-a/payments'})
    vault.writeSecret('secret', 'db', {password: 'team-a-pass'}, {namespace: 'team-a'})
    vault.writeSecret('kv', 'card', {key: 'payments-key'}, {namespace: 'team-a/payments'})
    vault.putPolicy('read-all', {'secret/data/*': ['read'], 'payments/kv/data/*': ['read']}, {namespace: 'team-a'})
  })

  it('the X-Vault-Namespace header, the path prefix, or both name the namespace; tokens work in their namespace and below', async () => {
    const {token} = vault.createToken({namespace: 'team-a', policies: ['read-all']})
    expect((await v('secret/data/db', {token, namespace: 'team-a'})).json.data.data).toEqual({password: 'team-a-pass'})
    expect((await v('team-a/secret/data/db', {token})).json.data.data).toEqual({password: 'team-a-pass'})
    expect((await v('payments/kv/data/card', {token, namespace: 'team-a'})).json.data.data).toEqual({key: 'payments-key'})
    expect((await v('kv/data/card', {token, namespace: 'team-a/payments/'})).json.data.data).toEqual({key: 'payments-key'})
    expect(vault.calls.at(-1)).toMatchObject({namespace: 'team-a/payments', path: 'kv/data/card', status: 200})
    // The root namespace's secret/ is another mount, and this token is not valid there.
    expect(await v('secret/data/apps/db', {token})).toMatchObject({status: 403, json: DENIED})
    // A root-namespace token with a policy naming the child path.
    vault.putPolicy('cross', {'team-a/secret/data/*': ['read']})
    const rootNs = vault.createToken({policies: ['cross']}).token
    expect((await v('secret/data/db', {token: rootNs, namespace: 'team-a'})).status).toBe(200)
    expect(await v('payments/kv/data/card', {token: rootNs, namespace: 'team-a'})).toMatchObject({status: 403, json: ACL_DENIED})
  })

  it('Kubernetes auth mounted in a namespace issues tokens of that namespace', async () => {
    vault.enableKubernetesAuth({kubernetesHost: k8s.url, tokenReviewerJwt: reviewerJwt()}, {namespace: 'team-a'})
    vault.putKubernetesRole(
      'es',
      {
        boundServiceAccountNames: ['kseal-controller'],
        boundServiceAccountNamespaces: ['apps'],
        audience: 'vault',
        policies: ['read-all'],
        ttl: 300,
      },
      {namespace: 'team-a'},
    )
    const r = await login(saJwt('kseal-controller'), 'es', 'team-a')
    expect(r.status).toBe(200)
    const token = r.json.auth.client_token
    expect((await v('auth/token/lookup-self', {token, namespace: 'team-a'})).json.data.namespace_path).toBe('team-a/')
    expect((await v('secret/data/db', {token, namespace: 'team-a'})).status).toBe(200)
    expect(await login(saJwt('kseal-controller'), 'es')).toMatchObject({status: 400, json: {errors: ['invalid role name "es"']}})
  })
})

describe('rate limits, faults, health, call log', () => {
  it('a rate-limit quota answers 429 with Vault’s body and headers until the bucket refills', async () => {
    vault.rateLimit({rate: 2, path: 'secret/'})
    const root = {token: vault.rootToken}
    expect((await v('secret/data/apps/db', root)).status).toBe(200)
    expect((await v('secret/data/apps/db', root)).status).toBe(200)
    const limited = await v('secret/data/apps/db', root)
    expect(limited.status).toBe(429)
    expect(limited.json).toEqual({errors: ['request path "secret/data/apps/db": rate limit quota exceeded']})
    expect([
      limited.headers.get('retry-after'),
      limited.headers.get('x-ratelimit-limit'),
      limited.headers.get('x-ratelimit-remaining'),
    ]).toEqual(['1', '2', '0'])
    expect((await v('auth/token/lookup-self', root)).status).toBe(200)
    clock.advance(1000)
    expect((await v('secret/data/apps/db', root)).status).toBe(200)
  })

  it('injected faults, latency, sys/health; the call log holds accessors, never tokens or values', async () => {
    vault.failNext(1, {status: 503})
    expect(await v('secret/data/apps/db', {token: vault.rootToken})).toMatchObject({status: 503, json: {errors: ['Vault is sealed']}})
    const health = await v('sys/health')
    expect([health.status, health.json.sealed, health.json.initialized]).toEqual([200, false, true])
    vault.latencyMs = 80
    const t0 = Date.now()
    await v('sys/health')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75)
    vault.resetStats()
    const token = (await login(saJwt('kseal-controller'))).json.auth.client_token
    await v('secret/data/apps/db', {token})
    expect(vault.calls.map((c) => [c.method, c.path, c.status])).toEqual([
      ['POST', 'auth/kubernetes/login', 200],
      ['GET', 'secret/data/apps/db', 200],
    ])
    expect(vault.calls[1]!.accessor).toMatch(/^[A-Za-z0-9_-]+$/)
    const log = JSON.stringify(vault.calls)
    expect(log).not.toContain(token)
    expect(log).not.toContain('v2-pass')
  })
})
