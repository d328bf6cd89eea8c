/**
 * One ExternalSecret in, one Secret out (or none: deletionPolicy Delete once every remote key is
 * gone). The reconcile decides from the cluster's state and its own status:
 *
 * - nothing is fetched while the Secret is exactly what the last sync left (its resourceVersion is
 *   `status.syncedResourceVersion`), the spec is the one synced (`observedGeneration`), the store
 *   has not changed and the next refresh slot (schedule.ts) has not come — so a restart or a new
 *   leader does not call every store again;
 * - otherwise the store's provider (providers.ts: cached per store, paced per store) renders the
 *   Secret (src/external/render.ts), and it is written only when it differs from what the cluster
 *   holds: Owner/Orphan create or replace a Secret that is theirs, Merge writes its keys into an
 *   existing Secret (never creates one, never removes another writer's key), and a Secret that is
 *   not this ExternalSecret's, one of kseal's own, or in the key namespace is never written;
 * - a failed fetch keeps the last good Secret: `SecretSynced` turns False, `Ready` stays True
 *   while the Secret holds data synced from this generation of the spec.
 *
 * Every write carries the term's CallContext (the leader's fence) and is conditional: a Secret
 * update carries the resourceVersion it was computed from, a status patch the ExternalSecret's.
 * Messages, Events and logs name stores, remote keys and Secret keys, never a value.
 */
import crypto from 'node:crypto'
import {isKsealError} from '../../core/errors.js'
import {MANAGED_ANNOTATION} from '../../core/names.js'
import type {ProviderName} from '../../external/providers/index.js'
import {mayOverwrite, ownMark, renderExternalSecret} from '../../external/render.js'
import {checkStoreUse, storeLabel} from '../../external/store.js'
import {
  CLUSTER_SECRET_STORE_KIND,
  EXTERNAL_GROUP,
  EXTERNAL_SECRET_KIND,
  EXTERNAL_SECRET_PLURAL,
  EXTERNAL_VERSION,
  type SecretObject,
} from '../../external/types.js'
import type {CallContext, ClusterApi, Secret} from '../../kube/api.js'
import {apiFailure, describeError, halted, isAlreadyExists, isConflict, isNotFound, lostRace} from '../../kube/errors.js'
import {eventFor} from '../events.js'
import type {Logger} from '../log.js'
import type {Condition} from '../sealed/reconcile.js'
import type {CachedExternalSecret, CachedStore, ExternalStatus} from './objects.js'
import {isPaced, type StoreProviders} from './providers.js'
import {nextRefresh, refreshPhase} from './schedule.js'

const READY = 'Ready'
const SECRET_SYNCED = 'SecretSynced'

/**
 * Condition reasons. external-secrets' own where it has one (SecretSynced, SecretSyncedError,
 * SecretDeleted, SecretMissing); the others say what a namespace admin must fix.
 */
export type ExternalReason =
  | 'SecretSynced'
  | 'SecretSyncedError'
  | 'SecretDeleted'
  | 'SecretMissing'
  | 'InvalidSpec'
  | 'StoreNotFound'
  | 'InvalidStore'
  | 'StoreRefused'
  | 'NotOwned'
  | 'Refused'
  | 'ApiError'
  | 'WriteConflict'

export interface ExternalOutcome {
  /**
   * synced: the Secret was written; unchanged: fetched, and the Secret already held it; skipped:
   * nothing was due (no fetch); deleted: deletionPolicy Delete removed it; failed; stale: this
   * replica's view of the ExternalSecret is older than the cluster's; paced: its store's rate limit
   * asks to wait; aborted: the term as leader ended.
   */
  result: 'synced' | 'unchanged' | 'skipped' | 'deleted' | 'failed' | 'stale' | 'paced' | 'aborted'
  reason: ExternalReason | 'Stale' | 'NotLeader' | 'Paced'
  /** What the queue does next: nothing, retry with backoff, or try again after this many ms. */
  retry: 'no' | 'backoff' | number
  /** The next refresh (ms since the epoch), when one is due. */
  refreshAt?: number
  /** The provider that served the fetch, when one was made. */
  provider?: ProviderName
}

