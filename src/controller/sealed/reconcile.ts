/**
 * One SealedSecret in, one Secret out. The reconciler decides from the cluster's state alone:
 * the Secret's `kseal.dev/spec-hash` annotation says whether it already matches the SealedSecret
 * (then nothing is decrypted — a restart costs no RSA operation), an ownerReference says whether
 * it is ours to write (a Secret someone else made is never overwritten unless annotated
 * `kseal.dev/managed: "true"`). Outcomes become the `Synced` condition, an Event, and a retry
 * decision for the work queue. Messages name Secrets and keys, never values.
 *
 * No write goes back in time: a Secret update carries the resourceVersion it was computed from, a
 * status patch carries the SealedSecret's, and a Secret whose data came from a newer generation of
 * the SealedSecret than the one in hand (`kseal.dev/generation`) is left alone. A write that loses
 * a race (409, 404, AlreadyExists, an object the API server changed on the way, or a Secret that
 * another writer changed after this controller wrote it) is retried with the queue's backoff,
 * reusing the data already decrypted; after a few in a row the condition names whoever else writes
 * the Secret. Every API call carries the caller's CallContext: when the replica's term as leader
 * ends, the reconcile stops where it is.
 */
import {performance} from 'node:perf_hooks'
import {isKsealError} from '../../core/errors.js'
import {RESERVED_PREFIX} from '../../core/names.js'
import type {SealedSecretObject} from '../../sealed/types.js'
import {type CallContext, type ClusterApi, FIELD_MANAGER, type Secret} from '../../kube/api.js'
import {eventFor} from '../events.js'
import {apiFailure, describeError, halted, isAlreadyExists, isConflict, isNotFound, lostRace} from '../../kube/errors.js'
import type {Unwrap} from '../../keyring/keyring.js'
import type {Logger} from '../log.js'
import {MANAGED_ANNOTATION} from '../../core/names.js'
import {KSEAL_KIND, type SealedKind} from './kind.js'
import {compactedHash, compactSealed} from './compact.js'
import {
  GENERATION_ANNOTATION,
  lastWriter,
  marked,
  OWNED_LABEL,
  OWNED_LABEL_VALUE,
  secretGeneration,
  SPEC_HASH_ANNOTATION,
} from '../owned.js'

const SYNCED = 'Synced'
/** Conflicts in a row on one Secret after which the Synced condition says who fights over it. */
const CONFLICT_LIMIT = 5
/** A run of conflicts ends when none came for this long. */
const CONFLICT_MEMORY_MS = 600_000

/** Reasons of the Synced condition. */
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
  | 'WriteConflict'

/**
 * How a Secret write lost a race: 409 Conflict, 409 AlreadyExists, 404, the API server stored
 * something else than what was sent (Mutated), or the Secret this controller wrote for the same
 * spec was changed or deleted by another writer and had to be written again (Overwritten).
 */
export type ConflictReason = 'Conflict' | 'AlreadyExists' | 'NotFound' | 'Mutated' | 'Overwritten'

export interface Outcome {
  /**
   * unsealed: the Secret was written; unchanged: it was up to date; failed; stale: this replica's
   * view of the SealedSecret is older than what the cluster holds, so nothing was written (its watch
   * brings the newer one); aborted: this replica's term as leader ended mid-way.
   */
  result: 'unsealed' | 'unchanged' | 'failed' | 'stale' | 'aborted'
  /** The condition reason (failed), or why nothing was written (stale, aborted). */
  reason: Reason | 'Stale' | 'NotLeader'
  message: string
  /** What the queue does next: nothing, or retry with backoff. */
  retry: 'no' | 'backoff'
  /** In a run of lost races (a fight with another writer): the queue keeps its backoff for the next round. */
  contested?: boolean
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  lastTransitionTime: string
}

