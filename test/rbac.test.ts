/**
 * The install's RBAC against what the controller really does: a real `kseal controller` runs a full
 * life cycle against the Kubernetes API test server (keys, leader Lease, the watch on the Secrets it
 * wrote, create, update, an immutable Secret replaced, a Secret an older controller wrote labelled,
 * a Secret it does not own, tampering, deletion; ExternalSecrets from a Vault store that logs in as a
 * ServiceAccount, an AWS store with IRSA, a ClusterSecretStore selecting namespaces by label, Merge,
 * deletionPolicy Delete), and every API request it made is checked against deploy/rbac.yaml — each
 * one allowed (ServiceAccount tokens only in the namespace that opted in with the example
 * RoleBinding), and every grant used.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import {RsaRecipient} from '../keys/rsa.js'
import {sealedSpecHash} from '../src/sealed/hash.js'
import {sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject} from '../src/sealed/types.js'
import {BIN, cleanEnv, ROOT} from './support/cli.js'
import {type K8sApiServer, type KubeObject, startK8sApiServer} from './support/k8s-api-server.js'
import {AwsIam} from './support/aws/iam.js'
import {type SecretsManagerServer, startSecretsManagerServer} from './support/aws/secretsmanager.js'
import {type StsServer, startStsServer} from './support/aws/sts.js'
import {esManifest, storeManifest, vaultKubernetesLogin, vaultStoreManifest} from './support/external.js'
import {startVaultServer, type VaultServer} from './support/vault/server.js'
import {sleep, until} from './support/until.js'

const KEY_NS = 'kseal-system'
const NS = 'apps'

interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
}
const manifests = parseAllDocuments(readFileSync(path.join(ROOT, 'deploy', 'rbac.yaml'), 'utf8')).map((d) => d.toJS())
const rulesOf = (kind: string, name = 'kseal-controller') =>
  manifests.find((m) => m.kind === kind && m.metadata.name === name).rules as Rule[]
/** The namespace's opt-in to ServiceAccount tokens, as docs/examples/external/token-rolebinding.yaml writes it. */
const tokenBinding = parseAllDocuments(
  readFileSync(path.join(ROOT, 'docs', 'examples', 'external', 'token-rolebinding.yaml'), 'utf8'),
)[0].toJS()
const ACCOUNT = '111122223333'
const grants = (rules: Rule[]) =>
  rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))))

let srv: K8sApiServer
let controller: ChildProcess
let port = 0
let vault: VaultServer
let sts: StsServer
let sm: SecretsManagerServer

beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', 'kube-system', NS, 'vault', 'shared']})
  srv.putObject({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {name: 'app', namespace: NS, annotations: {'eks.amazonaws.com/role-arn': `arn:aws:iam::${ACCOUNT}:role/apps-irsa`}},
  })
  vault = await startVaultServer()
  vaultKubernetesLogin(srv, vault, {namespace: NS, serviceAccount: 'es-reader', role: 'apps'})
  vault.putPolicy('apps', {'secret/data/apps/*': ['read']})
  vault.writeSecret('secret', 'apps/db', {password: 'vault-value'})
  const iam = new AwsIam({accountId: ACCOUNT})
  iam.createOidcProvider(srv.serviceAccountIssuer, ['sts.amazonaws.com'])
  iam.createRole('apps-irsa', {webIdentity: {issuer: srv.serviceAccountIssuer, subjects: [`system:serviceaccount:${NS}:app`]}})
  sts = await startStsServer({iam})
  sm = await startSecretsManagerServer({iam})
  sm.createSecret('apps/api', 'aws-value')
  sm.createSecret('apps/temp', 'temp-value')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-rbac-'))
  const kubeconfig = path.join(dir, 'kubeconfig')
  await srv.writeKubeconfig(kubeconfig)
  controller = spawn(
    process.execPath,
    [
      BIN,
      'controller',
      '--kubeconfig',
      kubeconfig,
      '--key-namespace',
      KEY_NS,
      '--key-bits',
      '2048',
      '--listen',
      '127.0.0.1:0',
      '--lease-duration',
      '2s',
      '--renew-deadline',
      '1500ms',
      '--retry-period',
      '200ms',
      '--identity',
      'rbac-test',
    ],
    {
      cwd: ROOT,
      // The AWS SDK's own settings: the local endpoints, and no profile or instance metadata to find.
      env: cleanEnv({
        AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
        AWS_ENDPOINT_URL_STS: sts.url,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_MAX_ATTEMPTS: '1',
      }) as NodeJS.ProcessEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let buf = ''
  controller.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    const m = /"msg":"serving HTTP","address":"[^"]*:(\d+)"/.exec(buf)
    if (m) port = Number(m[1])
  })
  await until(() => port, 'the controller to listen')
})

