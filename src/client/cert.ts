/**
 * The certificate `kseal seal` seals for: a PEM file, or an http(s) URL such as the controller's
 * `/v1/cert.pem`. Only public material passes through here.
 */
import crypto from 'node:crypto'
import path from 'node:path'
import {readKeyFile} from '../../keys/keyfile.js'
import {publicKeyFromPem, RsaRecipient} from '../../keys/rsa.js'
import type {Recipient} from '../../keys/types.js'
import {KsealError, scrubUrls} from '../core/errors.js'

export interface CertificateContext {
  /** Resolves relative file paths. */
  cwd: string
  /** Injected for tests; node's global fetch otherwise. */
  fetch?: typeof fetch
  /** How long a URL may take, in milliseconds (default 10 s). */
  timeoutMs?: number
  /**
   * `--cert-sha256`: the certificate's SHA-256 fingerprint (hex, colons optional; of the public key's
   * DER for a public key PEM). The loaded certificate must match it. Required to fetch over plain
   * HTTP from a host that is not loopback.
   */
  sha256?: string
}

export interface LoadedCertificate {
  pem: string
  recipient: Recipient
}

/** Where the certificate comes from, as given on the command line. */
export interface CertificateSource {
  /** `--cert FILE|URL`. */
  cert?: string
  /** The controller's namespace and Service name: the certificate comes through the API server's service proxy. */
  controllerNamespace?: string
  controllerName?: string
  /** Kubeconfig file and context for the controller path (default: $KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string
  context?: string
}

const DEFAULT_TIMEOUT_MS = 10_000
/** A certificate PEM is a few kB; anything much larger is not one. */
const MAX_BYTES = 1 << 20

/** A URL fit for messages: no user, password or query (which may carry a token). */
function displayUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`
}

/** An error text without the URL's secret parts (fetch puts the URL in some of its messages). */
function scrub(msg: string, ...urls: URL[]): string {
  let out = msg
  for (const u of urls) out = out.split(u.href).join(displayUrl(u))
  return scrubUrls(out)
}

async function fetchPem(u: URL, ctx: CertificateContext): Promise<string> {
  const shown = displayUrl(u)
  const timeout = ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const fail = (why: string) => new KsealError('ERR_IO', `cannot fetch the certificate from ${shown}: ${why}`)
  const headers: Record<string, string> = {accept: 'application/x-pem-file, text/plain, */*'}
  const target = new URL(u.href)
  if (target.username || target.password) {
    // fetch refuses credentials in the URL (and would echo it back): send them as Basic auth instead.
    headers.authorization =
      'Basic ' + Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')
    target.username = ''
    target.password = ''
  }
  let res: Response
  try {
    // Never follow a redirect: the certificate comes from the URL given, or not at all.
    res = await (ctx.fetch ?? fetch)(target, {signal: AbortSignal.timeout(timeout), redirect: 'manual', headers})
  } catch (e) {
    const err = e as Error & {cause?: {code?: string; message?: string}}
    if (err.name === 'TimeoutError' || err.name === 'AbortError') throw fail(`no answer within ${timeout / 1000} s`)
    const code = err.cause?.code
    const reasons: Record<string, string> = {
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'host not found',
      ECONNRESET: 'connection reset',
      EAI_AGAIN: 'host name lookup failed',
      CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
      DEPTH_ZERO_SELF_SIGNED_CERT: "the server's TLS certificate is self-signed",
      UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's TLS certificate is not trusted",
    }
    throw fail((code && reasons[code]) ?? scrub(err.cause?.message ?? err.message, u, target))
  }
  if ((res.status >= 300 && res.status < 400) || res.type === 'opaqueredirect') {
    await res.body?.cancel().catch(() => undefined)
    const to = res.headers.get('location')
    throw fail(
      `HTTP ${res.status}: redirected${to ? ` to ${scrubUrls(to.split('?')[0])}` : ''}; kseal does not follow redirects for the sealing certificate (give the final URL)`,
    )
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined)
    throw fail(`HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`)
  }
  const len = Number(res.headers.get('content-length') ?? 0)
  if (len > MAX_BYTES) throw fail('the answer is too large to be a certificate')
  const text = await res.text().catch((e: Error) => {
    throw fail(e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeout / 1000} s` : scrub(e.message, u, target))
  })
  if (text.length > MAX_BYTES) throw fail('the answer is too large to be a certificate')
  return text
}

