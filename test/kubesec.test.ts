/**
 * Reading kubesec files. kubesec ships no decryptable fixtures, so the ones in
 * test/fixtures/kubesec were BUILT — not captured — by test/support/kubesec.ts, an encrypter
 * written from kubesec's source, with the sops project's PGP test keys through the real gpg
 * (regenerate: KSEAL_REGENERATE_VECTORS=1 npm test -- test/kubesec.test.ts). AWS KMS entries are
 * built at test time against the local KMS server with the SDK directly; GCP KMS entries with a
 * stand-in "Cloud KMS" (AES-GCM under a test key) that the test plugs in as the unwrap.
 */
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {EncryptCommand, KMSClient} from '@aws-sdk/client-kms'
import {parse} from 'yaml'
import {Backends} from '../keys/index.js'
import {decryptedKubesecText, looksLikeKubesec, openKubesec, parseKubesec} from '../src/formats/kubesec/index.js'
import {macKeyOrder} from '../src/formats/kubesec/format.js'
import {type GcpKmsUnwrap, SopsMasterKeys} from '../src/formats/sops/index.js'
import {FIXTURES} from './support/cli.js'
import {type GpgHome, gpgHome, SOPS_KEY_1, SOPS_KEY_2} from './support/gpg.js'
import {type CreatedKey, type KmsServerHandle, startKmsServer} from './support/kms-server.js'
import {type GenKey, kubesecEncrypt, secretV3, secretV4} from './support/kubesec.js'
import {failure} from './support/failure.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const DIR = path.join(FIXTURES, 'kubesec')
const V3 = path.join(DIR, 'secret-v3.kubesec.yaml')
const V4 = path.join(DIR, 'secret-v4.kubesec.yaml')
const ACCESS_KEY = 'AKIAKSEALKUBESEC0001'
const SECRET_KEY = 'kseal-kubesec-test-secret-key'

let tmp: string
let home: GpgHome | undefined
let kms: KmsServerHandle
let kmsKey: CreatedKey

const env = (extra: Record<string, string | undefined> = {}) => ({
  PATH: process.env.PATH,
  HOME: tmp,
  ...(home ? {GNUPGHOME: home.dir} : {}),
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: SECRET_KEY,
  AWS_ENDPOINT_URL_KMS: kms.url,
  ...extra,
})

async function decrypt(text: string, opts: {env?: Record<string, string | undefined>; gcpKms?: GcpKmsUnwrap} = {}): Promise<string> {
  const b = new Backends({env: opts.env ?? env(), cwd: tmp, now: () => new Date()})
  const keys = new SopsMasterKeys(b, {gcpKms: opts.gcpKms})
  try {
    return decryptedKubesecText(await openKubesec(parseKubesec(text, 'secret.yaml'), keys))
  } finally {
    await keys.close()
    await b.close()
  }
}

/** gpg --sign --armor --encrypt, as kubesec's EncryptAndSign runs it (signed by the first secret key). */
const pgpKey = (h: GpgHome, fp: string, sign = true): GenKey => ({
  type: 'pgp',
  id: fp,
  wrap: (dek) => h.gpg(['--trust-model', 'always', ...(sign ? ['--sign'] : []), '-a', '-e', '-r', fp], dek),
})

/** A stand-in for Cloud KMS: AES-256-GCM under a test key, the resource id as additional data. */
const GCP_KEY = crypto.randomBytes(32)
const GCP_ID = 'projects/kseal-test/locations/global/keyRings/ring/cryptoKeys/kubesec'
const gcpWrap = (dek: Buffer): Buffer => {
  const iv = crypto.randomBytes(12)
  const c = crypto.createCipheriv('aes-256-gcm', GCP_KEY, iv).setAAD(Buffer.from(GCP_ID))
  return Buffer.concat([iv, c.update(dek), c.final(), c.getAuthTag()])
}
const gcpUnwrap: GcpKmsUnwrap = async (id, blob) => {
  const d = crypto.createDecipheriv('aes-256-gcm', GCP_KEY, blob.subarray(0, 12)).setAAD(Buffer.from(id))
  d.setAuthTag(blob.subarray(blob.length - 16))
  return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()])
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-kubesec-'))
  kms = await startKmsServer({credentials: {[ACCESS_KEY]: SECRET_KEY}})
  kmsKey = kms.createKey({alias: 'kubesec'})
  if (gpgTool.present) home = gpgHome()
  if (home && process.env.KSEAL_REGENERATE_VECTORS) {
    writeFileSync(V3, kubesecEncrypt(secretV3, crypto.randomBytes(32), [pgpKey(home, SOPS_KEY_1)]))
    writeFileSync(V4, kubesecEncrypt(secretV4, crypto.randomBytes(32), [pgpKey(home, SOPS_KEY_1), pgpKey(home, SOPS_KEY_2)]))
  }
})

afterAll(async () => {
  await kms?.close()
  home?.close()
})

