/**
 * Opening a SealedSecret with whatever can unwrap a data key (the controller's key store, `kseal
 * unseal --key`): the chain is checked, one data key is unwrapped per part, every part's MAC and every
 * value is checked, and the v1 Secret it describes comes out — never a partial result.
 */
import type {RecipientEntry} from '../../keys/types.js'
import {type Binding, keyBinding} from '../envelope/binding.js'
import {decryptValue, deriveKeys, macEqual, type Version} from '../envelope/envelope.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {dict, isObj} from '../core/guards.js'
import type {Unwrap} from '../keyring/keyring.js'
import {secretObject} from '../manifest/secrets.js'
import {partMac, planParts, sealedBinding} from './chain.js'
import {parseSealedEnvelope, parseSealedSecret} from './parse.js'
import {type SealedEnvelope, sealedLabel, type SealedSecretObject, type UnsealResult} from './types.js'

/**
 * Opens one part with at most one private-key operation: its entries are tried one at a time (so
 * the key id that worked is known), each key id once, and the first entry whose key is held decides
 * — a failure there fails the part rather than trying the next entry.
 */
async function openPart(entries: RecipientEntry[], binding: Binding, unwrap: Unwrap): Promise<{dataKey: Uint8Array; kid: string}> {
  const seen = new Set<string>()
  for (const e of entries) {
    const id = `${e.backend}:${e.kid}`
    if (seen.has(id)) continue
    seen.add(id)
    try {
      return {dataKey: (await unwrap([e], keyBinding(binding))).dataKey, kid: e.kid}
    } catch (err) {
      if (!(isKsealError(err) && err.code === 'ERR_NO_KEY')) throw err
    }
  }
  throw new KsealError('ERR_NO_KEY', `no key for this SealedSecret: it is sealed for ${[...seen].join(', ')}`)
}

/**
 * Opens a SealedSecret: checks the chain, unwraps each part's data key (one unwrap per part), checks
 * each part's MAC, decrypts every value, and returns the v1 Secret it describes. Fails with
 * ERR_NO_KEY, ERR_DECRYPT, ERR_INTEGRITY or ERR_VERSION as a Secret would; never a partial result.
 */
export async function unsealSealedSecret(sealed: SealedSecretObject, unwrap: Unwrap): Promise<UnsealResult> {
  const s = parseSealedSecret(sealed)
  const where: Where = {secret: sealedLabel(s.metadata)}
  try {
    const env = parseSealedEnvelope(s.spec.envelope)
    const binding = sealedBinding(s, env.scope, env.version as Version)
    const data = s.spec.encryptedData
    const plans = planParts(env, data)
    const opened = await Promise.all(
      env.parts.map(async (part, i) => {
        const {dataKey, kid} = await openPart(part.recipients, binding, unwrap)
        const keys = deriveKeys(dataKey, env.version as Version)
        const plan = plans[i]
        const prev = i === 0 ? '' : env.parts[i - 1].mac
        const decrypt = (k: string) => {
          try {
            return decryptValue(keys, binding, 'data', k, data[k])
          } catch (e) {
            throw isKsealError(e) ? e.at({key: `encryptedData.${k}`}) : e
          }
        }
        if (!macEqual(partMac(keys, binding, i, prev, part.recipients, plan.own, plan.supersedes), part.mac)) {
          // Name the value that does not belong, when one can be found; otherwise the chain changed.
          for (const k of plan.live) decrypt(k)
          throw new KsealError(
            'ERR_INTEGRITY',
            `integrity check failed (envelope part ${i + 1}): values were added, removed, replaced, replayed or moved between parts${env.version === 2 ? ', or its recipients were altered' : ''}`,
          )
        }
        return {kid, values: new Map(plan.live.map((k) => [k, decrypt(k)]))}
      }),
    )
    const plain = new Map<string, Buffer>()
    for (const o of opened) for (const [k, v] of o.values) plain.set(k, v)
    const out = dict<string>()
    for (const k of Object.keys(data)) out[k] = plain.get(k)!.toString('base64')
    const t = s.spec.template ?? {}
    const secret = secretObject(s.metadata.name, s.metadata.namespace, {...t.metadata, type: t.type, immutable: t.immutable}, out)
    return {secret, kids: [...new Set(opened.map((o) => o.kid))]}
  } catch (e) {
    throw isKsealError(e) ? e.at(where) : e
  }
}

/** Every key id the SealedSecret's parts are wrapped for, without duplicates, in part order. */
export function recipientKids(sealed: SealedSecretObject): string[] {
  const parts = (sealed.spec?.envelope as Partial<SealedEnvelope> | undefined)?.parts
  if (!Array.isArray(parts)) return []
  const kids = new Set<string>()
  for (const p of parts) {
    if (!isObj(p) || !Array.isArray(p.recipients)) continue
    for (const r of p.recipients as unknown[]) if (isObj(r) && typeof r.kid === 'string') kids.add(r.kid)
  }
  return [...kids]
}
