// Loads the fast path (dist/cli/fast.cjs: src/cli/fast.ts and the hot commands as one CommonJS
// bundle, which starts faster than ESM chunks) compiled with the V8 code cache that `npm run build`
// wrote beside it (fast.cjs.cache). The cache is part of the package, written only at build time:
// nothing is ever written at run time, so no other user can plant compiled code for kseal to run
// (a cache written on first use, to a place another user can write, would be code execution).
// V8 checks the cache against this source, its version and flags and ignores one that does not
// match (another Node, a rebuilt bundle): the bundle is then compiled as usual.
// CommonJS (bin/package.json), like bin/run.js: no ESM loader unless oclif runs.
const {readFileSync} = require('node:fs')
const {createRequire} = require('node:module')
const path = require('node:path')
const vm = require('node:vm')

/** Compiles and runs the CommonJS bundle at `filename` with `cachedData`; returns its exports and the compiled script. */
function loadBundle(filename, cachedData) {
  // The build makes the bundle ASCII-only (and checks it), so latin1 reads it exactly, and faster than utf8.
  const source = `(function (exports, require, module, __filename, __dirname, __ksealImport) {${readFileSync(filename, 'latin1')}\n})`
  const script = new vm.Script(source, {filename, cachedData})
  const module = {exports: {}}
  // A vm.Script has no module loader for import(): the build rewrote the bundle's import() of the
  // lazily loaded packages (bare names, resolved from the package as from here) to this one.
  const load = (specifier) => import(specifier)
  script.runInThisContext()(module.exports, createRequire(filename), module, filename, path.dirname(filename), load)
  return {exports: module.exports, script}
}

/**
 * Runs the command line on the fast path when it names a command the fast path has (per the spec
 * the build wrote; the bundle is loaded only then); false when oclif must run it.
 */
async function runFast(dir, argv) {
  let spec
  try {
    spec = JSON.parse(readFileSync(path.join(dir, 'fast-spec.json'), 'utf8'))
  } catch {
    return false // no fast path in this build
  }
  if (argv[0] !== '--version' && !Object.hasOwn(spec.commands, argv[0] ?? '')) return false
  const filename = path.join(dir, 'fast.cjs')
  let cachedData
  try {
    cachedData = readFileSync(filename + '.cache')
  } catch {
    // no cache (a build without one): compile as usual
  }
  return loadBundle(filename, cachedData).exports.fastPath(argv, spec)
}

module.exports = {loadBundle, runFast}
