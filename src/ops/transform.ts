/**
 * Whole-file transformations: parse the manifests, work on each Secret (all of a file's Secrets at
 * once, so their key operations overlap), and apply the resulting edits to the original text.
 * Documents that are not Secrets, and every byte outside the values and envelopes, pass through.
 */
import {applyEdits, type Edit} from '../manifest/edits.js'
import type {Keyring} from '../keyring/keyring.js'
import {parseManifests, parseManifestsIncrementally, type SecretDoc} from '../manifest/parse.js'
import {decryptSecret, type EncryptOptions, encryptSecret} from '../secret/secret.js'

/** Options for every Secret, or per Secret (recipients and scope from `.kseal.yaml` rules). */
export type EncryptOptionsFor = EncryptOptions | ((s: SecretDoc) => Promise<EncryptOptions>)

export async function encryptText(text: string, file: string | undefined, opts: EncryptOptionsFor): Promise<string> {
  const p = parseManifests(text, file)
  const optionsOf = typeof opts === 'function' ? opts : async () => opts
  const edits = (await Promise.all(p.secrets.map(async (s) => encryptSecret(p.text, p.eol, s, await optionsOf(s))))).flat()
  return edits.length ? applyEdits(text, edits) : text
}

export async function decryptText(text: string, file: string | undefined, keyring: Keyring): Promise<string> {
  // Each Secret's key is being opened while the documents after it are still being parsed.
  const pending: Promise<Edit[]>[] = []
  try {
    await parseManifestsIncrementally(text, file, (s, eol) => {
      const p = decryptSecret(text, eol, s, keyring)
      p.catch(() => undefined) // reported below, in document order
      pending.push(p)
    })
  } catch (e) {
    await Promise.allSettled(pending)
    throw e
  }
  const results = await Promise.allSettled(pending)
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  const edits = results.flatMap((r) => (r as PromiseFulfilledResult<Edit[]>).value)
  return edits.length ? applyEdits(text, edits) : text
}
