#!/usr/bin/env node
// `npx certgate <command>`: runs the compiled CLI (build with `npm run build` first; `npm ci` does it through `prepare`).
import '../dist/gateway/cli.js'
