/**
 * The ExternalSecret, SecretStore and ClusterSecretStore resources, defined once: their
 * CustomResourceDefinitions, which `deploy/crd-external.yaml` is generated from (`npm run crd`; a
 * test keeps it fresh).
 *
 * The schemas give the API server the shape kseal reads — the fields schema.ts knows, their types,
 * the policy enums — and every field the controller writes into `status` (the API server prunes what
 * a schema does not list). Inside `spec` unknown fields are kept, not pruned: schema.ts refuses a
 * field kseal does not implement with a condition that names it (`rewrite is not supported`), where
 * pruning would drop it silently and sync something other than what was written. A test admits every
 * manifest the validator accepts through these schemas unchanged, and the controller's status too.
 */
import {toYaml} from '../manifest/objects.js'
import {CONDITIONS_SCHEMA} from '../sealed/crd.js'
import type {StructuralSchema} from '../sealed/structure.js'
import {
  CLUSTER_SECRET_STORE_KIND,
  CLUSTER_SECRET_STORE_PLURAL,
  EXTERNAL_GROUP,
  EXTERNAL_SECRET_KIND,
  EXTERNAL_SECRET_PLURAL,
  EXTERNAL_VERSION,
  SECRET_STORE_KIND,
  SECRET_STORE_PLURAL,
} from './types.js'

const str: StructuralSchema = {type: 'string'}
const stringMap: StructuralSchema = {type: 'object', additionalProperties: str}
/** An object whose fields schema.ts checks one by one (and refuses unknown ones by name). */
const open = (description: string, properties: Record<string, StructuralSchema> = {}): StructuralSchema => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
  ...(Object.keys(properties).length ? {properties} : {}),
})

const remoteRef: StructuralSchema = open('Where one value lives in the store.', {
  key: str,
  property: str,
  version: str,
  conversionStrategy: {type: 'string', enum: ['Default', 'Unicode']},
  decodingStrategy: {type: 'string', enum: ['None', 'Base64', 'Base64URL', 'Auto']},
})

const EXTERNAL_SECRET_SPEC_SCHEMA: StructuralSchema = open('What to fetch, from which store, into which Secret.', {
  secretStoreRef: {
    type: 'object',
    required: ['name'],
    properties: {name: str, kind: {type: 'string', enum: [SECRET_STORE_KIND, CLUSTER_SECRET_STORE_KIND]}},
  },
  refreshInterval: {type: 'string', description: 'A duration (1h, 30m, 15s); 0 fetches once. Default 1h, at least 10s.'},
  refreshPolicy: str,
  target: open('The Secret written.', {
    name: str,
    creationPolicy: {type: 'string', enum: ['Owner', 'Merge', 'Orphan']},
    deletionPolicy: {type: 'string', enum: ['Retain', 'Delete']},
    immutable: {type: 'boolean'},
    template: open('type, metadata (labels, annotations), data templates, mergePolicy.', {
      type: str,
      metadata: {type: 'object', properties: {labels: stringMap, annotations: stringMap}},
      data: stringMap,
      mergePolicy: {type: 'string', enum: ['Replace', 'Merge']},
      engineVersion: str,
    }),
  }),
  data: {type: 'array', items: open('One Secret key from one remote value.', {secretKey: str, remoteRef})},
  dataFrom: {type: 'array', items: open('Keys from a JSON remote value (extract) or from remote names (find).', {extract: remoteRef})},
})

const EXTERNAL_SECRET_STATUS_SCHEMA: StructuralSchema = {
  type: 'object',
  properties: {
    observedGeneration: {type: 'integer', format: 'int64'},
    refreshTime: {type: 'string', format: 'date-time', description: 'The last successful fetch.'},
    syncedResourceVersion: {type: 'string', description: 'The resourceVersion of the Secret as the last sync left it.'},
    conditions: CONDITIONS_SCHEMA,
  },
}

