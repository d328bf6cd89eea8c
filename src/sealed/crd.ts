/**
 * The SealedSecret resource, defined once: its CustomResourceDefinition, whose OpenAPI schema is what
 * the API server checks and prunes by, and what parse.ts checks the shape of every SealedSecret
 * against (structure.ts). `deploy/crd.yaml` is generated from it (`npm run crd`; a test keeps it
 * fresh): every field kseal writes must be listed here, or the API server prunes it.
 */
import {SCOPES} from '../envelope/binding.js'
import {toYaml} from '../manifest/objects.js'
import type {StructuralSchema} from './structure.js'
import {SEALED_GROUP, SEALED_KIND, SEALED_PLURAL, SEALED_VERSION} from './types.js'

const str: StructuralSchema = {type: 'string'}
const stringMap: StructuralSchema = {type: 'object', additionalProperties: str}

/** `spec`: the sealed values, the template of the Secret it produces, and the envelope chain. */
export const SEALED_SPEC_SCHEMA: StructuralSchema = {
  type: 'object',
  required: ['encryptedData', 'envelope'],
  properties: {
    encryptedData: {
      type: 'object',
      description: 'Secret key to kseal token (kseal:v1:...), AES-256-GCM bound to namespace, name (per scope) and key.',
      additionalProperties: {type: 'string', pattern: '^kseal:v[0-9]+:[A-Za-z0-9_-]+$'},
    },
    template: {
      type: 'object',
      description: 'What the produced Secret gets besides its data.',
      properties: {
        metadata: {type: 'object', properties: {labels: stringMap, annotations: stringMap}},
        type: str,
        immutable: {type: 'boolean'},
      },
    },
    envelope: {
      type: 'object',
      description: 'Wrapped data keys and MACs, one part per seal or merge.',
      required: ['version', 'scope', 'parts'],
      properties: {
        version: {type: 'integer'},
        scope: {type: 'string', enum: [...SCOPES]},
        parts: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['recipients', 'keys', 'mac'],
            properties: {
              recipients: {
                type: 'array',
                minItems: 1,
                items: {
                  type: 'object',
                  required: ['backend', 'kid', 'wrapped'],
                  // Backends may record more string fields next to these.
                  'x-kubernetes-preserve-unknown-fields': true,
                  properties: {backend: str, kid: str, wrapped: str},
                },
              },
              keys: {type: 'array', items: str},
              supersedes: stringMap,
              mac: str,
            },
          },
        },
      },
    },
  },
}

/** `status.conditions` of every kind the controller reports on: one condition per type. */
export const CONDITIONS_SCHEMA: StructuralSchema = {
  type: 'array',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    required: ['type', 'status'],
    properties: {
      type: str,
      status: {type: 'string', enum: ['True', 'False', 'Unknown']},
      reason: str,
      message: str,
      lastTransitionTime: {type: 'string', format: 'date-time'},
      observedGeneration: {type: 'integer', format: 'int64'},
    },
  },
}

/** `status`: what the controller reports (the Synced condition). */
const STATUS_SCHEMA: StructuralSchema = {
  type: 'object',
  properties: {
    observedGeneration: {type: 'integer', format: 'int64'},
    conditions: CONDITIONS_SCHEMA,
  },
}

/** The whole object, as the API server stores it. */
export const SEALED_SECRET_SCHEMA: StructuralSchema = {
  type: 'object',
  description:
    "A Secret sealed with the kseal controller's public certificate; the controller unseals it into a Secret of the same name and namespace.",
  required: ['spec'],
  properties: {
    apiVersion: str,
    kind: str,
    metadata: {type: 'object'},
    spec: SEALED_SPEC_SCHEMA,
    status: STATUS_SCHEMA,
  },
}

const synced = (field: string) => `.status.conditions[?(@.type=="Synced")].${field}`

/** The CustomResourceDefinition that deploy/crd.yaml holds. */
export const SEALED_SECRET_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: {name: `${SEALED_PLURAL}.${SEALED_GROUP}`, labels: {'app.kubernetes.io/part-of': 'kseal'}},
  spec: {
    group: SEALED_GROUP,
    scope: 'Namespaced',
    names: {
      kind: SEALED_KIND,
      listKind: `${SEALED_KIND}List`,
      plural: SEALED_PLURAL,
      singular: SEALED_KIND.toLowerCase(),
      categories: ['kseal'],
    },
    versions: [
      {
        name: SEALED_VERSION,
        served: true,
        storage: true,
        subresources: {status: {}},
        additionalPrinterColumns: [
          {
            name: 'Synced',
            type: 'string',
            description: 'Whether the Secret is up to date with this SealedSecret.',
            jsonPath: synced('status'),
          },
          {name: 'Reason', type: 'string', description: 'Why, in one word.', jsonPath: synced('reason')},
          {name: 'Message', type: 'string', description: 'Why, in a sentence.', jsonPath: synced('message'), priority: 1},
          {name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp'},
        ],
        schema: {openAPIV3Schema: SEALED_SECRET_SCHEMA},
      },
    ],
  },
}

/** deploy/crd.yaml's text: the definition above, as YAML, under a header saying where it comes from. */
export function crdYaml(): string {
  return (
    '# The SealedSecret resource (docs/SEALED-FORMAT.md), generated from src/sealed/crd.ts by `npm run crd`: edit\n' +
    '# it there. The schema lists every field kseal writes (the API server prunes fields it does not list).\n' +
    toYaml(SEALED_SECRET_CRD)
  )
}
