#!/usr/bin/env node
// Writes dist/cli/fast.cjs.cache: V8's code cache of the fast path bundle, produced by the same
// loader bin/run.js uses (bin/fast.js) after the bundle has read a sample stream the way the hot
// commands do (warmUp), so the functions that took are compiled and in the cache too. Build time is
// the only time it is written (see bin/fast.js for why).
//
// The sample is also encrypted, by the built CLI, to a throw-away RSA key made here, and decrypted
// with it: without that, every function of the decryption itself (unwrapping, the MAC, the values,
// the edits) was compiled again on every run. The key lives in a private temporary directory,
// removed at the end.
import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {loadBundle} from '../bin/fast.js'

const file = path.resolve('dist/cli/fast.cjs')
const {script, exports} = loadBundle(file, undefined)
const tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-code-cache-'))
try {
  const {privateKey, publicKey} = crypto.generateKeyPairSync('rsa', {modulusLength: 2048})
  const key = path.join(tmp, 'warm-up.key')
  const pub = path.join(tmp, 'warm-up.pub')
  writeFileSync(key, privateKey.export({type: 'pkcs8', format: 'pem'}), {mode: 0o600})
  writeFileSync(pub, publicKey.export({type: 'spki', format: 'pem'}))
  const sample = path.join(tmp, 'sample.yaml')
  writeFileSync(sample, await exports.warmUpSample())
  const enc = spawnSync(process.execPath, ['bin/run.js', 'encrypt', '-r', `rsa:${pub}`, sample], {encoding: 'utf8'})
  if (enc.status !== 0) throw new Error(`code cache: encrypting the warm-up sample failed: ${enc.stderr}`)
  await exports.warmUp({key, encrypted: enc.stdout})
} finally {
  rmSync(tmp, {recursive: true, force: true})
}
writeFileSync(file + '.cache', script.createCachedData())
