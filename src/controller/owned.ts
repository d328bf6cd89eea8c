/**
 * The marks the controller puts on every Secret it writes, and the small view of such a Secret it
 * keeps in memory. The label `kseal.dev/owned-by: sealedsecret` lets it watch exactly the Secrets
 * it writes (a label-selected watch: the API server sends nothing else); the annotations say which
 * spec (`kseal.dev/spec-hash`) and which generation of the SealedSecret (`kseal.dev/generation`)
 * the data came from, so a replica holding an older view of a SealedSecret never writes over data
 * made from a newer one. Ownership itself is the ownerReference, never the label.
 */
import {RESERVED_PREFIX} from '../core/names.js'
import type {ClusterApi, Secret} from '../kube/api.js'
import type {Logger} from './log.js'
import {Reflector} from './runtime/reflector.js'

export const OWNED_LABEL = `${RESERVED_PREFIX}owned-by`
export const OWNED_LABEL_VALUE = 'sealedsecret'
export const OWNED_SELECTOR = `${OWNED_LABEL}=${OWNED_LABEL_VALUE}`
export const SPEC_HASH_ANNOTATION = `${RESERVED_PREFIX}spec-hash`
export const GENERATION_ANNOTATION = `${RESERVED_PREFIX}generation`

const ours = (k: string) => k.startsWith(RESERVED_PREFIX)

const kept = (m: Record<string, string> | undefined) => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(m ?? {})) if (ours(k)) out[k] = v
  return out
}

interface FieldsEntry {
  manager?: string
  operation?: string
  time?: Date | string
  subresource?: string
}

const timeOf = (e: FieldsEntry) => (e.time === undefined ? 0 : new Date(e.time).getTime() || 0)

/** The most recent managedFields entry by another field manager than `self` (the API server records every writer there). */
export function lastWriter(s: Secret | null | undefined, self: string): {manager: string; operation?: string; time?: string} | undefined {
  let best: FieldsEntry | undefined
  for (const e of (s?.metadata?.managedFields ?? []) as FieldsEntry[]) {
    if (!e.manager || e.manager === self) continue
    if (!best || timeOf(e) >= timeOf(best)) best = e
  }
  if (!best) return undefined
  return {manager: best.manager!, operation: best.operation, time: best.time === undefined ? undefined : new Date(best.time).toISOString()}
}

/**
 * A watched Secret as it is kept in memory: what the reconciler decides on and writes back with —
 * identity, resourceVersion, owners, finalizers, kseal's own labels and annotations, the writers in
 * managedFields (without their field sets), type and immutable. Never `data`, and no other
 * annotation (`kubectl.kubernetes.io/last-applied-configuration` can hold the values).
 */
export function slimSecret(s: Secret): Secret {
  const md = s.metadata ?? {}
  const managedFields = (md.managedFields ?? []).map((e) => ({
    manager: e.manager,
    operation: e.operation,
    time: e.time,
    subresource: e.subresource,
  }))
  const metadata: Secret['metadata'] = {
    name: md.name,
    namespace: md.namespace,
    uid: md.uid,
    resourceVersion: md.resourceVersion,
    creationTimestamp: md.creationTimestamp,
    labels: kept(md.labels),
    annotations: kept(md.annotations),
  }
  if (md.deletionTimestamp) metadata.deletionTimestamp = md.deletionTimestamp
  if (md.ownerReferences?.length) metadata.ownerReferences = md.ownerReferences
  if (md.finalizers?.length) metadata.finalizers = md.finalizers
  if (managedFields.length) metadata.managedFields = managedFields
  const out: Secret = {apiVersion: 'v1', kind: 'Secret', metadata, type: s.type}
  if (s.immutable !== undefined) out.immutable = s.immutable
  return out
}

/** The SealedSecret generation a Secret's data was made from, when the controller recorded it. */
export function secretGeneration(s: Secret): number | undefined {
  const v = s.metadata?.annotations?.[GENERATION_ANNOTATION]
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined
}

/** Whether the Secret carries the controller's label and the given generation. */
export function marked(s: Secret, generation: number | undefined): boolean {
  return s.metadata?.labels?.[OWNED_LABEL] === OWNED_LABEL_VALUE && (generation === undefined || secretGeneration(s) === generation)
}

/**
 * A watch on the Secrets a controller wrote, selected by label, kept slim (slimSecret): `changed` is
 * called for each Secret that changed (a new resourceVersion) or went.
 */
export function labelledSecrets(o: {
  api: ClusterApi
  namespace: string | undefined
  selector: string
  name: string
  log: Logger
  watchTimeout: () => number
  changed: (s: Secret) => void
}): Reflector<Secret> {
  const path = o.api.secretsPath(o.namespace)
  return new Reflector<Secret>(
    {
      list: (page) => o.api.listSecrets(o.namespace, o.selector, undefined, page),
      watch: (rv, onEvent, done) =>
        o.api.watch(
          path,
          {resourceVersion: rv, labelSelector: o.selector, allowWatchBookmarks: true, timeoutSeconds: o.watchTimeout()},
          onEvent,
          done,
        ),
    },
    {
      upsert: (s, old) => {
        if (old?.metadata?.resourceVersion !== s.metadata?.resourceVersion) o.changed(s)
      },
      delete: (s) => o.changed(s),
    },
    {name: o.name, log: o.log, transform: slimSecret},
  )
}