export interface ReconcilerOptions {
  api: ClusterApi
  unwrap: Unwrap
  log: Logger
  /** This replica's name, for Events. */
  identity: string
  now?: () => Date
  /** The namespace of the controller's own keys: no SealedSecret may write a Secret there. */
  keyNamespace?: string
  /** The Secret as the controller's watch holds it (no data), if it does; otherwise it is read from the API. */
  cachedSecret?: (namespace: string, name: string) => Secret | undefined
  /** Called for each Secret write that lost a race (a metric). */
  onConflict?: (reason: ConflictReason) => void
  /** Conflicts in a row before the condition names the other writer (default CONFLICT_LIMIT). */
  conflictLimit?: number
  /** Decrypted Secrets kept for the retry after a conflict: at most this many, each this long (default 256, 10 minutes). */
  retainMax?: number
  retainMs?: number
  /** Which SealedSecrets this reconciler serves (default kseal's own, opened with `unwrap`). */
  kind?: SealedKind
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

/**
 * Why a SealedSecret may not be unsealed at all, whatever it holds: its Secret would land in the
 * namespace of the controller's own keys, or would carry kseal's own labels or annotations (a
 * planted `kseal.dev/sealing-key` Secret, say). Null when it may.
 */
function refusedTarget(sealed: SealedSecretObject, keyNamespace: string | undefined): string | null {
  const ns = sealed.metadata.namespace ?? 'default'
  if (keyNamespace !== undefined && ns === keyNamespace) {
    return `refused: its Secret would be written in ${ns}, the namespace of the controller's own keys; no SealedSecret is unsealed there`
  }
  const meta = (sealed.spec as {template?: {metadata?: {labels?: unknown; annotations?: unknown}}} | undefined)?.template?.metadata ?? {}
  for (const [what, m] of [
    ['label', meta.labels],
    ['annotation', meta.annotations],
  ] as const) {
    if (typeof m !== 'object' || m === null) continue
    const k = Object.keys(m).find((key) => key.startsWith(RESERVED_PREFIX))
    if (k) return `refused: its template carries the ${what} ${k}, which only kseal itself sets`
  }
  return null
}

export function ownerReference(s: SealedSecretObject, kind: SealedKind = KSEAL_KIND) {
  return {
    apiVersion: `${kind.group}/${kind.version}`,
    kind: kind.kind,
    name: s.metadata.name!,
    uid: s.metadata.uid!,
    controller: true,
  }
}

/** An ownerReference to a SealedSecret of this kind. */
const isSealedRef = (r: {apiVersion?: string; kind?: string}, kind: SealedKind) =>
  r.kind === kind.kind && r.apiVersion?.split('/')[0] === kind.group

/** The Secret is this SealedSecret's: a controller ownerReference to it (by uid). */
function ownedBy(secret: Secret, s: SealedSecretObject, kind: SealedKind): boolean {
  return (secret.metadata?.ownerReferences ?? []).some((r) => isSealedRef(r, kind) && r.uid === s.metadata.uid && r.controller === true)
}

/** May be written: ours, left by an earlier SealedSecret of the same name, or opted in by annotation. */
function mayManage(secret: Secret, s: SealedSecretObject, kind: SealedKind): boolean {
  if (ownedBy(secret, s, kind)) return true
  if ((secret.metadata?.ownerReferences ?? []).some((r) => isSealedRef(r, kind) && r.name === s.metadata.name)) return true
  const ann = secret.metadata?.annotations ?? {}
  return [MANAGED_ANNOTATION, ...(kind.managedAnnotations ?? [])].some((a) => ann[a] === 'true')
}

const raceReason = (e: unknown): ConflictReason => (isNotFound(e) ? 'NotFound' : isAlreadyExists(e) ? 'AlreadyExists' : 'Conflict')

function rethrowHalt(e: unknown, ctx: CallContext): void {
  if (halted(e, ctx)) throw e
}

interface Retained {
  hash: string
  plain: Secret
  kids: string[]
  at: number
}

export class Reconciler {
  private readonly permanent = new Map<string, {hash: string; reason: Reason; message: string}>()
  /** Decrypted Secrets whose write lost a race, by SealedSecret uid: the retry needs no second decryption. Never logged. */
  private readonly retained = new Map<string, Retained>()
  /** Lost races in a row, by SealedSecret uid (over after a clean write, or 10 minutes after the last). */
  private readonly conflicts = new Map<string, {n: number; at: number}>()
  /** The last Secret this controller wrote, by SealedSecret uid: its spec hash and resourceVersion. */
  private readonly wrote = new Map<string, {hash: string; rv: string}>()

