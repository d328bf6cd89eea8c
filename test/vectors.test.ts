/**
 * Frozen vectors: files and primitives written by kseal format v1 that must keep decrypting, byte
 * for byte, so no later change can silently break what users have committed. Never regenerate
 * them; add new ones for a new format version.
 */
import crypto from 'node:crypto'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {afterAll, describe, expect, it} from '@jest/globals'
import {computeMac, decryptValue, deriveKeys, type Slot} from '../src/envelope.js'
import {decryptText} from '../src/transform.js'
import {inspectText} from '../src/inspect.js'
import {FIXTURES, OTHER_KEY, TEAM_KEY} from './support/cli.js'
import {keyringFor, testBackends} from './support/keys.js'

const VECTORS = path.join(FIXTURES, 'vectors')
const read = (f: string) => readFileSync(f, 'utf8')
const backends = testBackends()
afterAll(() => backends.close())

describe('format v1 primitives', () => {
  const v = JSON.parse(read(path.join(VECTORS, 'v1-primitives.json')))
  const keys = deriveKeys(Buffer.from(v.dataKey, 'hex'), 1)

  it('derives the same subkeys (HKDF-SHA256)', () => {
    expect(keys.enc.toString('hex')).toBe(v.encKey)
    expect(keys.mac.toString('hex')).toBe(v.macKey)
    // The derivation is the documented one, reproduced independently here.
    const hkdf = (info: string) => Buffer.from(crypto.hkdfSync('sha256', Buffer.from(v.dataKey, 'hex'), Buffer.alloc(0), info, 32)).toString('hex')
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
    const dk = crypto.privateDecrypt({key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label}, Buffer.from(entry.wrapped, 'base64'))
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
    expect(inspectText(text, 'x')[0]).toMatchObject({scope: 'namespace', version: 1, recipients: [{backend: 'rsa', kid: 'd5326737ee564566'}, {backend: 'rsa', kid: '886d5b01b46231a8'}]})
  })
})
