/**
 * What the keys a replica holds are used for, from its cache of SealedSecrets: which key seals now,
 * which keys are on their way out and how many SealedSecrets are still sealed to them (`/v1/keys`,
 * `kseal_sealed_secrets_on_old_keys`). Public facts only.
 */
import type {SealedSecretObject} from '../../sealed/types.js'
import {recipientKids} from '../../sealed/unseal.js'
import {sealsAt} from './renewer.js'
import {newestSealer, type SealingKey} from './store.js'

/** One entry of `/v1/keys`. */
export interface KeyListEntry {
  kid: string
  created: string
  /** The key that seals now. */
  active: boolean
  /** Created before --key-cutoff, which has passed: it still opens, it no longer seals. */
  retired: boolean
  /** SealedSecrets sealed (in any part) to it. */
  sealedSecrets: number
  /** An imported key that opens and never seals (`kseal keys --import` without --active). */
  decryptOnly?: boolean
}

/** The key that seals now: the newest, unless --key-cutoff has retired it (then none until the leader makes one). */
export function sealingKeyOf(keys: readonly SealingKey[], now: Date, cutoff?: Date): SealingKey | undefined {
  const k = newestSealer(keys)
  return k && sealsAt(k, now, cutoff) ? k : undefined
}

/**
 * Keys that are on their way out: created before the cutoff, or (without one) every key but the newest
 * that seals; decrypt-only keys always. Keys oldest first.
 */
function oldKids(keys: readonly SealingKey[], cutoff?: Date): Set<string> {
  const at = cutoff?.getTime()
  const newest = newestSealer(keys)
  return new Set(keys.filter((k) => k.decryptOnly || (at === undefined ? k !== newest : k.created.getTime() < at)).map((k) => k.kid))
}

/** SealedSecrets still sealed (in any part) to an old key: when 0, the old keys can be retired. */
export function sealedOnOldKeys(keys: readonly SealingKey[], sealed: Iterable<SealedSecretObject>, cutoff?: Date): number {
  const old = oldKids(keys, cutoff)
  if (old.size === 0) return 0
  let n = 0
  for (const o of sealed) if (recipientKids(o).some((k) => old.has(k))) n++
  return n
}

/** `/v1/keys`: every key held, oldest first. */
export function keyList(keys: readonly SealingKey[], sealed: Iterable<SealedSecretObject>, now: Date, cutoff?: Date): KeyListEntry[] {
  const counts = new Map<string, number>()
  for (const o of sealed) for (const k of recipientKids(o)) counts.set(k, (counts.get(k) ?? 0) + 1)
  const sealing = sealingKeyOf(keys, now, cutoff)
  return keys.map((k) => ({
    kid: k.kid,
    created: k.created.toISOString(),
    active: k.kid === sealing?.kid,
    retired: !sealsAt(k, now, cutoff),
    sealedSecrets: counts.get(k.kid) ?? 0,
    ...(k.decryptOnly ? {decryptOnly: true} : {}),
  }))
}
