/**
 * The envelope chain (spec: docs/SEALED-FORMAT.md): each part's MAC covers its index, the previous
 * part's MAC, the digest of every value it wrote and of every value it superseded, so the whole chain
 * is checked on open with one private-key operation per part, never per value.
 */
import crypto from 'node:crypto'
import type {RecipientEntry} from '../../keys/types.js'
import {type Binding, bindingFor, bindingV2, encryptedAsFor, type Scope} from '../envelope/binding.js'
import {canonicalRecipients, cmp, type DataKeys, type Version} from '../envelope/envelope.js'
import {KsealError} from '../core/errors.js'
import {type SealedEnvelope, sealedLabel, type SealedSecretObject} from './types.js'

const has = (o: object, k: string) => Object.hasOwn(o, k)

/** Where the SealedSecret's values are bound under its scope (format 2 with its own domain strings). */
export function sealedBinding(sealed: SealedSecretObject, scope: Scope, version: Version): Binding {
  const ns = sealed.metadata.namespace ?? ''
  if (scope !== 'cluster' && !ns) {
    throw new KsealError('ERR_INPUT', `has no metadata.namespace, which its ${scope} scope binds the values to`, {
      secret: sealedLabel(sealed.metadata),
    })
  }
  return version === 1 ? bindingFor(scope, ns, sealed.metadata.name) : bindingV2(scope, encryptedAsFor(scope, ns, sealed.metadata.name))
}

/** base64 SHA-256 of a token: what a part's MAC covers for each value. */
export function tokenDigest(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('base64')
}

export type Pairs = [string, string][]

/**
 * The MAC of part `index`: binding, position in the chain, previous part's MAC, its values' and its
 * superseded values' digests; in format 2 also the part's recipient entries (canonical, sorted).
 */
export function partMac(
  keys: DataKeys,
  b: Binding,
  index: number,
  prev: string,
  recipients: readonly RecipientEntry[],
  own: Pairs,
  supersedes: Pairs,
): string {
  const sort = (p: Pairs) => [...p].sort((x, y) => cmp(x[0], y[0]))
  const body =
    keys.version === 2
      ? ['kseal/v2 sealed part', b.scope, b.namespace, b.name, index, prev, canonicalRecipients(recipients), sort(own), sort(supersedes)]
      : ['kseal/v1 sealed part', b.scope, b.namespace, b.name, index, prev, sort(own), sort(supersedes)]
  return crypto.createHmac('sha256', keys.mac).update(JSON.stringify(body)).digest('base64')
}

/** What the chain says about each part once checked for consistency (no key needed). */
export interface PartPlan {
  /** [key, digest] for every key the part wrote: the current token's digest, or the one a later part recorded when it replaced it. */
  own: Pairs
  supersedes: Pairs
  /** Keys whose current value this part holds. */
  live: string[]
}

/**
 * Checks that the chain is consistent with the values (which part holds each value, what each part
 * replaced) and works out what each part's MAC must cover. A writer with only the public key runs
 * this before merging, so it never appends to a broken chain.
 */
export function planParts(env: SealedEnvelope, data: Record<string, string>): PartPlan[] {
  const bad = (msg: string, key?: string) => new KsealError('ERR_INTEGRITY', msg, key === undefined ? {} : {key: `encryptedData.${key}`})
  const owner = new Map<string, number>()
  env.parts.forEach((p, i) => {
    for (const k of Object.keys(p.supersedes ?? {})) {
      if (!p.keys.includes(k)) throw bad(`malformed kseal envelope: part ${i + 1} supersedes "${k}" without writing it`)
    }
    for (const k of p.keys) {
      const replaces = owner.has(k)
      if (replaces !== (p.supersedes !== undefined && has(p.supersedes, k))) {
        throw bad(
          `integrity check failed: part ${i + 1} ${replaces ? 'replaces a value without recording it' : 'claims to replace a value no earlier part wrote'}`,
          k,
        )
      }
      owner.set(k, i)
    }
  })
  for (const k of Object.keys(data)) {
    if (!owner.has(k))
      throw bad('is not covered by the envelope: a value was added after sealing (seal it with kseal seal --merge-into)', k)
  }
  for (const k of owner.keys()) {
    if (!has(data, k)) throw bad('is missing: the envelope covers a value that was removed', k)
  }
  return env.parts.map((p, i): PartPlan => {
    const live: string[] = []
    const own: Pairs = p.keys.map((k) => {
      const next = env.parts.findIndex((q, j) => j > i && q.keys.includes(k))
      if (next === -1) {
        live.push(k)
        return [k, tokenDigest(data[k])]
      }
      return [k, env.parts[next].supersedes![k]]
    })
    return {own, supersedes: Object.entries(p.supersedes ?? {}), live}
  })
}
