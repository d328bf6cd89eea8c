/**
 * Several recipients per Secret, mixing backends: any one decrypts, inspect lists them all, and a
 * decryptor tries only the entries whose key it holds (chosen by key id) — no other key is tried
 * and no KMS call is made when a held key opens the Secret.
 */
import {execFileSync} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {Backends} from '../keys/index.js'
import type {Identity, KeyBinding, RecipientEntry} from '../keys/types.js'
import {Keyring} from '../src/keyring/keyring.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {cleanEnv, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {type CreatedKey, type KmsServerHandle, startKmsServer} from './support/kms-server.js'

let kms: KmsServerHandle
let kmsKey: CreatedKey
let dir: string
let ageKey: string
let ageRecipient: string

const plain = (name: string) =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: team\nstringData:\n  a: one-${name}\n  b: two-${name}\n`
const ACCESS_KEY = 'AKIAKSEALRECIPIENTS1'
const SECRET_KEY = 'not-a-real-secret-key'
const awsEnv = (extra: Record<string, string | undefined> = {}) => ({
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: SECRET_KEY,
  AWS_ENDPOINT_URL_KMS: kms.url,
  ...extra,
})

beforeAll(async () => {
  kms = await startKmsServer({credentials: {[ACCESS_KEY]: SECRET_KEY}})
  kmsKey = kms.createKey({alias: 'ci'})
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-recipients-'))
  ageKey = path.join(dir, 'break-glass.txt')
  execFileSync('age-keygen', ['-o', ageKey], {stdio: 'ignore'})
  ageRecipient = execFileSync('age-keygen', ['-y', ageKey], {encoding: 'utf8'}).trim()
})

afterAll(async () => {
  await kms.close()
})

afterEach(() => {
  kms.clearDenies()
  kms.resetStats()
})

/** A Backends that counts every unwrap its identities attempt, per backend (dependency injection, no mocks). */
class CountingBackends extends Backends {
  readonly unwraps: Record<string, number> = {}
  private count(ids: Identity[]): Identity[] {
    return ids.map((id) => ({
      backend: id.backend,
      kid: id.kid,
      source: id.source,
      unwrap: (e: RecipientEntry, b: KeyBinding) => {
        this.unwraps[id.backend] = (this.unwraps[id.backend] ?? 0) + 1
        return id.unwrap(e, b)
      },
    }))
  }

  override async identitiesFromFile(file: string, text: string): Promise<Identity[]> {
    return this.count(await super.identitiesFromFile(file, text))
  }

  override async ambient(name: string): Promise<Identity[]> {
    return this.count(await super.ambient(name))
  }
}

async function encryptForAll(name: string): Promise<string> {
  const b = new Backends({env: awsEnv(), cwd: dir, now: () => new Date()})
  try {
    const recipients = await Promise.all(
      [`rsa:${TEAM_CERT}`, `awskms:${kmsKey.aliasArn}`, `age:${ageRecipient}`].map((u) => b.recipient(u)),
    )
    return await encryptText(plain(name), `${name}.yaml`, {recipients, scope: 'strict'})
  } finally {
    await b.close()
  }
}

async function decryptWith(text: string, keys: string[], env: Record<string, string | undefined>) {
  const b = new CountingBackends({env, cwd: dir, now: () => new Date()})
  try {
    const out = await decryptText(text, 'x.yaml', new Keyring(b, {keys, env: {XDG_CONFIG_HOME: path.join(dir, 'none'), ...env}}))
    return {out, unwraps: b.unwraps}
  } finally {
    await b.close()
  }
}

describe('a decryptor tries only the entries whose key it holds', () => {
  it('with only the age key: the RSA entry is never tried and no KMS call is made', async () => {
    const enc = await encryptForAll('db')
    expect(parse(enc).kseal.recipients.map((r: RecipientEntry) => r.backend)).toEqual(['rsa', 'awskms', 'age'])
    kms.resetStats()
    // AWS credentials are in the environment, and an unrelated RSA key is held: neither is used.
    const {out, unwraps} = await decryptWith(enc, [ageKey, OTHER_KEY], awsEnv())
    expect(out).toBe(plain('db'))
    expect(unwraps).toEqual({age: 1})
    expect(kms.count()).toBe(0)
  })

  it('with the team RSA key: only the RSA entry is tried, no KMS call', async () => {
    const enc = await encryptForAll('db')
    kms.resetStats()
    const {out, unwraps} = await decryptWith(enc, [TEAM_KEY, ageKey], awsEnv())
    expect(out).toBe(plain('db'))
    expect(unwraps).toEqual({rsa: 1})
    expect(kms.count()).toBe(0)
  })

  it('with no key file: the KMS entry opens it with one Decrypt call', async () => {
    const enc = await encryptForAll('db')
    kms.resetStats()
    const {out, unwraps} = await decryptWith(enc, [OTHER_KEY], awsEnv())
    expect(out).toBe(plain('db'))
    expect(unwraps).toEqual({awskms: 1})
    expect(kms.count('Decrypt')).toBe(1)
    expect(kms.calls[0].requestedKeyId).toBe(kmsKey.arn)
  })

  it('a Secret without a KMS entry never makes a KMS call, even with AWS credentials and no key', async () => {
    const b = new Backends({env: {}, cwd: dir, now: () => new Date()})
    const enc = await encryptText(plain('x'), 'x.yaml', {recipients: [await b.recipient(`rsa:${TEAM_CERT}`)], scope: 'strict'}).finally(
      () => b.close(),
    )
    kms.resetStats()
    await expect(decryptWith(enc, [ageKey], awsEnv())).rejects.toMatchObject({code: 'ERR_NO_KEY', exitCode: 3})
    expect(kms.count()).toBe(0)
  })

  it('any one of two KMS keys decrypts: when the first is denied, the second opens it', async () => {
    const second = kms.createKey()
    const b = new Backends({env: awsEnv(), cwd: dir, now: () => new Date()})
    const recipients = await Promise.all([`awskms:${kmsKey.arn}`, `awskms:${second.arn}`].map((u) => b.recipient(u)))
    const enc = await encryptText(plain('two'), 'x.yaml', {recipients, scope: 'strict'}).finally(() => b.close())
    kms.resetStats()
    kms.deny({action: 'Decrypt', keyId: kmsKey.keyId})
    const {out} = await decryptWith(enc, [], awsEnv())
    expect(out).toBe(plain('two'))
    expect(kms.calls.map((c) => [c.requestedKeyId, c.errorType ?? 'ok'])).toEqual([
      [kmsKey.arn, 'AccessDeniedException'],
      [second.arn, 'ok'],
    ])
  })
})

describe('-r repeated, mixing backends, through the built CLI', () => {
  it('any one of rsa, awskms and age decrypts; inspect lists them all', async () => {
    const input = plain('a') + '---\n' + plain('b')
    const enc = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`, '-r', `awskms:${kmsKey.arn}`, '-r', `age:${ageRecipient}`], {
      env: cleanEnv(awsEnv()),
      input,
    })
    expect(enc.stderr).toBe('')
    expect(enc.code).toBe(0)
    expect(kms.count('Encrypt')).toBe(2)

    const json = await kseal(['inspect', '--json'], {env: cleanEnv(), input: enc.stdout})
    const infos = JSON.parse(json.stdout)
    expect(infos).toHaveLength(2)
    for (const i of infos) expect(i.recipients.map((r: {backend: string}) => r.backend)).toEqual(['rsa', 'awskms', 'age'])
    expect(infos[0].recipients[1].kid).toBe(kmsKey.arn)
    expect(infos[0].recipients[2].kid).toBe(ageRecipient)
    const table = await kseal(['inspect'], {env: cleanEnv(), input: enc.stdout})
    expect(table.stdout).toContain(`rsa:886d5b01b46231a8, awskms:${kmsKey.arn}, age:${ageRecipient}`)

    kms.resetStats()
    const byRsa = await kseal(['decrypt', '-k', OTHER_KEY], {env: cleanEnv(awsEnv()), input: enc.stdout})
    expect([byRsa.code, byRsa.stdout]).toEqual([0, input])
    const byAge = await kseal(['decrypt'], {env: cleanEnv(awsEnv({KSEAL_KEYS: ageKey})), input: enc.stdout})
    expect([byAge.code, byAge.stdout]).toEqual([0, input])
    expect(kms.count()).toBe(0)
    const byKms = await kseal(['decrypt'], {env: cleanEnv(awsEnv()), input: enc.stdout})
    expect([byKms.code, byKms.stdout]).toEqual([0, input])
    expect(kms.count('Decrypt')).toBe(2)
    const byNone = await kseal(['decrypt'], {env: cleanEnv({AWS_EC2_METADATA_DISABLED: 'true'}), input: enc.stdout})
    expect(byNone.code).toBe(1) // the KMS entry is tried with no credentials: a backend error
    expect(byNone.stderr).toMatch(/no AWS credentials/)
  })
})