  private readonly kind: SealedKind

  constructor(private readonly o: ReconcilerOptions) {
    this.kind = o.kind ?? KSEAL_KIND
  }

  private now(): Date {
    return this.o.now?.() ?? new Date()
  }

  /** Reconciles one SealedSecret; API calls carry `ctx` (its signal aborts them, its beforeWrite may refuse a write). */
  async reconcile(sealed: SealedSecretObject, ctx: CallContext = {}): Promise<Outcome> {
    try {
      return await this.run(sealed, ctx)
    } catch (e) {
      if (halted(e, ctx)) return {result: 'aborted', reason: 'NotLeader', message: 'this replica may no longer write', retry: 'backoff'}
      throw e
    }
  }

  private async run(sealed: SealedSecretObject, ctx: CallContext): Promise<Outcome> {
    const ns = sealed.metadata.namespace ?? 'default'
    const name = sealed.metadata.name ?? ''
    const uid = sealed.metadata.uid ?? ''
    const generation = sealed.metadata.generation
    const log = this.o.log.with({sealedSecret: `${ns}/${name}`})
    if (sealed.metadata.deletionTimestamp) return {result: 'unchanged', reason: 'Unsealed', message: 'being deleted', retry: 'no'}

    // A compacted object (compact.ts) carries the hash of the spec it was reconciled with.
    const compacted = compactedHash(sealed) !== undefined
    let hash: string
    try {
      hash = compactedHash(sealed) ?? this.kind.hash(sealed)
    } catch (e) {
      return this.fail(sealed, 'InvalidSpec', `invalid SealedSecret: ${describeError(e)}`, '', log, ctx)
    }

    const refused = refusedTarget(sealed, this.o.keyNamespace)
    if (refused) return this.fail(sealed, 'Refused', refused, hash, log, ctx)

    const known = this.permanent.get(uid)
    if (known && known.hash === hash) {
      // Already reported for this very spec: no second decryption, no second Event.
      try {
        await this.setStatus(sealed, 'False', known.reason, known.message, ctx)
      } catch (e) {
        rethrowHalt(e, ctx)
        return this.statusFailed(e, log)
      }
      return {result: 'failed', reason: known.reason, message: known.message, retry: 'no'}
    }
    this.permanent.delete(uid)

    // The watch's copy when it has one; a Secret it does not hold (none yet, or written before the
    // controller labelled its Secrets, or someone else's) is read from the API.
    const cached = this.o.cachedSecret?.(ns, name)
    let existing: Secret | null
    try {
      existing = cached ?? (await this.o.api.getSecret(ns, name, ctx))
    } catch (e) {
      rethrowHalt(e, ctx)
      return this.apiError(sealed, `cannot read Secret ${ns}/${name}: ${describeError(e)}`, log, ctx)
    }

    if (existing && !mayManage(existing, sealed, this.kind)) {
      const message =
        `Secret ${ns}/${name} already exists and is not owned by this SealedSecret, so it is left alone; ` +
        `delete it, or let the controller take it over: kubectl annotate secret -n ${ns} ${name} ${MANAGED_ANNOTATION}=true`
      return this.fail(sealed, 'NotOwned', message, hash, log, ctx)
    }
    if (existing && ownedBy(existing, sealed, this.kind)) {
      const madeFrom = secretGeneration(existing)
      if (madeFrom !== undefined && generation !== undefined && madeFrom > generation) {
        // Another replica (or this one, before a pause) already wrote a newer generation: this view is behind.
        log.info('the Secret holds a newer generation than this replica has seen; nothing written', {
          secretGeneration: madeFrom,
          generation,
        })
        return {
          result: 'stale',
          reason: 'Stale',
          message: `Secret holds generation ${madeFrom}, this replica has ${generation}`,
          retry: 'backoff',
        }
      }
      if (existing.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === hash) return this.upToDate(sealed, existing, hash, !cached, log, ctx)
    }

    let plain: Secret
    let kids: string[]
    const kept = this.takeRetained(uid, hash)
    if (kept) {
      plain = kept.plain
      kids = kept.kids
    } else {
      let full = sealed
      if (compacted) {
        const got = await this.refetch(sealed, hash, log, ctx)
        if ('result' in got) return got
        full = got
      }
      try {
        const r = await this.kind.unseal(full, this.o.unwrap)
        plain = r.secret as Secret
        kids = r.kids
      } catch (e) {
        if (!isKsealError(e)) return this.apiError(sealed, `cannot unseal: ${describeError(e)}`, log, ctx)
        const reason = REASON_BY_CODE[e.code] ?? 'DecryptFailed'
        return this.fail(sealed, reason, `cannot unseal: ${e.line}`, hash, log, ctx)
      }
      ctx.signal?.throwIfAborted()
    }

    // This very spec was written before, and the Secret no longer holds it: another writer changed or deleted it.
    const overwritten = this.wrote.get(uid)?.hash === hash
    const desired = this.desiredSecret(sealed, plain, hash, existing)
    let verb: 'created' | 'updated'
    let written: Secret
    try {
      if (!existing) {
        written = await this.o.api.createSecret(ns, desired, ctx)
        verb = 'created'
      } else if (existing.immutable || (existing.type ?? 'Opaque') !== (desired.type ?? 'Opaque')) {
        // Kubernetes refuses to change an immutable Secret's data or any Secret's type: replace it.
        await this.o.api.deleteSecret(ns, name, {uid: existing.metadata?.uid, resourceVersion: existing.metadata?.resourceVersion}, ctx)
        delete desired.metadata!.resourceVersion
        delete desired.metadata!.uid
        written = await this.o.api.createSecret(ns, desired, ctx)
        verb = 'updated'
      } else {
        // Conditional: the resourceVersion it was computed from travels with it (409 if it changed since).
        written = await this.o.api.replaceSecret(ns, name, desired, ctx)
        verb = 'updated'
      }
    } catch (e) {
      rethrowHalt(e, ctx)
      if (lostRace(e)) return this.conflict(sealed, raceReason(e), describeError(e), {hash, plain, kids}, existing, log, ctx)
      // The API failed: the retry needs no second decryption either.
      this.retain(uid, {hash, plain, kids})
      return this.apiError(sealed, `cannot write Secret ${ns}/${name}: ${describeError(e)}`, log, ctx)
    }
    if (written.metadata?.annotations?.[SPEC_HASH_ANNOTATION] !== hash || !marked(written, generation)) {
      // Stored, but not as sent: something on the way (a mutating admission webhook) rewrote it.
      return this.conflict(
        sealed,
        'Mutated',
        'the API server stored the Secret without its kseal.dev annotations or label',
        {hash, plain, kids},
        written,
        log,
        ctx,
      )
    }
    this.wrote.set(uid, {hash, rv: written.metadata?.resourceVersion ?? ''})
    const message = `Secret ${name} ${verb} (key ${kids.join(', ')})`
    if (overwritten) {
      // Written again, but the other writer may be back at once: keep the data and the count, as after a 409.
      const n = this.lost(
        sealed,
        'Overwritten',
        'another writer changed or deleted the Secret after the controller wrote it',
        {hash, plain, kids},
        log,
      )
      if (n >= (this.o.conflictLimit ?? CONFLICT_LIMIT)) {
        await this.fail(sealed, 'WriteConflict', this.fightMessage(sealed, 'Overwritten', n, existing), '', log, ctx)
        return {result: 'unsealed', reason: 'WriteConflict', message, retry: 'no', contested: true}
      }
    } else {
      this.settled(uid)
      compactSealed(sealed, hash)
    }

    await this.event(sealed, 'Normal', 'Unsealed', message, log, ctx)
    log.info(`Secret ${verb}`, {secret: `${ns}/${name}`, kids, keys: Object.keys(desired.data ?? {}).length})
    try {
      await this.setStatus(sealed, 'True', 'Unsealed', message, ctx)
    } catch (e) {
      rethrowHalt(e, ctx)
      return this.statusFailed(e, log, `Secret ${verb}, but the status could not be written`)
    }
    return {result: 'unsealed', reason: 'Unsealed', message, retry: 'no', contested: overwritten}
  }

