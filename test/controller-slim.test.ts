/** What the controller keeps of each watched SealedSecret (src/controller/sealed/slim.ts). */
import {describe, expect, it} from '@jest/globals'
import {LAST_APPLIED, slimSealed} from '../src/controller/sealed/slim.js'
import type {SealedSecretObject} from '../src/sealed/types.js'

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
