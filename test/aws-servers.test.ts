/**
 * The local Secrets Manager and SSM Parameter Store servers and the AWS core under them (SigV4
 * verification, faults, throttling, call log), exercised through the real @aws-sdk clients over
 * real sockets: they are only useful to the ExternalSecret providers if the SDKs see them as AWS.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from '@jest/globals'
import {request} from 'node:http'
import {
  BatchGetSecretValueCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  paginateListSecrets,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager'
import {
  DescribeParametersCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  paginateGetParametersByPath,
  SSMClient,
} from '@aws-sdk/client-ssm'
import {TestClock} from './support/clock.js'
import {AwsIam} from './support/aws/iam.js'
import {serviceError} from './support/aws/service-error.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {AuthFailure, canonicalRequest, verifySigV4} from './support/aws/sigv4.js'
import {type SsmServer, startSsmServer} from './support/aws/ssm.js'

const ACCESS_KEY = 'AKIAKSEALEXTSRV00001'
const SECRET_KEY = 'extsrv/test/secret/not/a/real/one/0000'
const READER = 'AKIAKSEALREADER00001'

const clock = new TestClock()
const iam = new AwsIam({clock})
iam.addAccessKey(ACCESS_KEY, SECRET_KEY, 'arn:aws:iam::111122223333:user/ci')
iam.addAccessKey(READER, SECRET_KEY, 'arn:aws:iam::111122223333:user/reader')
let sm: SecretsManagerServer
let ssm: SsmServer
const destroy: {destroy(): void}[] = []

function smClient(
  opts: Partial<SecretsManagerClientConfig> & {accessKeyId?: string; secretAccessKey?: string; sessionToken?: string} = {},
): SecretsManagerClient {
  const {accessKeyId = ACCESS_KEY, secretAccessKey = SECRET_KEY, sessionToken, ...rest} = opts
  const c = new SecretsManagerClient({
    endpoint: sm.url,
    region: 'us-east-1',
    maxAttempts: 1,
    credentials: {accessKeyId, secretAccessKey, sessionToken},
    ...rest,
  })
  destroy.push(c)
  return c
}

function ssmClient(accessKeyId = ACCESS_KEY): SSMClient {
  const c = new SSMClient({endpoint: ssm.url, region: 'us-east-1', maxAttempts: 1, credentials: {accessKeyId, secretAccessKey: SECRET_KEY}})
  destroy.push(c)
  return c
}

type Middleware = Parameters<SecretsManagerClient['middlewareStack']['addRelativeTo']>[0]
interface SignedArgs {
  request: {method: string; path: string; headers: Record<string, string>; body: string | Uint8Array}
}

const text = (body: string | Uint8Array) => (typeof body === 'string' ? body : new TextDecoder().decode(body))

/** Run `change` on every request after the SDK signed it (a man in the middle, or a capture). */
function afterSigning(c: SecretsManagerClient, change: (req: SignedArgs['request']) => void): void {
  const mw = (next: (args: SignedArgs) => Promise<unknown>) => async (args: SignedArgs) => {
    change(args.request)
    return next(args)
  }
  c.middlewareStack.addRelativeTo(mw as unknown as Middleware, {
    relation: 'after',
    toMiddleware: 'httpSigningMiddleware',
    name: `afterSigning${Math.random()}`,
  })
}

/** Send bytes as-is (no client adds or rewrites anything). */
function rawPost(url: string, headers: Record<string, string>, body: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request(url, {method: 'POST', headers}, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d) => (text += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body: text}))
    })
    req.on('error', reject)
    req.end(body)
  })
}

beforeAll(async () => {
  sm = await startSecretsManagerServer({iam})
  ssm = await startSsmServer({iam})
})

afterAll(async () => {
  for (const c of destroy) c.destroy()
  await sm.close()
  await ssm.close()
})

afterEach(() => {
  for (const s of [sm, ssm]) {
    s.clearDenies()
    s.clearFaults()
    s.clearThrottles()
    s.latencyMs = 0
    s.listScanLimit = Infinity
  }
})

