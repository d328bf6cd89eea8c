/**
 * Round trips over a corpus of realistic manifests: encrypt changes only Secret values (and adds the
 * envelope), re-encrypting is a no-op, and decrypt gives back the original byte for byte.
 */
import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {parseManifests} from '../src/manifest/parse.js'
import {FIXTURES} from './support/cli.js'
import {keyringFor, teamRecipient, testBackends} from './support/keys.js'
import {tool} from './support/tools.js'

const backends = testBackends()
const keyring = keyringFor(backends)
afterAll(() => backends.close())

async function encrypt(text: string, file = 'x.yaml') {
  return encryptText(text, file, {recipients: [await teamRecipient(backends)], scope: 'strict'})
}

const corpusDir = path.join(FIXTURES, 'corpus')
const corpus = readdirSync(corpusDir).sort()

/** Every string value of every Secret, as plaintext — none may survive encryption. */
function secretPlaintexts(text: string): string[] {
  const out: string[] = []
  let skeleton = text
  for (const s of parseManifests(text).secrets) {
    for (const v of s.values) {
      if (v.value === null || !v.node) continue
      skeleton = skeleton.replace(text.slice(v.node.range![0], v.node.range![1]), '')
      out.push(v.field === 'data' ? Buffer.from(v.value, 'base64').toString('latin1') : v.value)
      out.push(v.value)
    }
  }
  // Only values that appear nowhere else in the file (a username may also be a namespace).
  return out.filter((p) => p.trim().length >= 6 && !skeleton.includes(p))
}

