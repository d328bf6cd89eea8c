/**
 * The local STS server through the real @aws-sdk/client-sts, @aws-sdk/credential-providers and the
 * SDK's default credential chain: AssumeRole, AssumeRoleWithWebIdentity with ServiceAccount tokens
 * from the Kubernetes test server's TokenRequest (IRSA), and the credentials it issues used against
 * the Secrets Manager test server, which verifies them.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {mkdtempSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {GetSecretValueCommand, SecretsManagerClient} from '@aws-sdk/client-secrets-manager'
import {AssumeRoleCommand, AssumeRoleWithWebIdentityCommand, GetCallerIdentityCommand, STSClient} from '@aws-sdk/client-sts'
import {fromTemporaryCredentials} from '@aws-sdk/credential-providers'
import {AwsIam} from './support/aws/iam.js'
import {serviceError} from './support/aws/service-error.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {type StsServer, startStsServer} from './support/aws/sts.js'
import {cleanEnv, ROOT, run} from './support/cli.js'
import {TestClock} from './support/clock.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'

const NS = 'payments'
const ACCOUNT = '111122223333'
const DEPLOYER = {accessKeyId: 'AKIAKSEALDEPLOYER001', secretAccessKey: 'deployer/secret/not/a/real/one'}
const STRANGER = {accessKeyId: 'AKIAKSEALSTRANGER001', secretAccessKey: 'stranger/secret/not/a/real/one'}
const READER_ROLE = `arn:aws:iam::${ACCOUNT}:role/payments-reader`

const clock = new TestClock()
const iam = new AwsIam({clock, accountId: ACCOUNT})
let k8s: K8sApiServer
let sts: StsServer
let sm: SecretsManagerServer
const clients: {destroy(): void}[] = []

function stsClient(credentials?: {accessKeyId: string; secretAccessKey: string; sessionToken?: string}): STSClient {
  const c = new STSClient({endpoint: sts.url, region: 'us-east-1', maxAttempts: 1, ...(credentials ? {credentials} : {})})
  clients.push(c)
  return c
}

function smClient(
  credentials: SecretsManagerClient['config']['credentials'] | {accessKeyId: string; secretAccessKey: string; sessionToken?: string},
): SecretsManagerClient {
  const c = new SecretsManagerClient({endpoint: sm.url, region: 'us-east-1', maxAttempts: 1, credentials})
  clients.push(c)
  return c
}

/** A projected-style ServiceAccount token from the test API server (TokenRequest). */
function saToken(name: string, audiences = ['sts.amazonaws.com'], expirationSeconds = 3600): string {
  return k8s.issueServiceAccountToken(NS, name, {audiences, expirationSeconds}).token
}

function webIdentity(token: string, extra: {RoleArn?: string; DurationSeconds?: number; RoleSessionName?: string} = {}) {
  return stsClient().send(
    new AssumeRoleWithWebIdentityCommand({RoleArn: READER_ROLE, RoleSessionName: 'kseal-controller', WebIdentityToken: token, ...extra}),
  )
}

beforeAll(async () => {
  k8s = await startK8sApiServer({namespaces: ['default', NS], tokens: {clock}})
  for (const name of ['kseal-controller', 'intruder'])
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name, namespace: NS}})
  iam.addAccessKey(DEPLOYER.accessKeyId, DEPLOYER.secretAccessKey, `arn:aws:iam::${ACCOUNT}:user/deployer`)
  iam.addAccessKey(STRANGER.accessKeyId, STRANGER.secretAccessKey, `arn:aws:iam::${ACCOUNT}:user/stranger`)
  iam.createOidcProvider(k8s.serviceAccountIssuer, ['sts.amazonaws.com'])
  iam.createRole(
    READER_ROLE.split('/')[1]!,
    {webIdentity: {issuer: k8s.serviceAccountIssuer, subjects: [`system:serviceaccount:${NS}:kseal-controller`]}},
    {maxSessionDurationSeconds: 7200},
  )
  iam.createRole(
    'deploy',
    {principals: [`arn:aws:iam::${ACCOUNT}:user/deployer`], externalId: 'kseal-42'},
    {maxSessionDurationSeconds: 43_200},
  )
  iam.createRole('chained', {principals: [`arn:aws:iam::${ACCOUNT}:role/deploy`]}, {maxSessionDurationSeconds: 43_200})
  sts = await startStsServer({iam})
  sm = await startSecretsManagerServer({iam})
  sm.createSecret('payments/db', JSON.stringify({password: 'p4ss'}))
  sm.createSecret('billing/db', 'b')
  sm.deny({action: 'GetSecretValue', resource: 'billing/*', principal: READER_ROLE})
})

