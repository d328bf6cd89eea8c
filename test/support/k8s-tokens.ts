/** ServiceAccount tokens of the Kubernetes API test server: see k8s-api-server/tokens.ts. */
export * from './k8s-api-server/tokens.js'
