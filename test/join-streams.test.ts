/** joinStreams: several files' manifests as one YAML stream, a `---` between files that lack one. */
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {joinStreams} from '../src/manifest/objects.js'

/** The plain definition: append each part, ending the previous one with a newline and a separator when needed. */
function reference(parts: string[]): string {
  let out = ''
  parts.forEach((p, i) => {
    if (i > 0 && p.length) {
      if (!out.endsWith('\n')) out += '\n'
      if (!/^(\uFEFF)?---(\s|$)/.test(p)) out += '---\n'
    }
    out += p
  })
  return out
}

describe('joinStreams', () => {
  it('separates files with --- unless the next starts with one, and ends each file with a newline', () => {
    expect(joinStreams(['a: 1\n', 'b: 2'])).toBe('a: 1\n---\nb: 2')
    expect(joinStreams(['a: 1', '--- # doc\nb: 2\n'])).toBe('a: 1\n--- # doc\nb: 2\n')
    expect(joinStreams(['', 'b: 2\n'])).toBe('\n---\nb: 2\n')
    expect(joinStreams(['a: 1\n', '', '\uFEFF---\nc: 3\n'])).toBe('a: 1\n\uFEFF---\nc: 3\n')
  })

  it('is the plain definition for any parts', () => {
    const piece = fc.constantFrom('', '\n', '---', '--- ', '---x', '\uFEFF---\n', 'a: 1', 'b: 2\n', '#c\n', 'x')
    const part = fc.array(piece, {maxLength: 4}).map((xs) => xs.join(''))
    fc.assert(
      fc.property(fc.array(part, {maxLength: 8}), (parts) => expect(joinStreams(parts)).toBe(reference(parts))),
      {numRuns: 2000},
    )
  })
})
