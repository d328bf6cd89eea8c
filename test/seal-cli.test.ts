/**
 * `kseal seal` and `kseal unseal` as users run them (the built CLI): streams with other documents,
 * JSON output, --merge-into in place, certificates over HTTP, key backups as Secret manifests,
 * migration from Bitnami sealed-secrets, and the exit codes of every failure.
 */
import {chmodSync, copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import {kseal, OTHER_CERT, OTHER_KEY, INTEROP as SHARED_INTEROP} from './support/cli.js'

const INTEROP = path.join(SHARED_INTEROP, 'sealed-secrets')
const b64 = (s: string) => Buffer.from(s).toString('base64')

const CONFIGMAP = `# untouched: comments, flow style, odd spacing
apiVersion: v1
kind: ConfigMap
metadata: {name: settings,   namespace: prod}
data:
  mode: "on"
`
const INPUT = `${CONFIGMAP}---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels: {app: db}
type: Opaque
data:
  password: ${b64('s3cr3t-password')}
stringData:
  username: admin
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: cache, namespace: prod}
  stringData: {token: cache-t0ken}
`

let dir: string
let server: http.Server
let certUrl: string
const docs = (text: string) => parseAllDocuments(text, {version: '1.1'}).map((d) => d.toJS())
const file = (name: string, text: string, mode = 0o644) => {
  const f = path.join(dir, name)
  writeFileSync(f, text, {mode})
  chmodSync(f, mode)
  return f
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-seal-cli-'))
  const pem = readFileSync(OTHER_CERT, 'utf8')
  server = http.createServer((req, res) => {
    if (req.url === '/v1/cert.pem') res.end(pem)
    else {
      res.writeHead(503)
      res.end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  certUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/cert.pem`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

describe('kseal seal | kseal unseal', () => {
  let sealed: string
  beforeAll(async () => {
    const r = await kseal(['seal', '--cert', OTHER_CERT], {input: INPUT})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    sealed = r.stdout
  })

  it('seals every Secret (also in a List), passes other documents through byte for byte, and leaks nothing', () => {
    expect(sealed.startsWith(CONFIGMAP + '---\napiVersion: kseal.dev/v1\nkind: SealedSecret\n')).toBe(true)
    expect(sealed).not.toMatch(/s3cr3t|admin|cache-t0ken/)
    expect(sealed).not.toContain(b64('s3cr3t-password'))
    const d = docs(sealed)
    expect(d.map((x) => x.kind)).toEqual(['ConfigMap', 'SealedSecret', 'List'])
    expect(d[1].spec.template).toEqual({metadata: {labels: {app: 'db'}}, type: 'Opaque'})
    expect(d[2].items[0].kind).toBe('SealedSecret')
  })

  it('unseals back to the Secrets, with the other documents untouched', async () => {
    const r = await kseal(['unseal', '--key', OTHER_KEY, '-'], {input: sealed})
    expect(r.code).toBe(0)
    expect(r.stdout.startsWith(CONFIGMAP)).toBe(true)
    const d = docs(r.stdout)
    expect(d[1]).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'db', namespace: 'prod', labels: {app: 'db'}},
      type: 'Opaque',
      data: {password: b64('s3cr3t-password'), username: b64('admin')},
    })
    expect(d[2].items[0].data).toEqual({token: b64('cache-t0ken')})
  })

  it('writes JSON with -o json, fetching the certificate over HTTP; unseal reads it back', async () => {
    const one = file('one.yaml', INPUT.split('---\n')[1])
    const r = await kseal(['seal', '--cert', certUrl, '--scope', 'namespace', '-o', 'json', one])
    expect(r.code).toBe(0)
    const obj = JSON.parse(r.stdout)
    expect(obj.kind).toBe('SealedSecret')
    expect(obj.spec.envelope.scope).toBe('namespace')
    const u = await kseal(['unseal', '-o', 'json', '-k', OTHER_KEY], {input: r.stdout})
    expect(u.code).toBe(0)
    expect(JSON.parse(u.stdout).data.username).toBe(b64('admin'))
    // Several documents become one v1 List.
    const many = await kseal(['seal', '--cert', OTHER_CERT, '-o', 'json'], {input: INPUT})
    expect(JSON.parse(many.stdout)).toMatchObject({
      apiVersion: 'v1',
      kind: 'List',
      items: [{kind: 'ConfigMap'}, {kind: 'SealedSecret'}, {kind: 'List'}],
    })
  })

  it('accepts a key backup as a Secret manifest (the List that kubectl get -o yaml writes)', async () => {
    const key = readFileSync(OTHER_KEY, 'utf8')
    const backup = file(
      'keys-backup.yaml',
      `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: kseal-key-1, namespace: kseal-system, labels: {kseal.dev/sealing-key: active}}
  type: kubernetes.io/tls
  data:
    tls.crt: ${b64(readFileSync(OTHER_CERT, 'utf8'))}
    tls.key: ${b64(key)}
`,
      0o600,
    )
    const r = await kseal(['unseal', '--key', backup], {input: sealed})
    expect(r.code).toBe(0)
    expect(docs(r.stdout)[1].data.password).toBe(b64('s3cr3t-password'))
    chmodSync(backup, 0o644)
    const loose = await kseal(['unseal', '--key', backup], {input: sealed})
    expect(loose.code).toBe(2)
    expect(loose.stderr).toContain('chmod 600')
    expect(loose.stdout).toBe('')
  })
})

describe('kseal seal --merge-into', () => {
  it('adds and replaces keys in place (atomically, mode kept) with only the certificate', async () => {
    const target = file('db.sealed.yaml', '')
    const first = await kseal(['seal', '--cert', OTHER_CERT, '-'], {input: INPUT.split('---\n')[1]})
    writeFileSync(target, '# reviewed by the platform team\n' + first.stdout)
    chmodSync(target, 0o640)
    const before = parse(readFileSync(target, 'utf8'))
    const add = 'apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  password: rotated\n  api-token: t0k3n\n'
    const r = await kseal(['seal', '--cert', certUrl, '--merge-into', target], {input: add})
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('')
    expect(statSync(target).mode & 0o777).toBe(0o640)
    const text = readFileSync(target, 'utf8')
    expect(text.startsWith('# reviewed by the platform team\n')).toBe(true)
    const after = parse(text)
    expect(after.spec.encryptedData.username).toBe(before.spec.encryptedData.username)
    expect(after.spec.encryptedData.password).not.toBe(before.spec.encryptedData.password)
    expect(after.spec.envelope.parts).toHaveLength(2)
    const u = await kseal(['unseal', '--key', OTHER_KEY, target])
    expect(u.code).toBe(0)
    expect(docs(u.stdout)[0].data).toEqual({password: b64('rotated'), username: b64('admin'), 'api-token': b64('t0k3n')})

    // Tampering with the merged file (a value dropped) is exit 3, and nothing reaches stdout.
    const tampered = file('tampered.yaml', text.replace(/\n {4}api-token: kseal:v2:[A-Za-z0-9_-]+/, ''))
    const t = await kseal(['unseal', '--key', OTHER_KEY, tampered])
    expect(t.code).toBe(3)
    expect(t.stdout).toBe('')
    expect(t.stderr).toMatch(/tampered\.yaml: document 1 .*api-token/)

    // A failed merge leaves the file as it was.
    const wrongName = await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', target], {
      input: add.replace('{name: db}', '{name: other}'),
    })
    expect(wrongName.code).toBe(2)
    expect(readFileSync(target, 'utf8')).toBe(text)
  })
})

describe('migrating from Bitnami sealed-secrets', () => {
  it('unseals their SealedSecrets with their key backup, and re-seals them for kseal', async () => {
    const backup = path.join(dir, 'sealed-secrets-key.yaml')
    copyFileSync(path.join(INTEROP, 'sealed-secrets-key.yaml'), backup)
    chmodSync(backup, 0o600)
    const scopes = ['strict', 'namespace-wide', 'cluster-wide']
    const u = await kseal(['unseal', '--key', backup, ...scopes.map((s) => path.join(INTEROP, `sealedsecret-${s}.yaml`))])
    expect(u.stderr).toBe('')
    expect(u.code).toBe(0)
    const out = docs(u.stdout)
    scopes.forEach((s, i) => expect(out[i]).toEqual(parse(readFileSync(path.join(INTEROP, `expected-secret-${s}.yaml`), 'utf8'))))
    const s = await kseal(['seal', '--cert', OTHER_CERT], {input: u.stdout})
    expect(s.code).toBe(0)
    expect(docs(s.stdout).map((d) => d.apiVersion)).toEqual(['kseal.dev/v1', 'kseal.dev/v1', 'kseal.dev/v1'])
    const back = await kseal(['unseal', '--key', OTHER_KEY], {input: s.stdout})
    expect(back.code).toBe(0)
    expect(docs(back.stdout)).toEqual(out)
  })
})

describe('errors and exit codes', () => {
  let sealed: string
  beforeAll(async () => {
    sealed = (await kseal(['seal', '--cert', OTHER_CERT], {input: INPUT})).stdout
  })

  it('malformed input is 2, with nothing on stdout', async () => {
    const r = await kseal(['seal', '--cert', OTHER_CERT], {
      input: 'apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: y}\ndata: [oops\n',
    })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^kseal: \(stdin\): document 1: malformed YAML/)
  })
  it('a missing --cert, a bad --cert and a missing --key are usage errors (2)', async () => {
    expect((await kseal(['seal'], {input: INPUT})).code).toBe(2)
    const bad = await kseal(['seal', '--cert', OTHER_KEY], {input: INPUT})
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('private key')
    expect((await kseal(['unseal'], {input: sealed})).code).toBe(2)
  })
  it('an unreachable certificate URL is a runtime error (1)', async () => {
    const r = await kseal(['seal', '--cert', certUrl.replace('/v1/cert.pem', '/down')], {input: INPUT})
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('HTTP 503')
  })
  it('no key for it is 3, naming the key id, and a tampered value is 3; no plaintext is shown', async () => {
    const teamKey = path.join(path.dirname(OTHER_KEY), 'team.key')
    const r = await kseal(['unseal', '--key', teamKey], {input: sealed})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/no key for this SealedSecret: it is sealed for rsa:[0-9a-f]{16}/)
    const token = /password: (kseal:v2:[A-Za-z0-9_-]+)/.exec(sealed)![1]
    const mid = Math.floor(token.length / 2)
    const altered = sealed.replace(token, token.slice(0, mid) + (token[mid] === 'A' ? 'B' : 'A') + token.slice(mid + 1))
    const t = await kseal(['unseal', '--key', OTHER_KEY], {input: altered})
    expect(t.code).toBe(3)
    expect(t.stdout).toBe('')
    expect(t.stderr).not.toMatch(/s3cr3t|admin|cache-t0ken/)
  })
})
