/**
 * The lexer of kseal's template language: Go text/template's syntax (what external-secrets'
 * template engine v2 parses), read from a byte string (see values.ts: every string is bytes, one
 * char per byte). Text runs until `{{`; `{{- ` and ` -}}` trim the whitespace beside them;
 * `{{/* ... *\/}}` is a comment. Inside an action: identifiers, `.field` chains, `$variables`,
 * strings ("..." with Go's escapes, `raw`), numbers, `(`, `)`, `|`, `:=`, `=`, `,`. Every token
 * knows its offset, so errors name line and column.
 */
import {TemplateError} from './errors.js'

export type TokenType =
  | 'text'
  | 'left'
  | 'right'
  | 'ident'
  | 'field'
  | 'variable'
  | 'dot'
  | 'string'
  | 'number'
  | 'bool'
  | 'nil'
  | 'lparen'
  | 'rparen'
  | 'pipe'
  | 'declare'
  | 'assign'
  | 'comma'
  | 'eof'

export interface Token {
  type: TokenType
  /** The token's text; for a string, its decoded value; for a field, the name without the dot. */
  value: string
  pos: number
}

const SPACE = /[ \t\r\n]/
const IDENT_START = /[A-Za-z_]/
const IDENT = /[A-Za-z0-9_]/

export function lex(src: string, name: string): Token[] {
  const out: Token[] = []
  let i = 0
  const fail = (pos: number, msg: string): never => {
    throw new TemplateError(name, src, pos, msg)
  }
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    const textEnd = open < 0 ? src.length : open
    const trimLeft = open >= 0 && src[open + 2] === '-' && SPACE.test(src[open + 3] ?? '')
    let text = src.slice(i, textEnd)
    if (trimLeft) text = text.replace(/[ \t\r\n]+$/, '')
    if (text) out.push({type: 'text', value: text, pos: i})
    if (open < 0) break
    i = open + 2 + (trimLeft ? 2 : 0)
    // A comment is the whole action: {{/* ... */}} (with optional trim markers).
    if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2)
      if (end < 0) fail(open, 'unclosed comment')
      let j = end + 2
      const trimRight = src[j] === ' ' && src.startsWith('-}}', j + 1)
      if (trimRight) j += 1
      if (src.startsWith('-}}', j) && trimRight) j += 3
      else if (src.startsWith('}}', j)) j += 2
      else fail(end, 'comment ends before closing delimiter')
      i = trimRight ? skipSpace(src, j) : j
      continue
    }
    out.push({type: 'left', value: '{{', pos: open})
    i = lexAction(src, i, out, fail)
  }
  out.push({type: 'eof', value: '', pos: src.length})
  return out
}

function skipSpace(src: string, i: number): number {
  while (i < src.length && SPACE.test(src[i])) i++
  return i
}

