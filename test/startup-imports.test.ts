/**
 * What the hot commands (decrypt, textconv, check, --version through the fast path) load at start-up:
 * the modules reachable from src/cli/fast.ts by static imports alone, read from esbuild's metafile
 * (dynamic `import()` edges are left out: those load only when a text or a flag asks for them).
 * Other tools' formats, the other key backends, the cluster clients and the controller must stay
 * behind an `import()`: each costs every `git diff`, pre-commit run and render.
 */
import path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import {build} from 'esbuild'

const ROOT = path.resolve(import.meta.dirname, '..')

/** Our modules (relative paths) reachable from `entries` through static imports, and the packages they import statically. */
async function staticallyLoaded(entries: string[]): Promise<{modules: string[]; packages: string[]}> {
  const r = await build({
    entryPoints: entries.map((e) => path.join(ROOT, e)),
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    outdir: 'out',
    metafile: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  })
  const inputs = r.metafile.inputs
  const seen = new Set<string>()
  const packages = new Set<string>()
  const todo = [...entries]
  while (todo.length) {
    const m = todo.pop()!
    if (seen.has(m)) continue
    seen.add(m)
    for (const i of inputs[m]?.imports ?? []) {
      if (i.kind !== 'import-statement' && i.kind !== 'require-call') continue
      if (i.external) packages.add(i.path)
      else todo.push(i.path)
    }
  }
  return {modules: [...seen].sort(), packages: [...packages].sort()}
}

describe('the hot commands load at start-up', () => {
  it('no other format, no other key backend, no cluster client and no controller', async () => {
    // fast.ts, and what it imports for every hot command: the command bodies and their context.
    const {modules, packages} = await staticallyLoaded(['src/cli/fast.ts', 'src/cli/hot.ts', 'src/cli/context.ts'])
    // Not vacuous: what every hot command runs is in the graph.
    expect(modules).toEqual(
      expect.arrayContaining(['src/ops/decrypt.ts', 'src/ops/check.ts', 'src/ops/textconv.ts', 'src/manifest/scan.ts', 'keys/index.ts']),
    )
    const heavy = modules.filter((m) =>
      /^(src\/formats\/(sops|kubesec)\/|src\/formats\/bitnami|src\/external\/|src\/controller\/|src\/kube\/|src\/client\/|keys\/(pgp|awskms)\.ts)/.test(
        m,
      ),
    )
    expect(heavy).toEqual([])
    expect(packages.filter((p) => /^(@aws-sdk|@kubernetes|@oclif|node-forge|prom-client|re2js)/.test(p))).toEqual([])
  })
})
