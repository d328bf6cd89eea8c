/**
 * Only core v1 Secrets are kseal's. A kind named Secret in another API group — a CRD's, such as
 * `vault.example.com/v1alpha1` — passes through every command byte for byte, whatever its data holds,
 * while the core Secrets beside it are worked on as usual.
 */
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import {cleanEnv, kseal, OTHER_CERT, OTHER_KEY, ROOT, run, TEAM_CERT, TEAM_KEY} from './support/cli.js'

/** Someone else's Secret: values that are not strings, and plaintext that is none of kseal's business. */
const FOREIGN = `# a CRD whose kind is named Secret
apiVersion: vault.example.com/v1alpha1
kind: Secret
metadata:
  name: vault-db
  namespace: prod
spec:
  path: secret/data/db
data:
  count: 12
stringData:
  note: plain text, not kseal's
`
const CORE = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: s3cr3t\n'
const BOTH = `${FOREIGN}---\n${CORE}`
const keys = cleanEnv({KSEAL_KEYS: OTHER_KEY})

let dir: string
let encrypted: string
const file = (name: string, text: string) => {
  const f = path.join(dir, name)
  mkdirSync(path.dirname(f), {recursive: true})
  writeFileSync(f, text)
  return f
}
const foreignPart = (text: string) => text.slice(0, text.indexOf('---\n') + 4)

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-groups-'))
  const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: BOTH})
  expect(r).toMatchObject({code: 0, stderr: ''})
  encrypted = r.stdout
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

describe('a kind: Secret in another API group passes through', () => {
  it('encrypt: untouched, and the core Secret beside it is encrypted', () => {
    expect(foreignPart(encrypted)).toBe(`${FOREIGN}---\n`)
    expect(encrypted.slice(FOREIGN.length + 4)).toMatch(/password: kseal:v2:/)
  })

  it('encrypt -i DIR: every file is done, the foreign one left as it was', async () => {
    const only = file('tree/vault.yaml', FOREIGN)
    const core = file('tree/db.yaml', CORE)
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${OTHER_CERT}`, path.join(dir, 'tree')])
    expect(r).toMatchObject({code: 0, stderr: ''})
    expect(readFileSync(only, 'utf8')).toBe(FOREIGN)
    expect(readFileSync(core, 'utf8')).toMatch(/password: kseal:v2:/)
  })

  it('decrypt and textconv: untouched', async () => {
    expect(await kseal(['decrypt'], {input: encrypted, env: keys})).toEqual({code: 0, stdout: BOTH, stderr: ''})
    const f = file('textconv.yaml', encrypted)
    const t = await kseal(['textconv', f], {env: keys})
    expect(t.code).toBe(0)
    expect(foreignPart(t.stdout)).toBe(`${FOREIGN}---\n`)
  })

  it('check: not reported, so a file holding only it passes', async () => {
    expect(await kseal(['check', file('check/vault.yaml', FOREIGN)])).toMatchObject({code: 0, stdout: ''})
    const both = await kseal(['check', file('check/both.yaml', BOTH)])
    expect(both.code).toBe(1)
    expect(both.stdout).toBe(`${path.join(dir, 'check/both.yaml')}: document 2 (Secret prod/db): plaintext stringData.password\n`)
  })

  it('inspect: only the core Secret is listed', async () => {
    const r = await kseal(['inspect', '--json', file('inspect.yaml', encrypted)])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).map((i: {name: string}) => i.name)).toEqual(['db'])
  })

  it('rotate: untouched', async () => {
    const r = await kseal(['rotate', '--add-recipient', `rsa:${TEAM_CERT}`], {input: encrypted, env: keys})
    expect(r.code).toBe(0)
    expect(foreignPart(r.stdout)).toBe(`${FOREIGN}---\n`)
    expect((await kseal(['decrypt', '-k', TEAM_KEY], {input: r.stdout})).stdout).toBe(BOTH)
  })

  it('edit: untouched while the core Secret is re-encrypted', async () => {
    const f = file('edit/both.yaml', encrypted)
    const ed = file('edit/editor.sh', '#!/bin/sh\nsed -i "s/s3cr3t/n3w/" "$1"\n')
    chmodSync(ed, 0o755)
    const tmp = path.join(dir, 'edit/tmp')
    mkdirSync(tmp)
    const r = await kseal(['edit', f], {env: cleanEnv({KSEAL_KEYS: OTHER_KEY, EDITOR: ed, TMPDIR: tmp})})
    expect(r).toMatchObject({code: 0})
    const after = readFileSync(f, 'utf8')
    expect(foreignPart(after)).toBe(`${FOREIGN}---\n`)
    expect((await kseal(['decrypt'], {input: after, env: keys})).stdout).toBe(BOTH.replace('s3cr3t', 'n3w'))
  })

  it('seal: untouched, and the core Secret becomes a SealedSecret', async () => {
    const r = await kseal(['seal', '--cert', OTHER_CERT], {input: BOTH})
    expect(r).toMatchObject({code: 0, stderr: ''})
    expect(foreignPart(r.stdout)).toBe(`${FOREIGN}---\n`)
    expect(parseAllDocuments(r.stdout).map((d) => d.toJS().kind)).toEqual(['Secret', 'SealedSecret'])
    // --merge-into takes the one core Secret, not the foreign one.
    const sealed = file('sealed.yaml', r.stdout.slice(FOREIGN.length + 4))
    const merged = await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', sealed], {input: BOTH.replace('s3cr3t', 'other')})
    expect(merged).toMatchObject({code: 0})
  })

  it('krm: the item is untouched', async () => {
    const items = encrypted
      .split('---\n')
      .map(
        (doc) =>
          doc
            .trimEnd()
            .split('\n')
            .map((l, i) => (i ? '  ' : '- ') + l)
            .join('\n') + '\n',
      )
      .join('')
    const list = `apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n${items}`
    const r = await run(process.execPath, [path.join(ROOT, 'bin', 'kseal-krm.js')], {env: keys, input: list})
    expect(r).toMatchObject({code: 0, stderr: ''})
    const out = parse(r.stdout)
    expect(out.items[0]).toEqual(parse(FOREIGN))
    expect(out.items[1].stringData).toEqual({password: 's3cr3t'})
  })
})

describe('a core Secret with another version is still refused', () => {
  it.each(['v2', 'v1beta1', '/v2'])('apiVersion %s: exit 2, file untouched', async (v) => {
    const f = file(`version-${v.replace('/', '_')}.yaml`, CORE.replace('apiVersion: v1', `apiVersion: ${v}`))
    const r = await kseal(['encrypt', '-i', '-r', `rsa:${OTHER_CERT}`, f])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kseal: ${f}: document 1: a Secret must have apiVersion v1, not "${v}"\n`)
    expect(readFileSync(f, 'utf8')).toBe(CORE.replace('apiVersion: v1', `apiVersion: ${v}`))
  })

  it('apiVersion /v1 (the core group, spelled with its empty name) is a core Secret', async () => {
    const r = await kseal(['check', '-'], {input: CORE.replace('apiVersion: v1', 'apiVersion: /v1')})
    expect(r.code).toBe(1)
  })
})
