/** The controller's HTTP listener: header and request timeouts and a connection cap, so slow or many clients cannot hold it. */
import net from 'node:net'
import {describe, expect, it} from '@jest/globals'
import {HTTP_LIMITS, startHttpServer} from '../src/controller/http/server.js'
import {kseal} from './support/cli.js'

const handlers = {certPem: () => 'PEM', notReady: () => null, metrics: () => ''}

/** A raw TCP client: resolves `closed` when the server closes the connection, with what it answered. */
function connect(port: number) {
  const sock = net.connect(port, '127.0.0.1')
  let data = ''
  sock.setEncoding('utf8').on('data', (d) => (data += d))
  const closed = new Promise<string>((resolve) => sock.on('close', () => resolve(data)))
  sock.on('error', () => undefined)
  const ready = new Promise<void>((resolve) => sock.on('connect', () => resolve()))
  return {sock, closed, ready}
}

describe('HTTP listener limits', () => {
  it("has defaults far below Node's (60 s headers, 300 s request, no connection cap)", () => {
    expect(HTTP_LIMITS).toEqual({headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxConnections: 256})
  })

  it('closes a connection whose headers never finish (slowloris) once the header timeout passes', async () => {
    const srv = await startHttpServer('127.0.0.1:0', {...handlers, limits: {headersTimeoutMs: 100, requestTimeoutMs: 200}})
    try {
      const c = connect(srv.port)
      await c.ready
      c.sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ')
      const answer = await c.closed
      expect(answer).toMatch(/^HTTP\/1\.1 408 /)
      // A well-behaved client is still served.
      expect((await fetch(`http://127.0.0.1:${srv.port}/healthz`)).status).toBe(200)
    } finally {
      await srv.close()
    }
  })

  it('closes a request whose body never finishes once the request timeout passes', async () => {
    const srv = await startHttpServer('127.0.0.1:0', {
      ...handlers,
      reseal: async () => ({status: 200, body: '{}'}),
      limits: {headersTimeoutMs: 100, requestTimeoutMs: 200},
    })
    try {
      const c = connect(srv.port)
      await c.ready
      c.sock.write('POST /v1/rotate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":')
      expect(await c.closed).toMatch(/^HTTP\/1\.1 408 /)
    } finally {
      await srv.close()
    }
  })

  it('closes connections past the cap as they arrive; the ones within it are served', async () => {
    const srv = await startHttpServer('127.0.0.1:0', {...handlers, limits: {maxConnections: 2}})
    try {
      const held = [connect(srv.port), connect(srv.port)]
      await Promise.all(held.map((c) => c.ready))
      for (let i = 0; i < 50 && (await srv.connections()) < 2; i++) await new Promise((r) => setTimeout(r, 10))
      expect(await srv.connections()).toBe(2)
      const extra = connect(srv.port)
      await extra.ready.catch(() => undefined)
      expect(await extra.closed).toBe('')
      expect(await srv.connections()).toBe(2)
      held[0].sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      expect(await held[0].closed).toMatch(/^HTTP\/1\.1 200 /)
      held[1].sock.destroy()
    } finally {
      await srv.close()
    }
  })

  it('the controller refuses nonsensical limits', async () => {
    const r = await kseal(['controller', '--http-header-timeout', '40s', '--http-request-timeout', '30s'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/0 < --http-header-timeout <= --http-request-timeout/)
  })
})
