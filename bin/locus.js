#!/usr/bin/env node
// The `locus` command: the compiled CLI (run `npm run setup` once to build it).
import '../dist/src/cli/main.js';
