/**
 * A SealedSecret whose Secret is known to match it, kept small. Its ciphertexts (the encrypted values
 * and every wrapped data key: about 1.7 KB of a 1.8 KB slim object with 8 values, RSA-4096) are
 * needed again only when the Secret must be written again — deleted or changed by someone else —
 * and the spec has not changed since. So once a reconcile found or left the Secret in sync, the
 * cached object keeps only what the controller reads without decrypting: its metadata and status,
 * the spec's template (the refusals read it) and the key ids it is sealed to (the key accounting
 * reads them), plus the spec hash it was reconciled with. A reconcile that needs the ciphertexts
 * again reads the SealedSecret from the API server (Reconciler.refetch).
 *
 * Only the spec's generation says the spec is unchanged: a newer object of the same generation
 * (a status write's echo, a relist) stays compact, with the same hash (carryCompaction).
 */
import type {SealedSecretObject, SealedSpec} from '../../sealed/types.js'
import {recipientKids} from '../../sealed/unseal.js'

/** The spec hash of each compacted object (by identity: a new object from the watch is new). */
const hashes = new WeakMap<SealedSecretObject, string>()

/** Drops the ciphertexts from a cached SealedSecret, in place, remembering the hash its Secret carries. */
export function compactSealed(o: SealedSecretObject, hash: string): void {
  if (hashes.has(o)) return
  const kids = recipientKids(o)
  const spec = {
    encryptedData: {},
    ...(o.spec?.template !== undefined ? {template: o.spec.template} : {}),
    envelope: {parts: kids.length ? [{recipients: kids.map((kid) => ({kid})), keys: [], mac: ''}] : []},
  }
  o.spec = spec as unknown as SealedSpec
  hashes.set(o, hash)
}

/** The spec hash of a compacted SealedSecret; undefined for one that still holds its ciphertexts. */
export function compactedHash(o: SealedSecretObject): string | undefined {
  return hashes.get(o)
}

/**
 * Compacts `next` when it is the same SealedSecret, at the same generation, as a compacted `prev`
 * (the API server bumps the generation on every spec change, so the spec and its hash are the same).
 */
export function carryCompaction(next: SealedSecretObject, prev: SealedSecretObject | undefined): void {
  const hash = prev && next !== prev ? hashes.get(prev) : undefined
  if (hash === undefined) return
  const a = prev!.metadata
  const b = next.metadata
  if (a.uid && a.uid === b.uid && b.generation !== undefined && a.generation === b.generation && !b.deletionTimestamp)
    compactSealed(next, hash)
}
