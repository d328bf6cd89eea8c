/** Strict JSON syntax (src/core/json.ts): exactly what JSON.parse accepts, with a reason and an offset for what it refuses. */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {jsonSyntaxError} from '../src/core/json.js'

const parses = (s: string) => {
  try {
    JSON.parse(s)
    return true
  } catch {
    return false
  }
}

describe('jsonSyntaxError', () => {
  it('accepts exactly what JSON.parse accepts (generated JSON-like text)', () => {
    const piece = fc.constantFrom(
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '"',
      '"a"',
      '"\\n"',
      '"\\u00e9"',
      '"\\x"',
      '\\',
      ' ',
      '\n',
      '\t',
      '\r',
      '\v',
      '0',
      '-1',
      '1.5',
      '1e3',
      '01',
      '.5',
      '1.',
      'true',
      'false',
      'null',
      'nul',
      "'a'",
      '//',
      '/*c*/',
      'a',
      '\u00a0',
      '\ufeff',
      '\x01',
      'é',
    )
    fc.assert(
      fc.property(
        fc.array(piece, {maxLength: 14}).map((a) => a.join('')),
        (s) => {
          expect({s, valid: jsonSyntaxError(s) === null}).toEqual({s, valid: parses(s)})
        },
      ),
      {numRuns: 5000},
    )
  })

  it('accepts every value JSON.stringify writes', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 2), (v, indent) => {
        expect(jsonSyntaxError(JSON.stringify(v, null, indent))).toBeNull()
      }),
      {numRuns: 500},
    )
  })

  it.each([
    ['{"a": 1,}', 8, 'a trailing comma (JSON allows none)'],
    ['[1, 2,\n]', 7, 'a trailing comma (JSON allows none)'],
    ['{"a": 1 // note\n}', 8, 'expected , or }'],
    ['{// note\n"a": 1}', 1, 'a comment (JSON has none)'],
    ["{'a': 1}", 1, 'a single-quoted string (JSON strings use double quotes)'],
    ['{a: 1}', 1, 'an unquoted key (JSON keys are double-quoted strings)'],
    ['{"a": 1} {"b": 2}', 9, 'more than one JSON value, or text after it'],
    ['{"a": "x\ny"}', 8, 'a line break in a string'],
    ['{"a": "\\q"}', 7, 'an invalid escape in a string'],
    ['{"a": 01}', 7, 'expected , or }'],
    ['{"a": "open', 6, 'a string that is never closed'],
    ['{"a": [1', 8, 'the text ends before a closing ]'],
  ])('%j: at %d, %s', (text, offset, reason) => {
    expect(jsonSyntaxError(text)).toEqual({offset, reason})
  })

  it('nesting as deep as you like does not exhaust the stack', () => {
    expect(jsonSyntaxError('['.repeat(1_000_000) + ']'.repeat(1_000_000))).toBeNull()
  })
})
