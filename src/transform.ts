/**
 * Whole-file transformations: parse the manifests, work on each Secret (all of a file's Secrets at
 * once, so their key operations overlap), and apply the resulting edits to the original text.
 * Documents that are not Secrets, and every byte outside the values and envelopes, pass through.
 */
import {applyEdits, type Edit} from './edits.js'
import type {Keyring} from './keyring.js'
import {parseManifests} from './manifest.js'
import {decryptSecret, type EncryptOptions, encryptSecret} from './secret.js'

export async function encryptText(text: string, file: string | undefined, opts: EncryptOptions): Promise<string> {
  const p = parseManifests(text, file)
  const edits = (await Promise.all(p.secrets.map((s) => encryptSecret(p.text, p.eol, s, opts)))).flat()
  return edits.length ? applyEdits(text, edits) : text
}

export async function decryptText(text: string, file: string | undefined, keyring: Keyring): Promise<string> {
  const p = parseManifests(text, file)
  const edits: Edit[] = (await Promise.all(p.secrets.map((s) => decryptSecret(p.text, p.eol, s, keyring)))).flat()
  return edits.length ? applyEdits(text, edits) : text
}
