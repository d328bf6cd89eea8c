/**
 * What a Secret's values stand for, as Kubernetes reads them: `data` is base64 of bytes, `stringData`
 * is UTF-8 text; and the v1 Secret an unsealer hands the API server.
 */
import type {Field} from '../envelope/envelope.js'
import {KsealError} from '../core/errors.js'
import type {SecretValue} from './parse.js'

const place = (v: SecretValue) => `${v.field}.${v.key}`

/** The bytes a value stands for: base64-decoded `data`, UTF-8 `stringData`. */
export function valueBytes(v: SecretValue): Buffer {
  const s = v.value ?? ''
  if (v.field === 'stringData') {
    // UTF-8 cannot carry a lone surrogate (an escape like "\ud800"); encoding would quietly turn it into U+FFFD.
    if (/\p{Cs}/u.test(s))
      throw new KsealError('ERR_INPUT', 'not valid Unicode text (a lone surrogate escape); use data with base64 for bytes', {key: place(v)})
    return Buffer.from(s, 'utf8')
  }
  // Kubernetes (Go's StdEncoding) takes padded standard base64, ignoring line breaks.
  const compact = s.replace(/[\r\n]/g, '')
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) {
    throw new KsealError('ERR_INPUT', 'not valid base64 (data values are base64; use stringData for plain text)', {key: place(v)})
  }
  return Buffer.from(compact, 'base64')
}

/** The text a value is written back as. */
export function valueText(field: Field, bytes: Buffer): string {
  if (field === 'data') return bytes.toString('base64')
  // ignoreBOM keeps a value's leading U+FEFF: it is part of the value, not a marker to strip.
  return new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(bytes)
}

/** What the produced Secret gets besides its data: a SealedSecret's template. */
export interface SecretTemplate {
  labels?: Record<string, string>
  annotations?: Record<string, string>
  type?: string
  immutable?: boolean
}

/**
 * The v1 Secret an unsealer produces: apiVersion, kind, metadata (name, namespace when set, labels and
 * annotations when any), type (Opaque by default), immutable when set, then data (base64), in that order.
 */
export function secretObject(
  name: string,
  namespace: string | undefined,
  t: SecretTemplate,
  data: Record<string, string>,
): Record<string, unknown> {
  const metadata: Record<string, unknown> = {name}
  if (namespace) metadata.namespace = namespace
  if (t.labels && Object.keys(t.labels).length) metadata.labels = {...t.labels}
  if (t.annotations && Object.keys(t.annotations).length) metadata.annotations = {...t.annotations}
  const secret: Record<string, unknown> = {apiVersion: 'v1', kind: 'Secret', metadata, type: t.type ?? 'Opaque'}
  if (t.immutable !== undefined) secret.immutable = t.immutable
  secret.data = data
  return secret
}
