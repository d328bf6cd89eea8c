/**
 * Exercises test/support/kms-server.ts exclusively through the real @aws-sdk/client-kms over a
 * real socket: the server is only useful if the SDK sees it as KMS.
 */
import {describe, it, expect, beforeAll, afterAll, afterEach} from '@jest/globals'
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  KMSServiceException,
  type KMSClientConfig,
} from '@aws-sdk/client-kms'
import {startKmsServer, type KmsServerHandle} from './support/kms-server.js'

const ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE'
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const OTHER_KEY = 'AKIAOTHERCALLER00001'
const enc = new TextEncoder()
const dec = new TextDecoder()

let kms: KmsServerHandle
const clients: KMSClient[] = []

function client(opts: {accessKeyId?: string; region?: string; maxAttempts?: number} & Partial<KMSClientConfig> = {}): KMSClient {
  const {accessKeyId = ACCESS_KEY, region = kms.region, maxAttempts = 1, ...rest} = opts
  const c = new KMSClient({
    endpoint: kms.url,
    region,
    maxAttempts,
    credentials: {accessKeyId, secretAccessKey: SECRET_KEY},
    ...rest,
  })
  clients.push(c)
  return c
}

/** Await a promise that must reject with a KMS service exception; return it for inspection. */
async function kmsError(p: Promise<unknown>): Promise<KMSServiceException> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(KMSServiceException)
    return e as KMSServiceException
  }
  throw new Error('expected the call to fail')
}

function responseHeaders(err: unknown): Record<string, string> {
  return (err as {$response?: {headers: Record<string, string>}}).$response?.headers ?? {}
}

beforeAll(async () => {
  kms = await startKmsServer({
    credentials: {[ACCESS_KEY]: SECRET_KEY, [OTHER_KEY]: SECRET_KEY},
    principals: {[ACCESS_KEY]: 'arn:aws:iam::111122223333:user/ci-bot'},
  })
})

afterAll(async () => {
  for (const c of clients) c.destroy()
  await kms.close()
})

afterEach(() => {
  kms.clearDenies()
  kms.clearFaults()
  kms.latencyMs = 0
})

