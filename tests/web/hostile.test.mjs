// Hostile mail: the HTML corpus (tests/web/hostile/) and the rest of the
// issue's bad input. In every case nothing runs (a flag the mail's script
// would set stays unset in every frame), nothing remote loads without
// consent (the request log holds only loftd), nothing changes on the
// server, and the page stays usable.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Loft, newPage, signIn, message, closeBrowser, row, until, SLOW, foreign, axe } from './loft.mjs';

after(closeBrowser);
const here = path.dirname(fileURLToPath(import.meta.url));
const corpus = fs.readdirSync(path.join(here, 'hostile')).filter((f) => f.endsWith('.html')).sort();

async function pwned(page) {
  const flags = [];
  for (const f of page.frames()) {
    try { flags.push(await f.evaluate(() => window.__pwned ?? null)); } catch { flags.push(null); }
  }
  return flags.filter((x) => x !== null);
}

test('the hostile-HTML corpus: nothing runs, nothing remote loads', async () => {
  const loft = await Loft.start();
  try {
    for (const f of corpus) {
      await loft.deliver('alice@example.test', message({ from: 'Mallory <mallory@evil.example>', subject: `Hostile ${f}`,
        html: fs.readFileSync(path.join(here, 'hostile', f), 'utf8') }));
    }
    const { page } = await newPage(loft);
    const frameCsp = [];
    page.on('response', (r) => { if (r.url().includes('/jmap/frame/')) frameCsp.push(r.headers()['content-security-policy'] || ''); });
    await signIn(page, loft);
    const mboxBefore = await loft.py(`c = env.imap_login('alice@example.test')
typ, d = c.list()
result = sorted(x.decode() for x in d)
c.logout()`);
    for (const f of corpus) {
      await row(page, new RegExp(`Hostile ${f.replace('.', '\\.')}`)).click();
      await page.getByRole('region', { name: 'Message' }).getByText(`Hostile ${f}`, { exact: true }).waitFor();
      const frame = page.locator('iframe[title="Message content"]');
      await frame.waitFor();
      assert.equal(await frame.getAttribute('sandbox'), 'allow-popups allow-popups-to-escape-sandbox', 'no allow-scripts');
      await until(async () => page.frames().length > 1, 5000, `frame of ${f}`);
      await page.waitForTimeout(150);
      assert.deepEqual(await pwned(page), [], `${f}: a script ran`);
      // the page itself is still ours and usable
      await page.getByRole('grid', { name: 'Messages' }).waitFor();
    }
    assert.ok(frameCsp.length >= corpus.length);
    for (const c of frameCsp) {
      assert.match(c, /default-src 'none'/);
      assert.match(c, /sandbox/);
      assert.doesNotMatch(c, /script-src|allow-scripts/);
      assert.doesNotMatch(c, /https:/, 'remote content not allowed before consent');
    }
    assert.deepEqual(foreign(page, loft), [], 'requests to other hosts');
    const mboxAfter = await loft.py(`c = env.imap_login('alice@example.test')
typ, d = c.list()
result = sorted(x.decode() for x in d)
c.logout()`);
    assert.deepEqual(mboxAfter, mboxBefore);
    // consent: "Load remote content" on the tracking mail requests it (the
    // test aborts every request to another host before it leaves)
    await row(page, /Hostile 12-tracking/).click();
    await page.getByRole('button', { name: 'Load remote content' }).click();
    await until(() => foreign(page, loft).some((u) => u.startsWith('http://evil.example/pixel.gif')), 5000, 'remote load after consent');
    assert.deepEqual(await pwned(page), []);
    assert.deepEqual(page.errors, []);
  } finally { await loft.stop(); }
});

