#!/usr/bin/env node
// Writes dist/cli/fast.cjs.cache: V8's code cache of the fast path bundle, produced by the same
// loader bin/run.js uses (bin/fast.js) after the bundle's top level has run, so the functions it
// compiled are in it. Build time is the only time it is written (see bin/fast.js for why).
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {loadBundle} from '../bin/fast.js'

const file = path.resolve('dist/cli/fast.cjs')
const {script} = loadBundle(file, undefined)
writeFileSync(file + '.cache', script.createCachedData())
