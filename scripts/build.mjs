#!/usr/bin/env node
// `npm run build`: type-checks and compiles to dist/, then writes oclif.manifest.json so the
// installed CLI finds its commands without importing every one of them on each run.
import {spawnSync} from 'node:child_process'
import {rmSync} from 'node:fs'

rmSync('dist', {recursive: true, force: true})
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {stdio: 'inherit'})
if (tsc.status !== 0) process.exit(tsc.status ?? 1)
const manifest = spawnSync(process.execPath, ['scripts/manifest.mjs'], {stdio: 'inherit'})
if (manifest.status !== 0) process.exit(manifest.status ?? 1)
