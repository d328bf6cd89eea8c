/**
 * Key names that are also Object.prototype's (`__proto__`, `constructor`, `valueOf`, ...) are ordinary
 * Secret keys to Kubernetes, so they round-trip through every command: values are held in Maps and
 * null-prototype records, never in plain objects indexed by key. The controller's side is in
 * test/controller.test.ts (reconciler).
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {parse, parseAllDocuments} from 'yaml'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {cleanEnv, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {keyringFor, teamRecipient, testBackends} from './support/keys.js'

export const PROTO_NAMES = [
  '__proto__',
  'constructor',
  'valueOf',
  'toString',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
  'toLocaleString',
  'propertyIsEnumerable',
]
const backends = testBackends()
afterAll(() => backends.close())

const manifest = (data: [string, string][], strings: [string, string][]) =>
  'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n' +
  (data.length ? 'data:\n' + data.map(([k, v]) => `  ${k}: ${Buffer.from(v).toString('base64')}\n`).join('') : '') +
  (strings.length ? 'stringData:\n' + strings.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join('') : '')

/** A Secret's values as [key, text] pairs, read without a plain object (so `__proto__` stays a key). */
function pairs(yaml: string, kind = 'Secret'): [string, string][] {
  const doc = parseAllDocuments(yaml, {version: '1.1'})
    .map((d) => d.toJS({mapAsMap: true}) as Map<string, unknown>)
    .find((m) => m?.get?.('kind') === kind)!
  const out: [string, string][] = []
  for (const f of ['data', 'stringData', 'spec']) {
    const m = doc.get(f) as Map<string, string> | undefined
    if (!m) continue
    const src = f === 'spec' ? (m as unknown as Map<string, Map<string, string>>).get('encryptedData')! : m
    for (const [k, v] of src) out.push([k, f === 'data' ? Buffer.from(v, 'base64').toString() : v])
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

describe('object-property key names', () => {
  it('round-trip through encrypt and decrypt (property test over such names)', async () => {
    const recipient = await teamRecipient(backends)
    const keyring = keyringFor(backends)
    const name = fc.constantFrom(...PROTO_NAMES)
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(name, {minLength: 1}), fc.uniqueArray(name), fc.string({maxLength: 10}), async (d, s, v) => {
        const text = manifest(
          d.map((k) => [k, `d-${k}-${v}`]),
          s.map((k) => [k, `s-${k}-${v}`]),
        )
        const enc = await encryptText(text, 'p', {recipients: [recipient], scope: 'strict'})
        expect(await decryptText(enc, 'p', keyring)).toBe(text)
      }),
      {numRuns: 40},
    )
  })

  it('round-trip through every command: encrypt, decrypt, rotate, edit, textconv, krm, seal, --merge-into, unseal', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-keynames-'))
    const strings = PROTO_NAMES.map((k): [string, string] => [k, `v-${k}`])
    const text = manifest(
      [
        ['__proto__', 'bytes'],
        ['valueOf', 'b2'],
      ],
      strings,
    )
    const f = path.join(dir, 'db.yaml')
    writeFileSync(f, (await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: text})).stdout)
    expect((await kseal(['decrypt', '-k', TEAM_KEY, f])).stdout).toBe(text)
    expect((await kseal(['rotate', '-i', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`, '--data-key', f])).code).toBe(0)
    expect((await kseal(['decrypt', '-k', OTHER_KEY, f])).stdout).toBe(text)
    const ed = path.join(dir, 'ed.sh')
    writeFileSync(ed, '#!/bin/sh\nsed -i \'s/^  constructor: .*/  constructor: "edited"/\' "$1"\n', {mode: 0o755})
    const edited = await kseal(['edit', '-k', TEAM_KEY, f], {env: cleanEnv({EDITOR: ed})})
    expect(edited.code).toBe(0)
    const after = text.replace('constructor: "v-constructor"', 'constructor: "edited"')
    expect((await kseal(['decrypt', '-k', TEAM_KEY, f])).stdout).toBe(after)
    expect((await kseal(['textconv', '-k', TEAM_KEY, f])).stdout).toContain('  __proto__: "v-__proto__"\n')
    const rl =
      'apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n' +
      readFileSync(f, 'utf8')
        .replace(/^/gm, '  ')
        .replace(/^ {2}apiVersion/, '- apiVersion')
    const krm = await kseal(['krm'], {input: rl, env: cleanEnv({KSEAL_KEYS: TEAM_KEY})})
    expect(krm.code).toBe(0)
    expect(pairs(parse(krm.stdout).items ? JSON.stringify(parse(krm.stdout).items[0]) : '')).toEqual(pairs(after))

    const sealedFile = path.join(dir, 'db.sealed.yaml')
    writeFileSync(sealedFile, (await kseal(['seal', '--cert', OTHER_CERT], {input: text})).stdout)
    const merged = await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', sealedFile], {
      input: manifest(
        [],
        [
          ['valueOf', 'merged'],
          ['toString', 'merged2'],
        ],
      ),
    })
    expect(merged.code).toBe(0)
    const unsealed = await kseal(['unseal', '-k', OTHER_KEY, sealedFile])
    expect(unsealed.code).toBe(0)
    // stringData wins over data for a key in both, as in Kubernetes.
    const want = new Map<string, string>([...strings, ['valueOf', 'merged'], ['toString', 'merged2']])
    expect(pairs(unsealed.stdout)).toEqual([...want].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)))
    const json = await kseal(['unseal', '-k', OTHER_KEY, '-o', 'json', sealedFile])
    expect(json.stdout).toContain('"__proto__": "')
  })
})