  /**
   * The Secret's data matches the spec. Adds what an older controller (or an older generation
   * with the same spec) did not record — the label, the generation — with a conditional PUT of the
   * Secret as read (never decrypting), then reports Synced.
   */
  private async upToDate(
    sealed: SealedSecretObject,
    existing: Secret,
    hash: string,
    full: boolean,
    log: Logger,
    ctx: CallContext,
  ): Promise<Outcome> {
    const ns = sealed.metadata.namespace ?? 'default'
    const name = sealed.metadata.name ?? ''
    const generation = sealed.metadata.generation
    if (!marked(existing, generation)) {
      try {
        const cur = full ? existing : await this.o.api.getSecret(ns, name, ctx)
        if (!cur || cur.metadata?.resourceVersion !== existing.metadata?.resourceVersion) {
          return this.conflict(
            sealed,
            cur ? 'Conflict' : 'NotFound',
            'the Secret changed while its labels were updated',
            undefined,
            cur,
            log,
            ctx,
          )
        }
        const md = {...cur.metadata!}
        delete md.managedFields
        md.labels = {...md.labels, [OWNED_LABEL]: OWNED_LABEL_VALUE}
        if (generation !== undefined) md.annotations = {...md.annotations, [GENERATION_ANNOTATION]: String(generation)}
        const written = await this.o.api.replaceSecret(ns, name, {...cur, metadata: md}, ctx)
        this.wrote.set(sealed.metadata.uid ?? '', {
          hash: md.annotations?.[SPEC_HASH_ANNOTATION] ?? '',
          rv: written.metadata?.resourceVersion ?? '',
        })
        log.info('Secret labelled for the watch', {secret: `${ns}/${name}`, generation})
      } catch (e) {
        rethrowHalt(e, ctx)
        if (lostRace(e)) return this.conflict(sealed, raceReason(e), describeError(e), undefined, existing, log, ctx)
        return this.apiError(sealed, `cannot update Secret ${ns}/${name}: ${describeError(e)}`, log, ctx)
      }
    }
    compactSealed(sealed, hash)
    // In a run of lost races, "up to date" may be the echo of the controller's own last write in a
    // fight: the run (its count, the queue's backoff, a WriteConflict condition) goes on until it ages out.
    const run = this.conflictRun(sealed.metadata.uid ?? '')
    if (!run || run.n < (this.o.conflictLimit ?? CONFLICT_LIMIT)) {
      try {
        await this.setStatus(sealed, 'True', 'Unsealed', `Secret ${name} is up to date`, ctx)
      } catch (e) {
        rethrowHalt(e, ctx)
        return this.statusFailed(e, log)
      }
    }
    return {result: 'unchanged', reason: 'Unsealed', message: 'up to date', retry: 'no', contested: !!run}
  }

