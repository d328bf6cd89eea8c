/**
 * sealed-secrets' SealedSecret resource for the test API server (its CRD is Bitnami's: a cluster
 * migrating from sealed-secrets already has it), and the interop fixtures as objects to apply.
 */
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {parse} from 'yaml'
import {FIXTURES, INTEROP} from './cli.js'
import type {KubeObject, ResourceDefinition} from './k8s-api-server.js'

/** As Bitnami's CRD defines it: namespaced, a status subresource, no short name kseal relies on. */
export const BITNAMI_SEALED_DEFINITION: ResourceDefinition = {
  group: 'bitnami.com',
  version: 'v1alpha1',
  resource: 'sealedsecrets',
  kind: 'SealedSecret',
  singular: 'sealedsecret',
  namespaced: true,
  statusSubresource: true,
  custom: true,
}

export const SEALED_SECRETS = path.join(INTEROP, 'sealed-secrets')
export const SCOPES = ['strict', 'namespace-wide', 'cluster-wide'] as const

const load = (file: string) => parse(readFileSync(file, 'utf8')) as KubeObject

/** The interop SealedSecret of a scope (`templated`: the templated one of test/fixtures/bitnami), without creationTimestamp, and its expected Secret. */
export function interopPair(scope: (typeof SCOPES)[number], templated = false): {sealed: KubeObject; expected: KubeObject} {
  const sealed = templated
    ? load(path.join(FIXTURES, 'bitnami', `templated-${scope}.yaml`))
    : load(path.join(SEALED_SECRETS, `sealedsecret-${scope}.yaml`))
  const expected = templated
    ? load(path.join(FIXTURES, 'bitnami', `expected-templated-${scope}.yaml`))
    : load(path.join(SEALED_SECRETS, `expected-secret-${scope}.yaml`))
  delete sealed.metadata.creationTimestamp
  if (sealed.spec?.template?.metadata) delete sealed.spec.template.metadata.creationTimestamp
  return {sealed, expected}
}

/** The sealed-secrets controller's key Secret of the interop fixtures (kube-system). */
export const interopKeySecret = (): KubeObject => load(path.join(SEALED_SECRETS, 'sealed-secrets-key.yaml'))
