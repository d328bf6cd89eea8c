/**
 * Reaching a Kubernetes API server: `@kubernetes/client-node` (imported lazily: it is large, and most
 * commands never need it) and the kubeconfig, loaded the way kubectl finds it.
 */
import {existsSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type * as K8s from '@kubernetes/client-node'
import {KsealError} from '../core/errors.js'

export type K8sModule = typeof import('./client-node.js')

let k8sModule: Promise<K8sModule> | undefined
export function loadK8s(): Promise<K8sModule> {
  k8sModule ??= import('./client-node.js')
  return k8sModule
}

export interface KubeOptions {
  /** A kubeconfig file; without it: in-cluster config, then $KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string
  context?: string
  env?: Record<string, string | undefined>
}

/** Loads a KubeConfig, refusing (instead of client-node's silent localhost:8080) when there is none. */
export async function loadKubeConfig(o: KubeOptions): Promise<K8s.KubeConfig> {
  const k8s = await loadK8s()
  const env = o.env ?? process.env
  const kc = new k8s.KubeConfig()
  try {
    if (o.kubeconfig) {
      kc.loadFromFile(o.kubeconfig)
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
      kc.loadFromCluster()
    } else {
      const files = env.KUBECONFIG?.split(path.delimiter).filter(Boolean) ?? []
      const home = path.join(env.HOME || os.homedir(), '.kube', 'config')
      if (!files.some((f) => existsSync(f)) && !existsSync(home)) {
        throw new KsealError('ERR_CONFIG', 'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run inside a cluster')
      }
      kc.loadFromDefault()
    }
  } catch (e) {
    if (e instanceof KsealError) throw e
    throw new KsealError(
      'ERR_CONFIG',
      `cannot read the kubeconfig${o.kubeconfig ? ` ${o.kubeconfig}` : ''}: ${(e as Error).message.split('\n')[0]}`,
    )
  }
  if (o.context) {
    if (!kc.getContextObject(o.context)) throw new KsealError('ERR_CONFIG', `no context "${o.context}" in the kubeconfig`)
    kc.setCurrentContext(o.context)
  }
  if (!kc.getCurrentCluster()) throw new KsealError('ERR_CONFIG', 'the kubeconfig has no current cluster')
  return kc
}
