/**
 * Decrypted SOPS values written back into the file's text, in place of their `ENC[…]` scalars, with
 * the type sops recorded: strings as strings (plain only where YAML 1.1 — kubectl — and YAML 1.2 —
 * go-yaml, sops, Flux — all read them back as that same string; otherwise double-quoted), numbers
 * and booleans as such, bytes as `!!binary` (YAML) or base64 (JSON, as Go's encoding/json writes).
 */
import type {Scalar} from 'yaml'
import {doubleQuoted, type Edit, valueEdit} from '../../manifest/edits.js'
import {KsealError} from '../../core/errors.js'
import type {TypedValue} from './cipher.js'
import {formatGoFloat, resolvePlain} from './go.js'
import type {Dialect} from './tree.js'

/** A float that every YAML reader takes back as a float: `1.0`, not `1`; `.inf`, `.nan`. */
export function yamlFloat(f: number): string {
  if (Number.isNaN(f)) return '.nan'
  if (f === Infinity) return '.inf'
  if (f === -Infinity) return '-.inf'
  const s = formatGoFloat(f)
  return /^-?\d+$/.test(s) ? s + '.0' : s
}

/** The edit that puts a decrypted value where its encrypted scalar was. */
export function valueEditFor(text: string, node: Scalar, v: TypedValue, eol: string, dialect: Dialect, flow: boolean): Edit {
  const [start, end] = node.range!
  // A block scalar's range ends with its line break; a value put in its place needs one.
  const tail = text[end - 1] === '\n' ? eol : ''
  const json = dialect === 'json'
  switch (v.type) {
    case 'str': {
      const e = valueEdit(text, node, v.value, eol, flow || json)
      const plainAsWritten = e.text === v.value || e.text === v.value + eol
      return plainAsWritten && resolvePlain(v.value).type !== 'str' ? {start, end, text: doubleQuoted(v.value, flow || json) + tail} : e
    }
    case 'int':
      return {start, end, text: v.value.toString() + tail}
    case 'float':
      if (json && !Number.isFinite(v.value))
        throw new KsealError('ERR_INPUT', 'a SOPS float decrypts to NaN or infinity, which JSON cannot hold')
      return {start, end, text: (json ? JSON.stringify(v.value) : yamlFloat(v.value)) + tail}
    case 'bool':
      return {start, end, text: String(v.value) + tail}
    case 'bytes':
      return {start, end, text: (json ? JSON.stringify(v.value.toString('base64')) : `!!binary ${v.value.toString('base64')}`) + tail}
  }
}
