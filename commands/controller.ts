import {Flags, KsealCommand} from '../src/cli/base.js'
import {KsealError} from '../src/core/errors.js'

export default class Controller extends KsealCommand {
  static override summary = 'Run the in-cluster unsealer: turn SealedSecrets into Secrets.'
  static override description = `Watches SealedSecrets (all namespaces, or --namespaces), opens each with the sealing key its
envelope names, and creates or updates the Secret of the same name with an ownerReference, so deleting
the SealedSecret deletes the Secret. A Secret it did not create is never overwritten unless annotated
kseal.dev/managed=true. It labels the Secrets it writes kseal.dev/owned-by=sealedsecret and watches
them, so one deleted or edited by hand is written again at once. It keeps its RSA key pairs as
kubernetes.io/tls Secrets in --key-namespace (generated on first start, renewed every
--key-renew-period, old ones kept for decryption), elects a leader with a Lease so several replicas
are safe: a replica writes only while it can prove, on its own monotonic clock, that it renewed the
Lease within --renew-deadline, and every write is conditional, so none puts older data over newer
(a write race is retried with backoff; Synced=False/WriteConflict names a writer that keeps
fighting). It serves /v1/cert.pem, /v1/keys, /v1/rotate
(used by kseal reseal), /healthz, /readyz and /metrics on --listen. Keys created before --key-cutoff
no longer seal (they still open). SIGUSR1 to any replica renews the sealing key now: the leader
renews at once, another replica passes the request to the leader through the Lease (annotation
kseal.dev/renew-requested-at). Logs are JSON lines on stderr; SIGTERM shuts down gracefully.`
  static override examples = [
    {description: 'Run outside the cluster against the current kubeconfig context', command: '<%= config.bin %> <%= command.id %> --kubeconfig ~/.kube/config --key-namespace kseal-system'},
    {description: 'Renew the sealing key now, whichever replica the command lands on', command: 'kubectl -n kseal-system exec deploy/kseal-controller -- kill -USR1 1'},
    {description: 'Stop sealing with every key made before a time (a new key is made at start if needed)', command: '<%= config.bin %> <%= command.id %> --key-cutoff 2026-03-01T00:00:00Z'},
    {description: 'Only two namespaces, renew keys weekly, no leader election (single replica)', command: '<%= config.bin %> <%= command.id %> --namespaces team-a,team-b --key-renew-period 7d --no-leader-elect'},
  ]
  static override flags = {
    kubeconfig: Flags.string({description: 'Kubeconfig file. [default: in-cluster config, else $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'Kubeconfig context to use.'}),
    namespaces: Flags.string({description: 'Comma-separated namespaces to watch. [default: all]'}),
    'key-namespace': Flags.string({description: 'Namespace of the key Secrets and the leader Lease. [default: $POD_NAMESPACE or kseal-system]'}),
    'key-renew-period': Flags.string({default: '30d', description: 'Generate a new sealing key when the newest is this old (e.g. 30d, 720h); 0 disables renewal.'}),
    'key-cutoff': Flags.string({description: 'RFC 3339 time: keys created before it no longer seal (they still open old SealedSecrets); once it has passed, a newer key is generated if needed.'}),
    'key-bits': Flags.integer({default: 4096, hidden: true, description: 'RSA modulus size of generated keys (tests use 2048).'}),
    listen: Flags.string({default: ':8080', description: 'HTTP address for /v1/cert.pem, /healthz, /readyz and /metrics.'}),
    'leader-elect': Flags.boolean({default: true, allowNo: true, description: 'Elect a leader with a coordination.k8s.io Lease; only the leader reconciles.'}),
    'lease-name': Flags.string({default: 'kseal-controller', description: 'Name of the leader Lease (in --key-namespace).'}),
    'lease-duration': Flags.string({default: '15s', description: 'How long a standby waits before taking over a Lease that is not renewed.'}),
    'renew-deadline': Flags.string({default: '10s', description: 'How long the leader keeps trying to renew before it steps down; it writes only within this long of its last successful renewal.'}),
    'retry-period': Flags.string({default: '2s', description: 'How often to try to acquire or renew the Lease.'}),
    identity: Flags.string({description: 'This replica\'s name in the Lease and Events. [default: $POD_NAME, else HOSTNAME_PID]'}),
    workers: Flags.integer({default: 16, description: 'SealedSecrets reconciled concurrently (RSA work runs on all cores).'}),
    'resync-period': Flags.string({default: '10m', description: 'Re-check every SealedSecret this often, a safety net behind the watch on the Secrets it wrote; 0 disables.'}),
    'rotate-rate-limit': Flags.integer({default: 10, description: '/v1/rotate requests a second, sustained; more are answered 429 with Retry-After (kseal reseal waits and retries). 0: no limit.'}),
    'rotate-rate-burst': Flags.integer({default: 20, description: '/v1/rotate requests allowed at once above the sustained rate.'}),
    'http-header-timeout': Flags.string({default: '10s', description: 'How long a client may take to send its request headers; then the connection is closed.'}),
    'http-request-timeout': Flags.string({default: '30s', description: 'How long a client may take to send a whole request.'}),
    'http-max-connections': Flags.integer({default: 256, description: 'Connections open at once; more are closed as they arrive.'}),
    'log-level': Flags.string({default: 'info', options: ['debug', 'info', 'warn', 'error'], description: 'Least severe level logged.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Controller)
    const {parseDuration, parseTime} = await import('../src/core/duration.js')
    const {DEFAULTS, defaultIdentity, startController} = await import('../src/controller/controller.js')
    const {createLogger} = await import('../src/controller/log.js')
    const d = (name: keyof typeof flags) => parseDuration(String(flags[name]), name)
    if (flags.workers < 1) throw new KsealError('ERR_USAGE', '--workers must be at least 1')
    if (flags['rotate-rate-limit'] < 0 || flags['rotate-rate-burst'] < 1) throw new KsealError('ERR_USAGE', '--rotate-rate-limit must be 0 or more and --rotate-rate-burst at least 1')
    if (flags['http-max-connections'] < 1) throw new KsealError('ERR_USAGE', '--http-max-connections must be at least 1')
    if (!(d('http-header-timeout') > 0 && d('http-header-timeout') <= d('http-request-timeout'))) {
      throw new KsealError('ERR_USAGE', 'the HTTP timeouts need 0 < --http-header-timeout <= --http-request-timeout')
    }
    if (flags['key-bits'] < 2048 || flags['key-bits'] % 8 !== 0) throw new KsealError('ERR_USAGE', '--key-bits must be a multiple of 8, at least 2048')
    const leaseDurationMs = d('lease-duration')
    const renewDeadlineMs = d('renew-deadline')
    const retryPeriodMs = d('retry-period')
    if (flags['leader-elect'] && !(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
      throw new KsealError('ERR_USAGE', 'leader election needs 0 < --retry-period < --renew-deadline < --lease-duration')
    }
    const keyCutoff = flags['key-cutoff'] === undefined ? undefined : parseTime(flags['key-cutoff'], 'key-cutoff')
    const log = createLogger({level: flags['log-level'] as 'info'})
    // Listen first: a SIGTERM during start-up still ends in a clean shutdown once started.
    const signal = new Promise<string>((resolve) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
    })
    // On-demand renewal, listened for from the start: a listener also keeps Node from opening its inspector on SIGUSR1.
    let started: {requestRenewal(t: 'signal'): Promise<void>} | undefined
    let pending = false
    const renew = () => started!.requestRenewal('signal').catch((e) => log.error('key renewal request failed', {error: e instanceof Error ? e.message.split('\n')[0] : String(e)}))
    process.on('SIGUSR1', () => {
      log.info('signal received', {signal: 'SIGUSR1'})
      if (started) void renew()
      else pending = true
    })
    const controller = await startController({
      ...DEFAULTS,
      kubeconfig: flags.kubeconfig,
      context: flags.context,
      namespaces: (flags.namespaces ?? '').split(',').map((s) => s.trim()).filter(Boolean),
      keyNamespace: flags['key-namespace'] ?? (process.env.POD_NAMESPACE || DEFAULTS.keyNamespace),
      keyRenewPeriodMs: d('key-renew-period'),
      keyCutoff,
      keyBits: flags['key-bits'],
      listen: flags.listen,
      leaderElect: flags['leader-elect'],
      leaseName: flags['lease-name'],
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
      identity: flags.identity ?? defaultIdentity(),
      workers: flags.workers,
      resyncPeriodMs: d('resync-period'),
      rotateRateLimit: flags['rotate-rate-limit'],
      rotateRateBurst: flags['rotate-rate-burst'],
      httpLimits: {headersTimeoutMs: d('http-header-timeout'), requestTimeoutMs: d('http-request-timeout'), maxConnections: flags['http-max-connections']},
      logLevel: flags['log-level'] as 'info',
    }, {log})
    started = controller
    if (pending) void renew()
    process.on('unhandledRejection', (e) => log.error('unhandled rejection', {error: e instanceof Error ? e.message.split('\n')[0] : String(e)}))
    log.info('signal received', {signal: await signal})
    await controller.stop()
  }
}
