/**
 * Exercises the in-memory Kubernetes API test server exclusively through the real
 * @kubernetes/client-node client over a real socket.
 */
import {describe, it, expect, beforeAll, afterAll} from '@jest/globals'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  V1MicroTime,
  VersionApi,
  Watch,
  makeInformer,
  setHeaderOptions,
  type KubernetesObject,
  type V1Secret,
} from '@kubernetes/client-node'
import {startK8sApiServer, type K8sApiServer, type KubeObject} from './support/k8s-api-server.js'

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

interface ApiFailure {
  code: number
  body: KubeObject
  headers: Record<string, string>
}

async function failure(p: Promise<unknown>): Promise<ApiFailure> {
  try {
    await p
  } catch (e) {
    if (e instanceof ApiException) {
      const raw: unknown = e.body
      const body = typeof raw === 'string' && raw ? (JSON.parse(raw) as KubeObject) : ((raw ?? {}) as KubeObject)
      return {code: e.code, body, headers: e.headers}
    }
    throw e
  }
  throw new Error('expected the API call to fail')
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

interface WatchEvent {
  type: string
  object: KubeObject
}

async function openWatch(kc: KubeConfig, path: string, query: Record<string, string | number | boolean | undefined> = {}) {
  const events: WatchEvent[] = []
  let ended: unknown = 'open'
  const controller = await new Watch(kc).watch(
    path,
    query,
    (type, object) => events.push({type, object: object as KubeObject}),
    (err) => {
      ended = err ?? null
    },
  )
  return {
    events,
    ended: () => ended !== 'open',
    endError: () => ended,
    abort: () => controller.abort(),
    next: async (n: number, what = `${n} watch events`) => {
      await waitFor(() => events.length >= n, what)
      return events.slice(0, n)
    },
  }
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)
const strategicPatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)
const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply)

const b64 = (s: string) => Buffer.from(s).toString('base64')

function sealed(name: string, namespace: string, extra: KubeObject = {}): KubeObject {
  return {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', metadata: {name, namespace}, spec: {encryptedData: {a: 'ZW5j'}}, ...extra}
}

// ---------------------------------------------------------------------------------------------

describe('k8s API test server: discovery, kubeconfig and auth', () => {
  let server: K8sApiServer
  let dir: string
  beforeAll(async () => {
    server = await startK8sApiServer({token: 's3cret'})
    dir = await mkdtemp(join(tmpdir(), 'kseal-k8s-'))
  })
  afterAll(async () => {
    await server.close()
    await rm(dir, {recursive: true, force: true})
  })

  it('serves /version and discovery so KubernetesObjectApi works with a written kubeconfig', async () => {
    const path = join(dir, 'kubeconfig')
    await server.writeKubeconfig(path, {namespace: 'team-a'})
    const kc = new KubeConfig()
    kc.loadFromFile(path)
    expect(kc.getCurrentCluster()?.server).toBe(server.url)
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('team-a')

    const version = await kc.makeApiClient(VersionApi).getCode()
    expect(version.major).toBe('1')

    const objects = KubernetesObjectApi.makeApiClient(kc)
    const created = await objects.create<KubernetesObject & KubeObject>({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'via-object-api', namespace: 'team-a'},
      data: {k: b64('v')},
    })
    expect(created.metadata?.uid).toBeTruthy()
    const ss = await objects.create<KubernetesObject & KubeObject>(sealed('s1', 'team-a'))
    expect(ss.metadata?.generation).toBe(1)
    const read = await objects.read<KubernetesObject & KubeObject>({
      apiVersion: 'kseal.dev/v1',
      kind: 'SealedSecret',
      metadata: {name: 's1', namespace: 'team-a'},
    })
    expect(read.spec).toEqual({encryptedData: {a: 'ZW5j'}})
    expect(server.countRequests({resource: undefined, verb: 'get'})).toBeGreaterThan(0) // discovery requests were made
  })

  it('answers 401 Unauthorized without the bearer token', async () => {
    const bad = server.kubeConfig({token: 'wrong'})
    const f = await failure(bad.makeApiClient(CoreV1Api).listNamespace())
    expect(f.code).toBe(401)
    const ok = await server.kubeConfig().makeApiClient(CoreV1Api).listNamespace()
    expect(ok.items.map((n) => n.metadata?.name)).toEqual(expect.arrayContaining(['default', 'kube-system']))
  })
})

