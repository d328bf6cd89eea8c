#!/usr/bin/env node
// `npm run bench`: kseal's performance figures, each measured side by side in one run against a
// baseline or a physical limit (the machine is shared and noisy, so ratios are what count), plus
// absolute figures for the record. Prints a table and writes bench/results/latest.json.
//   node bench/run.mjs [--only startup,bulk,sealed,kms,controller,external] [--quick]
import {spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import {chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'
import {writeCorpus} from './corpus.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const KEY = path.join(ROOT, 'test/fixtures/keys/team.key')
const CERT = path.join(ROOT, 'test/fixtures/keys/team.crt')
// git keeps no file modes: a fresh clone's fixture keys are 0644, which kseal refuses (as ssh does).
for (const k of [KEY, path.join(ROOT, 'test/fixtures/keys/other.key')]) chmodSync(k, 0o600)
const args = process.argv.slice(2)
const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : null
const quick = args.includes('--quick')
const want = (name) => !only || only.includes(name)
const CORES = Math.min(os.availableParallelism?.() ?? os.cpus().length, 8)
const env = {PATH: process.env.PATH, HOME: '/nonexistent', XDG_CONFIG_HOME: '/nonexistent'}

const rows = []
const json = {date: new Date().toISOString(), node: process.version, cores: CORES, cpu: os.cpus()[0]?.model}
const row = (what, value, target, pass) => {
  rows.push([what, value, target ?? '', pass === undefined ? '' : pass ? 'ok' : 'MISS'])
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 0)} ms`
const s = (x) => `${(x / 1000).toFixed(2)} s`

function timeCmd(argv, opts = {}) {
  const t = performance.now()
  const r = spawnSync(argv[0], argv.slice(1), {env, cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], ...opts})
  const dt = performance.now() - t
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`)
  return dt
}

// ---------------------------------------------------------------- cold start
// What users feel once per file (git textconv, the pre-commit hook, the helm post-renderer, Argo
// CD): one process, one small file, as a ratio to `node -e 0` in the same environment.
if (want('startup')) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-bench-'))
  const one = path.join(tmp, 'one.yaml')
  writeFileSync(one, 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: b\nstringData:\n  k: v\n')
  timeCmd([process.execPath, BIN, 'encrypt', '-i', '-r', `rsa:${CERT}`, one])
  const runs = quick ? 7 : 21
  const cases = [
    {key: 'version', label: 'kseal --version', argv: ['--version'], target: 1.5},
    {key: 'decrypt', label: 'kseal decrypt, one Secret', argv: ['decrypt', '-k', KEY, one], target: 2.0},
    {key: 'textconv', label: 'kseal textconv, one Secret', argv: ['textconv', '-k', KEY, one], target: 2.0},
    {key: 'check', label: 'kseal check, one file', argv: ['check', one], target: 2.0},
  ]
  // Two environments: the caller's own (on this machine it sets NODE_EXTRA_CA_CERTS, which every
  // node process pays for at start-up), and a bare one with only PATH and HOME.
  for (const [label, e] of [
    ["this shell's env", process.env],
    ['bare env', env],
  ]) {
    const base = []
    const times = cases.map(() => [])
    for (let i = 0; i < runs; i++) {
      // Interleaved, so load on the machine hits all alike.
      base.push(timeCmd([process.execPath, '-e', '0'], {env: e}))
      cases.forEach((c, k) => times[k].push(timeCmd([process.execPath, BIN, ...c.argv], {env: e})))
    }
    const b = median(base)
    const out = ((json.startup ??= {})[label] = {nodeMs: b})
    row(`node -e 0 (${label})`, ms(b))
    cases.forEach((c, k) => {
      const t = median(times[k])
      out[`${c.key}Ms`] = t
      out[`${c.key}Ratio`] = t / b
      row(`${c.label} (${label})`, `${ms(t)} (${(t / b).toFixed(2)}×)`, `≤ ${c.target.toFixed(1)}×`, t / b <= c.target)
    })
  }
  rmSync(tmp, {recursive: true, force: true})
}

