/**
 * `.kseal.yaml`: parsing (with the line of every problem), rule matching (path relative to the
 * config's directory, namespace, first match wins), finding the nearest config walking up, and
 * `kseal encrypt` without -r through the built CLI — including the team set-up of docs/keys.md.
 */
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {ConfigFinder, CreationRules, matchRule, parseConfig} from '../src/config/config.js'
import {encryptTextWithRules} from '../src/ops/encrypt.js'
import {Backends} from '../keys/index.js'
import {cleanEnv, kseal, OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {type CreatedKey, type KmsServerHandle, startKmsServer} from './support/kms-server.js'

const KMS_ACCESS_KEY = 'AKIAKSEALCONFIG00001'
const KMS_SECRET_KEY = 'x'

let dir: string
let kms: KmsServerHandle
let ciKey: CreatedKey
let ageKey: string
let ageRecipient: string

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-config-'))
  kms = await startKmsServer({credentials: {[KMS_ACCESS_KEY]: KMS_SECRET_KEY}})
  ciKey = kms.createKey({alias: 'kseal-ci'})
  ageKey = path.join(dir, 'break-glass.txt')
  execFileSync('age-keygen', ['-o', ageKey], {stdio: 'ignore'})
  ageRecipient = execFileSync('age-keygen', ['-y', ageKey], {encoding: 'utf8'}).trim()
})

afterAll(async () => {
  await kms.close()
})

const secret = (name: string, ns: string) =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nstringData:\n  password: pw-${name}\n`

function write(rel: string, text: string): string {
  const f = path.join(dir, rel)
  mkdirSync(path.dirname(f), {recursive: true})
  writeFileSync(f, text)
  return f
}

function configError(text: string): {code: string; exitCode: number; line: string} {
  try {
    parseConfig(text, '.kseal.yaml')
  } catch (e) {
    return e as {code: string; exitCode: number; line: string}
  }
  throw new Error('expected a config error')
}

describe('parsing .kseal.yaml', () => {
  it('reads rules: regexes, scope, recipients as a list or a comma-separated string, and per-backend shorthands', () => {
    const c = parseConfig(
      `# team set-up
creation_rules:
  - path_regex: ^prod/.*\\.yaml$
    namespace_regex: ^prod-
    scope: namespace
    recipients:
      - rsa:keys/team.crt
      - awskms:arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci
  - recipients: rsa:a.crt, age:age1xyz
  - rsa: [keys/team.crt]
    kms: arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci
    age: age1aaa, age1bbb
`,
      '/repo/.kseal.yaml',
    )
    expect(c.dir).toBe('/repo')
    expect(c.rules).toHaveLength(3)
    expect(c.rules[0]).toMatchObject({
      index: 1,
      line: 3,
      scope: 'namespace',
      recipients: ['rsa:keys/team.crt', 'awskms:arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci'],
    })
    expect(c.rules[0].pathRegex!.source).toBe('^prod\\/.*\\.yaml$')
    expect(c.rules[1]).toMatchObject({line: 9, recipients: ['rsa:a.crt', 'age:age1xyz']})
    expect(c.rules[1].scope).toBeUndefined()
    expect(c.rules[2].recipients).toEqual([
      'rsa:keys/team.crt',
      'awskms:arn:aws:kms:eu-west-1:111122223333:alias/kseal-ci',
      'age:age1aaa',
      'age:age1bbb',
    ])
  })

  it.each([
    ['creation_rules:\n\t- recipients: [rsa:a.crt]\n', 2, /not valid YAML: Tabs are not allowed/],
    ['# nothing\nfoo: bar\n', 2, /no creation_rules list/],
    ['creation_rules: []\n', 1, /non-empty list/],
    ['creation_rules:\n  - just a string\n', 2, /each rule must be a mapping/],
    ['creation_rules:\n  - recipients: [rsa:a.crt]\n    path-regex: x\n', 3, /unknown key "path-regex"/],
    [
      'creation_rules:\n  - recipients: [rsa:a.crt]\n  - path_regex: "(unclosed"\n    recipients: [rsa:a.crt]\n',
      3,
      /creation_rules\[1\]\.path_regex: invalid regular expression/,
    ],
    ['creation_rules:\n  - recipients: [rsa:a.crt]\n    scope: everywhere\n', 3, /scope: expected one of strict, namespace, cluster/],
    ['creation_rules:\n  - path_regex: x\n', 2, /no recipients/],
    ['creation_rules:\n  - recipients:\n      - rsa:a.crt\n      - gpg:ABCDEF\n', 4, /"gpg:ABCDEF" is not a key URI/],
    ['creation_rules:\n  - recipients: {a: b}\n', 2, /expected a list of key URIs/],
    ['creation_rules:\n  - recipients: [rsa:a.crt]\n    recipients: [rsa:b.crt]\n', 3, /not valid YAML/],
  ])('a malformed config is ERR_CONFIG (exit 2) with its line: %j', (text, line, re) => {
    const e = configError(text)
    expect([e.code, e.exitCode]).toEqual(['ERR_CONFIG', 2])
    expect(e.line).toMatch(new RegExp(`^\\.kseal\\.yaml:${line}: `))
    expect(e.line).toMatch(re)
  })
})

describe('matching rules', () => {
  const c = parseConfig(
    `creation_rules:
  - path_regex: ^prod/
    recipients: [rsa:prod.crt]
  - namespace_regex: ^dev-
    recipients: [rsa:dev.crt]
  - path_regex: \\.yaml$
    namespace_regex: ^(staging|qa)$
    recipients: [rsa:staging.crt]