  /**
   * A compacted SealedSecret's ciphertexts, read again from the API server, for a Secret that must be
   * written again. Only the very object the cache holds will do: a newer resourceVersion, another
   * generation or another spec means the cache is behind, and its watch brings the newer object
   * (stale, retried with backoff); none at all means it was deleted.
   */
  private async refetch(sealed: SealedSecretObject, hash: string, log: Logger, ctx: CallContext): Promise<SealedSecretObject | Outcome> {
    const ns = sealed.metadata.namespace ?? 'default'
    const name = sealed.metadata.name
    let got: SealedSecretObject | null
    try {
      got = await this.o.api.getCustom<SealedSecretObject>(this.kind.group, this.kind.version, this.kind.plural, ns, name, ctx)
    } catch (e) {
      rethrowHalt(e, ctx)
      return this.apiError(sealed, `cannot read SealedSecret ${ns}/${name}: ${describeError(e)}`, log, ctx)
    }
    let same = false
    try {
      same =
        !!got &&
        got.metadata.uid === sealed.metadata.uid &&
        got.metadata.resourceVersion === sealed.metadata.resourceVersion &&
        got.metadata.generation === sealed.metadata.generation &&
        this.kind.hash(got) === hash
    } catch {
      // not a spec this hash was made from
    }
    if (same) return got!
    log.info('the SealedSecret read again is not the one in the cache; waiting for its watch', {
      resourceVersion: got?.metadata.resourceVersion ?? null,
      cached: sealed.metadata.resourceVersion,
    })
    return {result: 'stale', reason: 'Stale', message: 'the SealedSecret changed since this replica saw it', retry: 'backoff'}
  }

