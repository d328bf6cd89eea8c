/** `kseal keygen`, and the key-file rules decrypt enforces. */
import crypto from 'node:crypto'
import {spawnSync} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {rsaKid} from '../keys/rsa.js'
import {cleanEnv, kseal, TEAM_CERT, TEAM_KEY} from './support/cli.js'

let dir: string
let encrypted: string
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-keygen-'))
  const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {
    input: 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: k\n  namespace: d\nstringData:\n  a: b\n',
  })
  encrypted = r.stdout
})

describe('kseal keygen', () => {
  it('writes a 0600 PKCS#8 key and a self-signed certificate, and prints the key id', async () => {
    const out = path.join(dir, 'keys')
    const r = await kseal(['keygen', '--out', out, '--name', 'dev', '--bits', '2048', '--days', '30'])
    expect(r.code).toBe(0)
    const keyFile = path.join(out, 'dev.key')
    const certFile = path.join(out, 'dev.crt')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    expect(statSync(certFile).mode & 0o777).toBe(0o644)
    expect(statSync(out).mode & 0o777).toBe(0o700)
    const keyPem = readFileSync(keyFile, 'utf8')
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/)
    const cert = new crypto.X509Certificate(readFileSync(certFile))
    expect(cert.subject).toContain('CN=kseal dev')
    expect(cert.verify(cert.publicKey)).toBe(true)
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000
    expect(Math.round(days)).toBe(30)
    const kid = rsaKid(cert.publicKey)
    expect(rsaKid(crypto.createPublicKey(keyPem))).toBe(kid)
    expect(r.stdout).toContain(`key id:      ${kid}`)
    expect(r.stdout).not.toContain('PRIVATE KEY')
    // A real peer reads the certificate too.
    const ossl = spawnSync('openssl', ['x509', '-in', certFile, '-noout', '-subject'], {encoding: 'utf8'})
    expect(ossl.stdout).toMatch(/CN ?= ?kseal dev/)
  })

  it('refuses to overwrite without --force, and replaces with it', async () => {
    const out = path.join(dir, 'again')
    expect((await kseal(['keygen', '--out', out, '--bits', '2048'])).code).toBe(0)
    const before = readFileSync(path.join(out, 'kseal.key'), 'utf8')
    const again = await kseal(['keygen', '--out', out, '--bits', '2048'])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/kseal\.key already exists; pass --force/)
    expect(readFileSync(path.join(out, 'kseal.key'), 'utf8')).toBe(before)
    const forced = await kseal(['keygen', '--out', out, '--bits', '2048', '--force', '--json'])
    expect(forced.code).toBe(0)
    expect(JSON.parse(forced.stdout)).toMatchObject({key: path.join(out, 'kseal.key')})
    expect(readFileSync(path.join(out, 'kseal.key'), 'utf8')).not.toBe(before)
    expect(statSync(path.join(out, 'kseal.key')).mode & 0o777).toBe(0o600)
  })

  it('defaults to $XDG_CONFIG_HOME/kseal/keys, where decrypt finds it', async () => {
    const config = path.join(dir, 'xdg')
    const env = cleanEnv({XDG_CONFIG_HOME: config})
    const r = await kseal(['keygen', '--bits', '2048'], {env})
    expect(r.code).toBe(0)
    const cert = path.join(config, 'kseal', 'keys', 'kseal.crt')
    const enc = await kseal(['encrypt', '-r', `rsa:${cert}`], {
      input: 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: d\nstringData:\n  a: found-by-default\n',
      env,
    })
    const dec = await kseal(['decrypt'], {input: enc.stdout, env})
    expect(dec.code).toBe(0)
    expect(dec.stdout).toContain('a: found-by-default')
  })

  it('rejects a weak or odd key size', async () => {
    const r = await kseal(['keygen', '--out', path.join(dir, 'weak'), '--bits', '1024'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--bits must be a multiple of 8 from 2048/)
  })
})

describe('kseal keys', () => {
  it('lists the keys decrypt would find, with dates from the certificate beside each, and no key material', async () => {
    const out = path.join(dir, 'listed')
    const made = JSON.parse((await kseal(['keygen', '--out', out, '--name', 'listed', '--bits', '2048', '--days', '10', '--json'])).stdout)
    const r = await kseal(['keys', '--json', '-k', out])
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain('PRIVATE')
    const keys = JSON.parse(r.stdout)
    expect(keys).toEqual([
      {kid: made.kid, backend: 'rsa', source: made.key, created: expect.any(String), expires: made.notAfter.replace(/\.\d+Z$/, '.000Z')},
    ])
    const table = await kseal(['keys', '-k', out])
    expect(table.stdout).toMatch(
      new RegExp(
        `^KEY ID\\s+BACKEND\\s+CREATED\\s+EXPIRES\\s+SOURCE\n${made.kid}\\s+rsa\\s+\\d{4}-\\d\\d-\\d\\d\\s+${made.notAfter.slice(0, 10)}\\s+${made.key}\n$`,
      ),
    )
  })

  it('says where it looked when there are none', async () => {
    const r = await kseal(['keys'])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/no keys found/)
  })
})

describe('private key files', () => {
  it('decrypt refuses a key readable by group or others, as ssh does', async () => {
    const key = path.join(dir, 'loose.key')
    copyFileSync(TEAM_KEY, key)
    chmodSync(key, 0o640)
    const r = await kseal(['decrypt', '-k', key], {input: encrypted})
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.trim()).toBe(
      `kseal: (stdin): document 1 (Secret d/k): ${key}: private key is readable by others (mode 0640); run: chmod 600 ${key}`,
    )
    chmodSync(key, 0o600)
    expect((await kseal(['decrypt', '-k', key], {input: encrypted})).code).toBe(0)
  })

  it('finds keys through KSEAL_KEYS (files and directories, colon-separated)', async () => {
    const keysDir = path.join(dir, 'ring')
    mkdirSync(keysDir)
    copyFileSync(TEAM_KEY, path.join(keysDir, 'team.key'))
    chmodSync(path.join(keysDir, 'team.key'), 0o600)
    copyFileSync(TEAM_CERT, path.join(keysDir, 'team.crt'))
    const r = await kseal(['decrypt'], {input: encrypted, env: cleanEnv({KSEAL_KEYS: `/nonexistent/x.key:${keysDir}`})})
    // An explicit entry that does not exist is an error, not silently skipped.
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/\/nonexistent\/x\.key: cannot read: no such file or directory/)
    const ok = await kseal(['decrypt'], {input: encrypted, env: cleanEnv({KSEAL_KEYS: keysDir})})
    expect(ok.code).toBe(0)
    expect(ok.stdout).toContain('  a: b\n')
  })

  it('accepts rsa:PATH, rsa:~/PATH and a bare path for --key', async () => {
    const home = path.join(dir, 'home')
    mkdirSync(home)
    copyFileSync(TEAM_KEY, path.join(home, 'team.key'))
    chmodSync(path.join(home, 'team.key'), 0o600)
    for (const k of [`rsa:${TEAM_KEY}`, TEAM_KEY, 'rsa:~/team.key']) {
      const r = await kseal(['decrypt', '-k', k], {input: encrypted, env: cleanEnv({HOME: home})})
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
    }
  })
})
