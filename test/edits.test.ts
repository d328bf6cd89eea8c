/** Writing values back in their original style: the plain-scalar rule must agree with a YAML 1.1 reader. */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {parse, parseDocument, Scalar} from 'yaml'
import {valueEdit} from '../src/edits.js'

/** The text valueEdit writes for a plain token node holding `value`. */
function written(value: string): string {
  const src = 'k: kseal:v1:AAAA\n'
  const node = (parseDocument(src).contents as {items: {value: Scalar}[]}).items[0].value
  return valueEdit(src, node, value, '\n', false).text
}

describe('valueEdit for plain scalars', () => {
  it.each(['yes', 'No', 'on', 'null', '~', '0777', '0x1F', '0b101', '1e10', '.5', '12:30', '2026-11-28', '<<', '-', '- x', 'a: b', 'x #y', '&a', '*a', '!t', '%x', '@x', '`x', "'q'", '"q"', '[x', '{x', '|', '>', '#x', ' lead', 'trail ', ''])(
    'quotes %j, which a YAML 1.1 reader would not read back as the same string', (v) => {
      const w = written(v)
      expect(w).toBe(JSON.stringify(v))
      expect(parse(`k: ${w}`, {version: '1.1'}).k).toBe(v)
    })

  it.each(['Zm9vYmFy', 'aGVsbG8=', 'abc+/==', 'plain text', '?x', '-x', ':x', 'a-b_c.d', 'ünï'])('keeps %j plain', (v) => {
    expect(written(v)).toBe(v)
  })

  it('whatever it writes reads back as the same string under YAML 1.1', () => {
    fc.assert(fc.property(fc.oneof(fc.string({maxLength: 20}), fc.string({unit: 'grapheme', maxLength: 20})), (v) => {
      expect(parse(`k: ${written(v)}`, {version: '1.1'}).k).toBe(v)
    }), {numRuns: 2000})
  })
})

describe('spelling that every reader agrees on', () => {
  it.each(['\u00a0', 'a\u00a0', '\u3000x', 'x\ty', 'x\u200by'])('keeps %j plain: YAML trims only space and tab', (v) => {
    expect(written(v)).toBe(v)
    expect(parse(`k: ${v}`, {version: '1.1'}).k).toBe(v)
  })

  it.each([
    ['\u0085', '"\\N"'], ['x\u2028y', '"x\\Ly"'], ['\u2029', '"\\P"'], ['\ufeffx', '"\\ufeffx"'], ['\x07\x1b\x7f', '"\\a\\e\\x7f"'], ['\v\x01', '"\\v\\x01"'],
  ])('escapes %j as %s in YAML, never leaving a line break or BOM for a reader to fold or strip', (v, yaml) => {
    expect(written(v)).toBe(yaml)
    expect(parse(`k: ${yaml}`, {version: '1.1'}).k).toBe(v)
  })

  it('escapes as JSON in a flow mapping, so a JSON file stays JSON', () => {
    const src = '{"k": "kseal:v1:AAAA"}'
    const node = (parseDocument(src).contents as {items: {value: Scalar}[]}).items[0].value
    const v = '\x07\u2028\ufeff\x85'
    const text = valueEdit(src, node, v, '\n', true).text
    expect(text).toBe('"\\u0007\\u2028\\ufeff\\u0085"')
    expect(JSON.parse(text)).toBe(v)
  })
})
