/**
 * The AWS KMS backend through the real @aws-sdk/client-kms against the local KMS test server:
 * one call per Secret, the binding in the EncryptionContext, the in-flight cap, retries, timeouts,
 * every error a user can act on, the lazy SDK import, and the built CLI end to end.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {AwsKmsBackend, kmsSettings, parseKmsArn} from '../keys/awskms.js'
import {Backends} from '../keys/index.js'
import type {BackendContext} from '../keys/types.js'
import {type Binding, encryptionContext, keyBinding} from '../src/envelope/binding.js'
import {Keyring} from '../src/keyring/keyring.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {parse} from 'yaml'
import {cleanEnv, kseal, OTHER_CERT, ROOT} from './support/cli.js'
import {type CreatedKey, type KmsServerHandle, startKmsServer} from './support/kms-server.js'
import {failure} from './support/failure.js'

const ACCESS_KEY = 'AKIAKSEALTEST0000001'
const SECRET_KEY = 'kseal/test/secret/access/key/not/a/real/one'
let kms: KmsServerHandle
let key: CreatedKey
let tmp: string

beforeAll(async () => {
  kms = await startKmsServer({
    credentials: {[ACCESS_KEY]: SECRET_KEY},
    principals: {[ACCESS_KEY]: 'arn:aws:iam::111122223333:role/kseal-ci'},
  })
  key = kms.createKey({description: 'kseal tests', alias: 'kseal-ci'})
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-kms-'))
})

afterAll(async () => {
  await kms.close()
})

afterEach(() => {
  kms.clearDenies()
  kms.clearFaults()
  kms.latencyMs = 0
  kms.resetStats()
})

function awsEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_ENDPOINT_URL_KMS: kms.url,
    XDG_CONFIG_HOME: '/nonexistent-kseal-config',
    ...extra,
  }
}

function ctxFor(env: Record<string, string | undefined>): BackendContext {
  return {env, cwd: ROOT, now: () => new Date()}
}

/** Backends + keyring for one test, closed afterwards. */
async function withKms<T>(env: Record<string, string | undefined>, fn: (b: Backends, keyring: Keyring) => Promise<T>): Promise<T> {
  const b = new Backends(ctxFor(env))
  try {
    return await fn(b, new Keyring(b, {keys: [], env}))
  } finally {
    await b.close()
  }
}

