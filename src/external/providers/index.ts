/**
 * Opens the provider a store describes, for one ExternalSecret namespace: the one entry point the
 * controller and `kseal external render` use. Each provider module (and its SDK) is imported only
 * when a store of its kind is opened.
 */
import {type StoreAccess, storeLabel} from '../store.js'
import type {SecretStore} from '../types.js'
import type {AwsOptions} from './aws-auth.js'
import {ProviderErrors} from './errors.js'
import type {KubernetesOptions} from './kubernetes.js'
import type {Provider} from './types.js'
import type {VaultOptions} from './vault.js'

export type {Provider, RemoteValue, FetchRef, ProviderName} from './types.js'
export type {AwsOptions} from './aws-auth.js'
export type {VaultOptions} from './vault.js'
export type {KubernetesOptions} from './kubernetes.js'

export interface ProviderContext {
  /** The ExternalSecret's namespace: where the store's references resolve. */
  namespace: string
  access: StoreAccess
  aws?: AwsOptions
  vault?: VaultOptions
  kubernetes?: KubernetesOptions
  /** The clock for token lifetimes (ms since the epoch). */
  now?: () => number
}

/** `SecretStore apps/aws (aws SecretsManager)`: how messages name a store's provider. */
export function providerLabel(store: SecretStore): string {
  const p = store.provider
  return `${storeLabel(store)} (${p.type === 'aws' ? `aws ${p.service}` : p.type})`
}

export async function openProvider(store: SecretStore, ctx: ProviderContext): Promise<Provider> {
  const errors = new ProviderErrors(providerLabel(store))
  const p = store.provider
  const base = {namespace: ctx.namespace, access: ctx.access, errors}
  switch (p.type) {
    case 'aws': {
      const c = {...base, spec: p, options: ctx.aws}
      if (p.service === 'SecretsManager') return (await import('./aws-secretsmanager.js')).openSecretsManager(c)
      return (await import('./aws-ssm.js')).openParameterStore(c)
    }
    case 'vault':
      return (await import('./vault.js')).openVault({...base, spec: p, options: ctx.vault, now: ctx.now})
    case 'kubernetes':
      return (await import('./kubernetes.js')).openKubernetes({...base, spec: p, options: ctx.kubernetes, now: ctx.now})
  }
}
