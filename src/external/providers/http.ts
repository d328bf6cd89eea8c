/**
 * A small JSON-over-HTTP(S) client for stores without an SDK (Vault): node:http(s) with keep-alive
 * connections, an optional CA bundle for https, a timeout, and a bound on the response size, so a
 * store (or something pretending to be one) cannot make the controller buffer without limit.
 */
import http from 'node:http'
import https from 'node:https'

export interface HttpResponse {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
}

export interface HttpClientOptions {
  /** PEM CA certificates trusted for https (default: Node's roots). */
  ca?: string
  timeoutMs?: number
  /** Largest response body accepted. */
  maxBytes?: number
}

export class ResponseTooLarge extends Error {}

export class HttpClient {
  private readonly httpAgent = new http.Agent({keepAlive: true, maxSockets: 16})
  private readonly httpsAgent: https.Agent
  private readonly timeoutMs: number
  private readonly maxBytes: number

  constructor(o: HttpClientOptions = {}) {
    this.httpsAgent = new https.Agent({keepAlive: true, maxSockets: 16, ca: o.ca})
    this.timeoutMs = o.timeoutMs ?? 30_000
    this.maxBytes = o.maxBytes ?? 4 * 1024 * 1024
  }

  request(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<HttpResponse> {
    const secure = url.protocol === 'https:'
    const lib = secure ? https : http
    return new Promise((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          agent: secure ? this.httpsAgent : this.httpAgent,
          headers: {
            ...headers,
            ...(body === undefined ? {} : {'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body))}),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size > this.maxBytes) {
              res.destroy()
              reject(new ResponseTooLarge(`the response is larger than ${this.maxBytes} bytes`))
            } else chunks.push(c)
          })
          res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8')}))
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)))
      req.on('error', reject)
      req.end(body)
    })
  }

  close(): void {
    this.httpAgent.destroy()
    this.httpsAgent.destroy()
  }
}
