/**
 * Writing values back in their original style: the plain-scalar rule must agree with kubectl's
 * reading (go-yaml v2, src/manifest/kubeyaml.ts), which test/kubectl-oracle.test.ts checks against kubectl.
 */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {parse, parseDocument, Scalar} from 'yaml'
import {valueEdit} from '../src/manifest/edits.js'
import {KUBE_YAML} from '../src/manifest/kubeyaml.js'

/** A value as kubectl reads it back from `k: <text>`. */
const kubectlReads = (text: string) => parse(`k: ${text}`, KUBE_YAML).k

/** The text valueEdit writes for a plain token node holding `value`. */
function written(value: string): string {
  const src = 'k: kseal:v1:AAAA\n'
  const node = (parseDocument(src).contents as {items: {value: Scalar}[]}).items[0].value
  return valueEdit(src, node, value, '\n', false).text
}

describe('valueEdit for plain scalars', () => {
  it.each([
    'yes',
    'No',
    'on',
    'y',
    'N',
    'null',
    '~',
    '0777',
    '0o755',
    '0x1F',
    '0b101',
    '0b-1',
    '1_000',
    '+12',
    '1e10',
    '.5',
    '.5_5',
    '.inf',
    '-.Inf',
    '<<',
    '-',
    '- x',
    'a: b',
    'x #y',
    '&a',
    '*a',
    '!t',
    '%x',
    '@x',
    '`x',
    "'q'",
    '"q"',
    '[x',
    '{x',
    '|',
    '>',
    '#x',
    ' lead',
    'trail ',
    '',
  ])('quotes %j, which kubectl would not read back as the same string', (v) => {
    const w = written(v)
    expect(w).toBe(JSON.stringify(v))
    expect(kubectlReads(w)).toBe(v)
  })

  it.each(['Zm9vYmFy', 'aGVsbG8=', 'abc+/==', 'plain text', '?x', '-x', ':x', 'a-b_c.d', 'ünï'])('keeps %j plain', (v) => {
    expect(written(v)).toBe(v)
  })

  // YAML 1.1 reads these as numbers or timestamps; kubectl reads each as this very string, so a value
  // that was plain before encryption is plain again after decryption.
  it.each(['12:30', '1:30', '12:30:45', '2026-11-28', '2026-11-28T10:00:00Z', '1e400', '0xFFFFFFFFFFFFFFFFFF', '._5', '0o8', '_1'])(
    'keeps %j plain: kubectl reads it as the same string',
    (v) => {
      expect(written(v)).toBe(v)
      expect(kubectlReads(v)).toBe(v)
    },
  )

  it('whatever it writes, kubectl reads back as the same string', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({maxLength: 20}), fc.string({unit: 'grapheme', maxLength: 20})), (v) => {
        expect(kubectlReads(written(v))).toBe(v)
      }),
      {numRuns: 2000},
    )
  })
})

describe('spelling that every reader agrees on', () => {
  it.each(['\u00a0', 'a\u00a0', '\u3000x', 'x\ty', 'x\u200by'])('keeps %j plain: YAML trims only space and tab', (v) => {
    expect(written(v)).toBe(v)
    expect(kubectlReads(v)).toBe(v)
  })

  it.each([
    ['\u0085', '"\\N"'],
    ['x\u2028y', '"x\\Ly"'],
    ['\u2029', '"\\P"'],
    ['\ufeffx', '"\\ufeffx"'],
    ['\x07\x1b\x7f', '"\\a\\e\\x7f"'],
    ['\v\x01', '"\\v\\x01"'],
  ])('escapes %j as %s in YAML, never leaving a line break or BOM for a reader to fold or strip', (v, yaml) => {
    expect(written(v)).toBe(yaml)
    expect(kubectlReads(yaml)).toBe(v)
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
