/**
 * Format 1 → 2 and the operations that reuse a data key (the built CLI). Format 1 still decrypts and
 * is reported by inspect and check; encrypt (adding a value) and rotate upgrade it, wrapping the new
 * data key only for recipients that are named or held. Every operation that reuses an existing data
 * key (encrypt of a partly encrypted Secret, edit, rotate, seal --merge-into) checks what is already
 * there first: on failure exit 3 and the file is left exactly as it was.
 */
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, describe, expect, it} from '@jest/globals'
import {cleanEnv, FIXTURES, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY, TEAM_KID} from './support/cli.js'

const OTHER_KID = '886d5b01b46231a8'
const ATTACKER_AGE = 'age1fwj0v0ehul0kjmnv0drtk6azlhnqk6tcpak8cd4tx6nn5h3n4qpsgv8hc3'
const V1 = readFileSync(path.join(FIXTURES, 'vectors', 'v1-app-stack.yaml'), 'utf8')
const PLAIN = readFileSync(path.join(FIXTURES, 'corpus', 'app-stack.yaml'), 'utf8')
/** The v1 vector with an attacker's age entry appended to its recipients: format 1 cannot tell. */
const V1_PLANTED = V1.replace(/(\n {2}mac: )/, `\n    - backend: "age"\n      kid: "${ATTACKER_AGE}"\n      wrapped: "YWdl"$1`)
let dir: string
let n = 0

function file(text: string, name = 'db.secret.yaml'): string {
  const d = path.join(dir, `case${++n}`)
  const f = path.join(d, name)
  mkdirSync(d, {recursive: true})
  writeFileSync(f, text)
  return f
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-upgrade-'))
})

