/** `kseal inspect`: what an encrypted file holds, read from the envelope alone — no key needed. */
import {parseEnvelope} from './envelope.js'
import {isKsealError} from './errors.js'
import {parseManifests} from './manifest.js'

export interface SecretInfo {
  file: string
  document: number
  namespace: string
  name: string
  scope: string
  version: number
  recipients: {backend: string; kid: string}[]
  values: number
  /** Values still in plaintext beside encrypted ones (they need `kseal encrypt`). */
  plaintext: number
}

export function inspectText(text: string, file: string | undefined): SecretInfo[] {
  const out: SecretInfo[] = []
  for (const s of parseManifests(text, file).secrets) {
    if (!s.envelopePair) continue
    let env
    try {
      env = parseEnvelope(s.envelopeRaw)
    } catch (e) {
      throw isKsealError(e) ? e.at(s.where) : e
    }
    out.push({
      file: file ?? '(stdin)',
      document: s.where.document!,
      namespace: s.namespace,
      name: s.name,
      scope: env.scope,
      version: env.version,
      recipients: env.recipients.map((r) => ({backend: r.backend, kid: r.kid})),
      values: s.values.filter((v) => v.encrypted).length,
      plaintext: s.values.filter((v) => v.value !== null && !v.encrypted).length,
    })
  }
  return out
}
