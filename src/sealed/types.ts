/**
 * The `kseal.dev/v1` SealedSecret (spec: docs/SEALED-FORMAT.md): its names, its shape and its limits.
 */
import type {RecipientEntry} from '../../keys/types.js'
import type {Scope} from '../envelope/binding.js'
import type {Version} from '../envelope/envelope.js'
import {isObj} from '../core/guards.js'

export const SEALED_GROUP = 'kseal.dev'
export const SEALED_VERSION = 'v1'
export const SEALED_KIND = 'SealedSecret'
export const SEALED_PLURAL = 'sealedsecrets'
export const SEALED_API_VERSION = `${SEALED_GROUP}/${SEALED_VERSION}`

/** At most this many parts (merges) in one SealedSecret: opening costs one private-key operation per part. */
export const MAX_PARTS = 64
/** At most this many recipient entries in one part. */
export const MAX_PART_RECIPIENTS = 16

/** One part of the envelope: the values one seal or one merge wrote, under one data key. */
export interface SealedPart {
  /** The part's data key, wrapped for each recipient (the controller's key id in `kid`). */
  recipients: RecipientEntry[]
  /** The encryptedData keys this part wrote, sorted. */
  keys: string[]
  /** For each key this part replaced: base64 SHA-256 of the token it replaced. */
  supersedes?: Record<string, string>
  /** HMAC-SHA256 over the part (see partMac), base64. */
  mac: string
}

export interface SealedEnvelope {
  version: Version
  scope: Scope
  parts: SealedPart[]
}

export interface SealedTemplate {
  metadata?: {labels?: Record<string, string>; annotations?: Record<string, string>}
  type?: string
  immutable?: boolean
}

export interface SealedSpec {
  /** Secret key → kseal token (`kseal:v1:...`), each bound to its place with AAD field `data`. */
  encryptedData: Record<string, string>
  template?: SealedTemplate
  envelope: SealedEnvelope
}

export interface SealedCondition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason?: string
  message?: string
  lastTransitionTime?: string
  observedGeneration?: number
}

export interface SealedStatus {
  observedGeneration?: number
  conditions?: SealedCondition[]
}

export interface SealedSecretObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    generation?: number
    resourceVersion?: string
    /** Typed as client-node's V1ObjectMeta types it (raw JSON holds a string); only its presence matters here. */
    deletionTimestamp?: Date
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  spec: SealedSpec
  status?: SealedStatus
}

export interface UnsealResult {
  /** A v1 Secret: apiVersion, kind, metadata (name, namespace, template labels/annotations), type, immutable?, data (base64). */
  secret: Record<string, unknown>
  /** The key ids that opened it, one per distinct key, in part order. */
  kids: string[]
}

/** How a SealedSecret is named in messages: `namespace/name`, or `name`, or `(unnamed)`. */
export function sealedLabel(meta: {name?: unknown; namespace?: unknown}): string {
  const ns = typeof meta.namespace === 'string' && meta.namespace ? `${meta.namespace}/` : ''
  return ns + (typeof meta.name === 'string' && meta.name ? meta.name : '(unnamed)')
}

/** True when an object claims to be a kseal SealedSecret (any version). */
export function isKsealSealedSecret(o: unknown): boolean {
  return isObj(o) && o.kind === SEALED_KIND && typeof o.apiVersion === 'string' && o.apiVersion.startsWith(`${SEALED_GROUP}/`)
}