describe('Encrypt / Decrypt', () => {
  it('round-trips with an EncryptionContext and returns the AWS response fields', async () => {
    const {keyId, arn} = kms.createKey({description: 'round trip'})
    const c = client()
    const ctx = {namespace: 'prod', secret: 'db-creds'}
    const out = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('hunter2'), EncryptionContext: ctx}))
    expect(out.KeyId).toBe(arn)
    expect(out.EncryptionAlgorithm).toBe('SYMMETRIC_DEFAULT')
    expect(out.CiphertextBlob).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(out.CiphertextBlob!).includes(Buffer.from('hunter2'))).toBe(false)
    expect(out.$metadata.httpStatusCode).toBe(200)
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/)

    // Context key order is irrelevant (canonicalised), KeyId is optional for symmetric keys.
    const back = await c.send(
      new DecryptCommand({CiphertextBlob: out.CiphertextBlob, EncryptionContext: {secret: 'db-creds', namespace: 'prod'}}),
    )
    expect(dec.decode(back.Plaintext)).toBe('hunter2')
    expect(back.KeyId).toBe(arn)
    expect(back.EncryptionAlgorithm).toBe('SYMMETRIC_DEFAULT')
    expect(back.KeyMaterialId).toMatch(/^[0-9a-f]{64}$/)

    const last = kms.calls.at(-1)!
    expect(last).toMatchObject({
      operation: 'Decrypt',
      keyId,
      status: 200,
      encryptionContext: {secret: 'db-creds', namespace: 'prod'},
      accessKeyId: ACCESS_KEY,
      attempt: 1,
    })
  })

  it('treats an empty EncryptionContext like no context', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    const out = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('x'), EncryptionContext: {}}))
    const back = await c.send(new DecryptCommand({CiphertextBlob: out.CiphertextBlob}))
    expect(dec.decode(back.Plaintext)).toBe('x')
  })

  it('rejects a wrong, missing or extra EncryptionContext with InvalidCiphertextException', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    const {CiphertextBlob} = await c.send(
      new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('s3cr3t'), EncryptionContext: {app: 'a'}}),
    )
    const contexts: (Record<string, string> | undefined)[] = [{app: 'b'}, undefined, {app: 'a', extra: '1'}, {APP: 'a'}]
    for (const EncryptionContext of contexts) {
      const err = await kmsError(c.send(new DecryptCommand({CiphertextBlob, EncryptionContext})))
      expect(err.name).toBe('InvalidCiphertextException')
      expect(err.$metadata.httpStatusCode).toBe(400)
      expect(err.$fault).toBe('client')
      // Real KMS sends no message for this exception; the SDK fills in 'UnknownError'.
      expect(err.message).toBe('UnknownError')
    }
    // Encrypted without context → decrypting with one fails too.
    const plain = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('s3cr3t')}))
    expect((await kmsError(c.send(new DecryptCommand({CiphertextBlob: plain.CiphertextBlob, EncryptionContext: {app: 'a'}})))).name).toBe(
      'InvalidCiphertextException',
    )
  })

  it('rejects corrupted or foreign ciphertext with InvalidCiphertextException', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    const {CiphertextBlob} = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('data')}))
    const flipped = Uint8Array.from(CiphertextBlob!)
    flipped[flipped.length - 1]! ^= 0x01
    const truncated = CiphertextBlob!.slice(0, 20)
    const garbage = enc.encode('definitely not a KMS ciphertext blob')
    for (const blob of [flipped, truncated, garbage]) {
      expect((await kmsError(c.send(new DecryptCommand({CiphertextBlob: blob})))).name).toBe('InvalidCiphertextException')
    }
  })

  it('Decrypt with a KeyId that did not encrypt the blob → IncorrectKeyException; matching alias works', async () => {
    const a = kms.createKey({alias: 'alias/decrypt-a'})
    const b = kms.createKey()
    const c = client()
    const {CiphertextBlob} = await c.send(new EncryptCommand({KeyId: a.keyId, Plaintext: enc.encode('p')}))
    const err = await kmsError(c.send(new DecryptCommand({CiphertextBlob, KeyId: b.keyId})))
    expect(err.name).toBe('IncorrectKeyException')
    expect(err.$metadata.httpStatusCode).toBe(400)
    const ok = await c.send(new DecryptCommand({CiphertextBlob, KeyId: 'alias/decrypt-a'}))
    expect(dec.decode(ok.Plaintext)).toBe('p')
  })

  it('validates Plaintext size (1..4096 bytes) with ValidationException', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    await expect(c.send(new EncryptCommand({KeyId: keyId, Plaintext: new Uint8Array(4096)}))).resolves.toBeDefined()
    const err = await kmsError(c.send(new EncryptCommand({KeyId: keyId, Plaintext: new Uint8Array(4097)})))
    expect(err.name).toBe('ValidationException')
    expect(err.message).toMatch(/failed to satisfy constraint: Member must have length less than or equal to 4096/)
    expect(err.$metadata.httpStatusCode).toBe(400)
  })

  it('honours DryRun with DryRunOperationException (412)', async () => {
    const {keyId} = kms.createKey()
    const err = await kmsError(client().send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p'), DryRun: true})))
    expect(err.name).toBe('DryRunOperationException')
    expect(err.$metadata.httpStatusCode).toBe(412)
  })
})

