#!/usr/bin/env node
// The bundled CLI (npm run build writes dist/cli/): the fast path for the hot commands when it can
// read the command line exactly as oclif would (src/cli/fast.ts), else oclif.
import {fileURLToPath} from 'node:url'
import {runFast} from './fast.js'

const dir = fileURLToPath(new URL('../dist/cli/', import.meta.url))
if (!(await runFast(dir, process.argv.slice(2)))) await import('../dist/cli/run.js')
