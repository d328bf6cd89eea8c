/**
 * The Kubernetes API adapter (src/kube) over a real socket: requests share kept connections, through
 * public client-node API only (no private method replaced).
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {clusterApi} from '../src/kube/api.js'
import {startK8sApiServer, type K8sApiServer} from './support/k8s-api-server.js'

let srv: K8sApiServer
beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', 'kube-test']})
})
afterAll(async () => {
  await srv.close()
})

describe('connections', () => {
  it('twenty calls one after another share one connection', async () => {
    const api = await clusterApi(srv.kubeConfig())
    const before = srv.connectionsAccepted
    for (let i = 0; i < 20; i++) await api.getSecret('kube-test', `s${i}`)
    expect(srv.countRequests({resource: 'secrets', namespace: 'kube-test', verb: 'get'})).toBe(20)
    expect(srv.connectionsAccepted - before).toBe(1)
  })
  it('calls at once use a connection each, which later calls reuse', async () => {
    const api = await clusterApi(srv.kubeConfig())
    const before = srv.connectionsAccepted
    await Promise.all(Array.from({length: 4}, (_, i) => api.getSecret('kube-test', `p${i}`)))
    const opened = srv.connectionsAccepted - before
    expect(opened).toBeLessThanOrEqual(4)
    for (let i = 0; i < 10; i++) await api.getSecret('kube-test', `q${i}`)
    expect(srv.connectionsAccepted - before).toBe(opened)
  })
  it("does not replace client-node's private createAgent", async () => {
    const kc = srv.kubeConfig()
    const before = (kc as unknown as {createAgent: unknown}).createAgent
    await (await clusterApi(kc)).getSecret('kube-test', 'x')
    expect((kc as unknown as {createAgent: unknown}).createAgent).toBe(before)
    expect(Object.hasOwn(kc, 'createAgent')).toBe(false)
  })
})