export interface ExternalReconcilerOptions {
  api: ClusterApi
  providers: StoreProviders
  log: Logger
  identity: string
  now?: () => Date
  keyNamespace?: string
  store(kind: string, namespace: string, name: string): CachedStore | undefined
  /** The Secret as the watch on ExternalSecret-managed Secrets holds it (no data), if it does. */
  cachedSecret(namespace: string, name: string): Secret | undefined
  namespaceLabels(namespace: string): Promise<Record<string, string>>
  onConflict?: (reason: string) => void
}

/** Failures that only a change of the ExternalSecret, its store or its Secret can mend: no retry until then. */
const PERMANENT = new Set<ExternalReason>(['InvalidSpec', 'InvalidStore', 'StoreNotFound', 'StoreRefused', 'Refused', 'NotOwned'])

/** Per-process key for the fingerprints of written Secrets (kept in memory only): no value is recoverable from them. */
const FINGERPRINT_KEY = crypto.randomBytes(32)

/** What decides whether two Secrets hold the same thing: type, immutable, data, labels, annotations, owners. */
function fingerprint(s: Secret | SecretObject): string {
  const sorted = (m: Record<string, string> | undefined) => Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const md = s.metadata ?? {}
  const owners = ((md.ownerReferences ?? []) as {uid: string; controller?: boolean}[]).map((r) => `${r.uid}:${!!r.controller}`).sort()
  const body = JSON.stringify([
    s.type ?? 'Opaque',
    !!s.immutable,
    sorted(s.data),
    sorted(md.labels as Record<string, string>),
    sorted(md.annotations as Record<string, string>),
    owners,
  ])
  return crypto.createHmac('sha256', FINGERPRINT_KEY).update(body).digest('base64')
}

function asSecretObject(s: Secret): SecretObject {
  const md = s.metadata ?? {}
  const out: SecretObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: md.name ?? '',
      namespace: md.namespace ?? '',
      labels: md.labels,
      annotations: md.annotations,
      ownerReferences: md.ownerReferences as SecretObject['metadata']['ownerReferences'],
      resourceVersion: md.resourceVersion,
      uid: md.uid,
    },
    type: s.type ?? 'Opaque',
    data: s.data ?? {},
  }
  if (s.immutable !== undefined) out.immutable = s.immutable
  return out
}

/** Whether the status says Ready: the Secret holds a good sync of this spec. */
export function isReady(s: ExternalStatus): boolean {
  return s.conditions?.find((c) => c.type === READY)?.status === 'True'
}

class Halt extends Error {}

export class ExternalReconciler {
  /** The last Secret written or confirmed, by ExternalSecret uid: its fingerprint and resourceVersion. */
  private readonly wrote = new Map<string, {fp: string; rv: string}>()

