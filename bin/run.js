#!/usr/bin/env node
// The bundled CLI (npm run build writes dist/cli/): the fast path for the hot commands when it can
// read the command line exactly as oclif would (src/cli/fast.ts), else oclif. CommonJS
// (bin/package.json): the ESM loader starts only when oclif is needed.
const path = require('node:path')
const {runFast} = require('./fast.js')

const dir = path.join(__dirname, '..', 'dist', 'cli')
runFast(dir, process.argv.slice(2)).then((ran) => {
  if (!ran) return import('../dist/cli/run.js')
})
