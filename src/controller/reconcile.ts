/**
 * One SealedSecret in, one Secret out. The reconciler decides from the cluster's state alone:
 * the Secret's `kseal.dev/spec-hash` annotation says whether it already matches the SealedSecret
 * (then nothing is decrypted — a restart costs no RSA operation), an ownerReference says whether
 * it is ours to write (a Secret someone else made is never overwritten unless annotated
 * `kseal.dev/managed: "true"`). Outcomes become the `Synced` condition, an Event, and a retry
 * decision for the work queue. Messages name Secrets and keys, never values.
 */
import {isKsealError, scrubUrls} from '../errors.js'
import {SEALED_GROUP, SEALED_KIND, SEALED_PLURAL, SEALED_VERSION, type SealedSecretObject, sealedSpecHash, unsealSealedSecret} from '../sealed.js'
import type {Binding, RecipientEntry} from '../../keys/types.js'
import {apiFailure, type ClusterApi, type CoreEvent, describeError, isAlreadyExists, isConflict, isNotFound, type Secret} from './kube.js'
import type {Logger} from './log.js'

export const SPEC_HASH_ANNOTATION = 'kseal.dev/spec-hash'
export const MANAGED_ANNOTATION = 'kseal.dev/managed'
export const COMPONENT = 'kseal-controller'
export const SYNCED = 'Synced'

export type Reason =
  | 'Unsealed'
  | 'NotOwned'
  | 'NoKey'
  | 'DecryptFailed'
  | 'IntegrityFailed'
  | 'UnsupportedVersion'
  | 'InvalidSpec'
  | 'Refused'
  | 'ApiError'

export interface Outcome {
  result: 'unsealed' | 'unchanged' | 'failed'
  reason: Reason
  message: string
  /** What the queue does next: nothing, retry with backoff, or retry at once (a lost race). */
  retry: 'no' | 'backoff' | 'now'
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  lastTransitionTime: string
}

export type OpenFn = (entries: RecipientEntry[], binding: Binding) => Promise<Uint8Array>

export interface ReconcilerOptions {
  api: ClusterApi
  open: OpenFn
  log: Logger
  /** This replica's name, for Events. */
  identity: string
  now?: () => Date
  /** The namespace of the controller's own keys: no SealedSecret may write a Secret there. */
  keyNamespace?: string
}

const REASON_BY_CODE: Record<string, Reason> = {
  ERR_NO_KEY: 'NoKey',
  ERR_DECRYPT: 'DecryptFailed',
  ERR_INTEGRITY: 'IntegrityFailed',
  ERR_VERSION: 'UnsupportedVersion',
  ERR_INPUT: 'InvalidSpec',
  ERR_USAGE: 'InvalidSpec',
  ERR_CONFIG: 'InvalidSpec',
}

/** Failures that the same spec will always meet again: no retry until the SealedSecret changes. */
const PERMANENT: ReadonlySet<Reason> = new Set(['DecryptFailed', 'IntegrityFailed', 'UnsupportedVersion', 'InvalidSpec', 'Refused'])

/** Labels and annotations in this prefix are kseal's own (the sealing-key label, the spec hash, ...). */
const RESERVED_PREFIX = 'kseal.dev/'

/**
 * Why a SealedSecret may not be unsealed at all, whatever it holds: its Secret would land in the
 * namespace of the controller's own keys, or would carry kseal's own labels or annotations (a
 * planted `kseal.dev/sealing-key` Secret, say). Null when it may.
 */
export function refusedTarget(sealed: SealedSecretObject, keyNamespace: string | undefined): string | null {
  const ns = sealed.metadata.namespace ?? 'default'
  if (keyNamespace !== undefined && ns === keyNamespace) {
    return `refused: its Secret would be written in ${ns}, the namespace of the controller's own keys; no SealedSecret is unsealed there`
  }
  const meta = (sealed.spec as {template?: {metadata?: {labels?: unknown; annotations?: unknown}}} | undefined)?.template?.metadata ?? {}
  for (const [what, m] of [['label', meta.labels], ['annotation', meta.annotations]] as const) {
    if (typeof m !== 'object' || m === null) continue
    const k = Object.keys(m).find((key) => key.startsWith(RESERVED_PREFIX))
    if (k) return `refused: its template carries the ${what} ${k}, which only kseal itself sets`
  }
  return null
}