describe('k8s API test server: Secrets', () => {
  let server: K8sApiServer
  let core: CoreV1Api
  beforeAll(async () => {
    server = await startK8sApiServer()
    core = server.kubeConfig().makeApiClient(CoreV1Api)
  })
  afterAll(() => server.close())

  it('creates, reads, replaces with optimistic concurrency and deletes', async () => {
    const before = Number(server.resourceVersion)
    const created = await core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'db'}, data: {password: b64('hunter2')}}})
    expect(created.kind).toBe('Secret')
    expect(created.type).toBe('Opaque')
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/)
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date)
    expect(created.metadata?.generation).toBeUndefined() // Secrets have no generation on a real server
    const rv1 = Number(created.metadata?.resourceVersion)
    expect(rv1).toBeGreaterThan(before)

    const read = await core.readNamespacedSecret({name: 'db', namespace: 'app'})
    expect(read.metadata?.resourceVersion).toBe(String(rv1))

    read.data = {password: b64('hunter3')}
    const updated = await core.replaceNamespacedSecret({name: 'db', namespace: 'app', body: read})
    const rv2 = Number(updated.metadata?.resourceVersion)
    expect(rv2).toBeGreaterThan(rv1)

    // A second writer still holding rv1 loses.
    const stale = {...read, metadata: {...read.metadata, resourceVersion: String(rv1)}, data: {password: b64('other')}}
    const conflict = await failure(core.replaceNamespacedSecret({name: 'db', namespace: 'app', body: stale}))
    expect(conflict.code).toBe(409)
    expect(conflict.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on secrets "db": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: {name: 'db', kind: 'secrets'},
      code: 409,
    })

    // No resourceVersion: unconditional update (allowed for Secrets).
    const unconditional = await core.replaceNamespacedSecret({
      name: 'db',
      namespace: 'app',
      body: {metadata: {name: 'db'}, data: {password: b64('forced')}},
    })
    const rv3 = Number(unconditional.metadata?.resourceVersion)
    expect(rv3).toBeGreaterThan(rv2)
    expect(unconditional.metadata?.uid).toBe(created.metadata?.uid)

    // Identical update: no write, resourceVersion unchanged (etcd no-op short-circuit).
    const same = await core.replaceNamespacedSecret({name: 'db', namespace: 'app', body: unconditional})
    expect(same.metadata?.resourceVersion).toBe(String(rv3))

    const status = await core.deleteNamespacedSecret({name: 'db', namespace: 'app'})
    expect(status.status).toBe('Success')
    expect(status.details).toEqual({name: 'db', kind: 'secrets', uid: created.metadata?.uid})
    const gone = await failure(core.deleteNamespacedSecret({name: 'db', namespace: 'app'}))
    expect(gone.code).toBe(404)
  })

  it('returns the exact NotFound and AlreadyExists Status bodies', async () => {
    const nf = await failure(core.readNamespacedSecret({name: 'x', namespace: 'app'}))
    expect(nf.code).toBe(404)
    expect(nf.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'secrets "x" not found',
      reason: 'NotFound',
      details: {name: 'x', kind: 'secrets'},
      code: 404,
    })
    await core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'dup'}}})
    const ae = await failure(core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'dup'}}}))
    expect(ae.code).toBe(409)
    expect(ae.body.reason).toBe('AlreadyExists')
    expect(ae.body.message).toBe('secrets "dup" already exists')
  })

  it('validates names, supports generateName and rejects a resourceVersion on create', async () => {
    const noName = await failure(core.createNamespacedSecret({namespace: 'app', body: {data: {}}}))
    expect(noName.code).toBe(422)
    expect(noName.body.reason).toBe('Invalid')
    expect(noName.body.message).toBe('Secret "" is invalid: metadata.name: Required value: name or generateName is required')
    expect(noName.body.details.causes).toEqual([
      {reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name'},
    ])

    const gen = await core.createNamespacedSecret({namespace: 'app', body: {metadata: {generateName: 'tok-'}}})
    expect(gen.metadata?.name).toMatch(/^tok-[bcdfghjklmnpqrstvwxz2456789]{5}$/)

    const badName = await failure(core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'Not_Valid'}}}))
    expect(badName.code).toBe(422)
    expect(badName.body.details.causes[0].field).toBe('metadata.name')

    const withRv = await failure(core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'copy', resourceVersion: '12'}}}))
    expect(withRv.code).toBe(500)
    expect(withRv.body.message).toBe('resourceVersion should not be set on objects to be created')
  })

  it('rejects invalid base64 in data like the apiserver (400 on create/update, 422 on patch)', async () => {
    const create = await failure(
      core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'enc'}, data: {k: 'ENC[AES256:abc]'}}}),
    )
    expect(create.code).toBe(400)
    expect(create.body.reason).toBe('BadRequest')
    expect(create.body.message).toBe('Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3')

    await core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'enc'}, data: {k: b64('plain')}}})
    const put = await failure(
      core.replaceNamespacedSecret({name: 'enc', namespace: 'app', body: {metadata: {name: 'enc'}, data: {k: 'bm9wYWQ'}}}),
    )
    expect(put.code).toBe(400)
    expect(put.body.message).toMatch(/illegal base64 data at input byte 4$/)

    const patch = await failure(core.patchNamespacedSecret({name: 'enc', namespace: 'app', body: {data: {k: 'not base64!'}}}, mergePatch))
    expect(patch.code).toBe(422)
    expect(patch.body.reason).toBe('Invalid')
    expect(patch.body.details.causes[0].field).toBe('patch')
    expect(patch.body.details.causes[0].message).toMatch(/illegal base64 data at input byte 3$/)
    // kubectl apply sends a strategic merge patch; the real message quotes the patch as a Go map.
    const smp = await failure(core.patchNamespacedSecret({name: 'enc', namespace: 'app', body: {data: {k: 'bad!'}}}, strategicPatch))
    expect(smp.code).toBe(422)
    expect(smp.body.message).toBe(
      ' "" is invalid: patch: Invalid value: "map[data:map[k:bad!]]": error decoding from json: illegal base64 data at input byte 3',
    )

    // Line-wrapped base64 is fine (Go skips \r\n) and stored canonically.
    const wrapped = await core.replaceNamespacedSecret({
      name: 'enc',
      namespace: 'app',
      body: {metadata: {name: 'enc'}, data: {k: 'cGxh\naW4y'}},
    })
    expect(wrapped.data).toEqual({k: b64('plain2')})
  })

  it('merges stringData into data and drops it', async () => {
    const s = await core.createNamespacedSecret({
      namespace: 'app',
      body: {metadata: {name: 'sd'}, data: {a: b64('from-data'), b: b64('kept')}, stringData: {a: 'from-stringData', c: 'new'}},
    })
    expect(s.stringData).toBeUndefined()
    expect(s.data).toEqual({a: b64('from-stringData'), b: b64('kept'), c: b64('new')})
    const u = await core.replaceNamespacedSecret({name: 'sd', namespace: 'app', body: {...s, stringData: {b: 'changed'}}})
    expect(Buffer.from(u.data!.b!, 'base64').toString()).toBe('changed')
    expect(server.getObject('v1', 'Secret', 'app', 'sd')?.stringData).toBeUndefined()
  })

  it('enforces immutable Secrets', async () => {
    const s = await core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'imm'}, immutable: true, data: {a: b64('1')}}})
    const f = await failure(core.replaceNamespacedSecret({name: 'imm', namespace: 'app', body: {...s, data: {a: b64('2')}}}))
    expect(f.code).toBe(422)
    expect(f.body.message).toBe('Secret "imm" is invalid: data: Forbidden: field is immutable when `immutable` is set')
    // metadata may still change
    const labelled = await core.replaceNamespacedSecret({
      name: 'imm',
      namespace: 'app',
      body: {...s, metadata: {...s.metadata, labels: {x: 'y'}}},
    })
    expect(labelled.metadata?.labels).toEqual({x: 'y'})
  })

  it('lists with label and field selectors, across namespaces, with pagination', async () => {
    const mk = (ns: string, name: string, labels?: Record<string, string>) =>
      core.createNamespacedSecret({namespace: ns, body: {metadata: {name, labels}}})
    await mk('sel', 'a', {app: 'web', tier: 'front'})
    await mk('sel', 'b', {app: 'api'})
    await mk('sel', 'c', {app: 'db', tier: 'back'})
    await mk('sel2', 'd', {app: 'web'})
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedSecret({namespace: 'sel', labelSelector, fieldSelector})).items.map((s: V1Secret) => s.metadata?.name)
    expect(await names('app=web')).toEqual(['a'])
    expect(await names('app!=web')).toEqual(['b', 'c'])
    expect(await names('app in (api,db)')).toEqual(['b', 'c'])
    expect(await names('app notin (api,db)')).toEqual(['a'])
    expect(await names('tier')).toEqual(['a', 'c'])
    expect(await names('!tier')).toEqual(['b'])
    expect(await names('app=web,tier=front')).toEqual(['a'])
    expect(await names(undefined, 'metadata.name=b')).toEqual(['b'])
    expect(await names(undefined, 'metadata.name!=b')).toEqual(['a', 'c'])

    const list = await core.listNamespacedSecret({namespace: 'sel'})
    expect(list.kind).toBe('SecretList')
    expect(Number(list.metadata?.resourceVersion)).toBe(Number(server.resourceVersion))
    expect(list.items[0]?.kind).toBeUndefined() // typed lists omit kind/apiVersion on items

    const all = await core.listSecretForAllNamespaces({labelSelector: 'app=web'})
    expect(all.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`)).toEqual(['sel/a', 'sel2/d'])

    const badField = await failure(core.listNamespacedSecret({namespace: 'sel', fieldSelector: 'spec.foo=bar'}))
    expect(badField.code).toBe(400)
    expect(badField.body.message).toMatch(/field label not supported: spec.foo$/)

    const page1 = await core.listNamespacedSecret({namespace: 'sel', limit: 2})
    expect(page1.items.map((s) => s.metadata?.name)).toEqual(['a', 'b'])
    expect(page1.metadata?.remainingItemCount).toBe(1)
    await mk('sel', 'e') // not visible in the consistent snapshot of page 2
    const page2 = await core.listNamespacedSecret({namespace: 'sel', limit: 2, _continue: page1.metadata?._continue})
    expect(page2.items.map((s) => s.metadata?.name)).toEqual(['c'])
    expect(page2.metadata?.resourceVersion).toBe(page1.metadata?.resourceVersion)
    expect(page2.metadata?._continue).toBeUndefined()

    server.compact()
    const expired = await failure(core.listNamespacedSecret({namespace: 'sel', limit: 2, _continue: page1.metadata?._continue}))
    expect(expired.code).toBe(410)
    expect(expired.body.reason).toBe('Expired')
  })

  it('supports merge, JSON and strategic merge patches; server-side apply answers 415', async () => {
    await core.createNamespacedSecret({namespace: 'app', body: {metadata: {name: 'p', labels: {a: '1'}}, data: {x: b64('1'), y: b64('2')}}})
    const merged = await core.patchNamespacedSecret(
      {name: 'p', namespace: 'app', body: {metadata: {labels: {b: '2'}}, data: {y: null, z: b64('3')}}},
      mergePatch,
    )
    expect(merged.metadata?.labels).toEqual({a: '1', b: '2'})
    expect(merged.data).toEqual({x: b64('1'), z: b64('3')})

    const jp = await core.patchNamespacedSecret(
      {
        name: 'p',
        namespace: 'app',
        body: [
          {op: 'test', path: '/data/x', value: b64('1')},
          {op: 'replace', path: '/data/x', value: b64('one')},
          {op: 'remove', path: '/metadata/labels/a'},
          {op: 'add', path: '/metadata/annotations', value: {'kseal.dev/x': 'y'}},
        ],
      },
      jsonPatch,
    )
    expect(jp.data?.x).toBe(b64('one'))
    expect(jp.metadata?.labels).toEqual({b: '2'})
    expect(jp.metadata?.annotations).toEqual({'kseal.dev/x': 'y'})

    const failedTest = await failure(
      core.patchNamespacedSecret({name: 'p', namespace: 'app', body: [{op: 'test', path: '/data/x', value: 'nope'}]}, jsonPatch),
    )
    expect(failedTest.code).toBe(422)
    expect(failedTest.body.message).toBe('the server rejected our request due to an error in our request')

    const smp = await core.patchNamespacedSecret(
      {name: 'p', namespace: 'app', body: {metadata: {finalizers: ['kseal.dev/cleanup']}, stringData: {w: 'x'}}},
      strategicPatch,
    )
    expect(smp.metadata?.finalizers).toEqual(['kseal.dev/cleanup'])
    expect(smp.data?.w).toBe(b64('x'))

    const stalePatch = await failure(
      core.patchNamespacedSecret({name: 'p', namespace: 'app', body: {metadata: {resourceVersion: '1'}, data: {q: b64('q')}}}, mergePatch),
    )
    expect(stalePatch.code).toBe(409)
    expect(stalePatch.body.reason).toBe('Conflict')

    const apply = await failure(
      core.patchNamespacedSecret({name: 'p', namespace: 'app', body: {data: {}}, fieldManager: 'kseal'}, applyPatch),
    )
    expect(apply.code).toBe(415)
    expect(apply.body.reason).toBe('UnsupportedMediaType')

    const missing = await failure(core.patchNamespacedSecret({name: 'nope', namespace: 'app', body: {data: {}}}, mergePatch))
    expect(missing.code).toBe(404)
  })
})

describe('k8s API test server: SealedSecret status subresource and generation', () => {
  let server: K8sApiServer
  let co: CustomObjectsApi
  const gvr = {group: 'kseal.dev', version: 'v1', plural: 'sealedsecrets'}
  beforeAll(async () => {
    server = await startK8sApiServer()
    co = server.kubeConfig().makeApiClient(CustomObjectsApi)
  })
  afterAll(() => server.close())

  it('keeps spec and status writes apart and bumps generation only for spec changes', async () => {
    const created = (await co.createNamespacedCustomObject({
      ...gvr,
      namespace: 'ns1',
      body: sealed('s', 'ns1', {status: {phase: 'Forged'}}),
    })) as KubeObject
    expect(created.metadata.generation).toBe(1)
    expect(created.status).toBeUndefined() // create cannot set status

    const withStatus = (await co.replaceNamespacedCustomObjectStatus({
      ...gvr,
      namespace: 'ns1',
      name: 's',
      body: {...created, spec: {encryptedData: {sneaky: 'eA=='}}, status: {phase: 'Unsealed', observedGeneration: 1}},
    })) as KubeObject
    expect(withStatus.status).toEqual({phase: 'Unsealed', observedGeneration: 1})
    expect(withStatus.spec).toEqual(created.spec) // spec changes via /status are ignored
    expect(withStatus.metadata.generation).toBe(1)
    expect(Number(withStatus.metadata.resourceVersion)).toBeGreaterThan(Number(created.metadata.resourceVersion))

    // Status changes through the main resource are ignored -> a no-op write.
    const ignored = (await co.replaceNamespacedCustomObject({
      ...gvr,
      namespace: 'ns1',
      name: 's',
      body: {...withStatus, status: {phase: 'Hacked'}},
    })) as KubeObject
    expect(ignored.status.phase).toBe('Unsealed')
    expect(ignored.metadata.resourceVersion).toBe(withStatus.metadata.resourceVersion)

    const metaOnly = (await co.patchNamespacedCustomObject(
      {...gvr, namespace: 'ns1', name: 's', body: {metadata: {labels: {a: 'b'}}}},
      mergePatch,
    )) as KubeObject
    expect(metaOnly.metadata.generation).toBe(1)

    const specChange = (await co.patchNamespacedCustomObject(
      {...gvr, namespace: 'ns1', name: 's', body: {spec: {encryptedData: {a: 'bmV3'}}}},
      mergePatch,
    )) as KubeObject
    expect(specChange.metadata.generation).toBe(2)
    expect(specChange.status.observedGeneration).toBe(1)

    const statusPatch = (await co.patchNamespacedCustomObjectStatus(
      {...gvr, namespace: 'ns1', name: 's', body: [{op: 'replace', path: '/status/observedGeneration', value: 2}]},
      jsonPatch,
    )) as KubeObject
    expect(statusPatch.status.observedGeneration).toBe(2)
    expect(statusPatch.metadata.generation).toBe(2)
  })

  it('makes a status patch that carries metadata.resourceVersion conditional: 409 when stale, nothing written', async () => {
    // kube-apiserver: Store.Update compares the patched object's resourceVersion with the stored one
    // before the status strategy copies everything but .status from the stored object.
    const created = (await co.createNamespacedCustomObject({...gvr, namespace: 'ns1', body: sealed('cond', 'ns1')})) as KubeObject
    const rv = created.metadata.resourceVersion
    const patch = (status: KubeObject, resourceVersion?: string) =>
      co.patchNamespacedCustomObjectStatus(
        {...gvr, namespace: 'ns1', name: 'cond', body: resourceVersion === undefined ? {status} : {metadata: {resourceVersion}, status}},
        mergePatch,
      )
    const first = (await patch({observedGeneration: 1}, rv)) as KubeObject
    expect(first.status).toEqual({observedGeneration: 1})
    expect(Number(first.metadata.resourceVersion)).toBeGreaterThan(Number(rv))
    const stale = await failure(patch({observedGeneration: 0}, rv))
    expect(stale.code).toBe(409)
    expect(stale.body).toMatchObject({
      reason: 'Conflict',
      message:
        'Operation cannot be fulfilled on sealedsecrets.kseal.dev "cond": the object has been modified; please apply your changes to the latest version and try again',
      details: {name: 'cond', group: 'kseal.dev', kind: 'sealedsecrets'},
    })
    expect(server.getObject('kseal.dev/v1', 'SealedSecret', 'ns1', 'cond')!.status).toEqual({observedGeneration: 1})
    expect(server.getObject('kseal.dev/v1', 'SealedSecret', 'ns1', 'cond')!.metadata.resourceVersion).toBe(first.metadata.resourceVersion)
    // Without a resourceVersion the same patch is unconditional.
    expect(((await patch({observedGeneration: 0})) as KubeObject).status).toEqual({observedGeneration: 0})
  })

  it('applies CustomResource rules: RV required on PUT, no strategic merge, typed errors', async () => {
    await co.createNamespacedCustomObject({...gvr, namespace: 'ns1', body: sealed('t', 'ns1')})
    const noRv = await failure(co.replaceNamespacedCustomObject({...gvr, namespace: 'ns1', name: 't', body: sealed('t', 'ns1')}))
    expect(noRv.code).toBe(422)
    expect(noRv.body.message).toBe(
      'sealedsecrets.kseal.dev "t" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
    )
    const smp = await failure(co.patchNamespacedCustomObject({...gvr, namespace: 'ns1', name: 't', body: {spec: {}}}, strategicPatch))
    expect(smp.code).toBe(415)
    const nf = await failure(co.getNamespacedCustomObject({...gvr, namespace: 'ns1', name: 'nope'}))
    expect(nf.body).toMatchObject({
      message: 'sealedsecrets.kseal.dev "nope" not found',
      details: {name: 'nope', group: 'kseal.dev', kind: 'sealedsecrets'},
    })
    const noKind = await failure(co.createNamespacedCustomObject({...gvr, namespace: 'ns1', body: {metadata: {name: 'u'}}}))
    expect(noKind.code).toBe(400)

    const list = (await co.listCustomObjectForAllNamespaces({...gvr})) as KubeObject
    expect(list.kind).toBe('SealedSecretList')
    expect(list.items.every((i: KubeObject) => i.kind === 'SealedSecret' && i.apiVersion === 'kseal.dev/v1')).toBe(true)

    const deleted = (await co.deleteNamespacedCustomObject({...gvr, namespace: 'ns1', name: 't'})) as KubeObject
    expect(deleted.kind).toBe('SealedSecret') // CRs return the deleted object
  })

  it('lets a test register another CRD', async () => {
    server.registerResource({
      group: 'example.com',
      version: 'v1alpha1',
      resource: 'widgets',
      kind: 'Widget',
      namespaced: false,
      custom: true,
    })
    const w = (await co.createClusterCustomObject({
      group: 'example.com',
      version: 'v1alpha1',
      plural: 'widgets',
      body: {apiVersion: 'example.com/v1alpha1', kind: 'Widget', metadata: {name: 'w1'}, spec: {size: 1}},
    })) as KubeObject
    expect(w.metadata.generation).toBe(1)
    expect(server.listObjects('example.com/v1alpha1', 'widgets').map((o) => o.metadata.name)).toEqual(['w1'])
  })
})

describe('k8s API test server: watches and informers', () => {
  let server: K8sApiServer
  let kc: KubeConfig
  let core: CoreV1Api
  beforeAll(async () => {
    server = await startK8sApiServer()
    kc = server.kubeConfig()
    core = kc.makeApiClient(CoreV1Api)
  })
  afterAll(() => server.close())

  it('streams ADDED/MODIFIED/DELETED and selector transitions', async () => {
    await core.createNamespacedSecret({namespace: 'w1', body: {metadata: {name: 'pre', labels: {watch: 'me'}}}})
    const w = await openWatch(kc, '/api/v1/namespaces/w1/secrets', {labelSelector: 'watch=me'})
    await w.next(1, 'synthetic ADDED for existing object')
    const s = await core.createNamespacedSecret({namespace: 'w1', body: {metadata: {name: 'new', labels: {watch: 'me'}}}})
    await core.replaceNamespacedSecret({name: 'new', namespace: 'w1', body: {...s, data: {a: b64('1')}}})
    await core.patchNamespacedSecret({name: 'pre', namespace: 'w1', body: {metadata: {labels: {watch: null}}}}, mergePatch) // leaves selector
    await core.deleteNamespacedSecret({name: 'new', namespace: 'w1'})
    await core.createNamespacedSecret({namespace: 'w1', body: {metadata: {name: 'other'}}}) // never matches
    const evs = await w.next(5)
    expect(evs.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      'ADDED pre',
      'ADDED new',
      'MODIFIED new',
      'DELETED pre',
      'DELETED new',
    ])
    expect(evs[1]!.object.kind).toBe('Secret')
    const rvs = evs.slice(1).map((e) => Number(e.object.metadata.resourceVersion))
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs)
    w.abort()
  })

  it('serves a cluster-wide, label-selected watch: matching objects from every namespace, selector transitions included', async () => {
    const sel = 'kseal.dev/owned-by=sealedsecret'
    const w = await openWatch(kc, '/api/v1/secrets', {labelSelector: sel})
    await core.createNamespacedSecret({namespace: 'w5', body: {metadata: {name: 'a', labels: {'kseal.dev/owned-by': 'sealedsecret'}}}})
    await core.createNamespacedSecret({namespace: 'w6', body: {metadata: {name: 'b'}}}) // not selected
    await core.patchNamespacedSecret(
      {name: 'b', namespace: 'w6', body: {metadata: {labels: {'kseal.dev/owned-by': 'sealedsecret'}}}},
      mergePatch,
    )
    await core.deleteNamespacedSecret({name: 'a', namespace: 'w5'})
    const evs = await w.next(3)
    expect(evs.map((e) => `${e.type} ${e.object.metadata.namespace}/${e.object.metadata.name}`)).toEqual([
      'ADDED w5/a',
      'ADDED w6/b',
      'DELETED w5/a',
    ])
    const listed = await core.listSecretForAllNamespaces({labelSelector: sel})
    expect(listed.items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`)).toEqual(['w6/b'])
    w.abort()
  })

  it('resumes from a resourceVersion, sends bookmarks, and reports 410 Expired after compaction', async () => {
    const a = await core.createNamespacedSecret({namespace: 'w2', body: {metadata: {name: 'a'}}})
    const rvA = a.metadata!.resourceVersion!
    await core.createNamespacedSecret({namespace: 'w2', body: {metadata: {name: 'b'}}})
    const resumed = await openWatch(kc, '/api/v1/namespaces/w2/secrets', {resourceVersion: rvA, allowWatchBookmarks: true})
    const [ev] = await resumed.next(1)
    expect(ev).toMatchObject({type: 'ADDED', object: {metadata: {name: 'b'}}})
    server.sendBookmarks()
    const [, bookmark] = await resumed.next(2)
    expect(bookmark!.type).toBe('BOOKMARK')
    expect(bookmark!.object.metadata.resourceVersion).toBe(server.resourceVersion)
    resumed.abort()

    server.compact()
    const expired = await openWatch(kc, '/api/v1/namespaces/w2/secrets', {resourceVersion: rvA})
    const [err] = await expired.next(1)
    expect(err!.type).toBe('ERROR')
    expect(err!.object).toMatchObject({kind: 'Status', status: 'Failure', reason: 'Expired', code: 410})
    expect(err!.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/)
    await waitFor(expired.ended, 'server to end the expired watch')
  })

  it('lets tests write the store directly while still notifying watches', async () => {
    const w = await openWatch(kc, '/apis/kseal.dev/v1/sealedsecrets')
    await server.waitForWatches(1, {resource: 'sealedsecrets'})
    const put = server.putObject(sealed('direct', 'w4'))
    expect(put.metadata.generation).toBe(1)
    expect(put.metadata.uid).toBeTruthy()
    server.putObject({...put, status: {phase: 'Unsealed'}})
    server.deleteObject('kseal.dev/v1', 'sealedsecrets', 'w4', 'direct')
    const evs = await w.next(3)
    expect(evs.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED'])
    expect(evs[1]!.object.status).toEqual({phase: 'Unsealed'})
    w.abort()
  })

  it('answers 504 for reads at a resourceVersion from the future and drops unknown fields of built-ins', async () => {
    const slow = await startK8sApiServer({tooLargeResourceVersionWaitMs: 50})
    try {
      const c = slow.kubeConfig().makeApiClient(CoreV1Api)
      const f = await failure(c.listNamespacedSecret({namespace: 'x', resourceVersion: String(Number(slow.resourceVersion) + 100)}))
      expect(f.code).toBe(504)
      expect(f.body.reason).toBe('Timeout')
      expect(f.body.details.causes[0].reason).toBe('ResourceVersionTooLarge')
      // Typed decoding drops unknown fields of built-in kinds (CoreV1Api would strip them client-side).
      const objects = KubernetesObjectApi.makeApiClient(slow.kubeConfig())
      await objects.create<KubernetesObject & KubeObject>({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {name: 'a', namespace: 'x'},
        dta: {k: 'v'},
      })
      expect(slow.getObject('v1', 'Secret', 'x', 'a')).not.toHaveProperty('dta')
    } finally {
      await slow.close()
    }
  })

  it('ends a watch after timeoutSeconds so the client can re-watch', async () => {
    const w = await openWatch(kc, '/api/v1/namespaces/w3/secrets', {timeoutSeconds: 1})
    await waitFor(w.ended, 'watch timeout', 3000)
    expect(w.endError()).toBeNull()
  })

  it('keeps an informer in sync across dropped watches, compaction and 410s', async () => {
    const ns = 'inf'
    const informer = makeInformer(kc, `/api/v1/namespaces/${ns}/secrets`, () => core.listNamespacedSecret({namespace: ns}))
    const added: string[] = []
    const deleted: string[] = []
    let errors = 0
    let stopping = false
    informer.on('add', (o) => added.push(o.metadata!.name!))
    informer.on('delete', (o) => deleted.push(o.metadata!.name!))
    informer.on('error', () => {
      // client-node's ListWatch stops on non-410 errors: the documented pattern is to restart it.
      errors++
      if (!stopping) setTimeout(() => void informer.start(), 20)
    })
    try {
      await core.createNamespacedSecret({namespace: ns, body: {metadata: {name: 'one'}}})
      await informer.start()
      await waitFor(() => added.includes('one'), 'initial list')
      await server.waitForWatches(1, {resource: 'secrets', namespace: ns})

      // 1. connection lost: the informer re-watches from its last RV and sees what it missed.
      server.dropWatches({namespace: ns})
      await core.createNamespacedSecret({namespace: ns, body: {metadata: {name: 'two'}}})
      await waitFor(() => added.includes('two'), 'event after reconnect')
      expect(errors).toBe(1)
      const listsBefore = server.countRequests({verb: 'list', resource: 'secrets', namespace: ns})

      // 2. history compacted past the informer's RV, then the connection drops: the resumed watch
      //    gets ERROR 410 Expired and the informer re-lists.
      await server.waitForWatches(1, {namespace: ns})
      await core.createNamespacedSecret({namespace: 'elsewhere', body: {metadata: {name: 'bump'}}}) // RV moves on, unseen
      server.compact()
      server.dropWatches({namespace: ns})
      await core.createNamespacedSecret({namespace: ns, body: {metadata: {name: 'three'}}})
      await core.deleteNamespacedSecret({name: 'one', namespace: ns})
      await waitFor(() => added.includes('three') && deleted.includes('one'), 're-list after 410')
      expect(server.countRequests({verb: 'list', resource: 'secrets', namespace: ns})).toBe(listsBefore + 1)

      // 3. expireWatches: ERROR 410 on the open stream, informer re-lists by itself (no error event).
      await server.waitForWatches(1, {namespace: ns})
      const errorsBefore = errors
      server.expireWatches()
      await core.createNamespacedSecret({namespace: ns, body: {metadata: {name: 'four'}}})
      await waitFor(() => added.includes('four'), 'recovery after expireWatches')
      expect(errors).toBe(errorsBefore)
      expect(server.countRequests({verb: 'list', resource: 'secrets', namespace: ns})).toBe(listsBefore + 2)
      expect(
        informer
          .list(ns)
          .map((o) => o.metadata?.name)
          .sort(),
      ).toEqual(['four', 'three', 'two'])
    } finally {
      stopping = true
      await informer.stop()
    }
  })
})

