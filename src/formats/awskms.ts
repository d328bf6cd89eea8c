/**
 * AWS KMS for other tools' files (SOPS, kubesec): a data key encrypted or decrypted as those tools
 * do it — their EncryptionContext (or none), and for SOPS the IAM role to assume and the AWS
 * profile an entry names. Everything else is kseal's awskms backend: its region-from-ARN,
 * endpoint, credential, timeout and retry settings, its in-flight cap and its one-line errors.
 *
 * An entry's role is assumed with STS AssumeRole (session name `kseal@<host>`, as sops uses
 * `sops@<host>`), with the environment's credentials (or the entry's profile), against
 * `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` when set; the assumed credentials are used for that
 * entry only. The STS client is imported only when an entry names a role.
 */
import os from 'node:os'
import {AwsKmsBackend, clientConfig, type KmsArn, kmsSettings, parseKmsArn} from '../../keys/awskms.js'
import type {Backends} from '../../keys/index.js'
import type {BackendContext} from '../../keys/types.js'
import {KsealError} from '../core/errors.js'

export interface KmsKeyRef {
  arn: string
  /** The EncryptionContext the data key was encrypted with. */
  context?: Record<string, string>
  /** An IAM role ARN to assume for this key. */
  role?: string
  /** A named AWS profile for this key. */
  profile?: string
}

const ROLE_RE = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/
const PROFILE_RE = /^[\w.+@-]{1,128}$/

type Env = Record<string, string | undefined>

/** KMS calls for foreign formats, sharing the run's awskms backend (clients, cap) when no role or profile is named. */
export class ForeignKms {
  /** Backends for other credentials (a profile, an assumed role), one per distinct set. */
  private readonly others = new Map<string, Promise<{backend: AwsKmsBackend; ctx: BackendContext}>>()

  constructor(private readonly backends: Backends) {}

  private keyArn(ref: KmsKeyRef): KmsArn {
    const arn = parseKmsArn(ref.arn)
    if (!arn)
      throw new KsealError(
        'ERR_INPUT',
        `${ref.arn.slice(0, 200)}: not a KMS key or alias ARN (arn:aws:kms:<region>:<account>:key/<id> or alias/<name>)`,
      )
    if (ref.role !== undefined && !ROLE_RE.test(ref.role))
      throw new KsealError('ERR_INPUT', `${ref.role.slice(0, 200)}: not an IAM role ARN`)
    if (ref.profile !== undefined && !PROFILE_RE.test(ref.profile))
      throw new KsealError('ERR_INPUT', 'the AWS profile named with a KMS key is not a profile name')
    return arn
  }

  /** The backend and context whose credentials this key is used with. */
  private async backendFor(ref: KmsKeyRef, arn: KmsArn): Promise<{backend: AwsKmsBackend; ctx: BackendContext}> {
    const base = this.backends.ctx
    if (!ref.role && !ref.profile) return {backend: (await this.backends.get('awskms')) as AwsKmsBackend, ctx: base}
    const id = JSON.stringify([ref.profile ?? '', ref.role ?? '', arn.region])
    let b = this.others.get(id)
    if (!b) {
      b = (async () => {
        let env: Env = ref.profile ? {...base.env, AWS_PROFILE: ref.profile} : {...base.env}
        if (ref.role) env = {...(await assumeRole(env, ref.role, arn)), AWS_PROFILE: undefined}
        return {backend: new AwsKmsBackend(), ctx: {...base, env}}
      })()
      this.others.set(id, b)
    }
    return b
  }

  async decrypt(ref: KmsKeyRef, ciphertext: Buffer): Promise<Buffer> {
    const arn = this.keyArn(ref)
    const {backend, ctx} = await this.backendFor(ref, arn)
    const out = await backend.call(ctx, {op: 'Decrypt', arn: arn.arn, region: arn.region}, (sdk, client) =>
      client.send(
        new sdk.DecryptCommand({KeyId: arn.arn, CiphertextBlob: ciphertext, ...(ref.context ? {EncryptionContext: ref.context} : {})}),
      ),
    )
    return Buffer.from(out.Plaintext ?? [])
  }

  async encrypt(ref: KmsKeyRef, plaintext: Buffer): Promise<Buffer> {
    const arn = this.keyArn(ref)
    const {backend, ctx} = await this.backendFor(ref, arn)
    const out = await backend.call(ctx, {op: 'Encrypt', arn: arn.arn, region: arn.region}, (sdk, client) =>
      client.send(new sdk.EncryptCommand({KeyId: arn.arn, Plaintext: plaintext, ...(ref.context ? {EncryptionContext: ref.context} : {})})),
    )
    if (!out.CiphertextBlob?.length) throw new KsealError('ERR_BACKEND', `AWS KMS returned no ciphertext for ${arn.arn}`)
    return Buffer.from(out.CiphertextBlob)
  }

  async close(): Promise<void> {
    const all = await Promise.allSettled(this.others.values())
    this.others.clear()
    await Promise.all(all.map((r) => (r.status === 'fulfilled' ? r.value.backend.close() : undefined)))
  }
}

/** Assumes `role` with the credentials of `env`; returns an environment holding the temporary credentials. */
async function assumeRole(env: Env, role: string, arn: KmsArn): Promise<Env> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const sts = await import('@aws-sdk/client-sts')
  const settings = kmsSettings(env)
  // The KMS client's settings (region, credentials or profile, timeouts, retries), another endpoint.
  const {region, credentials, profile, requestHandler, maxAttempts, retryMode} = clientConfig(env, arn.region, settings)
  const client = new sts.STSClient({
    region,
    credentials,
    profile,
    requestHandler,
    maxAttempts,
    retryMode,
    endpoint: env.AWS_ENDPOINT_URL_STS || env.AWS_ENDPOINT_URL || undefined,
  })
  const session = `kseal@${os.hostname()}`.replace(/[^\w+=,.@-]/g, '-').slice(0, 64)
  try {
    const out = await client.send(new sts.AssumeRoleCommand({RoleArn: role, RoleSessionName: session}))
    const c = out.Credentials
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken)
      throw new KsealError('ERR_BACKEND', `AWS STS returned no credentials for role ${role}`)
    return {...env, AWS_ACCESS_KEY_ID: c.AccessKeyId, AWS_SECRET_ACCESS_KEY: c.SecretAccessKey, AWS_SESSION_TOKEN: c.SessionToken}
  } catch (e) {
    if ((e as KsealError).code === 'ERR_BACKEND') throw e
    const err = e as {name?: string; message?: string}
    const said = err.message ? ` (AWS STS: ${err.message.replace(/\s+/g, ' ').slice(0, 300)})` : ''
    throw new KsealError(
      'ERR_BACKEND',
      `cannot assume role ${role} for KMS key ${arn.arn}: ${err.name === 'AccessDenied' ? 'access denied' : (err.name ?? 'failed')}${said}`,
    )
  } finally {
    client.destroy()
  }
}
