#!/usr/bin/env node
// `npm run test:isolation [-- FILE… | -- --jobs N]`: runs every test of the given test files (default:
// all of test/) alone — `jest FILE -t "^exact full name$"`, one jest process per test — and lists
// the tests that fail alone (each test must set up its own state) or whose name does not pick
// exactly one test. Slow by nature (a jest start per test): run it on the files you changed. It runs
// against the built dist/ that `npm test` or `npm run build` left (the CLI tests run the built CLI).
import {spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const args = process.argv.slice(2)
const jobsAt = args.indexOf('--jobs')
const jobs = jobsAt >= 0 ? Number(args.splice(jobsAt, 2)[1]) : 1
const scratch = mkdtempSync(path.join(os.tmpdir(), 'kseal-isolation-'))
const env = {...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings`.trim()}

/** One jest run; resolves to its JSON results (undefined when jest wrote none) and its output. */
function jest(jestArgs) {
  const out = path.join(scratch, `r${Math.random().toString(36).slice(2)}.json`)
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['node_modules/jest/bin/jest.js', '--json', `--outputFile=${out}`, ...jestArgs], {env})
    let log = ''
    child.stdout.on('data', (d) => (log += d))
    child.stderr.on('data', (d) => (log += d))
    child.on('close', () => {
      let results
      try {
        results = JSON.parse(readFileSync(out, 'utf8'))
      } catch {
        results = undefined
      }
      rmSync(out, {force: true})
      resolve({results, log})
    })
  })
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

async function main() {
  const files = args.length
    ? args
    : (await jest(['--listTests'])).log
        .trim()
        .split('\n')
        .filter((f) => f.endsWith('.test.ts'))
  // Every test's full name, from jest's own enumeration (a dry run would not see generated tests).
  const tests = []
  for (const file of files) {
    const {results} = await jest(['--testPathPatterns', escape(path.resolve(file))])
    for (const r of results?.testResults ?? []) {
      for (const a of r.assertionResults) if (a.status !== 'pending') tests.push({file: path.relative('.', r.name), name: a.fullName})
    }
  }
  console.log(`${tests.length} tests in ${files.length} files, ${jobs} at a time`)
  const failures = []
  let next = 0
  let done = 0
  async function worker() {
    while (next < tests.length) {
      const t = tests[next++]
      const {results, log} = await jest(['--testPathPatterns', escape(path.resolve(t.file)), '--testNamePattern', `^${escape(t.name)}$`])
      const passed = results?.numPassedTests ?? 0
      const failed = results?.numFailedTests ?? 0
      // jest matches -t without regard to case: tests whose names differ only in case run together.
      const same = tests.filter((o) => o.file === t.file && o.name.toLowerCase() === t.name.toLowerCase()).length
      done++
      if (failed || passed !== same) {
        const why = failed ? 'fails alone' : `the name picks ${passed} tests`
        failures.push({...t, why})
        const logFile = `${scratch}-${failures.length}.log`
        writeFileSync(logFile, log)
        console.log(`✕ ${t.file} › ${t.name}: ${why} (output: ${logFile})`)
      } else if (done % 25 === 0) console.log(`… ${done}/${tests.length}`)
    }
  }
  await Promise.all(Array.from({length: jobs}, worker))
  console.log(failures.length ? `${failures.length} of ${tests.length} tests do not stand alone` : `all ${tests.length} tests stand alone`)
  rmSync(scratch, {recursive: true, force: true})
  process.exit(failures.length ? 1 : 0)
}

await main()
