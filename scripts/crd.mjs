#!/usr/bin/env node
// `npm run crd`: writes deploy/crd.yaml from src/sealed/crd.ts and deploy/crd-external.yaml from
// src/external/crd.ts (through the built dist/). The test suite fails while a committed file differs
// from what this writes.
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const load = (p) => import(pathToFileURL(path.join(ROOT, 'dist', 'src', ...p.split('/'))).href)
const {crdYaml} = await load('sealed/crd.js')
const {externalCrdYaml} = await load('external/crd.js')
writeFileSync(path.join(ROOT, 'deploy', 'crd.yaml'), crdYaml())
writeFileSync(path.join(ROOT, 'deploy', 'crd-external.yaml'), externalCrdYaml())
console.log('deploy/crd.yaml and deploy/crd-external.yaml written')
