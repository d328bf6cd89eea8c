/**
 * git's textconv for kseal files (`kseal textconv FILE`): what `git diff` and `git log -p` compare
 * instead of the raw bytes.
 *
 * - Secrets whose key the user holds are shown decrypted (as `kseal decrypt` would write them).
 * - Secrets without a key are shown with each token replaced by a short fingerprint of its
 *   ciphertext, `<encrypted sha256:0123456789ab>`. Unchanged values keep their ciphertext, so git
 *   shows exactly which keys were added, removed or changed, from the ciphertext alone.
 * - In both, the envelope is reduced to what a reviewer can read: format, scope and recipients
 *   (the MAC and the wrapped keys would change on every edit and say nothing).
 *
 * SOPS and kubesec documents are shown decrypted when the user holds their key (as `kseal decrypt`
 * shows them), otherwise as they are.
 *
 * It never fails: anything it cannot parse is shown as it is. Output goes to stdout only.
 */
import crypto from 'node:crypto'
import {applyEdits, type Edit, replaceEnvelopeEdit, tokenEdit} from '../manifest/edits.js'
import {envelopeObject, parseEnvelope} from '../envelope/envelope.js'
import type {Keyring} from '../keyring/keyring.js'
import {looksForeign} from '../formats/detect.js'
import type {SopsKeys} from './decrypt.js'
import {ENVELOPE_KEY, type SecretDoc} from '../manifest/parse.js'
import {readSecrets} from '../manifest/read.js'
import {openSecret, plaintextEdits} from '../secret/secret.js'

/** A stable, short stand-in for a token: the first 12 hex digits of SHA-256 over it. */
export function fingerprint(token: string): string {
  return `<encrypted sha256:${crypto.createHash('sha256').update(token.trim()).digest('hex').slice(0, 12)}>`
}

export async function textconv(text: string, keyring: Keyring, sops?: SopsKeys): Promise<string> {
  if (sops && looksForeign(text)) {
    try {
      text = await (await import('./foreign.js')).openForeign(text, undefined, await sops())
    } catch {
      // No key, or a tampered file: shown as it is.
    }
  }
  let p
  try {
    p = readSecrets(text)
  } catch {
    return text
  }
  const edits = (await Promise.all(p.secrets.map((s) => secretView(p.text, p.eol, s, keyring)))).flat()
  try {
    return edits.length ? applyEdits(text, edits) : text
  } catch {
    return text
  }
}

async function secretView(text: string, eol: string, s: SecretDoc, keyring: Keyring): Promise<Edit[]> {
  if (!s.envelopePair) return []
  let summary: Edit
  try {
    // Format, scope, the identity it was encrypted as, and who can open it.
    const {
      mac: _mac,
      recipients,
      ...head
    } = envelopeObject(parseEnvelope(s.envelopeRaw)) as {mac: string; recipients: {backend: string; kid: string}[]}
    summary = replaceEnvelopeEdit(
      text,
      s.map,
      s.envelopePair,
      {...head, recipients: recipients.map((r) => ({backend: r.backend, kid: r.kid}))},
      ENVELOPE_KEY,
      eol,
    )
  } catch {
    return fingerprints(text, eol, s)
  }
  try {
    const opened = await openSecret(s, keyring)
    if (opened) return [...plaintextEdits(text, eol, s, opened), summary]
  } catch {
    // No key, a wrong key or a tampered value: show what the ciphertext alone tells.
  }
  return [...fingerprints(text, eol, s), summary]
}

function fingerprints(text: string, eol: string, s: SecretDoc): Edit[] {
  return s.values.flatMap((v) => (v.encrypted && v.node ? [tokenEdit(text, v.node, fingerprint(v.value!), eol)] : []))
}
