// Builds the gateway's JavaScript modules into components, each with the
// SDK it imports, against the WIT contract: `npm run build` (or `node
// build.mjs [OUT_DIR]`). Each lands as `OUT_DIR/fhirgate_<name>_js.wasm`;
// OUT_DIR defaults to the workspace's `target/guest-js`.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { componentize } from '@bytecodealliance/componentize-js';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, '..', '..', 'target', 'guest-js'));
const wit = join(here, '..', '..', 'wit');

/** Module directory, its source, the world it is built for. */
const MODULES = [
  ['router-table', 'router.js', 'router'],
  ['router-rules', 'router.js', 'router'],
];

await mkdir(out, { recursive: true });
for (const [name, source, world] of MODULES) {
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: join(here, name, source),
    witPath: wit,
    worldName: world,
    // No `fetch` and no HTTP handler: the gateway grants no wasi:http.
    disableFeatures: ['http', 'fetch-event'],
  });
  const file = join(out, `fhirgate_${name.replaceAll('-', '_')}_js.wasm`);
  await writeFile(file, component);
  console.log(`built ${file} (${(component.length / 1e6).toFixed(1)} MB) in ${Date.now() - started} ms`);
}
