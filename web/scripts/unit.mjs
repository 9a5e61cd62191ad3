// Unit tests of the web code (node:test): the search syntax, the list's
// window arithmetic, the JMAP client's request limit, the filter rule builder, and the sanitiser against the hostile-HTML corpus
// (tests/web/hostile/, run in Debian's chromium: DOMPurify needs a real
// DOM). esbuild bundles the modules under test into .test-build/ first.
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// per build tree (build/ and build-asan/ may run at once)
const out = process.env.LOFT_BUILD ? path.join(process.env.LOFT_BUILD, 'web-test-build') : path.join(root, '.test-build');
await esbuild.build({
  absWorkingDir: root, bundle: true, format: 'esm', platform: 'neutral', outdir: out, logLevel: 'warning',
  // .mjs: Node 18 reads a .js file outside a "type": "module" package as CommonJS
  outExtension: { '.js': '.mjs' },
  entryPoints: ['src/search.ts', 'src/listwindow.ts', 'src/jmap.ts', 'src/sievebuild.ts'],
});
await esbuild.build({
  absWorkingDir: root, bundle: true, format: 'iife', globalName: 'LoftSanitize', outfile: path.join(out, 'sanitize.iife.js'),
  entryPoints: ['src/sanitize.ts'], logLevel: 'warning', jsx: 'automatic', jsxImportSource: 'preact',
});
const files = ['search.test.mjs', 'listwindow.test.mjs', 'jmap.test.mjs', 'sievebuild.test.mjs', 'sanitize.test.mjs'].map((f) => path.join(root, 'test', f));
const r = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit', env: { ...process.env, LOFT_WEB_TEST_BUILD: out } });
process.exit(r.status ?? 1);
