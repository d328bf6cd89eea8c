/**
 * `kseal external render` as users run it (the built CLI): with their own AWS credentials and the
 * SDK's endpoint variables, VAULT_TOKEN / VAULT_ADDR, a kubeconfig for the kubernetes provider,
 * --secrets files instead of a cluster; values masked unless --show-values; one line per failing
 * ExternalSecret with the usual exit codes, the others still shown.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import YAML from 'yaml'
import {AwsIam} from './support/aws/iam.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {cleanEnv, kseal, ROOT} from './support/cli.js'
import {esManifest, storeManifest} from './support/external.js'
import {type K8sApiServer, startK8sApiServer} from './support/k8s-api-server.js'
import {startVaultServer, type VaultServer} from './support/vault/server.js'

const NS = 'apps'
const USER = {id: 'AKIAKSEALCLIUSER0001', secret: 'cli/user/secret/not/real'}
const TENANT = {id: 'AKIAKSEALCLITENANT01', secret: 'cli/tenant/secret/not/real'}
const PASSWORD = 'correct-horse-battery-staple'
let dir: string
let sm: SecretsManagerServer
let vault: VaultServer
let k8s: K8sApiServer

const file = (name: string, docs: unknown[]) => {
  const p = path.join(dir, name)
  writeFileSync(p, docs.map((d) => YAML.stringify(d)).join('---\n'))
  return p
}
const awsEnv = (extra: Record<string, string> = {}) =>
  cleanEnv({
    AWS_ACCESS_KEY_ID: USER.id,
    AWS_SECRET_ACCESS_KEY: USER.secret,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
    AWS_MAX_ATTEMPTS: '1',
    ...extra,
  })
const awsStore = (auth?: unknown) =>
  storeManifest('aws', NS, {aws: {service: 'SecretsManager', region: 'us-east-1', ...(auth ? {auth} : {})}})
const dbSecret = (name = 'db', key = 'apps/db', extra: Record<string, unknown> = {}) =>
  esManifest(name, NS, {
    secretStoreRef: {name: 'aws'},
    target: {template: {type: 'kubernetes.io/basic-auth', data: {username: '{{ .user }}', password: '{{ .password }}'}}},
    data: [
      {secretKey: 'user', remoteRef: {key, property: 'username'}},
      {secretKey: 'password', remoteRef: {key, property: 'password'}},
    ],
    ...extra,
  })

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-external-'))
  const iam = new AwsIam()
  iam.addAccessKey(USER.id, USER.secret, 'arn:aws:iam::111122223333:user/developer')
  iam.addAccessKey(TENANT.id, TENANT.secret, 'arn:aws:iam::111122223333:user/tenant')
  sm = await startSecretsManagerServer({iam})
  sm.createSecret('apps/db', JSON.stringify({username: 'app', password: PASSWORD}))
  vault = await startVaultServer()
  vault.writeSecret('secret', 'apps/api', {key: 'vault-api-key'})
  k8s = await startK8sApiServer({namespaces: ['default', NS, 'shared']})
  k8s.putObject({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'shared-db', namespace: 'shared'},
    data: {password: Buffer.from('from-shared').toString('base64')},
  })
  await k8s.writeKubeconfig(path.join(dir, 'kubeconfig'))
})

afterAll(async () => {
  await Promise.all([sm.close(), vault.close(), k8s.close()])
})

describe('kseal external render', () => {
  it('prints the Secret with values masked, a comment saying what was read, and a note on stderr', async () => {
    const r = await kseal(['external', 'render', file('db.yaml', [awsStore(), dbSecret()])], {env: awsEnv()})
    expect(r.stderr).toBe(
      'kseal: values are masked; --show-values prints them (the output is then a plaintext Secret: keep it out of git)\n',
    )
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      [
        '# ExternalSecret apps/db via SecretStore apps/aws (aws SecretsManager): 1 remote call',
        '#   spec.data[0]: "apps/db" property "username" → user',
        '#   spec.data[1]: "apps/db" property "password" → password',
        'apiVersion: v1',
        'kind: Secret',
        'metadata:',
        '  name: db',
        '  namespace: apps',
        '  labels:',
        '    kseal.dev/managed-by: external-secrets',
        '  annotations:',
        '    kseal.dev/external-secret: db',
        'type: kubernetes.io/basic-auth',
        'data:',
        '  password: <28 bytes>',
        '  username: <3 bytes>',
        '',
      ].join('\n'),
    )
    expect(sm.calls.at(-1)).toMatchObject({operation: 'GetSecretValue', accessKeyId: USER.id})
  })

  it('--show-values prints the Secret as the controller writes it; -o json too', async () => {
    const f = file('db.yaml', [awsStore(), dbSecret()])
    const shown = await kseal(['external', 'render', f, '--show-values', '-q'], {env: awsEnv()})
    expect(shown.code).toBe(0)
    expect(shown.stderr).toBe('')
    const doc = YAML.parse(shown.stdout)
    expect(Buffer.from(doc.data.password, 'base64').toString()).toBe(PASSWORD)
    const json = await kseal(['external', 'render', f, '-o', 'json'], {env: awsEnv()})
    expect(JSON.parse(json.stdout)).toMatchObject({kind: 'Secret', data: {password: '<28 bytes>', username: '<3 bytes>'}})
    expect(json.stdout + json.stderr).not.toContain(PASSWORD)
  })

  it('stores from --store, access keys from --secrets: no cluster needed', async () => {
    const keys = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'aws-keys', namespace: NS},
      stringData: {id: TENANT.id, secret: TENANT.secret},
    }
    const store = file('store.yaml', [
      awsStore({
        secretRef: {accessKeyIDSecretRef: {name: 'aws-keys', key: 'id'}, secretAccessKeySecretRef: {name: 'aws-keys', key: 'secret'}},
      }),
    ])
    const r = await kseal(['external', 'render', file('es.yaml', [dbSecret()]), '--store', store, '--secrets', file('keys.yaml', [keys])], {
      env: awsEnv(),
    })
    expect(r.code).toBe(0)
    expect(sm.calls.at(-1)).toMatchObject({accessKeyId: TENANT.id})
  })

  it("Vault with VAULT_ADDR and VAULT_TOKEN instead of the store's own server and auth", async () => {
    const store = storeManifest('vault', NS, {
      vault: {server: 'https://vault.internal:8200', auth: {kubernetes: {role: 'apps', serviceAccountRef: {name: 'es'}}}},
    })
    const e = esManifest('api', NS, {
      secretStoreRef: {name: 'vault'},
      data: [{secretKey: 'key', remoteRef: {key: 'apps/api', property: 'key'}}],
    })
    const r = await kseal(['external', 'render', file('vault.yaml', [store, e]), '--show-values'], {
      env: cleanEnv({VAULT_ADDR: vault.url, VAULT_TOKEN: vault.rootToken}),
    })
    expect(r.code).toBe(0)
    expect(YAML.parse(r.stdout.replace(/^#.*\n/gm, '')).data).toEqual({key: Buffer.from('vault-api-key').toString('base64')})
    expect(r.stderr).toContain("kseal: SecretStore apps/vault (vault): VAULT_TOKEN is used instead of the store's auth\n")
    expect(r.stderr).toContain('kseal: SecretStore apps/vault (vault): VAULT_ADDR is used instead of https://vault.internal:8200\n')
    expect(r.stderr).not.toContain(vault.rootToken)
  })

  it("the kubernetes provider reads with the kubeconfig's identity", async () => {
    const store = storeManifest('copy', NS, {kubernetes: {remoteNamespace: 'shared', auth: {serviceAccount: {name: 'copier'}}}})
    const e = esManifest('copied', NS, {
      secretStoreRef: {name: 'copy'},
      data: [{secretKey: 'password', remoteRef: {key: 'shared-db', property: 'password'}}],
    })
    const r = await kseal(
      ['external', 'render', file('k8s.yaml', [store, e]), '--kubeconfig', path.join(dir, 'kubeconfig'), '--show-values'],
      {env: cleanEnv()},
    )
    expect(r.code).toBe(0)
    expect(YAML.parse(r.stdout.replace(/^#.*\n/gm, '')).data.password).toBe(Buffer.from('from-shared').toString('base64'))
    expect(r.stderr).toContain("your kubeconfig's identity reads the Secrets, not the store's ServiceAccount")
  })

  it('renders the example of docs/external-secrets.md, which shows the example file verbatim', async () => {
    const example = path.join(ROOT, 'docs', 'examples', 'external', 'db.yaml')
    const text = readFileSync(example, 'utf8')
    expect(readFileSync(path.join(ROOT, 'docs', 'external-secrets.md'), 'utf8')).toContain('```yaml\n' + text + '```\n')
    const iam = new AwsIam()
    iam.addAccessKey(USER.id, USER.secret)
    const eu = await startSecretsManagerServer({iam, region: 'eu-west-1'})
    try {
      eu.createSecret('payments/db', JSON.stringify({username: 'app', password: PASSWORD}))
      eu.createSecret('payments/db-extra', JSON.stringify({host: 'db.internal'}))
      eu.createSecret('payments/feature-a', 'on', {tags: {team: 'payments'}})
      eu.createSecret('payments/feature-b', 'off', {tags: {team: 'other'}})
      const r = await kseal(['external', 'render', example, '--show-values', '-q'], {
        env: awsEnv({AWS_ENDPOINT_URL_SECRETS_MANAGER: eu.url}),
      })
      expect(r).toMatchObject({code: 0, stderr: ''})
      expect(r.stdout.split('\n').filter((l) => l.startsWith('#'))).toEqual([
        '# ExternalSecret payments/db via SecretStore payments/aws (aws SecretsManager): 3 remote calls',
        '#   spec.dataFrom[0]: "payments/db-extra" → host',
        '#   spec.dataFrom[1]: find name "^payments/feature-" tags {"team":"payments"}: 1 found → payments_feature-a',
        '#   spec.data[0]: "payments/db" property "username" → user',
        '#   spec.data[1]: "payments/db" version AWSCURRENT property "password" → password',
      ])
      const secret = YAML.parse(r.stdout.replace(/^#.*\n/gm, ''))
      expect(secret).toMatchObject({metadata: {name: 'db', namespace: 'payments', labels: {app: 'db'}}, type: 'kubernetes.io/basic-auth'})
      expect(
        Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])),
      ).toEqual({username: 'app', password: PASSWORD, url: `postgres://app:${PASSWORD}@db.internal:5432/app`})
    } finally {
      await eu.close()
    }
  })

  it('failures: one line each with its exit code, the other ExternalSecrets still shown; nothing leaks', async () => {
    const r = await kseal(['external', 'render', file('mixed.yaml', [awsStore(), dbSecret(), dbSecret('gone', 'apps/gone')])], {
      env: awsEnv(),
    })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(
      `kseal: ${path.join(dir, 'mixed.yaml')}: document 3: SecretStore apps/aws (aws SecretsManager): remote key "apps/gone": ResourceNotFoundException: Secrets Manager can't find the specified secret.\n`,
    )
    expect(r.stdout).toContain('# ExternalSecret apps/db via SecretStore apps/aws')

    const noStore = await kseal(['external', 'render', file('alone.yaml', [dbSecret()])], {env: awsEnv()})
    expect(noStore.code).toBe(2)
    expect(noStore.stderr).toMatch(
      /document 1: ExternalSecret apps\/db: SecretStore apps\/aws is not in the files given; pass it with --store FILE \(no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run inside a cluster\)\n$/,
    )

    const eso = {...dbSecret(), apiVersion: 'external-secrets.io/v1'}
    const old = await kseal(['external', 'render', file('eso.yaml', [eso])], {env: awsEnv()})
    expect(old).toMatchObject({code: 2, stdout: ''})
    expect(old.stderr).toContain(
      'ExternalSecret has apiVersion external-secrets.io/v1: kseal reads kseal.dev/v1 (the same fields; docs/external-secrets.md lists the differences)',
    )

    // A store that cannot be reached: the message names it, with any credentials in a URL scrubbed.
    const store = storeManifest('vault', NS, {
      vault: {server: 'https://vault.internal:8200', auth: {tokenSecretRef: {name: 't', key: 't'}}},
    })
    const api = esManifest('api', NS, {secretStoreRef: {name: 'vault'}, data: [{secretKey: 'key', remoteRef: {key: 'apps/api'}}]})
    const down = await kseal(['external', 'render', file('down.yaml', [store, api])], {
      env: cleanEnv({VAULT_ADDR: 'http://admin:hunter2@127.0.0.1:1', VAULT_TOKEN: 'hvs.not-a-real-token'}),
    })
    expect(down.code).toBe(1)
    expect(down.stderr).toMatch(/SecretStore apps\/vault \(vault\): remote key "apps\/api": cannot reach Vault: .*ECONNREFUSED/)
    expect(down.stderr).not.toMatch(/hunter2|hvs\.not-a-real-token/)

    const denied = await kseal(['external', 'render', file('db.yaml', [awsStore(), dbSecret()])], {
      env: awsEnv({AWS_SECRET_ACCESS_KEY: 'wrong'}),
    })
    expect(denied.code).toBe(1)
    expect(denied.stderr).toMatch(/remote key "apps\/db": InvalidSignatureException: /)
    expect(denied.stdout + denied.stderr).not.toContain(PASSWORD)
  })
})
