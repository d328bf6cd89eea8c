#!/usr/bin/env node
// Writes oclif.manifest.json (what `oclif manifest` does) so the CLI knows every command's flags
// and help without importing the command modules on each run.
import {rmSync, writeFileSync} from 'node:fs'
import {Config} from '@oclif/core/config'

// Config.load does not pass ignoreManifest to the root plugin: a stale manifest would be read back.
rmSync('oclif.manifest.json', {force: true})
const config = await Config.load({root: process.cwd(), ignoreManifest: true})
const plugin = config.plugins.get(config.pjson.name)
const manifest = await plugin._manifest()
writeFileSync('oclif.manifest.json', JSON.stringify(manifest, null, 2) + '\n')
console.error(`oclif.manifest.json: ${Object.keys(manifest.commands).length} commands`)

// The fast path (src/cli/fast.ts): for the commands it may run, the parts of their flag and
// argument definitions its parser reads, written beside the bundle. A definition it does not model
// fails the build rather than being read differently from oclif.
const {FAST_COMMANDS} = await import('../dist/src/cli/fast.js')
const {Flags, Args} = await import('@oclif/core')
const src = (fn) => fn.toString().replace(/\s+/g, '')
const defaultParse = {boolean: src(Flags.boolean({}).parse), option: src(Flags.string({}).parse), arg: src(Args.string({}).parse)}
const FLAG_KEYS = new Set([
  'parse',
  'char',
  'description',
  'summary',
  'helpGroup',
  'allowNo',
  'type',
  'multiple',
  'multipleNonGreedy',
  'input',
  'name',
])
const ARG_KEYS = new Set(['parse', 'description', 'ignoreStdin', 'input', 'type', 'required', 'name'])
const spec = {name: config.name, version: config.version, commands: {}}
for (const id of FAST_COMMANDS) {
  const cmd = await config.findCommand(id, {must: true}).load()
  if (cmd.enableJsonFlag || cmd.deprecationOptions || cmd.state === 'deprecated')
    throw new Error(`fast path: ${id}: a command option it does not model`)
  const flags = []
  for (const [name, f] of Object.entries({...cmd.baseFlags, ...cmd.flags})) {
    const odd = Object.keys(f).filter((k) => !FLAG_KEYS.has(k) && f[k] !== undefined)
    const modelled = f.type === 'boolean' ? !f.multiple && !f.allowNo : f.type === 'option' && (!f.multiple || f.multipleNonGreedy)
    if (odd.length || !modelled || src(f.parse) !== defaultParse[f.type])
      throw new Error(`fast path: ${id} --${name}: ${odd.join(', ') || 'a flag it does not model'}`)
    flags.push({name, char: f.char, type: f.type, multiple: Boolean(f.multiple)})
  }
  const args = []
  for (const [name, a] of Object.entries(cmd.args ?? {})) {
    const odd = Object.keys(a).filter((k) => !ARG_KEYS.has(k) && a[k] !== undefined)
    if (odd.length || !a.ignoreStdin || src(a.parse) !== defaultParse.arg)
      throw new Error(`fast path: ${id} argument ${name}: ${odd.join(', ') || 'not modelled'}`)
    args.push({name, required: Boolean(a.required)})
  }
  spec.commands[id] = {strict: cmd.strict !== false, flags, args}
}
writeFileSync('dist/cli/fast-spec.json', JSON.stringify(spec) + '\n')
