// The sanitiser against the hostile-HTML corpus (tests/web/hostile/), in
// Debian's chromium (DOMPurify needs a real DOM; node has none).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const corpusDir = path.resolve(here, '..', '..', 'tests', 'web', 'hostile');
const corpus = fs.readdirSync(corpusDir).filter((f) => f.endsWith('.html')).sort()
  .map((f) => [f, fs.readFileSync(path.join(corpusDir, f), 'utf8')]);
const built = process.env.LOFT_WEB_TEST_BUILD || path.join(here, '..', '.test-build');
const bundle = fs.readFileSync(path.join(built, 'sanitize.iife.js'), 'utf8');

let browser, page;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  page = await browser.newPage();
  await page.setContent('<!doctype html><title>t</title>');
  await page.addScriptTag({ content: bundle });
});
after(async () => { await browser?.close(); });

const san = (html, opts) => page.evaluate(([h, o]) => window.LoftSanitize.sanitizeHtml(h, o), [html, opts]);
/** What the sanitised document still holds, as the browser parses it. */
const audit = (html) => page.evaluate((h) => {
  const d = new DOMParser().parseFromString(h, 'text/html');
  const bad = [];
  const forbidden = new Set(['script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'form', 'input', 'button', 'meta', 'base',
    'link', 'svg', 'math', 'template', 'noscript', 'audio', 'video', 'source', 'applet', 'portal']);
  for (const el of d.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (forbidden.has(tag) && !(tag === 'meta' && el.closest('head') && !el.getAttribute('http-equiv'))) bad.push(`<${tag}>`);
    for (const a of el.attributes) {
      const n = a.name.toLowerCase(), v = a.value.trim().toLowerCase();
      if (n.startsWith('on')) bad.push(`${tag}[${n}]`);
      if (['href', 'src', 'action', 'formaction', 'background', 'poster', 'srcset', 'xlink:href', 'ping', 'srcdoc', 'data'].includes(n)
        && !/^(https?:|mailto:|#|data:image\/)/.test(v)) bad.push(`${tag}[${n}=${v.slice(0, 40)}]`);
    }
  }
  const text = h.toLowerCase();
  for (const s of ['javascript:', 'vbscript:', 'data:text', 'expression(', 'position:fixed', 'position: fixed', '@import', '-moz-binding', 'behavior:'])
    if (text.includes(s)) bad.push(s);
  return bad;
}, html);

for (const [name, html] of corpus) {
  test(`corpus ${name}: nothing runs, nothing remote`, async () => {
    const r = await san(html, { allowRemote: false });
    assert.deepEqual(await audit(r.html), [], r.html);
    assert.ok(!r.html.toLowerCase().includes('evil.example'), `remote reference left in ${r.html}`);
    // and when remote content is allowed, still nothing runs
    const r2 = await san(html, { allowRemote: true });
    assert.deepEqual(await audit(r2.html), [], r2.html);
    assert.ok(!/<script|onerror=|javascript:/i.test(r2.html));
  });
}

test('remote content is counted when blocked and kept when allowed', async () => {
  const html = '<img src="https://img.example/a.png"><p style="background:url(http://img.example/b.png)">x</p><img src="//img.example/c.png">';
  const blocked = await san(html, { allowRemote: false });
  assert.equal(blocked.remoteBlocked, 3);
  assert.ok(!blocked.html.includes('img.example'));
  const allowed = await san(html, { allowRemote: true });
  assert.equal(allowed.remoteBlocked, 0);
  assert.ok(allowed.html.includes('https://img.example/a.png'));
  assert.ok(allowed.html.includes('https://img.example/c.png'));
  assert.ok(allowed.html.includes('http://img.example/b.png'));
});

test('cid: images become the data: URLs given; missing ones are dropped', async () => {
  const png = 'data:image/png;base64,iVBORw0KGgo=';
  const r = await san('<img src="cid:logo@x"><img src="cid:gone@x"><td style="background:url(cid:logo@x)">', { allowRemote: false, cid: { 'logo@x': png } });
  assert.ok(r.html.includes(`src="${png}"`));
  assert.equal(r.cidMissing, 1);
});

test('huge inline images are dropped, small ones kept', async () => {
  const small = 'data:image/png;base64,' + 'A'.repeat(1000);
  const big = 'data:image/png;base64,' + 'A'.repeat(3_000_000);
  const r = await san(`<img src="${small}"><img src="${big}">`, { allowRemote: false });
  assert.ok(r.html.includes(small));
  assert.ok(r.html.length < 100_000);
});

test('links open in a new tab without referrer; anchors stay', async () => {
  const r = await san('<a href="https://example.com/">a</a><a href="#x">b</a>', { allowRemote: false });
  assert.match(r.html, /<a href="https:\/\/example.com\/" target="_blank" rel="noopener noreferrer">/);
  assert.match(r.html, /<a href="#x">/);
});

test('plain-text links and safe file names', async () => {
  const pieces = await page.evaluate(() => window.LoftSanitize.linkify('see https://example.com/a?b=1. or www.example.org, javascript:alert(1)'));
  assert.deepEqual(pieces.filter((p) => p.href).map((p) => p.href), ['https://example.com/a?b=1', 'https://www.example.org']);
  const names = await page.evaluate(() => ['invoice\u202Efdp.exe', '../../etc/passwd', 'a\u0000b\nc.txt', '', '...hidden']
    .map((n) => window.LoftSanitize.safeFileName(n)));
  assert.deepEqual(names, ['invoicefdp.exe', '__.._etc_passwd', 'a_b_c.txt', 'attachment', '_hidden']);
});