/** Lexes one action from i (after `{{`), pushing its tokens and the `right`; returns the offset after `}}`. */
function lexAction(src: string, i: number, out: Token[], fail: (pos: number, msg: string) => never): number {
  for (;;) {
    const start = i
    if (i >= src.length) fail(start, 'unclosed action')
    const c = src[i]
    if (SPACE.test(c)) {
      i = skipSpace(src, i)
      if (src.startsWith('-}}', i - 0) && i > start) {
        out.push({type: 'right', value: '}}', pos: i})
        return skipSpace(src, i + 3)
      }
      continue
    }
    if (src.startsWith('}}', i)) {
      out.push({type: 'right', value: '}}', pos: i})
      return i + 2
    }
    if (c === '"') {
      const [value, end] = quoted(src, i, fail)
      out.push({type: 'string', value, pos: start})
      i = end
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1)
      if (end < 0) fail(start, 'unterminated raw quoted string')
      out.push({type: 'string', value: src.slice(i + 1, end), pos: start})
      i = end + 1
    } else if (c === '(') {
      out.push({type: 'lparen', value: c, pos: start})
      i++
    } else if (c === ')') {
      out.push({type: 'rparen', value: c, pos: start})
      i++
    } else if (c === '|') {
      out.push({type: 'pipe', value: c, pos: start})
      i++
    } else if (c === ',') {
      out.push({type: 'comma', value: c, pos: start})
      i++
    } else if (c === ':' && src[i + 1] === '=') {
      out.push({type: 'declare', value: ':=', pos: start})
      i += 2
    } else if (c === '=') {
      out.push({type: 'assign', value: '=', pos: start})
      i++
    } else if (c === '$') {
      i++
      while (i < src.length && IDENT.test(src[i])) i++
      out.push({type: 'variable', value: src.slice(start, i), pos: start})
    } else if (c === '.') {
      if (/[0-9]/.test(src[i + 1] ?? '')) {
        i = number(src, i, out, fail)
      } else if (IDENT_START.test(src[i + 1] ?? '')) {
        i++
        while (i < src.length && IDENT.test(src[i])) i++
        out.push({type: 'field', value: src.slice(start + 1, i), pos: start})
      } else {
        out.push({type: 'dot', value: '.', pos: start})
        i++
      }
    } else if (/[0-9+-]/.test(c)) {
      i = number(src, i, out, fail)
    } else if (IDENT_START.test(c)) {
      while (i < src.length && IDENT.test(src[i])) i++
      const word = src.slice(start, i)
      out.push({type: word === 'true' || word === 'false' ? 'bool' : word === 'nil' ? 'nil' : 'ident', value: word, pos: start})
    } else if (c === "'") {
      fail(start, 'character constants are not supported; use a "string"')
    } else {
      fail(start, `unexpected ${JSON.stringify(c)} in action`)
    }
  }
}

function number(src: string, i: number, out: Token[], fail: (pos: number, msg: string) => never): number {
  const m = /^[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][+-]?[0-9]+)?)/.exec(
    src.slice(i, i + 64),
  )
  const text = m?.[0] ?? ''
  if (!/[0-9]/.test(text) || IDENT.test(src[i + text.length] ?? '') || src[i + text.length] === '.')
    fail(i, `bad number syntax: ${JSON.stringify(src.slice(i, i + 16).split(/[\s}]/)[0])}`)
  out.push({type: 'number', value: text, pos: i})
  return i + text.length
}

const ESCAPES: Record<string, string> = {a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"'}

/** A Go interpreted string literal: returns the value as a byte string (\u escapes become UTF-8). */
function quoted(src: string, i: number, fail: (pos: number, msg: string) => never): [string, number] {
  let out = ''
  let j = i + 1
  for (;;) {
    if (j >= src.length || src[j] === '\n') fail(i, 'unterminated quoted string')
    const c = src[j]
    if (c === '"') return [out, j + 1]
    if (c !== '\\') {
      out += c
      j++
      continue
    }
    const e = src[j + 1] ?? ''
    if (Object.hasOwn(ESCAPES, e)) {
      out += ESCAPES[e]
      j += 2
    } else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(src.slice(j + 2, j + 4))) {
      out += String.fromCharCode(parseInt(src.slice(j + 2, j + 4), 16))
      j += 4
    } else if (
      (e === 'u' || e === 'U') &&
      new RegExp(`^[0-9a-fA-F]{${e === 'u' ? 4 : 8}}$`).test(src.slice(j + 2, j + (e === 'u' ? 6 : 10)))
    ) {
      const n = e === 'u' ? 4 : 8
      const cp = parseInt(src.slice(j + 2, j + 2 + n), 16)
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail(j, 'escape sequence is invalid Unicode code point')
      out += Buffer.from(String.fromCodePoint(cp), 'utf8').toString('latin1')
      j += 2 + n
    } else if (/^[0-7]{3}$/.test(src.slice(j + 1, j + 4)) && parseInt(src.slice(j + 1, j + 4), 8) < 256) {
      out += String.fromCharCode(parseInt(src.slice(j + 1, j + 4), 8))
      j += 4
    } else {
      fail(j, 'unknown escape sequence')
    }
  }
}
