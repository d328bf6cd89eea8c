import {Flags, KsealCommand} from '../src/cli/base.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../src/core/names.js'

export default class Cert extends KsealCommand {
  static override summary = "Print the in-cluster controller's current sealing certificate (PEM)."
  static override description = `Fetches /v1/cert.pem from the controller through the API server's service proxy, as
kubeseal --fetch-cert does: you need only "get services/proxy" on the controller's Service. With
--from-cluster-secret it reads the newest key Secret in the controller's namespace instead (for an
operator allowed to read those Secrets); with --controller-url it asks the controller at that URL
(e.g. after kubectl port-forward). Seal with it offline: kseal seal --cert FILE.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> > kseal.crt',
    '<%= config.bin %> <%= command.id %> --controller-namespace kseal-system --controller-name kseal-controller --context prod',
    '<%= config.bin %> <%= command.id %> --from-cluster-secret --kubeconfig admin.kubeconfig',
    '<%= config.bin %> <%= command.id %> --controller-url http://127.0.0.1:8080',
  ]
  static override flags = {
    'controller-namespace': Flags.string({default: CONTROLLER_NAMESPACE, description: 'Namespace of the controller and its Service.'}),
    'controller-name': Flags.string({default: CONTROLLER_NAME, description: 'Name of the controller\'s Service (its port named "http").'}),
    'controller-url': Flags.string({
      description:
        'Ask the controller at this URL (e.g. http://127.0.0.1:8080 after kubectl port-forward) instead of through the cluster API.',
      exclusive: ['from-cluster-secret'],
    }),
    kubeconfig: Flags.string({description: 'Kubeconfig file. [default: $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'Kubeconfig context to use.'}),
    'from-cluster-secret': Flags.boolean({description: 'Read the newest key Secret directly instead of asking the controller.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Cert)
    const {fetchControllerCert, newestKeyCert} = await import('../src/client/controller-cert.js')
    const {controllerTarget} = await import('../src/client/endpoints.js')
    const kube = {kubeconfig: flags.kubeconfig, context: flags.context}
    const pem = flags['from-cluster-secret']
      ? await newestKeyCert({...kube, namespace: flags['controller-namespace']})
      : await fetchControllerCert(controllerTarget(flags))
    process.stdout.write(pem)
  }
}
