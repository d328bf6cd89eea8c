/**
 * The AWS providers (Secrets Manager, Parameter Store) through the real @aws-sdk clients against the
 * local servers (SigV4 verified), rendered into Secrets: versions and stages, JSON properties,
 * extract, find by name regexp and tags with pagination, one call per remote key, credentials from
 * the default chain, an assumed role, access keys in a Secret of the ExternalSecret's namespace
 * (never another's), IRSA for a tenant's ServiceAccount through TokenRequest, and every failure —
 * not found, denied, throttled — as a distinct error that names store and key and never a value.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {kubeAccess} from '../src/external/access.js'
import {openProvider, type ProviderContext} from '../src/external/providers/index.js'
import {renderExternalSecret} from '../src/external/render.js'
import type {StoreAccess} from '../src/external/store.js'
import type {ExternalSecret, SecretStore} from '../src/external/types.js'
import {AwsIam} from './support/aws/iam.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {type SsmServer, startSsmServer} from './support/aws/ssm.js'
import {type StsServer, startStsServer} from './support/aws/sts.js'
import {TestClock} from './support/clock.js'
import {decoded, es, store} from './support/external.js'
import {failure} from './support/failure.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'

const NS = 'payments'
const ACCOUNT = '111122223333'
const CONTROLLER = {accessKeyId: 'AKIAKSEALCONTROLLER1', secretAccessKey: 'controller/secret/not/a/real/one'}
const TENANT = {accessKeyId: 'AKIAKSEALTENANTKEY01', secretAccessKey: 'tenant/secret/not/a/real/one'}
const OTHER = {accessKeyId: 'AKIAKSEALOTHERTEAM01', secretAccessKey: 'other/secret/not/a/real/one'}
const READER_ROLE = `arn:aws:iam::${ACCOUNT}:role/payments-reader`
const IRSA_ROLE = `arn:aws:iam::${ACCOUNT}:role/payments-irsa`

const clock = new TestClock()
const iam = new AwsIam({clock, accountId: ACCOUNT})
let k8s: K8sApiServer
let sts: StsServer
let sm: SecretsManagerServer
let ssm: SsmServer
let access: StoreAccess
const open: {close(): Promise<void>}[] = []

function ctx(extra: Partial<ProviderContext> = {}): ProviderContext {
  return {
    namespace: NS,
    access,
    aws: {
      credentials: async () => CONTROLLER,
      endpoints: {secretsmanager: sm.url, ssm: ssm.url, sts: sts.url},
      clientConfig: {maxAttempts: 1},
    },
    ...extra,
  }
}

async function render(e: ExternalSecret, s: SecretStore, c: ProviderContext = ctx(), existing?: null) {
  const provider = await openProvider(s, c)
  open.push(provider)
  return renderExternalSecret(e, s, {provider, existing})
}

const smStore = (provider: Record<string, unknown> = {}) =>
  store('aws', NS, {aws: {service: 'SecretsManager', region: 'us-east-1', ...provider}})
const ssmStore = () => store('ssm', NS, {aws: {service: 'ParameterStore', region: 'us-east-1'}})
const ref = (kind = 'SecretStore', name = 'aws') => ({secretStoreRef: {name, kind}})

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', NS, 'other'], tokens: {clock}})
  access = await kubeAccess(k8s.kubeConfig())
  iam.addAccessKey(CONTROLLER.accessKeyId, CONTROLLER.secretAccessKey, `arn:aws:iam::${ACCOUNT}:user/kseal-controller`)
  iam.addAccessKey(TENANT.accessKeyId, TENANT.secretAccessKey, `arn:aws:iam::${ACCOUNT}:user/payments-team`)
  iam.addAccessKey(OTHER.accessKeyId, OTHER.secretAccessKey, `arn:aws:iam::${ACCOUNT}:user/other-team`)
  iam.createRole('payments-reader', {principals: [`arn:aws:iam::${ACCOUNT}:user/kseal-controller`], externalId: 'kseal-payments'})
  iam.createOidcProvider(k8s.serviceAccountIssuer, ['sts.amazonaws.com'])
  iam.createRole('payments-irsa', {webIdentity: {issuer: k8s.serviceAccountIssuer, subjects: [`system:serviceaccount:${NS}:payments-app`]}})
  sts = await startStsServer({iam})
  sm = await startSecretsManagerServer({iam})
  ssm = await startSsmServer({iam})

  sm.createSecret(
    'payments/db',
    JSON.stringify({
      username: 'app',
      password: 'v1-pass',
      'db.host': 'literal-dot',
      db: {host: 'nested', port: 5432},
      replicas: [{host: 'r0'}, {host: 'r1'}],
      ratio: 1.5,
    }),
  )
  sm.putSecretValue('payments/db', JSON.stringify({username: 'app', password: 'v2-pass'}))
  sm.createSecret('payments/api-key', 's3cr3t-api-key')
  sm.createSecret('payments/cert', new Uint8Array([0x30, 0x82, 0x01, 0xff]))
  sm.createSecret('payments/b64', Buffer.from('decoded value').toString('base64'))
  k8s.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'aws-keys', namespace: NS},
    data: {id: Buffer.from(TENANT.accessKeyId).toString('base64'), secret: Buffer.from(`${TENANT.secretAccessKey}\n`).toString('base64')},
  })
  k8s.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'other-keys', namespace: 'other'},
    data: {id: Buffer.from(OTHER.accessKeyId).toString('base64'), secret: Buffer.from(OTHER.secretAccessKey).toString('base64')},
  })
  k8s.putObject({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {name: 'payments-app', namespace: NS, annotations: {'eks.amazonaws.com/role-arn': IRSA_ROLE}},
  })
  k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'no-role', namespace: NS}})
})

afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()))
  sm.clearFaults()
  sm.clearThrottles()
  sm.clearDenies()
  sm.resetStats()
  ssm.resetStats()
  sts.resetStats()
  sm.listScanLimit = Infinity
})

afterAll(async () => {
  await Promise.all([k8s.close(), sts.close(), sm.close(), ssm.close()])
})

describe('Secrets Manager: values', () => {
  it('reads AWSCURRENT, AWSPREVIOUS and a version id, properties (literal dotted key first, paths, array index, #), binary, decoding', async () => {
    const previous = Object.keys(sm.versionStages('payments/db')).find((v) => sm.versionStages('payments/db')[v].includes('AWSPREVIOUS'))!
    const r = await render(
      es('db', NS, {
        ...ref(),
        data: [
          {secretKey: 'password', remoteRef: {key: 'payments/db', property: 'password'}},
          {secretKey: 'old-password', remoteRef: {key: 'payments/db', property: 'password', version: 'AWSPREVIOUS'}},
          {secretKey: 'by-id', remoteRef: {key: 'payments/db', property: 'password', version: `uuid/${previous}`}},
          {secretKey: 'literal', remoteRef: {key: 'payments/db', property: 'db.host', version: 'AWSPREVIOUS'}},
          {secretKey: 'nested', remoteRef: {key: 'payments/db', property: 'db.port', version: 'AWSPREVIOUS'}},
          {secretKey: 'replica', remoteRef: {key: 'payments/db', property: 'replicas.1.host', version: 'AWSPREVIOUS'}},
          {secretKey: 'replicas', remoteRef: {key: 'payments/db', property: 'replicas.#', version: 'AWSPREVIOUS'}},
          {secretKey: 'object', remoteRef: {key: 'payments/db', property: 'db', version: 'AWSPREVIOUS'}},
          {secretKey: 'ratio', remoteRef: {key: 'payments/db', property: 'ratio', version: 'AWSPREVIOUS'}},
          {secretKey: 'api-key', remoteRef: {key: 'payments/api-key'}},
          {secretKey: 'b64', remoteRef: {key: 'payments/b64', decodingStrategy: 'Base64'}},
          {secretKey: 'cert', remoteRef: {key: 'payments/cert'}},
        ],
      }),
      smStore(),
    )
    const d = decoded(r.secret)
    expect(d).toMatchObject({
      password: 'v2-pass',
      'old-password': 'v1-pass',
      'by-id': 'v1-pass',
      literal: 'literal-dot',
      nested: '5432',
      replica: 'r1',
      replicas: '2',
      object: '{"host":"nested","port":5432}',
      ratio: '1.5',
      'api-key': 's3cr3t-api-key',
      b64: 'decoded value',
    })
    expect(Buffer.from(r.secret!.data.cert, 'base64')).toEqual(Buffer.from([0x30, 0x82, 0x01, 0xff]))
    // Three reads of payments/db (current, AWSPREVIOUS, a version id) and three other secrets: one call each, however many entries read them.
    expect(sm.count('GetSecretValue')).toBe(6)
    expect(r.calls).toBe(6)
    expect(sm.calls.filter((c) => c.operation === 'GetSecretValue').map((c) => [c.secretId, c.versionStage ?? c.versionId])).toContainEqual(
      ['payments/db', previous],
    )
  })

  it('extract: a JSON object into keys (strings as they are, other values as JSON), with a property, and converted key names', async () => {
    sm.createSecret(
      'payments/extract',
      JSON.stringify({'a/b': 'slash', 'c d': 'space', n: 1.0, o: {x: 1}, nul: null, é: 'letter', inner: {k1: 'v1', k2: 'v2'}}),
    )
    const r = await render(
      es('ex', NS, {
        ...ref(),
        dataFrom: [{extract: {key: 'payments/extract'}}, {extract: {key: 'payments/extract', property: 'inner'}}],
        target: {template: {data: {keys: '{{ range $k, $v := . }}{{ $k }} {{ end }}'}, mergePolicy: 'Merge'}},
      }),
      smStore(),
    ).catch((e) => e)
    // é stays a letter (as external-secrets converts keys), and a Secret key must be ASCII: refused, naming the key.
    expect(r.message).toBe(
      'ExternalSecret payments/ex: "é" is not a valid Secret key ([-._a-zA-Z0-9]+, at most 253); rename it with data[] or a template',
    )
    sm.putSecretValue(
      'payments/extract',
      JSON.stringify({'a/b': 'slash', 'c d': 'space', n: 1.0, o: {x: 1}, nul: null, inner: {k1: 'v1', k2: 'v2'}}),
    )
    const ok = await render(
      es('ex', NS, {
        ...ref(),
        dataFrom: [
          {extract: {key: 'payments/extract'}},
          {extract: {key: 'payments/extract', property: 'inner', conversionStrategy: 'Unicode'}},
        ],
      }),
      smStore(),
    )
    expect(decoded(ok.secret)).toEqual({
      a_b: 'slash',
      c_d: 'space',
      n: '1',
      o: '{"x":1}',
      nul: 'null',
      inner: '{"k1":"v1","k2":"v2"}',
      k1: 'v1',
      k2: 'v2',
    })
    expect(sm.count('GetSecretValue')).toBe(2)
    const uni = await render(
      es('ex', NS, {...ref(), dataFrom: [{extract: {key: 'payments/extract', conversionStrategy: 'Unicode'}}]}),
      smStore(),
    )
    expect(Object.keys(uni.secret!.data)).toContain('a_U002f_b')
  })

  it('find by name regexp walks every page (short pages included) and reads each match once; by tags matches values exactly; by path', async () => {
    for (let i = 0; i < 130; i++)
      sm.createSecret(`bulk/item-${String(i).padStart(3, '0')}`, `value-${i}`, {
        tags: i % 2 ? {team: 'payments', tier: 'gold'} : {team: 'payments', tier: 'silver'},
      })
    sm.createSecret('bulk/cross', 'x', {tags: {team: 'gold', tier: 'payments'}})
    // AWS filters after reading a bounded slice: filtered pages come back short or empty, with a NextToken.
    sm.listScanLimit = 25
    const r = await render(
      es('found', NS, {...ref(), dataFrom: [{find: {path: 'bulk/', name: {regexp: '^bulk/item-1[0-2][0-9]$'}}}]}),
      smStore(),
    )
    expect(Object.keys(r.secret!.data)).toHaveLength(30)
    expect(decoded(r.secret)['bulk_item-105']).toBe('value-105')
    const pages = sm.calls.filter((c) => c.operation === 'ListSecrets')
    expect(pages.length).toBeGreaterThanOrEqual(6)
    expect(pages.some((c) => c.returned! < 25)).toBe(true)
    expect(sm.count('GetSecretValue')).toBe(30)
    expect(r.sources[0]).toMatchObject({entry: 'spec.dataFrom[0]', find: {regexp: '^bulk/item-1[0-2][0-9]$', matched: 30}})

    sm.resetStats()
    sm.listScanLimit = Infinity
    const tagged = await render(
      es('tagged', NS, {...ref(), dataFrom: [{find: {tags: {team: 'payments', tier: 'gold'}, path: 'bulk/'}}]}),
      smStore(),
    )
    expect(Object.keys(tagged.secret!.data)).toHaveLength(65)
    // tag-key filters on the server, values compared here: bulk/cross (team=gold, tier=payments) is not a match.
    expect(tagged.secret!.data).not.toHaveProperty('bulk_cross')
    expect(sm.calls.find((c) => c.operation === 'ListSecrets')).toBeDefined()
  })
})

describe('Secrets Manager: credentials', () => {
  it('assumes the store role with the controller credentials and externalID; sessions are named after the namespace', async () => {
    const r = await render(
      es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}),
      smStore({role: READER_ROLE, externalID: 'kseal-payments'}),
    )
    expect(decoded(r.secret).k).toBe('s3cr3t-api-key')
    expect(sts.calls.at(-1)).toMatchObject({operation: 'AssumeRole', status: 200})
    expect(sm.calls.at(-1)).toMatchObject({principal: `arn:aws:sts::${ACCOUNT}:assumed-role/payments-reader/kseal-payments`})

    const wrongId = await failure(
      render(
        es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}),
        smStore({role: READER_ROLE, externalID: 'guess'}),
      ),
    )
    expect(wrongId.code).toBe('ERR_DENIED')
    expect(wrongId.message).toMatch(/^SecretStore payments\/aws \(aws SecretsManager\): remote key "payments\/api-key": AccessDenied: /)
  })

  it("reads access keys from a Secret of the ExternalSecret's namespace, never of another", async () => {
    const keys = {
      secretRef: {accessKeyIDSecretRef: {name: 'aws-keys', key: 'id'}, secretAccessKeySecretRef: {name: 'aws-keys', key: 'secret'}},
    }
    const r = await render(es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}), smStore({auth: keys}))
    expect(decoded(r.secret).k).toBe('s3cr3t-api-key')
    expect(sm.calls.at(-1)).toMatchObject({accessKeyId: TENANT.accessKeyId, principal: `arn:aws:iam::${ACCOUNT}:user/payments-team`})

    // A store naming another namespace's Secret is refused when validated...
    expect(() =>
      smStore({
        auth: {
          secretRef: {
            accessKeyIDSecretRef: {name: 'other-keys', key: 'id', namespace: 'other'},
            secretAccessKeySecretRef: {name: 'other-keys', key: 'secret', namespace: 'other'},
          },
        },
      }),
    ).toThrow(
      'SecretStore payments/aws: spec.provider.aws.auth.secretRef.accessKeyIDSecretRef.namespace: a SecretStore\'s references resolve in its own namespace (payments), not "other"',
    )
    sm.resetStats()
    // ...and a ClusterSecretStore's references resolve in the ExternalSecret's namespace: other-keys is not there.
    const cluster = store('aws', undefined, {
      aws: {
        service: 'SecretsManager',
        region: 'us-east-1',
        auth: {
          secretRef: {accessKeyIDSecretRef: {name: 'other-keys', key: 'id'}, secretAccessKeySecretRef: {name: 'other-keys', key: 'secret'}},
        },
      },
    })
    const f = await failure(
      render(es('db', NS, {...ref('ClusterSecretStore'), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}), cluster),
    )
    expect(f.code).toBe('ERR_NOT_FOUND')
    expect(f.message).toMatch(/^Secret payments\/other-keys: not found/)
    expect(sm.count()).toBe(0)
  })

  it('IRSA for a tenant ServiceAccount: a TokenRequest token exchanged for its annotated role', async () => {
    const before = k8s.countRequests({resource: 'serviceaccounts', subresource: 'token'})
    const r = await render(
      es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}),
      smStore({auth: {jwt: {serviceAccountRef: {name: 'payments-app'}}}}),
    )
    expect(decoded(r.secret).k).toBe('s3cr3t-api-key')
    expect(k8s.countRequests({resource: 'serviceaccounts', subresource: 'token', namespace: NS})).toBe(before + 1)
    expect(sts.calls.at(-1)).toMatchObject({
      operation: 'AssumeRoleWithWebIdentity',
      status: 200,
      subject: `system:serviceaccount:${NS}:payments-app`,
    })
    expect(sm.calls.at(-1)).toMatchObject({principal: `arn:aws:sts::${ACCOUNT}:assumed-role/payments-irsa/kseal-payments`})

    const noRole = await failure(
      render(
        es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key: 'payments/api-key'}}]}),
        smStore({auth: {jwt: {serviceAccountRef: {name: 'no-role'}}}}),
      ),
    )
    expect(noRole).toMatchObject({
      code: 'ERR_CONFIG',
      message:
        'SecretStore payments/aws (aws SecretsManager): ServiceAccount payments/no-role has no eks.amazonaws.com/role-arn annotation naming the role to assume with its token',
    })
  })
})

describe('Secrets Manager: failures are distinct, name store and key, never a value', () => {
  const one = (key: string, extra: Record<string, unknown> = {}) =>
    es('db', NS, {...ref(), data: [{secretKey: 'k', remoteRef: {key, ...extra}}]})

  it('not found: a missing secret, stage or version, a secret scheduled for deletion, a missing property', async () => {
    expect(await failure(render(one('payments/nope'), smStore()))).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message:
        'SecretStore payments/aws (aws SecretsManager): remote key "payments/nope": ResourceNotFoundException: Secrets Manager can\'t find the specified secret.',
    })
    expect((await failure(render(one('payments/db', {version: 'NOPE'}), smStore()))).code).toBe('ERR_NOT_FOUND')
    sm.createSecret('payments/doomed', 'x')
    sm.deleteSecret('payments/doomed')
    expect((await failure(render(one('payments/doomed'), smStore()))).code).toBe('ERR_NOT_FOUND')
    const prop = await failure(render(one('payments/db', {property: 'nope'}), smStore()))
    expect(prop).toMatchObject({
      code: 'ERR_INPUT',
      message: 'ExternalSecret payments/db: spec.data[0].remoteRef: remote key "payments/db": property "nope" not found',
    })
    const notJson = await failure(render(one('payments/api-key', {property: 'x'}), smStore()))
    expect(notJson.message).toMatch(/remote key "payments\/api-key": the value is not JSON \(unexpected character at offset 0\)/)
    expect(notJson.message).not.toContain('s3cr3t')
  })

  it('denied and throttled (the SDK retries throttling; when it gives up, ERR_THROTTLED with a pause)', async () => {
    sm.deny({action: 'GetSecretValue', resource: 'payments/api-key'})
    const denied = await failure(render(one('payments/api-key'), smStore()))
    expect(denied.code).toBe('ERR_DENIED')
    expect(denied.message).toContain('is not authorized to perform: secretsmanager:GetSecretValue on resource: payments/api-key')
    sm.clearDenies()

    sm.throttle({perSecond: 0.001, burst: 1, operation: 'GetSecretValue'})
    const c = ctx()
    c.aws!.clientConfig = {maxAttempts: 2}
    await render(one('payments/api-key'), smStore(), c)
    const throttled = await failure(render(one('payments/cert'), smStore(), c))
    expect(throttled.code).toBe('ERR_THROTTLED')
    expect((throttled as unknown as {retryAfterMs: number}).retryAfterMs).toBe(1000)
    expect(throttled.message).toMatch(/^SecretStore payments\/aws \(aws SecretsManager\): remote key "payments\/cert": ThrottlingException/)
    expect(sm.calls.filter((x) => x.errorType === 'ThrottlingException').length).toBe(2)
  })

  it('deletionPolicy Delete: keys that are gone are left out, and when all are gone the Secret is to be deleted', async () => {
    const spec = {
      ...ref(),
      target: {deletionPolicy: 'Delete'},
      data: [
        {secretKey: 'a', remoteRef: {key: 'payments/gone-1'}},
        {secretKey: 'b', remoteRef: {key: 'payments/api-key'}},
      ],
    }
    const some = await render(es('del', NS, spec), smStore())
    expect(decoded(some.secret)).toEqual({b: 's3cr3t-api-key'})
    expect(some.sources[0]).toMatchObject({remoteKey: 'payments/gone-1', missing: true, secretKeys: []})
    const none = await render(
      es('del', NS, {...spec, data: [spec.data[0], {secretKey: 'b', remoteRef: {key: 'payments/gone-2'}}]}),
      smStore(),
    )
    expect(none.secret).toBeNull()
    // Retain (the default): a missing key is an error, and the last good Secret stays.
    expect((await failure(render(es('keep', NS, {...spec, target: {}}), smStore()))).code).toBe('ERR_NOT_FOUND')
  })
})

describe('Parameter Store', () => {
  beforeAll(() => {
    ssm.putParameter('/payments/db/password', 'p1', {type: 'SecureString'})
    ssm.putParameter('/payments/db/password', 'p2')
    ssm.labelParameterVersion('/payments/db/password', ['stable'], 1)
    ssm.putParameter('/payments/db/config', JSON.stringify({host: 'db', port: 5432}))
    for (let i = 0; i < 25; i++)
      ssm.putParameter(`/payments/bulk/p${String(i).padStart(2, '0')}`, `v${i}`, {tags: i < 3 ? {team: 'payments'} : {team: 'other'}})
  })

  it('reads the latest, a version number, a label, SecureStrings decrypted, JSON properties', async () => {
    const r = await render(
      es('params', NS, {
        ...ref('SecretStore', 'ssm'),
        data: [
          {secretKey: 'now', remoteRef: {key: '/payments/db/password'}},
          {secretKey: 'v1', remoteRef: {key: '/payments/db/password', version: '1'}},
          {secretKey: 'stable', remoteRef: {key: '/payments/db/password', version: 'stable'}},
          {secretKey: 'port', remoteRef: {key: '/payments/db/config', property: 'port'}},
        ],
      }),
      ssmStore(),
    )
    expect(decoded(r.secret)).toEqual({now: 'p2', v1: 'p1', stable: 'p1', port: '5432'})
    expect(ssm.calls.map((c) => [c.operation, c.name])).toEqual(
      expect.arrayContaining([
        ['GetParameter', '/payments/db/password:1'],
        ['GetParameter', '/payments/db/password:stable'],
      ]),
    )
    const missing = await failure(
      render(es('params', NS, {...ref('SecretStore', 'ssm'), data: [{secretKey: 'x', remoteRef: {key: '/payments/none'}}]}), ssmStore()),
    )
    expect(missing).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: 'SecretStore payments/ssm (aws ParameterStore): remote key "/payments/none": ParameterNotFound',
    })
  })

  it('find by path pages through GetParametersByPath (values included); by tags, DescribeParameters then one GetParameter each', async () => {
    const byPath = await render(
      es('bulk', NS, {...ref('SecretStore', 'ssm'), dataFrom: [{find: {path: '/payments/bulk', name: {regexp: 'p1[0-4]$'}}}]}),
      ssmStore(),
    )
    expect(decoded(byPath.secret)).toEqual({
      _payments_bulk_p10: 'v10',
      _payments_bulk_p11: 'v11',
      _payments_bulk_p12: 'v12',
      _payments_bulk_p13: 'v13',
      _payments_bulk_p14: 'v14',
    })
    expect(ssm.count('GetParametersByPath')).toBe(3)
    expect(ssm.count('GetParameter')).toBe(0)
    ssm.resetStats()
    const byTag = await render(es('bulk', NS, {...ref('SecretStore', 'ssm'), dataFrom: [{find: {tags: {team: 'payments'}}}]}), ssmStore())
    expect(Object.keys(byTag.secret!.data).sort()).toEqual(['_payments_bulk_p00', '_payments_bulk_p01', '_payments_bulk_p02'])
    expect(ssm.count('DescribeParameters')).toBe(1)
    expect(ssm.count('GetParameter')).toBe(3)
  })
})
