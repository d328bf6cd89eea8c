/**
 * renderExternalSecret: the exact Secret the controller writes (type, labels, annotations, owner,
 * immutable, data), template merge policies, creationPolicy Owner / Orphan / Merge against an
 * existing Secret (never writing into one that is not the ExternalSecret's, never into kseal's
 * own), the key namespace refused, decoding and size limits — values fetched through the real
 * Secrets Manager client from the local server.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {openProvider} from '../src/external/providers/index.js'
import type {Provider} from '../src/external/providers/types.js'
import {type RenderDeps, renderExternalSecret} from '../src/external/render.js'
import type {ExternalSecret, SecretObject} from '../src/external/types.js'
import {AwsIam} from './support/aws/iam.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {decoded, es, store} from './support/external.js'
import {failure} from './support/failure.js'

const NS = 'apps'
const UID = '6f1c2a9e-0000-4000-8000-000000000001'
const KEYS = {accessKeyId: 'AKIAKSEALRENDERTEST1', secretAccessKey: 'render/secret/not/a/real/one'}
let sm: SecretsManagerServer
let provider: Provider
const awsStore = () => store('aws', NS, {aws: {service: 'SecretsManager', region: 'us-east-1'}})

const render = (e: ExternalSecret, extra: Partial<RenderDeps> = {}) => renderExternalSecret(e, awsStore(), {provider, ...extra})
const spec = (extra: Record<string, unknown> = {}) => ({
  secretStoreRef: {name: 'aws'},
  data: [{secretKey: 'password', remoteRef: {key: 'app/db', property: 'password'}}],
  dataFrom: [{extract: {key: 'app/config'}}],
  ...extra,
})
const b64 = (s: string) => Buffer.from(s).toString('base64')

function existingSecret(meta: Partial<SecretObject['metadata']> = {}, extra: Partial<SecretObject> = {}): SecretObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'db', namespace: NS, resourceVersion: '42', uid: 'secret-uid', ...meta},
    type: 'Opaque',
    data: {other: b64('kept')},
    ...extra,
  }
}

beforeAll(async () => {
  const iam = new AwsIam()
  iam.addAccessKey(KEYS.accessKeyId, KEYS.secretAccessKey)
  sm = await startSecretsManagerServer({iam})
  sm.createSecret('app/db', JSON.stringify({password: 'p4ss', user: 'app'}))
  sm.createSecret('app/config', JSON.stringify({host: 'db.internal', port: 5432}))
  sm.createSecret('app/b64', b64('hello'))
  sm.createSecret('app/plain', 'password')
  sm.createSecret('app/big', 'x'.repeat(600 * 1024))
  sm.createSecret('app/clash', JSON.stringify({'a/b': '1', a_b: '2'}))
  provider = await openProvider(awsStore(), {
    namespace: NS,
    access: {} as never,
    aws: {credentials: async () => KEYS, endpoints: {secretsmanager: sm.url}, clientConfig: {maxAttempts: 1}},
  })
})

afterAll(async () => {
  await provider.close()
  await sm.close()
})

describe('the Secret written', () => {
  it("Owner (the default): kseal's label and annotation, template type, labels and annotations, a controller ownerReference, immutable, data sorted", async () => {
    const r = await render(
      es(
        'db',
        NS,
        spec({
          target: {
            immutable: true,
            template: {type: 'kubernetes.io/basic-auth', metadata: {labels: {app: 'db'}, annotations: {team: 'payments'}}},
          },
        }),
        {uid: UID},
      ),
    )
    expect(r.secret).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'db',
        namespace: NS,
        labels: {app: 'db', 'kseal.dev/managed-by': 'external-secrets'},
        annotations: {team: 'payments', 'kseal.dev/external-secret': 'db'},
        ownerReferences: [
          {apiVersion: 'kseal.dev/v1', kind: 'ExternalSecret', name: 'db', uid: UID, controller: true, blockOwnerDeletion: true},
        ],
      },
      type: 'kubernetes.io/basic-auth',
      data: {host: b64('db.internal'), password: b64('p4ss'), port: b64('5432')},
      immutable: true,
    })
    expect(r.sources).toEqual([
      {entry: 'spec.dataFrom[0]', remoteKey: 'app/config', version: undefined, property: undefined, secretKeys: ['host', 'port']},
      {entry: 'spec.data[0]', remoteKey: 'app/db', version: undefined, property: 'password', secretKeys: ['password']},
    ])
  })

  it('templates: Replace keeps only the rendered keys, Merge keeps the fetched ones beside them; templates see every fetched key', async () => {
    const tpl = {data: {url: 'postgres://{{ .user }}:{{ .password }}@{{ .host }}:{{ .port }}/app'}}
    const withUser = {
      data: [
        {secretKey: 'password', remoteRef: {key: 'app/db', property: 'password'}},
        {secretKey: 'user', remoteRef: {key: 'app/db', property: 'user'}},
      ],
    }
    const replaced = await render(es('db', NS, spec({...withUser, target: {template: tpl}})))
    expect(decoded(replaced.secret)).toEqual({url: 'postgres://app:p4ss@db.internal:5432/app'})
    const merged = await render(
      es('db', NS, spec({...withUser, target: {template: {...tpl, mergePolicy: 'Merge', data: {...tpl.data, port: '{{ .port }}0'}}}})),
    )
    expect(decoded(merged.secret)).toEqual({
      url: 'postgres://app:p4ss@db.internal:5432/app',
      user: 'app',
      password: 'p4ss',
      host: 'db.internal',
      port: '54320',
    })
    // A template naming a key nothing fetched fails with its place, not a value.
    const missing = await failure(render(es('db', NS, spec({target: {template: {data: {x: '{{ .nope }}'}}}}))))
    expect(missing.message).toBe('ExternalSecret apps/db: spec.target.template.data.x: line 1, column 4: map has no entry for key "nope"')
  })

  it('decoding and keys: Auto decodes what is base64 (as external-secrets does, even a word that happens to be), collisions and size are refused', async () => {
    const r = await render(
      es('db', NS, {
        secretStoreRef: {name: 'aws'},
        data: [
          {secretKey: 'a', remoteRef: {key: 'app/b64', decodingStrategy: 'Auto'}},
          {secretKey: 'b', remoteRef: {key: 'app/plain', decodingStrategy: 'Auto'}},
        ],
      }),
    )
    expect(decoded(r.secret).a).toBe('hello')
    expect(Buffer.from(r.secret!.data.b, 'base64')).toEqual(Buffer.from('password', 'base64'))
    const strict = await failure(
      render(
        es('db', NS, {secretStoreRef: {name: 'aws'}, data: [{secretKey: 'c', remoteRef: {key: 'app/db', decodingStrategy: 'Base64'}}]}),
      ),
    )
    expect(strict.message).toBe('ExternalSecret apps/db: spec.data[0]: the value for c is not Base64-encoded')
    const clash = await failure(render(es('db', NS, {secretStoreRef: {name: 'aws'}, dataFrom: [{extract: {key: 'app/clash'}}]})))
    expect(clash.message).toBe('ExternalSecret apps/db: spec.dataFrom[0].extract: two remote keys become the Secret key "a_b"')
    const big = await failure(
      render(
        es('db', NS, {
          secretStoreRef: {name: 'aws'},
          data: [
            {secretKey: 'a', remoteRef: {key: 'app/big'}},
            {secretKey: 'b', remoteRef: {key: 'app/big', version: 'AWSCURRENT'}},
          ],
        }),
      ),
    )
    expect(big.message).toBe(
      `ExternalSecret apps/db: the Secret's data would be ${2 * (600 * 1024 + 1)} bytes, more than Kubernetes allows (1048576)`,
    )
  })
})

describe('reads', () => {
  it('run at once, at most 8 in flight, one per remote key', async () => {
    for (let i = 0; i < 12; i++) sm.createSecret(`app/many-${i}`, `v${i}`)
    sm.resetStats()
    sm.latencyMs = 30
    try {
      const data = Array.from({length: 12}, (_, i) => ({secretKey: `k${i}`, remoteRef: {key: `app/many-${i}`}}))
      const r = await render(
        es('many', NS, {
          secretStoreRef: {name: 'aws'},
          data: [...data, {secretKey: 'again', remoteRef: {key: 'app/many-0', version: 'AWSCURRENT'}}],
        }),
      )
      expect(Object.keys(r.secret!.data)).toHaveLength(13)
      expect(sm.count('GetSecretValue')).toBe(12)
      expect(sm.maxInFlight).toBe(8)
    } finally {
      sm.latencyMs = 0
    }
  })
})

describe('ownership', () => {
  const owned = (uid = UID, name = 'db') => ({
    ownerReferences: [{apiVersion: 'kseal.dev/v1', kind: 'ExternalSecret', name, uid, controller: true}],
  })

  it('Owner and Orphan overwrite only their own Secret (or one opted in), keeping other owners and the resourceVersion for a conditional write', async () => {
    const e = es('db', NS, spec(), {uid: UID})
    const mine = await render(e, {
      existing: existingSecret({
        ...owned(),
        ownerReferences: [{apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: 'cm-uid'}, ...owned().ownerReferences],
      }),
    })
    expect(mine.secret!.metadata).toMatchObject({
      resourceVersion: '42',
      uid: 'secret-uid',
      ownerReferences: [
        {kind: 'ConfigMap', name: 'cm'},
        {kind: 'ExternalSecret', uid: UID, controller: true},
      ],
    })
    expect(mine.secret!.data).not.toHaveProperty('other')

    const foreign = await failure(render(e, {existing: existingSecret()}))
    expect(foreign).toMatchObject({
      code: 'ERR_DENIED',
      message:
        "ExternalSecret apps/db: Secret apps/db exists and is not this ExternalSecret's, so it is left alone; delete it, use creationPolicy: Merge, or annotate it kseal.dev/managed=true",
    })
    expect(
      (
        await failure(
          render(e, {
            existing: existingSecret({
              ownerReferences: [{apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', uid: 'd', controller: true}],
            }),
          }),
        )
      ).code,
    ).toBe('ERR_DENIED')

    const optedIn = await render(e, {existing: existingSecret({annotations: {'kseal.dev/managed': 'true'}})})
    expect(optedIn.secret!.metadata.annotations).toMatchObject({'kseal.dev/managed': 'true', 'kseal.dev/external-secret': 'db'})

    const orphan = es('db', NS, spec({target: {creationPolicy: 'Orphan'}}), {uid: UID})
    const created = await render(orphan, {existing: null})
    expect(created.secret!.metadata.ownerReferences).toBeUndefined()
    // An Orphan Secret is recognised by kseal's label and annotation the next time round.
    expect(
      (
        await render(orphan, {
          existing: existingSecret({labels: created.secret!.metadata.labels, annotations: created.secret!.metadata.annotations}),
        })
      ).secret,
    ).not.toBeNull()
    expect(
      (
        await failure(
          render(orphan, {
            existing: existingSecret({labels: created.secret!.metadata.labels, annotations: {'kseal.dev/external-secret': 'another'}}),
          }),
        )
      ).code,
    ).toBe('ERR_DENIED')
  })

  it("Merge writes kseal's keys, labels and annotations into an existing Secret, keeps the rest, and never creates one", async () => {
    const e = es(
      'db',
      NS,
      spec({target: {creationPolicy: 'Merge', template: {type: 'ignored/for-merge', metadata: {labels: {app: 'db'}}}}}),
      {uid: UID},
    )
    const r = await render(e, {existing: existingSecret({labels: {keep: 'me'}}, {type: 'kubernetes.io/basic-auth'})})
    expect(r.secret).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'db',
        namespace: NS,
        resourceVersion: '42',
        uid: 'secret-uid',
        labels: {keep: 'me', app: 'db', 'kseal.dev/managed-by': 'external-secrets'},
        annotations: {'kseal.dev/external-secret': 'db'},
      },
      type: 'kubernetes.io/basic-auth',
      data: {other: b64('kept'), host: b64('db.internal'), password: b64('p4ss'), port: b64('5432')},
    })
    expect(await failure(render(e, {existing: null}))).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: 'ExternalSecret apps/db: creationPolicy Merge writes into an existing Secret, and Secret apps/db does not exist',
    })
    expect((await failure(render(e, {existing: existingSecret({}, {immutable: true})}))).message).toBe(
      'ExternalSecret apps/db: creationPolicy Merge cannot write into Secret apps/db: it is immutable',
    )
    // Offline (the Secret unknown): only kseal's part.
    expect(Object.keys((await render(e)).secret!.data)).toEqual(['host', 'password', 'port'])
  })

  it("never writes into kseal's own Secrets, nor in the namespace of the controller's keys", async () => {
    const merge = es('sealing-key', NS, spec({target: {creationPolicy: 'Merge'}}))
    const keySecret = existingSecret({name: 'sealing-key', labels: {'kseal.dev/sealing-key': 'active'}})
    expect(await failure(render(merge, {existing: keySecret}))).toMatchObject({
      code: 'ERR_DENIED',
      message:
        "ExternalSecret apps/sealing-key: Secret apps/sealing-key carries kseal.dev/sealing-key: it is one of kseal's own Secrets, and no ExternalSecret writes into it",
    })
    const inKeys = es('db', 'kseal-system', spec({secretStoreRef: {name: 'aws', kind: 'ClusterSecretStore'}}))
    const cluster = store('aws', undefined, {aws: {service: 'SecretsManager', region: 'us-east-1'}})
    sm.resetStats()
    expect(await failure(renderExternalSecret(inKeys, cluster, {provider, keyNamespace: 'kseal-system'}))).toMatchObject({
      code: 'ERR_DENIED',
      message:
        "ExternalSecret kseal-system/db: refused: kseal-system is the namespace of the controller's own keys; no ExternalSecret writes Secrets there",
    })
    expect(sm.count()).toBe(0)
  })
})
