/**
 * AWS Secrets Manager through @aws-sdk/client-secrets-manager.
 *
 * - `version`: a staging label (`AWSCURRENT` by default, `AWSPREVIOUS`, a custom one) or, as in
 *   external-secrets, `uuid/<VersionId>` for one version.
 * - The value is SecretString (as UTF-8) or SecretBinary.
 * - find: ListSecrets (pages of 100, bounded), filtered on the server by name prefix (`path`) and
 *   tag keys, then exactly on tag values and the name regexp here; each match is read with one
 *   GetSecretValue (at most 8 at a time). Secrets scheduled for deletion are not listed.
 */
import type {SecretsManagerClient} from '@aws-sdk/client-secrets-manager'
import type {NameMatcher} from '../../core/regex.js'
import type {FindRef} from '../types.js'
import {awsClientConfig, type AwsContext, awsError} from './aws-auth.js'
import {type FetchRef, findBudget, MAX_FIND, MAX_LIST_PAGES, type Provider, readEach, type RemoteValue} from './types.js'

export async function openSecretsManager(c: AwsContext): Promise<Provider> {
  const sdk = await import('@aws-sdk/client-secrets-manager')
  const client: SecretsManagerClient = new sdk.SecretsManagerClient(await awsClientConfig(c, 'secretsmanager'))

  async function read(key: string, version: string | undefined): Promise<RemoteValue> {
    const input = version?.startsWith('uuid/')
      ? {SecretId: key, VersionId: version.slice(5)}
      : {SecretId: key, VersionStage: version ?? 'AWSCURRENT'}
    let out
    try {
      out = await client.send(new sdk.GetSecretValueCommand(input))
    } catch (e) {
      throw awsError(e, c.errors, key)
    }
    if (out.SecretString !== undefined) return {kind: 'bytes', bytes: Buffer.from(out.SecretString, 'utf8')}
    if (out.SecretBinary !== undefined) return {kind: 'bytes', bytes: out.SecretBinary}
    throw c.errors.error('ERR_BACKEND', key, 'the secret has neither SecretString nor SecretBinary')
  }

  return {
    name: 'aws SecretsManager',
    cacheKey: (ref) => `${ref.key}\u0000${ref.version ?? 'AWSCURRENT'}`,
    fetch: (ref: FetchRef) => read(ref.key, ref.version),
    async find(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>> {
      const tags = Object.entries(find.tags ?? {})
      const Filters = [
        ...(find.path ? [{Key: 'name' as const, Values: [find.path]}] : []),
        ...tags.map(([k]) => ({Key: 'tag-key' as const, Values: [k]})),
      ]
      const names: string[] = []
      let NextToken: string | undefined
      for (let page = 0; ; page++) {
        if (page >= MAX_LIST_PAGES)
          throw c.errors.error('ERR_INPUT', find.path, `find lists more than ${MAX_LIST_PAGES} pages; narrow it with find.path or tags`)
        let out
        try {
          out = await client.send(new sdk.ListSecretsCommand({MaxResults: 100, NextToken, ...(Filters.length ? {Filters} : {})}))
        } catch (e) {
          throw awsError(e, c.errors, find.path)
        }
        for (const s of out.SecretList ?? []) {
          if (!s.Name) continue
          const have = new Map((s.Tags ?? []).map((t) => [t.Key, t.Value]))
          if (!tags.every(([k, v]) => have.get(k) === v)) continue
          if (find.path && !s.Name.startsWith(find.path)) continue
          if (match && !match.test(s.Name)) continue
          names.push(s.Name)
          if (names.length > MAX_FIND) throw c.errors.error('ERR_INPUT', find.path, `find matches more than ${MAX_FIND} secrets; narrow it`)
        }
        NextToken = out.NextToken
        if (!NextToken) break
      }
      return readEach(names, (n) => read(n, undefined), findBudget(c.errors, find.path))
    },
    async close() {
      client.destroy()
    },
  }
}
