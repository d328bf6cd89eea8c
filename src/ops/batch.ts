/**
 * Runs one operation over many inputs: every file is attempted, every failure is reported, and
 * nothing is written for a file that failed. In place, each file is replaced atomically; to stdout,
 * output is all or nothing, so a pipeline never applies half a stream. `runBatch` runs a text
 * transformation (encrypt, decrypt, rotate, reseal); `runManifests` an object step over manifest
 * streams (seal, unseal).
 */
import {isKsealError, KsealError, worstExit} from '../core/errors.js'
import {type Expanded, readStdin, readText, STDIN, writeAtomic} from '../core/files.js'
import {forEachLimited} from '../core/limit.js'
import {progress} from '../core/progress.js'
import {
  joinStreams,
  type MappedManifests,
  mapManifests,
  type ObjectStep,
  type OutputFormat,
  renderJson,
  renderYaml,
  values,
} from '../manifest/objects.js'

export interface BatchOptions {
  inPlace: boolean
  quiet?: boolean
  /** Verb for the progress line. */
  verb: string
  /** Files processed at once; their key operations overlap, so both cores stay busy. */
  concurrency?: number
  /** The output holds plaintext: files written in place get mode 0600. */
  plaintext?: boolean
}

export interface FileOutcome {
  file: string
  changed: boolean
  error?: KsealError
}

export interface BatchResult {
  outcomes: FileOutcome[]
  /** Every problem: paths that could not be expanded, then files that failed, in order. */
  errors: KsealError[]
  /** Concatenated output when not in place (null when any file failed). */
  stdout: string | null
  exitCode: number
}

/**
 * Files worked on at once: enough that a tree of one-Secret files keeps a KMS backend's 16 calls in
 * flight and the RSA pool's threads busy, while each file's text stays in memory only briefly.
 */
const FILES_IN_FLIGHT = 16

export type Transform = (text: string, file: string | undefined) => Promise<string>

export async function runBatch(input: Expanded, transform: Transform, opts: BatchOptions): Promise<BatchResult> {
  const files = input.files
  if (opts.inPlace && files.includes(STDIN)) throw new KsealError('ERR_USAGE', '--in-place needs file paths, not stdin')
  const bar = progress(opts.verb, files.length, {quiet: opts.quiet})
  const outputs: (string | null)[] = new Array(files.length).fill(null)
  const outcomes: FileOutcome[] = files.map((file) => ({file, changed: false}))
  await forEachLimited(files.length, opts.concurrency ?? FILES_IN_FLIGHT, async (i) => {
    const file = files[i]
    const label = file === STDIN ? undefined : file
    try {
      const input = file === STDIN ? await readStdin() : await readText(file)
      const output = await transform(input, label)
      outcomes[i].changed = output !== input
      if (opts.inPlace) {
        if (outcomes[i].changed) await writeAtomic(file, output, {plaintext: opts.plaintext})
      } else {
        outputs[i] = output
      }
    } catch (e) {
      outcomes[i].error = located(e, label)
    }
    bar.tick()
  })
  bar.done()
  const errors = [...input.errors, ...outcomes.flatMap((o) => (o.error ? [o.error] : []))]
  return {
    outcomes,
    errors,
    stdout: opts.inPlace || errors.length ? null : joinStreams(outputs as string[]),
    exitCode: worstExit(errors.map((e) => e.exitCode)),
  }
}

export interface StreamResult {
  /** Everything for stdout, or null when any input failed (nothing half-done reaches a pipeline). */
  stdout: string | null
  errors: KsealError[]
}

/** Manifest files read and mapped at once. */
const STREAMS_IN_FLIGHT = 8

/** Runs a step over files (`-` for stdin): every file is attempted, every failure reported, output all or nothing. */
export async function runManifests(input: Expanded, step: ObjectStep, format: OutputFormat): Promise<StreamResult> {
  const files = input.files
  const results: (MappedManifests | KsealError)[] = new Array(files.length)
  await forEachLimited(files.length, STREAMS_IN_FLIGHT, async (i) => {
    const label = files[i] === STDIN ? undefined : files[i]
    try {
      const text = label === undefined ? await readStdin() : await readText(label)
      results[i] = await mapManifests(text, label, step)
    } catch (e) {
      results[i] = located(e, label)
    }
  })
  const errors = [...input.errors, ...results.filter((r): r is KsealError => r instanceof KsealError)]
  if (errors.length) return {stdout: null, errors}
  const mapped = results as MappedManifests[]
  if (format === 'json') return {stdout: renderJson(mapped.flatMap(values)), errors}
  return {stdout: joinStreams(mapped.map(renderYaml)), errors}
}

/** A failure with one input, located at its file; anything but a KsealError is an unexpected error. */
function located(e: unknown, file: string | undefined): KsealError {
  if (isKsealError(e)) return e.at({file: file ?? '(stdin)'})
  const err = new KsealError('ERR_IO', `unexpected error: ${(e as Error)?.message ?? String(e)}`, {file: file ?? '(stdin)'})
  ;(err as {cause?: unknown}).cause = e
  return err
}
