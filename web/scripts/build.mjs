// The webmail's build: esbuild bundles src/main.tsx (TypeScript, JSX for
// Preact) and src/styles.css into content-hashed files, writes index.html
// naming them (no inline script or style: the page runs under a strict
// CSP), and gzips every text asset at build time (NAME.gz beside it; loftd
// serves it when the client accepts gzip).
//
//   node scripts/build.mjs [--out DIR] [--dev]
//
// DIR defaults to web/dist. The output directory is replaced whole, so no
// stale hashed file lingers. Sizes go to DIR/build-sizes.json (bench/).
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const args = process.argv.slice(2);
let out = path.join(root, 'dist');
const oi = args.indexOf('--out');
if (oi >= 0) out = path.resolve(args[oi + 1]);
const dev = args.includes('--dev');

const tmp = out + '.tmp-' + process.pid;
fs.rmSync(tmp, { recursive: true, force: true });
fs.mkdirSync(tmp, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { app: 'src/main.tsx' },
  bundle: true,
  format: 'esm',
  splitting: false,
  minify: !dev,
  sourcemap: false,
  target: ['chrome111', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.svg': 'text', '.woff2': 'file' },
  legalComments: 'none',
  metafile: true,
  outdir: tmp,
  write: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

// Names carry a hex SHA-256 of the content with at least one digit (what
// loftd takes for a content hash: cached a year, immutable).
function hashedName(file) {
  const data = fs.readFileSync(file);
  const hex = crypto.createHash('sha256').update(data).digest('hex');
  let n = 12;
  while (!/[0-9]/.test(hex.slice(0, n))) n++;
  const ext = path.extname(file);
  const base = path.basename(file, ext).replace(/-[A-Z0-9]+$/, '');
  const name = `${base}-${hex.slice(0, n)}${ext}`;
  fs.renameSync(file, path.join(path.dirname(file), name));
  return name;
}
const outs = Object.keys(result.metafile.outputs).map((f) => path.resolve(root, f));
const jsOut = outs.find((f) => path.basename(f).startsWith('app-') && f.endsWith('.js'));
const cssOut = outs.find((f) => path.basename(f).startsWith('app-') && f.endsWith('.css'));
if (!jsOut || !cssOut) throw new Error('build: no app bundle in ' + outs.join(', '));
const js = hashedName(jsOut);
const css = hashedName(cssOut);

// The icon: a file of its own (no data: URL needed in the page).
fs.copyFileSync(path.join(root, 'src', 'icon.svg'), path.join(tmp, 'icon.svg'));

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>Loft Mail</title>
<link rel="icon" href="/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/${css}">
<script type="module" src="/${js}"></script>
</head>
<body>
<noscript>Loft Mail needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;
fs.writeFileSync(path.join(tmp, 'index.html'), html);

// gzip at build time (level 9: done once).
const sizes = {};
for (const f of fs.readdirSync(tmp)) {
  if (!/\.(js|css|html|svg|json)$/.test(f)) continue;
  const data = fs.readFileSync(path.join(tmp, f));
  const gz = zlib.gzipSync(data, { level: 9 });
  fs.writeFileSync(path.join(tmp, f + '.gz'), gz);
  sizes[f] = { bytes: data.length, gzip: gz.length };
}
const first = sizes[js].gzip + sizes[css].gzip;
fs.writeFileSync(path.join(tmp, 'build-sizes.json'),
  JSON.stringify({ js, css, firstLoadGzip: first, files: sizes }, null, 1) + '\n');

fs.rmSync(out, { recursive: true, force: true });
fs.renameSync(tmp, out);
console.log(`webmail: ${out} (${js} + ${css}: ${(first / 1024).toFixed(1)} KiB gzip)`);
