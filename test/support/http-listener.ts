/**
 * The HTTP plumbing the protocol test servers (AWS, Vault) share: a server on 127.0.0.1 with a
 * random port that, on close, also ends the connections clients keep alive; and request bodies read
 * with a size limit, so no client can make a server buffer without bound.
 */
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'

export class Listener {
  private readonly sockets = new Set<Socket>()
  private readonly server: Server

  constructor(handler: (req: IncomingMessage, res: ServerResponse) => void) {
    this.server = createServer(handler)
    this.server.on('connection', (s) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  /** Listen on 127.0.0.1 (random port); resolves to the base URL. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => resolve())
    })
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
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
