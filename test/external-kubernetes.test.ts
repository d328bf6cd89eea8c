/**
 * The kubernetes provider through @kubernetes/client-node against the Kubernetes test server with an
 * RBAC-like authorizer: a Secret of another namespace read as the ServiceAccount the store names (a
 * TokenRequest token, renewed before it expires), so RBAC decides what can be copied; find by name
 * and labels over paginated lists; a bearer token from a Secret; and the failures.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {kubeAccess} from '../src/external/access.js'
import {openProvider, type ProviderContext} from '../src/external/providers/index.js'
import type {Provider} from '../src/external/providers/types.js'
import {renderExternalSecret} from '../src/external/render.js'
import type {StoreAccess} from '../src/external/store.js'
import type {ExternalSecret, SecretStore} from '../src/external/types.js'
import {TestClock} from './support/clock.js'
import {decoded, es, store} from './support/external.js'
import {failure} from './support/failure.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import type {AuthorizationAttributes} from './support/k8s-api-server.js'

const NS = 'apps'
const COPIER = `system:serviceaccount:${NS}:copier`
const clock = new TestClock()
let k8s: K8sApiServer
let access: StoreAccess
const opened: Provider[] = []

/** RBAC as a function: the copier may get and list Secrets in `shared` and `big`; other ServiceAccounts nothing; the admin everything. */
function authorizer(a: AuthorizationAttributes): boolean {
  if (a.user.username === COPIER)
    return a.resource === 'secrets' && (a.namespace === 'shared' || a.namespace === 'big') && (a.verb === 'get' || a.verb === 'list')
  return !a.user.username.startsWith('system:serviceaccount:')
}

const ctx = (extra: Partial<ProviderContext> = {}): ProviderContext => ({
  namespace: NS,
  access,
  now: () => clock.now(),
  kubernetes: {defaultServer: {url: k8s.url}},
  ...extra,
})

async function render(e: ExternalSecret, s: SecretStore, provider?: Provider) {
  if (!provider) {
    provider = await openProvider(s, ctx())
    opened.push(provider)
  }
  return renderExternalSecret(e, s, {provider})
}

const copyStore = (remoteNamespace = 'shared', auth: Record<string, unknown> = {serviceAccount: {name: 'copier'}}) =>
  store('copy', NS, {kubernetes: {remoteNamespace, auth}})
const one = (key: string, extra: Record<string, unknown> = {}) =>
  es('copied', NS, {secretStoreRef: {name: 'copy'}, data: [{secretKey: 'v', remoteRef: {key, ...extra}}]})
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64')

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', NS, 'shared', 'private', 'big'], tokens: {clock, authorizer}})
  access = await kubeAccess(k8s.kubeConfig())
  for (const name of ['copier', 'nobody']) k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name, namespace: NS}})
  k8s.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'db', namespace: 'shared', labels: {team: 'payments'}},
    data: {password: b64('shared-pass'), 'tls.key': b64(Buffer.from([0, 0xff, 0x10])), user: b64('app')},
  })
  k8s.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db', namespace: 'private'}, data: {password: b64('private-pass')}})
  for (let i = 0; i < 150; i++)
    k8s.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: `bulk-${String(i).padStart(3, '0')}`, namespace: 'shared', labels: {tier: i % 3 ? 'b' : 'a'}},
      data: {v: b64(String(i))},
    })
})

afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()))
  k8s.clearFaults()
})

afterAll(async () => {
  await k8s.close()
})

