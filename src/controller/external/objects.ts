/**
 * ExternalSecrets and stores as the controller keeps them in memory: validated once when the watch
 * brings them (schema.ts), so a reconcile never parses, and slim — identity, the parsed spec (plain
 * data: names, paths, template text) or why it is invalid, and the few status fields the reconcile
 * decides on. No managedFields, no last-applied annotation, no raw spec.
 */
import {isKsealError} from '../../core/errors.js'
import {isObj} from '../../core/guards.js'
import {parseExternalSecret, parseSecretStore} from '../../external/schema.js'
import type {ExternalSecret, SecretStore} from '../../external/types.js'
import type {KubeObject} from '../../kube/api.js'
import type {Condition} from '../sealed/reconcile.js'

export interface ExternalStatus {
  observedGeneration?: number
  conditions?: Condition[]
  refreshTime?: string
  syncedResourceVersion?: string
}

interface SlimMeta {
  name: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  deletionTimestamp?: Date
}

export interface CachedExternalSecret extends KubeObject {
  metadata: SlimMeta
  /** The validated spec; undefined when `invalid` says why not. */
  es?: ExternalSecret
  invalid?: string
  status: ExternalStatus
}

export interface CachedStore extends KubeObject {
  metadata: SlimMeta
  store?: SecretStore
  invalid?: string
}

function slimMeta(o: KubeObject): SlimMeta {
  const m = o.metadata ?? {}
  const out: SlimMeta = {name: m.name ?? ''}
  if (m.namespace) out.namespace = m.namespace
  if (m.uid) out.uid = m.uid
  if (m.resourceVersion) out.resourceVersion = m.resourceVersion
  if (m.generation !== undefined) out.generation = m.generation
  if (m.deletionTimestamp) out.deletionTimestamp = m.deletionTimestamp
  return out
}

const why = (e: unknown) => (isKsealError(e) ? e.line : String((e as Error)?.message ?? e))

function slimStatus(raw: unknown): ExternalStatus {
  if (!isObj(raw)) return {}
  const out: ExternalStatus = {}
  if (typeof raw.observedGeneration === 'number') out.observedGeneration = raw.observedGeneration
  if (typeof raw.refreshTime === 'string') out.refreshTime = raw.refreshTime
  if (typeof raw.syncedResourceVersion === 'string') out.syncedResourceVersion = raw.syncedResourceVersion
  if (Array.isArray(raw.conditions))
    out.conditions = raw.conditions.filter(isObj).map((c) => ({
      type: String(c.type ?? ''),
      status: (['True', 'False'].includes(c.status as string) ? c.status : 'Unknown') as Condition['status'],
      reason: String(c.reason ?? ''),
      message: String(c.message ?? ''),
      lastTransitionTime: String(c.lastTransitionTime ?? ''),
    }))
  return out
}

/** The reflector's transform for ExternalSecrets. */
export function slimExternalSecret(raw: KubeObject): CachedExternalSecret {
  const out: CachedExternalSecret = {metadata: slimMeta(raw), status: slimStatus((raw as {status?: unknown}).status)}
  try {
    out.es = parseExternalSecret(raw)
  } catch (e) {
    out.invalid = why(e)
  }
  return out
}

/** The reflector's transform for SecretStores and ClusterSecretStores. */
export function slimStore(raw: KubeObject): CachedStore {
  const out: CachedStore = {metadata: slimMeta(raw)}
  try {
    out.store = parseSecretStore(raw)
  } catch (e) {
    out.invalid = why(e)
  }
  return out
}
