/**
 * Writing SOPS for Secrets, verified by implementations that are not kseal's: the `sops-age`
 * package decrypts the age-recipient output, a test-only MAC reimplementation (support/sops-mac.ts)
 * checks the MAC, the real `age` and `gpg` open the data-key entries; AWS KMS (with an
 * EncryptionContext, an assumed role, a profile) through the real SDK against the local KMS and
 * STS servers. Re-encryption keeps the ciphertext of unchanged values; a frozen vector pins the
 * writer's bytes; a property test round-trips any Secret.
 */
import {execFileSync} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {decryptSops} from 'sops-age'
import {Document, parse} from 'yaml'
import {KUBE_YAML, kubeYamlString} from '../src/manifest/kubeyaml.js'
import {Backends} from '../keys/index.js'
import {
  decryptedText,
  encryptSecretsToSops,
  openSops,
  type OpenedSops,
  parseSops,
  reencryptSops,
  SECRET_RULES,
  encryptSops,
  SopsMasterKeys,
  type SopsRecipient,
  sopsRecipients,
} from '../src/formats/sops/index.js'
import {encryptText} from '../src/ops/encrypt.js'
import {YAML_AWKWARD} from './support/awkward.js'
import {FIXTURES, TEAM_CERT} from './support/cli.js'
import {type GpgHome, gpgHome, SOPS_KEY_1} from './support/gpg.js'
import {type CreatedKey, type KmsServerHandle, startKmsServer} from './support/kms-server.js'
import {checkSopsMac} from './support/sops-mac.js'
import {AwsIam} from './support/aws/iam.js'
import {startStsServer, type StsServer} from './support/aws/sts.js'
import {failure} from './support/failure.js'
import {tool} from './support/tools.js'

const gpgTool = tool('gpg')
const ageTool = tool('age')
const SOPS_FIXTURES = path.join(FIXTURES, 'sops')
const AGE_KEY = path.join(SOPS_FIXTURES, 'age-key.txt')
const AGE_RECIPIENT = 'age1eltpgg00muf55rluq5x63rfcathgtjpyh22vyuvq3zmzhr3ntevsgtsmgp'
const AGE_SECRET = () =>
  readFileSync(AGE_KEY, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!
const INPUT = readFileSync(path.join(SOPS_FIXTURES, 'secret.yaml'), 'utf8')
const ACCESS_KEY = 'AKIAKSEALSOPSWRITE01'
const SECRET_KEY = 'kseal-sops-write-test-secret-key'

let tmp: string
let home: GpgHome | undefined
let kms: KmsServerHandle
let kmsKey: CreatedKey
let sts: StsServer
let iam: AwsIam

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    HOME: tmp,
    XDG_CONFIG_HOME: path.join(tmp, 'xdg-empty'),
    SOPS_AGE_KEY_FILE: AGE_KEY,
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_ENDPOINT_URL_KMS: kms.url,
    AWS_ENDPOINT_URL_STS: sts.url,
    AWS_CONFIG_FILE: path.join(tmp, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(tmp, 'aws-credentials'),
    ...(home ? {GNUPGHOME: home.dir} : {}),
    ...extra,
  }
}

async function withKeys<T>(fn: (k: SopsMasterKeys, b: Backends) => Promise<T>, e = env()): Promise<T> {
  const b = new Backends({env: e, cwd: tmp, now: () => new Date()})
  const k = new SopsMasterKeys(b)
  try {
    return await fn(k, b)
  } finally {
    await k.close()
    await b.close()
  }
}

async function encrypt(
  text: string,
  recipients: SopsRecipient[],
  opts: {file?: string; macOnlyEncrypted?: boolean} = {},
  e = env(),
): Promise<string> {
  return withKeys((keys) => encryptSecretsToSops(text, {recipients, keys, ...opts}), e)
}

async function open(text: string, file = 'secret.yaml', e = env()): Promise<OpenedSops> {
  return withKeys((keys) => openSops(parseSops(text, {file}), keys), e)
}

const encValues = (text: string) => text.match(/ENC\[AES256_GCM,[^\]]*\]/g) ?? []
const AGE: SopsRecipient = {kind: 'age', recipient: AGE_RECIPIENT}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-sops-write-'))
  // One AWS account for KMS and STS, so the credentials STS issues are the ones KMS checks.
  iam = new AwsIam()
  iam.addAccessKey(ACCESS_KEY, SECRET_KEY, 'arn:aws:iam::111122223333:user/sops-writer')
  iam.addAccessKey('AKIAKSEALPROFILE0001', 'kseal-profile-test-secret', 'arn:aws:iam::111122223333:user/ci')
  kms = await startKmsServer({iam})
  kmsKey = kms.createKey({alias: 'sops'})
  sts = await startStsServer({iam})
  if (gpgTool.present) home = gpgHome()
})