  constructor(private readonly o: ExternalReconcilerOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  /** Whether a watched Secret is exactly what this controller last wrote for the ExternalSecret `uid`. */
  isOwnWrite(uid: string | undefined, s: Secret): boolean {
    const rv = s.metadata?.resourceVersion
    return !!uid && !!rv && this.wrote.get(uid)?.rv === rv
  }

  forget(uid: string | undefined): void {
    if (uid) this.wrote.delete(uid)
  }

  reset(): void {
    this.wrote.clear()
  }

  /** `forced`: fetch even when nothing is due (its store changed). */
  async reconcile(cached: CachedExternalSecret, forced: boolean, ctx: CallContext = {}): Promise<ExternalOutcome> {
    try {
      return await this.run(cached, forced, ctx)
    } catch (e) {
      if (e instanceof Halt || halted(e, ctx)) return {result: 'aborted', reason: 'NotLeader', retry: 'backoff'}
      throw e
    }
  }

  private async run(cached: CachedExternalSecret, forced: boolean, ctx: CallContext): Promise<ExternalOutcome> {
    const md = cached.metadata
    const ns = md.namespace ?? ''
    const log = this.o.log.with({externalSecret: `${ns}/${md.name}`})
    if (md.deletionTimestamp) return {result: 'skipped', reason: 'SecretSynced', retry: 'no'}
    if (!cached.es) return this.fail(cached, 'InvalidSpec', cached.invalid ?? 'invalid ExternalSecret', log, ctx)
    const es = cached.es
    if (this.o.keyNamespace !== undefined && ns === this.o.keyNamespace)
      return this.fail(
        cached,
        'Refused',
        `refused: ${ns} is the namespace of the controller's own keys; no ExternalSecret writes Secrets there`,
        log,
        ctx,
      )
    const ref = es.secretStoreRef
    const storeNs = ref.kind === CLUSTER_SECRET_STORE_KIND ? '' : ns
    const cs = this.o.store(ref.kind, storeNs, ref.name)
    if (!cs) return this.fail(cached, 'StoreNotFound', `${ref.kind} ${storeNs ? `${storeNs}/` : ''}${ref.name} does not exist`, log, ctx)
    if (!cs.store) return this.fail(cached, 'InvalidStore', cs.invalid ?? 'invalid store', log, ctx)
    const store = cs.store
    // The namespace's labels are read once a sync: the store's conditions are checked here and again by renderExternalSecret.
    let labels: Promise<Record<string, string>> | undefined
    const namespaceLabels = (n: string) => (n === ns ? (labels ??= this.o.namespaceLabels(n)) : this.o.namespaceLabels(n))
    try {
      await checkStoreUse(es, store, namespaceLabels)
    } catch (e) {
      if (!isKsealError(e)) throw e
      return this.fail(cached, 'StoreRefused', e.line, log, ctx)
    }

    const target = es.target
    const secretName = target.name
    const slim = this.o.cachedSecret(ns, secretName)
    let existing: Secret | null
    try {
      // Merge needs the other writers' keys; a Secret the watch does not hold (not ours yet, or not yet seen) is read.
      existing = target.creationPolicy === 'Merge' || !slim ? await this.o.api.getSecret(ns, secretName, ctx) : slim
    } catch (e) {
      if (halted(e, ctx)) throw e
      return this.fail(cached, 'ApiError', `cannot read Secret ${ns}/${secretName}: ${describeError(e)}`, log, ctx)
    }
    const full = existing !== slim

    if (existing) {
      const own = ownMark(existing)
      if (own)
        return this.fail(
          cached,
          'Refused',
          `Secret ${ns}/${secretName} carries ${own}: it is one of kseal's own Secrets, and no ExternalSecret writes into it`,
          log,
          ctx,
        )
      if (target.creationPolicy !== 'Merge' && !mayOverwrite(asSecretObject(existing), es))
        return this.fail(
          cached,
          'NotOwned',
          `Secret ${ns}/${secretName} exists and is not this ExternalSecret's, so it is left alone; delete it, use creationPolicy: Merge, or annotate it ${MANAGED_ANNOTATION}=true`,
          log,
          ctx,
        )
    } else if (target.creationPolicy === 'Merge') {
      return this.fail(
        cached,
        'SecretMissing',
        `creationPolicy Merge writes into an existing Secret, and Secret ${ns}/${secretName} does not exist`,
        log,
        ctx,
        'backoff',
      )
    }

    // Nothing due: the Secret is as the last sync left it, for this spec, and the next refresh has not come.
    const st = cached.status
    const phase = refreshPhase(md.uid ?? md.name, es.refreshIntervalMs)
    const syncedAt = st.refreshTime ? Date.parse(st.refreshTime) : NaN
    const now = this.now().getTime()
    const frozen = target.immutable && !!existing?.immutable
    const due = Number.isNaN(syncedAt) || (!frozen && (nextRefresh(syncedAt, es.refreshIntervalMs, phase) ?? Infinity) <= now)
    const synced =
      st.observedGeneration === md.generation &&
      isReady(st) &&
      st.conditions?.find((c) => c.type === SECRET_SYNCED)?.status === 'True' &&
      !!existing &&
      existing.metadata?.resourceVersion === st.syncedResourceVersion
    if (synced && !due && !forced) {
      return {
        result: 'skipped',
        reason: 'SecretSynced',
        retry: 'no',
        refreshAt: frozen ? undefined : nextRefresh(syncedAt, es.refreshIntervalMs, phase),
      }
    }

    const provider = await this.o.providers.get(store, ns, ctx.signal).catch((e: unknown) => e as Error)
    if (provider instanceof Error) {
      if (halted(provider, ctx)) throw provider
      if (isPaced(provider)) return this.paced(provider.waitMs)
      const msg = isKsealError(provider) ? provider.line : describeError(provider)
      return this.fail(cached, 'SecretSyncedError', `cannot open ${storeLabel(store)}: ${msg}`, log, ctx, 'backoff')
    }
    let rendered
    try {
      rendered = await renderExternalSecret(es, store, {
        provider,
        namespaceLabels,
        existing: existing ? asSecretObject(existing) : null,
        keyNamespace: this.o.keyNamespace,
      })
    } catch (e) {
      if (halted(e, ctx)) throw e
      if (isPaced(e)) return this.paced(e.waitMs)
      const msg = isKsealError(e) ? e.line : describeError(e)
      // The last good Secret stays as it is (Ready stays True only while there is one).
      const out = await this.fail(cached, 'SecretSyncedError', msg, log, ctx, 'backoff', !!existing)
      return {...out, provider: provider.name}
    }
    ctx.signal?.throwIfAborted()
    const fetchedAt = this.now()

    if (!rendered.secret) {
      // deletionPolicy Delete, and every remote key is gone.
      let message = `every remote key is gone: Secret ${ns}/${secretName} was deleted (deletionPolicy: Delete)`
      if (existing && target.creationPolicy === 'Merge') {
        message = `every remote key is gone; Secret ${ns}/${secretName} is kept, since creationPolicy Merge writes into a Secret it does not own`
      } else if (existing) {
        try {
          await this.o.api.deleteSecret(
            ns,
            secretName,
            {uid: existing.metadata?.uid, resourceVersion: existing.metadata?.resourceVersion},
            ctx,
          )
        } catch (e) {
          if (halted(e, ctx)) throw e
          if (!isNotFound(e)) return this.writeFailed(cached, e, `cannot delete Secret ${ns}/${secretName}`, log, ctx)
        }
        this.wrote.delete(md.uid ?? '')
        log.info('every remote key is gone: Secret deleted', {secret: `${ns}/${secretName}`})
      } else {
        message = `every remote key is gone: Secret ${ns}/${secretName} does not exist (deletionPolicy: Delete)`
      }
      await this.status(
        cached,
        {synced: {status: 'True', reason: 'SecretDeleted', message}, ready: {status: 'False', reason: 'SecretDeleted', message}},
        {refreshTime: fetchedAt.toISOString(), syncedResourceVersion: ''},
        log,
        ctx,
      )
      return {
        result: 'deleted',
        reason: 'SecretDeleted',
        retry: 'no',
        refreshAt: nextRefresh(fetchedAt.getTime(), es.refreshIntervalMs, phase),
        provider: provider.name,
      }
    }

    const desired = rendered.secret
    const fp = fingerprint(desired)
    const last = this.wrote.get(md.uid ?? '')
    let current: Secret | null = existing
    // The Secret already holds it: as last written (by resourceVersion), or as read in full.
    let same = !!existing && last?.fp === fp && last.rv === existing.metadata?.resourceVersion
    if (!same && existing && !full) {
      try {
        current = await this.o.api.getSecret(ns, secretName, ctx)
      } catch (e) {
        if (halted(e, ctx)) throw e
        return this.fail(cached, 'ApiError', `cannot read Secret ${ns}/${secretName}: ${describeError(e)}`, log, ctx)
      }
      if (!current) return this.lost('NotFound', 'the Secret was deleted while it was synced', log)
    }
    if (!same && current) same = fingerprint(current) === fp
    let written: Secret
    let verb = 'unchanged'
    if (same && current) {
      written = current
    } else {
      try {
        if (!current) {
          written = await this.o.api.createSecret(ns, desired as Secret, ctx)
          verb = 'created'
        } else if (current.immutable) {
          // Kubernetes refuses to change an immutable Secret: replace it (only ever one of its own; Merge never gets here).
          await this.o.api.deleteSecret(
            ns,
            secretName,
            {uid: current.metadata?.uid, resourceVersion: current.metadata?.resourceVersion},
            ctx,
          )
          const fresh = {...desired, metadata: {...desired.metadata}}
          delete fresh.metadata.resourceVersion
          delete fresh.metadata.uid
          written = await this.o.api.createSecret(ns, fresh as Secret, ctx)
          verb = 'replaced'
        } else {
          const body = {...desired, metadata: {...desired.metadata, resourceVersion: current.metadata?.resourceVersion}} as Secret
          if (current.metadata?.finalizers?.length) body.metadata!.finalizers = current.metadata.finalizers
          written = await this.o.api.replaceSecret(ns, secretName, body, ctx)
          verb = 'updated'
        }
      } catch (e) {
        if (halted(e, ctx)) throw e
        if (lostRace(e))
          return this.lost(isNotFound(e) ? 'NotFound' : isAlreadyExists(e) ? 'AlreadyExists' : 'Conflict', describeError(e), log)
        return this.writeFailed(cached, e, `cannot write Secret ${ns}/${secretName}`, log, ctx)
      }
      log.info(`Secret ${verb}`, {
        secret: `${ns}/${secretName}`,
        keys: Object.keys(desired.data).length,
        calls: rendered.calls,
        creationPolicy: target.creationPolicy,
      })
    }
    const rv = written.metadata?.resourceVersion ?? ''
    this.wrote.set(md.uid ?? '', {fp, rv})
    const message = `Secret ${secretName} ${verb === 'unchanged' ? 'is up to date' : verb} (${Object.keys(desired.data).length} keys from ${storeLabel(store)})`
    await this.status(
      cached,
      {synced: {status: 'True', reason: 'SecretSynced', message}, ready: {status: 'True', reason: 'SecretSynced', message}},
      {refreshTime: fetchedAt.toISOString(), syncedResourceVersion: rv},
      log,
      ctx,
    )
    return {
      result: verb === 'unchanged' ? 'unchanged' : 'synced',
      reason: 'SecretSynced',
      retry: 'no',
      refreshAt: target.immutable ? undefined : nextRefresh(fetchedAt.getTime(), es.refreshIntervalMs, phase),
      provider: provider.name,
    }
  }

  private paced(waitMs: number): ExternalOutcome {
    return {result: 'paced', reason: 'Paced', retry: waitMs}
  }

  /** A Secret write lost a race (409, 404, AlreadyExists): retried with backoff; the next try reads the Secret afresh. */
  private lost(reason: string, detail: string, log: Logger): ExternalOutcome {
    this.o.onConflict?.(reason)
    log.info('the Secret write lost a race; retrying with backoff', {conflict: reason, error: detail})
    return {result: 'failed', reason: 'WriteConflict', retry: 'backoff'}
  }

  private writeFailed(cached: CachedExternalSecret, e: unknown, what: string, log: Logger, ctx: CallContext): Promise<ExternalOutcome> {
    return this.fail(cached, 'ApiError', `${what}: ${describeError(e)}`, log, ctx, 'backoff')
  }

  /**
   * A failed sync: SecretSynced False with the reason; Ready stays True only when the Secret still
   * holds a good sync of this generation and the failure is a fetch (the last good Secret is kept).
   */
  private async fail(
    cached: CachedExternalSecret,
    reason: ExternalReason,
    message: string,
    log: Logger,
    ctx: CallContext,
    retry: 'no' | 'backoff' = PERMANENT.has(reason) ? 'no' : 'backoff',
    secretInPlace = true,
  ): Promise<ExternalOutcome> {
    log.warn('cannot sync ExternalSecret', {reason, error: message})
    const st = cached.status
    const keepReady =
      secretInPlace &&
      (reason === 'SecretSyncedError' || reason === 'ApiError') &&
      isReady(st) &&
      st.observedGeneration === cached.metadata.generation
    const failed = {status: 'False' as const, reason, message}
    const prevReady = st.conditions?.find((c) => c.type === READY)
    const ready = keepReady && prevReady ? {status: 'True' as const, reason: prevReady.reason, message: prevReady.message} : failed
    const stale = await this.status(cached, {synced: failed, ready}, {}, log, ctx)
    if (stale) return {result: 'stale', reason: 'Stale', retry: 'backoff'}
    return {result: 'failed', reason, retry}
  }

  /**
   * Writes the conditions and the other status fields through the status subresource when anything
   * changed, conditional on the ExternalSecret's resourceVersion (a status computed from an older
   * view is refused: 409), and records an Event when a condition changed state. Returns true when
   * the status write met a newer ExternalSecret (stale).
   */
  private async status(
    cached: CachedExternalSecret,
    c: {synced: Omit<Condition, 'type' | 'lastTransitionTime'>; ready: Omit<Condition, 'type' | 'lastTransitionTime'>},
    fields: {refreshTime?: string; syncedResourceVersion?: string},
    log: Logger,
    ctx: CallContext,
  ): Promise<boolean> {
    const md = cached.metadata
    const cur = cached.status
    const now = this.now().toISOString()
    const prev = (type: string) => cur.conditions?.find((x) => x.type === type)
    const cond = (type: string, want: Omit<Condition, 'type' | 'lastTransitionTime'>): Condition => {
      const p = prev(type)
      return {type, ...want, lastTransitionTime: p && p.status === want.status ? p.lastTransitionTime : now}
    }
    const conditions = [
      ...(cur.conditions ?? []).filter((x) => x.type !== READY && x.type !== SECRET_SYNCED),
      cond(READY, c.ready),
      cond(SECRET_SYNCED, c.synced),
    ]
    const next: ExternalStatus = {...cur, ...fields, observedGeneration: md.generation, conditions}
    if (next.syncedResourceVersion === '') delete next.syncedResourceVersion
    const changedState = (type: string, want: {status: string; reason: string}) => {
      const p = prev(type)
      return !p || p.status !== want.status || p.reason !== want.reason
    }
    const stateChanged = changedState(READY, c.ready) || changedState(SECRET_SYNCED, c.synced)
    const same =
      !stateChanged &&
      cur.observedGeneration === md.generation &&
      cur.refreshTime === next.refreshTime &&
      cur.syncedResourceVersion === next.syncedResourceVersion &&
      prev(READY)?.message === c.ready.message &&
      prev(SECRET_SYNCED)?.message === c.synced.message
    if (same) return false
    const patch: Record<string, unknown> = {...next}
    // A merge patch removes a field only when it says null.
    if (fields.syncedResourceVersion === '') patch.syncedResourceVersion = null
    let updated
    try {
      updated = await this.o.api.patchCustomStatus(
        EXTERNAL_GROUP,
        EXTERNAL_VERSION,
        EXTERNAL_SECRET_PLURAL,
        md.namespace ?? '',
        md.name,
        patch,
        md.resourceVersion,
        ctx,
      )
    } catch (e) {
      if (halted(e, ctx)) throw new Halt()
      if (isNotFound(e)) return false
      if (isConflict(e)) {
        log.info('the ExternalSecret changed while its status was written; retrying with backoff', {error: describeError(e)})
        return true
      }
      log.warn('cannot update the status', {error: describeError(e), code: apiFailure(e)?.code})
      return false
    }
    cached.status = next
    if (updated?.metadata?.resourceVersion) md.resourceVersion = updated.metadata.resourceVersion
    if (stateChanged) {
      const ok = c.synced.status === 'True'
      await this.event(cached, ok ? 'Normal' : 'Warning', c.synced.reason, c.synced.message, log, ctx)
    }
    return false
  }

  private async event(
    cached: CachedExternalSecret,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    log: Logger,
    ctx: CallContext,
  ): Promise<void> {
    const md = cached.metadata
    const ns = md.namespace ?? ''
    const body = eventFor(
      {
        apiVersion: `${EXTERNAL_GROUP}/${EXTERNAL_VERSION}`,
        kind: EXTERNAL_SECRET_KIND,
        name: md.name,
        namespace: ns,
        uid: md.uid,
        resourceVersion: md.resourceVersion,
      },
      {type, reason, message, action: 'Sync'},
      this.o.identity,
      this.now(),
    )
    try {
      await this.o.api.createEvent(ns, body, ctx)
    } catch (e) {
      if (halted(e, ctx)) throw new Halt()
      log.warn('cannot record an Event', {reason, error: describeError(e), code: apiFailure(e)?.code})
    }
  }
}