`,
    '/repo/.kseal.yaml',
  )
  const first = (file: string | undefined, ns: string) => matchRule(c, file, ns)?.recipients[0]

  it('path regexes see the path relative to the config directory, with /', () => {
    expect(first('/repo/prod/db.yaml', 'anything')).toBe('rsa:prod.crt')
    expect(first('/repo/apps/prod/db.yaml', 'x')).toBeUndefined()
  })

  it('first match wins, and a rule with both regexes needs both', () => {
    expect(first('/repo/prod/db.yaml', 'dev-a')).toBe('rsa:prod.crt')
    expect(first('/repo/apps/db.yaml', 'dev-a')).toBe('rsa:dev.crt')
    expect(first('/repo/apps/db.yaml', 'staging')).toBe('rsa:staging.crt')
    expect(first('/repo/apps/db.json', 'staging')).toBeUndefined()
    expect(first('/repo/apps/db.yaml', 'staging-2')).toBeUndefined()
  })

  it('stdin has no path: only rules without path_regex can match it', () => {
    expect(first(undefined, 'dev-x')).toBe('rsa:dev.crt')
    expect(first(undefined, 'staging')).toBeUndefined()
  })
})

describe('finding the config', () => {
  it('walks up from the file to the nearest .kseal.yaml (or .kseal.yml); none gives null', async () => {
    write('find/.kseal.yaml', 'creation_rules:\n  - recipients: [rsa:outer.crt]\n')
    write('find/inner/.kseal.yml', 'creation_rules:\n  - recipients: [rsa:inner.crt]\n')
    mkdirSync(path.join(dir, 'find/inner/deep/er'), {recursive: true})
    mkdirSync(path.join(dir, 'find/other'), {recursive: true})
    const f = new ConfigFinder(dir)
    expect((await f.find(path.join(dir, 'find/inner/deep/er')))!.rules[0].recipients).toEqual(['rsa:inner.crt'])
    expect((await f.find(path.join(dir, 'find/other')))!.file).toBe(path.join(dir, 'find/.kseal.yaml'))
    expect(await new ConfigFinder(dir).find('/')).toBeNull()
  })

  it('recipients with relative paths resolve against the config directory; rule scope applies unless --scope is given', async () => {
    const repo = path.join(dir, 'rel')
    write('rel/keys/team.crt', readFileSync(TEAM_CERT, 'utf8'))
    write('rel/.kseal.yaml', 'creation_rules:\n  - scope: cluster\n    recipients: [rsa:keys/team.crt]\n')
    const b = new Backends({env: {}, cwd: os.tmpdir(), now: () => new Date()})
    try {
      const rules = new CreationRules(b)
      const file = path.join(repo, 'app', 'db.yaml')
      const out = parse(await encryptTextWithRules(secret('db', 'prod'), file, rules, {}))
      expect(out.kseal.scope).toBe('cluster')
      expect(out.kseal.recipients[0].kid).toBe('d5326737ee564566')
      const flagged = parse(await encryptTextWithRules(secret('db', 'prod'), file, rules, {scope: 'strict'}))
      expect(flagged.kseal.scope).toBe('strict')
    } finally {
      await b.close()
    }
  })
})

describe('kseal encrypt without -r (built CLI)', () => {
  let repo: string

  beforeAll(() => {
    // The team set-up of docs/keys.md: RSA for developers, KMS for CI, age for break-glass.
    repo = path.join(dir, 'team')
    write('team/keys/team.crt', readFileSync(TEAM_CERT, 'utf8'))
    write('team/keys/other.crt', readFileSync(OTHER_CERT, 'utf8'))
    write(
      'team/.kseal.yaml',
      `creation_rules:
  # Production: developers (RSA), the CI role (KMS) and the break-glass key (age).
  - path_regex: ^clusters/prod/
    recipients:
      - rsa:keys/team.crt
      - awskms:${ciKey.aliasArn}
      - age:${ageRecipient}
  # Dev namespaces anywhere: developers only, bound to the namespace.
  - namespace_regex: ^dev-
    scope: namespace
    recipients: [rsa:keys/other.crt]