describe('format 1 is reported, and upgraded only for recipients named or held', () => {
  it('a format 1 file with a planted entry still decrypts: format 1 cannot tell, which is why inspect and check say so', async () => {
    expect((await kseal(['decrypt', '-k', TEAM_KEY], {input: V1_PLANTED})).stdout).toBe(PLAIN)
    const f = file(V1_PLANTED)
    const inspect = await kseal(['inspect', '--json', f])
    expect(inspect.code).toBe(0)
    expect(JSON.parse(inspect.stdout)[0]).toMatchObject({version: 1, recipientsAuthenticated: false, encryptedAs: null})
    expect(inspect.stderr).toBe(
      `kseal: ${f}: document 2 (Secret payments/payments-db): recipients not authenticated (format v1): run kseal rotate to upgrade\n`,
    )
    const check = await kseal(['check', f])
    expect(check.code).toBe(0)
    expect(check.stderr).toContain('recipients not authenticated (format v1): run kseal rotate to upgrade')
  })

  it('rotate upgrades to format 2 for the key held: fresh data key, every value re-encrypted, still the same plaintext', async () => {
    const f = file(V1)
    const r = await kseal(['rotate', '-i', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`, f])
    expect(r.stderr).toContain(`+rsa:${OTHER_KID}, new data key, format 1 → 2`)
    expect(r.code).toBe(0)
    const out = readFileSync(f, 'utf8')
    expect(out).not.toMatch(/kseal:v1:/)
    expect(JSON.parse((await kseal(['inspect', '--json', f])).stdout)[0]).toMatchObject({
      version: 2,
      encryptedAs: {namespace: 'payments', name: 'payments-db'},
    })
    for (const k of [TEAM_KEY, OTHER_KEY]) expect((await kseal(['decrypt', '-k', k, f])).stdout).toBe(PLAIN)
    const inspect = await kseal(['inspect', f])
    expect(inspect.stderr).toBe('')
  })

  it('rotate refuses to wrap the new data key for a format 1 entry that nobody named or holds, naming it; nothing is written', async () => {
    const f = file(V1_PLANTED)
    const r = await kseal(['rotate', '-i', '-k', TEAM_KEY, f])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(
      new RegExp(
        `cannot upgrade from format 1 \\(recipients not authenticated\\) to format 2: age:${ATTACKER_AGE} is neither named nor held here.*--remove-recipient`,
      ),
    )
    expect(readFileSync(f, 'utf8')).toBe(V1_PLANTED)
    // Dropping it explicitly upgrades the rest.
    const ok = await kseal(['rotate', '-i', '-k', TEAM_KEY, '-R', `age:${ATTACKER_AGE}`, f])
    expect(ok.code).toBe(0)
    expect(readFileSync(f, 'utf8')).not.toContain(ATTACKER_AGE)
    expect(JSON.parse((await kseal(['inspect', '--json', f])).stdout)[0].recipients).toEqual([{backend: 'rsa', kid: TEAM_KID}])
  })

  it('a .kseal.yaml rule vouches for the recipients it names', async () => {
    const f = file(V1.replace(/(\n {2}mac: )/, `\n    - backend: "rsa"\n      kid: "${OTHER_KID}"\n      wrapped: "AAAA"$1`))
    const refused = await kseal(['rotate', '-i', '-k', TEAM_KEY, '--data-key', f])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`rsa:${OTHER_KID} is neither named nor held here`)
    writeFileSync(path.join(path.dirname(f), '.kseal.yaml'), `creation_rules:\n  - recipients: [rsa:${TEAM_CERT}, rsa:${OTHER_CERT}]\n`)
    const r = await kseal(['rotate', '-i', '-k', TEAM_KEY, '--data-key', f])
    expect(r.stderr).toContain('new data key, format 1 → 2')
    expect(r.code).toBe(0)
    expect((await kseal(['decrypt', '-k', OTHER_KEY, f])).stdout).toBe(PLAIN)
  })

  it('rotate --data-key on format 2 wraps only for recipients named or held, never for an entry because it is in the file', async () => {
    const enc = (await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`, '-r', `rsa:${OTHER_CERT}`], {input: PLAIN})).stdout
    const f = file(enc)
    const refused = await kseal(['rotate', '-i', '-k', TEAM_KEY, '--data-key', f])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(
      new RegExp(
        `cannot wrap the new data key: rsa:${OTHER_KID} is neither named nor held here, so kseal will not wrap a new data key for it; pass it with --add-recipient`,
      ),
    )
    expect(readFileSync(f, 'utf8')).toBe(enc)
    const ok = await kseal(['rotate', '-i', '-k', TEAM_KEY, '-k', OTHER_KEY, '--data-key', f])
    expect(ok.code).toBe(0)
  })

  it('encrypt adding a value to a format 1 Secret upgrades it (recipients named or held), or refuses an entry nobody vouches for', async () => {
    const add = (t: string) => t.replace('\nstringData:\n', '\nstringData:\n  added: new-value\n')
    const f = file(add(V1))
    const r = await kseal(['encrypt', '-i', '-k', TEAM_KEY, f])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = readFileSync(f, 'utf8')
    expect(out).not.toMatch(/kseal:v1:/)
    expect((await kseal(['decrypt', '-k', TEAM_KEY, f])).stdout).toBe(add(PLAIN).replace('  added: new-value\n', '  added: new-value\n'))
    const planted = file(add(V1_PLANTED))
    const refused = await kseal(['encrypt', '-i', '-k', TEAM_KEY, planted])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(
      new RegExp(`cannot upgrade from format 1.*age:${ATTACKER_AGE} is neither named nor held here.*name it with -r`),
    )
    expect(readFileSync(planted, 'utf8')).toBe(add(V1_PLANTED))
  })

  it('encrypt without -r: the .kseal.yaml rule vouches for the format 1 recipients it names', async () => {
    const withOther = V1.replace(/(\n {2}mac: )/, `\n    - backend: "rsa"\n      kid: "${OTHER_KID}"\n      wrapped: "AAAA"$1`).replace(
      '\nstringData:\n',
      '\nstringData:\n  added: x\n',
    )
    const f = file(withOther)
    const refused = await kseal(['encrypt', '-i', '-k', TEAM_KEY, f])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`rsa:${OTHER_KID} is neither named nor held here`)
    writeFileSync(path.join(path.dirname(f), '.kseal.yaml'), `creation_rules:\n  - recipients: [rsa:${TEAM_CERT}, rsa:${OTHER_CERT}]\n`)
    const r = await kseal(['encrypt', '-i', '-k', TEAM_KEY, f])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect((await kseal(['decrypt', '-k', OTHER_KEY, f])).stdout).toContain('  added: x\n')
  })

  it('edit keeps a format 1 Secret in format 1 (it re-encrypts with the same data key, after checking its MAC)', async () => {
    const f = file(V1)
    const ed = path.join(path.dirname(f), 'ed.sh')
    writeFileSync(ed, '#!/bin/sh\nsed -i \'s/^  username: .*/  username: Y2hhbmdlZA==/\' "$1"\n')
    chmodSync(ed, 0o755)
    const r = await kseal(['edit', '-k', TEAM_KEY, f], {env: cleanEnv({EDITOR: ed})})
    expect(r.code).toBe(0)
    expect(readFileSync(f, 'utf8')).toMatch(/version: 1\n/)
    expect((await kseal(['decrypt', '-k', TEAM_KEY, f])).stdout).toContain('username: Y2hhbmdlZA==')
  })
})

