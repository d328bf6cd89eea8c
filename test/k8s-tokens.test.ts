/**
 * ServiceAccounts, TokenRequest, TokenReview, OIDC discovery and token authentication on the
 * Kubernetes API test server, through the real @kubernetes/client-node over a real socket.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {createPublicKey, verify, type JsonWebKey} from 'node:crypto'
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  KubeConfig,
  type V1TokenRequestSpec,
  type V1TokenReview,
} from '@kubernetes/client-node'
import {TestClock} from './support/clock.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'
import type {AuthorizationAttributes} from './support/k8s-api-server.js'

const NS = 'apps'
const clock = new TestClock()
const decisions: AuthorizationAttributes[] = []
let srv: K8sApiServer
let admin: KubeConfig

/** The status and Status body of a failed call (client-node drops the body of a 401). */
async function failure(p: Promise<unknown>): Promise<{code: number; body: KubeObject}> {
  try {
    await p
  } catch (e) {
    if (e instanceof ApiException) return {code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : (e.body ?? {})}
    throw e
  }
  throw new Error('expected the API call to fail')
}

function claims(token: string): KubeObject {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'))
}

/** A kubeconfig that authenticates with a bearer token. */
function kubeconfigFor(token: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{name: 'c', server: srv.url, skipTLSVerify: true}],
    users: [{name: 'u', token}],
    contexts: [{name: 'x', cluster: 'c', user: 'u'}],
    currentContext: 'x',
  })
  return kc
}

async function createSa(name: string, ns = NS): Promise<KubeObject> {
  return (await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccount({namespace: ns, body: {metadata: {name}}})) as KubeObject
}

async function tokenRequest(name: string, spec: Partial<V1TokenRequestSpec> = {}, ns = NS) {
  const body = {apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {audiences: [], ...spec}}
  return admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({namespace: ns, name, body})
}

async function review(token: string, audiences?: string[]): Promise<V1TokenReview> {
  return admin
    .makeApiClient(AuthenticationV1Api)
    .createTokenReview({body: {apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: {token, audiences}}})
}

beforeAll(async () => {
  srv = await startK8sApiServer({
    token: 'admin-token',
    namespaces: ['default', NS, 'other'],
    tokens: {
      clock,
      serviceAccountMaxTokenExpirationSeconds: 86_400,
      // An RBAC stand-in: `reader` may read Secrets in its own namespace and review tokens; `minter` may mint tokens for `vault-auth`.
      authorizer: (a) => {
        decisions.push(a)
        if (a.user.username === `system:serviceaccount:${NS}:reader`) {
          return (
            (a.resource === 'secrets' && a.verb === 'get' && a.namespace === NS) || (a.resource === 'tokenreviews' && a.verb === 'create')
          )
        }
        if (a.user.username === `system:serviceaccount:${NS}:minter`)
          return a.resource === 'serviceaccounts' && a.subresource === 'token' && a.name === 'vault-auth'
        return false
      },
    },
  })
  admin = srv.kubeConfig()
  await createSa('app')
})

afterAll(async () => {
  await srv.close()
})

describe('ServiceAccounts', () => {
  it('are a namespaced core/v1 resource with the sa short name', async () => {
    const core = admin.makeApiClient(CoreV1Api)
    const created = await createSa('listed')
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/)
    expect((await core.readNamespacedServiceAccount({namespace: NS, name: 'listed'})).metadata!.uid).toBe(created.metadata.uid)
    expect((await core.listNamespacedServiceAccount({namespace: NS})).items.map((s) => s.metadata!.name)).toContain('listed')
    const list = await (await fetch(`${srv.url}/api/v1`, {headers: {authorization: 'Bearer admin-token'}})).json()
    expect(list.resources).toEqual(
      expect.arrayContaining([
        expect.objectContaining({name: 'serviceaccounts', kind: 'ServiceAccount', shortNames: ['sa'], namespaced: true}),
        {
          name: 'serviceaccounts/token',
          singularName: '',
          namespaced: true,
          group: 'authentication.k8s.io',
          version: 'v1',
          kind: 'TokenRequest',
          verbs: ['create'],
        },
      ]),
    )
    const groups = await (await fetch(`${srv.url}/apis`, {headers: {authorization: 'Bearer admin-token'}})).json()
    expect(groups.groups.map((g: KubeObject) => g.name)).toContain('authentication.k8s.io')
    const auth = await (await fetch(`${srv.url}/apis/authentication.k8s.io/v1`, {headers: {authorization: 'Bearer admin-token'}})).json()
    expect(auth.resources).toEqual([
      {name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create']},
    ])
  })
})

