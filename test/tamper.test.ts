/**
 * The tamper matrix: every way of altering an encrypted file that the envelope must catch. Each
 * case gives exit 3, one clear line naming the file and document, and no output at all.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {kseal, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './support/cli.js'

const PLAIN = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  alpha: YWxwaGEtc2VjcmV0
  beta: YmV0YS1zZWNyZXQ=
stringData:
  gamma: gamma-secret
---
apiVersion: v1
kind: Secret
metadata:
  name: cache
  namespace: prod
data:
  alpha: b3RoZXItYWxwaGE=
`

let dir: string
let enc: string

const token = (doc: number, key: string) => {
  const d = enc.split('---\n')[doc]
  return new RegExp(`\\n  ${key}: (kseal:v1:[A-Za-z0-9_-]+)`).exec(d)![1]
}
/** Applies a change to the first document only. */
const inFirst = (f: (d: string) => string) => (e: string) => {
  const [a, ...rest] = e.split('---\n')
  return [f(a), ...rest].join('---\n')
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-tamper-'))
  const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  enc = r.stdout
})

const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1)

const cases: [string, () => (e: string) => string, RegExp][] = [
  ['a flipped ciphertext byte', () => (e) => e.replace(token(0, 'alpha'), flip(token(0, 'alpha'), 30)), /data\.alpha: cannot decrypt/],
  ['two values swapped', () => inFirst((d) => d.replace(token(0, 'alpha'), 'X').replace(token(0, 'beta'), token(0, 'alpha')).replace('X', token(0, 'beta'))), /data\.(alpha|beta): cannot decrypt/],
  ['a value moved to another key', () => inFirst((d) => d.replace(`  alpha: ${token(0, 'alpha')}\n`, '').replace(token(0, 'beta'), token(0, 'alpha'))), /data\.beta: cannot decrypt/],
  ['a key renamed', () => inFirst((d) => d.replace('  alpha: kseal', '  alpha2: kseal')), /data\.alpha2: cannot decrypt/],
  ['a key removed', () => inFirst((d) => d.replace(`  beta: ${token(0, 'beta')}\n`, '')), /integrity check failed/],
  ['a key added (copied token)', () => inFirst((d) => d.replace('\ndata:\n', `\ndata:\n  delta: ${token(0, 'alpha')}\n`)), /data\.delta: cannot decrypt/],
  ['a plaintext key added', () => inFirst((d) => d.replace('\ndata:\n', '\ndata:\n  delta: ZGVsdGE=\n')), /data\.delta: is not encrypted/],
  ['a value copied from another Secret', () => inFirst((d) => d.replace(token(0, 'alpha'), token(1, 'alpha'))), /data\.alpha: cannot decrypt/],
  ['the namespace changed (strict scope)', () => inFirst((d) => d.replace('namespace: prod', 'namespace: staging')), /cannot decrypt the data key/],
  ['the name changed (strict scope)', () => inFirst((d) => d.replace('name: db', 'name: db2')), /cannot decrypt the data key/],
  ['the scope changed', () => inFirst((d) => d.replace('scope: "strict"', 'scope: "cluster"')), /cannot decrypt the data key/],
  ['the recipient entry altered', () => inFirst((d) => d.replace(/wrapped: "(.)/, (_m, c) => `wrapped: "${c === 'A' ? 'B' : 'A'}`)), /cannot decrypt the data key/],
  ['the recipient key id altered', () => inFirst((d) => d.replace(/kid: "[0-9a-f]{4}/, 'kid: "0000')), /no key for this Secret/],
  ['the recipient entry removed', () => inFirst((d) => d.replace(/  recipients:\n(    .*\n)+/, '  recipients: []\n')), /malformed kseal envelope: no recipients/],
  ['the MAC altered', () => inFirst((d) => d.replace(/mac: "(.)/, (_m, c) => `mac: "${c === 'A' ? 'B' : 'A'}`)), /integrity check failed/],
  ['a truncated value', () => (e) => e.replace(token(0, 'gamma'), token(0, 'gamma').slice(0, 20)), /stringData\.gamma: (cannot decrypt|encrypted value is truncated)/],
  ['an unknown format version', () => inFirst((d) => d.replace('version: 1', 'version: 2')), /unsupported kseal format version 2/],
  ['the envelope removed', () => inFirst((d) => d.replace(/kseal:\n(  .*\n)+/, '')), /encrypted values but no kseal envelope/],
]

describe('tamper matrix (kseal decrypt)', () => {
  it.each(cases)('%s → exit 3, one line, no output', async (_name, make, message) => {
    const tampered = make()(enc)
    expect(tampered).not.toBe(enc)
    const file = path.join(dir, 'secret.yaml')
    writeFileSync(file, tampered)
    const r = await kseal(['decrypt', '-k', TEAM_KEY, file])
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^kseal: ${file}: document 1 \\(Secret \\w+/\\w+\\): `))
    expect(lines[0]).toMatch(message)
    // In place: the file is left exactly as it was.
    const inPlace = await kseal(['decrypt', '-i', '-k', TEAM_KEY, file])
    expect(inPlace.code).toBe(3)
    expect(readFileSync(file, 'utf8')).toBe(tampered)
  })

  it('a wrong key → exit 3, names the recipient it needs', async () => {
    const r = await kseal(['decrypt', '-k', OTHER_KEY], {input: enc})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/\(stdin\): document 1 \(Secret prod\/db\): no key for this Secret: it is encrypted for rsa:d5326737ee564566/)
  })

  it('the untampered file decrypts', async () => {
    const r = await kseal(['decrypt', '-k', TEAM_KEY], {input: enc})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(PLAIN)
  })
})
