/**
 * A local AWS STS test server speaking the real wire protocol of `AssumeRole` (awsQuery: a
 * form-encoded POST, an XML answer), so role assumption runs through the real
 * `@aws-sdk/client-sts` over a real socket.
 *
 * Faithful: the request and response shapes, the `ErrorResponse` XML with `Type`/`Code`/`Message`
 * and the HTTP status AWS uses (403 AccessDenied, 400 for a malformed request), the SigV4
 * credential scope check (service `sts`, the server's region), temporary credentials (an `ASIA…`
 * key id, a secret and a session token) that differ per call.
 * Not faithful: signatures are not verified, a role's trust policy is a list of access key ids that
 * may assume it, and only AssumeRole exists.
 */
import {randomBytes, randomUUID} from 'node:crypto'
import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'

export interface StsCall {
  accessKeyId: string
  roleArn: string
  roleSessionName: string
  status: number
  /** The temporary key id handed out (on success). */
  issuedAccessKeyId?: string
}

export interface StsServerHandle {
  readonly url: string
  readonly calls: StsCall[]
  /** Lets the callers with these access key ids assume the role. */
  allow(roleArn: string, accessKeyIds: string[]): void
  close(): Promise<void>
}

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/'
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export async function startStsServer(opts: {region?: string; accountId?: string} = {}): Promise<StsServerHandle> {
  const region = opts.region ?? 'us-east-1'
  const trust = new Map<string, Set<string>>()
  const calls: StsCall[] = []
  const sockets = new Set<Socket>()

  const fail = (res: ServerResponse, status: number, code: string, message: string, type = 'Sender') => {
    res.writeHead(status, {'content-type': 'text/xml', 'x-amzn-requestid': randomUUID()})
    res.end(`<ErrorResponse xmlns="${XMLNS}"><Error><Type>${type}</Type><Code>${code}</Code><Message>${esc(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`)
    return status
  }

  const handle = (req: IncomingMessage, body: string, res: ServerResponse): void => {
    const form = new URLSearchParams(body)
    const auth = req.headers.authorization ?? ''
    const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth)
    const call: StsCall = {accessKeyId: scope?.[1] ?? '', roleArn: form.get('RoleArn') ?? '', roleSessionName: form.get('RoleSessionName') ?? '', status: 0}
    calls.push(call)
    if (req.method !== 'POST') {
      call.status = fail(res, 400, 'InvalidAction', 'Could not find operation for this request')
      return
    }
    if (!scope) {
      call.status = fail(res, 403, 'MissingAuthenticationToken', 'Request is missing Authentication Token')
      return
    }
    if (scope[2] !== region || scope[3] !== 'sts') {
      call.status = fail(res, 403, 'SignatureDoesNotMatch', `Credential should be scoped to a valid region and service 'sts', not '${scope[2]}/${scope[3]}'.`)
      return
    }
    if (form.get('Action') !== 'AssumeRole' || form.get('Version') !== '2011-06-15') {
      call.status = fail(res, 400, 'InvalidAction', `Could not find operation ${form.get('Action')} for version ${form.get('Version')}`)
      return
    }
    if (!/^[\w+=,.@-]{2,64}$/.test(call.roleSessionName)) {
      call.status = fail(res, 400, 'ValidationError', `1 validation error detected: Value '${call.roleSessionName}' at 'roleSessionName' failed to satisfy constraint`)
      return
    }
    if (!trust.get(call.roleArn)?.has(call.accessKeyId)) {
      call.status = fail(res, 403, 'AccessDenied', `User: arn:aws:iam::${opts.accountId ?? '111122223333'}:user/${call.accessKeyId} is not authorized to perform: sts:AssumeRole on resource: ${call.roleArn}`)
      return
    }
    const keyId = 'ASIA' + randomBytes(8).toString('hex').toUpperCase()
    call.issuedAccessKeyId = keyId
    call.status = 200
    const role = call.roleArn.split('/').pop()
    const account = call.roleArn.split(':')[4]
    res.writeHead(200, {'content-type': 'text/xml', 'x-amzn-requestid': randomUUID()})
    res.end(`<AssumeRoleResponse xmlns="${XMLNS}"><AssumeRoleResult><SourceIdentity></SourceIdentity>` +
      `<AssumedRoleUser><AssumedRoleId>AROA${randomBytes(8).toString('hex').toUpperCase()}:${esc(call.roleSessionName)}</AssumedRoleId>` +
      `<Arn>arn:aws:sts::${account}:assumed-role/${esc(role ?? '')}/${esc(call.roleSessionName)}</Arn></AssumedRoleUser>` +
      `<Credentials><AccessKeyId>${keyId}</AccessKeyId><SecretAccessKey>${randomBytes(20).toString('base64')}</SecretAccessKey>` +
      `<SessionToken>${randomBytes(64).toString('base64')}</SessionToken><Expiration>${new Date(Date.now() + 3600_000).toISOString()}</Expiration></Credentials>` +
      `</AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`)
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res))
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    allow(roleArn, ids) {
      trust.set(roleArn, new Set(ids))
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