describe('TokenRequest', () => {
  it('issues an RS256 JWT with the apiserver claims; defaults: API audiences, one hour', async () => {
    const sa = (await admin.makeApiClient(CoreV1Api).readNamespacedServiceAccount({namespace: NS, name: 'app'})) as KubeObject
    const before = Math.floor(clock.now() / 1000)
    const tr = await tokenRequest('app')
    expect(tr.kind).toBe('TokenRequest')
    expect(tr.metadata).toMatchObject({name: 'app', namespace: NS, uid: sa.metadata.uid})
    expect(tr.spec).toMatchObject({audiences: [srv.serviceAccountIssuer], expirationSeconds: 3600})
    expect(srv.serviceAccountIssuer).toBe(srv.url)
    const token = tr.status!.token
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'))
    expect(header).toEqual({alg: 'RS256', kid: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/)})
    const c = claims(token)
    expect(c).toEqual({
      aud: [srv.serviceAccountIssuer],
      exp: c.iat + 3600,
      iat: expect.any(Number),
      iss: srv.serviceAccountIssuer,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      'kubernetes.io': {namespace: NS, serviceaccount: {name: 'app', uid: sa.metadata.uid}},
      nbf: c.iat,
      sub: `system:serviceaccount:${NS}:app`,
    })
    expect(c.iat).toBeGreaterThanOrEqual(before)
    expect(tr.status!.expirationTimestamp.getTime()).toBe(c.exp * 1000)
  })

  it('audiences and expirationSeconds as asked; below 10 minutes or above 2^32 s → 422; longer than the server maximum → shortened with a Warning', async () => {
    const tr = await tokenRequest('app', {audiences: ['vault', 'sts.amazonaws.com'], expirationSeconds: 600})
    expect(claims(tr.status!.token)).toMatchObject({aud: ['vault', 'sts.amazonaws.com']})
    expect(claims(tr.status!.token).exp - claims(tr.status!.token).iat).toBe(600)

    const short = await failure(tokenRequest('app', {expirationSeconds: 599}))
    expect(short.code).toBe(422)
    expect(short.body).toMatchObject({
      reason: 'Invalid',
      message:
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes',
      details: {
        group: 'authentication.k8s.io',
        kind: 'TokenRequest',
        causes: [{reason: 'FieldValueInvalid', field: 'spec.expirationSeconds'}],
      },
    })
    const long = await failure(tokenRequest('app', {expirationSeconds: 2 ** 32 + 1}))
    expect(long.body.message).toContain('may not specify a duration larger than 2^32 seconds')

    const res = await fetch(`${srv.url}/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
      method: 'POST',
      headers: {authorization: 'Bearer admin-token', 'content-type': 'application/json'},
      body: JSON.stringify({spec: {expirationSeconds: 200_000}}),
    })
    expect(res.status).toBe(201)
    expect(res.headers.get('warning')).toBe('299 - "requested expiration of 200000 seconds shortened to 86400 seconds"')
    const body = await res.json()
    expect(body.spec.expirationSeconds).toBe(86_400)
    expect(claims(body.status.token).exp - claims(body.status.token).iat).toBe(86_400)
  })

  it('a missing ServiceAccount → 404; a mismatched metadata.name → 422; only create is allowed', async () => {
    const missing = await failure(tokenRequest('ghost'))
    expect([missing.code, missing.body.reason, missing.body.message]).toEqual([404, 'NotFound', 'serviceaccounts "ghost" not found'])
    expect(missing.body.details).toEqual({name: 'ghost', kind: 'serviceaccounts'})
    const core = admin.makeApiClient(CoreV1Api)
    const mismatch = await failure(
      core.createNamespacedServiceAccountToken({namespace: NS, name: 'app', body: {metadata: {name: 'other'}, spec: {audiences: []}}}),
    )
    expect([mismatch.code, mismatch.body.message]).toEqual([
      422,
      'TokenRequest.authentication.k8s.io "app" is invalid: metadata.name: Invalid value: "other": must match the service account name if specified',
    ])
    const get = await fetch(`${srv.url}/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
      headers: {authorization: 'Bearer admin-token'},
    })
    expect(get.status).toBe(405)
  })

  it('boundObjectRef to a Secret: bound in the claims; deleting the Secret invalidates the token; a stale UID → 409', async () => {
    const core = admin.makeApiClient(CoreV1Api)
    const secret = await core.createNamespacedSecret({namespace: NS, body: {metadata: {name: 'binder'}, stringData: {k: 'v'}}})
    const tr = await tokenRequest('app', {boundObjectRef: {kind: 'Secret', apiVersion: 'v1', name: 'binder'}})
    expect(tr.spec.boundObjectRef).toEqual({kind: 'Secret', apiVersion: 'v1', name: 'binder', uid: secret.metadata!.uid})
    expect(claims(tr.status!.token)['kubernetes.io'].secret).toEqual({name: 'binder', uid: secret.metadata!.uid})
    expect((await review(tr.status!.token)).status!.authenticated).toBe(true)
    const stale = await failure(
      tokenRequest('app', {
        boundObjectRef: {kind: 'Secret', apiVersion: 'v1', name: 'binder', uid: '00000000-0000-0000-0000-000000000000'},
      }),
    )
    expect([stale.code, stale.body.reason]).toEqual([409, 'Conflict'])
    expect(stale.body.message).toContain(
      'the UID in the bound object reference (00000000-0000-0000-0000-000000000000) does not match the UID in record',
    )
    await core.deleteNamespacedSecret({namespace: NS, name: 'binder'})
    expect((await review(tr.status!.token)).status).toEqual({user: {}, error: 'service account token has been invalidated'})
    const unsupported = await failure(tokenRequest('app', {boundObjectRef: {kind: 'ConfigMap', apiVersion: 'v1', name: 'x'}}))
    expect([unsupported.code, unsupported.body.message]).toEqual([400, 'cannot bind token to object of type /v1, Kind=ConfigMap'])
  })
})