`,
    )
    write('team/clusters/prod/db.yaml', secret('db', 'prod'))
    write('team/clusters/dev/api.yaml', secret('api', 'dev-api'))
    write('team/clusters/dev/orphan.yaml', secret('orphan', 'default'))
  })

  const env = () => cleanEnv({AWS_ACCESS_KEY_ID: KMS_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: KMS_SECRET_KEY, AWS_ENDPOINT_URL_KMS: kms.url})

  it('encrypts each Secret for the first matching rule, from any working directory', async () => {
    const r = await kseal(['encrypt', '-i', 'clusters/prod/db.yaml', 'clusters/dev/api.yaml'], {cwd: repo, env: env()})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const info = JSON.parse((await kseal(['inspect', '--json', path.join(repo, 'clusters')], {env: cleanEnv()})).stdout)
    const byName = Object.fromEntries(info.map((i: {name: string}) => [i.name, i]))
    expect(byName.db.scope).toBe('strict')
    expect(byName.db.recipients).toEqual([
      {backend: 'rsa', kid: 'd5326737ee564566'},
      {backend: 'awskms', kid: ciKey.aliasArn, key: ciKey.arn},
      {backend: 'age', kid: ageRecipient},
    ])
    expect(byName.api.scope).toBe('namespace')
    expect(byName.api.recipients).toEqual([{backend: 'rsa', kid: '886d5b01b46231a8'}])
    // Each recipient opens what it was given.
    const db = path.join(repo, 'clusters/prod/db.yaml')
    expect((await kseal(['decrypt', '-k', TEAM_KEY, db])).stdout).toBe(secret('db', 'prod'))
    expect((await kseal(['decrypt', '-k', ageKey, db])).stdout).toBe(secret('db', 'prod'))
    expect((await kseal(['decrypt', db], {env: env()})).stdout).toBe(secret('db', 'prod'))
    expect((await kseal(['decrypt', '-k', OTHER_KEY, path.join(repo, 'clusters/dev/api.yaml')])).stdout).toBe(secret('api', 'dev-api'))
  })

  it('no matching rule: exit 2, naming the config and how to add a rule; other files still done', async () => {
    const orphan = path.join(repo, 'clusters/dev/orphan.yaml')
    const r = await kseal(['encrypt', orphan], {cwd: repo, env: env()})
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(
      /orphan\.yaml: document 1 \(Secret default\/orphan\): no creation rule in \.kseal\.yaml matches path "clusters\/dev\/orphan\.yaml" and namespace "default": add a rule .* or pass -r KEY_URI/,
    )
  })

  it('-r wins over the config; stdin uses the config of the working directory', async () => {
    const r = await kseal(['encrypt', '-r', `rsa:${OTHER_CERT}`, 'clusters/dev/orphan.yaml'], {cwd: repo, env: env()})
    expect(r.code).toBe(0)
    expect(parse(r.stdout).kseal.recipients.map((x: {kid: string}) => x.kid)).toEqual(['886d5b01b46231a8'])
    const stdin = await kseal(['encrypt'], {cwd: repo, env: env(), input: secret('x', 'dev-x')})
    expect(stdin.code).toBe(0)
    expect(parse(stdin.stdout).kseal).toMatchObject({scope: 'namespace', recipients: [{kid: '886d5b01b46231a8'}]})
  })

  it('no config and no -r: exit 2 with how to add one', async () => {
    const lone = write('lone/s.yaml', secret('s', 'default'))
    const r = await kseal(['encrypt', lone], {cwd: path.dirname(lone)})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(
      /no recipients: pass -r KEY_URI \(e\.g\. -r rsa:team\.crt\), or add a \.kseal\.yaml in this directory or above: "creation_rules: \[\{recipients: \[rsa:team\.crt\]\}\]"/,
    )
  })

  it('a malformed config: exit 2 with its file and line, before any file is touched', async () => {
    write('broken/.kseal.yaml', 'creation_rules:\n  - recipients: [rsa:x.crt]\n    scop: strict\n')
    const f = write('broken/s.yaml', secret('s', 'default'))
    const r = await kseal(['encrypt', '-i', f], {cwd: path.join(dir, 'broken')})
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(
      'kseal: .kseal.yaml:3: creation_rules[0]: unknown key "scop" (known: path_regex, namespace_regex, recipients, scope, format, rsa, awskms, kms, age)\n',
    )
    expect(readFileSync(f, 'utf8')).toBe(secret('s', 'default'))
  })

  it('a recipient that cannot be loaded names the config line', async () => {
    write('missing/.kseal.yaml', 'creation_rules:\n  - recipients: [rsa:keys/gone.crt]\n')
    const f = write('missing/s.yaml', secret('s', 'default'))
    const r = await kseal(['encrypt', f], {cwd: path.join(dir, 'missing')})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      /^kseal: \.kseal\.yaml:2: .*recipient rsa:keys\/gone\.crt: .*gone\.crt: cannot read: no such file or directory/,
    )
  })
})