// ---------------------------------------------------------------- RSA limit
function rsaSingleOpMs() {
  const key = crypto.createPrivateKey(readFileSync(KEY))
  const pub = crypto.createPublicKey(key)
  const label = Buffer.from('bench')
  const opts = {padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label}
  const ct = crypto.publicEncrypt({key: pub, ...opts}, crypto.randomBytes(32))
  const times = []
  for (let i = 0; i < 40; i++) {
    const t = performance.now()
    crypto.privateDecrypt({key, ...opts}, ct)
    times.push(performance.now() - t)
  }
  return median(times)
}

// ---------------------------------------------------------------- bulk corpus
let corpusDir
function corpus() {
  if (corpusDir) return corpusDir
  corpusDir = mkdtempSync(path.join(os.tmpdir(), 'kseal-bench-corpus-'))
  const spec = writeCorpus(path.join(corpusDir, 'plain'))
  json.corpus = spec
  return corpusDir
}

if (want('bulk')) {
  const dir = corpus()
  const plain = path.join(dir, 'plain')
  // Baseline: a process that parses and re-serializes the corpus with `yaml` alone, reading and
  // writing the same files; measured interleaved with kseal encrypt.
  const yamlDir = path.join(dir, 'yaml')
  const encDir = path.join(dir, 'enc')
  const yamlTimes = [],
    encTimes = [] // the last encrypt run's output stays for decrypt and rotate
  for (let i = 0; i < 3; i++) {
    for (const d of [yamlDir, encDir]) {
      rmSync(d, {recursive: true, force: true})
      cpSync(plain, d, {recursive: true})
    }
    yamlTimes.push(timeCmd([process.execPath, path.join(ROOT, 'bench/yaml-baseline.mjs'), yamlDir]))
    encTimes.push(timeCmd([process.execPath, BIN, 'encrypt', '-i', '-q', '-r', `rsa:${CERT}`, encDir]))
  }
  const yamlMs = median(yamlTimes)
  const encMs = median(encTimes)
  const rsaMs = rsaSingleOpMs()
  const decTimes = []
  for (let i = 0; i < 3; i++) decTimes.push(timeCmd([process.execPath, BIN, 'decrypt', '-q', '-k', KEY, encDir]))
  const decMs = median(decTimes)
  const secrets = json.corpus.secrets
  const limit = (secrets * rsaMs) / CORES
  json.bulk = {
    yamlMs,
    encryptMs: encMs,
    decryptMs: decMs,
    rsaDecryptMs: rsaMs,
    rsaLimitMs: limit,
    encryptRatio: encMs / yamlMs,
    decryptRatio: decMs / limit,
  }
  row('RSA-4096 private decrypt (one)', ms(rsaMs))
  row(`RSA limit: ${secrets} × one / ${CORES} cores`, s(limit))
  row(`kseal decrypt ${secrets} Secrets × 8 keys`, `${s(decMs)} (${(decMs / limit).toFixed(2)}× limit)`, '≤ 1.15×', decMs / limit <= 1.15)
  row('yaml alone: parse + re-serialize corpus (a process)', s(yamlMs))
  row(`kseal encrypt ${secrets} Secrets × 8 keys`, `${s(encMs)} (${(encMs / yamlMs).toFixed(2)}× yaml)`, '≤ 1.5×', encMs / yamlMs <= 1.5)
}

// ---------------------------------------------------------------- rotation
if (want('rotate')) {
  const dir = corpus()
  const encDir = path.join(dir, 'enc')
  if (!existsSync(encDir)) {
    cpSync(path.join(dir, 'plain'), encDir, {recursive: true})
    timeCmd([process.execPath, BIN, 'encrypt', '-i', '-q', '-r', `rsa:${CERT}`, encDir])
  }
  const rsaMs = json.bulk?.rsaDecryptMs ?? rsaSingleOpMs()
  const limit = (json.corpus.secrets * rsaMs) / CORES
  const OTHER = path.join(ROOT, 'test/fixtures/keys/other.crt')
  const times = []
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    const work = path.join(dir, `rot-${i}`)
    cpSync(encDir, work, {recursive: true})
    // One RSA-4096 unwrap and one wrap per Secret.
    times.push(timeCmd([process.execPath, BIN, 'rotate', '-i', '-q', '-k', KEY, '--add-recipient', `rsa:${OTHER}`, work]))
    rmSync(work, {recursive: true, force: true})
  }
  const rotMs = median(times)
  json.rotate = {ms: rotMs, rsaLimitMs: limit, ratio: rotMs / limit}
  row(
    `kseal rotate --add-recipient, ${json.corpus.secrets} Secrets`,
    `${s(rotMs)} (${(rotMs / limit).toFixed(2)}× limit)`,
    '≤ 1.3×',
    rotMs / limit <= 1.3,
  )
}