describe('TokenReview', () => {
  it('authenticates a valid token: user, UID, groups, credential id, audiences', async () => {
    const tr = await tokenRequest('app', {audiences: ['vault']})
    const sa = (await admin.makeApiClient(CoreV1Api).readNamespacedServiceAccount({namespace: NS, name: 'app'})) as KubeObject
    const r = await review(tr.status!.token, ['vault'])
    expect(r.kind).toBe('TokenReview')
    expect(r.spec).toEqual({token: tr.status!.token, audiences: ['vault']})
    expect(r.status).toEqual({
      authenticated: true,
      user: {
        username: `system:serviceaccount:${NS}:app`,
        uid: sa.metadata.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        extra: {'authentication.kubernetes.io/credential-id': [`JTI=${claims(tr.status!.token).jti}`]},
      },
      audiences: ['vault'],
    })
  })

  it('refuses with the apiserver wording: wrong audience, expired, tampered, ServiceAccount deleted or recreated; other issuers are not ours', async () => {
    const vault = (await tokenRequest('app', {audiences: ['vault'], expirationSeconds: 600})).status!.token
    expect((await review(vault)).status).toEqual({
      user: {},
      error: `token audiences ["vault"] is invalid for the target audiences ["${srv.serviceAccountIssuer}"]`,
    })
    expect((await review(vault, ['sts.amazonaws.com', 'other'])).status!.error).toBe(
      'token audiences ["vault"] is invalid for the target audiences ["sts.amazonaws.com" "other"]',
    )

    const [h, p, s] = vault.split('.')
    const forged = Buffer.from(JSON.stringify({...claims(vault), sub: `system:serviceaccount:${NS}:admin`})).toString('base64url')
    expect((await review(`${h}.${forged}.${s}`, ['vault'])).status!.error).toBe('square/go-jose: error in cryptographic primitive')
    expect((await review(`${h}.${p}.${s}`, ['vault'])).status!.authenticated).toBe(true)

    // Expiry counts with one minute of leeway, on the server's clock.
    const before = clock.offsetMs
    try {
      clock.advance(600_000 + 30_000)
      expect((await review(vault, ['vault'])).status!.authenticated).toBe(true)
      clock.advance(31_000)
      expect((await review(vault, ['vault'])).status).toEqual({user: {}, error: 'service account token has expired'})
    } finally {
      clock.offsetMs = before
    }

    await createSa('short-lived')
    const t = (await tokenRequest('short-lived')).status!.token
    const core = admin.makeApiClient(CoreV1Api)
    await core.deleteNamespacedServiceAccount({namespace: NS, name: 'short-lived'})
    expect((await review(t)).status!.error).toBe('serviceaccounts "short-lived" not found')
    const again = await createSa('short-lived')
    expect((await review(t)).status!.error).toBe(
      `service account UID (${again.metadata.uid}) does not match claim (${claims(t)['kubernetes.io'].serviceaccount.uid})`,
    )

    const foreign = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"iss":"https://elsewhere"}').toString('base64url')}.sig`
    expect((await review(foreign)).status).toEqual({user: {}})
    const empty = await failure(admin.makeApiClient(AuthenticationV1Api).createTokenReview({body: {spec: {token: ''}}}))
    expect([empty.code, empty.body.message]).toEqual([400, 'token is required for TokenReview in authentication.k8s.io/__internal'])
  })
})

