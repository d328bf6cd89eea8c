#!/usr/bin/env node
// `npm run crd`: writes deploy/crd.yaml from src/sealed/crd.ts (through the built dist/). The test
// suite fails while the committed file differs from what this writes.
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const {crdYaml} = await import(pathToFileURL(path.join(ROOT, 'dist', 'src', 'sealed', 'crd.js')).href)
writeFileSync(path.join(ROOT, 'deploy', 'crd.yaml'), crdYaml())
console.log('deploy/crd.yaml written')