describe('key resolution', () => {
  it('accepts key id, key ARN, alias name and alias ARN', async () => {
    const {keyId, arn, aliasArn} = kms.createKey({alias: 'alias/kseal-test'})
    expect(aliasArn).toBe(`arn:aws:kms:${kms.region}:${kms.accountId}:alias/kseal-test`)
    const c = client()
    for (const ref of [keyId, arn, 'alias/kseal-test', aliasArn!]) {
      const out = await c.send(new EncryptCommand({KeyId: ref, Plaintext: enc.encode(ref)}))
      expect(out.KeyId).toBe(arn)
      const d = await c.send(new DescribeKeyCommand({KeyId: ref}))
      expect(d.KeyMetadata?.KeyId).toBe(keyId)
    }
  })

  it('unknown key id / alias → NotFoundException with the AWS messages (HTTP 400)', async () => {
    const c = client()
    const missing = '0b2ad402-1111-46ac-8888-000000000000'
    let err = await kmsError(c.send(new EncryptCommand({KeyId: missing, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('NotFoundException')
    expect(err.message).toBe(`Key 'arn:aws:kms:${kms.region}:${kms.accountId}:key/${missing}' does not exist`)
    expect(err.$metadata.httpStatusCode).toBe(400)

    err = await kmsError(c.send(new DescribeKeyCommand({KeyId: 'alias/nope'})))
    expect(err.name).toBe('NotFoundException')
    expect(err.message).toBe(`Alias arn:aws:kms:${kms.region}:${kms.accountId}:alias/nope is not found.`)

    err = await kmsError(c.send(new DescribeKeyCommand({KeyId: 'not-a-key-id'})))
    expect(err.name).toBe('NotFoundException')
    expect(err.message).toBe('Invalid keyId not-a-key-id')
  })

  it('a key ARN from another region → NotFoundException "Invalid arn <region>"', async () => {
    const {keyId} = kms.createKey()
    const err = await kmsError(
      client().send(new EncryptCommand({KeyId: `arn:aws:kms:eu-west-1:${kms.accountId}:key/${keyId}`, Plaintext: enc.encode('p')})),
    )
    expect(err.name).toBe('NotFoundException')
    expect(err.message).toBe('Invalid arn eu-west-1')
  })

  it('CreateKey and CreateAlias work through the SDK; duplicate alias → AlreadyExistsException', async () => {
    const c = client()
    const created = await c.send(new CreateKeyCommand({Description: 'made via SDK'}))
    const id = created.KeyMetadata!.KeyId!
    expect(created.KeyMetadata?.Arn).toBe(`arn:aws:kms:${kms.region}:${kms.accountId}:key/${id}`)
    await c.send(new CreateAliasCommand({AliasName: 'alias/sdk-made', TargetKeyId: id}))
    const d = await c.send(new DescribeKeyCommand({KeyId: 'alias/sdk-made'}))
    expect(d.KeyMetadata?.Description).toBe('made via SDK')
    const err = await kmsError(c.send(new CreateAliasCommand({AliasName: 'alias/sdk-made', TargetKeyId: id})))
    expect(err.name).toBe('AlreadyExistsException')
    expect(err.$metadata.httpStatusCode).toBe(400)
  })
})

describe('key states', () => {
  it('disabled key → DisabledException for Encrypt and Decrypt', async () => {
    const {keyId, arn} = kms.createKey()
    const c = client()
    const {CiphertextBlob} = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')}))
    kms.disableKey(keyId)
    let err = await kmsError(c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('DisabledException')
    expect(err.message).toBe(`${arn} is disabled.`)
    expect(err.$metadata.httpStatusCode).toBe(400)
    err = await kmsError(c.send(new DecryptCommand({CiphertextBlob})))
    expect(err.name).toBe('DisabledException')

    const created = kms.createKey({enabled: false})
    expect((await kmsError(c.send(new EncryptCommand({KeyId: created.keyId, Plaintext: enc.encode('p')})))).name).toBe('DisabledException')
  })

  it('key pending deletion → KMSInvalidStateException', async () => {
    const {keyId, arn} = kms.createKey()
    kms.scheduleDeletion(keyId, 7)
    const c = client()
    const err = await kmsError(c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('KMSInvalidStateException')
    expect(err.message).toBe(`${arn} is pending deletion.`)
    const d = await c.send(new DescribeKeyCommand({KeyId: keyId}))
    expect(d.KeyMetadata).toMatchObject({KeyState: 'PendingDeletion', Enabled: false, PendingDeletionWindowInDays: 7})
    expect(d.KeyMetadata?.DeletionDate).toBeInstanceOf(Date)
  })

  it('DescribeKey returns the AWS KeyMetadata fields', async () => {
    const before = Date.now()
    const {keyId, arn} = kms.createKey({description: 'kseal master key'})
    const {KeyMetadata: md} = await client().send(new DescribeKeyCommand({KeyId: keyId}))
    expect(md).toMatchObject({
      KeyId: keyId,
      Arn: arn,
      AWSAccountId: kms.accountId,
      Enabled: true,
      KeyState: 'Enabled',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      MultiRegion: false,
      Description: 'kseal master key',
    })
    // Sent as epoch seconds (a JSON number); the SDK turns it into a Date.
    expect(md?.CreationDate).toBeInstanceOf(Date)
    expect(md!.CreationDate!.getTime()).toBeGreaterThanOrEqual(before - 1)
    expect(md!.CreationDate!.getTime()).toBeLessThanOrEqual(Date.now())
  })
})

describe('GenerateDataKey', () => {
  it('returns Plaintext + CiphertextBlob that Decrypt opens (with the same context)', async () => {
    const {keyId, arn} = kms.createKey()
    const c = client()
    const ctx = {purpose: 'dek'}
    const dk = await c.send(new GenerateDataKeyCommand({KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: ctx}))
    expect(dk.KeyId).toBe(arn)
    expect(dk.Plaintext).toHaveLength(32)
    const back = await c.send(new DecryptCommand({CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx}))
    expect(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!))).toBe(true)
    expect((await kmsError(c.send(new DecryptCommand({CiphertextBlob: dk.CiphertextBlob})))).name).toBe('InvalidCiphertextException')

    expect((await c.send(new GenerateDataKeyCommand({KeyId: keyId, KeySpec: 'AES_128'}))).Plaintext).toHaveLength(16)
    expect((await c.send(new GenerateDataKeyCommand({KeyId: keyId, NumberOfBytes: 64}))).Plaintext).toHaveLength(64)
  })

  it('requires exactly one of KeySpec / NumberOfBytes', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    expect((await kmsError(c.send(new GenerateDataKeyCommand({KeyId: keyId})))).name).toBe('ValidationException')
    expect((await kmsError(c.send(new GenerateDataKeyCommand({KeyId: keyId, KeySpec: 'AES_256', NumberOfBytes: 32})))).name).toBe(
      'ValidationException',
    )
  })
})

describe('authentication and authorization', () => {
  it('deny rule → AccessDeniedException with the AWS message, scoped by action, key and access key', async () => {
    const {keyId, arn} = kms.createKey()
    const c = client()
    const {CiphertextBlob} = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')}))
    kms.deny({action: 'Decrypt', keyId, accessKeyId: ACCESS_KEY})

    const err = await kmsError(c.send(new DecryptCommand({CiphertextBlob})))
    expect(err.name).toBe('AccessDeniedException')
    expect(err.message).toBe(
      `User: arn:aws:iam::111122223333:user/ci-bot is not authorized to perform: kms:Decrypt on resource: ${arn} because no identity-based policy allows the kms:Decrypt action`,
    )
    expect(err.$metadata.httpStatusCode).toBe(400)
    // Encrypt is still allowed, and another caller may still decrypt.
    await expect(c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')}))).resolves.toBeDefined()
    const other = client({accessKeyId: OTHER_KEY})
    await expect(other.send(new DecryptCommand({CiphertextBlob}))).resolves.toBeDefined()
    // A rule given as an alias applies to the key behind it.
    const aliased = kms.createKey({alias: 'alias/denied'})
    kms.deny({action: 'Encrypt', keyId: 'alias/denied'})
    const err2 = await kmsError(other.send(new EncryptCommand({KeyId: aliased.keyId, Plaintext: enc.encode('p')})))
    expect(err2.name).toBe('AccessDeniedException')
    expect(err2.message).toContain(`user/AKIAOTHERCALLER00001 is not authorized to perform: kms:Encrypt on resource: ${aliased.arn}`)
  })

  it('a client configured for another region → InvalidSignatureException (credential scope)', async () => {
    const {keyId} = kms.createKey()
    const err = await kmsError(client({region: 'eu-west-1'}).send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('InvalidSignatureException')
    expect(err.message).toContain(`not 'eu-west-1'`)
    expect(err.$metadata.httpStatusCode).toBe(400)
    expect(kms.calls.at(-1)).toMatchObject({operation: 'Encrypt', errorType: 'InvalidSignatureException', status: 400})
  })

  it('missing Authorization header → MissingAuthenticationTokenException', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    // Runs after the SigV4 signer and removes what it added.
    type Middleware = Parameters<KMSClient['middlewareStack']['addRelativeTo']>[0]
    type Args = {request: {headers: Record<string, string>}}
    const stripAuthorization = (next: (args: Args) => Promise<unknown>) => async (args: Args) => {
      delete args.request.headers.authorization
      return next(args)
    }
    c.middlewareStack.addRelativeTo(stripAuthorization as unknown as Middleware, {
      relation: 'after',
      toMiddleware: 'httpSigningMiddleware',
      name: 'stripAuthorization',
    })
    const err = await kmsError(c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('MissingAuthenticationTokenException')
    expect(err.$metadata.httpStatusCode).toBe(400)
    expect(kms.calls.at(-1)).toMatchObject({errorType: 'MissingAuthenticationTokenException', accessKeyId: undefined})
  })

  it('unknown access key → UnrecognizedClientException', async () => {
    const strict = await startKmsServer({credentials: {[ACCESS_KEY]: 'x'}})
    try {
      const {keyId} = strict.createKey()
      const mk = (accessKeyId: string) => {
        const c = new KMSClient({
          endpoint: strict.url,
          region: strict.region,
          maxAttempts: 1,
          credentials: {accessKeyId, secretAccessKey: 'x'},
        })
        clients.push(c)
        return c
      }
      await expect(mk(ACCESS_KEY).send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')}))).resolves.toBeDefined()
      const err = await kmsError(mk('AKIAUNKNOWN000000000').send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
      expect(err.name).toBe('UnrecognizedClientException')
    } finally {
      await strict.close()
    }
  })
})

describe('error wire format', () => {
  it('errors carry __type, message, x-amzn-ErrorType and x-amzn-RequestId', async () => {
    const err = await kmsError(client().send(new DescribeKeyCommand({KeyId: 'alias/none'})))
    expect(responseHeaders(err)['x-amzn-errortype']).toMatch(/^NotFoundException:/)
    expect(responseHeaders(err)['content-type']).toBe('application/x-amz-json-1.1')
    expect(err.$metadata.requestId).toBe(kms.calls.at(-1)!.requestId)
  })
})

describe('fault and latency injection', () => {
  it('ThrottlingException bursts (HTTP 400) are retried by the standard retry strategy', async () => {
    const {keyId} = kms.createKey()
    const c = client({maxAttempts: 3})
    kms.resetStats()
    kms.failNext(2, 'ThrottlingException', {operation: 'Encrypt'})
    const out = await c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')}))
    expect(out.$metadata.attempts).toBe(3)
    const calls = kms.calls.filter((x) => x.operation === 'Encrypt')
    expect(calls.map((x) => [x.attempt, x.status, x.errorType])).toEqual([
      [1, 400, 'ThrottlingException'],
      [2, 400, 'ThrottlingException'],
      [3, 200, undefined],
    ])
    expect(new Set(calls.map((x) => x.invocationId)).size).toBe(1)
    expect(kms.count('Encrypt')).toBe(3)
  })

  it('a throttling burst longer than maxAttempts surfaces ThrottlingException', async () => {
    const {keyId} = kms.createKey()
    kms.failNext(5, 'ThrottlingException')
    const err = await kmsError(client({maxAttempts: 2}).send(new DescribeKeyCommand({KeyId: keyId})))
    expect(err.name).toBe('ThrottlingException')
    expect(err.$metadata.httpStatusCode).toBe(400)
    expect(err.$metadata.attempts).toBe(2)
  })

  it('KMSInternalException → HTTP 500, server fault, retried as transient', async () => {
    const {keyId} = kms.createKey()
    kms.resetStats()
    kms.failNext(2, 'KMSInternalException', {operation: 'Encrypt'})
    const err = await kmsError(client({maxAttempts: 2}).send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode('p')})))
    expect(err.name).toBe('KMSInternalException')
    expect(err.$metadata.httpStatusCode).toBe(500)
    expect(err.$fault).toBe('server')
    expect(err.$metadata.attempts).toBe(2)
    expect(kms.calls.map((x) => x.status)).toEqual([500, 500])
  })

  it('latency injection is observed by the caller', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    kms.latencyMs = 150
    const t0 = Date.now()
    await c.send(new DescribeKeyCommand({KeyId: keyId}))
    expect(Date.now() - t0).toBeGreaterThanOrEqual(145)
    expect(kms.calls.at(-1)!.durationMs).toBeGreaterThanOrEqual(145)
  })

  it('records maxInFlight for concurrent calls', async () => {
    const {keyId} = kms.createKey()
    const c = client()
    kms.latencyMs = 100
    kms.resetStats()
    expect(kms.maxInFlight).toBe(0)
    const results = await Promise.all(
      Array.from({length: 10}, (_, i) => c.send(new EncryptCommand({KeyId: keyId, Plaintext: enc.encode(`v${i}`)}))),
    )
    expect(results).toHaveLength(10)
    expect(kms.maxInFlight).toBe(10)
    expect(kms.inFlight).toBe(0)
    expect(kms.count('Encrypt')).toBe(10)
  })
})
