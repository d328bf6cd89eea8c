/**
 * The HTTP plumbing the protocol test servers (AWS, Vault) share: a server on 127.0.0.1 with a
 * random port (plain HTTP, or https with a given certificate) that, on close, also ends the
 * connections clients keep alive; and request bodies read with a size limit, so no client can make
 * a server buffer without bound.
 */
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createTlsServer} from 'node:https'
import type {AddressInfo, Socket} from 'node:net'

/** A certificate and key (PEM) to serve https with. */
export interface TlsOptions {
  cert: string
  key: string
}

export class Listener {
  private readonly sockets = new Set<Socket>()
  private readonly server: Server
  private readonly scheme: string

  constructor(handler: (req: IncomingMessage, res: ServerResponse) => void, tls?: TlsOptions) {
    this.server = tls ? createTlsServer({cert: tls.cert, key: tls.key}, handler) : createServer(handler)
    this.scheme = tls ? 'https' : 'http'
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  /** Listen on 127.0.0.1 (random port); resolves to the base URL (https with TLS options). */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => resolve())
    })
    return `${this.scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeAllConnections()
    for (const s of this.sockets) s.destroy()
    await closed
  }
}

/** The request body; past `max` bytes the request is dropped and the promise rejects with `tooLarge()`. */
export function readBody(req: IncomingMessage, max: number, tooLarge: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > max) {
        req.destroy()
        reject(tooLarge())
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}
