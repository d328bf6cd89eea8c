/**
 * Credentials and client settings for the AWS providers, as external-secrets' aws provider gets
 * them:
 *
 * - no `auth`: the standard chain of whoever runs kseal (the controller's IRSA or pod identity;
 *   the caller's profile or environment for `kseal external render`);
 * - `auth.secretRef`: access keys from a Secret in the ExternalSecret's namespace;
 * - `auth.jwt.serviceAccountRef`: a TokenRequest token (audience sts.amazonaws.com) for that
 *   ServiceAccount, exchanged with AssumeRoleWithWebIdentity for the role in its
 *   `eks.amazonaws.com/role-arn` annotation (IRSA for a tenant's own ServiceAccount);
 * - then `role`, if set, is assumed with those credentials (AssumeRole, `externalID` if given).
 *
 * Role sessions are named `kseal-<namespace>`, so CloudTrail says which namespace read what.
 * The SDK is imported lazily.
 */
import type {AwsCredentialIdentity, AwsCredentialIdentityProvider} from '@smithy/types'
import type {AwsProviderSpec} from '../types.js'
import {detail, type ProviderErrors} from './errors.js'
import type {ProviderInit} from './types.js'

export const ROLE_ARN_ANNOTATION = 'eks.amazonaws.com/role-arn'

export interface AwsOptions {
  /** The default chain (default: the SDK's own). */
  credentials?: AwsCredentialIdentityProvider
  endpoints?: {secretsmanager?: string; ssm?: string; sts?: string}
  /** Extra SDK client settings (maxAttempts, systemClockOffset, ...). */
  clientConfig?: Record<string, unknown>
  /** Lifetime asked for ServiceAccount tokens (jwt auth). */
  tokenExpirationSeconds?: number
  /** render from outside the cluster: the default chain stands in for the store's jwt auth. */
  ignoreJwt?: boolean
}

export type AwsContext = ProviderInit<AwsProviderSpec, AwsOptions>

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8').trim()

export function sessionName(namespace: string): string {
  return `kseal-${namespace}`.slice(0, 64)
}

/** The credentials a store's clients use: undefined = the SDK's default chain. */
export async function awsCredentials(c: AwsContext): Promise<AwsCredentialIdentityProvider | undefined> {
  const {spec, options: o = {}} = c
  const stsConfig = {region: spec.region, ...(o.endpoints?.sts ? {endpoint: o.endpoints.sts} : {}), ...o.clientConfig}
  let base: AwsCredentialIdentityProvider | undefined = o.credentials
  const auth = spec.auth
  if (auth.kind === 'secretRef') {
    const [accessKeyId, secretAccessKey, sessionToken] = await Promise.all([
      c.access.secretKey(c.namespace, auth.accessKeyId),
      c.access.secretKey(c.namespace, auth.secretAccessKey),
      auth.sessionToken ? c.access.secretKey(c.namespace, auth.sessionToken) : undefined,
    ])
    const creds: AwsCredentialIdentity = {
      accessKeyId: text(accessKeyId),
      secretAccessKey: text(secretAccessKey),
      ...(sessionToken ? {sessionToken: text(sessionToken)} : {}),
    }
    if (!creds.accessKeyId || !creds.secretAccessKey)
      throw c.errors.error('ERR_CONFIG', undefined, 'the access key Secret holds an empty access key id or secret access key')
    base = async () => creds
  } else if (auth.kind === 'jwt' && !o.ignoreJwt) {
    const sa = auth.serviceAccount
    const roleArn = (await c.access.serviceAccountAnnotations(c.namespace, sa.name))[ROLE_ARN_ANNOTATION]
    if (!roleArn)
      throw c.errors.error(
        'ERR_CONFIG',
        undefined,
        `ServiceAccount ${c.namespace}/${sa.name} has no ${ROLE_ARN_ANNOTATION} annotation naming the role to assume with its token`,
      )
    const {fromWebToken} = await import('@aws-sdk/credential-providers')
    base = async () => {
      const {token} = await c.access.serviceAccountToken(c.namespace, {
        name: sa.name,
        audiences: ['sts.amazonaws.com', ...sa.audiences],
        expirationSeconds: o.tokenExpirationSeconds ?? 3600,
      })
      return fromWebToken({roleArn, webIdentityToken: token, roleSessionName: sessionName(c.namespace), clientConfig: stsConfig})()
    }
  }
  if (!spec.role) return base
  const {fromTemporaryCredentials} = await import('@aws-sdk/credential-providers')
  return fromTemporaryCredentials({
    params: {
      RoleArn: spec.role,
      RoleSessionName: sessionName(c.namespace),
      ...(spec.externalId ? {ExternalId: spec.externalId} : {}),
      DurationSeconds: 3600,
    },
    ...(base ? {masterCredentials: base} : {}),
    clientConfig: stsConfig,
  })
}

/** Settings for a store's SDK client: region, credentials (none: the default chain), endpoint, extras. */
export async function awsClientConfig(c: AwsContext, service: 'secretsmanager' | 'ssm'): Promise<Record<string, unknown>> {
  const credentials = await awsCredentials(c)
  const o = c.options ?? {}
  return {
    region: c.spec.region,
    ...(credentials ? {credentials} : {}),
    ...(o.endpoints?.[service] ? {endpoint: o.endpoints[service]} : {}),
    ...o.clientConfig,
  }
}

/** AWS error names, sorted into kseal's codes. */
const NOT_FOUND = new Set(['ResourceNotFoundException', 'ParameterNotFound', 'ParameterVersionNotFound'])
const DENIED = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidClientTokenId',
  'IncompleteSignature',
  'InvalidIdentityToken',
  'InvalidIdentityTokenException',
  'IDPRejectedClaim',
  'CredentialsProviderError',
  'MissingAuthenticationToken',
])
const THROTTLED = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'ThrottledException'])

/** The pause after AWS throttles (it sends no Retry-After). */
export const AWS_THROTTLE_PAUSE_MS = 1000

/** An SDK failure as a KsealError naming store, provider and key (the SDK's message, never a value). */
export function awsError(e: unknown, errors: ProviderErrors, key: string | undefined) {
  const x = e as {name?: string; message?: string; $metadata?: {httpStatusCode?: number}}
  const name = x?.name ?? 'Error'
  const msg = detail(`${name}${x?.message && x.message !== name && x.message !== 'UnknownError' ? `: ${x.message}` : ''}`)
  if (NOT_FOUND.has(name)) return errors.error('ERR_NOT_FOUND', key, msg)
  if (name === 'InvalidRequestException' && /marked for deletion/.test(x.message ?? '')) return errors.error('ERR_NOT_FOUND', key, msg)
  if (DENIED.has(name)) return errors.error('ERR_DENIED', key, msg)
  if (THROTTLED.has(name) || x?.$metadata?.httpStatusCode === 429) return errors.throttled(key, AWS_THROTTLE_PAUSE_MS, msg)
  return errors.error('ERR_BACKEND', key, msg)
}