describe('SigV4 verification (shared AWS core)', () => {
  it('accepts the AWS Signature Version 4 test-suite vector "get-vanilla" and refuses it with any part changed', () => {
    const lookup = (id: string) =>
      id === 'AKIDEXAMPLE' ? {accessKeyId: id, secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'} : undefined
    const headers = [
      'Host',
      'example.amazonaws.com',
      'X-Amz-Date',
      '20150830T123600Z',
      'Authorization',
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    ]
    const req = {method: 'GET', url: '/', rawHeaders: headers, body: Buffer.alloc(0)}
    const opts = {region: 'us-east-1', service: 'service', now: Date.UTC(2015, 7, 30, 12, 36), lookup}
    expect(canonicalRequest(req, ['host', 'x-amz-date'])).toBe(
      'GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
    expect(verifySigV4(req, opts).accessKeyId).toBe('AKIDEXAMPLE')
    const kind = (r: typeof req) => {
      try {
        verifySigV4(r, opts)
        return 'accepted'
      } catch (e) {
        return (e as AuthFailure).kind
      }
    }
    expect(kind({...req, method: 'POST'})).toBe('signature')
    expect(kind({...req, url: '/?a=b'})).toBe('signature')
    expect(kind({...req, body: Buffer.from('x')})).toBe('signature')
    expect(kind({...req, rawHeaders: headers.map((h) => (h === 'example.amazonaws.com' ? 'evil.amazonaws.com' : h))})).toBe('signature')
    expect(kind({...req, rawHeaders: headers.map((h) => h.replace('5fa00fa3', '5fa00fa4'))})).toBe('signature')
    expect(kind({...req, rawHeaders: headers.map((h) => h.replace('AKIDEXAMPLE/', 'AKIDOTHER/'))})).toBe('unrecognized')
    expect(kind({...req, rawHeaders: headers.slice(0, 4)})).toBe('missing')

    // Credential scope date, five minutes of clock skew either way, host signed, no stray session token.
    const message = (r: typeof req, now = opts.now) => {
      try {
        verifySigV4(r, {...opts, now})
        return 'accepted'
      } catch (e) {
        return `${(e as AuthFailure).kind}: ${(e as AuthFailure).message}`
      }
    }
    expect(message({...req, rawHeaders: headers.map((h) => h.replace('AKIDEXAMPLE/20150830/', 'AKIDEXAMPLE/20150831/'))})).toBe(
      "signature: Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830', from '20150830T123600Z'.",
    )
    expect(message(req, opts.now + 300_000)).toBe('accepted')
    expect(message(req, opts.now + 301_000)).toBe(
      'signature: Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)',
    )
    expect(message(req, opts.now - 301_000)).toBe(
      'signature: Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T123059Z + 5 min.)',
    )
    expect(message({...req, rawHeaders: headers.map((h) => h.replace('SignedHeaders=host;x-amz-date', 'SignedHeaders=x-amz-date'))})).toBe(
      "signature: 'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    )
    expect(message({...req, rawHeaders: [...headers, 'X-Amz-Security-Token', 'made-up']})).toBe(
      'unrecognized: The security token included in the request is invalid.',
    )
    expect(
      message({...req, rawHeaders: headers.map((h) => h.replace('Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ', ''))}),
    ).toBe("incomplete: Authorization header requires 'Credential' parameter. Authorization=AWS4-HMAC-SHA256")
  })

  it('a signed request re-sent byte for byte is accepted; with one signed header or the body changed it is refused', async () => {
    sm.createSecret('resend/one', 'v1')
    let captured: SignedArgs['request'] | undefined
    const c = smClient()
    afterSigning(c, (r) => (captured = {...r, headers: {...r.headers}, body: text(r.body)}))
    await c.send(new GetSecretValueCommand({SecretId: 'resend/one'}))
    const url = `${sm.url}${captured!.path}`
    expect((await rawPost(url, captured!.headers, text(captured!.body))).status).toBe(200)

    const target = await rawPost(url, {...captured!.headers, 'x-amz-target': 'secretsmanager.DescribeSecret'}, text(captured!.body))
    expect(target.status).toBe(400)
    expect(JSON.parse(target.body)).toMatchObject({__type: 'com.amazon.coral.service#InvalidSignatureException'})
    expect(JSON.parse(target.body).message).toContain('The request signature we calculated does not match the signature you provided.')
    expect(JSON.parse(target.body).message).toContain('x-amz-target:secretsmanager.DescribeSecret')

    const body = await rawPost(url, captured!.headers, text(captured!.body).replace('resend/one', 'resend/two'))
    expect(JSON.parse(body.body).__type).toBe('com.amazon.coral.service#InvalidSignatureException')
    expect(sm.calls.slice(-3).map((x) => [x.operation, x.status, x.errorType])).toEqual([
      ['GetSecretValue', 200, undefined],
      ['DescribeSecret', 400, 'InvalidSignatureException'],
      ['GetSecretValue', 400, 'InvalidSignatureException'],
    ])
  })

  it('a body changed in flight after signing → InvalidSignatureException through the SDK', async () => {
    sm.createSecret('mitm/a', 'a')
    sm.createSecret('mitm/b', 'b')
    const c = smClient()
    afterSigning(c, (r) => (r.body = text(r.body).replace('mitm/a', 'mitm/b')))
    const err = await serviceError(c.send(new GetSecretValueCommand({SecretId: 'mitm/a'})))
    expect(err.name).toBe('InvalidSignatureException')
    expect(err.$metadata.httpStatusCode).toBe(400)
  })

  it('wrong secret key → InvalidSignatureException; unknown access key → UnrecognizedClientException; no Authorization → MissingAuthenticationTokenException', async () => {
    sm.createSecret('auth/x', 'x')
    const wrong = await serviceError(smClient({secretAccessKey: 'not-the-secret'}).send(new GetSecretValueCommand({SecretId: 'auth/x'})))
    expect(wrong.name).toBe('InvalidSignatureException')
    expect(wrong.message).toMatch(/^The request signature we calculated does not match the signature you provided\./)
    expect(wrong.message).toContain("The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n")

    const unknown = await serviceError(
      smClient({accessKeyId: 'AKIANOBODY0000000000'}).send(new GetSecretValueCommand({SecretId: 'auth/x'})),
    )
    expect([unknown.name, unknown.message, unknown.$metadata.httpStatusCode]).toEqual([
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
      400,
    ])

    const stripped = smClient()
    afterSigning(stripped, (r) => delete r.headers.authorization)
    const missing = await serviceError(stripped.send(new GetSecretValueCommand({SecretId: 'auth/x'})))
    expect(missing.name).toBe('MissingAuthenticationTokenException')
    expect(sm.calls.at(-1)).toMatchObject({errorType: 'MissingAuthenticationTokenException', accessKeyId: undefined, principal: undefined})
  })

  it('the credential scope must name this region and service', async () => {
    sm.createSecret('scope/x', 'x')
    const region = await serviceError(smClient({region: 'eu-west-1'}).send(new GetSecretValueCommand({SecretId: 'scope/x'})))
    expect([region.name, region.message]).toEqual([
      'InvalidSignatureException',
      "Credential should be scoped to a valid region, not 'eu-west-1'. ",
    ])
    // An SSM-signed request replayed at Secrets Manager: scoped to the wrong service.
    const c = ssmClient()
    let captured: SignedArgs['request'] | undefined
    afterSigning(c as unknown as SecretsManagerClient, (r) => (captured = {...r, headers: {...r.headers}, body: text(r.body)}))
    await serviceError(c.send(new GetParameterCommand({Name: '/nothing/here'})))
    const res = await rawPost(`${sm.url}/`, {...captured!.headers, 'x-amz-target': 'secretsmanager.ListSecrets'}, text(captured!.body))
    expect(JSON.parse(res.body)).toEqual({
      __type: 'com.amazon.coral.service#InvalidSignatureException',
      message: "Credential should be scoped to correct service: 'secretsmanager'. ",
    })
  })

  it('temporary credentials need their session token and stop working when they expire', async () => {
    sm.createSecret('session/x', 'x')
    const role = iam.createRole('session-test', {principals: [`arn:aws:iam::${iam.accountId}:root`]})
    const s = iam.issueSession(role, 'unit', 900)
    const ok = await smClient({accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken}).send(
      new GetSecretValueCommand({SecretId: 'session/x'}),
    )
    expect(ok.SecretString).toBe('x')
    expect(sm.calls.at(-1)!.principal).toBe(`arn:aws:sts::${iam.accountId}:assumed-role/session-test/unit`)

    for (const sessionToken of [undefined, `${s.sessionToken}x`]) {
      const err = await serviceError(
        smClient({accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken}).send(
          new GetSecretValueCommand({SecretId: 'session/x'}),
        ),
      )
      expect([err.name, err.message]).toEqual(['UnrecognizedClientException', 'The security token included in the request is invalid.'])
    }

    // 16 minutes later (server time). The SDK's first attempt is signed on its own clock and refused
    // as skewed; it corrects its clock from the Date header, and the retry meets the expiry.
    const before = clock.offsetMs
    clock.advance(16 * 60_000)
    try {
      const late = smClient({accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken, maxAttempts: 2})
      const err = await serviceError(late.send(new GetSecretValueCommand({SecretId: 'session/x'})))
      expect([err.name, err.message, err.$metadata.httpStatusCode]).toEqual([
        'ExpiredTokenException',
        'The security token included in the request is expired',
        400,
      ])
      expect(sm.calls.slice(-2).map((x) => x.errorType)).toEqual(['InvalidSignatureException', 'ExpiredTokenException'])
    } finally {
      clock.offsetMs = before
    }
  })

  it('a client whose clock is 10 minutes slow is refused once, corrects itself from the Date header, and retries', async () => {
    sm.createSecret('skew/x', 'x')
    const c = smClient({maxAttempts: 3, systemClockOffset: -10 * 60_000})
    const out = await c.send(new GetSecretValueCommand({SecretId: 'skew/x'}))
    expect(out.SecretString).toBe('x')
    expect(out.$metadata.attempts).toBe(2)
    const [first] = sm.calls.slice(-2)
    expect(first).toMatchObject({errorType: 'InvalidSignatureException', status: 400})
  })

  it('errors carry __type, message, x-amzn-ErrorType and x-amzn-RequestId; the call log names the caller', async () => {
    const err = await serviceError(smClient().send(new GetSecretValueCommand({SecretId: 'no/such/secret'})))
    expect(err.$response?.headers['x-amzn-errortype']).toBe(
      'ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.secretsmanager/',
    )
    expect(err.$response?.headers['content-type']).toBe('application/x-amz-json-1.1')
    expect(err.$metadata.requestId).toBe(sm.calls.at(-1)!.requestId)
    expect(sm.calls.at(-1)).toMatchObject({
      service: 'secretsmanager',
      operation: 'GetSecretValue',
      secretId: 'no/such/secret',
      status: 400,
      errorType: 'ResourceNotFoundException',
      accessKeyId: ACCESS_KEY,
      principal: 'arn:aws:iam::111122223333:user/ci',
      attempt: 1,
    })
  })
})

describe('Secrets Manager', () => {
  it('GetSecretValue by name, full ARN and partial ARN; SecretString and SecretBinary', async () => {
    const ref = sm.createSecret('app/db', JSON.stringify({user: 'app', password: 'hunter2'}))
    const bin = sm.createSecret('app/cert', Uint8Array.from([0, 1, 2, 255]))
    const c = smClient()
    for (const id of ['app/db', ref.arn, ref.arn.slice(0, -7)]) {
      const out = await c.send(new GetSecretValueCommand({SecretId: id}))
      expect(out).toMatchObject({ARN: ref.arn, Name: 'app/db', VersionId: ref.versionId, VersionStages: ['AWSCURRENT']})
      expect(JSON.parse(out.SecretString!)).toEqual({user: 'app', password: 'hunter2'})
      expect(out.SecretBinary).toBeUndefined()
      expect(out.CreatedDate).toBeInstanceOf(Date)
    }
    expect(ref.arn).toMatch(/^arn:aws:secretsmanager:us-east-1:111122223333:secret:app\/db-[A-Za-z0-9]{6}$/)
    const b = await c.send(new GetSecretValueCommand({SecretId: bin.arn}))
    expect([...b.SecretBinary!]).toEqual([0, 1, 2, 255])
    expect(b.SecretString).toBeUndefined()
    // A partial ARN in another region or account, or a name that is only a prefix, finds nothing.
    for (const id of [ref.arn.replace('us-east-1', 'eu-west-1'), ref.arn.replace('111122223333', '999999999999'), 'app/d']) {
      const err = await serviceError(c.send(new GetSecretValueCommand({SecretId: id})))
      expect([err.name, err.message, err.$metadata.httpStatusCode]).toEqual([
        'ResourceNotFoundException',
        "Secrets Manager can't find the specified secret.",
        400,
      ])
    }
  })

  it('versions and staging labels: AWSCURRENT, AWSPREVIOUS, custom labels, VersionId', async () => {
    const {versionId: v1} = sm.createSecret('rotating', 'one')
    const v2 = sm.putSecretValue('rotating', 'two')
    const v3 = sm.putSecretValue('rotating', 'three', {stages: ['AWSPENDING']})
    expect(sm.versionStages('rotating')).toEqual({[v1!]: ['AWSPREVIOUS'], [v2]: ['AWSCURRENT'], [v3]: ['AWSPENDING']})
    const c = smClient()
    const get = (input: {VersionId?: string; VersionStage?: string}) => c.send(new GetSecretValueCommand({SecretId: 'rotating', ...input}))
    expect((await get({})).SecretString).toBe('two')
    expect((await get({VersionStage: 'AWSPREVIOUS'})).SecretString).toBe('one')
    expect((await get({VersionStage: 'AWSPENDING'})).SecretString).toBe('three')
    expect(await get({VersionId: v1!})).toMatchObject({SecretString: 'one', VersionId: v1, VersionStages: ['AWSPREVIOUS']})
    expect((await get({VersionId: v2, VersionStage: 'AWSCURRENT'})).SecretString).toBe('two')

    // Rotation finishes: AWSCURRENT moves to v3, AWSPREVIOUS follows to v2, v1 keeps no label.
    sm.updateVersionStage('rotating', 'AWSCURRENT', {moveTo: v3, removeFrom: v2})
    sm.updateVersionStage('rotating', 'AWSPENDING', {removeFrom: v3})
    expect(sm.versionStages('rotating')).toEqual({[v2]: ['AWSPREVIOUS'], [v3]: ['AWSCURRENT']})
    expect((await get({})).SecretString).toBe('three')
    expect((await get({VersionId: v1!})).VersionStages).toEqual([])

    const mismatch = await serviceError(get({VersionId: v1!, VersionStage: 'AWSCURRENT'}))
    expect([mismatch.name, mismatch.message]).toEqual([
      'InvalidRequestException',
      'You provided a VersionStage that is not associated to the provided VersionId.',
    ])
    const noVersion = await serviceError(get({VersionId: '00000000-0000-0000-0000-000000000000'}))
    expect([noVersion.name, noVersion.message]).toEqual([
      'ResourceNotFoundException',
      "Secrets Manager can't find the specified secret value for VersionId: 00000000-0000-0000-0000-000000000000",
    ])
    const noStage = await serviceError(get({VersionStage: 'blue'}))
    expect(noStage.message).toBe("Secrets Manager can't find the specified secret value for staging label: blue")
    const short = await serviceError(get({VersionId: 'abc'}))
    expect([short.name, short.message]).toEqual([
      'ValidationException',
      "1 validation error detected: Value at 'versionId' failed to satisfy constraint: Member must have length greater than or equal to 32",
    ])

    sm.createSecret('no-value-yet')
    expect((await serviceError(c.send(new GetSecretValueCommand({SecretId: 'no-value-yet'})))).message).toBe(
      "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
    )
  })

  it('a secret marked for deletion: reads refused, described with DeletedDate, listed only with IncludePlannedDeletion, restorable', async () => {
    sm.createSecret('doomed/x', 'x')
    sm.deleteSecret('doomed/x', {recoveryWindowDays: 7})
    const c = smClient()
    const err = await serviceError(c.send(new GetSecretValueCommand({SecretId: 'doomed/x'})))
    expect([err.name, err.message]).toEqual([
      'InvalidRequestException',
      "You can't perform this operation on the secret because it was marked for deletion.",
    ])
    const d = await c.send(new DescribeSecretCommand({SecretId: 'doomed/x'}))
    expect(d.DeletedDate!.getTime() - clock.now()).toBeGreaterThan(6.9 * 86_400_000)
    const names = async (IncludePlannedDeletion?: boolean) =>
      (await c.send(new ListSecretsCommand({IncludePlannedDeletion, Filters: [{Key: 'name', Values: ['doomed/']}]}))).SecretList!.map(
        (s) => s.Name,
      )
    expect(await names()).toEqual([])
    expect(await names(true)).toEqual(['doomed/x'])
    sm.restoreSecret('doomed/x')
    expect((await c.send(new GetSecretValueCommand({SecretId: 'doomed/x'}))).SecretString).toBe('x')
  })

  it('DecryptionFailure when the secret cannot be decrypted', async () => {
    sm.createSecret('kms-broken', 'x', {kmsKeyId: 'alias/gone'})
    sm.setUndecryptable('kms-broken')
    const err = await serviceError(smClient().send(new GetSecretValueCommand({SecretId: 'kms-broken'})))
    expect([err.name, err.message, err.$metadata.httpStatusCode]).toEqual([
      'DecryptionFailure',
      "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
      400,
    ])
  })

  it('DescribeSecret returns the metadata fields, never a value', async () => {
    const ref = sm.createSecret('described', 'top-secret-value', {
      description: 'db creds',
      tags: {team: 'payments', env: 'prod'},
      kmsKeyId: 'alias/app',
    })
    const d = await smClient().send(new DescribeSecretCommand({SecretId: 'described'}))
    expect(d).toMatchObject({
      ARN: ref.arn,
      Name: 'described',
      Description: 'db creds',
      KmsKeyId: 'alias/app',
      RotationEnabled: false,
      Tags: [
        {Key: 'team', Value: 'payments'},
        {Key: 'env', Value: 'prod'},
      ],
      VersionIdsToStages: {[ref.versionId!]: ['AWSCURRENT']},
    })
    expect(d.CreatedDate).toBeInstanceOf(Date)
    expect(d.LastChangedDate).toBeInstanceOf(Date)
    expect(JSON.stringify(d)).not.toContain('top-secret-value')
  })

  it('AccessDeniedException from the deny table, checked before the secret is looked up', async () => {
    sm.createSecret('team-a/db', 'a')
    sm.createSecret('team-b/db', 'b')
    sm.deny({action: 'GetSecretValue', resource: 'team-b/*', accessKeyId: READER})
    const reader = smClient({accessKeyId: READER})
    expect((await reader.send(new GetSecretValueCommand({SecretId: 'team-a/db'}))).SecretString).toBe('a')
    for (const id of ['team-b/db', 'team-b/does-not-exist']) {
      const err = await serviceError(reader.send(new GetSecretValueCommand({SecretId: id})))
      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['AccessDeniedException', 400])
      expect(err.message).toBe(
        `User: arn:aws:iam::111122223333:user/reader is not authorized to perform: secretsmanager:GetSecretValue on resource: ${id} because no identity-based policy allows the secretsmanager:GetSecretValue action`,
      )
    }
    // The rule also covers the secret by ARN; other callers and other actions are not affected.
    const {ARN: arn} = await smClient().send(new DescribeSecretCommand({SecretId: 'team-b/db'}))
    expect((await serviceError(reader.send(new GetSecretValueCommand({SecretId: arn!})))).name).toBe('AccessDeniedException')
    expect((await smClient().send(new GetSecretValueCommand({SecretId: 'team-b/db'}))).SecretString).toBe('b')
    expect((await reader.send(new DescribeSecretCommand({SecretId: 'team-b/db'}))).Name).toBe('team-b/db')
  })

  it('ListSecrets filters: prefix matches with AWS case rules, negation, values OR, filters AND', async () => {
    sm.createSecret('flt/alpha', '1', {description: 'Payments Database', tags: {team: 'payments', env: 'prod'}})
    sm.createSecret('flt/Beta', '2', {description: 'search index', tags: {team: 'search', env: 'dev'}})
    sm.createSecret('flt/gamma', '3', {tags: {'team-lead': 'ann', env: 'prod'}})
    const c = smClient()
    const list = async (...Filters: {Key: 'name' | 'description' | 'tag-key' | 'tag-value' | 'all'; Values: string[]}[]) =>
      (await c.send(new ListSecretsCommand({Filters: [{Key: 'name', Values: ['flt/']}, ...Filters], SortOrder: 'asc'}))).SecretList!.map(
        (s) => s.Name,
      )
    expect(await list()).toEqual(['flt/alpha', 'flt/Beta', 'flt/gamma'])
    expect(await list({Key: 'name', Values: ['flt/b']})).toEqual([]) // name: case-sensitive
    expect(await list({Key: 'name', Values: ['flt/B', 'flt/g']})).toEqual(['flt/Beta', 'flt/gamma'])
    expect(await list({Key: 'description', Values: ['payments']})).toEqual(['flt/alpha']) // description: case-insensitive
    expect(await list({Key: 'tag-key', Values: ['team']})).toEqual(['flt/alpha', 'flt/Beta', 'flt/gamma']) // prefix: team-lead too
    expect(await list({Key: 'tag-key', Values: ['team-']})).toEqual(['flt/gamma'])
    expect(await list({Key: 'tag-value', Values: ['prod']})).toEqual(['flt/alpha', 'flt/gamma'])
    expect(await list({Key: 'tag-value', Values: ['!prod']})).toEqual(['flt/Beta'])
    // tag-key and tag-value filters are independent: any tag with the key, any tag with the value.
    expect(await list({Key: 'tag-key', Values: ['env']}, {Key: 'tag-value', Values: ['ann']})).toEqual(['flt/gamma'])
    expect(await list({Key: 'all', Values: ['DATABASE']})).toEqual(['flt/alpha'])
    const bad = await serviceError(c.send(new ListSecretsCommand({Filters: [{Key: 'colour' as 'name', Values: ['x']}]})))
    expect(bad.name).toBe('ValidationException')
    expect(bad.message).toContain("at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set")
  })

  it('ListSecrets pagination: MaxResults pages, NextToken bound to its query, short pages followed to the end', async () => {
    for (let i = 0; i < 7; i++) sm.createSecret(`page/s${i}`, `${i}`, {tags: {parity: i % 2 ? 'odd' : 'even'}})
    const c = smClient()
    const Filters = [{Key: 'name' as const, Values: ['page/']}]
    const first = await c.send(new ListSecretsCommand({Filters, MaxResults: 3, SortOrder: 'asc'}))
    expect(first.SecretList!.map((s) => s.Name)).toEqual(['page/s0', 'page/s1', 'page/s2'])
    expect(first.NextToken).toBeDefined()
    const names: string[] = []
    for await (const p of paginateListSecrets({client: c, pageSize: 3}, {Filters, SortOrder: 'asc'}))
      names.push(...p.SecretList!.map((s) => s.Name!))
    expect(names).toEqual(['page/s0', 'page/s1', 'page/s2', 'page/s3', 'page/s4', 'page/s5', 'page/s6'])

    const replayed = await serviceError(
      c.send(new ListSecretsCommand({Filters: [{Key: 'name', Values: ['page/s']}], NextToken: first.NextToken})),
    )
    expect([replayed.name, replayed.message]).toEqual(['InvalidNextTokenException', 'The NextToken value is invalid.'])
    expect((await serviceError(c.send(new ListSecretsCommand({MaxResults: 101})))).name).toBe('ValidationException')

    // AWS may filter after reading a slice: pages come back short or empty, with a NextToken.
    sm.listScanLimit = 2
    const pages: number[] = []
    const odd: string[] = []
    for await (const p of paginateListSecrets(
      {client: c, pageSize: 10},
      {Filters: [...Filters, {Key: 'tag-value', Values: ['odd']}], SortOrder: 'asc'},
    )) {
      pages.push(p.SecretList!.length)
      odd.push(...p.SecretList!.map((s) => s.Name!))
    }
    expect(odd).toEqual(['page/s1', 'page/s3', 'page/s5'])
    expect(pages.length).toBeGreaterThan(3)
    expect(pages).toContain(0)
  })

  it('BatchGetSecretValue: by id list (per-secret Errors) and by filters (paged)', async () => {
    sm.createSecret('batch/a', 'A')
    sm.createSecret('batch/b', 'B')
    sm.createSecret('batch/c', 'C')
    sm.deny({action: 'GetSecretValue', resource: 'batch/c', accessKeyId: READER})
    const reader = smClient({accessKeyId: READER})
    const out = await reader.send(new BatchGetSecretValueCommand({SecretIdList: ['batch/a', 'batch/missing', 'batch/c']}))
    expect(out.SecretValues!.map((v) => [v.Name, v.SecretString, v.VersionStages])).toEqual([['batch/a', 'A', ['AWSCURRENT']]])
    expect(out.Errors!.map((e) => [e.SecretId, e.ErrorCode])).toEqual([
      ['batch/missing', 'ResourceNotFoundException'],
      ['batch/c', 'AccessDeniedException'],
    ])
    const c = smClient()
    const values: string[] = []
    let NextToken: string | undefined
    do {
      const p = await c.send(new BatchGetSecretValueCommand({Filters: [{Key: 'name', Values: ['batch/']}], MaxResults: 2, NextToken}))
      values.push(...p.SecretValues!.map((v) => v.SecretString!))
      NextToken = p.NextToken
    } while (NextToken)
    expect(values.sort()).toEqual(['A', 'B', 'C'])
    const both = await serviceError(
      c.send(new BatchGetSecretValueCommand({SecretIdList: ['batch/a'], Filters: [{Key: 'name', Values: ['batch/']}]})),
    )
    expect(both.name).toBe('InvalidParameterException')
  })

  it('throttling: a token bucket answers ThrottlingException "Rate exceeded"; the SDK retries injected throttles', async () => {
    sm.createSecret('throttled', 'x')
    sm.throttle({perSecond: 1, burst: 2, operation: 'GetSecretValue'})
    const c = smClient()
    await c.send(new GetSecretValueCommand({SecretId: 'throttled'}))
    await c.send(new GetSecretValueCommand({SecretId: 'throttled'}))
    const err = await serviceError(c.send(new GetSecretValueCommand({SecretId: 'throttled'})))
    expect([err.name, err.message, err.$metadata.httpStatusCode]).toEqual(['ThrottlingException', 'Rate exceeded', 400])
    clock.advance(1000)
    expect((await c.send(new GetSecretValueCommand({SecretId: 'throttled'}))).SecretString).toBe('x')
    sm.clearThrottles()

    sm.resetStats()
    sm.failNext(1, 'ThrottlingException', {operation: 'GetSecretValue', message: 'Rate exceeded'})
    const retried = await smClient({maxAttempts: 3}).send(new GetSecretValueCommand({SecretId: 'throttled'}))
    expect(retried.$metadata.attempts).toBe(2)
    expect(sm.calls.map((x) => [x.attempt, x.status, x.errorType])).toEqual([
      [1, 400, 'ThrottlingException'],
      [2, 200, undefined],
    ])
    expect(new Set(sm.calls.map((x) => x.invocationId)).size).toBe(1)

    sm.failNext(1, 'InternalServiceError')
    const internal = await serviceError(smClient().send(new GetSecretValueCommand({SecretId: 'throttled'})))
    expect([internal.name, internal.$metadata.httpStatusCode, internal.$fault]).toEqual(['InternalServiceError', 500, 'server'])
  })

  it('the call log and the errors never carry a secret value', async () => {
    sm.createSecret('never-logged', 'value-that-must-not-leak')
    sm.resetStats()
    const c = smClient()
    await c.send(new GetSecretValueCommand({SecretId: 'never-logged'}))
    await c.send(new BatchGetSecretValueCommand({SecretIdList: ['never-logged']}))
    await serviceError(c.send(new GetSecretValueCommand({SecretId: 'never-logged', VersionStage: 'nope'})))
    expect(sm.calls).toHaveLength(3)
    expect(JSON.stringify(sm.calls)).not.toContain('value-that-must-not-leak')
  })
})

describe('SSM Parameter Store', () => {
  beforeAll(() => {
    ssm.putParameter('/app/db/user', 'app')
    ssm.putParameter('/app/db/password', 'v1-secret', {type: 'SecureString'})
    ssm.putParameter('/app/db/password', 'v2-secret')
    ssm.putParameter('/app/db/password', 'v3-secret')
    ssm.labelParameterVersion('/app/db/password', ['stable'], 2)
    ssm.putParameter('/app/hosts', 'a.example,b.example', {type: 'StringList'})
    ssm.putParameter('/app/feature/flags/x', 'on', {tags: {env: 'prod'}})
    ssm.putParameter('/other/thing', 'o', {tags: {env: 'dev'}})
    ssm.putParameter('plain-name', 'p')
  })

  it('GetParameter: String, StringList, SecureString with and without decryption; response fields', async () => {
    const c = ssmClient()
    const user = await c.send(new GetParameterCommand({Name: '/app/db/user'}))
    expect(user.Parameter).toMatchObject({
      Name: '/app/db/user',
      Type: 'String',
      Value: 'app',
      Version: 1,
      DataType: 'text',
      ARN: 'arn:aws:ssm:us-east-1:111122223333:parameter/app/db/user',
    })
    expect(user.Parameter!.LastModifiedDate).toBeInstanceOf(Date)
    expect((await c.send(new GetParameterCommand({Name: '/app/hosts'}))).Parameter).toMatchObject({
      Type: 'StringList',
      Value: 'a.example,b.example',
    })
    const secret = await c.send(new GetParameterCommand({Name: '/app/db/password', WithDecryption: true}))
    expect(secret.Parameter).toMatchObject({Type: 'SecureString', Value: 'v3-secret', Version: 3})
    const cipher = await c.send(new GetParameterCommand({Name: '/app/db/password'}))
    expect(cipher.Parameter!.Value).toMatch(/^AQICAHh[A-Za-z0-9+/=]+$/)
    expect(cipher.Parameter!.Value).not.toContain('v3-secret')
    expect((await c.send(new GetParameterCommand({Name: 'plain-name'}))).Parameter!.ARN).toBe(
      'arn:aws:ssm:us-east-1:111122223333:parameter/plain-name',
    )
  })

  it('selectors: name:version and name:label (echoed in Selector), also after an ARN', async () => {
    const c = ssmClient()
    const v1 = await c.send(new GetParameterCommand({Name: '/app/db/password:1', WithDecryption: true}))
    expect(v1.Parameter).toMatchObject({Name: '/app/db/password', Value: 'v1-secret', Version: 1, Selector: ':1'})
    const stable = await c.send(new GetParameterCommand({Name: '/app/db/password:stable', WithDecryption: true}))
    expect(stable.Parameter).toMatchObject({Value: 'v2-secret', Version: 2, Selector: ':stable'})
    const byArn = await c.send(
      new GetParameterCommand({Name: 'arn:aws:ssm:us-east-1:111122223333:parameter/app/db/password:2', WithDecryption: true}),
    )
    expect(byArn.Parameter).toMatchObject({Name: '/app/db/password', Value: 'v2-secret', Selector: ':2'})
  })

  it('ParameterNotFound (no message, as AWS) and ParameterVersionNotFound', async () => {
    const c = ssmClient()
    for (const Name of ['/app/missing', '/app/db/password:nolabel']) {
      const err = await serviceError(c.send(new GetParameterCommand({Name})))
      expect([err.name, err.$metadata.httpStatusCode]).toEqual(['ParameterNotFound', 400])
      expect(err.message).toBe('UnknownError') // the SDK's text when the body has no message
    }
    const ver = await serviceError(c.send(new GetParameterCommand({Name: '/app/db/password:9'})))
    expect([ver.name, ver.message]).toEqual([
      'ParameterVersionNotFound',
      'Systems Manager could not find version 9 of /app/db/password. Verify the version and try again.',
    ])
  })

  it('GetParameters returns the found ones and lists the rest as InvalidParameters', async () => {
    const out = await ssmClient().send(
      new GetParametersCommand({Names: ['/app/db/user', '/nope', '/app/db/password:7', '/app/db/password:1'], WithDecryption: true}),
    )
    expect(out.Parameters!.map((p) => [p.Name, p.Value])).toEqual([
      ['/app/db/user', 'app'],
      ['/app/db/password', 'v1-secret'],
    ])
    expect(out.InvalidParameters).toEqual(['/nope', '/app/db/password:7'])
    const tooMany = await serviceError(ssmClient().send(new GetParametersCommand({Names: Array.from({length: 11}, (_, i) => `/p${i}`)})))
    expect(tooMany.name).toBe('ValidationException')
  })

  it('GetParametersByPath: one level or recursive, filters, pages of at most 10', async () => {
    const c = ssmClient()
    const names = async (input: {
      Path: string
      Recursive?: boolean
      ParameterFilters?: {Key: string; Option?: string; Values: string[]}[]
    }) => {
      const out: string[] = []
      for await (const p of paginateGetParametersByPath({client: c, pageSize: 2}, {...input, WithDecryption: true}))
        out.push(...p.Parameters!.map((x) => `${x.Name}=${x.Value}`))
      return out
    }
    expect(await names({Path: '/app'})).toEqual(['/app/hosts=a.example,b.example'])
    expect(await names({Path: '/app/db/'})).toEqual(['/app/db/password=v3-secret', '/app/db/user=app'])
    expect(await names({Path: '/app', Recursive: true})).toEqual([
      '/app/db/password=v3-secret',
      '/app/db/user=app',
      '/app/feature/flags/x=on',
      '/app/hosts=a.example,b.example',
    ])
    expect(await names({Path: '/', Recursive: true})).toHaveLength(5)
    expect(await names({Path: '/app', Recursive: true, ParameterFilters: [{Key: 'Type', Values: ['SecureString']}]})).toEqual([
      '/app/db/password=v3-secret',
    ])
    // With a Label filter the labelled version is returned.
    expect(await names({Path: '/app', Recursive: true, ParameterFilters: [{Key: 'Label', Values: ['stable']}]})).toEqual([
      '/app/db/password=v2-secret',
    ])

    const first = await c.send(new GetParametersByPathCommand({Path: '/app', Recursive: true, MaxResults: 2}))
    expect(first.Parameters).toHaveLength(2)
    const replay = await serviceError(c.send(new GetParametersByPathCommand({Path: '/other', NextToken: first.NextToken})))
    expect([replay.name, replay.message]).toEqual(['InvalidNextToken', "The specified token isn't valid."])
    expect((await serviceError(c.send(new GetParametersByPathCommand({Path: '/app', MaxResults: 11})))).name).toBe('ValidationException')
    const tag = await serviceError(
      c.send(new GetParametersByPathCommand({Path: '/app', ParameterFilters: [{Key: 'tag:env', Values: ['prod']}]})),
    )
    expect(tag.name).toBe('InvalidFilterKey')
    const label = await serviceError(
      c.send(new GetParametersByPathCommand({Path: '/app', ParameterFilters: [{Key: 'Label', Option: 'BeginsWith', Values: ['st']}]})),
    )
    expect(label.name).toBe('InvalidFilterOption')
    const path = await serviceError(c.send(new GetParametersByPathCommand({Path: 'app'})))
    expect([path.name, path.message]).toEqual([
      'ValidationException',
      expect.stringContaining('The parameter name must begin with a forward slash "/".'),
    ])
  })

  it('DescribeParameters with ParameterFilters: tags, name prefix, path level; metadata fields, no values', async () => {
    const c = ssmClient()
    const names = async (ParameterFilters: {Key: string; Option?: string; Values?: string[]}[]) =>
      (await c.send(new DescribeParametersCommand({ParameterFilters}))).Parameters!.map((p) => p.Name)
    expect(await names([{Key: 'tag:env', Values: ['prod']}])).toEqual(['/app/feature/flags/x'])
    expect(await names([{Key: 'tag-key', Values: ['env']}])).toEqual(['/app/feature/flags/x', '/other/thing'])
    expect(await names([{Key: 'Name', Option: 'BeginsWith', Values: ['/app/db']}])).toEqual(['/app/db/password', '/app/db/user'])
    expect(await names([{Key: 'Path', Option: 'OneLevel', Values: ['/app']}])).toEqual(['/app/hosts'])
    const meta = (await c.send(new DescribeParametersCommand({ParameterFilters: [{Key: 'Name', Values: ['/app/db/password']}]})))
      .Parameters![0]!
    expect(meta).toMatchObject({
      Name: '/app/db/password',
      Type: 'SecureString',
      KeyId: 'alias/aws/ssm',
      Version: 3,
      Tier: 'Standard',
      DataType: 'text',
    })
    expect(JSON.stringify(meta)).not.toContain('secret')
    expect((await serviceError(c.send(new DescribeParametersCommand({ParameterFilters: [{Key: 'Label', Values: ['stable']}]})))).name).toBe(
      'InvalidFilterKey',
    )
  })

  it('AccessDeniedException names the parameter ARN; throttling answers ThrottlingException', async () => {
    ssm.deny({action: 'GetParameter', resource: 'arn:aws:ssm:us-east-1:111122223333:parameter/app/db/*', accessKeyId: READER})
    const reader = ssmClient(READER)
    expect((await reader.send(new GetParameterCommand({Name: '/app/hosts'}))).Parameter!.Value).toBe('a.example,b.example')
    const err = await serviceError(reader.send(new GetParameterCommand({Name: '/app/db/password:stable'})))
    expect([err.name, err.message]).toEqual([
      'AccessDeniedException',
      'User: arn:aws:iam::111122223333:user/reader is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:111122223333:parameter/app/db/password because no identity-based policy allows the ssm:GetParameter action',
    ])
    ssm.throttle({perSecond: 1, burst: 1})
    const c = ssmClient()
    await c.send(new GetParameterCommand({Name: '/app/hosts'}))
    const t = await serviceError(c.send(new GetParameterCommand({Name: '/app/hosts'})))
    expect([t.name, t.message]).toEqual(['ThrottlingException', 'Rate exceeded'])
    expect(ssm.calls.at(-1)).toMatchObject({
      operation: 'GetParameter',
      status: 400,
      errorType: 'ThrottlingException',
      accessKeyId: ACCESS_KEY,
    })
    expect(JSON.stringify(ssm.calls)).not.toContain('v3-secret')
  })
})

describe('shared core', () => {
  it('latency injection and in-flight counters', async () => {
    sm.createSecret('slow', 'x')
    sm.latencyMs = 120
    sm.resetStats()
    const c = smClient()
    await Promise.all(Array.from({length: 5}, () => c.send(new GetSecretValueCommand({SecretId: 'slow'}))))
    expect(sm.maxInFlight).toBe(5)
    expect(sm.inFlight).toBe(0)
    expect(Math.min(...sm.calls.map((x) => x.durationMs))).toBeGreaterThanOrEqual(115)
  })
})
