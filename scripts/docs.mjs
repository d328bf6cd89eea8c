#!/usr/bin/env node
// `npm run docs`: writes docs/reference/cli.md, the CLI reference, from what the commands declare —
// oclif.manifest.json (summary, description, arguments, flags, examples; the same data `--help`
// prints) and the exit codes of the one table in the error module — so the reference cannot drift
// from `--help`. test/cli-reference.test.ts renders it again in memory and fails when the committed
// page differs. Needs a build (dist/ and oclif.manifest.json); `npm run docs` builds first.
//
// Why not `oclif readme`: oclif 6 needs Node 22, and oclif 4 pins its own @oclif/core and the
// S3/CloudFront clients of another AWS SDK release; it also has no place for exit codes.
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {Config} from '@oclif/core/config'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const REFERENCE = path.join('docs', 'reference', 'cli.md')

/**
 * What each exit code means, by its name in the error module's EXIT table. The numbers come from
 * that table; a name added there or removed from it stops the generator until this says what it means.
 */
const EXIT_MEANINGS = {
  OK: 'success',
  RUNTIME:
    'runtime failure: I/O (a missing or unreadable file), a key backend or a service (KMS, gpg, the cluster, the controller); also `kseal check` finding a plaintext Secret',
  USAGE:
    'usage error or malformed input: bad flags, broken YAML or JSON, a value kubectl would read differently, a Helm template, ' +
    'invalid base64 in `data`, a binary file, a key file with loose permissions, a bad `.kseal.yaml`',
  DECRYPT:
    'decryption or integrity failure: no matching key, a wrong key, tampered or moved values, a changed recipient list, an unknown format version',
}

/** The exit-code table, found by content in the built library (dist/), wherever the restructure puts the module. */
async function exitCodes(root) {
  const found = []
  const walk = (dir) => {
    for (const e of readdirSync(dir, {withFileTypes: true})) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) {
        if (p !== path.join(root, 'dist', 'cli')) walk(p)
      } else if (e.name.endsWith('.js') && /^export class KsealError\b/m.test(readFileSync(p, 'utf8'))) {
        found.push(p)
      }
    }
  }
  walk(path.join(root, 'dist'))
  if (found.length !== 1)
    throw new Error(`expected one module in dist/ that exports KsealError, found ${found.length}: build first (npm run build)`)
  const {EXIT} = await import(pathToFileURL(found[0]).href)
  if (!EXIT || typeof EXIT !== 'object') throw new Error(`${found[0]} exports no EXIT table`)
  const names = Object.keys(EXIT)
  const unknown = names.filter((n) => !(n in EXIT_MEANINGS))
  const gone = Object.keys(EXIT_MEANINGS).filter((n) => !names.includes(n))
  if (unknown.length || gone.length) {
    throw new Error(
      `scripts/docs.mjs: EXIT_MEANINGS is out of date (new: ${unknown.join(', ') || 'none'}; gone: ${gone.join(', ') || 'none'})`,
    )
  }
  return names.map((n) => ({code: EXIT[n], meaning: EXIT_MEANINGS[n]})).sort((a, b) => a.code - b.code)
}

