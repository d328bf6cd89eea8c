/** A one-line progress indicator on stderr, only on a terminal and never with --quiet. */
export interface Progress {
  tick(): void
  done(): void
}

const NONE: Progress = {tick() {}, done() {}}

export function progress(verb: string, total: number, opts: {quiet?: boolean; stream?: NodeJS.WriteStream} = {}): Progress {
  // Decided before touching process.stderr, whose first use sets the stream up (a one-file run never needs it).
  if (opts.quiet || total < 2) return NONE
  const stream = opts.stream ?? process.stderr
  if (!stream.isTTY) return NONE
  let n = 0
  let last = 0
  const draw = () => stream.write(`\r\x1b[K${verb} ${n}/${total} files`)
  draw()
  return {
    tick() {
      n++
      const now = Date.now()
      if (now - last > 80 || n === total) {
        last = now
        draw()
      }
    },
    done() {
      stream.write('\r\x1b[K')
    },
  }
}
