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
