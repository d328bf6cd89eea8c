/**
 * The parts of `@kubernetes/client-node` kseal uses, by name. The CLI build bundles client-node
 * through this module, so esbuild keeps only these and what they reach: the package as a whole loads
 * every API group's client and its sources (measured here: 115 MB RSS and 29 MB of V8 heap at import;
 * this subset, bundled, 60 MB and 10 MB). That is most of the controller's memory before its first
 * object. Loaded lazily (config.ts): most commands never reach a cluster.
 */
export {
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  Observable,
  PatchStrategy,
  ServerConfiguration,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node'