describe('copying from another namespace as the store ServiceAccount', () => {
  it('reads with a TokenRequest token for the ServiceAccount: one key (bytes exact), the whole Secret as JSON, extract', async () => {
    k8s.clearRequests()
    const r = await render(
      es('copied', NS, {
        secretStoreRef: {name: 'copy'},
        data: [
          {secretKey: 'password', remoteRef: {key: 'db', property: 'password'}},
          {secretKey: 'key', remoteRef: {key: 'db', property: 'tls.key'}},
          {secretKey: 'all', remoteRef: {key: 'db'}},
        ],
        dataFrom: [{extract: {key: 'db'}}],
      }),
      copyStore(),
    )
    const d = decoded(r.secret)
    expect(d.password).toBe('shared-pass')
    expect(Buffer.from(r.secret!.data.key, 'base64')).toEqual(Buffer.from([0, 0xff, 0x10]))
    // As Go's json.Marshal of the Secret's strings: bytes that are not UTF-8 become U+FFFD (use property for binary keys).
    expect(JSON.parse(d.all)).toEqual({password: 'shared-pass', 'tls.key': '\u0000\ufffd\u0010', user: 'app'})
    expect(d.user).toBe('app')
    expect(k8s.findRequests({resource: 'serviceaccounts', subresource: 'token'}).map((q) => [q.namespace, q.name])).toEqual([
      [NS, 'copier'],
    ])
    expect(k8s.findRequests({resource: 'secrets', verb: 'get'}).map((q) => [q.namespace, q.name, q.user, q.status])).toEqual([
      ['shared', 'db', COPIER, 200],
    ])
  })

  it('RBAC decides: another namespace the ServiceAccount may not read, and a ServiceAccount without rights, are refused', async () => {
    const f = await failure(render(one('db'), copyStore('private')))
    expect(f.code).toBe('ERR_DENIED')
    expect(f.message).toBe(
      `SecretStore apps/copy (kubernetes): remote key "db": HTTP 403 Forbidden: secrets "db" is forbidden: User "${COPIER}" cannot get resource "secrets" in API group "" in the namespace "private"`,
    )
    expect(f.message).not.toContain('private-pass')
    const nobody = await failure(render(one('db'), copyStore('shared', {serviceAccount: {name: 'nobody'}})))
    expect(nobody.code).toBe('ERR_DENIED')
    expect(nobody.message).toContain(`User "system:serviceaccount:${NS}:nobody" cannot get resource "secrets"`)
  })

  it('find pages through the list with tags as a label selector and the name regexp', async () => {
    k8s.clearRequests()
    const r = await render(
      es('found', NS, {secretStoreRef: {name: 'copy'}, dataFrom: [{find: {name: {regexp: '^bulk-1[0-4][0-9]$'}, tags: {tier: 'a'}}}]}),
      copyStore(),
    )
    expect(Object.keys(r.secret!.data)).toHaveLength(16)
    expect(JSON.parse(decoded(r.secret)['bulk-102'])).toEqual({v: '102'})
    const lists = k8s.findRequests({resource: 'secrets', verb: 'list'})
    expect(lists.map((q) => q.query.labelSelector)).toEqual(['tier=a'])
    const all = await render(es('found', NS, {secretStoreRef: {name: 'copy'}, dataFrom: [{find: {name: {regexp: '^bulk-'}}}]}), copyStore())
    expect(Object.keys(all.secret!.data)).toHaveLength(150)
    expect(k8s.findRequests({resource: 'secrets', verb: 'list'}).length).toBe(3)
  })

  it('renews its ServiceAccount token before it expires', async () => {
    const s = copyStore()
    const p = await openProvider(s, ctx())
    opened.push(p)
    const tokens = () => k8s.countRequests({resource: 'serviceaccounts', subresource: 'token'})
    const before = tokens()
    await render(one('db', {property: 'user'}), s, p)
    clock.advance(400_000)
    await render(one('db', {property: 'user'}), s, p)
    expect(tokens()).toBe(before + 1)
    clock.advance(100_000) // 500 s of 600: less than a fifth left, a new one
    expect(decoded((await render(one('db', {property: 'user'}), s, p)).secret)).toEqual({v: 'app'})
    expect(tokens()).toBe(before + 2)
  })

  it("a bearer token from a Secret of the ExternalSecret's namespace", async () => {
    const {token} = k8s.issueServiceAccountToken(NS, 'copier', {expirationSeconds: 3600})
    k8s.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'copier-token', namespace: NS}, stringData: {token}})
    const r = await render(
      one('db', {property: 'password'}),
      copyStore('shared', {token: {bearerToken: {name: 'copier-token', key: 'token'}}}),
    )
    expect(decoded(r.secret)).toEqual({v: 'shared-pass'})
  })

  it('a find holds at most 8 MiB of values; a remote key must be a Secret name', async () => {
    for (let i = 0; i < 9; i++)
      k8s.putObject({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {name: `huge-${i}`, namespace: 'big'},
        data: {v: b64(Buffer.alloc(1024 * 1024, 'x'))},
      })
    const f = await failure(
      render(es('found', NS, {secretStoreRef: {name: 'copy'}, dataFrom: [{find: {name: {regexp: '^huge-'}}}]}), copyStore('big')),
    )
    expect({code: f.code, message: f.message}).toEqual({
      code: 'ERR_INPUT',
      message: "SecretStore apps/copy (kubernetes): find's values are larger than 8388608 bytes; narrow it",
    })
    expect((await failure(render(one('../db'), copyStore()))).message).toBe(
      'SecretStore apps/copy (kubernetes): remote key "../db": is not a Secret name',
    )
  })

  it('not found, a version, throttling with Retry-After', async () => {
    expect(await failure(render(one('nope'), copyStore()))).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message:
        'SecretStore apps/copy (kubernetes): remote key "nope": no such Secret in namespace shared (HTTP 404 NotFound: secrets "nope" not found)',
    })
    expect((await failure(render(one('db', {version: '2'}), copyStore()))).message).toBe(
      'SecretStore apps/copy (kubernetes): remote key "db": the kubernetes provider has no versions; remove version',
    )
    const missingKey = await failure(render(one('db', {property: 'nope'}), copyStore()))
    expect(missingKey.message).toBe('ExternalSecret apps/copied: spec.data[0].remoteRef: remote key "db": the Secret has no key "nope"')
    k8s.failNext(1, {status: 429, retryAfter: 7, match: (q) => q.resource === 'secrets'})
    const throttled = await failure(render(one('db'), copyStore()))
    expect(throttled.code).toBe('ERR_THROTTLED')
    expect((throttled as unknown as {retryAfterMs: number}).retryAfterMs).toBe(7000)
  })
})
