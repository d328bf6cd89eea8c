import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../src/core/names.js'
import {runBatch} from '../src/ops/batch.js'

export default class Reseal extends KsealCommand {
  static override summary = "Re-encrypt SealedSecret files to the in-cluster controller's newest key."
  static override description = `Sends each kseal SealedSecret to the controller's /v1/rotate endpoint, which opens it with the key
it was sealed to and seals it again to its newest key: same name, namespace, scope and template, new
ciphertext. This side never holds a private key, and no plaintext crosses the wire. Every other
document passes through unchanged; a SealedSecret already sealed to the newest key is left as it is.
The controller is reached through the API server's service proxy (needs "create services/proxy" on
its Service) or at --controller-url. Every file is attempted; with -i each is rewritten atomically.`
  static override examples = [
    {description: 'Move every SealedSecret under k8s/ to the newest key, in place', command: '<%= config.bin %> <%= command.id %> -i k8s/'},
    {
      description: 'Through a port-forward instead of the service proxy',
      command:
        'kubectl -n kseal-system port-forward svc/kseal-controller 8080 &\n<%= config.bin %> <%= command.id %> --controller-url http://127.0.0.1:8080 -i db.sealed.yaml',
    },
    {description: 'To stdout', command: '<%= config.bin %> <%= command.id %> db.sealed.yaml > db.resealed.yaml'},
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    'in-place': Flags.boolean({char: 'i', description: 'Rewrite the files (atomically) instead of writing to stdout.'}),
    'controller-namespace': Flags.string({default: CONTROLLER_NAMESPACE, description: 'Namespace of the controller and its Service.'}),
    'controller-name': Flags.string({default: CONTROLLER_NAME, description: 'Name of the controller\'s Service (its port named "http").'}),
    'controller-url': Flags.string({
      description:
        'Reach the controller at this URL (e.g. http://127.0.0.1:8080 after kubectl port-forward) instead of through the cluster API.',
    }),
    kubeconfig: Flags.string({description: 'Kubeconfig file. [default: $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'Kubeconfig context to use.'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Reseal)
    const {controllerTarget} = await import('../src/client/endpoints.js')
    const {controllerResealer, resealText} = await import('../src/ops/reseal.js')
    const target = controllerTarget(flags)
    const files = await this.expand(argv as string[], flags.quiet)
    const stats = {resealed: 0, unchanged: 0}
    const reseal = controllerResealer(target, stats)
    const result = await runBatch(files, (text, file) => resealText(text, file, reseal), {
      inPlace: flags['in-place'],
      quiet: flags.quiet,
      verb: 'resealing',
    })
    if (result.stdout !== null) process.stdout.write(result.stdout)
    if (flags['in-place'] || result.errors.length === 0) {
      this.note(
        `resealed ${stats.resealed} SealedSecret${stats.resealed === 1 ? '' : 's'}${stats.unchanged ? `; ${stats.unchanged} already sealed to the newest key` : ''}`,
        flags.quiet,
      )
    }
    this.report(result.errors)
  }
}