/** n Secrets in one stream, five values each (data and stringData). */
function secrets(n: number, prefix = 's'): string {
  const docs: string[] = []
  for (let i = 0; i < n; i++) {
    docs.push(
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${prefix}${i}\n  namespace: ns${i % 3}\ntype: Opaque\n` +
        `data:\n  a: ${Buffer.from(`alpha-${i}`).toString('base64')}\n  b: ${Buffer.from(`beta-${i}`).toString('base64')}\n` +
        `stringData:\n  c: gamma-${i}\n  d: delta-${i}\n  e: "epsilon ${i}"\n`,
    )
  }
  return docs.join('---\n')
}

async function encryptFor(
  uris: string[],
  text: string,
  env = awsEnv(),
  scope: 'strict' | 'namespace' | 'cluster' = 'strict',
): Promise<string> {
  return withKms(env, async (b) => encryptText(text, 'in.yaml', {recipients: await Promise.all(uris.map((u) => b.recipient(u))), scope}))
}

const binding: Binding = {scope: 'strict', namespace: 'prod', name: 'db'}

describe('awskms: one KMS call per Secret, bound by the EncryptionContext', () => {
  it('encrypts and decrypts 20 Secrets × 5 values with exactly 20 Encrypt and 20 Decrypt calls', async () => {
    const plain = secrets(20)
    const enc = await encryptFor([`awskms:${key.arn}`], plain)
    expect(kms.count()).toBe(20)
    expect(kms.count('Encrypt')).toBe(20)
    expect(enc).not.toMatch(/alpha-|gamma-|epsilon/)
    expect(enc.match(/backend: "awskms"/g)).toHaveLength(20)
    expect(enc).toContain(`kid: "${key.arn}"`)
    // The context names each Secret, as CloudTrail will show it.
    const contexts = kms.calls.map((c) => c.encryptionContext)
    expect(contexts).toContainEqual({'kseal:format': '2', 'kseal:scope': 'strict', 'kseal:namespace': 'ns1', 'kseal:name': 's7'})

    kms.resetStats()
    const out = await withKms(awsEnv(), (_b, keyring) => decryptText(enc, 'in.yaml', keyring))
    expect(out).toBe(plain)
    expect(kms.count()).toBe(20)
    expect(kms.count('Decrypt')).toBe(20)
    for (const c of kms.calls) {
      expect(c.requestedKeyId).toBe(key.arn)
      expect(c.accessKeyId).toBe(ACCESS_KEY)
      expect(c.status).toBe(200)
    }
    expect(kms.calls.map((c) => c.encryptionContext)).toContainEqual({
      'kseal:format': '2',
      'kseal:scope': 'strict',
      'kseal:namespace': 'ns2',
      'kseal:name': 's5',
    })
  })

  it('an alias ARN recipient keeps the alias as its key id, records the key ARN KMS used, and Decrypt names that key', async () => {
    expect(key.aliasArn).toBeDefined()
    const enc = await encryptFor([`awskms:${key.aliasArn}`], secrets(1))
    expect(kms.calls[0].requestedKeyId).toBe(key.aliasArn)
    expect(parse(enc).kseal.recipients).toEqual([{backend: 'awskms', kid: key.aliasArn, wrapped: expect.any(String), key: key.arn}])
    kms.resetStats()
    expect(await withKms(awsEnv(), (_b, k) => decryptText(enc, 'in.yaml', k))).toBe(secrets(1))
    expect(kms.calls[0].requestedKeyId).toBe(key.arn)
    // A key ARN recipient needs no second field.
    expect(parse(await encryptFor([`awskms:${key.arn}`], secrets(1))).kseal.recipients[0]).toEqual({
      backend: 'awskms',
      kid: key.arn,
      wrapped: expect.any(String),
    })
  })

  it('the context holds only what the scope binds (format 1 as it was; format 2 with its version, an open namespace left out)', async () => {
    expect(encryptionContext({format: 2, scope: 'strict', namespace: null, name: 'db'})).toEqual({
      'kseal:format': '2',
      'kseal:scope': 'strict',
      'kseal:name': 'db',
    })
    expect(encryptionContext({scope: 'strict', namespace: 'prod', name: 'db'})).toEqual({
      'kseal:scope': 'strict',
      'kseal:namespace': 'prod',
      'kseal:name': 'db',
    })
    expect(encryptionContext({scope: 'namespace', namespace: 'prod', name: ''})).toEqual({
      'kseal:scope': 'namespace',
      'kseal:namespace': 'prod',
    })
    expect(encryptionContext({scope: 'cluster', namespace: '', name: ''})).toEqual({'kseal:scope': 'cluster'})
    await encryptFor([`awskms:${key.arn}`], secrets(1), awsEnv(), 'namespace')
    expect(kms.calls[0].encryptionContext).toEqual({'kseal:format': '2', 'kseal:scope': 'namespace', 'kseal:namespace': 'ns0'})
  })

  it('KMS itself refuses a wrapped key moved to another Secret (exit 3)', async () => {
    const enc = await encryptFor([`awskms:${key.arn}`], secrets(1))
    kms.resetStats()
    // Renamed, with the recorded identity edited to match: the mismatch check passes, KMS refuses.
    const moved = enc.replace('name: s0', 'name: s0-copy').replace('name: "s0"', 'name: "s0-copy"')
    const err = await failure(withKms(awsEnv(), (_b, k) => decryptText(moved, 'in.yaml', k)))
    expect(err.code).toBe('ERR_DECRYPT')
    expect(err.exitCode).toBe(3)
    expect(err.message).toMatch(/moved or renamed/)
    expect(kms.calls[0].errorType).toBe('InvalidCiphertextException')
    expect(kms.calls[0].encryptionContext).toEqual({
      'kseal:format': '2',
      'kseal:scope': 'strict',
      'kseal:namespace': 'ns0',
      'kseal:name': 's0-copy',
    })
    // Renamed only: the recorded identity names both, before any KMS call.
    kms.resetStats()
    const renamed = await failure(withKms(awsEnv(), (_b, k) => decryptText(enc.replace('name: s0', 'name: s0-copy'), 'in.yaml', k)))
    expect(renamed.message).toMatch(/^encrypted as ns0\/s0, now ns0\/s0-copy: /)
    expect(kms.count()).toBe(0)
  })

  it('an altered wrapped key or key id: exit 3; a malformed entry: exit 3 without a KMS call', async () => {
    const backend = new AwsKmsBackend()
    const ctx = ctxFor(awsEnv())
    try {
      const entry = await (await backend.recipient(key.arn, ctx)).wrap(Buffer.alloc(32, 7), keyBinding(binding))
      const [id] = await backend.ambient(ctx)
      expect(Buffer.from((await id.unwrap(entry, keyBinding(binding)))!)).toEqual(Buffer.alloc(32, 7))

      const blob = Buffer.from(entry.wrapped, 'base64')
      blob[blob.length - 1] ^= 1
      const tampered = await failure(id.unwrap({...entry, wrapped: blob.toString('base64')}, keyBinding(binding)))
      expect([tampered.code, tampered.exitCode]).toEqual(['ERR_DECRYPT', 3])

      const other = kms.createKey()
      const wrongKid = await failure(id.unwrap({...entry, kid: other.arn}, keyBinding(binding)))
      expect([wrongKid.code, wrongKid.exitCode]).toEqual(['ERR_DECRYPT', 3])
      expect(kms.calls.at(-1)!.errorType).toBe('IncorrectKeyException')

      const calls = kms.count()
      expect((await failure(id.unwrap({...entry, kid: 'not-an-arn'}, keyBinding(binding)))).code).toBe('ERR_INTEGRITY')
      expect((await failure(id.unwrap({...entry, wrapped: '***'}, keyBinding(binding)))).code).toBe('ERR_INTEGRITY')
      expect(kms.count()).toBe(calls)
      // Entries of other backends are not this identity's.
      expect(await id.unwrap({...entry, backend: 'rsa'}, keyBinding(binding))).toBeNull()
    } finally {
      await backend.close()
    }
  })
})

describe('awskms: --key awskms:ARN', () => {
  it('a key ARN restricts KMS to that key; without it, the ambient credentials try the entries in order', async () => {
    const second = kms.createKey()
    const enc = await encryptFor([`awskms:${key.arn}`, `awskms:${second.arn}`], secrets(1))
    kms.resetStats()
    await withKms(awsEnv(), (b) => decryptText(enc, 'in.yaml', new Keyring(b, {keys: [`awskms:${second.arn}`], env: awsEnv()})))
    expect(kms.calls.map((c) => c.requestedKeyId)).toEqual([second.arn])
    kms.resetStats()
    await withKms(awsEnv(), (_b, k) => decryptText(enc, 'in.yaml', k))
    expect(kms.calls.map((c) => c.requestedKeyId)).toEqual([key.arn])
    // An alias entry is matched by its alias ARN or by the key ARN behind it.
    const viaAlias = await encryptFor([`awskms:${key.aliasArn}`], secrets(1))
    for (const only of [key.aliasArn!, key.arn]) {
      kms.resetStats()
      await withKms(awsEnv(), (b) => decryptText(viaAlias, 'in.yaml', new Keyring(b, {keys: [`awskms:${only}`], env: awsEnv()})))
      expect(kms.count('Decrypt')).toBe(1)
    }
    // Restricted to a key the Secret is not encrypted for: no call, no key (exit 3).
    const third = kms.createKey()
    kms.resetStats()
    const err = await failure(
      withKms(awsEnv(), (b) => decryptText(enc, 'in.yaml', new Keyring(b, {keys: [`awskms:${third.arn}`], env: awsEnv()}))),
    )
    expect([err.code, err.exitCode]).toEqual(['ERR_NO_KEY', 3])
    expect(kms.count()).toBe(0)
  })
})

describe('awskms: errors a user can act on, never with the data key', () => {
  const dataKey = Buffer.from('0123456789abcdef0123456789abcdef')
  const secretBits = [dataKey.toString('base64'), dataKey.toString('hex'), dataKey.toString('latin1')]

  async function wrapAndFail(env: Record<string, string | undefined>, arrange: () => void, arn = key.arn) {
    const backend = new AwsKmsBackend()
    const ctx = ctxFor(env)
    try {
      const good = new AwsKmsBackend()
      const entry = await (await good.recipient(key.arn, ctxFor(awsEnv()))).wrap(dataKey, keyBinding(binding)).finally(() => good.close())
      arrange()
      const [id] = await backend.ambient(ctx)
      const err = await failure(id.unwrap({...entry, kid: arn}, keyBinding(binding)))
      for (const s of secretBits) expect(err.message).not.toContain(s)
      return err
    } finally {
      await backend.close()
    }
  }

  it('access denied names the action and the key (exit 1)', async () => {
    const err = await wrapAndFail(awsEnv(), () => kms.deny({action: 'Decrypt', keyId: key.keyId}))
    expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(err.message).toContain('access denied: kms:Decrypt on KMS key ' + key.arn)
    expect(err.message).toContain('role/kseal-ci')
  })

  it('access denied on encrypt names kms:Encrypt', async () => {
    kms.deny({action: 'Encrypt'})
    const err = await failure(encryptFor([`awskms:${key.arn}`], secrets(1)))
    expect(err.code).toBe('ERR_BACKEND')
    expect(err.message).toContain(`access denied: kms:Encrypt on KMS key ${key.arn}`)
    expect(err.message).not.toMatch(/alpha-|gamma-/)
  })

  it('a disabled key, a key pending deletion, and a key that does not exist (exit 1)', async () => {
    const k = kms.createKey()
    kms.disableKey(k.keyId)
    const disabled = await failure(encryptFor([`awskms:${k.arn}`], secrets(1)))
    expect([disabled.code, disabled.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(disabled.message).toContain(`KMS key ${k.arn} is disabled`)

    kms.scheduleDeletion(k.keyId)
    const pending = await failure(encryptFor([`awskms:${k.arn}`], secrets(1)))
    expect(pending.code).toBe('ERR_BACKEND')
    expect(pending.message).toMatch(/cannot be used in its current state.*pending deletion/)

    const missing = `arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000`
    const notFound = await failure(encryptFor([`awskms:${missing}`], secrets(1)))
    expect([notFound.code, notFound.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(notFound.message).toContain(`KMS key ${missing} not found`)
  })

  it('a key in the wrong region for the endpoint says so (exit 1)', async () => {
    const arn = key.arn.replace(':us-east-1:', ':eu-west-1:')
    const err = await failure(encryptFor([`awskms:${arn}`], secrets(1)))
    expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(err.message).toMatch(/^wrong region: .* does not serve eu-west-1/)
  })

  it('rejected credentials (exit 1)', async () => {
    const strict = await startKmsServer({credentials: {[ACCESS_KEY]: SECRET_KEY}})
    try {
      const k = strict.createKey()
      const err = await failure(
        encryptFor([`awskms:${k.arn}`], secrets(1), awsEnv({AWS_ENDPOINT_URL_KMS: strict.url, AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN000000000'})),
      )
      expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
      expect(err.message).toMatch(/AWS rejected the credentials for kms:Encrypt/)
    } finally {
      await strict.close()
    }
  })

  it('throttling is retried with backoff by the SDK: one SDK call, three attempts', async () => {
    const enc = await encryptFor([`awskms:${key.arn}`], secrets(1))
    kms.resetStats()
    kms.failNext(2, 'ThrottlingException', {operation: 'Decrypt'})
    expect(await withKms(awsEnv(), (_b, k) => decryptText(enc, 'in.yaml', k))).toBe(secrets(1))
    expect(kms.calls.map((c) => [c.errorType ?? 'ok', c.attempt])).toEqual([
      ['ThrottlingException', 1],
      ['ThrottlingException', 2],
      ['ok', 3],
    ])
    expect(new Set(kms.calls.map((c) => c.invocationId)).size).toBe(1)
  })

  it('throttling that outlasts the retries is an error that says what to do (exit 1)', async () => {
    kms.failNext(10, 'ThrottlingException', {operation: 'Encrypt'})
    const err = await failure(encryptFor([`awskms:${key.arn}`], secrets(1), awsEnv({AWS_MAX_ATTEMPTS: '2'})))
    expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(err.message).toMatch(/throttled kms:Encrypt .* after 2 attempts; lower KSEAL_KMS_CONCURRENCY/)
    expect(kms.count('Encrypt')).toBe(2)
  })

  it('an endpoint that refuses connections fails fast (exit 1)', async () => {
    const closed = net.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>((r) => closed.close(() => r()))
    const started = Date.now()
    const err = await failure(encryptFor([`awskms:${key.arn}`], secrets(1), awsEnv({AWS_ENDPOINT_URL_KMS: `http://127.0.0.1:${port}`})))
    expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
    expect(err.message).toBe(`cannot reach AWS KMS at http://127.0.0.1:${port}: connection refused`)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('an endpoint that never answers times out instead of hanging (exit 1)', async () => {
    const sockets: net.Socket[] = []
    const silent = net.createServer((s) => void sockets.push(s))
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
    try {
      const err = await failure(
        encryptFor([`awskms:${key.arn}`], secrets(1), awsEnv({AWS_ENDPOINT_URL_KMS: url, KSEAL_KMS_TIMEOUT: '0.3', AWS_MAX_ATTEMPTS: '2'})),
      )
      expect([err.code, err.exitCode]).toEqual(['ERR_BACKEND', 1])
      expect(err.message).toBe(`cannot reach AWS KMS at ${url}: no answer within 0.3 s (KSEAL_KMS_TIMEOUT)`)
      // Each of the two attempts timed out on a connection of its own, and there was no third.
      expect(sockets).toHaveLength(2)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => silent.close(() => r()))
    }
  })

  it('settings from the environment are checked', () => {
    expect(kmsSettings({})).toMatchObject({concurrency: 16, timeoutMs: 20000, connectTimeoutMs: 5000})
    expect(kmsSettings({KSEAL_KMS_CONCURRENCY: '4', KSEAL_KMS_TIMEOUT: '0.5', AWS_ENDPOINT_URL: 'http://localhost:4566'})).toMatchObject({
      concurrency: 4,
      timeoutMs: 500,
      connectTimeoutMs: 500,
      endpoint: 'http://localhost:4566',
    })
    expect(kmsSettings({AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_KMS: 'http://b:2'}).endpoint).toBe('http://b:2')
    for (const env of [
      {KSEAL_KMS_CONCURRENCY: '0'},
      {KSEAL_KMS_CONCURRENCY: 'many'},
      {KSEAL_KMS_TIMEOUT: '-1'},
      {AWS_ENDPOINT_URL_KMS: 'localhost:4566'},
    ]) {
      expect(() => kmsSettings(env)).toThrow(expect.objectContaining({code: 'ERR_USAGE'}))
    }
  })

  it('recipient URIs must be KMS key or alias ARNs (exit 2)', async () => {
    expect(parseKmsArn(key.arn)).toMatchObject({region: 'us-east-1', account: '111122223333', alias: false})
    expect(parseKmsArn(key.aliasArn!)).toMatchObject({alias: true})
    for (const bad of ['awskms:alias/kseal-ci', `awskms:${key.keyId}`, 'awskms:arn:aws:s3:::bucket']) {
      const err = await failure(withKms(awsEnv(), (b) => b.recipient(bad)))
      expect([err.code, err.exitCode]).toEqual(['ERR_USAGE', 2])
      expect(err.message).toMatch(/expected a KMS key or alias ARN/)
    }
  })
})

