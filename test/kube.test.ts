/**
 * The Kubernetes API adapter (src/kube) over a real socket: requests share kept connections, through
 * public client-node API only (no private method replaced), and a kept connection the server closed is
 * met by a call made again, not a failure.
 */
import net from 'node:net'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {KubeConfig} from '@kubernetes/client-node'
import {kubeAccess} from '../src/external/access.js'
import {openProvider} from '../src/external/providers/index.js'
import {clusterApi} from '../src/kube/api.js'
import {store} from './support/external.js'
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

describe('a kept connection the server closed while it sat idle', () => {
  /**
   * An HTTP/1.1 server that answers every call with a Namespace and closes a connection once it has
   * sat idle for 50 ms, without announcing it (a real API server or load balancer does after its idle
   * timeout; Node's own server would send a Keep-Alive hint the client acts on).
   */
  async function shortIdleServer() {
    // One answer for every path: read as a Namespace it has labels, read as a Secret it has data.
    const body = JSON.stringify({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'x', labels: {team: 'a'}}, data: {v: 'YQ=='}})
    let connections = 0
    const server = net.createServer((socket) => {
      connections++
      let idle: NodeJS.Timeout | undefined
      let buffered = ''
      socket.on('data', (chunk) => {
        clearTimeout(idle)
        buffered += chunk.toString('latin1')
        for (let end; (end = buffered.indexOf('\r\n\r\n')) >= 0;) {
          buffered = buffered.slice(end + 4)
          socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
          idle = setTimeout(() => socket.destroy(), 50)
        }
      })
      socket.on('error', () => {})
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const kc = new KubeConfig()
    kc.loadFromOptions({
      clusters: [{name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true}],
      users: [{name: 'u', token: 't'}],
      contexts: [{name: 'c', cluster: 'c', user: 'u'}],
      currentContext: 'c',
    })
    return {kc, connections: () => connections, close: () => new Promise((r) => server.close(r))}
  }
  /** The event loop held (a long synchronous task, a loaded machine) past the idle timeout: the next call takes the kept socket before either side's idle timer has run. */
  function holdEventLoop(ms: number) {
    const end = performance.now() + ms
    while (performance.now() < end);
  }

  it('is met by the next call, which is made again on a new connection (ExternalSecret store access)', async () => {
    const s = await shortIdleServer()
    try {
      const access = await kubeAccess(s.kc)
      expect(await access.namespaceLabels('x')).toEqual({team: 'a'})
      holdEventLoop(300)
      expect(await access.namespaceLabels('x')).toEqual({team: 'a'})
      expect(s.connections()).toBe(2)
    } finally {
      await s.close()
    }
  })

  it('is met by the next call, which is made again on a new connection (the kubernetes store provider)', async () => {
    const s = await shortIdleServer()
    const provider = await openProvider(
      store('copy', 'apps', {kubernetes: {remoteNamespace: 'shared', auth: {serviceAccount: {name: 'c'}}}}),
      {
        namespace: 'apps',
        access: await kubeAccess(s.kc),
        kubernetes: {kubeConfig: s.kc},
      },
    )
    try {
      const read = async () => (await provider.fetch({key: 'db'})) as {entries: Map<string, Uint8Array>}
      expect(Buffer.from((await read()).entries.get('v')!).toString()).toBe('a')
      holdEventLoop(300)
      expect(Buffer.from((await read()).entries.get('v')!).toString()).toBe('a')
      expect(s.connections()).toBe(2)
    } finally {
      await provider.close()
      await s.close()
    }
  })
})
