#!/usr/bin/env node
// `npm test`: the whole set-up and test run on a fresh machine (after `npm ci`).
// 1. runs the checks of `npm run lint` (ESLint: the import direction of docs/ARCHITECTURE.md and
//    typescript-eslint's checks; prettier's format check, `npm run format` fixes it), installs the peer
//    tools the interoperability tests drive (the Debian `age` binary),
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

// The tree must be clean of lint and format findings before anything is built (`npm run lint`).
run(process.execPath, ['node_modules/eslint/bin/eslint.js', '.'])
run(process.execPath, ['node_modules/prettier/bin/prettier.cjs', '--check', '--log-level', 'warn', '**/*.{ts,mjs,js}'])
ensureTools()
run(process.execPath, ['scripts/build.mjs'])
// jest's own summary, plus one plain closing line (`tests: N passed, N failed, N skipped`) that any
// CI reads, from jest's JSON results.
const scratch = mkdtempSync(path.join(os.tmpdir(), 'kseal-jest-'))
const results = path.join(scratch, 'results.json')
// Tests that drive a real tool (test/support/tools.ts) note here whether it ran or was missing.
const toolRecord = path.join(scratch, 'tools.tsv')
const jest = spawnSync(process.execPath, ['node_modules/jest/bin/jest.js', '--json', `--outputFile=${results}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: {
    ...process.env,
    KSEAL_TOOL_RECORD: toolRecord,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings`.trim(),
  },
})
console.log(toolSummary(toolRecord))
if (existsSync(results)) {
  const r = JSON.parse(readFileSync(results, 'utf8'))
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
}
rmSync(scratch, {recursive: true, force: true})
process.exit(jest.status ?? 1)

/** One line: which real tools the suite drove, and which were missing (their tests skipped). */
function toolSummary(file) {
  const ran = new Set()
  const missing = new Map()
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
  for (const line of lines) {
    const [state, name] = line.split('\t')
    if (state === 'ran') ran.add(name)
    else missing.set(name, (missing.get(name) ?? 0) + 1)
  }
  const ranText = ran.size ? [...ran].sort().join(', ') : 'none'
  const missingText = missing.size
    ? [...missing]
        .sort()
        .map(([n, c]) => `${n} (${c} skipped)`)
        .join(', ')
    : 'none'
  return `real tools: ran ${ranText}; missing ${missingText}`
}