afterAll(async () => {
  await kms?.close()
  await sts?.close()
  home?.close()
})

describe('a Secret written as SOPS', () => {
  it('encrypts data and stringData only, keeps the layout, and appends a sops block as sops 3.13 writes it', async () => {
    const out = await encrypt(INPUT, [AGE])
    const [body, block] = [out.slice(0, out.indexOf('sops:\n')), out.slice(out.indexOf('sops:\n'))]
    // Everything but the values is as it was: comments, blank lines, quotes, order.
    expect(body.replace(/ENC\[AES256_GCM,[^\]]*\]/g, 'X')).toBe(
      INPUT.replace('czNjcjN0LXBhc3N3b3Jk', 'X')
        .replace('"admin"', '"X"')
        .replace("'postgres://db.prod:5432/app'", "'X'")
        .replace('héllo wörld ✓', 'X'),
    )
    expect(encValues(body)).toHaveLength(4)
    expect(body).not.toMatch(/s3cr3t|admin|postgres|héllo/)
    const meta = parse(out).sops
    expect(Object.keys(meta)).toEqual(['age', 'encrypted_regex', 'lastmodified', 'mac', 'version'])
    expect(meta).toMatchObject({
      encrypted_regex: '^(data|stringData)$',
      version: '3.13.1',
      age: [{recipient: AGE_RECIPIENT, enc: expect.stringMatching(/^-----BEGIN AGE ENCRYPTED FILE-----\n/)}],
    })
    expect(meta.lastmodified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    expect(block).toMatch(/^sops:\n {2}age:\n {4}- enc: "/)
    // kseal reads it back to exactly the input.
    expect(decryptedText(await open(out))).toBe(INPUT)
  })

  it("sops-age (not kseal) decrypts it to the Secret's values", async () => {
    const out = await encrypt(INPUT, [AGE])
    const plain = await decryptSops(out, {secretKey: AGE_SECRET(), fileType: 'yaml'})
    expect(plain).toEqual(parse(INPUT))
  })

  ageTool.it('the real age opens its data-key entry, and the test-only MAC check verifies the file with that key', async () => {
    const out = await encrypt(INPUT, [AGE])
    const dataKey = execFileSync('age', ['-d', '-i', AGE_KEY], {input: parse(out).sops.age[0].enc})
    expect(dataKey).toHaveLength(32)
    const check = checkSopsMac(out, dataKey)
    expect(check.ok).toBe(true)
    expect(check.plain).toEqual(parse(INPUT))
    expect(checkSopsMac(out.replace('name: db', 'name: other'), dataKey).ok).toBe(false)
  })

  gpgTool.it('for a PGP key: the real gpg opens the entry, and the MAC verifies with what it gives', async () => {
    const recipients = await withKeys((_k, b) => sopsRecipients([`pgp:${SOPS_KEY_1}`, `age:${AGE_RECIPIENT}`], b))
    expect(recipients).toEqual([{kind: 'pgp', fp: SOPS_KEY_1}, AGE])
    const out = await encrypt(INPUT, recipients)
    const entry = parse(out).sops.pgp[0]
    expect(entry).toEqual({
      created_at: expect.stringMatching(/Z$/),
      enc: expect.stringMatching(/^-----BEGIN PGP MESSAGE-----\n/),
      fp: SOPS_KEY_1,
    })
    const dataKey = home!.gpg(['--decrypt'], entry.enc)
    expect(checkSopsMac(out, dataKey).ok).toBe(true)
    // And kseal opens it with gpg alone (no age key anywhere).
    expect(decryptedText(await open(out, 'secret.yaml', env({SOPS_AGE_KEY_FILE: undefined})))).toBe(INPUT)
  })

  it('a JSON Secret stays JSON', async () => {
    const input = readFileSync(path.join(FIXTURES, 'corpus', 'secret.json'), 'utf8')
    const out = await encrypt(input, [AGE], {file: 'secret.json'})
    const json = JSON.parse(out)
    expect(json.sops.encrypted_regex).toBe('^(data|stringData)$')
    expect(json.data.password).toMatch(/^ENC\[AES256_GCM,.*type:str\]$/)
    expect(json.data.empty).toBe('')
    expect(await decryptSops(out, {secretKey: AGE_SECRET(), fileType: 'json'})).toEqual(JSON.parse(input))
    expect(decryptedText(await open(out, 'secret.json'))).toBe(input)
  })

  it('each Secret of a stream gets its own data key and sops block; other documents and SOPS Secrets are left alone', async () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  plain: text\n'
    const secret = (n: string) =>
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${n}\nstringData:\n  k: v-${n}\ndata:\n  d: ${Buffer.from(n).toString('base64')}\n`
    const out = await encrypt([cm, secret('a'), secret('b')].join('---\n'), [AGE])
    const docs = out.split('---\n')
    expect(docs[0]).toBe(cm)
    const opened = await open(out)
    expect(opened.groups.map((g) => g.documents)).toEqual([[1], [2]])
    expect(opened.groups[0].dataKey.equals(opened.groups[1].dataKey)).toBe(false)
    expect(await encrypt(out, [AGE])).toBe(out)
  })

  it('re-encrypting an edited Secret refuses a value that Kubernetes and sops would read differently', async () => {
    const opened = await open(await encrypt(INPUT, [AGE]))
    const err = await failure(async () => reencryptSops(opened, decryptedText(opened).replace('username: "admin"', 'username: 0o17')))
    expect([err.code, err.where.key, err.message]).toEqual(['ERR_INPUT', 'stringData.username', expect.stringMatching(/quote it/)])
  })

  it('mac_only_encrypted on request: edits outside data/stringData (a kustomize namespace) then keep the MAC valid', async () => {
    const out = await encrypt(INPUT, [AGE], {macOnlyEncrypted: true})
    expect(parse(out).sops.mac_only_encrypted).toBe(true)
    const moved = out.replace('namespace: prod', 'namespace: staging')
    expect(parse(decryptedText(await open(moved))).metadata.namespace).toBe('staging')
    const full = await encrypt(INPUT, [AGE])
    expect((await failure(open(full.replace('namespace: prod', 'namespace: staging')))).message).toMatch(/MAC mismatch/)
  })

  it('refuses what cannot be written faithfully (exit 2)', async () => {
    const secret = (body: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n${body}`
    const cases: [string, RegExp, string][] = [
      // kubectl (go-yaml v2) reads 0o17 as the number 15: refused before sops's own reading is asked.
      [secret('stringData:\n  mode: 0o17\n'), /not a string \(it reads as number; quote it\)/, 'ERR_INPUT'],
      [secret('stringData:\n  count: 1_000\n'), /not a string/, 'ERR_INPUT'],
      [secret('data:\n  k: not base64!\n'), /not valid base64/, 'ERR_INPUT'],
      [
        'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: s\n  stringData:\n    k: v\n',
        /inside a List cannot be written as SOPS/,
        'ERR_INPUT',
      ],
    ]
    for (const [text, message, code] of cases) {
      const err = await failure(encrypt(text, [AGE]))
      expect([err.code, err.exitCode, err.message]).toEqual([code, 2, expect.stringMatching(message)])
    }
    expect(parse(await encrypt(secret('stringData:\n  mode: "0o17"\n'), [AGE])).stringData.mode).toMatch(/^ENC\[/)
    const kseal = await withKeys(async (_k, b) =>
      encryptText(secret('stringData:\n  k: v\n'), 's.yaml', {recipients: [await b.recipient(`rsa:${TEAM_CERT}`)], scope: 'strict'}),
    )
    expect((await failure(encrypt(kseal, [AGE]))).message).toMatch(/already encrypted by kseal/)
    expect((await failure(encrypt(INPUT, []))).code).toBe('ERR_USAGE')
    const rsa = await failure(withKeys((_k, b) => sopsRecipients([`rsa:${TEAM_CERT}`], b)))
    expect(rsa.message).toMatch(/SOPS files can be encrypted for age, pgp and awskms recipients, not rsa/)
  })
})

describe('AWS KMS entries, through the real SDK and the local KMS and STS servers', () => {
  it('encrypts and opens with one KMS call each; the entry records the ARN, created_at and the EncryptionContext', async () => {
    kms.resetStats()
    const out = await encrypt(INPUT, [{kind: 'kms', arn: kmsKey.arn, context: {team: 'db', env: 'prod'}}])
    const entry = parse(out).sops.kms[0]
    expect(entry).toEqual({
      arn: kmsKey.arn,
      aws_profile: '',
      context: {env: 'prod', team: 'db'},
      created_at: expect.stringMatching(/Z$/),
      enc: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
    })
    expect(decryptedText(await open(out))).toBe(INPUT)
    expect(kms.calls.map((c) => [c.operation, c.encryptionContext])).toEqual([
      ['Encrypt', {team: 'db', env: 'prod'}],
      ['Decrypt', {team: 'db', env: 'prod'}],
    ])
    // The context is what KMS checks: an altered one is refused by KMS itself (exit 3).
    const altered = await failure(open(out.replace('team: "db"', 'team: "web"').replace('"team":"db"', '"team":"web"')))
    expect([altered.code, altered.exitCode]).toEqual(['ERR_DECRYPT', 3])
  })

  it('one KMS call per Secret, the calls of a stream overlapping', async () => {
    const stream = Array.from(
      {length: 10},
      (_, i) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: s${i}\nstringData:\n  a: one\n  b: two\n`,
    ).join('---\n')
    kms.latencyMs = 50
    try {
      kms.resetStats()
      const out = await encrypt(stream, [{kind: 'kms', arn: kmsKey.arn}])
      expect([kms.count(), kms.count('Encrypt')]).toEqual([10, 10])
      expect(kms.maxInFlight).toBeGreaterThan(1)
      kms.resetStats()
      expect(decryptedText(await open(out))).toBe(stream)
      expect([kms.count(), kms.count('Decrypt')]).toEqual([10, 10])
      expect(kms.maxInFlight).toBeGreaterThan(1)
    } finally {
      kms.latencyMs = 0
    }
  })

  it("assumes the role an entry names, and uses only the role's credentials for KMS", async () => {
    const role = 'arn:aws:iam::111122223333:role/sops-decrypt'
    iam.createRole('sops-decrypt', {principals: ['arn:aws:iam::111122223333:user/sops-writer']})
    const undeny = kms.deny({action: '*', accessKeyId: ACCESS_KEY})
    try {
      kms.resetStats()
      const out = await encrypt(INPUT, [{kind: 'kms', arn: kmsKey.arn, role}])
      expect(parse(out).sops.kms[0].role).toBe(role)
      expect(decryptedText(await open(out))).toBe(INPUT)
      const assumed = sts.calls.filter((c) => c.operation === 'AssumeRole' && c.status === 200)
      expect(assumed.map((c) => [c.accessKeyId, c.roleArn])).toEqual([
        [ACCESS_KEY, role],
        [ACCESS_KEY, role],
      ])
      expect(assumed[0].roleSessionName).toMatch(/^kseal@/)
      expect(kms.calls.map((c) => c.accessKeyId)).toEqual(assumed.map((c) => c.issuedAccessKeyId))
      // A role these credentials may not assume: one line, exit 1.
      const denied = await failure(open(out.replace(role, 'arn:aws:iam::111122223333:role/other')))
      expect([denied.code, denied.exitCode]).toEqual(['ERR_BACKEND', 1])
      expect(denied.message).toMatch(/cannot assume role arn:aws:iam::111122223333:role\/other for KMS key .*: access denied/)
    } finally {
      undeny()
    }
  })

  it('uses the AWS profile an entry names', async () => {
    const credentials = path.join(tmp, 'aws-credentials')
    writeFileSync(credentials, '[ci]\naws_access_key_id = AKIAKSEALPROFILE0001\naws_secret_access_key = kseal-profile-test-secret\n')
    // The SDK reads its shared files from the process environment, whatever client config it is given.
    const saved = {c: process.env.AWS_SHARED_CREDENTIALS_FILE, f: process.env.AWS_CONFIG_FILE}
    process.env.AWS_SHARED_CREDENTIALS_FILE = credentials
    process.env.AWS_CONFIG_FILE = path.join(tmp, 'aws-config')
    try {
      kms.resetStats()
      const out = await encrypt(INPUT, [{kind: 'kms', arn: kmsKey.arn, profile: 'ci'}])
      expect(parse(out).sops.kms[0].aws_profile).toBe('ci')
      expect(decryptedText(await open(out))).toBe(INPUT)
      expect(kms.calls.map((c) => c.accessKeyId)).toEqual(['AKIAKSEALPROFILE0001', 'AKIAKSEALPROFILE0001'])
      const bad = await failure(open(out.replace('aws_profile: "ci"', 'aws_profile: "x y"')))
      expect([bad.code, bad.message]).toEqual(['ERR_INPUT', expect.stringMatching(/not a profile name/)])
    } finally {
      for (const [k, v] of [
        ['AWS_SHARED_CREDENTIALS_FILE', saved.c],
        ['AWS_CONFIG_FILE', saved.f],
      ] as const) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })
})

describe('re-encrypting an edited plaintext keeps the ciphertext of unchanged values', () => {
  it('nothing changed: every ENC[…] is kept; lastmodified and the MAC are new and valid', async () => {
    const out = await encrypt(INPUT, [AGE])
    const opened = await open(out)
    const again = reencryptSops(opened, decryptedText(opened), {now: () => new Date('2030-01-01T00:00:00Z')})
    expect(encValues(again.slice(0, again.indexOf('sops:')))).toEqual(encValues(out.slice(0, out.indexOf('sops:'))))
    expect(parse(again).sops.lastmodified).toBe('2030-01-01T00:00:00Z')
    expect(parse(again).sops.mac).not.toBe(parse(out).sops.mac)
    expect(checkSopsMac(again, opened.groups[0].dataKey).ok).toBe(true)
    expect(decryptedText(await open(again))).toBe(INPUT)
  })

  it('one value changed, one moved, one added, one removed: only those ciphertexts differ', async () => {
    const out = await encrypt(INPUT, [AGE])
    const opened = await open(out)
    const old = Object.fromEntries(opened.groups[0].values.filter((v) => v.ciphertext).map((v) => [v.loc.join('.'), v.ciphertext!]))
    const edited = decryptedText(opened)
      .replace('username: "admin"', 'username: "root"')
      .replace("  url: 'postgres://db.prod:5432/app'\n", '')
      .replace('  note: héllo wörld ✓\n', "  note: héllo wörld ✓\n  added: new\n  link: 'postgres://db.prod:5432/app'\n")
    const again = reencryptSops(opened, edited)
    const now = Object.fromEntries(
      (await open(again)).groups[0].values.filter((v) => v.ciphertext).map((v) => [v.loc.join('.'), v.ciphertext!]),
    )
    expect(now['data.password']).toBe(old['data.password'])
    expect(now['stringData.note']).toBe(old['stringData.note'])
    expect(now['stringData.username']).not.toBe(old['stringData.username'])
    expect(now['stringData.link']).not.toBe(old['stringData.url']) // same plaintext, another key: a new AAD
    expect(Object.keys(now).sort()).toEqual([
      'data.password',
      'stringData.added',
      'stringData.link',
      'stringData.note',
      'stringData.username',
    ])
    expect(checkSopsMac(again, opened.groups[0].dataKey).ok).toBe(true)
    expect(decryptedText(await open(again))).toBe(edited)
  })

  it('refuses an edit that still carries a sops block, or adds documents to a file whose documents each have their own', async () => {
    const out = await encrypt(`${INPUT}---\n${INPUT.replace('name: db', 'name: db2')}`, [AGE])
    const opened = await open(out)
    expect(() => reencryptSops(opened, out)).toThrow(/still has a sops entry/)
    expect(() => reencryptSops(opened, decryptedText(opened) + '---\na: b\n')).toThrow(/the edit has 3 documents where the file had 2/)
  })
})

describe("a frozen vector pins the writer's bytes", () => {
  const FROZEN = path.join(SOPS_FIXTURES, 'secret.sops.yaml')
  const dataKey = Buffer.from(Array.from({length: 32}, (_, i) => i))
  /** Deterministic "randomness": SHA-256 of a counter. */
  const counter = () => {
    let n = 0
    return (len: number) => crypto.createHash('sha256').update(`kseal sops vector ${n++}`).digest().subarray(0, len)
  }
  const now = () => new Date('2026-01-02T03:04:05Z')

  it('sealing the input with the fixed data key, IVs, clock and age entry gives the committed file byte for byte', async () => {
    // KSEAL_REGENERATE_VECTORS=1 writes a new vector (with a new age wrapping of the same data key).
    if (process.env.KSEAL_REGENERATE_VECTORS) {
      const entries = await withKeys((k) => k.wrap([AGE], dataKey, now()))
      writeFileSync(FROZEN, encryptSops(INPUT, {dataKey, entries, rules: SECRET_RULES}, {now, random: counter()}))
    }
    const {enc} = parse(readFileSync(FROZEN, 'utf8')).sops.age[0]
    const sealed = encryptSops(
      INPUT,
      {dataKey, entries: [{kind: 'age', recipient: AGE_RECIPIENT, enc}], rules: SECRET_RULES},
      {now, random: counter()},
    )
    expect(sealed).toBe(readFileSync(FROZEN, 'utf8'))
  })

  it("opens with kseal's reader, sops-age and the test-only MAC check", async () => {
    const frozen = readFileSync(FROZEN, 'utf8')
    const opened = await open(frozen)
    expect(opened.groups[0].dataKey).toEqual(dataKey)
    expect(decryptedText(opened)).toBe(INPUT)
    expect(await decryptSops(frozen, {secretKey: AGE_SECRET(), fileType: 'yaml'})).toEqual(parse(INPUT))
    expect(checkSopsMac(frozen, dataKey).ok).toBe(true)
  })
})

describe('property: any Secret round-trips through the SOPS writer and reader', () => {
  const CANARY = 'CANARY-sops-4f1e'
  /** Characters writers and readers treat specially, and those SOPS and YAML 1.2 readers do. */
  const awkward = fc.constantFrom(...YAML_AWKWARD, '\x7f', ': ', ' #', '0o17', '1_000', 'ENC[AES256_GCM,')
  const text = fc.oneof(
    fc.string({unit: 'grapheme', maxLength: 40}),
    fc.array(fc.oneof(awkward, fc.string({maxLength: 3})), {maxLength: 8}).map((a) => a.join('')),
  )
  const key = fc.oneof(
    fc.stringMatching(/^[-._a-zA-Z0-9]{1,20}$/),
    text.filter((k) => k !== ''),
  )
  const secretArb = fc.record({
    name: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
    data: fc.dictionary(
      key,
      fc.uint8Array({maxLength: 200}).map((b) => Buffer.from(b).toString('base64')),
      {maxKeys: 5},
    ),
    stringData: fc.dictionary(
      key,
      fc.oneof(
        text,
        fc.constant(''),
        fc.string().map((s) => CANARY + s),
      ),
      {maxKeys: 5},
    ),
    json: fc.boolean(),
  })
  /** Characters kseal always writes escaped: a value holding one may come back spelled differently, never with another value. */
  const ESCAPED_BY_KSEAL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/

  it('writer → reader gives back the values; sops-age agrees; the independent MAC check verifies; no plaintext leaks', async () => {
    const b = new Backends({env: env(), cwd: tmp, now: () => new Date()})
    const keys = new SopsMasterKeys(b)
    try {
      await fc.assert(
        fc.asyncProperty(secretArb, async (g) => {
          const obj = {apiVersion: 'v1', kind: 'Secret', metadata: {name: g.name}, data: g.data, stringData: g.stringData}
          const file = g.json ? 's.json' : 's.yaml'
          // Written as kseal writes YAML: characters kubectl's reader folds (NEL) or refuses are escaped.
          const input = g.json
            ? JSON.stringify(obj, null, 2) + '\n'
            : kubeYamlString(new Document(obj, KUBE_YAML), {defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'QUOTE_DOUBLE'})
          const out = await encryptSecretsToSops(input, {recipients: [AGE], keys, file})
          for (const v of Object.values(g.stringData)) if (v.startsWith(CANARY)) expect(out).not.toContain(CANARY)
          const opened = await openSops(parseSops(out, {file}), keys)
          const back = decryptedText(opened)
          expect(g.json ? JSON.parse(back) : parse(back, {version: '1.1'})).toEqual(obj)
          if (!Object.values(g.stringData).some((v) => ESCAPED_BY_KSEAL.test(v))) expect(back).toBe(input)
          expect(checkSopsMac(out, opened.groups[0].dataKey).ok).toBe(true)
          // Two sops-age bugs, where sops agrees with kseal and the MAC check: it drops every all-digit
          // key from a value's path (taking them for list positions), and its UTF-8 decoding strips a
          // value's leading U+FEFF.
          const digitKey = [...Object.keys(g.data), ...Object.keys(g.stringData)].some((k) => /^\d+$/.test(k))
          const bom = Object.values(g.stringData).some((v) => v.startsWith('\ufeff'))
          if (!digitKey && !bom) expect(await decryptSops(out, {secretKey: AGE_SECRET(), fileType: g.json ? 'json' : 'yaml'})).toEqual(obj)
        }),
        {numRuns: Number(process.env.KSEAL_PROPERTY_RUNS) || 60},
      )
    } finally {
      await keys.close()
      await b.close()
    }
  })
})