// ---------------------------------------------------------------- sealed-secrets scheme baseline
if (want('sealed')) {
  corpus()
  // sealed-secrets seals every value on its own: one RSA-OAEP operation per value. The same corpus's
  // values, decrypted that way on the same cores, with the same node:crypto primitive.
  const values = quick ? json.corpus.values / 8 : json.corpus.values
  const pem = readFileSync(KEY, 'utf8')
  const pub = crypto.createPublicKey(pem)
  const opts = {padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('ns/name')}
  const ct = crypto.publicEncrypt({key: pub, ...opts}, crypto.randomBytes(32))
  const src = `const {parentPort, workerData} = require('node:worker_threads'); const crypto = require('node:crypto');
    const key = crypto.createPrivateKey(workerData.pem); const opts = {padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('ns/name')};
    for (let i = 0; i < workerData.n; i++) crypto.privateDecrypt({key, ...opts}, Buffer.from(workerData.ct)); parentPort.postMessage(0)`
  const t = performance.now()
  await Promise.all(
    Array.from(
      {length: CORES},
      (_, i) =>
        new Promise((resolve, reject) => {
          const w = new Worker(src, {eval: true, workerData: {pem, ct, n: Math.ceil(values / CORES)}})
          w.on('message', resolve)
          w.on('error', reject)
        }),
    ),
  )
  let sealedMs = performance.now() - t
  if (quick) sealedMs *= 8
  json.sealedSecretsScheme = {values: json.corpus.values, ms: sealedMs, extrapolated: quick}
  row(`sealed-secrets scheme: ${json.corpus.values} RSA ops${quick ? ' (1/8 measured)' : ''}`, s(sealedMs))
  if (json.bulk) row('kseal decrypt vs sealed-secrets scheme', `${(sealedMs / json.bulk.decryptMs).toFixed(1)}× faster`)
}

// ---------------------------------------------------------------- backends and controller (their own modules)
for (const [name, file, fn] of [
  ['kms', 'kms.mjs', 'benchKms'],
  ['controller', 'controller.mjs', 'benchController'],
  ['external', 'external.mjs', 'benchExternal'],
]) {
  if (!want(name) || !existsSync(path.join(ROOT, 'bench', file))) continue
  const mod = await import(`./${file}`)
  // The controller at issue 13's scale: 10,000 SealedSecrets (500 with --quick).
  const size = name === 'controller' ? {secrets: quick ? 500 : 10_000} : {}
  const r = await mod[fn]({quick, ...size, corpusDir: corpusDir && path.join(corpusDir, 'plain'), key: KEY, cert: CERT, cores: CORES})
  for (const rr of r.rows) rows.push(rr.length === 4 ? rr : [...rr, '', ''].slice(0, 4))
  json[name] = r.json
}

if (corpusDir) rmSync(corpusDir, {recursive: true, force: true})

// ---------------------------------------------------------------- report
const widths = [0, 1, 2, 3].map((c) => Math.max(...[['measure', 'value', 'target', ''], ...rows].map((r) => String(r[c]).length)))
const line = (r) =>
  r
    .map((c, i) => String(c).padEnd(widths[i]))
    .join('  ')
    .trimEnd()
console.log(line(['measure', 'value', 'target', '']))
console.log(widths.map((w) => '-'.repeat(w)).join('  '))
for (const r of rows) console.log(line(r))
mkdirSync(path.join(ROOT, 'bench/results'), {recursive: true})
writeFileSync(path.join(ROOT, 'bench/results/latest.json'), JSON.stringify(json, null, 2) + '\n')
console.log(`\nwritten: bench/results/latest.json`)