/** Markdown-escapes prose taken from the commands (angle brackets, emphasis, links, `$...$` math, table pipes). */
function escape(text) {
  return text.replace(/[\\`*<>[\]|$]/g, '\\$&').replace(/(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, '\\_')
}

/**
 * A command's description as Markdown: paragraphs are separated by blank lines and their lines
 * joined (the source wraps them for the terminal); lines indented by two or more spaces are
 * literal (commands, aligned tables) and become a text block.
 */
function description(text) {
  const out = []
  for (const para of text.trim().split(/\n\s*\n/)) {
    let prose = []
    let literal = []
    const flush = () => {
      if (prose.length) out.push(escape(prose.join(' ')))
      if (literal.length) {
        const indent = Math.min(...literal.map((l) => l.match(/^ */)[0].length))
        out.push('```text\n' + literal.map((l) => l.slice(indent)).join('\n') + '\n```')
      }
      prose = []
      literal = []
    }
    for (const line of para.split('\n')) {
      if (/^ {2,}\S/.test(line)) {
        if (prose.length) flush()
        literal.push(line.trimEnd())
      } else {
        if (literal.length) flush()
        prose.push(line.trim())
      }
    }
    flush()
  }
  return out.join('\n\n')
}

/** Ends a text with a full stop, so notes can follow it. */
const sentence = (text) => (text && !/[.!?]$/.test(text) ? `${text}.` : text)

function template(text, id) {
  const out = text.replace(/<%=\s*config\.bin\s*%>/g, 'kseal').replace(/<%=\s*command\.id\s*%>/g, id.replace(/:/g, ' '))
  if (out.includes('<%')) throw new Error(`kseal ${id}: an example uses a template this generator does not know: ${text}`)
  return out
}

function examples(cmd) {
  const blocks = []
  for (const ex of cmd.examples ?? []) {
    const {description: what, command} = typeof ex === 'string' ? {description: undefined, command: ex} : ex
    const lines = template(command, cmd.id)
      .split('\n')
      .map((l) => l.replace(/^\$ /, ''))
    blocks.push([...(what ? [`# ${template(what, cmd.id)}`] : []), ...lines].join('\n'))
  }
  return blocks.length ? '```sh\n' + blocks.join('\n\n') + '\n```' : ''
}

function flagName(f) {
  const long = f.type === 'boolean' && f.allowNo ? `--[no-]${f.name}` : `--${f.name}`
  const value = f.type === 'option' ? `=${f.options ? f.options.join('\\|') : 'VALUE'}${f.multiple ? '...' : ''}` : ''
  return '`' + (f.char ? `-${f.char}, ` : '') + long + value + '`'
}

function flagDefault(f, loaded) {
  const d = f.default ?? loaded?.default
  if (d === undefined || typeof d === 'function') return ''
  if (typeof d === 'boolean') return d ? 'on' : ''
  return '`' + String(d) + '`'
}

function flagNotes(f) {
  const notes = []
  if (f.required) notes.push('Required.')
  if (f.exclusive?.length) notes.push(`Not with ${f.exclusive.map((x) => `\`--${x}\``).join(', ')}.`)
  if (f.dependsOn?.length) notes.push(`Needs ${f.dependsOn.map((x) => `\`--${x}\``).join(', ')}.`)
  return notes.length ? ' ' + notes.join(' ') : ''
}

function usage(cmd, global) {
  const args = Object.values(cmd.args ?? {}).map((a) => {
    const name = a.name.toUpperCase() + (cmd.strict === false ? '...' : '')
    return a.required ? name : `[${name}]`
  })
  const own = Object.values(cmd.flags).filter((f) => !f.hidden && !(f.name in global))
  const required = own.filter((f) => f.required).map((f) => `${f.char ? `-${f.char}` : `--${f.name}`} VALUE`)
  const optional = own.some((f) => !f.required) ? ['[FLAGS]'] : []
  return ['kseal', ...cmd.id.split(':'), ...args, ...required, ...optional].join(' ')
}

async function section(cmd, global) {
  const out = [`## kseal ${cmd.id.replace(/:/g, ' ')}`, '']
  if (cmd.summary) out.push(escape(cmd.summary), '')
  out.push('```text\n' + usage(cmd, global) + '\n```', '')
  if (cmd.description && cmd.description.trim() !== (cmd.summary ?? '').trim()) out.push(description(cmd.description), '')
  const args = Object.values(cmd.args ?? {})
  if (args.length) {
    out.push('| argument | |', '| --- | --- |')
    for (const a of args) {
      const options = a.options ? ` One of ${a.options.map((o) => `\`${o}\``).join(', ')}.` : ''
      const notes = `${options}${a.required ? ' Required.' : ''}`
      const text = escape(a.description ?? '')
      out.push(`| \`${a.name.toUpperCase()}\` | ${notes ? sentence(text) : text}${notes} |`)
    }
    out.push('')
  }
  const flags = Object.values(cmd.flags)
    .filter((f) => !f.hidden && !(f.name in global))
    .sort((a, b) => a.name.localeCompare(b.name))
  if (flags.length) {
    const loaded = (await cmd.load()).flags ?? {}
    out.push('| flag | default | |', '| --- | --- | --- |')
    for (const f of flags) {
      const notes = flagNotes(f)
      const text = escape(f.description ?? '')
      out.push(`| ${flagName(f)} | ${flagDefault(f, loaded[f.name])} | ${notes ? sentence(text) : text}${notes} |`)
    }
    out.push('')
  }
  const ex = examples(cmd)
  if (ex) out.push(ex, '')
  return out.join('\n')
}

/** The reference page, rendered from the built CLI in `root`. */
export async function renderCliReference(root = ROOT) {
  const config = await Config.load({root})
  // The package's own commands and those of the plugins package.json names (not a user's linked plugins).
  const commands = config.commands.filter((c) => c.pluginType === 'core' && !c.hidden).sort((a, b) => a.id.localeCompare(b.id))
  const own = commands.find((c) => c.pluginName === config.pjson.name)
  if (!own) throw new Error('no kseal command found: build first (npm run build)')
  const global = own.flags
    ? Object.fromEntries(
        Object.values(own.flags)
          .filter((f) => f.helpGroup === 'GLOBAL')
          .map((f) => [f.name, f]),
      )
    : {}
  const anchor = (id) => `#kseal-${id.replace(/:/g, '-')}`
  const out = [
    '<!-- Generated by `npm run docs` (scripts/docs.mjs) from the commands and the exit-code table. Do not edit: change the',
    "     command's summary, description, flags or examples, then run `npm run docs`. test/cli-reference.test.ts checks it. -->",
    '# kseal command reference',
    '',
    'Every command, as `kseal COMMAND --help` prints it. The guides ([docs/README.md](../README.md)) show how the',
    'commands fit together; [how kseal reads files and streams](../manifests.md) applies to every command that takes `PATH`.',
    '',
    '| command | |',
    '| --- | --- |',
    ...commands.map(
      (c) => `| [\`kseal ${c.id.replace(/:/g, ' ')}\`](${anchor(c.id)}) | ${escape(c.summary ?? c.description?.split('\n')[0] ?? '')} |`,
    ),
    '',
    '## Global flags',
    '',
    'Every kseal command takes these.',
    '',
    '| flag | |',
    '| --- | --- |',
    ...Object.values(global).map((f) => `| ${flagName(f)} | ${escape(f.description ?? '')} |`),
    '',
  ]
  for (const c of commands) out.push(await section(c, global))
  out.push('## Exit codes', '')
  out.push('With several files the exit code is the most severe one (3 over 2 over 1). Each problem is one line on stderr, naming')
  out.push('the file, the document (1-based), the Secret and the key; values never appear in messages, logs or `--json` output.', '')
  out.push('| code | meaning |', '| --- | --- |')
  for (const {code, meaning} of await exitCodes(root)) out.push(`| ${code} | ${meaning} |`)
  out.push('')
  return out.join('\n')
}

// `node scripts/docs.mjs` writes the page; with --stdout it prints it instead (what the test compares).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = await renderCliReference()
  if (process.argv.includes('--stdout')) {
    process.stdout.write(text)
  } else {
    writeFileSync(path.join(ROOT, REFERENCE), text)
    console.error(`${REFERENCE}: ${text.split('\n').length} lines`)
  }
}
