#!/usr/bin/env node
// `npm test`: the whole set-up and test run on a fresh machine (after `npm ci`).
// 1. installs the peer tools the interoperability tests drive (the Debian `age` binary),
// 2. builds dist/ and oclif.manifest.json (the CLI tests run the built CLI, as users do),
// 3. runs jest (ESM) over test/. Extra arguments go to jest: `npm test -- test/envelope.test.ts`.
import {spawnSync} from 'node:child_process'
import {ensureTools} from './tools.mjs'

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, {stdio: 'inherit', env})
  if (r.status !== 0) process.exit(r.status ?? 1)
}

ensureTools()
run(process.execPath, ['scripts/build.mjs'])
run(process.execPath, ['node_modules/jest/bin/jest.js', ...process.argv.slice(2)], {
  ...process.env,
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings`.trim(),
})