describe('k8s API test server: garbage collection, finalizers and namespaces', () => {
  let server: K8sApiServer
  let kc: KubeConfig
  let core: CoreV1Api
  let co: CustomObjectsApi
  const gvr = {group: 'kseal.dev', version: 'v1', plural: 'sealedsecrets'}
  beforeAll(async () => {
    server = await startK8sApiServer()
    kc = server.kubeConfig()
    core = kc.makeApiClient(CoreV1Api)
    co = kc.makeApiClient(CustomObjectsApi)
  })
  afterAll(() => server.close())

  const owned = (name: string, owner: KubeObject): V1Secret => ({
    metadata: {
      name,
      ownerReferences: [
        {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: owner.metadata.name, uid: owner.metadata.uid, controller: true},
      ],
    },
    data: {k: b64('v')},
  })

  it('deletes owned objects in the background when the owner goes away', async () => {
    const owner = (await co.createNamespacedCustomObject({...gvr, namespace: 'gc', body: sealed('owner', 'gc')})) as KubeObject
    await core.createNamespacedSecret({namespace: 'gc', body: owned('child', owner)})
    const w = await openWatch(kc, '/api/v1/namespaces/gc/secrets', {resourceVersion: server.resourceVersion})
    await server.waitForWatches(1, {namespace: 'gc'})
    await co.deleteNamespacedCustomObject({...gvr, namespace: 'gc', name: 'owner'})
    const [ev] = await w.next(1, 'DELETED of the dependent')
    expect(ev).toMatchObject({type: 'DELETED', object: {metadata: {name: 'child'}}})
    expect(server.getObject('v1', 'secrets', 'gc', 'child')).toBeUndefined()
    w.abort()
  })

  it('orphans dependents with propagationPolicy=Orphan and collects dangling references', async () => {
    const owner = (await co.createNamespacedCustomObject({...gvr, namespace: 'gc', body: sealed('o2', 'gc')})) as KubeObject
    await core.createNamespacedSecret({namespace: 'gc', body: owned('kept', owner)})
    await co.deleteNamespacedCustomObject({...gvr, namespace: 'gc', name: 'o2', propagationPolicy: 'Orphan'})
    await server.settle()
    const kept = await core.readNamespacedSecret({name: 'kept', namespace: 'gc'})
    expect(kept.metadata?.ownerReferences).toBeUndefined()

    // An ownerReference whose uid does not match the live owner is dangling: the GC deletes it.
    await co.createNamespacedCustomObject({...gvr, namespace: 'gc', body: sealed('o3', 'gc')})
    await core.createNamespacedSecret({
      namespace: 'gc',
      body: owned('wrong-uid', {metadata: {name: 'o3', uid: '00000000-0000-0000-0000-000000000000'}}),
    })
    await server.settle()
    expect((await failure(core.readNamespacedSecret({name: 'wrong-uid', namespace: 'gc'}))).code).toBe(404)
  })

  it('deletes dependents first with propagationPolicy=Foreground', async () => {
    const owner = (await co.createNamespacedCustomObject({...gvr, namespace: 'gc', body: sealed('fg', 'gc')})) as KubeObject
    const child = owned('fg-child', owner)
    child.metadata!.ownerReferences![0]!.blockOwnerDeletion = true
    child.metadata!.finalizers = ['kseal.dev/hold']
    await core.createNamespacedSecret({namespace: 'gc', body: child})
    const marked = (await co.deleteNamespacedCustomObject({
      ...gvr,
      namespace: 'gc',
      name: 'fg',
      propagationPolicy: 'Foreground',
    })) as KubeObject
    expect(marked.metadata.finalizers).toEqual(['foregroundDeletion'])
    expect(marked.metadata.deletionTimestamp).toBeTruthy()
    await server.settle()
    // The owner waits for its blocking dependent, which waits for its own finalizer.
    expect(server.getObject('kseal.dev/v1', 'SealedSecret', 'gc', 'fg')).toBeDefined()
    expect(server.getObject('v1', 'Secret', 'gc', 'fg-child')?.metadata.deletionTimestamp).toBeTruthy()
    await core.patchNamespacedSecret({name: 'fg-child', namespace: 'gc', body: {metadata: {finalizers: null}}}, mergePatch)
    await server.settle()
    expect(server.getObject('v1', 'Secret', 'gc', 'fg-child')).toBeUndefined()
    expect(server.getObject('kseal.dev/v1', 'SealedSecret', 'gc', 'fg')).toBeUndefined()
  })

  it('honours finalizers', async () => {
    await core.createNamespacedSecret({namespace: 'gc', body: {metadata: {name: 'fin', finalizers: ['kseal.dev/cleanup']}}})
    const marked = await core.deleteNamespacedSecret({name: 'fin', namespace: 'gc'})
    expect(marked).toBeDefined()
    const pending = await core.readNamespacedSecret({name: 'fin', namespace: 'gc'})
    expect(pending.metadata?.deletionTimestamp).toBeInstanceOf(Date)
    const addMore = await failure(
      core.patchNamespacedSecret(
        {name: 'fin', namespace: 'gc', body: {metadata: {finalizers: ['kseal.dev/cleanup', 'other.io/x']}}},
        mergePatch,
      ),
    )
    expect(addMore.code).toBe(422)
    await core.patchNamespacedSecret({name: 'fin', namespace: 'gc', body: {metadata: {finalizers: null}}}, mergePatch)
    expect((await failure(core.readNamespacedSecret({name: 'fin', namespace: 'gc'}))).code).toBe(404)
  })

  it('terminates namespaces: content is removed, new content is forbidden', async () => {
    await core.createNamespace({body: {metadata: {name: 'doomed'}}})
    // The finalizer keeps the namespace Terminating until the test releases it.
    await core.createNamespacedSecret({namespace: 'doomed', body: {metadata: {name: 's', finalizers: ['kseal.dev/hold']}}})
    await core.createNamespacedSecret({namespace: 'doomed', body: {metadata: {name: 'plain'}}})
    const ns = await core.deleteNamespace({name: 'doomed'})
    expect(ns).toBeDefined()
    await server.settle()
    const terminating = await core.readNamespace({name: 'doomed'})
    expect(terminating.status?.phase).toBe('Terminating')
    expect(terminating.spec?.finalizers).toEqual(['kubernetes'])
    expect(server.listObjects('v1', 'secrets', 'doomed').map((o) => o.metadata.name)).toEqual(['s'])
    const forbidden = await failure(core.createNamespacedSecret({namespace: 'doomed', body: {metadata: {name: 't'}}}))
    expect(forbidden.code).toBe(403)
    expect(forbidden.body.message).toBe(
      'secrets "t" is forbidden: unable to create new content in namespace doomed because it is being terminated',
    )

    await core.patchNamespacedSecret({name: 's', namespace: 'doomed', body: {metadata: {finalizers: null}}}, mergePatch)
    await server.settle()
    expect((await failure(core.readNamespace({name: 'doomed'}))).code).toBe(404)
    expect(server.listObjects('v1', 'secrets', 'doomed')).toEqual([])
  })
})

