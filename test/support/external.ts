/** Builders for ExternalSecret tests: manifests as users write them, parsed by the real validator. */
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {parseExternalSecret, parseSecretStore} from '../../src/external/schema.js'
import type {ExternalSecret, SecretStore} from '../../src/external/types.js'
import {FIXTURES} from './cli.js'
import type {K8sApiServer} from './k8s-api-server.js'
import type {VaultServer} from './vault/server.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>

export function esManifest(name: string, namespace: string, spec: Obj, extraMeta: Obj = {}): Obj {
  return {apiVersion: 'kseal.dev/v1', kind: 'ExternalSecret', metadata: {name, namespace, ...extraMeta}, spec}
}

export function storeManifest(name: string, namespace: string | undefined, provider: Obj, extra: Obj = {}): Obj {
  return {
    apiVersion: 'kseal.dev/v1',
    kind: namespace === undefined ? 'ClusterSecretStore' : 'SecretStore',
    metadata: namespace === undefined ? {name} : {name, namespace},
    spec: {provider, ...extra},
  }
}

export const es = (name: string, namespace: string, spec: Obj, extraMeta: Obj = {}): ExternalSecret =>
  parseExternalSecret(esManifest(name, namespace, spec, extraMeta))
export const store = (name: string, namespace: string | undefined, provider: Obj, extra: Obj = {}): SecretStore =>
  parseSecretStore(storeManifest(name, namespace, provider, extra))

/** The decoded data of a rendered Secret. */
export function decoded(secret: {data: Record<string, string>} | null): Record<string, string> {
  if (!secret) throw new Error('no Secret')
  return Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))
}

/** The test CA and a certificate for 127.0.0.1 (test/fixtures/tls). */
export const TEST_TLS = {
  ca: readFileSync(path.join(FIXTURES, 'tls', 'ca.crt'), 'utf8'),
  cert: readFileSync(path.join(FIXTURES, 'tls', 'server.crt'), 'utf8'),
  key: readFileSync(path.join(FIXTURES, 'tls', 'server.key'), 'utf8'),
}

/**
 * Vault's Kubernetes login against the API test server: a reviewer ServiceAccount (namespace
 * `vault`) whose token Vault reviews others' with, the store's ServiceAccount, and a role (audience
 * `vault`, policy `<role>`) bound to it.
 */
export function vaultKubernetesLogin(
  k8s: K8sApiServer,
  vault: VaultServer,
  o: {namespace: string; serviceAccount: string; role: string; ttl?: number},
): void {
  for (const [namespace, name] of [
    [o.namespace, o.serviceAccount],
    ['vault', 'vault-reviewer'],
  ])
    k8s.putObject({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name, namespace}})
  vault.enableKubernetesAuth({
    kubernetesHost: k8s.url,
    tokenReviewerJwt: k8s.issueServiceAccountToken('vault', 'vault-reviewer', {expirationSeconds: 365 * 86_400}).token,
  })
  vault.putKubernetesRole(o.role, {
    boundServiceAccountNames: [o.serviceAccount],
    boundServiceAccountNamespaces: [o.namespace],
    audience: 'vault',
    policies: [o.role],
    ...(o.ttl ? {ttl: o.ttl, maxTtl: o.ttl} : {}),
  })
}

/** A SecretStore on a Vault KV v2 mount `secret`, logging in as `serviceAccount` with role `role` (audience vault). */
export function vaultStoreManifest(name: string, namespace: string, server: string, serviceAccount: string, role: string): Obj {
  return storeManifest(name, namespace, {
    vault: {
      server,
      path: 'secret',
      version: 'v2',
      auth: {kubernetes: {mountPath: 'kubernetes', role, serviceAccountRef: {name: serviceAccount, audiences: ['vault']}}},
    },
  })
}