const STORE_SPEC_SCHEMA: StructuralSchema = open(
  'The provider (aws, vault or kubernetes) and its auth; for a ClusterSecretStore, conditions.',
  {
    provider: open('Exactly one of aws, vault, kubernetes.'),
    conditions: {type: 'array', items: open('namespaces, namespaceRegexes, namespaceSelector.')},
  },
)

const objectSchema = (description: string, spec: StructuralSchema, status?: StructuralSchema): StructuralSchema => ({
  type: 'object',
  description,
  required: ['spec'],
  properties: {apiVersion: str, kind: str, metadata: {type: 'object'}, spec, ...(status ? {status} : {})},
})

const EXTERNAL_SECRET_SCHEMA = objectSchema(
  'A Secret synced from an external store (AWS Secrets Manager, SSM Parameter Store, Vault KV v2, another namespace) by the kseal controller.',
  EXTERNAL_SECRET_SPEC_SCHEMA,
  EXTERNAL_SECRET_STATUS_SCHEMA,
)
const SECRET_STORE_SCHEMA = objectSchema('Where the ExternalSecrets of its own namespace fetch from.', STORE_SPEC_SCHEMA)
const CLUSTER_SECRET_STORE_SCHEMA = objectSchema(
  'Where ExternalSecrets of any namespace its conditions admit fetch from; its references resolve in the ExternalSecret namespace.',
  STORE_SPEC_SCHEMA,
)

const cond = (type: string, field: string) => `.status.conditions[?(@.type=="${type}")].${field}`

function crd(
  kind: string,
  plural: string,
  scope: 'Namespaced' | 'Cluster',
  shortName: string,
  schema: StructuralSchema,
  columns: object[],
) {
  const version: Record<string, unknown> = {name: EXTERNAL_VERSION, served: true, storage: true}
  if (schema.properties?.status) version.subresources = {status: {}}
  version.additionalPrinterColumns = [...columns, {name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp'}]
  version.schema = {openAPIV3Schema: schema}
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {name: `${plural}.${EXTERNAL_GROUP}`, labels: {'app.kubernetes.io/part-of': 'kseal'}},
    spec: {
      group: EXTERNAL_GROUP,
      scope,
      names: {kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames: [shortName], categories: ['kseal']},
      versions: [version],
    },
  }
}

const EXTERNAL_CRDS = [
  crd(EXTERNAL_SECRET_KIND, EXTERNAL_SECRET_PLURAL, 'Namespaced', 'kes', EXTERNAL_SECRET_SCHEMA, [
    {name: 'Store', type: 'string', jsonPath: '.spec.secretStoreRef.name'},
    {name: 'Refresh', type: 'string', jsonPath: '.spec.refreshInterval'},
    {name: 'Ready', type: 'string', description: 'The Secret holds a good sync of this spec.', jsonPath: cond('Ready', 'status')},
    {name: 'Synced', type: 'string', description: 'The last sync succeeded.', jsonPath: cond('SecretSynced', 'status')},
    {name: 'Reason', type: 'string', jsonPath: cond('SecretSynced', 'reason')},
    {name: 'Message', type: 'string', jsonPath: cond('SecretSynced', 'message'), priority: 1},
  ]),
  crd(SECRET_STORE_KIND, SECRET_STORE_PLURAL, 'Namespaced', 'kss', SECRET_STORE_SCHEMA, []),
  crd(CLUSTER_SECRET_STORE_KIND, CLUSTER_SECRET_STORE_PLURAL, 'Cluster', 'kcss', CLUSTER_SECRET_STORE_SCHEMA, []),
]

/** deploy/crd-external.yaml's text. */
export function externalCrdYaml(): string {
  return (
    '# The ExternalSecret, SecretStore and ClusterSecretStore resources (docs/external-secrets.md), generated from\n' +
    '# src/external/crd.ts by `npm run crd`: edit them there.\n' +
    EXTERNAL_CRDS.map((c) => toYaml(c)).join('---\n')
  )
}
