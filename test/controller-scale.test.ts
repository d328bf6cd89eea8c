/**
 * The controller at scale: what it keeps of each watched SealedSecret (src/controller/sealed/slim.ts),
 * and the reflector's first list, which a new leader waits for before its first pass so that it
 * finds each Secret in the owned-Secret watch's cache instead of reading it with a GET.
 */
import {describe, expect, it} from '@jest/globals'
import {Reflector} from '../src/controller/runtime/reflector.js'
import {LAST_APPLIED, slimSealed} from '../src/controller/sealed/slim.js'
import {carryCompaction, compactedHash, compactSealed} from '../src/controller/sealed/compact.js'
import {recipientKids} from '../src/sealed/unseal.js'
import type {KubeObject, ListResult, WatchHandle} from '../src/kube/api.js'
import type {SealedSecretObject} from '../src/sealed/types.js'
import {silentLogger} from './support/log.js'

describe('slimSealed', () => {
  const spec = {encryptedData: {k: 'kseal:v2:AAAA'}, template: {metadata: {labels: {a: 'b'}}}} as unknown as SealedSecretObject['spec']
  const full = {
    apiVersion: 'kseal.dev/v1',
    kind: 'SealedSecret',
    metadata: {
      name: 'db',
      namespace: 'prod',
      uid: 'u-1',
      generation: 3,
      resourceVersion: '42',
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: {app: 'db'},
      annotations: {[LAST_APPLIED]: JSON.stringify({spec}), team: 'x'},
      managedFields: [{manager: 'kubectl', operation: 'Apply', fieldsV1: {'f:spec': {'f:encryptedData': {}}}}],
    },
    spec,
    status: {observedGeneration: 2},
  } as unknown as SealedSecretObject

  it('keeps what reconcile reads and drops managedFields and the last-applied copy of the object', () => {
    expect(slimSealed(full)).toEqual({
      apiVersion: 'kseal.dev/v1',
      kind: 'SealedSecret',
      metadata: {
        name: 'db',
        namespace: 'prod',
        uid: 'u-1',
        generation: 3,
        resourceVersion: '42',
        labels: {app: 'db'},
        annotations: {team: 'x'},
      },
      spec,
      status: {observedGeneration: 2},
    })
  })

  it('keeps a deletion in progress and leaves out what is absent', () => {
    const deleting = {...full, metadata: {name: 'a', deletionTimestamp: '2026-01-02T00:00:00Z', annotations: {[LAST_APPLIED]: '{}'}}}
    expect(slimSealed(deleting as unknown as SealedSecretObject)).toEqual({
      apiVersion: 'kseal.dev/v1',
      kind: 'SealedSecret',
      metadata: {name: 'a', deletionTimestamp: '2026-01-02T00:00:00Z'},
      spec,
      status: {observedGeneration: 2},
    })
  })
})

describe('compactSealed and carryCompaction (src/controller/sealed/compact.ts)', () => {
  const template = {metadata: {labels: {app: 'db'}}, type: 'Opaque'}
  const make = (generation: number, extra: Partial<SealedSecretObject['metadata']> = {}) =>
    ({
      apiVersion: 'kseal.dev/v1',
      kind: 'SealedSecret',
      metadata: {name: 'db', namespace: 'prod', uid: 'u-1', generation, resourceVersion: String(generation * 10), ...extra},
      spec: {
        encryptedData: {password: 'kseal:v2:CIPHERTEXT'},
        template,
        envelope: {
          version: 2,
          scope: 'strict',
          parts: [{recipients: [{backend: 'rsa', kid: 'k1', wrapped: 'WRAPPED'}], keys: ['password'], mac: 'M'}],
        },
      },
    }) as unknown as SealedSecretObject

  it('drops the ciphertexts and keeps the template, the key ids and the hash', () => {
    const o = make(1)
    compactSealed(o, 'h1')
    expect(JSON.stringify(o)).not.toMatch(/CIPHERTEXT|WRAPPED/)
    expect(o.spec.template).toEqual(template)
    expect(recipientKids(o)).toEqual(['k1'])
    expect(compactedHash(o)).toBe('h1')
    expect(compactedHash(make(1))).toBeUndefined()
  })

  it('carries to a newer object of the same uid and generation only (a status echo, a relist), never to one being deleted', () => {
    const prev = make(1)
    compactSealed(prev, 'h1')
    const echo = make(1, {resourceVersion: '11'})
    carryCompaction(echo, prev)
    expect(compactedHash(echo)).toBe('h1')
    const newSpec = make(2)
    carryCompaction(newSpec, prev)
    expect(compactedHash(newSpec)).toBeUndefined()
    const other = make(1, {uid: 'u-2'})
    carryCompaction(other, prev)
    expect(compactedHash(other)).toBeUndefined()
    const deleting = make(1, {deletionTimestamp: new Date()})
    carryCompaction(deleting, prev)
    expect(compactedHash(deleting)).toBeUndefined()
    const fromFull = make(1)
    carryCompaction(fromFull, make(1))
    expect(compactedHash(fromFull)).toBeUndefined()
  })
})

describe('Reflector.firstList', () => {
  /** A source whose list answers when the test says, and whose watch stays open until aborted. */
  function source() {
    const lists: {resolve: (l: ListResult<KubeObject>) => void; reject: (e: unknown) => void}[] = []
    return {
      lists,
      // The first list answers when the test says; later ones (a retry) at once, empty.
      list: () =>
        lists.length
          ? Promise.resolve({items: [], resourceVersion: '2'} as ListResult<KubeObject>)
          : new Promise<ListResult<KubeObject>>((resolve, reject) => lists.push({resolve, reject})),
      watch: async (_rv: string, _on: unknown, done: (err: unknown) => void): Promise<WatchHandle> =>
        ({abort: () => done(null)}) as WatchHandle,
    }
  }
  const settled = (p: Promise<void>) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setImmediate(() => r(false)))])

  it('settles when the first list has filled the cache, not before', async () => {
    const src = source()
    const r = new Reflector<KubeObject>(src, {upsert: () => undefined, delete: () => undefined}, {name: 't', log: silentLogger})
    r.start()
    await new Promise((res) => setImmediate(res))
    expect(src.lists).toHaveLength(1)
    expect(await settled(r.firstList)).toBe(false)
    src.lists[0].resolve({
      items: [{apiVersion: 'v1', kind: 'Secret', metadata: {name: 'a', namespace: 'n', resourceVersion: '1'}}],
      resourceVersion: '1',
    } as ListResult<KubeObject>)
    await r.firstList
    expect(r.cache.has('n/a')).toBe(true)
    await r.stop()
  })

  it('settles when the first list fails (the caller then reads from the API), and when stopped', async () => {
    const src = source()
    const r = new Reflector<KubeObject>(
      src,
      {upsert: () => undefined, delete: () => undefined},
      {name: 't', log: silentLogger, baseBackoffMs: 1, maxBackoffMs: 1},
    )
    r.start()
    await new Promise((res) => setImmediate(res))
    src.lists[0].reject(Object.assign(new Error('forbidden'), {code: 403}))
    await r.firstList
    expect(r.synced).toBe(false)
    await r.stop()
    // Stopped while its first list is still out: settled at once.
    const slow = source()
    const idle = new Reflector<KubeObject>(slow, {upsert: () => undefined, delete: () => undefined}, {name: 't', log: silentLogger})
    idle.start()
    await new Promise((res) => setImmediate(res))
    const stopping = idle.stop()
    expect(await settled(idle.firstList)).toBe(true)
    slow.lists[0].resolve({items: [], resourceVersion: '1'} as ListResult<KubeObject>)
    await stopping
  })
})
