import {KsealCommand} from '../src/cli/base.js'
import {readStdin, readText} from '../src/core/files.js'
import {runKrm} from '../src/ops/krm.js'

export default class Krm extends KsealCommand {
  static override summary = 'Run as a KRM function (kustomize, kpt): decrypt the Secrets of a ResourceList on stdin.'
  static override description = `Reads a ResourceList (apiVersion: config.kubernetes.io/v1) on stdin and writes it to stdout with
every encrypted Secret among its items decrypted; everything else in every item stays as it came.
Options come from functionConfig — spec of any kind (e.g. kind: KsealDecrypt), or data of a
ConfigMap:
  keys   private keys, as --key takes them (list, or comma-separated); KSEAL_KEYS and
         ~/.config/kseal/keys are used after them
  files  manifest files to read, decrypt and add to items (for use as a generator); relative
         to the package directory under kpt fn render, else to the working directory: the
         kustomization's directory under kustomize, where kpt runs under kpt fn eval
SOPS and kubesec items and files are decrypted too, with the keys kseal decrypt uses for them.
Failures are reported as results (severity: error, with resourceRef and file) and on stderr, with
a non-zero exit, and then no item is decrypted. kustomize's exec functions take no arguments: point
exec.path at kseal-krm, which is this command. kpt: kpt fn eval DIR --exec kseal-krm, or an exec
mutator in the Kptfile with kpt fn render --allow-exec -o unwrap (without -o, render writes the
decrypted Secrets into the package's files). kubectl kustomize cannot run exec functions.`
  static override examples = [
    {description: 'What kustomize runs (exec.path: kseal-krm)', command: 'kseal-krm < resource-list.yaml'},
    {description: "Decrypt a kpt package's Secrets to stdout", command: 'kpt fn eval pkg/ --exec kseal-krm -o unwrap | kubectl apply -f -'},
    {description: 'The same, by its command name', command: '<%= config.bin %> <%= command.id %> < resource-list.yaml'},
  ]

  async run(): Promise<void> {
    await this.parse(Krm)
    const outcome = await runKrm(await readStdin(), {
      keyring: (keys) => this.keyring(keys),
      sopsKeys: (keyring) => this.sopsKeys(keyring),
      readFile: readText,
      cwd: process.cwd(),
    })
    process.stdout.write(outcome.output)
    this.report(outcome.errors)
  }
}
