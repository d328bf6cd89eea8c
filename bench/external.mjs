#!/usr/bin/env node
/**
 * ExternalSecret benchmark: 1,000 ExternalSecrets (one remote key each) on one SecretStore against
 * the local Secrets Manager (test/support/aws, SigV4 checked; it throttles above --store-limit calls
 * a second, as AWS does), next to 2,000 SealedSecrets, synced by a real `kseal controller` process
 * (the built CLI) from the Kubernetes API test server. The refresh interval is a compressed hour
 * (--interval, default 120 s: one "minute" is 2 s; --quick: 300, 200 and 60 s).
 *
 * Figures:
 *  - the initial sync: its time, remote calls per remote key until each ExternalSecret's first sync
 *    (target exactly 1), throttled answers (target 0: the controller paces itself below the store's
 *    limit with --store-rate-limit);
 *  - the refreshes over one compressed interval in steady state (from 1¼ intervals after the initial
 *    sync): one call per remote key, calls per compressed minute (the histogram), their spread
 *    (largest minute against the mean), throttled answers (target 0);
 *  - the controller's RSS (and peak) with 1,000 ExternalSecrets and 2,000 SealedSecrets.
 *
 *   node bench/external.mjs [--externals 1000] [--sealed 2000] [--interval 120] [--rate 50] [--store-limit 60] [--quick] [--json]
 *
 * The controller runs under the Deployment's memory limit where a memory cgroup can be made (see
 * bench/controller.mjs). Runs against the built dist/ (run `npm run build` first).
 */
import {spawn} from 'node:child_process'
import crypto from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {testSupportUrl} from './ts-module.mjs'
import {arg, controllerArgs, deploymentMemoryLimit, mb, peakRssBytes, sleep} from './util.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const KEY_NS = 'kseal-system'
const NS = 'bench'
const CREDS = {accessKeyId: 'AKIAKSEALBENCH000001', secretAccessKey: 'bench/secret/not/a/real/one'}

