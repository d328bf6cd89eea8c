/**
 * Re-sealing a SealedSecret to one recipient (the controller's newest key, for `/v1/rotate`): opened
 * with whatever holds its keys, sealed again in the current format under a fresh data key. Name,
 * namespace, scope, template and every other field come back as they were; only
 * `spec.encryptedData` and `spec.envelope` change.
 */
import type {Recipient} from '../../keys/types.js'
import {keyBinding} from '../envelope/binding.js'
import {deriveKeys, encryptValue, FORMAT_VERSION, newDataKey} from '../envelope/envelope.js'
import {dict} from '../core/guards.js'
import type {Unwrap} from '../keyring/keyring.js'
import {partMac, sealedBinding, tokenDigest} from './chain.js'
import {parseSealedEnvelope, parseSealedSecret} from './parse.js'
import type {SealedPart} from './types.js'
import {unsealSealedSecret} from './unseal.js'

export interface ResealResult {
  /** The SealedSecret to write back: the input object with new encryptedData and envelope (or the input itself when unchanged). */
  sealed: Record<string, unknown>
  changed: boolean
  /** Key ids it was sealed to. */
  from: string[]
  /** The key id it is sealed to now. */
  to: string
}

/**
 * Opens a SealedSecret (every part, every MAC, every value checked) and seals it again to `to`.
 * A SealedSecret that is already one part sealed to `to` alone comes back unchanged, so running
 * reseal twice changes nothing the second time.
 */
export async function resealSealedSecret(raw: Record<string, unknown>, unwrap: Unwrap, to: Recipient): Promise<ResealResult> {
  const s = parseSealedSecret(raw)
  const {secret, kids} = await unsealSealedSecret(s, unwrap)
  const env = parseSealedEnvelope(s.spec.envelope)
  const onlyPart = env.parts.length === 1 ? env.parts[0] : undefined
  if (
    env.version === FORMAT_VERSION &&
    onlyPart &&
    onlyPart.recipients.length === 1 &&
    onlyPart.recipients[0].backend === to.backend &&
    onlyPart.recipients[0].kid === to.kid
  ) {
    return {sealed: raw, changed: false, from: kids, to: to.kid}
  }
  // Re-sealed in the current format, whatever the input's: this is how SealedSecrets are upgraded.
  const binding = sealedBinding(s, env.scope, FORMAT_VERSION)
  const values = secret.data as Record<string, string>
  const dataKey = newDataKey()
  const dk = deriveKeys(dataKey, FORMAT_VERSION)
  const wrapped = await to.wrap(dataKey, keyBinding(binding))
  const encryptedData = dict<string>()
  // Same keys, same order as the input.
  for (const k of Object.keys(s.spec.encryptedData))
    encryptedData[k] = encryptValue(dk, binding, 'data', k, Buffer.from(values[k], 'base64'))
  const own: [string, string][] = Object.entries(encryptedData).map(([k, t]) => [k, tokenDigest(t)])
  const part: SealedPart = {
    recipients: [wrapped],
    keys: Object.keys(encryptedData).sort(),
    mac: partMac(dk, binding, 0, '', [wrapped], own, []),
  }
  const spec = raw.spec as Record<string, unknown>
  return {
    sealed: {...raw, spec: {...spec, encryptedData, envelope: {version: FORMAT_VERSION, scope: env.scope, parts: [part]}}},
    changed: true,
    from: kids,
    to: to.kid,
  }
}