/**
 * Loads the sealing certificate from a file or an http(s) URL (`rsa:PATH` is accepted too) and
 * makes it a recipient. A URL that fails, times out or answers something else than a certificate or
 * public key is a clear one-line error.
 */
export async function loadCertificate(source: string, ctx: CertificateContext): Promise<LoadedCertificate> {
  let pem: string
  let shown = source
  if (/^https?:\/\//i.test(source)) {
    let u: URL
    try {
      u = new URL(source)
    } catch {
      throw new KsealError('ERR_USAGE', `--cert: not a valid URL`)
    }
    shown = displayUrl(u)
    if (u.protocol === 'http:' && !isLoopback(u.hostname) && !ctx.sha256) {
      throw new KsealError(
        'ERR_USAGE',
        `refusing to fetch the sealing certificate over plain HTTP from ${u.host}: anyone on the way could put their own in its place. ` +
          'Use --controller-namespace/--controller-name (through the API server, authenticated), an https:// URL, or pin it with --cert-sha256 ' +
          '(its fingerprint: kseal cert | openssl x509 -noout -fingerprint -sha256)',
      )
    }
    pem = await fetchPem(u, ctx)
  } else {
    const rest = source.startsWith('rsa:') ? source.slice(4) : source
    pem = await readKeyFile(path.resolve(ctx.cwd, rest))
    shown = rest
  }
  if (!/-----BEGIN (CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY)-----/.test(pem)) {
    if (/PRIVATE KEY-----/.test(pem))
      throw new KsealError(
        'ERR_CONFIG',
        `${shown}: this is a private key; seal with the certificate (kseal cert, or the controller's /v1/cert.pem)`,
      )
    throw new KsealError('ERR_CONFIG', `${shown}: not an RSA certificate or public key (PEM)`)
  }
  const key = publicKeyFromPem(pem, shown)
  checkPin(pem, shown, ctx.sha256)
  return {pem, recipient: new RsaRecipient(key, `rsa:${shown}`)}
}

const isLoopback = (host: string) => host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]' || host === '::1'

/** The SHA-256 fingerprint of a certificate's DER (of the key's SubjectPublicKeyInfo for a public key PEM), upper-case hex with colons. */
export function certFingerprint(pem: string): string {
  const der = pem.includes('CERTIFICATE')
    ? new crypto.X509Certificate(pem).raw
    : crypto.createPublicKey(pem).export({type: 'spki', format: 'der'})
  return crypto.createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':')
}

function checkPin(pem: string, shown: string, pin: string | undefined): void {
  if (pin === undefined) return
  const want = pin
    .replace(/^sha256[:=]/i, '')
    .replace(/[:\s]/g, '')
    .toUpperCase()
  if (!/^[0-9A-F]{64}$/.test(want))
    throw new KsealError('ERR_USAGE', '--cert-sha256: expected a SHA-256 fingerprint (64 hex digits, colons allowed)')
  const got = certFingerprint(pem)
  if (got.replace(/:/g, '') !== want) {
    throw new KsealError(
      'ERR_INTEGRITY',
      `${shown}: the certificate's SHA-256 fingerprint is ${got}, not the one pinned with --cert-sha256; nothing was sealed`,
    )
  }
}

/** The certificate for `kseal seal`, from whichever source its flags name. */
export async function resolveCertificate(source: CertificateSource, ctx: CertificateContext): Promise<LoadedCertificate> {
  const viaController = source.controllerNamespace !== undefined || source.controllerName !== undefined
  if (source.cert && viaController)
    throw new KsealError('ERR_USAGE', '--cert and --controller-namespace/--controller-name are alternatives: pass one of them')
  if (source.cert) return loadCertificate(source.cert, ctx)
  if (viaController) {
    const {DEFAULT_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE, fetchControllerCert} = await import('./controller-cert.js')
    const namespace = source.controllerNamespace ?? DEFAULT_CONTROLLER_NAMESPACE
    const name = source.controllerName ?? DEFAULT_CONTROLLER_NAME
    const pem = await fetchControllerCert({namespace, name, kubeconfig: source.kubeconfig, context: source.context}, ctx.timeoutMs)
    const shown = `controller ${namespace}/${name}`
    const recipient = new RsaRecipient(publicKeyFromPem(pem, shown), `rsa:${shown}`)
    checkPin(pem, shown, ctx.sha256)
    return {pem, recipient}
  }
  throw new KsealError('ERR_USAGE', 'no certificate to seal for: pass --cert FILE|URL')
}