describe('round trip over the corpus', () => {
  it.each(corpus)('%s', async (name) => {
    const original = readFileSync(path.join(corpusDir, name), 'utf8')
    const encrypted = await encrypt(original, name)
    const hasValues = parseManifests(original).secrets.some((s) => s.values.some((v) => v.value !== null))
    if (hasValues) expect(encrypted).not.toEqual(original)
    for (const p of secretPlaintexts(original)) expect(encrypted).not.toContain(p)
    // Output is still valid YAML (JSON stays JSON, behind its byte-order mark) with the same
    // documents, and every Secret with values holds its envelope.
    if (name.endsWith('.json')) expect(() => JSON.parse(encrypted.replace(/^\uFEFF/, ''))).not.toThrow()
    expect(parseAllDocuments(encrypted).length).toBe(parseAllDocuments(original).length)
    for (const s of parseManifests(encrypted).secrets)
      expect({secret: s.where.secret, envelope: Boolean(s.envelopePair)}).toEqual({secret: s.where.secret, envelope: s.values.length > 0})
    // Re-encrypting an encrypted file changes nothing.
    expect(await encrypt(encrypted, name)).toBe(encrypted)
    // Decrypting gives the original back, byte for byte.
    expect(await decryptText(encrypted, name, keyring)).toBe(original)
  })

  it('leaves non-Secret documents byte for byte', async () => {
    const original = readFileSync(path.join(corpusDir, 'app-stack.yaml'), 'utf8')
    const encrypted = await encrypt(original)
    const deployment = original.slice(
      original.indexOf('apiVersion: apps/v1'),
      original.indexOf('---', original.indexOf('apiVersion: apps/v1')),
    )
    const configMap = original.slice(original.indexOf('kind: ConfigMap') - 'apiVersion: v1\n'.length)
    expect(encrypted).toContain(deployment)
    expect(encrypted.endsWith(configMap)).toBe(true)
    // Comments and key names stay readable for review.
    for (const line of [
      '# The database credentials.',
      'name: payments-db   # keep in sync with the Deployment',
      '  # username is base64 of "payments"',
      '  DATABASE_URL: "kseal:v2:',
      "  'api-key': 'kseal:v2:",
      '# end of the Secret',
    ]) {
      expect(encrypted).toContain(line)
    }
  })

  it('keeps CRLF line ends and a byte-order mark', async () => {
    const original = '\uFEFF' + readFileSync(path.join(corpusDir, 'app-stack.yaml'), 'utf8').replace(/\n/g, '\r\n')
    const encrypted = await encrypt(original)
    expect(encrypted.startsWith('\uFEFF')).toBe(true)
    expect(encrypted.replace(/\r\n/g, '')).not.toContain('\n')
    expect(await decryptText(encrypted, 'crlf.yaml', keyring)).toBe(original)
  })

  tool('kubectl').it('kubectl reads what encrypt wrote behind a byte-order mark: the envelope belongs to the Secret', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-bom-'))
    try {
      for (const name of ['bom-first-key.yaml', 'bom-compact.json', 'bom-pretty.json']) {
        const file = path.join(dir, name)
        writeFileSync(file, await encrypt(readFileSync(path.join(corpusDir, name), 'utf8'), name))
        const r = spawnSync('kubectl', ['label', '--local', '-f', file, 'checked=yes', '-o', 'json'], {encoding: 'utf8'})
        expect({name, stderr: r.stderr, status: r.status}).toEqual({name, stderr: '', status: 0})
        const obj = JSON.parse(r.stdout)
        expect({name, version: obj.kseal?.version}).toEqual({name, version: 2})
        expect(Object.values({...obj.data, ...obj.stringData})).toEqual([expect.stringMatching(/^kseal:v2:/)])
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('handles a 1 MiB value', async () => {
    const big = crypto.randomBytes(1024 * 1024).toString('base64')
    const original = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\n  namespace: default\ndata:\n  blob: ${big}\n`
    const encrypted = await encrypt(original)
    expect(encrypted).not.toContain(big.slice(0, 64))
    expect(await decryptText(encrypted, 'big.yaml', keyring)).toBe(original)
  })

  it('round-trips a Secret without a namespace under each scope', async () => {
    const original = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: nn\nstringData:\n  a: b\n'
    for (const scope of ['strict', 'namespace', 'cluster'] as const) {
      const enc = await encryptText(original, 'x', {recipients: [await teamRecipient(backends)], scope})
      expect(enc).toContain(`scope: "${scope}"`)
      expect(await decryptText(enc, 'x', keyring)).toBe(original)
    }
  })

  it('writes a flow-mapping envelope for JSON and keeps it valid JSON', async () => {
    const original = readFileSync(path.join(corpusDir, 'secret.json'), 'utf8')
    const enc = JSON.parse(await encrypt(original))
    expect(enc.kseal.version).toBe(2)
    expect(enc.kseal.recipients[0]).toMatchObject({backend: 'rsa', kid: 'd5326737ee564566'})
    expect(enc.data.password).toMatch(/^kseal:v2:/)
  })

  it('gives unchanged values the same ciphertext when values are added later', async () => {
    const original = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: nn\n  namespace: d\nstringData:\n  a: first\n'
    const enc = await encrypt(original)
    const added = enc.replace('stringData:\n', 'stringData:\n  b: second\n')
    const again = await encryptText(added, 'x', {recipients: [await teamRecipient(backends)], scope: 'strict', keyring})
    const tokenA = /  a: (kseal:v2:\S+)/.exec(enc)![1]
    expect(again).toContain(`  a: ${tokenA}`)
    expect(again).toMatch(/  b: kseal:v2:/)
    expect(await decryptText(again, 'x', keyring)).toBe(original.replace('stringData:\n', 'stringData:\n  b: second\n'))
  })

  describe('block scalars and unusual characters (found by the property tests)', () => {
    const secret = (body: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n${body}`

    it.each([
      ['a whitespace-only keep block', '  a: |+\n    \n', '  a: |+\n\n'],
      ['an empty block under a nested key', '  a: |\n', '  a: |\n'],
      ['a block with an explicit indent and a leading space', '  a: |2-\n     leading space\n', '  a: |2-\n     leading space\n'],
    ])('%s encrypts to valid YAML and decrypts to the same value', async (_, body, back) => {
      const text = secret(body)
      const enc = await encrypt(text)
      const value = parse(text, {version: '1.1'}).stringData.a
      expect(parse(enc, {version: '1.1'}).stringData.a).toMatch(/^kseal:v2:/)
      const dec = await decryptText(enc, 'x', keyring)
      expect(dec).toBe(secret(back))
      expect(parse(dec, {version: '1.1'}).stringData.a).toBe(value)
    })

    it('an empty keep block in a Secret inside a List goes deeper than its key', async () => {
      const text =
        'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: l}\n    stringData:\n      a: |+\n        \n'
      const enc = await encrypt(text)
      expect(enc).toMatch(/\n      a: \|\+\n        kseal:v2:/)
      expect(await decryptText(enc, 'x', keyring)).toBe(text.replace(/ +\n$/, '\n'))
    })

    it('keeps a leading U+FEFF in a value (it is not a byte-order mark there)', async () => {
      const text = secret('  a: "\\ufeffx"\n')
      const dec = await decryptText(await encrypt(text), 'x', keyring)
      expect(parse(dec, {version: '1.1'}).stringData.a).toBe('\ufeffx')
    })

    it('a block holding a character kseal must escape comes back double-quoted, with its line end', async () => {
      const text = secret('  a: |-\n    x\n    \ufeff\n  b: next\n')
      const dec = await decryptText(await encrypt(text), 'x', keyring)
      expect(dec).toBe(secret('  a: "x\\n\\ufeff"\n  b: next\n'))
    })

    it('refuses a stringData lone surrogate, which UTF-8 cannot carry, instead of changing it', async () => {
      await expect(encrypt(secret('  a: "x\\ud800"\n'))).rejects.toMatchObject({exitCode: 2, line: expect.stringContaining('stringData.a')})
    })
  })
})