describe('k8s API test server: faults, request log, leases and events', () => {
  let server: K8sApiServer
  let kc: KubeConfig
  let core: CoreV1Api
  beforeAll(async () => {
    server = await startK8sApiServer()
    kc = server.kubeConfig()
    core = kc.makeApiClient(CoreV1Api)
  })
  afterAll(() => server.close())

  it('fails the next matching requests with proper Status bodies and logs requests', async () => {
    server.failNext(1, {status: 503, match: (r) => r.verb === 'create' && r.resource === 'secrets'})
    const f = await failure(core.createNamespacedSecret({namespace: 'f', body: {metadata: {name: 'a'}}}))
    expect(f.code).toBe(503)
    expect(f.body).toMatchObject({kind: 'Status', reason: 'ServiceUnavailable', code: 503})
    await core.createNamespacedSecret({namespace: 'f', body: {metadata: {name: 'a'}}})

    server.failNext(1, {status: 429, retryAfter: 2})
    const tm = await failure(core.readNamespacedSecret({name: 'a', namespace: 'f'}))
    expect(tm.code).toBe(429)
    expect(tm.headers['retry-after']).toBe('2')
    expect(tm.body.details).toEqual({retryAfterSeconds: 2})

    server.failNext(1)
    const ie = await failure(core.listNamespacedSecret({namespace: 'f'}))
    expect(ie.body).toMatchObject({reason: 'InternalError', code: 500})

    expect(server.countRequests({verb: 'create', resource: 'secrets', namespace: 'f'})).toBe(2)
    expect(server.findRequests({verb: 'create', resource: 'secrets'}).map((r) => r.status)).toEqual([503, 201])
    expect(server.findRequests({verb: 'get', name: 'a'})[0]).toMatchObject({
      method: 'GET',
      path: '/api/v1/namespaces/f/secrets/a',
      status: 429,
    })
  })

  it('gives Leases optimistic locking (the basis of leader election)', async () => {
    const leases = kc.makeApiClient(CoordinationV1Api)
    const now = new V1MicroTime()
    const lease = await leases.createNamespacedLease({
      namespace: 'kube-system',
      body: {metadata: {name: 'kseal-controller'}, spec: {holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: now, renewTime: now}},
    })
    expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    const stale = lease.metadata!.resourceVersion!
    const renew = (holder: string) =>
      leases.replaceNamespacedLease({
        name: 'kseal-controller',
        namespace: 'kube-system',
        body: {
          ...lease,
          metadata: {...lease.metadata, resourceVersion: stale},
          spec: {...lease.spec, holderIdentity: holder, renewTime: new V1MicroTime()},
        },
      })
    const first = await renew('b')
    expect(first.spec?.holderIdentity).toBe('b')
    const second = await failure(renew('c'))
    expect(second.code).toBe(409)
    expect(second.body.reason).toBe('Conflict')
    expect(second.body.message).toMatch(
      /^Operation cannot be fulfilled on leases.coordination.k8s.io "kseal-controller": the object has been modified/,
    )

    // A plain Date serialises with milliseconds; MicroTime fields need exactly 6 fractional digits.
    const bad = await failure(
      leases.createNamespacedLease({namespace: 'kube-system', body: {metadata: {name: 'ms'}, spec: {renewTime: new Date()}}}),
    )
    expect(bad.code).toBe(400)
    expect(bad.body.message).toMatch(/^Lease in version "v1" cannot be handled as a Lease: parsing time/)
  })

  it('stores Events once and serves them in core/v1 and events.k8s.io/v1', async () => {
    const regarding = {apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: 's', namespace: 'ev', uid: 'u-1'}
    await core.createNamespacedEvent({
      namespace: 'ev',
      body: {
        metadata: {generateName: 's.'},
        involvedObject: regarding,
        reason: 'Unsealed',
        message: 'unsealed into Secret s',
        type: 'Normal',
        source: {component: 'kseal-controller'},
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        count: 1,
      },
    })
    const mismatch = await failure(
      core.createNamespacedEvent({namespace: 'other', body: {metadata: {name: 'x'}, involvedObject: regarding, reason: 'R', message: 'm'}}),
    )
    expect(mismatch.code).toBe(422)
    expect(mismatch.body.message).toBe(
      'Event "x" is invalid: involvedObject.namespace: Invalid value: "ev": does not match event.namespace',
    )

    const events = kc.makeApiClient(EventsV1Api)
    await events.createNamespacedEvent({
      namespace: 'ev',
      body: {
        metadata: {name: 'e2'},
        eventTime: new V1MicroTime(),
        reportingController: 'kseal.dev/controller',
        reportingInstance: 'kseal-0',
        action: 'Unseal',
        reason: 'Failed',
        note: 'bad key',
        type: 'Warning',
        regarding,
      },
    })
    const v1list = await events.listNamespacedEvent({namespace: 'ev'})
    expect(v1list.items.map((e) => e.note).sort()).toEqual(['bad key', 'unsealed into Secret s'])
    const coreList = await core.listNamespacedEvent({namespace: 'ev', fieldSelector: 'involvedObject.name=s,type=Warning'})
    expect(coreList.items.map((e) => e.message)).toEqual(['bad key'])
  })
})
