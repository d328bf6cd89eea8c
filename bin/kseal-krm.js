#!/usr/bin/env node
// `kseal krm` under a name of its own: kustomize runs an exec function's path with no arguments.
// CommonJS (bin/package.json), like bin/run.js.
process.argv.splice(2, 0, 'krm')
import('../dist/cli/run.js')