describe('operations that reuse a data key check what is there first (rollback, then add a value)', () => {
  let a: string
  let b: string
  const tok = (t: string, k: string) => new RegExp(`\\n {2}${k}: (kseal:v2:\\S+)`).exec(t)![1]
  beforeAll(async () => {
    const plain =
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: old-pass\n  user: admin\n  keep: k\n'
    a = (await kseal(['encrypt', '-r', `rsa:${TEAM_CERT}`], {input: plain})).stdout
    // The password changed later, with the same data key (kseal edit).
    const f = file(a)
    const ed = path.join(path.dirname(f), 'ed.sh')
    writeFileSync(ed, '#!/bin/sh\nsed -i \'s/^  password: .*/  password: new-pass/\' "$1"\n')
    chmodSync(ed, 0o755)
    expect((await kseal(['edit', '-k', TEAM_KEY, f], {env: cleanEnv({EDITOR: ed})})).code).toBe(0)
    b = readFileSync(f, 'utf8')
    expect(tok(b, 'password')).not.toBe(tok(a, 'password'))
  })
  /** b with the old password token put back and `keep` deleted: decrypt refuses it. */
  const tampered = () => b.replace(tok(b, 'password'), tok(a, 'password')).replace(/\n {2}keep: \S+/, '')

  it('decrypt refuses the tampered file', async () => {
    const r = await kseal(['decrypt', '-k', TEAM_KEY], {input: tampered()})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/integrity check failed/)
  })

  it('encrypt -i adding a new key does not launder it: exit 3, file unchanged', async () => {
    const text = tampered().replace('\nstringData:\n', '\nstringData:\n  added: x\n')
    const f = file(text)
    const r = await kseal(['encrypt', '-i', '-k', TEAM_KEY, f])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/integrity check failed/)
    expect(readFileSync(f, 'utf8')).toBe(text)
  })

  it.each([
    ['rotate -a', ['rotate', '-i', '-k', TEAM_KEY, '-a', `rsa:${OTHER_CERT}`]],
    ['rotate --data-key', ['rotate', '-i', '-k', TEAM_KEY, '--data-key']],
    ['edit', ['edit', '-k', TEAM_KEY]],
  ])('%s refuses it: exit 3, file unchanged', async (_name, args) => {
    const f = file(tampered())
    const r = await kseal([...args, f], {env: cleanEnv({EDITOR: 'true'})})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/integrity check failed/)
    expect(readFileSync(f, 'utf8')).toBe(tampered())
  })

  it('seal --merge-into holds no private key, so it checks the chain: a removed value is refused (exit 3, file unchanged), and a replayed value stays detectable after a merge', async () => {
    const secret = (data: string) => `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n${data}`
    const s1 = (await kseal(['seal', '--cert', OTHER_CERT], {input: secret('  password: old-pass\n  keep: k\n')})).stdout
    const f = file(s1, 'db.sealed.yaml')
    expect((await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', f], {input: secret('  password: new-pass\n')})).code).toBe(0)
    const s2 = readFileSync(f, 'utf8')
    const old = /\n {4}password: (\S+)/.exec(s1)![1]
    const cur = /\n {4}password: (\S+)/.exec(s2)![1]
    // Removed value: refused before anything is written.
    const removed = s2.replace(/\n {4}keep: \S+/, '')
    writeFileSync(f, removed)
    const r = await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', f], {input: secret('  added: x\n')})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/encryptedData\.keep: is missing/)
    expect(readFileSync(f, 'utf8')).toBe(removed)
    // Replayed value: the merge appends a part but cannot re-MAC the earlier ones, so the replay
    // still fails when the result is opened.
    writeFileSync(f, s2.replace(cur, old))
    expect((await kseal(['seal', '--cert', OTHER_CERT, '--merge-into', f], {input: secret('  added: x\n')})).code).toBe(0)
    const opened = await kseal(['unseal', '-k', OTHER_KEY, f])
    expect(opened.code).toBe(3)
    expect(opened.stderr).toMatch(/encryptedData\.password: cannot decrypt|integrity check failed/)
  })
})
