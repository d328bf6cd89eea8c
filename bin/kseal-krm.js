#!/usr/bin/env node
// `kseal krm` under a name of its own: kustomize runs an exec function's path with no arguments.
process.argv.splice(2, 0, 'krm')
await import('../dist/cli/run.js')