afterAll(async () => {
  for (const c of clients) c.destroy()
  await Promise.all([k8s.close(), sts.close(), sm.close()])
})

describe('AssumeRoleWithWebIdentity (IRSA)', () => {
  it('exchanges a ServiceAccount token for credentials that Secrets Manager accepts', async () => {
    const token = saToken('kseal-controller')
    const out = await webIdentity(token, {DurationSeconds: 3600})
    expect(out).toMatchObject({
      SubjectFromWebIdentityToken: `system:serviceaccount:${NS}:kseal-controller`,
      Audience: 'sts.amazonaws.com',
      Provider: `arn:aws:iam::${ACCOUNT}:oidc-provider/${k8s.serviceAccountIssuer.replace('http://', '')}`,
      AssumedRoleUser: {
        Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/payments-reader/kseal-controller`,
        AssumedRoleId: expect.stringMatching(/^AROA[A-Z2-7]{17}:kseal-controller$/),
      },
    })
    const creds = out.Credentials!
    expect(creds.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(creds.Expiration!.getTime() - clock.now()).toBeGreaterThan(3590_000)
    expect(sts.calls.at(-1)).toMatchObject({
      operation: 'AssumeRoleWithWebIdentity',
      status: 200,
      subject: `system:serviceaccount:${NS}:kseal-controller`,
      issuedAccessKeyId: creds.AccessKeyId,
    })

    const c = smClient({accessKeyId: creds.AccessKeyId!, secretAccessKey: creds.SecretAccessKey!, sessionToken: creds.SessionToken!})
    expect(JSON.parse((await c.send(new GetSecretValueCommand({SecretId: 'payments/db'}))).SecretString!)).toEqual({password: 'p4ss'})
    expect(sm.calls.at(-1)).toMatchObject({
      principal: `arn:aws:sts::${ACCOUNT}:assumed-role/payments-reader/kseal-controller`,
      accessKeyId: creds.AccessKeyId,
    })
    // The deny rule on the role covers its sessions.
    const denied = await serviceError(c.send(new GetSecretValueCommand({SecretId: 'billing/db'})))
    expect(denied.message).toBe(
      `User: arn:aws:sts::${ACCOUNT}:assumed-role/payments-reader/kseal-controller is not authorized to perform: secretsmanager:GetSecretValue on resource: billing/db because no identity-based policy allows the secretsmanager:GetSecretValue action`,
    )
  })

  it('refuses tokens for another audience, another ServiceAccount, forged, expired, or from an unregistered or unreachable issuer', async () => {
    const audience = await serviceError(webIdentity(saToken('kseal-controller', ['vault'])))
    expect([audience.name, audience.message, audience.$metadata.httpStatusCode]).toEqual([
      'InvalidIdentityTokenException',
      'Incorrect token audience',
      400,
    ])

    const other = await serviceError(webIdentity(saToken('intruder')))
    expect([other.name, other.message, other.$metadata.httpStatusCode]).toEqual([
      'AccessDenied',
      'Not authorized to perform sts:AssumeRoleWithWebIdentity',
      403,
    ])

    const [h, p, s] = saToken('intruder').split('.')
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString())
    const forged = `${h}.${Buffer.from(JSON.stringify({...claims, sub: `system:serviceaccount:${NS}:kseal-controller`})).toString('base64url')}.${s}`
    const forgedErr = await serviceError(webIdentity(forged))
    expect(forgedErr.name).toBe('InvalidIdentityTokenException')
    expect(forgedErr.message).toMatch(/could not be validated/)

    const expiring = saToken('kseal-controller', ['sts.amazonaws.com'], 600)
    const before = clock.offsetMs
    try {
      clock.advance(601_000)
      const expired = await serviceError(webIdentity(expiring))
      expect(expired.name).toBe('ExpiredTokenException')
      expect(expired.message).toMatch(/^Token expired: current date\/time \d+ must be before the expiration date\/time\d+$/)
    } finally {
      clock.offsetMs = before
    }

    const elsewhere = await startK8sApiServer({namespaces: [NS]})
    try {
      elsewhere.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'kseal-controller', namespace: NS}})
      const foreign = await serviceError(
        webIdentity(elsewhere.issueServiceAccountToken(NS, 'kseal-controller', {audiences: ['sts.amazonaws.com']}).token),
      )
      expect([foreign.name, foreign.message]).toEqual([
        'InvalidIdentityTokenException',
        `No OpenIDConnect provider found in your account for ${elsewhere.serviceAccountIssuer}`,
      ])
      // Registered, but its discovery endpoint cannot be reached when STS needs its keys.
      iam.createOidcProvider(elsewhere.serviceAccountIssuer)
      const token = elsewhere.issueServiceAccountToken(NS, 'kseal-controller', {audiences: ['sts.amazonaws.com']}).token
      await elsewhere.close()
      const unreachable = await serviceError(webIdentity(token))
      expect(unreachable.name).toBe('IDPCommunicationErrorException')
    } finally {
      await elsewhere.close()
    }
  })

  it('validates the request: unknown role, session duration, session name', async () => {
    const token = saToken('kseal-controller')
    const noRole = await serviceError(webIdentity(token, {RoleArn: `arn:aws:iam::${ACCOUNT}:role/nope`}))
    expect([noRole.name, noRole.$metadata.httpStatusCode]).toEqual(['AccessDenied', 403])
    const long = await serviceError(webIdentity(token, {DurationSeconds: 7201}))
    expect([long.name, long.message]).toEqual([
      'ValidationError',
      'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.',
    ])
    const short = await serviceError(webIdentity(token, {DurationSeconds: 899}))
    expect(short.message).toBe(
      "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
    )
    const name = await serviceError(webIdentity(token, {RoleSessionName: 'has space'}))
    expect([name.name, name.$metadata.httpStatusCode]).toEqual(['ValidationError', 400])
  })

  it('the SDK default credential chain (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ENDPOINT_URL_STS) gets credentials and signs a Secrets Manager call', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-irsa-'))
    const tokenFile = path.join(dir, 'token')
    writeFileSync(tokenFile, saToken('kseal-controller'))
    sts.resetStats()
    sm.resetStats()
    const program = `
      import {SecretsManagerClient, GetSecretValueCommand} from '@aws-sdk/client-secrets-manager'
      const client = new SecretsManagerClient({})
      const out = await client.send(new GetSecretValueCommand({SecretId: 'payments/db'}))
      process.stdout.write(out.SecretString)
    `
    const r = await run(process.execPath, ['--input-type=module', '-e', program], {
      cwd: ROOT,
      env: cleanEnv({
        AWS_REGION: 'us-east-1',
        AWS_ROLE_ARN: READER_ROLE,
        AWS_ROLE_SESSION_NAME: 'irsa-test',
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ENDPOINT_URL_STS: sts.url,
        AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'none'),
        AWS_CONFIG_FILE: path.join(dir, 'none'),
      }),
    })
    expect(r.stderr).not.toMatch(/Error/)
    expect([r.code, JSON.parse(r.stdout)]).toEqual([0, {password: 'p4ss'}])
    expect(sts.calls.map((c) => [c.operation, c.status, c.roleSessionName, c.subject])).toEqual([
      ['AssumeRoleWithWebIdentity', 200, 'irsa-test', `system:serviceaccount:${NS}:kseal-controller`],
    ])
    expect(sm.calls.map((c) => [c.operation, c.status, c.principal, c.accessKeyId])).toEqual([
      ['GetSecretValue', 200, `arn:aws:sts::${ACCOUNT}:assumed-role/payments-reader/irsa-test`, sts.calls[0]!.issuedAccessKeyId],
    ])
  })
})

describe('AssumeRole and GetCallerIdentity', () => {
  it('a trusted user assumes a role (ExternalId checked); GetCallerIdentity names the session', async () => {
    const c = stsClient(DEPLOYER)
    const out = await c.send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${ACCOUNT}:role/deploy`,
        RoleSessionName: 'ci',
        ExternalId: 'kseal-42',
        DurationSeconds: 7200,
      }),
    )
    expect(out.AssumedRoleUser!.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/deploy/ci`)
    const session = {
      accessKeyId: out.Credentials!.AccessKeyId!,
      secretAccessKey: out.Credentials!.SecretAccessKey!,
      sessionToken: out.Credentials!.SessionToken!,
    }
    const who = await stsClient(session).send(new GetCallerIdentityCommand({}))
    expect(who).toMatchObject({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/deploy/ci`,
      UserId: out.AssumedRoleUser!.AssumedRoleId,
    })
    expect((await stsClient(DEPLOYER).send(new GetCallerIdentityCommand({}))).Arn).toBe(`arn:aws:iam::${ACCOUNT}:user/deployer`)

    // Role chaining: the session may assume `chained`, for at most an hour.
    const chained = stsClient(session)
    const tooLong = await serviceError(
      chained.send(new AssumeRoleCommand({RoleArn: `arn:aws:iam::${ACCOUNT}:role/chained`, RoleSessionName: 'xy', DurationSeconds: 3601})),
    )
    expect(tooLong.message).toBe('The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.')
    expect(
      (await chained.send(new AssumeRoleCommand({RoleArn: `arn:aws:iam::${ACCOUNT}:role/chained`, RoleSessionName: 'xy'}))).AssumedRoleUser!
        .Arn,
    ).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/chained/xy`)
  })

  it('an untrusted caller, a missing ExternalId or an unknown role → AccessDenied (403)', async () => {
    const deploy = `arn:aws:iam::${ACCOUNT}:role/deploy`
    const stranger = await serviceError(
      stsClient(STRANGER).send(new AssumeRoleCommand({RoleArn: deploy, RoleSessionName: 'xy', ExternalId: 'kseal-42'})),
    )
    expect([stranger.name, stranger.message, stranger.$metadata.httpStatusCode]).toEqual([
      'AccessDenied',
      `User: arn:aws:iam::${ACCOUNT}:user/stranger is not authorized to perform: sts:AssumeRole on resource: ${deploy}`,
      403,
    ])
    expect((await serviceError(stsClient(DEPLOYER).send(new AssumeRoleCommand({RoleArn: deploy, RoleSessionName: 'xy'})))).name).toBe(
      'AccessDenied',
    )
    expect(
      (
        await serviceError(
          stsClient(DEPLOYER).send(new AssumeRoleCommand({RoleArn: `arn:aws:iam::${ACCOUNT}:role/none`, RoleSessionName: 'xy'})),
        )
      ).name,
    ).toBe('AccessDenied')
  })

  it('fromTemporaryCredentials (what a store naming a role will use) assumes the role and signs Secrets Manager calls with the session', async () => {
    sm.resetStats()
    const credentials = fromTemporaryCredentials({
      masterCredentials: DEPLOYER,
      params: {RoleArn: `arn:aws:iam::${ACCOUNT}:role/deploy`, RoleSessionName: 'store', ExternalId: 'kseal-42'},
      clientConfig: {endpoint: sts.url, region: 'us-east-1'},
    })
    expect((await smClient(credentials).send(new GetSecretValueCommand({SecretId: 'billing/db'}))).SecretString).toBe('b')
    expect(sm.calls.at(-1)!.principal).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/deploy/store`)
  })

  it('SigV4 failures in the awsQuery codes: SignatureDoesNotMatch, InvalidClientTokenId, ExpiredToken (403)', async () => {
    const wrong = await serviceError(stsClient({...DEPLOYER, secretAccessKey: 'wrong'}).send(new GetCallerIdentityCommand({})))
    expect([wrong.name, wrong.$metadata.httpStatusCode]).toEqual(['SignatureDoesNotMatch', 403])
    expect(wrong.message).toMatch(/^The request signature we calculated does not match/)
    const unknown = await serviceError(
      stsClient({accessKeyId: 'AKIANOBODY0000000000', secretAccessKey: 'x'}).send(new GetCallerIdentityCommand({})),
    )
    expect([unknown.name, unknown.message, unknown.$metadata.httpStatusCode]).toEqual([
      'InvalidClientTokenId',
      'The security token included in the request is invalid.',
      403,
    ])

    const out = await stsClient(DEPLOYER).send(
      new AssumeRoleCommand({
        RoleArn: `arn:aws:iam::${ACCOUNT}:role/deploy`,
        RoleSessionName: 'brief',
        ExternalId: 'kseal-42',
        DurationSeconds: 900,
      }),
    )
    const session = {
      accessKeyId: out.Credentials!.AccessKeyId!,
      secretAccessKey: out.Credentials!.SecretAccessKey!,
      sessionToken: out.Credentials!.SessionToken!,
    }
    const before = clock.offsetMs
    try {
      clock.advance(901_000)
      // Clients whose clocks agree with the server's, 15 minutes on.
      const late = new STSClient({
        endpoint: sts.url,
        region: 'us-east-1',
        maxAttempts: 1,
        credentials: session,
        systemClockOffset: clock.offsetMs,
      })
      clients.push(late)
      const expired = await serviceError(late.send(new GetCallerIdentityCommand({})))
      expect([expired.name, expired.message, expired.$metadata.httpStatusCode]).toEqual([
        'ExpiredToken',
        'The security token included in the request is expired',
        403,
      ])
      const lateSm = new SecretsManagerClient({
        endpoint: sm.url,
        region: 'us-east-1',
        maxAttempts: 1,
        credentials: session,
        systemClockOffset: clock.offsetMs,
      })
      clients.push(lateSm)
      expect((await serviceError(lateSm.send(new GetSecretValueCommand({SecretId: 'billing/db'})))).name).toBe('ExpiredTokenException')
    } finally {
      clock.offsetMs = before
    }
  })

  it('errors are <ErrorResponse> XML with Type, Code, Message and RequestId; unknown actions → InvalidAction', async () => {
    const res = await fetch(`${sts.url}/`, {
      method: 'POST',
      headers: {'content-type': 'application/x-www-form-urlencoded'},
      body: 'Action=GetFederationToken&Version=2011-06-15',
    })
    expect(res.status).toBe(400)
    expect(res.headers.get('content-type')).toBe('text/xml')
    const requestId = res.headers.get('x-amzn-requestid')
    expect(await res.text()).toBe(
      `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidAction</Code>` +
        `<Message>Could not find operation GetFederationToken for version 2011-06-15</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
    )
    sts.failNext(1, 'Throttling', {message: 'Rate exceeded'})
    const throttled = await serviceError(stsClient(DEPLOYER).send(new GetCallerIdentityCommand({})))
    expect([throttled.name, throttled.message, throttled.$metadata.httpStatusCode]).toEqual(['Throttling', 'Rate exceeded', 400])
  })
})