  /** Counts a lost race (a metric, and the run in a row) and keeps the decrypted data for the retry; returns the run's length. */
  private lost(
    sealed: SealedSecretObject,
    reason: ConflictReason,
    detail: string,
    data: Omit<Retained, 'at'> | undefined,
    log: Logger,
  ): number {
    const uid = sealed.metadata.uid ?? ''
    this.o.onConflict?.(reason)
    if (data) this.retain(uid, data)
    const n = (this.conflictRun(uid)?.n ?? 0) + 1
    this.conflicts.set(uid, {n, at: performance.now()})
    log.info('the Secret write lost a race; retrying with backoff', {conflict: reason, attempt: n, error: detail})
    return n
  }

  /**
   * A Secret write lost a race: counted, the decrypted data kept (the retry costs no second RSA
   * operation), retried with backoff; from conflictLimit in a row on, the condition names the other
   * writer.
   */
  private async conflict(
    sealed: SealedSecretObject,
    reason: ConflictReason,
    detail: string,
    data: Omit<Retained, 'at'> | undefined,
    seen: Secret | null,
    log: Logger,
    ctx: CallContext,
  ): Promise<Outcome> {
    const n = this.lost(sealed, reason, detail, data, log)
    if (n < (this.o.conflictLimit ?? CONFLICT_LIMIT)) return {result: 'failed', reason: 'WriteConflict', message: detail, retry: 'backoff'}
    return this.fail(sealed, 'WriteConflict', this.fightMessage(sealed, reason, n, seen), '', log, ctx)
  }

  /** What the WriteConflict condition says: what happened, how often, and who else writes the Secret (managedFields, when the API server recorded it). */
  private fightMessage(sealed: SealedSecretObject, reason: ConflictReason, n: number, seen: Secret | null): string {
    const ns = sealed.metadata.namespace ?? 'default'
    const name = sealed.metadata.name ?? ''
    const writer = lastWriter(this.o.cachedSecret?.(ns, name) ?? seen, FIELD_MANAGER)
    const who = writer
      ? `its last writer was field manager "${writer.manager}"${writer.operation ? ` (${writer.operation}${writer.time ? ` at ${writer.time}` : ''})` : ''}`
      : 'the API server did not record who else writes it'
    const what = {
      Conflict: 'was changed by another writer while the controller wrote it (409 Conflict)',
      AlreadyExists: 'was created by another writer just before the controller (409 AlreadyExists)',
      NotFound: 'was deleted by another writer while the controller wrote it (404)',
      Mutated:
        'was changed on its way in: the API server stored it without its kseal.dev annotations or label (a mutating admission webhook?)',
      Overwritten: 'was changed or deleted by another writer after the controller wrote it',
    }[reason]
    return (
      `Secret ${ns}/${name} ${what}, ${n} times in a row; ${who}. ` +
      'Another controller or webhook is fighting over it: make this SealedSecret its only writer. Retried with backoff.'
    )
  }

  private retain(uid: string, data: Omit<Retained, 'at'>): void {
    this.retained.delete(uid)
    this.retained.set(uid, {...data, at: performance.now()})
    const max = this.o.retainMax ?? 256
    for (const key of this.retained.keys()) {
      if (this.retained.size <= max) break
      this.retained.delete(key)
    }
  }

  private takeRetained(uid: string, hash: string): Retained | undefined {
    const r = this.retained.get(uid)
    if (!r) return undefined
    if (r.hash !== hash || performance.now() - r.at > (this.o.retainMs ?? 600_000)) {
      this.retained.delete(uid)
      return undefined
    }
    return r
  }

  /** The current run of lost races on a SealedSecret's Secret: one that came within CONFLICT_MEMORY_MS of the last. */
  private conflictRun(uid: string): {n: number; at: number} | undefined {
    const r = this.conflicts.get(uid)
    if (r && performance.now() - r.at < CONFLICT_MEMORY_MS) return r
    this.conflicts.delete(uid)
    return undefined
  }