describe('awskms: calls in flight', () => {
  it('keeps at most 16 calls in flight by default, and reaches 16', async () => {
    const plain = secrets(40)
    kms.latencyMs = 40
    const enc = await encryptFor([`awskms:${key.arn}`], plain)
    expect(kms.maxInFlight).toBe(16)
    kms.resetStats()
    expect(await withKms(awsEnv(), (_b, k) => decryptText(enc, 'in.yaml', k))).toBe(plain)
    expect(kms.count('Decrypt')).toBe(40)
    expect(kms.maxInFlight).toBe(16)
  })

  it('KSEAL_KMS_CONCURRENCY sets the cap for the whole run, across files', async () => {
    const env = awsEnv({KSEAL_KMS_CONCURRENCY: '3'})
    const enc = await encryptFor([`awskms:${key.arn}`], secrets(12), env)
    kms.resetStats()
    kms.latencyMs = 40
    await withKms(env, (_b, k) => Promise.all([decryptText(enc, 'a.yaml', k), decryptText(enc, 'b.yaml', k)]))
    expect(kms.count('Decrypt')).toBe(24)
    expect(kms.maxInFlight).toBe(3)
  })
})

describe('awskms: the built CLI', () => {
  // A probe preloaded into the CLI process (observation only): a loader hook that records every
  // module the process resolves.
  const hook = `data:text/javascript,${encodeURIComponent(`
    import {register} from 'node:module'
    register('data:text/javascript,' + encodeURIComponent(\`
      import {appendFileSync} from 'node:fs'
      export async function resolve(specifier, context, next) {
        const r = await next(specifier, context)
        if (process.env.KSEAL_TRACE) appendFileSync(process.env.KSEAL_TRACE, r.url + '\\\\n')
        return r
      }\`))`)}`

  async function traced(args: string[], env: Record<string, string | undefined>, input: string) {
    const trace = path.join(tmp, `trace-${Math.random().toString(36).slice(2)}.txt`)
    writeFileSync(trace, '')
    const r = await kseal(args, {env: {...env, KSEAL_TRACE: trace, NODE_OPTIONS: `--import=${hook}`}, input})
    return {...r, modules: readFileSync(trace, 'utf8')}
  }

  it('does not load the AWS SDK unless a KMS key is used', async () => {
    const rsa = await traced(['encrypt', '-r', `rsa:${OTHER_CERT}`], cleanEnv(), secrets(2))
    expect(rsa.code).toBe(0)
    expect(rsa.modules).toMatch(/\/dist\/.*commands\/encrypt\.js/)
    expect(rsa.modules).not.toContain('@aws-sdk')
    expect(rsa.modules).not.toContain('@smithy')

    // The same probe sees the SDK as soon as a KMS recipient is used.
    const viaKms = await traced(['encrypt', '-r', `awskms:${key.arn}`], cleanEnv(awsEnv()), secrets(2))
    expect(viaKms.code).toBe(0)
    expect(kms.count('Encrypt')).toBe(2)
    expect(viaKms.modules).toContain('/node_modules/@aws-sdk/client-kms/')
  })

  it('encrypts with -r awskms:ARN and decrypts with the environment pointing at KMS; errors exit 1 and 3', async () => {
    const plain = secrets(3)
    const enc = await kseal(['encrypt', '-r', `awskms:${key.arn}`], {env: cleanEnv(awsEnv()), input: plain})
    expect(enc.stderr).toBe('')
    expect(enc.code).toBe(0)
    expect(kms.count('Encrypt')).toBe(3)

    const info = await kseal(['inspect', '--json'], {env: cleanEnv(), input: enc.stdout})
    expect(JSON.parse(info.stdout)[0].recipients).toEqual([{backend: 'awskms', kid: key.arn}])

    kms.resetStats()
    const dec = await kseal(['decrypt'], {env: cleanEnv(awsEnv()), input: enc.stdout})
    expect(dec.stderr).toBe('')
    expect(dec.code).toBe(0)
    expect(dec.stdout).toBe(plain)
    expect(kms.count('Decrypt')).toBe(3)

    kms.deny({action: 'Decrypt', keyId: key.keyId})
    const denied = await kseal(['decrypt'], {env: cleanEnv(awsEnv()), input: enc.stdout})
    expect(denied.code).toBe(1)
    expect(denied.stdout).toBe('')
    expect(denied.stderr).toMatch(
      /^kseal: \(stdin\): document \d \(Secret ns\d\/s\d\): access denied: kms:Decrypt on KMS key arn:aws:kms:.* \(AWS KMS: User: arn:aws:iam::111122223333:role\/kseal-ci is not authorized/m,
    )
    kms.clearDenies()

    const moved = await kseal(['decrypt'], {env: cleanEnv(awsEnv()), input: enc.stdout.replace('name: s1', 'name: other')})
    expect(moved.code).toBe(3)
    expect(moved.stderr).toMatch(/Secret ns1\/other\): encrypted as ns1\/s1, now ns1\/other: /)
  })

  it('without credentials: a clear message and exit 1, no hang', async () => {
    const enc = await encryptFor([`awskms:${key.arn}`], secrets(1))
    const env = cleanEnv({
      HOME: tmp,
      AWS_ENDPOINT_URL_KMS: kms.url,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: path.join(tmp, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(tmp, 'no-aws-credentials'),
    })
    kms.resetStats()
    const r = await kseal(['decrypt'], {env, input: enc, timeoutMs: 20_000})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      /no AWS credentials for kms:Decrypt on arn:aws:kms:.*: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    )
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(kms.count()).toBe(0)
  })
})

describe('awskms: which key kseal agrees to call (the key redirect)', () => {
  /** Swaps an entry's fields, then re-computes the MAC with the data key: what a writer who wrapped a new data key under their own key can do. */
  async function forge(text: string, change: (e: Record<string, string>) => Record<string, string>): Promise<string> {
    const {deriveKeys, computeMac, parseEnvelope} = await import('../src/envelope/envelope.js')
    const {parseManifests} = await import('../src/manifest/parse.js')
    const {applyEdits, replaceEnvelopeEdit} = await import('../src/manifest/edits.js')
    const p = parseManifests(text)
    const s = p.secrets[0]
    const env = parseEnvelope(s.envelopeRaw)
    const dk = await withKms(
      awsEnv(),
      async (_b, k) =>
        (
          await k.unwrap(
            env.recipients,
            keyBinding({format: 2, scope: env.scope, namespace: env.encryptedAs!.namespace, name: env.encryptedAs!.name}),
          )
        ).dataKey,
    )
    const recipients = env.recipients.map((r) => change({...r}) as unknown as typeof r)
    const mac = computeMac(
      deriveKeys(dk, 2),
      {format: 2, scope: env.scope, namespace: env.encryptedAs!.namespace, name: env.encryptedAs!.name},
      s.values.map((v) => ({field: v.field, key: v.key, token: v.value})),
      recipients,
    )
    const {envelopeObject} = await import('../src/envelope/envelope.js')
    return applyEdits(text, [replaceEnvelopeEdit(text, s.map, s.envelopePair!, envelopeObject({...env, recipients, mac}), 'kseal', '\n')])
  }

  it("--key awskms:<alias> calls the alias, so a whole new envelope under the attacker's key (valid MAC) is refused by KMS itself", async () => {
    const victim = kms.createKey({alias: 'kseal-prod'})
    const attacker = kms.createKey({description: 'attacker'})
    const honest = await encryptFor([`awskms:${victim.aliasArn}`], secrets(1))
    // The attacker encrypts their own values under their own key, then dresses the entry as the victim's alias.
    const own = await encryptFor([`awskms:${attacker.arn}`], secrets(1).replace('gamma-0', 'evil-0'))
    const forged = await forge(own, (e) => ({...e, kid: victim.aliasArn!, key: attacker.arn}))
    kms.resetStats()
    const withAlias = {...awsEnv()}
    const decryptWith = (text: string, keys: string[]) =>
      withKms(withAlias, (b) => decryptText(text, 'in.yaml', new Keyring(b, {keys, env: withAlias})))
    expect(await decryptWith(honest, [`awskms:${victim.aliasArn}`])).toBe(secrets(1))
    expect(kms.calls.at(-1)).toMatchObject({operation: 'Decrypt', requestedKeyId: victim.aliasArn, status: 200})
    kms.resetStats()
    const err = await failure(decryptWith(forged, [`awskms:${victim.aliasArn}`]))
    expect(err).toMatchObject({code: 'ERR_DECRYPT', exitCode: 3})
    expect(err.message).toMatch(new RegExp(`not wrapped with the key ${victim.aliasArn} points to now \\(the entry names ${attacker.arn}`))
    expect(kms.calls.map((c) => [c.requestedKeyId, c.errorType])).toEqual([[victim.aliasArn, 'IncorrectKeyException']])
    // --key naming the victim's key ARN: the attacker's entry is not even tried.
    kms.resetStats()
    expect(await failure(decryptWith(forged, [`awskms:${victim.arn}`]))).toMatchObject({code: 'ERR_NO_KEY'})
    expect(kms.count()).toBe(0)
    // Ambient credentials call what the entry names, as IAM allows (documented): scope IAM, or pass --key.
    expect(await withKms(awsEnv(), (_b, k) => decryptText(forged, 'in.yaml', k))).toContain('evil-0')
  })

  it("a key recorded for an alias must be a key in the alias's account and region: refused before any call, with --key or without", async () => {
    const enc = await encryptFor([`awskms:${key.aliasArn}`], secrets(1))
    for (const bad of [
      key.arn.replace(':111122223333:', ':444455556666:'),
      key.arn.replace(':us-east-1:', ':eu-west-1:'),
      key.aliasArn!,
      'not-an-arn',
    ]) {
      kms.resetStats()
      const text = enc.replace(`key: "${key.arn}"`, `key: "${bad}"`)
      expect(text).not.toBe(enc)
      for (const keys of [[], [`awskms:${key.aliasArn}`]]) {
        const err = await failure(withKms(awsEnv(), (b) => decryptText(text, 'in.yaml', new Keyring(b, {keys, env: awsEnv()}))))
        expect([bad, err.code, err.message]).toEqual([bad, 'ERR_INTEGRITY', expect.stringMatching(/refusing to call it/)])
      }
      expect(kms.count()).toBe(0)
    }
  })

  it('a re-pointed alias does not strand older Secrets: --key with the old key ARN (or ambient credentials) opens them; the alias alone says what to do', async () => {
    const k1 = kms.createKey({alias: 'kseal-moving'})
    const old = await encryptFor([`awskms:${k1.aliasArn}`], secrets(1))
    const k2 = kms.createKey({})
    kms.updateAlias('kseal-moving', k2.keyId)
    const newer = await encryptFor([`awskms:${k1.aliasArn}`], secrets(1))
    expect(parse(newer).kseal.recipients[0].key).toBe(k2.arn)
    const open = (text: string, keys: string[]) =>
      withKms(awsEnv(), (b) => decryptText(text, 'in.yaml', new Keyring(b, {keys, env: awsEnv()})))
    expect(await open(newer, [`awskms:${k1.aliasArn}`])).toBe(secrets(1))
    const err = await failure(open(old, [`awskms:${k1.aliasArn}`]))
    expect(err.message).toContain(`add --key awskms:${k1.arn}`)
    expect(await open(old, [`awskms:${k1.aliasArn}`, `awskms:${k1.arn}`])).toBe(secrets(1))
    expect(await open(old, [])).toBe(secrets(1))
  })
})
