#!/usr/bin/env node
// `npm test`: the whole set-up and test run on a fresh machine (after `npm ci`).
// 1. installs the peer tools the interoperability tests drive (the Debian `age` binary),
// 2. builds dist/ and oclif.manifest.json (the CLI tests run the built CLI, as users do),
// 3. runs jest (ESM) over test/. Extra arguments go to jest: `npm test -- test/envelope.test.ts`.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {ensureTools} from './tools.mjs'

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, {stdio: 'inherit', env})
  if (r.status !== 0) process.exit(r.status ?? 1)
}

ensureTools()
run(process.execPath, ['scripts/build.mjs'])
// jest's own summary, plus one plain closing line (`tests: N passed, N failed, N skipped`) that any
// CI reads, from jest's JSON results.
const results = path.join(mkdtempSync(path.join(os.tmpdir(), 'kseal-jest-')), 'results.json')
const jest = spawnSync(process.execPath, ['node_modules/jest/bin/jest.js', '--json', `--outputFile=${results}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: {...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings`.trim()},
})
if (existsSync(results)) {
  const r = JSON.parse(readFileSync(results, 'utf8'))
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
  rmSync(path.dirname(results), {recursive: true, force: true})
}
process.exit(jest.status ?? 1)
