/**
 * Frozen vectors: files and primitives written by kseal formats 1 and 2 that must keep decrypting,
 * byte for byte, so no later change can silently break what users have committed. Never regenerate
 * them; add new ones for a new format version.
 */
import crypto from 'node:crypto'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {afterAll, describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {
  canonicalRecipients,
  computeMac,
  decryptValue,
  deriveKeys,
  hkdfExpand32,
  hkdfExtract,
  parseEnvelope,
  type Slot,
} from '../src/envelope/envelope.js'
import {bindingLabel, encryptionContext} from '../src/envelope/binding.js'
import {decryptText} from '../src/ops/decrypt.js'
import {inspectText} from '../src/ops/inspect.js'
import {FIXTURES, OTHER_KEY, TEAM_KEY} from './support/cli.js'
import {keyringFor, testBackends} from './support/keys.js'

const VECTORS = path.join(FIXTURES, 'vectors')
const read = (f: string) => readFileSync(f, 'utf8')
const backends = testBackends()
afterAll(() => backends.close())

describe('HKDF as two HMACs', () => {
  it('gives the bytes of crypto.hkdfSync (SHA-256, empty salt, 32 bytes) for any key and info', () => {
    fc.assert(
      fc.property(fc.uint8Array({minLength: 0, maxLength: 64}), fc.string({maxLength: 40}), (ikm, info) => {
        const want = Buffer.from(crypto.hkdfSync('sha256', ikm, Buffer.alloc(0), info, 32))
        expect(hkdfExpand32(hkdfExtract(ikm), info).equals(want)).toBe(true)
      }),
      {numRuns: 300},
    )
  })
})

describe('format v1 primitives', () => {
  const v = JSON.parse(read(path.join(VECTORS, 'v1-primitives.json')))
  const keys = deriveKeys(Buffer.from(v.dataKey, 'hex'), 1)

  it('derives the same subkeys (HKDF-SHA256)', () => {
    expect(keys.enc.toString('hex')).toBe(v.encKey)
    expect(keys.mac.toString('hex')).toBe(v.macKey)
    // The derivation is the documented one, reproduced independently here.
    const hkdf = (info: string) =>
      Buffer.from(crypto.hkdfSync('sha256', Buffer.from(v.dataKey, 'hex'), Buffer.alloc(0), info, 32)).toString('hex')
    expect(hkdf('kseal/v1 values')).toBe(v.encKey)
    expect(hkdf('kseal/v1 mac')).toBe(v.macKey)
  })

  it('decrypts each frozen token with its binding', () => {
    for (const s of v.slots.filter((x: Slot) => x.token)) {
      expect(decryptValue(keys, v.binding, s.field, s.key, s.token).toString('base64')).toBe(s.plaintext)
    }
  })

  it('computes the same MAC, independent of slot order', () => {
    expect(computeMac(keys, v.binding, v.slots, [])).toBe(v.mac)
    expect(computeMac(keys, v.binding, [...v.slots].reverse(), [])).toBe(v.mac)
  })

  it('the token layout is nonce(12) ‖ ciphertext ‖ tag(16), AES-256-GCM with the documented AAD', () => {
    const s = v.slots[0]
    const raw = Buffer.from(s.token.slice('kseal:v1:'.length), 'base64url')
    const d = crypto.createDecipheriv('aes-256-gcm', keys.enc, raw.subarray(0, 12))
    d.setAAD(Buffer.from(JSON.stringify(['kseal/v1 value', 'strict', 'prod', 'db', s.field, s.key])))
    d.setAuthTag(raw.subarray(raw.length - 16))
    expect(Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('base64')).toBe(s.plaintext)
  })
})

describe('format v1 files', () => {
  const files: [string, string, string[]][] = [
    ['v1-app-stack.yaml', 'corpus/app-stack.yaml', [TEAM_KEY]],
    ['v1-secret.json', 'corpus/secret.json', [TEAM_KEY]],
    ['v1-list.yaml', 'corpus/list.yaml', [TEAM_KEY]],
    ['v1-namespace-two-recipients-tls.yaml', 'corpus/tls.yaml', [OTHER_KEY]],
    ['v1-cluster-dockerconfig.yaml', 'corpus/dockerconfig.yaml', [OTHER_KEY]],
  ]
  it.each(files)('%s decrypts to %s', async (vector, plain, keys) => {
    const out = await decryptText(read(path.join(VECTORS, vector)), vector, keyringFor(backends, keys))
    expect(out).toBe(read(path.join(FIXTURES, plain)))
  })

  it('the rsa recipient entry is RSA-OAEP-SHA256 with the documented label and key id', () => {
    const doc = JSON.parse(read(path.join(VECTORS, 'v1-secret.json')))
    const entry = doc.kseal.recipients[0]
    const key = crypto.createPrivateKey(read(TEAM_KEY))
    const spki = crypto.createPublicKey(key).export({type: 'spki', format: 'der'})
    expect(entry.kid).toBe(crypto.createHash('sha256').update(spki).digest('hex').slice(0, 16))
    const label = Buffer.from(JSON.stringify(['kseal/v1 data key', 'strict', 'default', 'json-secret']))
    const dk = crypto.privateDecrypt(
      {key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label},
      Buffer.from(entry.wrapped, 'base64'),
    )
    expect(dk).toHaveLength(32)
    // The MAC in the file is the documented HMAC over the sorted slots.
    const keys = deriveKeys(dk, 1)
    const slots: Slot[] = [
      {field: 'data', key: 'password', token: doc.data.password},
      {field: 'data', key: 'empty', token: doc.data.empty},
      {field: 'stringData', key: 'note', token: doc.stringData.note},
    ]
    expect(computeMac(keys, {scope: 'strict', namespace: 'default', name: 'json-secret'}, slots, doc.kseal.recipients)).toBe(doc.kseal.mac)
  })

  it('the two-recipient vector opens with either key', async () => {
    const text = read(path.join(VECTORS, 'v1-namespace-two-recipients-tls.yaml'))
    expect(await decryptText(text, 'x', keyringFor(backends, [TEAM_KEY]))).toBe(read(path.join(FIXTURES, 'corpus/tls.yaml')))
    expect(inspectText(text, 'x')[0]).toMatchObject({
      scope: 'namespace',
      version: 1,
      recipients: [
        {backend: 'rsa', kid: 'd5326737ee564566'},
        {backend: 'rsa', kid: '886d5b01b46231a8'},
      ],
    })
  })
})

describe('format 2 primitives (computed independently from docs/FORMAT.md)', () => {
  const v = JSON.parse(read(path.join(VECTORS, 'v2-primitives.json')))
  const keys = deriveKeys(Buffer.from(v.dataKey, 'hex'), 2)

  it("derives the subkeys with format 2's own HKDF info strings", () => {
    expect(keys.enc.toString('hex')).toBe(v.encKey)
    expect(keys.mac.toString('hex')).toBe(v.macKey)
    expect(deriveKeys(Buffer.from(v.dataKey, 'hex'), 1).enc.toString('hex')).not.toBe(v.encKey)
  })

  it('decrypts each frozen token bound to an open namespace (null) and its name', () => {
    expect(v.binding).toEqual({format: 2, scope: 'strict', namespace: null, name: 'db'})
    for (const s of v.slots.filter((x: Slot) => x.token)) {
      expect(decryptValue(keys, v.binding, s.field, s.key, s.token).toString('base64')).toBe(s.plaintext)
    }
    // The same token under a bound namespace, or as format 1, does not open.
    const s = v.slots[0]
    expect(() => decryptValue(keys, {...v.binding, namespace: 'prod'}, s.field, s.key, s.token)).toThrow(/cannot decrypt/)
    expect(() =>
      decryptValue(deriveKeys(Buffer.from(v.dataKey, 'hex'), 1), {scope: 'strict', namespace: '', name: 'db'}, s.field, s.key, s.token),
    ).toThrow(/format 2 token in a format 1 envelope/)
  })

  it('computes the same MAC over slots and recipients, whatever their order; any recipient change changes it', () => {
    expect(computeMac(keys, v.binding, v.slots, v.recipients)).toBe(v.mac)
    expect(computeMac(keys, v.binding, [...v.slots].reverse(), [...v.recipients].reverse())).toBe(v.mac)
    expect(computeMac(keys, v.binding, v.slots, v.recipients.slice(1))).not.toBe(v.mac)
    expect(computeMac(keys, v.binding, v.slots, [...v.recipients, v.recipients[0]])).not.toBe(v.mac)
    expect(computeMac(keys, v.binding, v.slots, [{...v.recipients[1], key: v.recipients[0].kid}, v.recipients[0]])).not.toBe(v.mac)
    expect(computeMac(keys, v.binding, v.slots, [{...v.recipients[0], extra: 'x'}, v.recipients[1]])).not.toBe(v.mac)
    expect(canonicalRecipients(v.recipients)[0]).toEqual([
      ['backend', 'awskms'],
      ['key', v.recipients[1].key],
      ['kid', v.recipients[1].kid],
      ['wrapped', v.recipients[1].wrapped],
    ])
  })

  it('binds wrapped keys to the documented label and EncryptionContext', () => {
    expect(bindingLabel(v.binding).toString()).toBe(v.bindingLabel)
    expect(encryptionContext(v.binding)).toEqual({'kseal:format': '2', 'kseal:scope': 'strict', 'kseal:name': 'db'})
  })
})

describe('format 2 files', () => {
  const files: [string, string, string[]][] = [
    ['v2-app-stack.yaml', 'corpus/app-stack.yaml', [TEAM_KEY]],
    ['v2-secret.json', 'corpus/secret.json', [TEAM_KEY]],
    ['v2-list.yaml', 'corpus/list.yaml', [TEAM_KEY]],
    ['v2-namespace-two-recipients-tls.yaml', 'corpus/tls.yaml', [OTHER_KEY]],
    ['v2-cluster-dockerconfig.yaml', 'corpus/dockerconfig.yaml', [OTHER_KEY]],
    ['v2-open-namespace.yaml', 'corpus/no-namespace.yaml', [TEAM_KEY]],
  ]
  it.each(files)('%s decrypts to %s', async (vector, plain, keys) => {
    const out = await decryptText(read(path.join(VECTORS, vector)), vector, keyringFor(backends, keys))
    expect(out).toBe(read(path.join(FIXTURES, plain)))
  })

  it('the rsa entry is RSA-OAEP-SHA256 with the format 2 label; the MAC covers the entry and the identity', () => {
    const doc = JSON.parse(read(path.join(VECTORS, 'v2-secret.json')))
    expect(doc.kseal).toMatchObject({version: 2, scope: 'strict', namespace: 'default', name: 'json-secret'})
    const entry = doc.kseal.recipients[0]
    const key = crypto.createPrivateKey(read(TEAM_KEY))
    const label = Buffer.from(JSON.stringify(['kseal/v2 data key', 'strict', 'default', 'json-secret']))
    const dk = crypto.privateDecrypt(
      {key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label},
      Buffer.from(entry.wrapped, 'base64'),
    )
    const keys = deriveKeys(dk, 2)
    const slots: Slot[] = [
      {field: 'data', key: 'password', token: doc.data.password},
      {field: 'data', key: 'empty', token: doc.data.empty},
      {field: 'stringData', key: 'note', token: doc.stringData.note},
    ]
    const b = {format: 2 as const, scope: 'strict' as const, namespace: 'default', name: 'json-secret'}
    expect(computeMac(keys, b, slots, doc.kseal.recipients)).toBe(doc.kseal.mac)
    expect(computeMac(keys, b, slots, [])).not.toBe(doc.kseal.mac)
  })

  it('an open namespace is recorded as openNamespace: true, and the Secret decrypts in any namespace', async () => {
    const text = read(path.join(VECTORS, 'v2-open-namespace.yaml'))
    expect(parseEnvelope((await import('yaml')).parse(text).kseal)).toMatchObject({
      version: 2,
      encryptedAs: {namespace: null, name: 'app-db'},
    })
    const moved = text.replace('  name: app-db\n', '  name: app-db\n  namespace: prod\n')
    expect(await decryptText(moved, 'x', keyringFor(backends, [TEAM_KEY]))).toBe(
      read(path.join(FIXTURES, 'corpus/no-namespace.yaml')).replace('  name: app-db\n', '  name: app-db\n  namespace: prod\n'),
    )
    expect(inspectText(moved, 'x')[0]).toMatchObject({
      namespace: 'prod',
      encryptedAs: {namespace: null, name: 'app-db', shown: 'app-db (in any namespace)'},
    })
    await expect(
      decryptText(moved.replace('  name: app-db\n', '  name: prod-app-db\n'), 'x', keyringFor(backends, [TEAM_KEY])),
    ).rejects.toMatchObject({
      code: 'ERR_DECRYPT',
      message: expect.stringMatching(/^encrypted as app-db \(in any namespace\), now prod\/prod-app-db: /),
    })
  })
})