describe('OIDC discovery', () => {
  it('serves the issuer document and JWKS without authentication; the JWKS verifies issued tokens', async () => {
    const doc = await fetch(`${srv.url}/.well-known/openid-configuration`)
    expect(doc.status).toBe(200)
    expect(await doc.json()).toEqual({
      issuer: srv.serviceAccountIssuer,
      jwks_uri: `${srv.url}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    })
    const jwksRes = await fetch(`${srv.url}/openid/v1/jwks`)
    expect(jwksRes.headers.get('content-type')).toBe('application/jwk-set+json')
    const {keys} = (await jwksRes.json()) as {keys: (JsonWebKey & {kid: string})[]}
    expect(keys).toEqual([{use: 'sig', kty: 'RSA', kid: expect.any(String), alg: 'RS256', n: expect.any(String), e: 'AQAB'}])
    const token = srv.issueServiceAccountToken(NS, 'app', {audiences: ['sts.amazonaws.com']}).token
    const [h, p, s] = token.split('.')
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString()).kid).toBe(keys[0]!.kid)
    expect(verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey({key: keys[0]!, format: 'jwk'}), Buffer.from(s!, 'base64url'))).toBe(
      true,
    )
  })
})

describe('authentication and authorization with ServiceAccount tokens', () => {
  it('a ServiceAccount token authenticates as the ServiceAccount; the authorizer decides; denials carry the RBAC message', async () => {
    await createSa('reader')
    const core = admin.makeApiClient(CoreV1Api)
    await core.createNamespacedSecret({namespace: NS, body: {metadata: {name: 'readable'}, stringData: {k: 'v'}}})
    await core.createNamespacedSecret({namespace: 'other', body: {metadata: {name: 'elsewhere'}, stringData: {k: 'v'}}})
    const reader = kubeconfigFor(srv.issueServiceAccountToken(NS, 'reader').token).makeApiClient(CoreV1Api)

    expect((await reader.readNamespacedSecret({namespace: NS, name: 'readable'})).data!.k).toBe(Buffer.from('v').toString('base64'))
    expect(srv.requests.at(-1)).toMatchObject({verb: 'get', resource: 'secrets', user: `system:serviceaccount:${NS}:reader`, status: 200})
    expect(decisions.at(-1)).toMatchObject({
      verb: 'get',
      apiGroup: '',
      resource: 'secrets',
      namespace: NS,
      name: 'readable',
      user: {username: `system:serviceaccount:${NS}:reader`},
    })

    const other = await failure(reader.readNamespacedSecret({namespace: 'other', name: 'elsewhere'}))
    expect(other).toEqual({
      code: 403,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `secrets "elsewhere" is forbidden: User "system:serviceaccount:${NS}:reader" cannot get resource "secrets" in API group "" in the namespace "other"`,
        reason: 'Forbidden',
        details: {name: 'elsewhere', kind: 'secrets'},
        code: 403,
      },
    })
    const list = await failure(reader.listNamespacedSecret({namespace: NS}))
    expect(list.body.message).toBe(
      `secrets is forbidden: User "system:serviceaccount:${NS}:reader" cannot list resource "secrets" in API group "" in the namespace "${NS}"`,
    )
    const mint = await failure(reader.createNamespacedServiceAccountToken({namespace: NS, name: 'app', body: {spec: {audiences: []}}}))
    expect([mint.code, mint.body.message]).toEqual([
      403,
      `serviceaccounts "app" is forbidden: User "system:serviceaccount:${NS}:reader" cannot create resource "serviceaccounts/token" in API group "" in the namespace "${NS}"`,
    ])
    // The static admin token is system:masters: never asked about.
    const asked = decisions.length
    await core.listNamespacedSecret({namespace: 'other'})
    expect(decisions.length).toBe(asked)
    expect(srv.requests.at(-1)!.user).toBe('kubernetes-admin')
  })

  it('create serviceaccounts/token is subject to the authorizer, per ServiceAccount name', async () => {
    await createSa('minter')
    await createSa('vault-auth')
    const minter = kubeconfigFor(srv.issueServiceAccountToken(NS, 'minter').token).makeApiClient(CoreV1Api)
    const ok = await minter.createNamespacedServiceAccountToken({namespace: NS, name: 'vault-auth', body: {spec: {audiences: ['vault']}}})
    expect(claims(ok.status!.token).sub).toBe(`system:serviceaccount:${NS}:vault-auth`)
    const denied = await failure(minter.createNamespacedServiceAccountToken({namespace: NS, name: 'app', body: {spec: {audiences: []}}}))
    expect(denied.code).toBe(403)
  })

  it('an expired, wrong-audience or forged ServiceAccount token gets 401; an unknown bearer token too when the server requires one', async () => {
    await createSa('rejected')
    const tokens = [
      srv.issueServiceAccountToken(NS, 'rejected', {audiences: ['vault']}).token,
      (() => {
        const [h, p, s] = srv.issueServiceAccountToken(NS, 'rejected').token.split('.')
        return `${h}.${Buffer.from(JSON.stringify({...claims(`${h}.${p}.${s}`), sub: 'system:serviceaccount:kube-system:admin'})).toString('base64url')}.${s}`
      })(),
      'not-the-admin-token',
    ]
    for (const t of tokens) {
      expect((await failure(kubeconfigFor(t).makeApiClient(CoreV1Api).readNamespacedSecret({namespace: NS, name: 'readable'}))).code).toBe(
        401,
      )
      const raw = await fetch(`${srv.url}/api/v1/namespaces/${NS}/secrets/readable`, {headers: {authorization: `Bearer ${t}`}})
      expect([raw.status, await raw.json()]).toEqual([
        401,
        {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401},
      ])
    }
    const expiring = srv.issueServiceAccountToken(NS, 'rejected', {expirationSeconds: 600}).token
    const before = clock.offsetMs
    try {
      clock.advance(700_000)
      expect(
        (await failure(kubeconfigFor(expiring).makeApiClient(CoreV1Api).readNamespacedSecret({namespace: NS, name: 'readable'}))).code,
      ).toBe(401)
    } finally {
      clock.offsetMs = before
    }
  })
})