test('XSS in names, RTL file names, 10,000 recipients, malformed MIME, a 50 MB message', async () => {
  const loft = await Loft.start();
  try {
    const xss = '<img src=x onerror="top.__pwned=1">';
    const xssName = '<img src=x onerror=top.__pwned=1>';
    await loft.deliver('alice@example.test', message({
      from: `"<script>top.__pwned=1</script>" <x@example.org>`, subject: `XSS ${xss}`,
      extraParts: 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attachments\r\n' +
        `--b\r\nContent-Type: text/plain; name="${xssName}.txt"\r\nContent-Disposition: attachment; filename="${xssName}.txt"\r\n\r\nx\r\n` +
        '--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8\'\'invoice%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--b--\r\n' }));
    const many = Array.from({ length: 10000 }, (_, i) => `r${i}@example.org`).join(',\r\n ');
    await loft.deliver('alice@example.test', message({ subject: 'Ten thousand recipients', to: many }));
    await loft.deliver('alice@example.test', message({ subject: 'Broken MIME',
      extraParts: 'Content-Type: multipart/mixed; boundary="never"\r\n\r\n--never\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64###\r\n--never\r\nContent-Type: text/html\r\n\r\n<p>unterminated' }));
    const huge = 'x'.repeat(99) + '\r\n';
    const mb = SLOW > 1 ? 5 : 49;
    await loft.deliver('alice@example.test', message({ subject: 'Huge message', body: huge.repeat(Math.floor(mb * 1024 * 1024 / 101)) }));
    await loft.py(`c = env.imap_login('alice@example.test')
c.create('"<img src=x onerror=top.__pwned=1>"')
c.logout()`);
    const { page } = await newPage(loft);
    await signIn(page, loft);
    const msg = page.getByRole('region', { name: 'Message' });
    // names shown as text
    await row(page, /XSS <img src=x onerror/).click();
    await msg.getByText(`XSS ${xss}`, { exact: true }).waitFor();
    await msg.getByText('"<script>top.__pwned=1</script>" <x@example.org>').or(msg.getByText('<script>top.__pwned=1</script> <x@example.org>')).first().waitFor();
    await msg.getByRole('link', { name: `${xssName.replace(/[<>"]/g, '_')}.txt` }).waitFor();
    // the right-to-left override is gone from the name shown and saved
    const rtl = msg.getByRole('link', { name: 'invoicefdp.exe' });
    await rtl.waitFor();
    assert.equal(await rtl.getAttribute('download'), 'invoicefdp.exe');
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: '<img src=x onerror=top.__pwned=1>' }).waitFor();
    // 10,000 recipients are collapsed
    await row(page, /Ten thousand recipients/).click();
    await msg.getByRole('button', { name: 'Show all 10,000 recipients' }).waitFor();
    assert.ok((await msg.innerText()).length < 20000, 'collapsed');
    // malformed MIME: what parses shows, the source stays viewable
    await row(page, /Broken MIME/).click();
    await msg.getByText('Broken MIME', { exact: true }).waitFor();
    await msg.getByRole('button', { name: 'View source' }).click();
    await page.getByRole('dialog', { name: 'Message source' }).getByText(/not base64###/).waitFor();
    await page.getByRole('dialog', { name: 'Message source' }).getByRole('button', { name: 'Close' }).click();
    // the huge one is cut, with "Show all"
    await row(page, /Huge message/).click();
    await msg.getByText('Huge message', { exact: true }).waitFor();
    await msg.getByRole('button', { name: 'Show all' }).waitFor();
    assert.ok((await msg.innerText()).length < 2 * 1024 * 1024, 'cut at maxBodyValueBytes');
    // search terms are data
    await page.getByRole('searchbox', { name: 'Search mail' }).fill('<script>top.__pwned=1</script> "<img src=x onerror=top.__pwned=1>"');
    await page.getByRole('grid', { name: 'Messages' }).waitFor();
    await page.waitForTimeout(800);
    assert.deepEqual(await pwned(page), []);
    assert.deepEqual(foreign(page, loft), []);
    await axe(page, 'after hostile input');
  } finally { await loft.stop(); }
});
