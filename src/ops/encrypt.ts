/**
 * `kseal encrypt`: every Secret of a file encrypted (all of a file's Secrets at once, so their key
 * operations overlap), for the recipients given or those of the file's `.kseal.yaml` rule, and the
 * resulting edits applied to the original text: every byte outside the values and envelopes passes
 * through. A Secret is written in kseal's format, or SOPS's (`--format sops`, a rule's `format:
 * sops`) for consumers that read only SOPS; SOPS Secrets already in a file are left as they are.
 */
import type {Recipient} from '../../keys/types.js'
import {type CreationRules, type RuleOptions, type SecretFormat} from '../config/config.js'
import {isKsealError} from '../core/errors.js'
import {applyEdits} from '../manifest/edits.js'
import type {SecretDoc} from '../manifest/parse.js'
import {readSecrets} from '../manifest/read.js'
import {type EncryptOptions, encryptSecret} from '../secret/secret.js'
import type {SopsKeys} from './decrypt.js'

/** A Secret with values still in plaintext (to be encrypted). */
const adding = (s: SecretDoc) => s.values.some((v) => v.value !== null && !v.encrypted)
/** A Secret that gets its first envelope: the only kind a rule must match. */
const fresh = (s: SecretDoc) => !s.envelopePair && adding(s)

/** A Secret that carries a SOPS block: encrypted already, by SOPS (kseal's own pass leaves it alone). */
const isSopsSecret = (s: SecretDoc) => s.map.items.some((p) => (p.key as {value?: unknown} | null)?.value === 'sops')

/** Options for every Secret, or per Secret (recipients and scope from `.kseal.yaml` rules). */
export type EncryptOptionsFor = EncryptOptions | ((s: SecretDoc) => Promise<EncryptOptions>)

export async function encryptText(text: string, file: string | undefined, opts: EncryptOptionsFor): Promise<string> {
  // The scanner reads the common block-style stream; anything else the full parser reads.
  const p = readSecrets(text, file)
  const optionsOf = typeof opts === 'function' ? opts : async () => opts
  const secrets = p.secrets.filter((s) => !isSopsSecret(s))
  const edits = (await Promise.all(secrets.map(async (s) => encryptSecret(p.text, p.eol, s, await optionsOf(s))))).flat()
  return edits.length ? applyEdits(text, edits) : text
}

/** Encrypts a file's plain Secrets as SOPS (`encrypt --format sops -r`), each with its own data key. */
export async function encryptTextToSops(text: string, file: string | undefined, recipients: Recipient[], sops: SopsKeys): Promise<string> {
  const {encryptSecretsToSops, toSopsRecipient} = await import('../formats/sops/index.js')
  return encryptSecretsToSops(text, {file, recipients: recipients.map(toSopsRecipient), keys: await sops()})
}

/**
 * Encrypts a file's Secrets, each for the recipients of the first rule that matches it, in the
 * rule's format (or `format`, from `--format`): the SOPS ones first, then kseal's.
 */
export async function encryptTextWithRules(
  text: string,
  file: string | undefined,
  rules: CreationRules,
  base: RuleOptions,
  sops?: {keys: SopsKeys; format?: SecretFormat},
): Promise<string> {
  if (sops && (sops.format === 'sops' || (sops.format === undefined && (await rules.mayWriteSops(file))))) {
    const {encryptSecretsToSops, toSopsRecipient} = await import('../formats/sops/index.js')
    const keys = await sops.keys()
    text = await encryptSecretsToSops(text, {
      file,
      keys,
      recipients: async (s) => {
        if (!fresh(s) || isSopsSecret(s)) return null
        try {
          const choice = await rules.optionsFor(file, s, base)
          return (sops.format ?? choice.format) === 'sops' ? choice.recipients.map(toSopsRecipient) : null
        } catch (e) {
          throw isKsealError(e) ? e.at(s.where) : e
        }
      },
    })
  }
  return encryptText(text, file, async (s) => {
    // Only a Secret that gets its first envelope needs a rule; others keep their recipients — but a
    // format 1 Secret gaining values is upgraded, and its rule (if one matches) vouches for the
    // recipients it names.
    const upgrading = Boolean(s.envelopePair) && adding(s) && (s.envelopeRaw as {version?: unknown} | null)?.version === 1
    try {
      if (fresh(s)) return await rules.optionsFor(file, s, base)
      if (upgrading && (await rules.cover(file))) {
        const vouching = await rules
          .optionsFor(file, s, base)
          .catch((e) => (isKsealError(e) && e.code === 'ERR_USAGE' ? null : Promise.reject(e)))
        if (vouching) return vouching
      }
      return {recipients: [], scope: base.scope ?? 'strict', keyring: base.keyring}
    } catch (e) {
      throw isKsealError(e) ? e.at(s.where) : e
    }
  })
}
