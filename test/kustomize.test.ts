/**
 * kustomize overlays with the real kubectl (its built-in kustomize), over the example layouts in
 * docs/examples/kustomize — the ones docs/gitops.md shows, which this test also checks are shown there
 * verbatim. The base Secret names no namespace, so `kseal encrypt` leaves its namespace open:
 *
 * - an overlay that sets `namespace:` decrypts (kubectl kustomize overlays/prod | kseal decrypt);
 * - an overlay with `namePrefix:` renames a Secret whose name is bound: refused, naming both
 *   identities and the remedies;
 * - decrypting in the base, before the overlay renames it, works (kseal decrypt as kustomize's exec
 *   plugin, which kubectl's kustomize runs with --enable-alpha-plugins; it skips exec KRM functions).
 */
import {chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {beforeAll, expect} from '@jest/globals'
import {parseAllDocuments} from 'yaml'
import {BIN, cleanEnv, kseal, ROOT, run, TEAM_CERT, TEAM_KEY} from './support/cli.js'
import {tool} from './support/tools.js'

const EXAMPLES = path.join(ROOT, 'docs', 'examples', 'kustomize')
const kubectl = tool('kubectl')
let dir: string
let env: Record<string, string | undefined>

const docs = (text: string) =>
  parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown> & {metadata: {name: string; namespace?: string}; kseal?: unknown})

kubectl.describe('kustomize overlays (real kubectl kustomize)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-kustomize-'))
    cpSync(EXAMPLES, dir, {recursive: true})
    const enc = await kseal(['encrypt', '-i', '-r', `rsa:${TEAM_CERT}`, path.join(dir, 'base', 'db.secret.yaml')])
    expect(enc.code).toBe(0)
    // `kseal` on PATH for the exec plugin, as an installed kseal would be.
    const bin = path.join(dir, '.bin')
    mkdirSync(bin)
    writeFileSync(path.join(bin, 'kseal'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
    chmodSync(path.join(bin, 'kseal'), 0o755)
    env = cleanEnv({PATH: `${bin}:${process.env.PATH}`, KSEAL_KEYS: TEAM_KEY, KUSTOMIZE_PLUGIN_HOME: path.join(dir, 'plugin'), HOME: dir})
  })

  const build = (overlay: string, ...flags: string[]) => run('kubectl', ['kustomize', ...flags, path.join(dir, overlay)], {env, cwd: dir})

  kubectl.it('the encrypted base records an open namespace and a bound name', async () => {
    const info = await kseal(['inspect', '--json', path.join(dir, 'base', 'db.secret.yaml')])
    expect(JSON.parse(info.stdout)[0]).toMatchObject({
      version: 2,
      scope: 'strict',
      encryptedAs: {namespace: null, name: 'db', shown: 'db (in any namespace)'},
    })
  })

  kubectl.it('an overlay that sets namespace: decrypts', async () => {
    const built = await build('overlays/prod')
    expect(built.code).toBe(0)
    expect(docs(built.stdout)[0].metadata.namespace).toBe('prod')
    const r = await kseal(['decrypt'], {input: built.stdout, env})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(docs(r.stdout)[0]).toMatchObject({metadata: {name: 'db', namespace: 'prod'}, stringData: {password: 'change-me'}})
    expect(docs(r.stdout)[0].kseal).toBeUndefined()
  })

  kubectl.it('an overlay with namePrefix: is refused, naming both identities and the remedies; nothing on stdout', async () => {
    const built = await build('overlays/prefixed')
    expect(built.code).toBe(0)
    const r = await kseal(['decrypt'], {input: built.stdout, env})
    expect(r.code).toBe(3)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^kseal: \(stdin\): document 1 \(Secret prod-db\): encrypted as db \(in any namespace\), now prod-db: /)
    expect(r.stderr).toContain(
      'decrypt where it was encrypted, before it is renamed or moved (e.g. kseal krm as a transformer in the kustomize base), ' +
        'or encrypt it with a wider --scope',
    )
  })

  kubectl.it("decrypting in the base (kseal decrypt as kustomize's exec plugin), then namePrefix, piped into kseal decrypt", async () => {
    const built = await build('overlays/prefixed-decrypted', '--enable-alpha-plugins')
    expect(built.stderr).toBe('')
    expect(built.code).toBe(0)
    const r = await kseal(['decrypt'], {input: built.stdout, env})
    expect(r.code).toBe(0)
    expect(docs(r.stdout)[0]).toMatchObject({metadata: {name: 'prod-db'}, stringData: {password: 'change-me'}})
  })

  kubectl.it('the GitOps guide (docs/gitops.md) shows exactly these example files', () => {
    const readme = readFileSync(path.join(ROOT, 'docs', 'gitops.md'), 'utf8')
    for (const f of [
      'base/kustomization.yaml',
      'base/db.secret.yaml',
      'overlays/prod/kustomization.yaml',
      'overlays/prefixed/kustomization.yaml',
      'decrypted-base/kustomization.yaml',
      'decrypted-base/decrypt.yaml',
      'overlays/prefixed-decrypted/kustomization.yaml',
      'plugin/kseal.dev/v1alpha1/ksealdecrypt/KsealDecrypt',
    ]) {
      expect([f, readme.includes(readFileSync(path.join(EXAMPLES, f), 'utf8'))]).toEqual([f, true])
    }
  })
})
