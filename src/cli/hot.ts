/**
 * The bodies of the commands the fast path runs (decrypt, textconv, check), free of oclif: each
 * takes the parsed flags and arguments and a CliContext. The oclif commands call these after
 * oclif's parse and fast.ts after its own, so both paths run exactly this code.
 */
import {readFileSync} from 'node:fs'
import {EXIT, formatWhere, ioError, isKsealError, type KsealError, type Where} from '../core/errors.js'
import {decodeText, readStdin, readText, STDIN} from '../core/files.js'
import {runBatch} from '../ops/batch.js'
import {checkManifests, type Finding, isHelmTemplate, mayHoldSecret, stagedManifests, V1_NOTE} from '../ops/check.js'
import {decryptText} from '../ops/decrypt.js'
import {textconv} from '../ops/textconv.js'
import type {CliContext} from './context.js'

export interface DecryptFlags {
  'in-place'?: boolean
  key?: string[]
  quiet?: boolean
}

export async function runDecrypt(cli: CliContext, flags: DecryptFlags, paths: string[]): Promise<void> {
  const files = await cli.expand(paths, Boolean(flags.quiet))
  cli.bulk = files.files.length > 1
  const keyring = cli.keyring(flags.key)
  if (cli.bulk) await keyring.prepare()
  const sops = cli.sopsKeys(keyring)
  const result = await runBatch(files, (text, file) => decryptText(text, file, keyring, sops), {
    inPlace: Boolean(flags['in-place']),
    quiet: flags.quiet,
    verb: 'decrypting',
    plaintext: true,
  })
  if (result.stdout !== null) process.stdout.write(result.stdout)
  cli.report(result.errors)
}

export async function runTextconv(cli: CliContext, flags: {key?: string[]}, file: string): Promise<void> {
  let raw: Buffer
  try {
    raw = readFileSync(file)
  } catch (e) {
    throw ioError(e, file)
  }
  let text: string
  try {
    text = decodeText(raw, file)
  } catch {
    process.stdout.write(raw) // not text: git shows it as it is
    return
  }
  const keyring = cli.keyring(flags.key)
  process.stdout.write(await textconv(text, keyring, cli.sopsKeys(keyring)))
}

/** Exit status when plaintext was found: 1, like a linter that found something. */
const FOUND = EXIT.RUNTIME

export async function runCheck(cli: CliContext, flags: {staged?: boolean; quiet?: boolean}, paths: string[]): Promise<void> {
  const quiet = Boolean(flags.quiet)
  const errors: KsealError[] = []
  const inputs: {file: string; read: () => Promise<string>}[] = []
  if (flags.staged) {
    for (const f of await stagedManifests(process.cwd(), paths)) inputs.push({file: f.path, read: async () => decodeText(f.text, f.path)})
  } else {
    const expanded = await cli.expand(paths.length ? paths : ['.'], quiet)
    // A directory without manifests has no plaintext Secret in it: nothing to report.
    errors.push(...expanded.errors.filter((e) => e.code !== 'ERR_USAGE'))
    for (const f of expanded.files) inputs.push({file: f === STDIN ? '(stdin)' : f, read: () => (f === STDIN ? readStdin() : readText(f))})
  }
  const findings: Finding[] = []
  const v1: Where[] = []
  const skipped: string[] = []
  const templates: string[] = []
  for (const input of inputs) {
    let text: string | undefined
    try {
      text = await input.read()
      if (isHelmTemplate(input.file, text)) {
        templates.push(input.file)
        continue
      }
      const found = await checkManifests(text, input.file)
      findings.push(...found.plaintext)
      v1.push(...found.v1)
    } catch (e) {
      if (!isKsealError(e)) throw e
      // A problem kseal can name a Secret for (a merge key in one, say) is never skipped.
      if (e.code === 'ERR_INPUT' && e.where.secret === undefined && !(text !== undefined && mayHoldSecret(text))) skipped.push(input.file)
      else errors.push(e.at({file: input.file}))
    }
  }
  for (const f of findings) process.stdout.write(`${formatWhere(f.where)}plaintext ${f.keys.join(', ')}\n`)
  if (templates.length) {
    cli.note(
      `skipped ${templates.length} Helm chart template${templates.length > 1 ? 's' : ''} (check what ${templates.length > 1 ? 'they render' : 'it renders'}: helm template CHART | kseal check -): ${templates.join(', ')}`,
      quiet,
    )
  }
  if (skipped.length) {
    cli.note(
      `skipped ${skipped.length} file${skipped.length > 1 ? 's' : ''} that ${skipped.length > 1 ? 'are' : 'is'} not valid YAML or JSON and do${skipped.length > 1 ? '' : 'es'} not mention kind: Secret: ${skipped.join(', ')}`,
      quiet,
    )
  }
  // Format 1 is a warning: it still decrypts, but its recipients are not authenticated.
  for (const w of v1) cli.note(`${formatWhere(w)}${V1_NOTE}`, quiet)
  if (findings.length) {
    const n = findings.length
    cli.note(
      `${n} Secret${n > 1 ? 's hold' : ' holds'} plaintext values: encrypt ${n > 1 ? 'them' : 'it'} with kseal encrypt -i FILE${flags.staged ? ', then git add FILE' : ''}`,
      quiet,
    )
    process.exitCode = FOUND
  }
  cli.report(errors)
}

/**
 * The sample the build reads (warmUp): a block-style stream, which the scanner reads. (A stream the
 * scanner leaves to yaml is not in it: yaml's parser in the cache cost every run about as much to
 * load as it saved the rare run that needs it.)
 */
export const WARM_UP_SAMPLE = `# a comment
apiVersion: v1
kind: Secret
metadata:
  name: sample
  namespace: default
type: Opaque
stringData:
  user: admin # a comment
  password: "quoted"
  script: |
    line one
data:
  token: aGVsbG8=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
data:
  k: 'v'
`

/**
 * For the build's code cache (scripts/code-cache.mjs): reads the sample the way check, decrypt and
 * textconv do — no file, no output — so the functions that takes are compiled by then and in the
 * cache, not compiled again on every run. With `key` (a key file) and `encrypted` (the sample
 * encrypted to it), the decryption itself runs too: unwrapping, the MAC, the values, the edits.
 */
export async function warmUp(cli: CliContext, o: {key?: string; encrypted?: string} = {}): Promise<void> {
  const none = cli.keyring([])
  await checkManifests(WARM_UP_SAMPLE, 'sample.yaml')
  await decryptText(WARM_UP_SAMPLE, 'sample.yaml', none)
  await textconv(WARM_UP_SAMPLE, none)
  if (o.key && o.encrypted) {
    const keyring = cli.keyring([o.key])
    await checkManifests(o.encrypted, 'sample.yaml')
    // The build must not cache a path that failed half-way: the sample must come out decrypted.
    if ((await decryptText(o.encrypted, 'sample.yaml', keyring, cli.sopsKeys(keyring))).includes('kseal:v')) {
      throw new Error('warm-up: the sample did not decrypt')
    }
    await textconv(o.encrypted, keyring, cli.sopsKeys(keyring))
  }
}