describe('kubesec footers and MAC order', () => {
  it("orders keys as kubesec's sort.Sort with its non-strict Less does", () => {
    const k = (type: 'pgp' | 'gcp' | 'aws', id: string) => ({type, id, dek: Buffer.alloc(0)})
    // Same-type keys are never reordered; a later key of a lower type and lower id moves ahead.
    expect(macKeyOrder([k('pgp', 'B'), k('pgp', 'A')]).map((x) => x.id)).toEqual(['B', 'A'])
    expect(macKeyOrder([k('aws', 'b'), k('pgp', 'a')]).map((x) => x.id)).toEqual(['a', 'b'])
    expect(macKeyOrder([k('aws', 'a'), k('pgp', 'b')]).map((x) => x.id)).toEqual(['a', 'b'])
  })

  it('refuses versions without a MAC, unknown versions and lines, and a missing MAC', async () => {
    const text = readFileSync(V3, 'utf8')
    const cases: [string, string, RegExp][] = [
      [text.replace('# kubesec:v:3', '# kubesec:v:2'), 'ERR_VERSION', /version 2 carries no MAC/],
      [text.replace('# kubesec:v:3', '# kubesec:v:5'), 'ERR_VERSION', /unsupported kubesec format version "5"/],
      [text.replace(/^# kubesec:mac:.*\n/m, ''), 'ERR_INTEGRITY', /kubesec MAC is missing/],
      [text.replace('# kubesec:v:3', '# kubesec:v:3\n# kubesec:vault:x:eA=='), 'ERR_INTEGRITY', /unknown footer line 2/],
      [text.replace('# kubesec:v:3', '# kubesec:v:3\n# kubesec:v:3'), 'ERR_INTEGRITY', /two version lines/],
    ]
    for (const [variant, code, message] of cases) {
      const err = await failure(() => parseKubesec(variant, 'secret.yaml'))
      expect([err.code, err.exitCode, err.message]).toEqual([code, 3, expect.stringMatching(message)])
    }
    expect(looksLikeKubesec(text)).toBe(true)
    expect(parseKubesec('apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n').secrets).toEqual([])
  })
})

gpgTool.describe('kubesec files built from its algorithm, through the real gpg', () => {
  it('v3 (data) and v4 (data and stringData) open to their plaintext; the footer is removed', async () => {
    const v3 = await decrypt(readFileSync(V3, 'utf8'))
    expect(parse(v3, {version: '1.1'})).toEqual(secretV3)
    expect(v3).not.toContain('kubesec')
    const v4 = await decrypt(readFileSync(V4, 'utf8'))
    expect(parse(v4, {version: '1.1'})).toEqual(secretV4)
  })

  it('a file for keys 1 and 2 opens with key 2 alone; with neither, exit 3 naming both', async () => {
    const two = gpgHome([])
    const none = gpgHome([])
    try {
      two.gpg(['--import'], home!.gpg(['--export-secret-keys', SOPS_KEY_2]))
      two.gpg(['--import'], home!.gpg(['--export', SOPS_KEY_1])) // to check key 1's signature
      expect(parse(await decrypt(readFileSync(V4, 'utf8'), {env: env({GNUPGHOME: two.dir})}), {version: '1.1'})).toEqual(secretV4)
      const err = await failure(decrypt(readFileSync(V4, 'utf8'), {env: env({GNUPGHOME: none.dir})}))
      expect([err.code, err.exitCode]).toEqual(['ERR_NO_KEY', 3])
      expect(err.message).toContain(`pgp:${SOPS_KEY_1}, pgp:${SOPS_KEY_2}`)
    } finally {
      two.close()
      none.close()
    }
  })

  const flipValue = (text: string, key: string) => text.replace(new RegExp(`(${key}: )(.)`), (_m, a, c) => a + (c === 'A' ? 'B' : 'A'))
  it.each<[string, (t: string) => string, string, RegExp]>([
    ['a value flipped', (t) => flipValue(t, 'password'), 'ERR_INTEGRITY', /cannot decrypt: the value was altered/],
    [
      'two values swapped',
      (t) => t.replace(/(password: )(.*)\n(\s+token: )(.*)/, '$1$4\n$3$2'),
      'ERR_INTEGRITY',
      /moved here from another key/,
    ],
    ['a value removed', (t) => t.replace(/^ {2}token: .*\n/m, ''), 'ERR_INTEGRITY', /kubesec MAC mismatch/],
    ['a plaintext value added', (t) => t.replace('data:\n', 'data:\n  extra: c2VjcmV0\n'), 'ERR_INTEGRITY', /malformed kubesec value/],
    [
      'the MAC altered',
      (t) => t.replace(/(# kubesec:mac:)(.)/, (_m, a, c) => a + (c === 'A' ? 'B' : 'A')),
      'ERR_INTEGRITY',
      /kubesec MAC mismatch/,
    ],
    [
      'a key line added',
      (t) => t.replace('# kubesec:mac:', `# kubesec:pgp:${SOPS_KEY_2}:${Buffer.from('x').toString('base64')}\n# kubesec:mac:`),
      'ERR_INTEGRITY',
      /kubesec MAC mismatch/,
    ],
    [
      'the PGP key entry altered',
      (t) => t.replace(/(# kubesec:pgp:[0-9A-F]{40}:.{200})(.)/, (_m, a, c) => a + (c === 'A' ? 'B' : 'A')),
      'ERR_DECRYPT',
      /the recipient entry was altered/,
    ],
  ])('refuses %s (exit 3)', async (_name, tamper, code, message) => {
    const text = readFileSync(V3, 'utf8')
    const variant = tamper(text)
    expect(variant).not.toBe(text)
    const err = await failure(decrypt(variant))
    expect([err.code, err.exitCode, err.message]).toEqual([code, 3, expect.stringMatching(message)])
    expect(err.where).toMatchObject({file: 'secret.yaml', document: 1, secret: 'prod/db'})
  })

  it('refuses a data key that is encrypted but not signed, as kubesec does', async () => {
    const unsigned = kubesecEncrypt(secretV3, crypto.randomBytes(32), [pgpKey(home!, SOPS_KEY_1, false)])
    const err = await failure(decrypt(unsigned))
    expect([err.code, err.exitCode, err.message]).toEqual(['ERR_DECRYPT', 3, expect.stringMatching(/carries no valid signature/)])
  })

  it("what kubesec does not protect: the Secret's name and namespace (documented, not detected)", async () => {
    const moved = readFileSync(V3, 'utf8').replace('namespace: prod', 'namespace: other')
    expect(parse(await decrypt(moved), {version: '1.1'}).metadata.namespace).toBe('other')
  })

  it('several kubesec Secrets in a stream, with a plain document between them', async () => {
    const stream = `${readFileSync(V3, 'utf8')}---\nkind: ConfigMap\napiVersion: v1\nmetadata:\n  name: c\n---\n${readFileSync(V4, 'utf8')}`
    const docs = (await decrypt(stream)).split('---\n').map((d) => parse(d, {version: '1.1'}))
    expect(docs).toEqual([secretV3, {kind: 'ConfigMap', apiVersion: 'v1', metadata: {name: 'c'}}, secretV4])
  })
})

describe('kubesec AWS KMS and GCP KMS entries', () => {
  it('an AWS KMS entry opens with one Decrypt call, with no EncryptionContext (kubesec sets none)', async () => {
    const client = new KMSClient({
      region: 'us-east-1',
      endpoint: kms.url,
      credentials: {accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY},
    })
    const aws: GenKey = {type: 'aws', id: kmsKey.arn, wrap: () => Buffer.alloc(0)}
    const dek = crypto.randomBytes(32)
    const blob = Buffer.from((await client.send(new EncryptCommand({KeyId: kmsKey.arn, Plaintext: dek}))).CiphertextBlob!)
    client.destroy()
    const text = kubesecEncrypt(secretV3, dek, [{...aws, wrap: () => blob}])
    kms.resetStats()
    expect(parse(await decrypt(text), {version: '1.1'})).toEqual(secretV3)
    expect(kms.calls.map((c) => [c.operation, c.requestedKeyId, c.encryptionContext])).toEqual([['Decrypt', kmsKey.arn, undefined]])
  })

  it('a GCP KMS entry opens through the unwrap the caller plugs in; without one, exit 3 saying kseal has no GCP KMS backend', async () => {
    const text = kubesecEncrypt(secretV4, crypto.randomBytes(32), [{type: 'gcp', id: GCP_ID, wrap: gcpWrap}])
    expect(text).toContain(`# kubesec:gcp:${GCP_ID}:`)
    expect(parse(await decrypt(text, {gcpKms: gcpUnwrap}), {version: '1.1'})).toEqual(secretV4)
    const err = await failure(decrypt(text))
    expect([err.code, err.exitCode, err.message]).toEqual([
      'ERR_NO_KEY',
      3,
      expect.stringMatching(new RegExp(`gcp:${GCP_ID} \\(kseal has no GCP KMS backend yet\\)`)),
    ])
  })

  gpgTool.it('mixed keys: the held PGP key is used, KMS is not asked', async () => {
    const text = kubesecEncrypt(secretV3, crypto.randomBytes(32), [
      {type: 'aws', id: kmsKey.arn, wrap: () => Buffer.from('unused')},
      pgpKey(home!, SOPS_KEY_1),
    ])
    kms.resetStats()
    expect(parse(await decrypt(text), {version: '1.1'})).toEqual(secretV3)
    expect(kms.calls).toHaveLength(0)
  })
})

it('the kubesec fixtures are described where they live', () => {
  expect(readFileSync(path.join(DIR, 'README.md'), 'utf8')).toMatch(/built, not captured/)
})
