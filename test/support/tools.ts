/**
 * Real tools the tests drive as real counterparts (kubectl, kpt, age, gpg, pre-commit, bwrap, runc,
 * umoci, ...). `npm test` installs the ones Debian has (scripts/tools.mjs); on a user's laptop some
 * may be absent. A test that needs a tool asks for it here:
 *
 *   const kubectl = tool('kubectl')
 *   kubectl.describe('kustomize overlays', () => { ... })   // or kubectl.it('...', fn)
 *
 * When the tool is present the tests run and the tool is recorded as used; when it is absent (or,
 * with `asRoot`, cannot run as the current user) they are skipped and one line naming the tool is
 * printed, never silently. `npm test` ends with a summary of
 * which real tools ran and which were missing (from the record file it passes in KSEAL_TOOL_RECORD).
 */
import {spawnSync} from 'node:child_process'
import {appendFileSync} from 'node:fs'
import {beforeAll, describe, it} from '@jest/globals'

export interface Tool {
  readonly name: string
  /** The tool's path on PATH, or null when it is not installed. */
  readonly path: string | null
  readonly present: boolean
  /** `describe` when the tool is present; otherwise a skipped `describe` and one visible line. */
  describe(title: string, fn: () => void): void
  /** `it` when the tool is present; otherwise a skipped `it` and one visible line. */
  it(title: string, fn: () => unknown, timeout?: number): void
}

const cache = new Map<string, Tool>()

function locate(bin: string): string | null {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', bin], {encoding: 'utf8'})
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null
}

function record(state: 'ran' | 'missing', name: string, title: string): void {
  const file = process.env.KSEAL_TOOL_RECORD
  if (file) appendFileSync(file, `${state}\t${name}\t${title.replace(/\s+/g, ' ')}\n`)
}

function skippedMissing(name: string, title: string): void {
  // One plain line on stderr, outside jest's console decoration, so it shows in every reporter.
  process.stderr.write(`skipped (${name} is not installed): ${title}\n`)
  record('missing', name, title)
}

function skippedNotRoot(name: string, title: string): void {
  process.stderr.write(`skipped (${name} needs root, and the tests run as uid ${process.getuid?.()}): ${title}\n`)
  record('missing', `${name} (as root)`, title)
}

export interface ToolOptions {
  /** The tool can run only as root here (container runtimes): as anyone else its tests are skipped, with the line saying so. */
  asRoot?: boolean
}

/** The real tool `bin`, found on PATH once per test file. */
export function tool(bin: string, opts: ToolOptions = {}): Tool {
  const key = `${bin}${opts.asRoot ? ' as root' : ''}`
  const known = cache.get(key)
  if (known) return known
  const onPath = locate(bin)
  const unusable = onPath && opts.asRoot && process.getuid?.() !== 0
  const found = unusable ? null : onPath
  const skipped = (name: string, title: string) => (unusable ? skippedNotRoot(name, title) : skippedMissing(name, title))
  const t: Tool = {
    name: bin,
    path: found,
    present: found !== null,
    // Recorded as ran when its tests run, not when they are declared: inside a skipped block they do not.
    describe(title, fn) {
      if (found) {
        describe(title, () => {
          beforeAll(() => record('ran', bin, title))
          fn()
        })
      } else {
        skipped(bin, title)
        describe.skip(title, fn)
      }
    },
    it(title, fn, timeout) {
      if (found) {
        it(
          title,
          () => {
            record('ran', bin, title)
            return fn() as Promise<unknown>
          },
          timeout,
        )
      } else {
        skipped(bin, title)
        it.skip(title, fn as () => Promise<unknown>, timeout)
      }
    },
  }
  cache.set(key, t)
  return t
}
