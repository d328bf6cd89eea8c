/**
 * Runs one transformation over many inputs: every file is attempted, every failure is reported,
 * and nothing is written for a file that failed. In place, each file is replaced atomically; to
 * stdout, output is all or nothing, so a pipeline never applies half a stream.
 */
import {isKsealError, KsealError, worstExit} from '../core/errors.js'
import {type Expanded, readStdin, readText, STDIN, writeAtomic} from '../core/files.js'
import {progress} from '../core/progress.js'

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
  let next = 0
  const worker = async () => {
    while (next < files.length) {
      const i = next++
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
        outcomes[i].error = isKsealError(e) ? e.at({file: label ?? '(stdin)'}) : internal(e, label)
      }
      bar.tick()
    }
  }
  await Promise.all(Array.from({length: Math.min(opts.concurrency ?? FILES_IN_FLIGHT, files.length)}, worker))
  bar.done()
  const errors = [...input.errors, ...outcomes.flatMap((o) => (o.error ? [o.error] : []))]
  return {
    outcomes,
    errors,
    stdout: opts.inPlace || errors.length ? null : joinStreams(outputs as string[]),
    exitCode: worstExit(errors.map((e) => e.exitCode)),
  }
}

/** Joins several files' manifests into one YAML stream. */
export function joinStreams(parts: string[]): string {
  let out = ''
  parts.forEach((p, i) => {
    if (i > 0 && p.length) {
      if (!out.endsWith('\n')) out += '\n'
      if (!/^(\uFEFF)?---(\s|$)/.test(p)) out += '---\n'
    }
    out += p
  })
  return out
}

function internal(e: unknown, file: string | undefined): KsealError {
  const err = new KsealError('ERR_IO', `unexpected error: ${(e as Error)?.message ?? String(e)}`, {file: file ?? '(stdin)'})
  ;(err as {cause?: unknown}).cause = e
  return err
}
