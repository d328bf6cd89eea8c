/**
 * "Not authorized" for the local AWS servers: an explicit deny table (which IAM actions a caller may
 * not perform on which resources) and the AccessDeniedException AWS writes for it. A rule names an
 * action (`GetSecretValue`, or '*'), optionally a resource (exact, or a glob where `*` matches any
 * run of characters; matched against every name the resource is known by: as sent, name, ARN),
 * and optionally the caller: an access key id, or a principal ARN (a role ARN also matches that
 * role's sessions, so "deny the IRSA role" needs no session name).
 */
import {AwsError} from './server.js'
import {type AccessKey, stringLike} from './iam.js'

export interface AwsDenyRule {
  /** Operation name (IAM action `<service>:<action>`), or '*'. */
  action: string
  /** Resource as sent, name or ARN; `*` globs. Omit = any resource. */
  resource?: string
  accessKeyId?: string
  /** Caller ARN (user, assumed-role session) or role ARN. */
  principal?: string
}

export class DenyTable {
  private rules: AwsDenyRule[] = []

  add(rule: AwsDenyRule): () => void {
    const r = {...rule}
    this.rules.push(r)
    return () => {
      this.rules = this.rules.filter((x) => x !== r)
    }
  }

  clear(): void {
    this.rules = []
  }

  /** Whether a rule denies `action` on a resource known by any of `names` to this caller. */
  denies(action: string, names: readonly string[], caller: AccessKey | undefined, accessKeyId: string | undefined): boolean {
    return this.rules.some((r) => {
      if (r.action !== '*' && r.action !== action) return false
      if (r.accessKeyId !== undefined && r.accessKeyId !== accessKeyId) return false
      if (r.principal !== undefined && r.principal !== caller?.principal.arn && r.principal !== caller?.principal.roleArn) return false
      return r.resource === undefined || names.some((n) => stringLike(r.resource!, n))
    })
  }
}

/** AccessDeniedException as AWS words it for an action no identity-based policy allows. */
export function accessDenied(principalArn: string, iamAction: string, resource: string): AwsError {
  return new AwsError(
    'AccessDeniedException',
    `User: ${principalArn} is not authorized to perform: ${iamAction} on resource: ${resource} because no identity-based policy allows the ${iamAction} action`,
  )
}
