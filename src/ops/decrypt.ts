/**
 * `kseal decrypt`: every encrypted Secret of a file decrypted, every other document and byte as it
 * was. Each Secret's key is being opened while the documents after it are still being parsed. SOPS
 * and kubesec documents in the stream are decrypted too (foreign.ts, loaded only for such a text).
 */
import {looksForeign} from '../formats/detect.js'
import type {SopsMasterKeys} from '../formats/sops/masterkeys.js'
import {applyEdits, type Edit} from '../manifest/edits.js'
import type {Keyring} from '../keyring/keyring.js'
import {parseManifestsIncrementally, type SecretDoc} from '../manifest/parse.js'
import {scanSecrets} from '../manifest/read.js'
import {decryptSecret} from '../secret/secret.js'

/** The run's keys for SOPS and kubesec files, made when the first such file is met. */
export type SopsKeys = () => Promise<SopsMasterKeys>

export async function decryptText(text: string, file: string | undefined, keyring: Keyring, sops?: SopsKeys): Promise<string> {
  if (sops && looksForeign(text)) text = await (await import('./foreign.js')).openForeign(text, file, await sops())
  // Each Secret's key is being opened while the documents after it are still being parsed.
  const pending: Promise<Edit[]>[] = []
  const each = (s: SecretDoc, eol: string) => {
    const p = decryptSecret(text, eol, s, keyring)
    p.catch(() => undefined) // reported below, in document order
    pending.push(p)
  }
  // The scanner reads the common block-style stream at once; anything else the full parser reads.
  const scanned = scanSecrets(text, file)
  try {
    if (scanned) for (const s of scanned.secrets) each(s, scanned.eol)
    else await parseManifestsIncrementally(text, file, each)
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
