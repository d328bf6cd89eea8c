import * as Args from '@oclif/core/args'
import {Flags, KsealCommand} from '../src/cli/base.js'
import {CONTROLLER_NAME, CONTROLLER_NAMESPACE} from '../src/core/names.js'
import {KsealError} from '../src/core/errors.js'
import {type CertificateSource, resolveCertificate} from '../src/client/cert.js'
import {OUTPUT_FORMATS, type OutputFormat} from '../src/manifest/objects.js'
import {runManifests} from '../src/ops/batch.js'
import {mergeIntoFile, sealStep} from '../src/ops/seal.js'
import {SCOPES, type Scope} from '../src/envelope/binding.js'

export default class Seal extends KsealCommand {
  static override summary = 'Seal Secrets into SealedSecrets that only the in-cluster unsealer can open.'
  static override description = `Reads manifests from files, directories or stdin; every v1 Secret (also inside a List) becomes a
kseal.dev/v1 SealedSecret sealed with the controller's public certificate, and every other document
passes through unchanged. Sealing needs no private key: commit the output to git and apply it; the
controller turns it into the Secret. With --merge-into, the Secret's values are added to (or replace
values in) an existing SealedSecret file, in place.`
  static override examples = [
    {
      description: 'Seal a Secret with the controller certificate',
      command:
        'kubectl create secret generic db -n prod --from-literal=password=s3cr3t --dry-run=client -o yaml | <%= config.bin %> <%= command.id %> --cert kseal.crt > db.sealed.yaml',
    },
    {
      description: 'Fetch the certificate from the in-cluster controller through the cluster API',
      command:
        '<%= config.bin %> <%= command.id %> --controller-namespace kseal-system --controller-name kseal-controller secret.yaml > sealed.yaml',
    },
    {
      description: 'Fetch the certificate over HTTPS',
      command: '<%= config.bin %> <%= command.id %> --cert https://kseal.example.com/v1/cert.pem secret.yaml > sealed.yaml',
    },
    {
      description: 'Over plain HTTP inside the cluster, pinned to its fingerprint',
      command:
        '<%= config.bin %> <%= command.id %> --cert http://kseal-controller.kseal-system:8080/v1/cert.pem --cert-sha256 3A:1F:...:9C secret.yaml > sealed.yaml',
    },
    {
      description: 'Seal for any Secret name in the namespace, as JSON',
      command: '<%= config.bin %> <%= command.id %> --cert kseal.crt --scope namespace -o json secret.yaml',
    },
    {
      description: 'Add or replace one key in an existing SealedSecret',
      command:
        'kubectl create secret generic db -n prod --from-literal=api-token=t0k3n --dry-run=client -o yaml | <%= config.bin %> <%= command.id %> --cert kseal.crt --merge-into db.sealed.yaml',
    },
  ]
  static override strict = false
  static override args = {path: Args.string({description: 'Files or directories; none or - reads stdin.', ignoreStdin: true})}
  static override flags = {
    cert: Flags.string({
      description:
        'The controller certificate to seal for: a PEM file, or an http(s) URL such as http://HOST:8080/v1/cert.pem. Redirects are not followed; plain http to a host other than loopback needs --cert-sha256.',
    }),
    'cert-sha256': Flags.string({
      description:
        "The certificate's SHA-256 fingerprint (openssl x509 -noout -fingerprint -sha256): sealing stops unless the certificate matches. Works with every source.",
    }),
    scope: Flags.string({
      options: [...SCOPES],
      description: 'What the values are bound to: strict (namespace and name), namespace, or cluster. [default: strict]',
    }),
    output: Flags.string({char: 'o', options: [...OUTPUT_FORMATS], description: 'Output format. [default: yaml]'}),
    'merge-into': Flags.string({
      description: "Add or replace the Secret's keys in this existing SealedSecret file (rewritten atomically); nothing goes to stdout.",
    }),
    'controller-namespace': Flags.string({
      description: `Fetch the certificate from the controller in this namespace, through the cluster API (instead of --cert). [default: ${CONTROLLER_NAMESPACE}]`,
    }),
    'controller-name': Flags.string({
      description: `Name of the controller's Service, for fetching the certificate through the cluster API. [default: ${CONTROLLER_NAME}]`,
    }),
    kubeconfig: Flags.string({description: 'Kubeconfig for --controller-*. [default: $KUBECONFIG or ~/.kube/config]'}),
    context: Flags.string({description: 'Kubeconfig context for --controller-*.'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(Seal)
    const {recipient} = await resolveCertificate(certificateSource(flags), {cwd: process.cwd(), sha256: flags['cert-sha256']})
    const scope = flags.scope as Scope | undefined
    if (flags['merge-into']) {
      if (flags.output) throw new KsealError('ERR_USAGE', '--merge-into rewrites the file in its own format; -o does not apply')
      await mergeIntoFile(flags['merge-into'], argv as string[], [recipient], scope)
      this.note(`merged into ${flags['merge-into']}`, flags.quiet)
      return
    }
    const files = await this.expand(argv as string[], flags.quiet)
    const result = await runManifests(files, sealStep([recipient], scope ?? 'strict'), (flags.output ?? 'yaml') as OutputFormat)
    if (result.stdout !== null) process.stdout.write(result.stdout)
    this.report(result.errors)
  }
}

/** The certificate source as seal's flags name it (also `kseal import`'s, which takes the same flags). */
export function certificateSource(flags: {
  cert?: string
  'controller-namespace'?: string
  'controller-name'?: string
  kubeconfig?: string
  context?: string
}): CertificateSource {
  return {
    cert: flags.cert,
    controllerNamespace: flags['controller-namespace'],
    controllerName: flags['controller-name'],
    kubeconfig: flags.kubeconfig,
    context: flags.context,
  }
}
