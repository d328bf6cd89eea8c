/**
 * kubeseal's calls, answered for sealed-secrets' SealedSecrets (with --bitnami), as its controller
 * answers them: `POST /v1/verify` — 200 when every value opens (and the templates render), 409 when
 * not, 400 for a body that is not a SealedSecret; `POST /v1/rotate` (kubeseal --re-encrypt) — the
 * SealedSecret with every `encryptedData` value sealed again to the controller's current sealing key,
 * in Bitnami's format, as JSON; metadata, scope and `spec.template` (templates included) come back as
 * they were. kubeseal sends the file as it is, YAML or JSON, whatever its content type says, so either
 * is read. Work is bounded per request (BITNAMI_REQUEST_BUDGET private-key operations, checked before
 * any), besides the rate limit and body size every /v1 POST shares. No plaintext ever leaves.
 */
import {KsealError} from '../../core/errors.js'
import {isBitnamiSealedSecret, parseBitnami, renderBitnami, sealBitnamiValue} from '../../formats/bitnami.js'
import type {SealingKey} from '../keystore/store.js'
import {bitnamiValues, type KeyDecrypt, trialOrder} from './kind.js'
import {noSealingKey, parseBody, recipientOf, requestName, resealFailed, type ResealResponse, verified, verifyFailed} from './reseal.js'

/** The most private-key operations one request may cost: its values, then trials of further keys. */
const BITNAMI_REQUEST_BUDGET = 64

/** Whether a request body is a sealed-secrets SealedSecret (read leniently, YAML or JSON); null when it does not look like one. */
export function bitnamiBody(body: Buffer): unknown | null {
  if (!body.includes('bitnami.com/')) return null
  try {
    const raw = parseBody(body, '')
    return isBitnamiSealedSecret(raw) ? raw : null
  } catch {
    return null
  }
}

function checked(raw: unknown, keys: SealingKey[], onRsa?: () => void) {
  const parsed = parseBitnami(raw)
  const values = Object.keys(parsed.encryptedData).length
  if (values > BITNAMI_REQUEST_BUDGET)
    throw new KsealError('ERR_INPUT', `holds ${values} values; one request opens at most ${BITNAMI_REQUEST_BUDGET}`, parsed.where)
  const held = trialOrder(keys)
  if (!held.length) throw new KsealError('ERR_NO_KEY', 'the controller holds no key yet')
  return {parsed, held, work: {maxRsaOps: BITNAMI_REQUEST_BUDGET, onRsa}}
}

/** `POST /v1/verify`: 200 opens, 409 does not (another key, moved, tampered), 400 not a SealedSecret sealed-secrets reads. */
export async function verifyBitnami(raw: unknown, keys: SealingKey[], decrypt: KeyDecrypt, onRsa?: () => void): Promise<ResealResponse> {
  const name = requestName(raw)
  try {
    const {parsed, held, work} = checked(raw, keys, onRsa)
    renderBitnami(parsed, await bitnamiValues(parsed, held, decrypt, work))
    return verified(name)
  } catch (e) {
    return verifyFailed(e, name)
  }
}

/** `POST /v1/rotate` for a sealed-secrets SealedSecret: every value sealed again to `key`, in their format. */
export async function rotateBitnami(
  raw: unknown,
  keys: SealingKey[],
  key: SealingKey | undefined,
  decrypt: KeyDecrypt,
  onRsa?: () => void,
): Promise<ResealResponse> {
  const name = requestName(raw)
  if (!key) return noSealingKey(name)
  try {
    const {parsed, held, work} = checked(raw, keys, onRsa)
    const used = new Set<string>()
    const plain = await bitnamiValues(parsed, held, decrypt, {...work, onOpened: (i) => used.add(held[i].kid)})
    const pub = recipientOf(key).key
    const encryptedData: Record<string, string> = {}
    for (const [k, v] of plain) encryptedData[k] = sealBitnamiValue(pub, parsed.label, v)
    const obj = raw as {spec: Record<string, unknown>}
    const out = {...obj, spec: {...obj.spec, encryptedData}}
    const from = [...used]
    const changed = from.some((kid) => kid !== key.kid)
    return {
      status: 200,
      body: JSON.stringify(out) + '\n',
      outcome: changed ? 'resealed' : 'unchanged',
      sealedSecret: name,
      from,
      to: key.kid,
    }
  } catch (e) {
    return resealFailed(e, name)
  }
}