export function ownerReference(s: SealedSecretObject) {
  return {apiVersion: `${SEALED_GROUP}/${SEALED_VERSION}`, kind: SEALED_KIND, name: s.metadata.name!, uid: s.metadata.uid!, controller: true}
}

const isSealedRef = (r: {apiVersion?: string; kind?: string}) => r.kind === SEALED_KIND && r.apiVersion?.split('/')[0] === SEALED_GROUP

/** The Secret is this SealedSecret's: a controller ownerReference to it (by uid). */
export function ownedBy(secret: Secret, s: SealedSecretObject): boolean {
  return (secret.metadata?.ownerReferences ?? []).some((r) => isSealedRef(r) && r.uid === s.metadata.uid && r.controller === true)
}

/** May be written: ours, left by an earlier SealedSecret of the same name, or opted in by annotation. */
export function mayManage(secret: Secret, s: SealedSecretObject): boolean {
  if (ownedBy(secret, s)) return true
  if ((secret.metadata?.ownerReferences ?? []).some((r) => isSealedRef(r) && r.name === s.metadata.name)) return true
  return secret.metadata?.annotations?.[MANAGED_ANNOTATION] === 'true'
}

export class Reconciler {
  private readonly permanent = new Map<string, {hash: string; reason: Reason; message: string}>()

