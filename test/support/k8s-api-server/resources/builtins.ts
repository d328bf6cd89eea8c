/** The resource definitions every server starts with (kseal's SealedSecret CRD included). */
import {decodeTimes} from '../decode.js'
import {SERVICE_ACCOUNT_DEFINITION} from '../tokens.js'
import type {ResourceDefinition} from '../types.js'
import {clone, meta} from '../util.js'
import {
  CORE_EVENT_MICRO,
  CORE_EVENT_TIMES,
  EVENTS_V1_FIELD_SELECTORS,
  EVENT_FIELD_SELECTORS,
  V1_EVENT_TIMES,
  coreEventToEventsV1,
  eventsV1ToCoreEvent,
  validateEvent,
} from './event.js'
import {validateLease} from './lease.js'
import {decodeSecret, validateSecret} from './secret.js'

export const SEALED_SECRET_DEFINITION: ResourceDefinition = {
  group: 'kseal.dev',
  version: 'v1',
  resource: 'sealedsecrets',
  kind: 'SealedSecret',
  singular: 'sealedsecret',
  namespaced: true,
  shortNames: ['sealed'],
  statusSubresource: true,
  custom: true,
}

/** kseal's ExternalSecret CRDs (deploy/ installs them with the SealedSecret's). */
export const EXTERNAL_DEFINITIONS: ResourceDefinition[] = [
  {resource: 'externalsecrets', kind: 'ExternalSecret', singular: 'externalsecret', namespaced: true, shortNames: ['es']},
  {resource: 'secretstores', kind: 'SecretStore', singular: 'secretstore', namespaced: true, shortNames: ['ss']},
  {resource: 'clustersecretstores', kind: 'ClusterSecretStore', singular: 'clustersecretstore', namespaced: false, shortNames: ['css']},
].map((d) => ({group: 'kseal.dev', version: 'v1', statusSubresource: true, custom: true, ...d}))

export function builtinResources(): ResourceDefinition[] {
  return [
    {
      group: '',
      version: 'v1',
      resource: 'secrets',
      kind: 'Secret',
      singular: 'secret',
      namespaced: true,
      knownFields: ['apiVersion', 'kind', 'metadata', 'data', 'stringData', 'type', 'immutable'],
      fieldSelectors: {type: (o) => o.type},
      decode: decodeSecret,
      validate: (o, old) => validateSecret(o, old),
    },
    {
      group: '',
      version: 'v1',
      resource: 'namespaces',
      kind: 'Namespace',
      singular: 'namespace',
      namespaced: false,
      shortNames: ['ns'],
      statusSubresource: true,
      returnDeletedObject: true,
      nameValidation: 'label',
      knownFields: ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
      fieldSelectors: {'status.phase': (o) => o.status?.phase},
      prepareForCreate: (o) => {
        o.spec = {...(o.spec ?? {}), finalizers: ['kubernetes']}
        o.status = {phase: 'Active'}
        meta(o).labels = {...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name}
      },
      prepareForUpdate: (o, old) => {
        o.spec = {...(o.spec ?? {}), finalizers: clone(old.spec?.finalizers)}
        if (!o.spec.finalizers) delete o.spec.finalizers
        meta(o).labels = {...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name}
      },
    },
    {
      group: '',
      version: 'v1',
      resource: 'events',
      kind: 'Event',
      singular: 'event',
      namespaced: true,
      shortNames: ['ev'],
      allowCreateOnUpdate: true,
      storageKey: 'events',
      knownFields: [
        'apiVersion',
        'kind',
        'metadata',
        'involvedObject',
        'reason',
        'message',
        'source',
        'firstTimestamp',
        'lastTimestamp',
        'count',
        'type',
        'eventTime',
        'series',
        'action',
        'related',
        'reportingComponent',
        'reportingInstance',
      ],
      fieldSelectors: EVENT_FIELD_SELECTORS,
      decode: (o) => decodeTimes(o, CORE_EVENT_TIMES, CORE_EVENT_MICRO),
      validate: validateEvent,
    },
    {
      group: 'events.k8s.io',
      version: 'v1',
      resource: 'events',
      kind: 'Event',
      singular: 'event',
      namespaced: true,
      shortNames: ['ev'],
      allowCreateOnUpdate: true,
      storageKey: 'events',
      knownFields: [
        'apiVersion',
        'kind',
        'metadata',
        'eventTime',
        'series',
        'reportingController',
        'reportingInstance',
        'action',
        'reason',
        'regarding',
        'related',
        'note',
        'type',
        'deprecatedSource',
        'deprecatedFirstTimestamp',
        'deprecatedLastTimestamp',
        'deprecatedCount',
      ],
      fieldSelectors: EVENTS_V1_FIELD_SELECTORS,
      toStorage: eventsV1ToCoreEvent,
      fromStorage: coreEventToEventsV1,
      decode: (o) => decodeTimes(o, V1_EVENT_TIMES, CORE_EVENT_MICRO),
      validate: validateEvent,
    },
    {
      group: 'coordination.k8s.io',
      version: 'v1',
      resource: 'leases',
      kind: 'Lease',
      singular: 'lease',
      namespaced: true,
      allowCreateOnUpdate: true,
      knownFields: ['apiVersion', 'kind', 'metadata', 'spec'],
      decode: (o) =>
        decodeTimes(
          o,
          [],
          [
            ['spec', 'acquireTime'],
            ['spec', 'renewTime'],
          ],
        ),
      validate: validateLease,
    },
    SEALED_SECRET_DEFINITION,
    ...EXTERNAL_DEFINITIONS,
    SERVICE_ACCOUNT_DEFINITION,
  ]
}
