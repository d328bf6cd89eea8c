#!/usr/bin/env node
// The bundled CLI (npm run build writes dist/cli/).
import '../dist/cli/run.js'
