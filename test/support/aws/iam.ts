/**
 * The identity side of the local AWS servers: one account's access keys (long-term user keys and
 * temporary STS sessions), roles with trust policies, and registered OpenID Connect providers. One
 * AwsIam is shared by the KMS, Secrets Manager, SSM and STS test servers of a test, so credentials
 * STS issues are accepted (signature checked with the session's secret, its token required) by the
 * others, exactly as in one AWS account.
 *
 * Simplifications: no IAM policies beyond role trust (services keep explicit deny tables for
 * "not authorized" cases); trust conditions are the ones IRSA uses (aud and sub, StringEquals or
 * StringLike with `*`), plus sts:ExternalId for AssumeRole.
 */
import {randomBytes, randomInt} from 'node:crypto'
import {type Clock, systemClock} from '../clock.js'
import type {SigningCredential} from './sigv4.js'

export interface AwsPrincipal {
  /** What AccessDenied messages and GetCallerIdentity call the caller. */
  arn: string
  /** GetCallerIdentity UserId: AIDA... for a user, AROA...:session for an assumed role. */
  userId: string
  /** For an assumed-role session: the role it came from (trust policies name roles, not sessions). */
  roleArn?: string
  sessionName?: string
}

export interface AccessKey extends SigningCredential {
  principal: AwsPrincipal
}

export interface WebIdentityTrust {
  /** Issuer URL of the OIDC provider (must be registered with createOidcProvider). */
  issuer: string
  /** Required `aud` (StringEquals). Default sts.amazonaws.com. */
  audience?: string
  /** Allowed `sub` values (StringLike: `*` matches any run of characters). Omit to allow any subject. */
  subjects?: string[]
}

export interface RoleTrust {
  /** Principals that may sts:AssumeRole: user ARNs, role ARNs (their sessions), `arn:aws:iam::ACCOUNT:root` (anyone in the account). */
  principals?: string[]
  /** sts:ExternalId condition for AssumeRole. */
  externalId?: string
  /** sts:AssumeRoleWithWebIdentity (IRSA). */
  webIdentity?: WebIdentityTrust
}

export interface Role {
  name: string
  arn: string
  roleId: string
  trust: RoleTrust
  maxSessionDurationSeconds: number
}

export interface OidcProvider {
  arn: string
  /** Issuer URL as registered (https://... or, for the local Kubernetes test server, http://127.0.0.1:PORT). */
  url: string
  clientIds: string[]
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

function randomId(prefix: string, length = 16): string {
  let s = prefix
  while (s.length < prefix.length + length) s += ID_ALPHABET[randomInt(ID_ALPHABET.length)]
  return s
}

/** Issuer URL without scheme and trailing slash: how IAM names providers and condition keys. */
export function issuerHostPath(url: string): string {
  return url.replace(/^https?:\/\//, '').replace(/\/+$/, '')
}

/** IAM StringLike: `*` any run of characters, `?` one character, everything else literal. */
export function stringLike(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  )
  return re.test(value)
}

export interface AwsIamOptions {
  accountId?: string
  clock?: Clock
}

export class AwsIam {
  readonly accountId: string
  readonly clock: Clock
  private readonly keys = new Map<string, AccessKey>()
  private readonly roles = new Map<string, Role>()
  private readonly providers = new Map<string, OidcProvider>()

  constructor(opts: AwsIamOptions = {}) {
    this.accountId = opts.accountId ?? '111122223333'
    this.clock = opts.clock ?? systemClock
  }

  /** Register a long-term access key. The principal defaults to `arn:aws:iam::ACCOUNT:user/<accessKeyId>`. */
  addAccessKey(accessKeyId: string, secretAccessKey: string, principalArn?: string): AccessKey {
    const key: AccessKey = {
      accessKeyId,
      secretAccessKey,
      principal: {arn: principalArn ?? `arn:aws:iam::${this.accountId}:user/${accessKeyId}`, userId: randomId('AIDA', 17)},
    }
    this.keys.set(accessKeyId, key)
    return key
  }

  /** A user with a fresh random access key (AKIA...). */
  createUser(name: string): AccessKey {
    return this.addAccessKey(randomId('AKIA'), randomBytes(30).toString('base64'), `arn:aws:iam::${this.accountId}:user/${name}`)
  }

  /** Stop accepting an access key (its next request gets the invalid-token error). */
  deleteAccessKey(accessKeyId: string): void {
    this.keys.delete(accessKeyId)
  }

  lookup(accessKeyId: string): AccessKey | undefined {
    return this.keys.get(accessKeyId)
  }

  createRole(name: string, trust: RoleTrust, opts: {maxSessionDurationSeconds?: number} = {}): Role {
    const arn = `arn:aws:iam::${this.accountId}:role/${name}`
    if (trust.webIdentity && !this.oidcProvider(trust.webIdentity.issuer)) {
      throw new Error(`aws-iam: no OIDC provider registered for ${trust.webIdentity.issuer}`)
    }
    const role: Role = {name, arn, roleId: randomId('AROA', 17), trust, maxSessionDurationSeconds: opts.maxSessionDurationSeconds ?? 3600}
    this.roles.set(arn, role)
    return role
  }

  deleteRole(arn: string): void {
    this.roles.delete(arn)
  }

  role(arn: string): Role | undefined {
    return this.roles.get(arn)
  }

  /** Register an OIDC identity provider (IAM CreateOpenIDConnectProvider). Returns its ARN. */
  createOidcProvider(url: string, clientIds: string[] = ['sts.amazonaws.com']): string {
    const arn = `arn:aws:iam::${this.accountId}:oidc-provider/${issuerHostPath(url)}`
    this.providers.set(issuerHostPath(url), {arn, url, clientIds: [...clientIds]})
    return arn
  }

  oidcProvider(issuer: string): OidcProvider | undefined {
    return this.providers.get(issuerHostPath(issuer))
  }

  /** Temporary credentials for a role session (what STS hands out). */
  issueSession(role: Role, sessionName: string, durationSeconds: number): AccessKey {
    const key: AccessKey = {
      accessKeyId: randomId('ASIA'),
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: `IQoJb3JpZ2luX2VjE${randomBytes(264).toString('base64')}`,
      expiration: Math.floor(this.clock.now() / 1000) * 1000 + durationSeconds * 1000,
      principal: {
        arn: `arn:aws:sts::${this.accountId}:assumed-role/${role.name}/${sessionName}`,
        userId: `${role.roleId}:${sessionName}`,
        roleArn: role.arn,
        sessionName,
      },
    }
    this.keys.set(key.accessKeyId, key)
    return key
  }
}
