import type {Flag} from '@oclif/core/interfaces'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {type ControllerFlag, CONTROLLER_FLAGS, controllerOptions, type FlagRow} from '../src/controller/options.js'

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
    {
      description: 'Run outside the cluster against the current kubeconfig context',
      command: '<%= config.bin %> <%= command.id %> --kubeconfig ~/.kube/config --key-namespace kseal-system',
    },
    {
      description: 'Renew the sealing key now, whichever replica the command lands on',
      command: 'kubectl -n kseal-system exec deploy/kseal-controller -- kill -USR1 1',
    },
    {
      description: 'Stop sealing with every key made before a time (a new key is made at start if needed)',
      command: '<%= config.bin %> <%= command.id %> --key-cutoff 2026-03-01T00:00:00Z',
    },
    {
      description: 'Only two namespaces, renew keys weekly, no leader election (single replica)',
      command: '<%= config.bin %> <%= command.id %> --namespaces team-a,team-b --key-renew-period 7d --no-leader-elect',
    },
  ]
  static override flags = Object.fromEntries(Object.entries(CONTROLLER_FLAGS).map(([name, row]) => [name, flagOf(row)])) as Record<
    ControllerFlag,
    Flag<FlagValue>
  >

  async run(): Promise<void> {
    const {flags} = await this.parse(Controller)
    const options = controllerOptions(flags)
    const {startController} = await import('../src/controller/controller.js')
    const {createLogger} = await import('../src/controller/log.js')
    const log = createLogger({level: options.logLevel})
    // Listen first: a SIGTERM during start-up still ends in a clean shutdown once started.
    const signal = new Promise<string>((resolve) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s))
    })
    // On-demand renewal, listened for from the start: a listener also keeps Node from opening its inspector on SIGUSR1.
    // eslint-disable-next-line prefer-const -- assigned once the controller has started; the signal handler reads it before
    let started: {requestRenewal(t: 'signal'): Promise<void>} | undefined
    let pending = false
    const renew = () =>
      started!
        .requestRenewal('signal')
        .catch((e) => log.error('key renewal request failed', {error: e instanceof Error ? e.message.split('\n')[0] : String(e)}))
    process.on('SIGUSR1', () => {
      log.info('signal received', {signal: 'SIGUSR1'})
      if (started) void renew()
      else pending = true
    })
    const controller = await startController(options, {log})
    started = controller
    if (pending) void renew()
    process.on('unhandledRejection', (e) =>
      log.error('unhandled rejection', {error: e instanceof Error ? e.message.split('\n')[0] : String(e)}),
    )
    log.info('signal received', {signal: await signal})
    await controller.stop()
  }
}

type FlagValue = string | number | boolean | undefined

/** The oclif flag for one row of the options table. */
function flagOf(row: FlagRow): Flag<FlagValue> {
  const {type, ...rest} = row
  return (
    type === 'integer' ? Flags.integer(rest as never) : type === 'boolean' ? Flags.boolean(rest as never) : Flags.string(rest as never)
  ) as Flag<FlagValue>
}
