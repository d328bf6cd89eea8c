/**
 * The kinds of sealed resource the reconciler serves, each through the same path (ownership,
 * `Synced`, Events, fencing, conditional writes): kseal's own `kseal.dev/v1` SealedSecrets, and, with
 * `--bitnami`, sealed-secrets' `bitnami.com/v1alpha1` SealedSecrets opened with the controller's keys
 * (its imported ones among them). A kind says where its objects live, how to hash the spec the Secret
 * depends on (refusing an invalid one before any key work) and how to open it.
 */
import crypto from 'node:crypto'
import {KsealError} from '../../core/errors.js'
import {BITNAMI_API_VERSION, oaepDecrypt, openBitnamiValuesWith, parseBitnami, renderBitnami, type RsaAsk} from '../../formats/bitnami.js'
import type {Unwrap} from '../../keyring/keyring.js'
import type {Secret} from '../../kube/api.js'
import {canonicalJson, sealedSpecHash} from '../../sealed/hash.js'
import {SEALED_GROUP, SEALED_KIND, SEALED_PLURAL, SEALED_VERSION, type SealedSecretObject} from '../../sealed/types.js'
import {unsealSealedSecret} from '../../sealed/unseal.js'
import type {SealingKey} from '../keystore/store.js'

export interface SealedKind {
  group: string
  version: string
  plural: string
  kind: string
  /** Prefixes its work-queue keys (`namespace/name`), so two kinds' objects of one name stay apart. */
  queuePrefix: string
  /** Annotations that, set to "true" on an existing Secret, let it take the Secret over (besides kseal.dev/managed). */
  managedAnnotations?: string[]
  /** A stable hash of what the produced Secret depends on; throws (InvalidSpec) for an object it cannot open. */
  hash(sealed: SealedSecretObject): string
  /** Opens it: the Secret it describes, and the ids of the keys that opened it. */
  unseal(sealed: SealedSecretObject, unwrap: Unwrap): Promise<{secret: Secret; kids: string[]}>
}

export const KSEAL_KIND: SealedKind = {
  group: SEALED_GROUP,
  version: SEALED_VERSION,
  plural: SEALED_PLURAL,
  kind: SEALED_KIND,
  queuePrefix: '',
  hash: sealedSpecHash,
  unseal: async (sealed, unwrap) => {
    const r = await unsealSealedSecret(sealed, unwrap)
    return {secret: r.secret as Secret, kids: r.kids}
  },
}

const [BITNAMI_GROUP, BITNAMI_VERSION] = BITNAMI_API_VERSION.split('/')
/** sealed-secrets' opt-in for taking over an existing Secret, honoured for its SealedSecrets. */
const BITNAMI_MANAGED_ANNOTATION = 'sealedsecrets.bitnami.com/managed'
/** sealed-secrets annotations kseal does not implement: refused by name rather than ignored. */
const BITNAMI_UNSUPPORTED: Record<string, string> = {
  'sealedsecrets.bitnami.com/skip-set-owner-references':
    'kseal knows the Secrets it writes by their ownerReference, so it cannot write one without it',
  'sealedsecrets.bitnami.com/patch': 'kseal writes the whole Secret; patching an existing one is not supported',
}

/** Private-key operations one Bitnami SealedSecret may cause: each value once, plus a trial of every key twice. */
const rsaBudget = (values: number, keys: number) => values + 2 * keys

/** One RSA-OAEP private decryption with one of the controller's keys: the session key, or null when it does not open. */
export type KeyDecrypt = (k: SealingKey, ct: Buffer, label: Buffer) => Promise<Buffer | null>

/** Inline, on the calling thread (tests; the controller passes its worker pool's). */
const inlineDecrypt: KeyDecrypt = async (k, ct, label) => oaepDecrypt(k.identity.key, ct, label)

/** Keys to try for a Bitnami value: imported (decrypt-only: the old controller's) first, then the newest first. */
export function trialOrder(keys: SealingKey[]): SealingKey[] {
  return [...keys.filter((k) => k.decryptOnly).reverse(), ...keys.filter((k) => !k.decryptOnly).reverse()]
}

/** Decrypts a checked Bitnami SealedSecret's values with these keys (in this order), through `decrypt`. */
export function bitnamiValues(
  parsed: ReturnType<typeof parseBitnami>,
  held: SealingKey[],
  decrypt: KeyDecrypt,
  work: Parameters<typeof openBitnamiValuesWith>[3],
) {
  return openBitnamiValuesWith(parsed, held.length, (a: RsaAsk) => decrypt(held[a.keyIndex], a.ct, a.label), work)
}

/**
 * sealed-secrets' SealedSecrets. Their values name no key, so every key the controller holds is tried:
 * imported (decrypt-only) keys first — the old controller's — then the newest first; the key that
 * worked is tried first for the next value. Work is bounded (values + 2 × keys RSA operations), and
 * runs through `decrypt` (the controller's worker pool).
 */
export function bitnamiKind(keys: () => SealingKey[], onRsa?: () => void, decrypt: KeyDecrypt = inlineDecrypt): SealedKind {
  return {
    group: BITNAMI_GROUP,
    version: BITNAMI_VERSION,
    plural: 'sealedsecrets',
    kind: 'SealedSecret',
    queuePrefix: 'bitnami.com:',
    managedAnnotations: [BITNAMI_MANAGED_ANNOTATION],
    hash: (sealed) => {
      const parsed = parseBitnami(sealed)
      const annotations = {...(sealed.metadata.annotations ?? {}), ...(parsed.template.annotations ?? {})}
      for (const [a, why] of Object.entries(BITNAMI_UNSUPPORTED))
        if (annotations[a] === 'true') throw new KsealError('ERR_INPUT', `the annotation ${a} is not supported: ${why}`)
      // The label its values are bound to comes from its metadata: a scope change means opening it again.
      const body = ['kseal/v1 bitnami sealed spec', parsed.namespace, parsed.name, parsed.label, canonicalJson(sealed.spec)]
      return crypto.createHash('sha256').update(JSON.stringify(body), 'utf8').digest('hex')
    },
    unseal: async (sealed) => {
      const parsed = parseBitnami(sealed)
      const held = trialOrder(keys())
      if (!held.length) throw new KsealError('ERR_NO_KEY', 'the controller holds no key yet')
      const used = new Set<number>()
      const plain = await bitnamiValues(parsed, held, decrypt, {
        maxRsaOps: rsaBudget(Object.keys(parsed.encryptedData).length, held.length),
        onRsa,
        onOpened: (i) => used.add(i),
      })
      return {secret: renderBitnami(parsed, plain) as Secret, kids: [...used].map((i) => held[i].kid)}
    },
  }
}
