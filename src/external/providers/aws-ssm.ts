/**
 * AWS Systems Manager Parameter Store through @aws-sdk/client-ssm.
 *
 * - `version`: a version number or a label; the parameter is read as `name:version` (SSM's own
 *   selector syntax), SecureStrings decrypted.
 * - find with only `path`: GetParametersByPath (recursive, decrypted, 10 a page: values come with
 *   the listing); otherwise DescribeParameters (path and tags filtered on the server, 50 a page)
 *   and one GetParameter per match — the calls and IAM permissions external-secrets uses.
 */
import type {SSMClient} from '@aws-sdk/client-ssm'
import type {NameMatcher} from '../../core/regex.js'
import type {FindRef} from '../types.js'
import {awsClientConfig, type AwsContext, awsError} from './aws-auth.js'
import {type FetchRef, findBudget, MAX_FIND, MAX_LIST_PAGES, type Provider, readEach, type RemoteValue} from './types.js'

export async function openParameterStore(c: AwsContext): Promise<Provider> {
  const sdk = await import('@aws-sdk/client-ssm')
  const client: SSMClient = new sdk.SSMClient(await awsClientConfig(c, 'ssm'))
  const bytes = (v: string | undefined): RemoteValue => ({kind: 'bytes', bytes: Buffer.from(v ?? '', 'utf8')})

  async function read(key: string, version: string | undefined): Promise<RemoteValue> {
    let out
    try {
      out = await client.send(new sdk.GetParameterCommand({Name: version ? `${key}:${version}` : key, WithDecryption: true}))
    } catch (e) {
      throw awsError(e, c.errors, key)
    }
    return bytes(out.Parameter?.Value)
  }

  const tooMany = (path: string | undefined) =>
    c.errors.error('ERR_INPUT', path, `find matches more than ${MAX_FIND} parameters; narrow it`)
  const tooLong = (path: string | undefined) =>
    c.errors.error('ERR_INPUT', path, `find lists more than ${MAX_LIST_PAGES} pages; narrow it with find.path or tags`)

  async function byPath(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>> {
    const out = new Map<string, RemoteValue>()
    const count = findBudget(c.errors, find.path)
    let NextToken: string | undefined
    for (let page = 0; ; page++) {
      if (page >= MAX_LIST_PAGES) throw tooLong(find.path)
      let r
      try {
        r = await client.send(
          new sdk.GetParametersByPathCommand({Path: find.path, Recursive: true, WithDecryption: true, MaxResults: 10, NextToken}),
        )
      } catch (e) {
        throw awsError(e, c.errors, find.path)
      }
      for (const p of r.Parameters ?? []) {
        if (!p.Name || (match && !match.test(p.Name))) continue
        out.set(p.Name, count(bytes(p.Value)))
        if (out.size > MAX_FIND) throw tooMany(find.path)
      }
      NextToken = r.NextToken
      if (!NextToken) return out
    }
  }

  async function described(find: FindRef, match: NameMatcher | undefined): Promise<Map<string, RemoteValue>> {
    const ParameterFilters = [
      ...(find.path ? [{Key: 'Path', Option: 'Recursive', Values: [find.path]}] : []),
      ...Object.entries(find.tags ?? {}).map(([k, v]) => ({Key: `tag:${k}`, Option: 'Equals', Values: [v]})),
    ]
    const names: string[] = []
    let NextToken: string | undefined
    for (let page = 0; ; page++) {
      if (page >= MAX_LIST_PAGES) throw tooLong(find.path)
      let r
      try {
        r = await client.send(
          new sdk.DescribeParametersCommand({MaxResults: 50, NextToken, ...(ParameterFilters.length ? {ParameterFilters} : {})}),
        )
      } catch (e) {
        throw awsError(e, c.errors, find.path)
      }
      for (const p of r.Parameters ?? []) {
        if (!p.Name || (match && !match.test(p.Name))) continue
        names.push(p.Name)
        if (names.length > MAX_FIND) throw tooMany(find.path)
      }
      NextToken = r.NextToken
      if (!NextToken) break
    }
    return readEach(names, (n) => read(n, undefined), findBudget(c.errors, find.path))
  }

  return {
    name: 'aws ParameterStore',
    fetch: (ref: FetchRef) => read(ref.key, ref.version),
    find: (find, match) => (find.path && Object.keys(find.tags ?? {}).length === 0 ? byPath(find, match) : described(find, match)),
    async close() {
      client.destroy()
    },
  }
}
