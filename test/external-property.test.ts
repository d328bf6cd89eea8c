/**
 * `remoteRef.property` and the JSON reader behind it (src/external/property.ts): gjson's answers for
 * the paths users write, the refusals, and fast-check properties — every JSON text reads as
 * JSON.parse reads it, every other text is refused with JsonSyntaxError, nesting is bounded.
 */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {isKsealError} from '../src/core/errors.js'
import {JsonSyntaxError, lookupProperty, MAX_JSON_DEPTH, nodeString, parseJson, type JsonNode} from '../src/external/property.js'

const get = (json: string, property: string) => {
  const n = lookupProperty(parseJson(json), property)
  return n === undefined ? undefined : nodeString(n)
}

function plain(n: JsonNode): unknown {
  switch (n.type) {
    case 'object':
      return Object.fromEntries(n.entries.map(([k, v]) => [k, plain(v)]))
    case 'array':
      return n.items.map(plain)
    case 'string':
    case 'number':
      return n.value
    case 'null':
      return null
    default:
      return n.type === 'true'
  }
}

describe('properties as gjson reads them', () => {
  const doc =
    '{"a": {"b": "c", "n": 1.50, "i": -42, "big": 1e3, "t": true, "z": null, "obj": {"x" : [1, 2]}}, "a.b": "literal", "arr": [{"k": "v0"}, {"k": "v1"}], "w*": "star"}'

  it('keys, nested paths, array indexes and length, escaped dots; a literal dotted key wins', () => {
    expect(get(doc, 'a.b')).toBe('literal')
    expect(get(doc, 'a\\.b')).toBe('literal')
    expect(get(doc, 'a.obj.x.1')).toBe('2')
    expect(get(doc, 'arr.1.k')).toBe('v1')
    expect(get(doc, 'arr.#')).toBe('2')
    expect(get(doc, 'w\\*')).toBe('star')
    expect(get(doc, 'a.nope')).toBeUndefined()
    expect(get(doc, 'arr.9.k')).toBeUndefined()
  })

  it('values as Result.String(): strings unquoted, integers as written, other numbers shortest, null empty, objects raw', () => {
    expect([get(doc, 'a.n'), get(doc, 'a.i'), get(doc, 'a.big'), get(doc, 'a.t'), get(doc, 'a.z')]).toEqual([
      '1.5',
      '-42',
      '1000',
      'true',
      '',
    ])
    expect(get(doc, 'a.obj')).toBe('{"x" : [1, 2]}')
  })

  it('refuses the gjson features kseal does not implement, by name', () => {
    const refusal = (p: string) => {
      try {
        lookupProperty(parseJson(doc), p)
      } catch (e) {
        if (isKsealError(e)) return e.message
        throw e
      }
      throw new Error('expected a refusal')
    }
    expect(refusal('a.*')).toBe('property "a.*": wildcards (* and ?) are not supported; escape them with \\ to match them literally')
    expect(refusal('arr.#.k')).toBe('property "arr.#.k": mapping over an array (#.) is not supported; only a final # (the length)')
    expect(refusal('arr.#(k=="v1")')).toBe('property "arr.#(k==\\"v1\\")": queries (#(...)) are not supported')
    expect(refusal('@reverse')).toBe('property "@reverse": gjson modifiers and literals (@..., !...) are not supported')
    expect(refusal('a|b')).toBe('property "a|b": pipes (|) are not supported')
  })
})

describe('the JSON reader', () => {
  it('reads any JSON as JSON.parse does, keeping raw text', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = JSON.stringify(v, null, Math.random() < 0.5 ? 2 : undefined)
        const n = parseJson(text)
        expect(plain(n)).toEqual(JSON.parse(text))
        expect(n.raw).toBe(text.trim())
      }),
      {numRuns: 500},
    )
  })

  it('refuses anything else with JsonSyntaxError only, duplicate keys and deep nesting included', () => {
    fc.assert(
      fc.property(fc.string({maxLength: 60}), (s) => {
        try {
          parseJson(s)
        } catch (e) {
          if (!(e instanceof JsonSyntaxError)) throw e
        }
      }),
      {numRuns: 2000},
    )
    expect(() => parseJson('{"a": 1, "a": 2}')).toThrow('duplicate key in an object at offset 12')
    expect(() => parseJson('['.repeat(MAX_JSON_DEPTH + 2) + ']'.repeat(MAX_JSON_DEPTH + 2))).toThrow(
      `nested more than ${MAX_JSON_DEPTH} levels`,
    )
    expect(() => parseJson('['.repeat(1_000_000))).toThrow(JsonSyntaxError)
    expect(() => parseJson('{"a": 1} x')).toThrow('unexpected text after the JSON value')
  })
})