  /** The Secret was written as it should be: nothing kept, the run of lost races over. */
  private settled(uid: string): void {
    this.retained.delete(uid)
    this.conflicts.delete(uid)
  }

  /**
   * Compacts a cached SealedSecret (compact.ts) whose Secret, as the owned-Secret watch holds it, was
   * written from this very spec: owned by it (a controller ownerReference with its uid), labelled, for
   * its generation, with the hash computed here from the spec in hand. Any replica may: a follower,
   * which never reconciles, keeps its cache small too, and a new leader finds it up to date without a
   * second hash.
   */
  compactIfSynced(sealed: SealedSecretObject, secret: Secret | undefined): void {
    if (!secret || secret.metadata?.deletionTimestamp || sealed.metadata.deletionTimestamp || compactedHash(sealed) !== undefined) return
    const claimed = secret.metadata?.annotations?.[SPEC_HASH_ANNOTATION]
    if (!claimed || !ownedBy(secret, sealed, this.kind) || !marked(secret, sealed.metadata.generation)) return
    let hash: string
    try {
      hash = this.kind.hash(sealed)
    } catch {
      return
    }
    if (hash === claimed) compactSealed(sealed, hash)
  }

  /** Whether a watched Secret is exactly what this controller last wrote for its owner (the echo of its own write: nothing to do). */
  isOwnWrite(s: Secret): boolean {
    const owner = (s.metadata?.ownerReferences ?? []).find((r) => isSealedRef(r, this.kind) && r.controller === true)
    const rv = s.metadata?.resourceVersion
    return !!owner && !!rv && this.wrote.get(owner.uid)?.rv === rv
  }

  /** How many decrypted Secrets are kept for retries (tests, metrics). */
  get retainedCount(): number {
    return this.retained.size
  }

  /** Forgets what was remembered about a SealedSecret that is gone. */
  forget(uid: string | undefined): void {
    if (!uid) return
    this.permanent.delete(uid)
    this.wrote.delete(uid)
    this.settled(uid)
  }

  /** Forgets everything kept for a leader's work — decrypted Secrets, conflict runs, its own writes — when this replica stops leading. */
  reset(): void {
    this.retained.clear()
    this.conflicts.clear()
    this.wrote.clear()
  }

  private desiredSecret(sealed: SealedSecretObject, plain: Secret, hash: string, existing: Secret | null): Secret {
    const md = plain.metadata ?? {}
    const generation = sealed.metadata.generation
    const annotations: Record<string, string> = {...(md.annotations ?? {}), [SPEC_HASH_ANNOTATION]: hash}
    if (generation !== undefined) annotations[GENERATION_ANNOTATION] = String(generation)
    if (existing?.metadata?.annotations?.[MANAGED_ANNOTATION] !== undefined && annotations[MANAGED_ANNOTATION] === undefined) {
      annotations[MANAGED_ANNOTATION] = existing.metadata.annotations[MANAGED_ANNOTATION]
    }
    // Other owners stay; any earlier SealedSecret reference (and any other controller) gives way to this one.
    const owners = (existing?.metadata?.ownerReferences ?? []).filter((r) => !isSealedRef(r, this.kind) && !r.controller)
    const metadata: Secret['metadata'] = {
      ...(existing?.metadata ?? {}),
      name: sealed.metadata.name,
      namespace: sealed.metadata.namespace,
      labels: {...(md.labels ?? {}), [OWNED_LABEL]: OWNED_LABEL_VALUE},
      annotations,
      ownerReferences: [...owners, ownerReference(sealed, this.kind)],
    }
    delete metadata.managedFields
    const out: Secret = {apiVersion: 'v1', kind: 'Secret', metadata, type: plain.type ?? 'Opaque', data: plain.data ?? {}}
    if (plain.immutable !== undefined) out.immutable = plain.immutable
    return out
  }

