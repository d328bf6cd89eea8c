/**
 * `kseal encrypt`: every Secret of a file encrypted (all of a file's Secrets at once, so their key
 * operations overlap), for the recipients given or those of the file's `.kseal.yaml` rule, and the
 * resulting edits applied to the original text: every byte outside the values and envelopes passes
 * through.
 */
import {type CreationRules, type RuleOptions} from '../config/config.js'
import {isKsealError} from '../core/errors.js'
import {applyEdits} from '../manifest/edits.js'
import type {SecretDoc} from '../manifest/parse.js'
import {readSecrets} from '../manifest/read.js'
import {type EncryptOptions, encryptSecret} from '../secret/secret.js'

/** Options for every Secret, or per Secret (recipients and scope from `.kseal.yaml` rules). */
export type EncryptOptionsFor = EncryptOptions | ((s: SecretDoc) => Promise<EncryptOptions>)

export async function encryptText(text: string, file: string | undefined, opts: EncryptOptionsFor): Promise<string> {
  // The scanner reads the common block-style stream; anything else the full parser reads.
  const p = readSecrets(text, file)
  const optionsOf = typeof opts === 'function' ? opts : async () => opts
  const edits = (await Promise.all(p.secrets.map(async (s) => encryptSecret(p.text, p.eol, s, await optionsOf(s))))).flat()
  return edits.length ? applyEdits(text, edits) : text
}

/** Encrypts a file's Secrets, each for the recipients of the first rule that matches it. */
export async function encryptTextWithRules(
  text: string,
  file: string | undefined,
  rules: CreationRules,
  base: RuleOptions,
): Promise<string> {
  return encryptText(text, file, async (s) => {
    // Only a Secret that gets its first envelope needs a rule; others keep their recipients — but a
    // format 1 Secret gaining values is upgraded, and its rule (if one matches) vouches for the
    // recipients it names.
    const adding = s.values.some((v) => v.value !== null && !v.encrypted)
    const fresh = !s.envelopePair && adding
    const upgrading = Boolean(s.envelopePair) && adding && (s.envelopeRaw as {version?: unknown} | null)?.version === 1
    try {
      if (fresh) return await rules.optionsFor(file, s, base)
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
