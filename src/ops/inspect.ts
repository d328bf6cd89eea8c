/**
 * `kseal inspect`: what an encrypted file holds, read from the envelope alone — no key needed. SOPS
 * and kubesec documents are listed too (foreign.ts), with what their formats authenticate.
 */
import {describeIdentity} from '../envelope/binding.js'
import {parseEnvelope} from '../envelope/envelope.js'
import {formatWhere, isKsealError} from '../core/errors.js'
import {parseManifests} from '../manifest/parse.js'
import {looksForeign} from '../formats/detect.js'
import {V1_NOTE} from './check.js'
import {foreignInfo} from './foreign.js'

export interface SecretInfo {
  file: string
  document: number
  /** kseal's own envelope, or another tool's format that kseal reads. */
  format: 'kseal' | 'sops' | 'kubesec'
  namespace: string
  name: string
  scope: string
  /** kseal's and kubesec's format version; the sops release that wrote a SOPS file. */
  version: number | string
  /**
   * Format 2: the identity it was encrypted as (null parts: not bound — an open namespace, or what
   * the scope does not bind) and how it reads; null for format 1, which records none.
   */
  encryptedAs: {namespace: string | null; name: string | null; shown: string} | null
  /** Format 2's MAC covers every recipient entry; format 1's does not. */
  recipientsAuthenticated: boolean
  /** What the format's MAC covers, and what it does not. */
  authenticated: string
  recipients: {backend: string; kid: string; key?: string}[]
  values: number
  /** Values still in plaintext beside encrypted ones (they need `kseal encrypt`). */
  plaintext: number
}

const AUTHENTICATED_V2 = 'every value, its place (field, key, and the namespace/name its scope binds) and the recipients'
const AUTHENTICATED_V1 = 'every value and its place; not the recipients (format v1)'

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
      format: 'kseal',
      namespace: s.namespace,
      name: s.name,
      scope: env.scope,
      version: env.version,
      encryptedAs: env.encryptedAs ? {...env.encryptedAs, shown: describeIdentity(env.scope, env.encryptedAs)} : null,
      recipientsAuthenticated: env.version >= 2,
      authenticated: env.version >= 2 ? AUTHENTICATED_V2 : AUTHENTICATED_V1,
      recipients: env.recipients.map((r) => {
        const key = (r as {key?: unknown}).key
        return {backend: r.backend, kid: r.kid, ...(typeof key === 'string' ? {key} : {})}
      }),
      values: s.values.filter((v) => v.encrypted).length,
      plaintext: s.values.filter((v) => v.value !== null && !v.encrypted).length,
    })
  }
  if (looksForeign(text)) out.push(...foreignInfo(text, file))
  return out.sort((a, b) => a.document - b.document)
}

/** One line per format 1 Secret: where it is and what to do about it. */
export function v1Notes(infos: SecretInfo[]): string[] {
  return infos
    .filter((i) => i.format === 'kseal' && !i.recipientsAuthenticated)
    .map(
      (i) =>
        formatWhere({file: i.file, document: i.document, secret: (i.namespace ? `${i.namespace}/` : '') + (i.name || '(unnamed)')}) +
        V1_NOTE,
    )
}
