#!/usr/bin/env node
// Writes dist/cli/fast.cjs.cache: V8's code cache of the fast path bundle, produced by the same
// loader bin/run.js uses (bin/fast.js) after the bundle has read a sample stream the way the hot
// commands do (warmUp), so the functions that took are compiled and in the cache too. Build time is
// the only time it is written (see bin/fast.js for why).
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {loadBundle} from '../bin/fast.js'

const file = path.resolve('dist/cli/fast.cjs')
const {script, exports} = loadBundle(file, undefined)
await exports.warmUp()
writeFileSync(file + '.cache', script.createCachedData())