export async function benchExternal(opts = {}) {
  const quick = opts.quick ?? false
  const nEs = opts.externals ?? (quick ? 300 : 1000)
  const nSealed = opts.sealed ?? (quick ? 200 : 2000)
  const intervalS = opts.interval ?? (quick ? 60 : 120)
  const rate = opts.rate ?? 50
  const storeLimit = opts.storeLimit ?? 60
  const dist = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href)
  const {sealSecret} = await dist('src/sealed/seal.js')
  const {RsaRecipient} = await dist('keys/rsa.js')
  const {keySecret, trustSecret} = await dist('src/sealed/sealing-key.js')
  const {startK8sApiServer} = await import(await testSupportUrl('k8s-api-server'))
  const {startSecretsManagerServer} = await import(await testSupportUrl('aws/secretsmanager'))
  const {sample: sample0} = await import(await testSupportUrl('metrics'))
  const sample = (t, s) => sample0(t, s) ?? 0

  const rows = []
  const json = {
    externalSecrets: nEs,
    sealedSecrets: nSealed,
    intervalSeconds: intervalS,
    storeRateLimit: rate,
    storeLimitPerSecond: storeLimit,
  }
  const row = (what, value, target = '', ok) => rows.push([what, value, target, ok === undefined ? '' : ok ? 'ok' : 'MISS'])

  const srv = await startK8sApiServer({namespaces: ['default', KEY_NS, NS], historySize: 20000})
  const sm = await startSecretsManagerServer({credentials: {[CREDS.accessKeyId]: CREDS.secretAccessKey}})
  // The store's own limit: the controller must stay under it.
  sm.throttle({perSecond: storeLimit, burst: storeLimit, operation: 'GetSecretValue'})
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-bench-es-'))
  const kubeconfig = path.join(tmp, 'kubeconfig')
  // As the Deployment runs it: under its memory limit (bench/util.mjs).
  const memLimit = deploymentMemoryLimit(ROOT, {off: opts.memoryLimit === false})
  json.memoryLimit = {bytes: memLimit.limitBytes, note: memLimit.note}
  row(`controller memory: ${memLimit.note}`, '')
  let child
  try {
    await srv.writeKubeconfig(kubeconfig)
    const keyPem = readFileSync(path.join(ROOT, 'test/fixtures/keys/team.key'), 'utf8')
    const certPem = readFileSync(path.join(ROOT, 'test/fixtures/keys/team.crt'), 'utf8')
    const recipient = new RsaRecipient(new crypto.X509Certificate(certPem).publicKey, 'rsa:team.crt')
    const root = crypto.randomBytes(32)
    srv.putObject(trustSecret(KEY_NS, root))
    srv.putObject(keySecret(KEY_NS, {kid: recipient.kid, keyPem, certPem}, new Date(), root))
    for (let i = 0; i < nSealed; i++) {
      const stringData = {}
      for (let v = 0; v < 8; v++) stringData[`key-${v}`] = `value ${v} of ${i} ${crypto.randomBytes(12).toString('hex')}`
      srv.putObject(
        await sealSecret({apiVersion: 'v1', kind: 'Secret', metadata: {name: `s-${i}`, namespace: NS}, stringData}, [recipient], 'strict'),
      )
    }
    srv.putObject({
      apiVersion: 'kseal.dev/v1',
      kind: 'SecretStore',
      metadata: {name: 'aws', namespace: NS},
      spec: {provider: {aws: {service: 'SecretsManager', region: 'us-east-1'}}},
    })
    for (let i = 0; i < nEs; i++) {
      sm.createSecret(`bench/k${i}`, `remote value ${i} ${crypto.randomBytes(8).toString('hex')}`)
      srv.putObject({
        apiVersion: 'kseal.dev/v1',
        kind: 'ExternalSecret',
        metadata: {name: `e-${i}`, namespace: NS},
        spec: {refreshInterval: `${intervalS}s`, secretStoreRef: {name: 'aws'}, data: [{secretKey: 'v', remoteRef: {key: `bench/k${i}`}}]},
      })
    }

    const startedAt = Date.now()
    const [cmd, args] = memLimit.wrap(
      process.execPath,
      controllerArgs(BIN, kubeconfig, KEY_NS, '127.0.0.1:0', [
        '--no-leader-elect',
        '--identity',
        'bench',
        '--store-rate-limit',
        String(rate),
        '--store-rate-burst',
        String(rate),
        '--log-level',
        'info',
      ]),
    )
    child = spawn(cmd, args, {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: os.tmpdir(),
        AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
        AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_MAX_ATTEMPTS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let port = 0
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d
      const m = /"msg":"serving HTTP","address":"[^"]*:(\d+)"/.exec(stderr)
      if (m) port = Number(m[1])
      if (stderr.length > 1e6) stderr = stderr.slice(-1e5)
    })
    const metrics = async () => {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      } catch {
        return ''
      }
    }
    // The initial sync: the first time each ExternalSecret shows a synced status.
    const firstSync = new Map()
    let sealedDoneAt = 0
    for (;;) {
      for (const o of srv.listObjects('kseal.dev/v1', 'ExternalSecret', NS))
        if (o.status?.syncedResourceVersion && !firstSync.has(o.metadata.name)) firstSync.set(o.metadata.name, Date.now())
      if (port && !sealedDoneAt && sample(await metrics(), 'kseal_reconciles_total{result="unsealed"}') >= nSealed)
        sealedDoneAt = Date.now()
      if (firstSync.size >= nEs && sealedDoneAt) break
      if (child.exitCode !== null) throw new Error(`controller exited: ${stderr.slice(-2000)}`)
      if (Date.now() - startedAt > 900_000) throw new Error(`initial sync did not finish in 15 minutes (${firstSync.size} synced)`)
      await sleep(50)
    }
    const initialEnd = Math.max(...firstSync.values())
    const gets = () => sm.calls.filter((c) => c.operation === 'GetSecretValue')
    const callsBefore = new Map()
    for (const c of gets()) {
      const i = Number(/^bench\/k(\d+)$/.exec(c.secretId ?? '')?.[1])
      if (!Number.isInteger(i)) continue
      if (c.time <= firstSync.get(`e-${i}`)) callsBefore.set(i, (callsBefore.get(i) ?? 0) + 1)
    }
    const perKey = [...callsBefore.values()]
    const throttledInitial = gets().filter((c) => c.status !== 200 && c.time <= initialEnd).length
    json.initial = {
      seconds: (initialEnd - startedAt) / 1000,
      sealedSeconds: (sealedDoneAt - startedAt) / 1000,
      keysCalled: callsBefore.size,
      maxCallsPerKey: Math.max(...perKey),
      callsTotal: perKey.reduce((a, b) => a + b, 0),
      throttled: throttledInitial,
    }
    row(`initial sync: ${nEs} ExternalSecrets (+ ${nSealed} SealedSecrets), from process start`, `${json.initial.seconds.toFixed(1)} s`)
    row(
      '  remote calls per remote key until its first sync',
      `${json.initial.callsTotal} calls for ${json.initial.keysCalled} keys, max ${json.initial.maxCallsPerKey}`,
      'exactly 1',
      json.initial.keysCalled === nEs && json.initial.maxCallsPerKey === 1,
    )
    row(`  throttled answers (store limit ${storeLimit}/s, controller pace ${rate}/s)`, throttledInitial, '= 0', throttledInitial === 0)

    // One compressed interval of refreshes in steady state: by ¼ interval after its first sync each
    // ExternalSecret has had its first refresh (src/controller/external/schedule.ts), from then on
    // one an interval apart; so from initialEnd + 1¼ intervals, every ExternalSecret refreshes once a window.
    const windowStart = initialEnd + (intervalS * 1000 * 5) / 4
    const windowEnd = windowStart + intervalS * 1000
    while (Date.now() < windowEnd + 1000) {
      if (child.exitCode !== null) throw new Error(`controller exited: ${stderr.slice(-2000)}`)
      await sleep(500)
    }
    const minuteMs = (intervalS * 1000) / 60
    const hist = Array(60).fill(0)
    const inWindow = gets().filter((c) => c.time > windowStart && c.time <= windowEnd)
    for (const c of inWindow) hist[Math.min(59, Math.floor((c.time - windowStart) / minuteMs))]++
    const perEs = new Map()
    for (const c of inWindow) perEs.set(c.secretId, (perEs.get(c.secretId) ?? 0) + 1)
    const mean = inWindow.length / 60
    const throttledRefresh = inWindow.filter((c) => c.status !== 200).length
    json.refresh = {
      calls: inWindow.length,
      keys: perEs.size,
      maxPerKey: Math.max(0, ...perEs.values()),
      perMinute: hist,
      maxMinute: Math.max(...hist),
      minMinute: Math.min(...hist),
      mean,
      throttled: throttledRefresh,
    }
    row(
      `refreshes over one compressed interval (${intervalS} s = 1 h), steady state`,
      `${inWindow.length} calls for ${perEs.size} keys, max ${json.refresh.maxPerKey}`,
      `${nEs}, 1 each`,
      inWindow.length === nEs && perEs.size === nEs,
    )
    row(
      '  calls per compressed minute: min / mean / max',
      `${json.refresh.minMinute} / ${mean.toFixed(1)} / ${json.refresh.maxMinute}`,
      'max ≤ 2.5 × mean',
      json.refresh.maxMinute <= 2.5 * mean,
    )
    row('  throttled answers', throttledRefresh, '= 0', throttledRefresh === 0)

    const m = await metrics()
    json.rssBytes = sample(m, 'process_resident_memory_bytes')
    json.peakRssBytes = peakRssBytes(child.pid)
    json.heapUsedBytes = sample(m, 'nodejs_heap_used_bytes')
    row(
      `controller RSS with ${nEs} ExternalSecrets and ${nSealed} SealedSecrets / peak`,
      `${mb(json.rssBytes)} / ${json.peakRssBytes ? mb(json.peakRssBytes) : 'n/a'}`,
    )
    row('  V8 heap in use', mb(json.heapUsedBytes))
    json.ok = rows.every((r) => r[3] !== 'MISS')
    return {rows, json}
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM')
      await new Promise((r) => child.on('close', r))
    }
    await Promise.all([srv.close(), sm.close()])
    memLimit.close()
    rmSync(tmp, {recursive: true, force: true})
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {rows, json} = await benchExternal({
    quick: process.argv.includes('--quick'),
    externals: arg('--externals', undefined),
    sealed: arg('--sealed', undefined),
    interval: arg('--interval', undefined),
    rate: arg('--rate', 50),
    storeLimit: arg('--store-limit', 60),
  })
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify(json, null, 2) + '\n')
  } else {
    const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => String(r[c]).length)))
    for (const r of rows)
      process.stdout.write(`${String(r[0]).padEnd(w[0])}  ${String(r[1]).padEnd(w[1])}  ${String(r[2]).padEnd(w[2])}  ${r[3]}\n`)
    process.stdout.write(`calls per compressed minute: ${json.refresh.perMinute.join(' ')}\n`)
  }
  process.exitCode = json.ok ? 0 : 1
}
