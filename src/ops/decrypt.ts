/**
 * `kseal decrypt`: every encrypted Secret of a file decrypted, every other document and byte as it
 * was. Each Secret's key is being opened while the documents after it are still being parsed.
 */
import {applyEdits, type Edit} from '../manifest/edits.js'
import type {Keyring} from '../keyring/keyring.js'
import {parseManifestsIncrementally} from '../manifest/parse.js'
import {decryptSecret} from '../secret/secret.js'

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
