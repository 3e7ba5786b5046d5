#!/usr/bin/env node
// The `locus` command: the compiled CLI (run `npm run setup` once to build it).
// libgomp's threads spin after every parallel region by default; with the data loader's worker threads
// (or any other load) on the same cores that spinning made training steps several times slower here.
// Must be set before libtorch loads; an explicit OMP_WAIT_POLICY wins.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
await import('../dist/src/cli/main.js');
