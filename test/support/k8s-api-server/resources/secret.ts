/** core/v1 Secret: Go's base64 decoding, stringData conversion, defaulting and validation. */
import {jsonTypeName, put} from '../decode.js'
import {fe} from '../status.js'
import type {FieldError, KubeObject} from '../types.js'
import {deepEqual, isObj} from '../util.js'
import {isConfigMapKey} from '../validation.js'

// Go's encoding/base64 StdEncoding.Decode (as used by encoding/json for []byte), ported so that
// acceptance and the reported offset match the apiserver: '\r' and '\n' are skipped, padding is
// mandatory, the URL-safe alphabet and other whitespace are rejected.
export const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
export const B64_DECODE = (() => {
  const t = new Int16Array(256).fill(-1)
  for (let i = 0; i < B64_ALPHABET.length; i++) t[B64_ALPHABET.charCodeAt(i)] = i
  return t
})()

export function goBase64Decode(s: string): {ok: true; bytes: Buffer} | {ok: false; offset: number} {
  const src = Buffer.from(s, 'utf8')
  const out: number[] = []
  let si = 0
  const isNl = (c: number | undefined) => c === 0x0a || c === 0x0d
  while (si < src.length) {
    const dbuf = [0, 0, 0, 0]
    let dlen = 4
    let trailing = -1
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return {ok: true, bytes: Buffer.from(out)}
        return {ok: false, offset: si - j}
      }
      const c = src[si]!
      si++
      const v = B64_DECODE[c]!
      if (v !== -1) {
        dbuf[j] = v
        continue
      }
      if (isNl(c)) {
        j--
        continue
      }
      if (c !== 0x3d) return {ok: false, offset: si - 1}
      if (j === 0 || j === 1) return {ok: false, offset: si - 1}
      if (j === 2) {
        while (si < src.length && isNl(src[si])) si++
        if (si === src.length) return {ok: false, offset: src.length}
        if (src[si] !== 0x3d) return {ok: false, offset: si - 1}
        si++
      }
      while (si < src.length && isNl(src[si])) si++
      if (si < src.length) trailing = si
      dlen = j
      break
    }
    const val = (dbuf[0]! << 18) | (dbuf[1]! << 12) | (dbuf[2]! << 6) | dbuf[3]!
    const b = [(val >> 16) & 0xff, (val >> 8) & 0xff, val & 0xff]
    out.push(...b.slice(0, dlen - 1))
    if (trailing >= 0) return {ok: false, offset: trailing}
  }
  return {ok: true, bytes: Buffer.from(out)}
}

export function decodeSecret(obj: KubeObject): string | undefined {
  if (obj.data !== undefined && obj.data !== null && !isObj(obj.data)) {
    return `json: cannot unmarshal ${jsonTypeName(obj.data)} into Go struct field Secret.data of type map[string][]uint8`
  }
  if (obj.stringData !== undefined && obj.stringData !== null && !isObj(obj.stringData)) {
    return `json: cannot unmarshal ${jsonTypeName(obj.stringData)} into Go struct field Secret.stringData of type map[string]string`
  }
  const data: Record<string, string> = {}
  for (const [k, v] of Object.entries((obj.data as KubeObject | undefined) ?? {})) {
    if (v === null) {
      put(data, k, '')
      continue
    }
    if (typeof v !== 'string') return `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field Secret.data of type []uint8`
    const r = goBase64Decode(v)
    if (!r.ok) return `illegal base64 data at input byte ${r.offset}`
    put(data, k, r.bytes.toString('base64')) // re-encoded canonically, as the apiserver stores []byte
  }
  // v1 -> internal conversion: stringData entries overwrite data entries and stringData disappears.
  for (const [k, v] of Object.entries((obj.stringData as KubeObject | undefined) ?? {})) {
    if (typeof v !== 'string') return `json: cannot unmarshal ${jsonTypeName(v)} into Go struct field Secret.stringData of type string`
    put(data, k, Buffer.from(v, 'utf8').toString('base64'))
  }
  delete obj.stringData
  if (Object.keys(data).length) obj.data = data
  else delete obj.data
  if (obj.type === undefined || obj.type === null || obj.type === '') obj.type = 'Opaque' // SetDefaults_Secret
  if (obj.immutable === null) delete obj.immutable
  return undefined
}

export const MAX_SECRET_SIZE = 1024 * 1024

export function validateSecret(obj: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errs: FieldError[] = []
  if (old) {
    if (obj.type !== old.type) errs.push(fe.invalid('type', obj.type, 'field is immutable'))
    if (old.immutable === true) {
      if (obj.immutable !== true) errs.push(fe.forbidden('immutable', 'field is immutable when `immutable` is set'))
      if (!deepEqual(obj.data ?? {}, old.data ?? {})) errs.push(fe.forbidden('data', 'field is immutable when `immutable` is set'))
    }
  }
  const data = (obj.data ?? {}) as Record<string, string>
  let total = 0
  for (const [k, v] of Object.entries(data)) {
    for (const m of isConfigMapKey(k)) errs.push(fe.invalid(`data[${k}]`, k, m))
    total += Buffer.from(v, 'base64').length
  }
  if (total > MAX_SECRET_SIZE) errs.push(fe.tooLong('data', MAX_SECRET_SIZE))
  const has = (k: string) => Object.prototype.hasOwnProperty.call(data, k)
  const jsonOk = (k: string) => {
    try {
      const v: unknown = JSON.parse(Buffer.from(data[k]!, 'base64').toString('utf8'))
      return isObj(v)
    } catch {
      return false
    }
  }
  switch (obj.type) {
    case 'kubernetes.io/service-account-token':
      if (!obj.metadata?.annotations?.['kubernetes.io/service-account.name']) {
        errs.push(fe.required('metadata.annotations[kubernetes.io/service-account.name]'))
      }
      break
    case 'kubernetes.io/dockercfg':
      if (!has('.dockercfg')) errs.push(fe.required('data[.dockercfg]'))
      else if (!jsonOk('.dockercfg')) errs.push(fe.invalid('data[.dockercfg]', '<secret contents redacted>', 'invalid JSON'))
      break
    case 'kubernetes.io/dockerconfigjson':
      if (!has('.dockerconfigjson')) errs.push(fe.required('data[.dockerconfigjson]'))
      else if (!jsonOk('.dockerconfigjson')) errs.push(fe.invalid('data[.dockerconfigjson]', '<secret contents redacted>', 'invalid JSON'))
      break
    case 'kubernetes.io/basic-auth':
      if (!has('username') && !has('password')) errs.push(fe.required('data[username]'), fe.required('data[password]'))
      break
    case 'kubernetes.io/ssh-auth':
      if (!data['ssh-privatekey']) errs.push(fe.required('data[ssh-privatekey]'))
      break
    case 'kubernetes.io/tls':
      if (!has('tls.crt')) errs.push(fe.required('data[tls.crt]'))
      if (!has('tls.key')) errs.push(fe.required('data[tls.key]'))
      break
    default:
  }
  return errs
}
