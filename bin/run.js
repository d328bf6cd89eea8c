#!/usr/bin/env node
// The bundled CLI (npm run build writes dist/cli/): the fast path for the hot commands when it can
// read the command line exactly as oclif would (src/cli/fast.ts), else oclif.
import {fileURLToPath} from 'node:url'
import {loadFast} from './fast.js'

const dir = fileURLToPath(new URL('../dist/cli/', import.meta.url))
const fastPath = loadFast(dir)
if (!(await fastPath(process.argv.slice(2), dir + 'fast-spec.json'))) await import('../dist/cli/run.js')
