/**
 * Controller test support: real `kseal controller` processes (started with a kubeconfig, read through
 * their logs and HTTP), the fixture key pairs as the controller stores them, and plain API calls.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import crypto from 'node:crypto'
import {readFileSync} from 'node:fs'
import {RsaRecipient} from '../../keys/rsa.js'
import {keySecret} from '../../src/sealed/sealing-key.js'
import type {Secret} from '../../src/kube/api.js'
import {sample} from './metrics.js'
import {BIN, cleanEnv, OTHER_CERT, OTHER_KEY, ROOT, TEAM_CERT, TEAM_KEY} from './cli.js'
import type {K8sApiServer, KubeObject} from './k8s-api-server.js'
import {until} from './until.js'

/** A key Secret, as the controller stores its keys, holding one of the fixture key pairs. */
/** The trust root the key stores of in-process tests hold (a controller process makes its own). */
export const TEST_TRUST_ROOT = Buffer.alloc(32, 7)

export function fixtureKeySecret(name: 'team' | 'other', created: Date, namespace: string, root: Buffer = TEST_TRUST_ROOT): Secret {
  const keyPem = readFileSync(name === 'team' ? TEAM_KEY : OTHER_KEY, 'utf8')
  const certPem = readFileSync(name === 'team' ? TEAM_CERT : OTHER_CERT, 'utf8')
  const kid = new RsaRecipient(new crypto.X509Certificate(certPem).publicKey, 'x').kid
  return keySecret(namespace, {kid, keyPem, certPem}, created, root)
}

/** A recipient for a fixture certificate, as `kseal seal --cert` would use it. */
export function fixtureRecipient(certFile: string): RsaRecipient {
  return new RsaRecipient(new crypto.X509Certificate(readFileSync(certFile, 'utf8')).publicKey, `rsa:${certFile}`)
}

export interface Replica {
  name: string
  child: ChildProcess
  port: number
  /** Every line it logged (JSON). */
  lines: string[]
  exit: Promise<number | null>
  get(p: string): Promise<{status: number; text: string}>
  metric(series: string): Promise<number>
}

/** The leader-election flags replicas get unless a test passes its own: short, for quick failovers. */
export const SHORT_LEASE = ['--lease-duration', '2s', '--renew-deadline', '1500ms', '--retry-period', '200ms']

/**
 * Starts a controller replica with short leader-election periods (or `lease`) and 2048-bit keys, and
 * waits until it serves HTTP (its port comes from its "serving HTTP" log line). `wrap` runs it inside
 * another command (a sandbox), which gets node and its arguments after its own.
 */
export async function startReplica(o: {
  name: string
  kubeconfig: string
  keyNamespace: string
  lease?: string[]
  extra?: string[]
  wrap?: string[]
}): Promise<Replica> {
  const args = [
    BIN,
    'controller',
    '--kubeconfig',
    o.kubeconfig,
    '--key-namespace',
    o.keyNamespace,
    '--key-bits',
    '2048',
    '--listen',
    '127.0.0.1:0',
    ...(o.lease ?? SHORT_LEASE),
    '--workers',
    '4',
    '--identity',
    o.name,
    ...(o.extra ?? []),
  ]
  // `wrap`: a command that runs node for it (a sandbox such as bwrap, as the image runs it).
  const [cmd, ...cmdArgs] = [...(o.wrap ?? []), process.execPath, ...args]
  const child = spawn(cmd, cmdArgs, {cwd: ROOT, env: cleanEnv() as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe']})
  const lines: string[] = []
  let buf = ''
  let port = 0
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      lines.push(line)
      const m = /"msg":"serving HTTP","address":"[^"]*:(\d+)"/.exec(line)
      if (m) port = Number(m[1])
    }
  })
  child.stdout!.resume()
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  await until(() => port || child.exitCode !== null, `${o.name} to listen`)
  if (!port) throw new Error(`${o.name} exited: ${lines.join('\n')}`)
  const get = async (p: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`)
    return {status: r.status, text: await r.text()}
  }
  return {name: o.name, child, port, lines, exit, get, metric: async (series) => sample((await get('/metrics')).text, series) ?? 0}
}

/** Signals a replica (SIGTERM by default) unless it has already exited; resolves with its exit code. */
export async function stopReplica(rep: Replica, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (rep.child.exitCode === null && rep.child.signalCode === null) rep.child.kill(signal)
  return rep.exit
}

/**
 * Plain HTTP calls to the test API server for one namespace, as `kubectl` would make them: `call` (a
 * JSON request; a status of 300 or more throws with the server's message), the SealedSecrets path,
 * the stored SealedSecret and Secret by name, and `applySealed` (create, or replace at the current
 * resourceVersion, read again after a 409). `server` is read at call time, so it can be set in a beforeAll.
 */
export function namespaceClient(server: () => K8sApiServer, ns: string) {
  const call = async (method: string, p: string, body?: unknown): Promise<KubeObject> => {
    const r = await fetch(server().url + p, {
      method,
      headers: {'content-type': 'application/json'},
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const j = (await r.json()) as KubeObject
    if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${j.message}`)
    return j
  }
  const sealedPath = (name?: string) => `/apis/kseal.dev/v1/namespaces/${ns}/sealedsecrets${name ? `/${name}` : ''}`
  const sealedObj = (name: string) => server().getObject('kseal.dev/v1', 'SealedSecret', ns, name)
  const secretObj = (name: string) => server().getObject('v1', 'Secret', ns, name)
  const applySealed = async (obj: object): Promise<KubeObject> => {
    const o = obj as KubeObject
    for (let attempt = 1; ; attempt++) {
      const cur = sealedObj(o.metadata.name)
      try {
        if (!cur) return await call('POST', sealedPath(), o)
        return await call('PUT', sealedPath(o.metadata.name), {
          ...o,
          metadata: {...o.metadata, resourceVersion: cur.metadata.resourceVersion},
        })
      } catch (e) {
        // The controller wrote the status in between (as kubectl apply would, read again and retry).
        if (attempt >= 10 || !/: 409 /.test((e as Error).message)) throw e
      }
    }
  }
  return {call, sealedPath, sealedObj, secretObj, applySealed}
}