  private async fail(
    sealed: SealedSecretObject,
    reason: Reason,
    message: string,
    hash: string,
    log: Logger,
    ctx: CallContext,
  ): Promise<Outcome> {
    log.warn('cannot unseal SealedSecret', {reason, error: message})
    const retry = PERMANENT.has(reason) ? 'no' : 'backoff'
    let changed: boolean
    try {
      changed = await this.setStatus(sealed, 'False', reason, message, ctx)
    } catch (e) {
      rethrowHalt(e, ctx)
      if (isConflict(e)) return this.statusFailed(e, log)
      log.warn('cannot update the status', {error: describeError(e)})
      await this.event(sealed, 'Warning', reason, message, log, ctx)
      return {result: 'failed', reason, message, retry: 'backoff'}
    }
    if (retry === 'no' && sealed.metadata.uid) this.permanent.set(sealed.metadata.uid, {hash, reason, message})
    // One Warning per change of state, not one per retry.
    if (changed) await this.event(sealed, 'Warning', reason, message, log, ctx)
    return {result: 'failed', reason, message, retry}
  }

  private async apiError(sealed: SealedSecretObject, message: string, log: Logger, ctx: CallContext): Promise<Outcome> {
    log.warn('Kubernetes API call failed; will retry', {error: message})
    // Best effort: the API may be what is failing.
    await this.setStatus(sealed, 'False', 'ApiError', message, ctx).catch((e) => rethrowHalt(e, ctx))
    return {result: 'failed', reason: 'ApiError', message, retry: 'backoff'}
  }

  /** A status write failed: 409 means the SealedSecret changed since this replica read it (its watch brings the new one). */
  private statusFailed(e: unknown, log: Logger, what = 'cannot update the status'): Outcome {
    if (isConflict(e)) {
      log.info('the SealedSecret changed while its status was written; retrying with backoff', {error: describeError(e)})
      return {result: 'stale', reason: 'Stale', message: 'the SealedSecret changed while its status was written', retry: 'backoff'}
    }
    const message = `${what}: ${describeError(e)}`
    log.warn('Kubernetes API call failed; will retry', {error: message})
    return {result: 'failed', reason: 'ApiError', message, retry: 'backoff'}
  }

  /**
   * Writes `Synced` and `observedGeneration` through the status subresource, only when they change
   * (returns whether it wrote). The patch is conditional on the SealedSecret's resourceVersion, so
   * a status made from an older view of it is refused (409) instead of going back in time.
   */
  async setStatus(
    sealed: SealedSecretObject,
    status: 'True' | 'False',
    reason: Reason,
    message: string,
    ctx: CallContext = {},
  ): Promise<boolean> {
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
    let updated: {metadata?: {resourceVersion?: string}}
    try {
      updated = await this.o.api.patchCustomStatus(
        this.kind.group,
        this.kind.version,
        this.kind.plural,
        sealed.metadata.namespace ?? 'default',
        sealed.metadata.name ?? '',
        {observedGeneration: generation, conditions},
        sealed.metadata.resourceVersion,
        ctx,
      )
    } catch (e) {
      if (isNotFound(e)) return false
      throw e
    }
    // Later reconciles of this same cached object see what was written, and write on top of it.
    sealed.status = {...(sealed.status ?? {}), observedGeneration: generation, conditions} as SealedSecretObject['status']
    if (updated?.metadata?.resourceVersion) sealed.metadata.resourceVersion = updated.metadata.resourceVersion
    return true
  }

  private async event(
    sealed: SealedSecretObject,
    type: 'Normal' | 'Warning',
    reason: Reason,
    message: string,
    log: Logger,
    ctx: CallContext,
  ): Promise<void> {
    const ns = sealed.metadata.namespace ?? 'default'
    const body = eventFor(
      {
        apiVersion: `${this.kind.group}/${this.kind.version}`,
        kind: this.kind.kind,
        name: sealed.metadata.name ?? '',
        namespace: ns,
        uid: sealed.metadata.uid,
        resourceVersion: sealed.metadata.resourceVersion,
      },
      {type, reason, message, action: 'Unseal'},
      this.o.identity,
      this.now(),
    )
    try {
      await this.o.api.createEvent(ns, body, ctx)
    } catch (e) {
      rethrowHalt(e, ctx)
      log.warn('cannot record an Event', {reason, error: describeError(e), code: apiFailure(e)?.code})
    }
  }
}
