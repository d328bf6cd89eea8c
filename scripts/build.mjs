#!/usr/bin/env node
// `npm run build`:
// 1. tsc type-checks everything and compiles the library to dist/ (dist/src, dist/keys: what
//    programs importing kseal, the benchmarks and the Dockerfile use);
// 2. esbuild bundles the CLI — the oclif entry and one module per command, sharing chunks — into
//    dist/cli/, because loading a few large modules starts far faster than loading hundreds of
//    small ones (measured: `kseal decrypt` of one Secret ~190 ms → ~120 ms here). Heavy packages
//    stay external and load from node_modules only when a command needs them.
// 3. esbuild bundles the fast path (src/cli/fast.ts: the hot commands without oclif) into one
//    CommonJS file, dist/cli/fast.cjs, which bin/run.js loads before anything else;
// 4. writes oclif.manifest.json so oclif finds commands without importing them all, and the fast
//    path's reading of the hot commands' flags (dist/cli/fast-spec.json);
// 5. writes the V8 code cache of the fast bundle (dist/cli/fast.cjs.cache, see bin/fast.js).
import {spawnSync} from 'node:child_process'
import {readFileSync, readdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {plainInterop} from './interop.mjs'

// Built beside dist/ and swapped in at the end, so a failed build leaves the last good one.
const out = `dist.next-${process.pid}`
rmSync(out, {recursive: true, force: true})
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', out], {
  stdio: 'inherit',
})
if (tsc.status !== 0) {
  rmSync(out, {recursive: true, force: true})
  process.exit(tsc.status ?? 1)
}

const {build} = await import('esbuild')
// commands/topic/name.ts is the command `kseal topic name`.
const commands = readdirSync('commands', {recursive: true})
  .filter((f) => f.endsWith('.ts'))
  .map((f) => path.join('commands', f))
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: false,
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  // Loaded lazily from node_modules, only by the commands and backends that use them.
  // @kubernetes/client-node is bundled instead (a lazily loaded chunk), through src/kube/client-node.ts:
  // only the parts kseal names, a fraction of the package's memory.
  external: ['@aws-sdk/*', '@smithy/*', 'node-forge', 'age-encryption', '@oclif/plugin-*', 'typescript'],
  logLevel: 'warning',
}
await build({
  ...common,
  entryPoints: [{in: 'src/cli/run.ts', out: 'run'}, ...commands.map((c) => ({in: c, out: c.replace(/\.ts$/, '')}))],
  outdir: path.join(out, 'cli'),
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  format: 'esm',
  // Bundled CommonJS dependencies call require(); give ESM chunks one.
  banner: {js: "import {createRequire as __ksealRequire} from 'node:module'; const require = __ksealRequire(import.meta.url);"},
})
// The fast path as one CommonJS file: no ESM loader resolving chunks before the work starts.
// oclif stays out of it (a build that pulled it in fails here); import() of the lazily loaded
// packages is kept as import() (not turned into require()), then rewritten below.
await build({
  ...common,
  entryPoints: ['src/cli/fast.ts'],
  outfile: path.join(out, 'cli', 'fast.cjs'),
  format: 'cjs',
  external: [...common.external, '@kubernetes/client-node', '@oclif/*', 're2js'],
  supported: {'dynamic-import': true},
})
// The bundle runs as a vm.Script (for its code cache, bin/fast.js), where import() has no loader:
// its import() of the lazily loaded packages goes through the loader's own import() instead.
const fast = path.join(out, 'cli', 'fast.cjs')
const bundle = plainInterop(readFileSync(fast, 'utf8').replace(/\bimport\((?=")/g, '__ksealImport('))
if (/\bimport\(/.test(bundle)) throw new Error('the fast path bundle has an import() the build did not rewrite')
if (/require\("@oclif\//.test(bundle)) throw new Error('the fast path bundle loads oclif')
// bin/fast.js reads it as latin1, which is exact only for ASCII (esbuild escapes the rest by default).
if (/[^\x00-\x7f]/.test(bundle)) throw new Error('the fast path bundle is not ASCII-only')
writeFileSync(fast, bundle)

rmSync('dist', {recursive: true, force: true})
renameSync(out, 'dist')

for (const script of ['scripts/manifest.mjs', 'scripts/code-cache.mjs']) {
  const r = spawnSync(process.execPath, [script], {stdio: 'inherit'})
  if (r.status !== 0) process.exit(r.status ?? 1)
}
