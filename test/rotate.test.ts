/** `kseal rotate`: re-wrapping recipients, fresh data keys, .kseal.yaml-driven rotation over a tree. */
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {FIXTURES, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'

const OTHER_KID = '886d5b01b46231a8'
const PLAIN = readFileSync(path.join(FIXTURES, 'corpus', 'app-stack.yaml'), 'utf8')
let dir: string
let encTeam: string

const tokens = (t: string) => [...t.matchAll(/kseal:v2:[A-Za-z0-9_-]+/g)].map((m) => m[0])
const envelopeOf = (t: string) => /\nkseal:\n(?: {2}.*\n)+/.exec(t)![0]

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-rotate-'))
  const r = await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: PLAIN})
  expect(r.code).toBe(0)
  encTeam = r.stdout
})

describe('kseal rotate (recipients)', () => {
  it("adding a recipient keeps every value's ciphertext; the diff is the new entry and the MAC (which covers the recipients)", async () => {
    const r = await kseal(['rotate', '-k', TEAM_KEY, '--add-recipient', `rsa:${OTHER_CERT}`], {input: encTeam})
    expect(r.code).toBe(0)
    expect(tokens(r.stdout)).toEqual(tokens(encTeam))
    expect(r.stderr).toContain(`rotated (stdin): document 2 (Secret payments/payments-db): +rsa:${OTHER_KID}`)
    // Only lines inside the envelope's recipient list were added, and each MAC changed.
    const noMac = (t: string) => t.replace(/\n {2}mac: ".*"/g, '')
    expect(r.stdout.match(/\n {2}mac: ".*"/g)).not.toEqual(encTeam.match(/\n {2}mac: ".*"/g))
    const before = noMac(encTeam).split('\n')
    const after = noMac(r.stdout).split('\n')
    const at = after.findIndex((l, i) => l !== before[i])
    expect(after.slice(at, at + 3)).toEqual([`    - backend: "rsa"`, `      kid: "${OTHER_KID}"`, expect.stringMatching(/^ {6}wrapped: "/)])
    expect([...after.slice(0, at), ...after.slice(at + 3)]).toEqual(before)
    // Both keys now open it, to the same plaintext.
    for (const key of [TEAM_KEY, OTHER_KEY]) {
      const d = await kseal(['decrypt', '-k', key], {input: r.stdout})
      expect(d.stdout).toBe(PLAIN)
    }
  })

  it('--remove-recipient with --data-key locks the removed key out and re-encrypts every value', async () => {
    const both = (await kseal(['rotate', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`], {input: encTeam})).stdout
    const r = await kseal(['rotate', '-k', OTHER_KEY, '--remove-recipient', TEAM_KID, '--data-key'], {input: both})
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`-rsa:${TEAM_KID}, new data key`)
    const newTokens = tokens(r.stdout)
    expect(newTokens).toHaveLength(tokens(both).length)
    for (const t of newTokens) expect(tokens(both)).not.toContain(t)
    const locked = await kseal(['decrypt', '-k', TEAM_KEY], {input: r.stdout})
    expect(locked.code).toBe(3)
    expect(locked.stderr).toMatch(/no key for this Secret: it is encrypted for rsa:886d5b01b46231a8/)
    expect((await kseal(['decrypt', '-k', OTHER_KEY], {input: r.stdout})).stdout).toBe(PLAIN)
  })

  it('removing by URI without --data-key drops only the entry (the data key stays the same)', async () => {
    const both = (await kseal(['rotate', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`], {input: encTeam})).stdout
    const r = await kseal(['rotate', '-k', OTHER_KEY, '-R', `rsa:${TEAM_CERT}`], {input: both})
    expect(r.code).toBe(0)
    expect(tokens(r.stdout)).toEqual(tokens(encTeam))
    expect(envelopeOf(r.stdout)).not.toContain(TEAM_KID)
  })

  it('refuses to remove the last recipient', async () => {
    const r = await kseal(['rotate', '-k', TEAM_KEY, '-R', TEAM_KID], {input: encTeam})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/rotation would leave no recipient/)
    expect(r.stdout).toBe('')
  })

  it('--data-key alone re-wraps for the same recipients using the key held', async () => {
    const r = await kseal(['rotate', '-k', TEAM_KEY, '--data-key'], {input: encTeam})
    expect(r.code).toBe(0)
    expect(envelopeOf(r.stdout)).toContain(TEAM_KID)
    expect(tokens(r.stdout)[0]).not.toBe(tokens(encTeam)[0])
    expect((await kseal(['decrypt', '-k', TEAM_KEY], {input: r.stdout})).stdout).toBe(PLAIN)
  })

  it('a tampered file is not rotated (rotation never launders it)', async () => {
    const tampered = encTeam.replace(tokens(encTeam)[1], tokens(encTeam)[2])
    const r = await kseal(['rotate', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`], {input: tampered})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
  })
})

describe('kseal rotate over a tree', () => {
  it('a partial failure leaves every file either rotated or untouched, and the exit code says so', async () => {
    const d = path.join(dir, 'partial')
    mkdirSync(d)
    for (const n of ['a', 'b', 'c']) writeFileSync(path.join(d, `${n}.yaml`), encTeam)
    const bad = encTeam.replace('name: payments-db   #', 'name: renamed   #')
    writeFileSync(path.join(d, 'b.yaml'), bad)
    const r = await kseal(['rotate', '-i', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`, d])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/b\.yaml: document 2 \(Secret payments\/renamed\)/)
    expect(readFileSync(path.join(d, 'b.yaml'), 'utf8')).toBe(bad)
    for (const n of ['a', 'c']) expect(envelopeOf(readFileSync(path.join(d, `${n}.yaml`), 'utf8'))).toContain(OTHER_KID)
  })

  it('follows .kseal.yaml over 200 files: --dry-run reports and writes nothing, then rotates each file', async () => {
    const d = path.join(dir, 'tree')
    mkdirSync(d)
    const one = (i: number) =>
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: s${i}\n  namespace: team-${i % 5}\nstringData:\n  token: token-${i}\n`
    const enc = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`], {input: Array.from({length: 200}, (_, i) => one(i)).join('---\n')})
    const docs = enc.stdout.split('---\n')
    docs.forEach((doc, i) => {
      mkdirSync(path.join(d, `team-${i % 5}`), {recursive: true})
      writeFileSync(path.join(d, `team-${i % 5}`, `s${i}.yaml`), doc)
    })
    writeFileSync(
      path.join(d, '.kseal.yaml'),
      `creation_rules:\n  - path_regex: team-0/\n    recipients: [rsa:${OTHER_CERT}]\n  - recipients:\n      - rsa:${OTHER_CERT}\n      - rsa:${TEAM_CERT}\n`,
    )
    const dry = await kseal(['rotate', '--dry-run', '-k', OTHER_KEY, d])
    expect(dry.code).toBe(0)
    const planned = dry.stdout.trim().split('\n')
    expect(planned).toHaveLength(160) // team-0's 40 files already match their rule
    expect(planned[0]).toMatch(/^would rotate .*team-1\/s1\.yaml: document 1 \(Secret team-1\/s1\): \+rsa:d5326737ee564566$/)
    expect(readFileSync(path.join(d, 'team-1', 's1.yaml'), 'utf8')).toBe(docs[1])
    const r = await kseal(['rotate', '-i', '-q', '-k', OTHER_KEY, d])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    let withTeam = 0
    for (const sub of readdirSync(d).filter((n) => n.startsWith('team-'))) {
      for (const f of readdirSync(path.join(d, sub))) {
        const text = readFileSync(path.join(d, sub, f), 'utf8')
        if (envelopeOf(text).includes(TEAM_KID)) withTeam++
      }
    }
    expect(withTeam).toBe(160)
    const again = await kseal(['rotate', '--dry-run', '-k', OTHER_KEY, d])
    expect(again.stdout).toBe('nothing to rotate\n')
    const dec = await kseal(['decrypt', '-k', TEAM_KEY, path.join(d, 'team-3', 's3.yaml')])
    expect(dec.stdout).toBe(one(3))
  })

  it('a rule with another scope re-encrypts the values for the new binding', async () => {
    const d = path.join(dir, 'scope')
    mkdirSync(d)
    const f = path.join(d, 's.yaml')
    writeFileSync(f, encTeam)
    writeFileSync(path.join(d, '.kseal.yaml'), `creation_rules:\n  - recipients: [rsa:${TEAM_CERT}]\n    scope: namespace\n`)
    const r = await kseal(['rotate', '-i', '-k', TEAM_KEY, f])
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/scope strict → namespace, new data key/)
    const text = readFileSync(f, 'utf8')
    expect(text).toContain('scope: "namespace"')
    // Now bound to the namespace only: a rename no longer breaks decryption.
    const dec = await kseal(['decrypt', '-k', TEAM_KEY], {input: text.replace('name: payments-db   #', 'name: renamed   #')})
    expect(dec.code).toBe(0)
  })
})