  constructor(private readonly o: ReconcilerOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  async reconcile(sealed: SealedSecretObject): Promise<Outcome> {
    const ns = sealed.metadata.namespace ?? 'default'
    const name = sealed.metadata.name ?? ''
    const log = this.o.log.with({sealedSecret: `${ns}/${name}`})
    if (sealed.metadata.deletionTimestamp) return {result: 'unchanged', reason: 'Unsealed', message: 'being deleted', retry: 'no'}

    let hash: string
    try {
      hash = sealedSpecHash(sealed)
    } catch (e) {
      return this.fail(sealed, 'InvalidSpec', `invalid SealedSecret: ${describeError(e)}`, '', log)
    }

    const refused = refusedTarget(sealed, this.o.keyNamespace)
    if (refused) return this.fail(sealed, 'Refused', refused, hash, log)

    const known = this.permanent.get(sealed.metadata.uid ?? '')
    if (known && known.hash === hash) {
      // Already reported for this very spec: no second decryption, no second Event.
      await this.setStatus(sealed, 'False', known.reason, known.message)
      return {result: 'failed', reason: known.reason, message: known.message, retry: 'no'}
    }
    this.permanent.delete(sealed.metadata.uid ?? '')

    let existing: Secret | null
    try {
      existing = await this.o.api.getSecret(ns, name)
    } catch (e) {
      return this.apiError(sealed, `cannot read Secret ${ns}/${name}: ${describeError(e)}`, log)
    }

    if (existing && !mayManage(existing, sealed)) {
      const message = `Secret ${ns}/${name} already exists and is not owned by this SealedSecret, so it is left alone; ` +
        `delete it, or let the controller take it over: kubectl annotate secret -n ${ns} ${name} ${MANAGED_ANNOTATION}=true`
      return this.fail(sealed, 'NotOwned', message, hash, log)
    }
    if (existing && ownedBy(existing, sealed) && existing.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === hash) {
      try {
        await this.setStatus(sealed, 'True', 'Unsealed', `Secret ${name} is up to date`)
      } catch (e) {
        return this.apiError(sealed, `cannot update the status: ${describeError(e)}`, log)
      }
      return {result: 'unchanged', reason: 'Unsealed', message: 'up to date', retry: 'no'}
    }

    let plain: Secret
    let kids: string[]
    try {
      const r = await unsealSealedSecret(sealed, this.o.open)
      plain = r.secret as Secret
      kids = r.kids
    } catch (e) {
      if (!isKsealError(e)) return this.apiError(sealed, `cannot unseal: ${describeError(e)}`, log)
      const reason = REASON_BY_CODE[e.code] ?? 'DecryptFailed'
      return this.fail(sealed, reason, `cannot unseal: ${e.line}`, hash, log)
    }

    const desired = this.desiredSecret(sealed, plain, hash, existing)
    let verb: 'created' | 'updated'
    try {
      if (!existing) {
        await this.o.api.createSecret(ns, desired)
        verb = 'created'
      } else if (existing.immutable || (existing.type ?? 'Opaque') !== (desired.type ?? 'Opaque')) {
        // Kubernetes refuses to change an immutable Secret's data or any Secret's type: replace it.
        await this.o.api.deleteSecret(ns, name, {uid: existing.metadata?.uid, resourceVersion: existing.metadata?.resourceVersion})
        delete desired.metadata!.resourceVersion
        delete desired.metadata!.uid
        await this.o.api.createSecret(ns, desired)
        verb = 'updated'
      } else {
        await this.o.api.replaceSecret(ns, name, desired)
        verb = 'updated'
      }
    } catch (e) {
      if (isConflict(e) || isAlreadyExists(e) || isNotFound(e)) {
        log.info('Secret changed while being written; retrying', {error: describeError(e)})
        return {result: 'failed', reason: 'ApiError', message: describeError(e), retry: 'now'}
      }
      return this.apiError(sealed, `cannot write Secret ${ns}/${name}: ${describeError(e)}`, log)
    }

    const message = `Secret ${name} ${verb} (key ${kids.join(', ')})`
    try {
      await this.setStatus(sealed, 'True', 'Unsealed', message)
    } catch (e) {
      return this.apiError(sealed, `Secret ${verb}, but the status could not be written: ${describeError(e)}`, log)
    }
    await this.event(sealed, 'Normal', 'Unsealed', message, log)
    log.info(`Secret ${verb}`, {secret: `${ns}/${name}`, kids, keys: Object.keys(desired.data ?? {}).length})
    return {result: 'unsealed', reason: 'Unsealed', message, retry: 'no'}
  }

  /** Forgets what was remembered about a SealedSecret that is gone. */
  forget(uid: string | undefined): void {
    if (uid) this.permanent.delete(uid)
  }

  private desiredSecret(sealed: SealedSecretObject, plain: Secret, hash: string, existing: Secret | null): Secret {
    const md = plain.metadata ?? {}
    const annotations: Record<string, string> = {...(md.annotations ?? {}), [SPEC_HASH_ANNOTATION]: hash}
    if (existing?.metadata?.annotations?.[MANAGED_ANNOTATION] !== undefined && annotations[MANAGED_ANNOTATION] === undefined) {
      annotations[MANAGED_ANNOTATION] = existing.metadata.annotations[MANAGED_ANNOTATION]
    }
    // Other owners stay; any earlier SealedSecret reference (and any other controller) gives way to this one.
    const owners = (existing?.metadata?.ownerReferences ?? []).filter((r) => !isSealedRef(r) && !r.controller)
    const metadata: Secret['metadata'] = {
      ...(existing?.metadata ?? {}),
      name: sealed.metadata.name,
      namespace: sealed.metadata.namespace,
      labels: {...(md.labels ?? {})},
      annotations,
      ownerReferences: [...owners, ownerReference(sealed)],
    }
    delete metadata.managedFields
    const out: Secret = {apiVersion: 'v1', kind: 'Secret', metadata, type: plain.type ?? 'Opaque', data: plain.data ?? {}}
    if (plain.immutable !== undefined) out.immutable = plain.immutable
    return out
  }

  private async fail(sealed: SealedSecretObject, reason: Reason, message: string, hash: string, log: Logger): Promise<Outcome> {
    log.warn('cannot unseal SealedSecret', {reason, error: message})
    const retry = PERMANENT.has(reason) ? 'no' : 'backoff'
    let changed: boolean
    try {
      changed = await this.setStatus(sealed, 'False', reason, message)
    } catch (e) {
      log.warn('cannot update the status', {error: describeError(e)})
      await this.event(sealed, 'Warning', reason, message, log)
      return {result: 'failed', reason, message, retry: 'backoff'}
    }
    if (retry === 'no' && sealed.metadata.uid) this.permanent.set(sealed.metadata.uid, {hash, reason, message})
    // One Warning per change of state, not one per retry.
    if (changed) await this.event(sealed, 'Warning', reason, message, log)
    return {result: 'failed', reason, message, retry}
  }

  private async apiError(sealed: SealedSecretObject, message: string, log: Logger): Promise<Outcome> {
    log.warn('Kubernetes API call failed; will retry', {error: message})
    // Best effort: the API may be what is failing.
    await this.setStatus(sealed, 'False', 'ApiError', message).catch(() => undefined)
    return {result: 'failed', reason: 'ApiError', message, retry: 'backoff'}
  }

  /** Writes `Synced` and `observedGeneration` through the status subresource, only when they change (returns whether it wrote). */
  async setStatus(sealed: SealedSecretObject, status: 'True' | 'False', reason: Reason, message: string): Promise<boolean> {
    const cur = (sealed.status ?? {}) as {observedGeneration?: number; conditions?: Condition[]}
    const prev = cur.conditions?.find((c) => c.type === SYNCED)
    const generation = sealed.metadata.generation
    const sameGen = cur.observedGeneration === generation
    // An up-to-date Secret needs no status write when it already says so (whatever the wording).
    if (sameGen && prev && prev.status === status && prev.reason === reason && (status === 'True' || prev.message === message)) return false
    const cond: Condition = {
      type: SYNCED,
      status,
      reason,
      message,
      lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : this.now().toISOString(),
    }
    const conditions = [...(cur.conditions ?? []).filter((c) => c.type !== SYNCED), cond]
    try {
      await this.o.api.patchCustomStatus(SEALED_GROUP, SEALED_VERSION, SEALED_PLURAL, sealed.metadata.namespace ?? 'default', sealed.metadata.name ?? '',
        {observedGeneration: generation, conditions})
    } catch (e) {
      if (isNotFound(e)) return false
      throw e
    }
    // Later reconciles of this same cached object see what was written.
    sealed.status = {...(sealed.status ?? {}), observedGeneration: generation, conditions} as SealedSecretObject['status']
    return true
  }

  private async event(sealed: SealedSecretObject, type: 'Normal' | 'Warning', reason: Reason, message: string, log: Logger): Promise<void> {
    const now = this.now()
    const ns = sealed.metadata.namespace ?? 'default'
    const body: CoreEvent = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {name: `${(sealed.metadata.name ?? '').slice(0, 200)}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16).padStart(4, '0')}`, namespace: ns},
      involvedObject: {
        apiVersion: `${SEALED_GROUP}/${SEALED_VERSION}`,
        kind: SEALED_KIND,
        name: sealed.metadata.name,
        namespace: ns,
        uid: sealed.metadata.uid,
        resourceVersion: sealed.metadata.resourceVersion,
      },
      reason,
      message: scrubUrls(message).slice(0, 1024),
      type,
      action: 'Unseal',
      source: {component: COMPONENT},
      reportingComponent: COMPONENT,
      reportingInstance: this.o.identity,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    }
    try {
      await this.o.api.createEvent(ns, body)
    } catch (e) {
      log.warn('cannot record an Event', {reason, error: describeError(e), code: apiFailure(e)?.code})
    }
  }
}