afterAll(async () => {
  if (controller.exitCode === null) {
    controller.kill('SIGTERM')
    await new Promise((r) => controller.on('close', r))
  }
  await Promise.all([srv.close(), vault.close(), sts.close(), sm.close()])
})

/** A SealedSecret's new spec, as an update through the API would store it: same object, next generation. */
function updated(next: KubeObject, current: KubeObject): KubeObject {
  const {resourceVersion: _rv, ...meta} = current.metadata
  return {...next, metadata: {...meta, generation: (current.metadata.generation ?? 1) + 1}}
}

async function sealed(name: string, stringData: Record<string, string>, extra: Partial<KubeObject> = {}): Promise<KubeObject> {
  const cert = await (await fetch(`http://127.0.0.1:${port}/v1/cert.pem`)).text()
  const recipient = new RsaRecipient(new crypto.X509Certificate(cert).publicKey, 'rsa:controller')
  return (await sealSecret(
    {apiVersion: 'v1', kind: 'Secret', metadata: {name, namespace: NS}, stringData, ...extra},
    [recipient],
    'strict',
  )) as unknown as KubeObject
}

describe('deploy/rbac.yaml', () => {
  it('allows every request the controller makes, and grants nothing it does not use', async () => {
    await until(
      () => srv.listObjects('v1', 'Secret', KEY_NS).some((s) => s.metadata.labels?.['kseal.dev/sealing-key'] === 'active'),
      'the key Secret',
    )
    await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 || undefined, 'ready')
    const secret = (n: string) => srv.getObject<KubeObject>('v1', 'Secret', NS, n)
    // Test-side writes go straight into the store: only the controller's requests reach the log.
    srv.putObject(await sealed('plain', {a: 'one'}))
    await until(() => secret('plain'), 'plain Secret')
    srv.putObject(updated(await sealed('plain', {a: 'two'}), srv.getObject<KubeObject>('kseal.dev/v1', 'SealedSecret', NS, 'plain')!))
    await until(() => secret('plain')?.data?.a === Buffer.from('two').toString('base64'), 'plain updated')
    // Deleted once synced: written again from the SealedSecret, read once more (its cached copy holds no ciphertexts).
    const synced = () =>
      srv
        .getObject<KubeObject>('kseal.dev/v1', 'SealedSecret', NS, 'plain')
        ?.status?.conditions?.some((c: {status: string}) => c.status === 'True')
    await until(synced, 'plain synced')
    srv.deleteObject('v1', 'Secret', NS, 'plain')
    await until(() => secret('plain')?.data?.a === Buffer.from('two').toString('base64'), 'plain written again')
    srv.putObject(await sealed('frozen', {a: 'one'}, {immutable: true}))
    await until(() => secret('frozen'), 'frozen Secret')
    srv.putObject(
      updated(
        await sealed('frozen', {a: 'two'}, {immutable: true}),
        srv.getObject<KubeObject>('kseal.dev/v1', 'SealedSecret', NS, 'frozen')!,
      ),
    )
    await until(() => secret('frozen')?.data?.a === Buffer.from('two').toString('base64'), 'frozen replaced')
    // A Secret an older controller wrote: owned and up to date, but without the label the watch selects on.
    const old = srv.putObject(await sealed('older', {a: 'one'}))
    srv.putObject({
      apiVersion: 'v1',
      kind: 'Secret',
      data: {a: Buffer.from('one').toString('base64')},
      metadata: {
        name: 'older',
        namespace: NS,
        annotations: {'kseal.dev/spec-hash': sealedSpecHash(old as unknown as SealedSecretObject)},
        ownerReferences: [{apiVersion: 'kseal.dev/v1', kind: 'SealedSecret', name: 'older', uid: old.metadata.uid, controller: true}],
      },
    })
    await until(() => secret('older')?.metadata?.labels?.['kseal.dev/owned-by'] === 'sealedsecret', 'the older Secret labelled')
    srv.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'theirs', namespace: NS}, data: {a: 'eA=='}})
    srv.putObject(await sealed('theirs', {a: 'mine'}))
    const notOwned = () =>
      srv
        .getObject<KubeObject>('kseal.dev/v1', 'SealedSecret', NS, 'theirs')
        ?.status?.conditions?.find((c: KubeObject) => c.reason === 'NotOwned')
    await until(notOwned, 'NotOwned')
    const bad = await sealed('bad', {a: 'one'})
    const other = await sealed('other', {a: 'zzz'})
    bad.spec.encryptedData.a = other.spec.encryptedData.a
    srv.putObject(bad)
    await until(
      () => srv.listObjects<KubeObject>('v1', 'Event', NS).some((e) => e.involvedObject?.name === 'bad' && e.type === 'Warning'),
      'a Warning Event',
    )

    // ExternalSecrets. The namespace opts in to ServiceAccount tokens (the example RoleBinding).
    const esCond = (ns: string, name: string) =>
      (srv.getObject<KubeObject>('kseal.dev/v1', 'ExternalSecret', ns, name)?.status?.conditions as KubeObject[] | undefined)?.find(
        (c) => c.type === 'Ready',
      )
    srv.putObject(vaultStoreManifest('vault', NS, vault.url, 'es-reader', 'apps') as KubeObject)
    srv.putObject(
      storeManifest('aws', NS, {
        aws: {service: 'SecretsManager', region: 'us-east-1', auth: {jwt: {serviceAccountRef: {name: 'app'}}}},
      }) as KubeObject,
    )
    srv.putObject(
      storeManifest(
        'shared',
        undefined,
        {vault: {server: vault.url, auth: {tokenSecretRef: {name: 'vault-token', key: 'token'}}}},
        {
          conditions: [{namespaceSelector: {matchLabels: {team: 'apps'}}}],
        },
      ) as KubeObject,
    )
    const one = (key: string) => [{secretKey: 'v', remoteRef: {key}}]
    srv.putObject(esManifest('from-vault', NS, {secretStoreRef: {name: 'vault'}, data: one('apps/db')}) as KubeObject)
    srv.putObject(esManifest('from-aws', NS, {secretStoreRef: {name: 'aws'}, data: one('apps/api')}) as KubeObject)
    srv.putObject(
      esManifest('temp', NS, {secretStoreRef: {name: 'aws'}, target: {deletionPolicy: 'Delete'}, data: one('apps/temp')}) as KubeObject,
    )
    srv.putObject({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'app-config', namespace: NS}, data: {other: 'eA=='}})
    srv.putObject(
      esManifest('merged', NS, {
        secretStoreRef: {name: 'vault'},
        target: {name: 'app-config', creationPolicy: 'Merge'},
        data: one('apps/db'),
      }) as KubeObject,
    )
    srv.putObject(
      esManifest('refused', 'shared', {secretStoreRef: {name: 'shared', kind: 'ClusterSecretStore'}, data: one('x')}) as KubeObject,
    )
    await until(
      () => secret('from-vault') && secret('from-aws') && secret('temp') && secret('app-config')?.data?.v,
      'the ExternalSecret Secrets',
      30_000,
    )
    await until(() => esCond('shared', 'refused')?.reason === 'StoreRefused', 'the ClusterSecretStore refusal', 30_000)
    sm.deleteSecret('apps/temp', {force: true})
    const temp = srv.getObject<KubeObject>('kseal.dev/v1', 'ExternalSecret', NS, 'temp')!
    srv.putObject({...temp, spec: {...temp.spec, refreshInterval: '10s'}, metadata: {...temp.metadata, generation: 2}})
    await until(() => !secret('temp'), 'the Secret deleted (deletionPolicy Delete)', 30_000)
    await sleep(500) // a few Lease renewals

    const used = new Set(
      srv.requests
        // Vault's own TokenReview calls are Vault's, not the controller's.
        .filter((r) => r.isResourceRequest && r.user !== 'system:serviceaccount:vault:vault-reviewer')
        .map((r) => ({
          key: `${r.apiGroup ?? ''}/${r.resource}${r.subresource ? `/${r.subresource}` : ''}:${r.verb}`,
          ns: r.namespace,
        }))
        .map((u) => JSON.stringify(u)),
    )
    const cluster = new Set(grants(rulesOf('ClusterRole')))
    const role = new Set(grants(rulesOf('Role')))
    const tokens = new Set(grants(rulesOf('ClusterRole', tokenBinding.roleRef.name)))
    const usedKeys = new Set<string>()
    for (const u of [...used].map((s) => JSON.parse(s) as {key: string; ns?: string})) {
      usedKeys.add(u.key)
      const allowed = cluster.has(u.key) || (u.ns === KEY_NS && role.has(u.key)) || (u.ns === NS && tokens.has(u.key))
      expect({request: u, allowed}).toEqual({request: u, allowed: true})
    }
    for (const g of [...cluster, ...role, ...tokens]) expect({grant: g, used: usedKeys.has(g)}).toEqual({grant: g, used: true})
  })
})
