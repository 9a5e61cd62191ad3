// The webmail's figures (issue 14), on a private loftd (tests/lib/loftenv.py
// through tests/lib/loftserve.py) and Debian's chromium:
//
//   node bench/webmail.mjs [--messages 100000] [--changes 100] [--reps 5]
//
// 1. compressed JS+CSS on first load (bytes on the wire, gzip);
// 2. "Sign in" clicked to the list painted, with N messages in Inbox
//    (median of reps, each in a fresh browser context);
// 3. IMAP STORE on another connection to the row changing, p50/p95 over
//    C changes (the row's accessible name flips between flagged and not);
// 4. the page's JS heap after scrolling through all N messages (after a GC).
// Needs a release build (LOFT_BUILD, default build/). Prints a table and
// writes bench/results/webmail-<time>.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Loft, newPage, signIn, closeBrowser, row, SRC } from '../tests/web/loft.mjs';

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const N = arg('messages', 100000), CHANGES = arg('changes', 100), REPS = arg('reps', 5);
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const median = (v) => pct(v, 50);

const loft = await Loft.start({ extra: { limits: { io_threads: '2', worker_threads: '4' } } });
const out = { date: new Date().toISOString(), host: os.hostname(), cores: os.cpus().length, load: os.loadavg(), messages: N };
try {
  // fill Inbox over LMTP: small generated messages, 8 connections
  const t0 = Date.now();
  await loft.py(`import threading
n = args[0]
lock = threading.Lock()
state = {'next': 0}
def worker():
    c = env.lmtp()
    while True:
        with lock:
            i = state['next']
            if i >= n:
                break
            state['next'] = i + 1
        msg = ('From: Sender %d <s%d@example.org>\\r\\nTo: alice@example.test\\r\\nSubject: Message number %d about topic %d\\r\\n'
               'Date: Mon, 1 Jan 2024 00:00:00 +0000\\r\\nMessage-ID: <m%d@example.org>\\r\\n\\r\\nBody of message %d.\\r\\n' % (i % 977, i % 977, i, i % 53, i, i))
        c.sendmail('fill@example.org', ['alice@example.test'], msg.encode())
    c.quit()
ts = [threading.Thread(target=worker) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
c = env.imap_login('alice@example.test')
typ, d = c.status('INBOX', '(MESSAGES)')
c.logout()
result = d[0].decode()`, [N]);
  out.fillSeconds = (Date.now() - t0) / 1000;
  console.error(`filled ${N} in ${out.fillSeconds.toFixed(0)} s`);

  // 1 + 2: first load bytes and sign-in to painted list: from the form's
  // submit (performance mark 'loft-signin') to the first rows' frame
  // ('loft-list-painted'); first visits in fresh browser contexts, and
  // returning visits (signed out and in again in the same browser)
  const paintMs = async (page) => {
    await page.waitForFunction(() => performance.getEntriesByName('loft-list-painted').length > 0, null, { timeout: 60000 });
    return page.evaluate(() => Math.round(performance.getEntriesByName('loft-list-painted')[0].startTime -
      performance.getEntriesByName('loft-signin')[0].startTime));
  };
  const signInOnly = async (page) => {
    await page.goto(loft.url + '/');
    await page.getByRole('textbox', { name: 'Email' }).fill('alice@example.test');
    await page.getByLabel('Password', { exact: true }).fill(loft.users['alice@example.test']);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return paintMs(page);
  };
  const first = [], again = [];
  for (let r = 0; r < REPS; r++) {
    const { ctx, page } = await newPage(loft);
    const sizes = [];
    page.on('requestfinished', async (req) => {
      if (/\.(js|css)$/.test(new URL(req.url()).pathname)) sizes.push((await req.sizes()).responseBodySize);
    });
    first.push(await signInOnly(page));
    if (r === 0) out.firstLoadBytes = sizes.reduce((a, b) => a + b, 0);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    again.push(await signInOnly(page));
    await ctx.close();
  }
  out.signinToListMs = { median: median(first), all: first };
  out.signinAgainToListMs = { median: median(again), all: again };

  // 3: IMAP STORE -> row
  const { page } = await newPage(loft);
  await signIn(page, loft);
  const top = page.getByRole('grid', { name: 'Messages' }).getByRole('row').first();
  await top.waitFor();
  const subj = (await top.getAttribute('aria-label')).match(/Message number \d+/)[0];
  await page.evaluate(() => {
    window.__changes = [];
    new MutationObserver((ms) => {
      for (const m of ms) if (m.attributeName === 'aria-label') window.__changes.push([Date.now(), m.target.getAttribute('aria-label')]);
    }).observe(document.querySelector('[role=grid]'), { attributes: true, subtree: true, attributeFilter: ['aria-label'] });
  });
  await page.waitForTimeout(500);
  const lat = [];
  await loft.py(`c = env.imap_login('alice@example.test')
c.select('INBOX')
typ, d = c.search(None, 'SUBJECT', '"%s"' % args[0])
state['seq'] = d[0].split()[-1]
state['imap'] = c`.replace("state['", "globals().setdefault('state', {})['"), [subj]).catch(() => {});
  for (let i = 0; i < CHANGES; i++) {
    const on = i % 2 === 0;
    const before = await page.evaluate(() => window.__changes.length);
    const sent = await loft.py(`import time
st = globals().get('state') or {}
c = env.imap_login('alice@example.test') if 'imap' not in st else st['imap']
if 'imap' not in st:
    c.select('INBOX')
    typ, d = c.search(None, 'SUBJECT', '"%s"' % args[0])
    st['seq'] = d[0].split()[-1]
    st['imap'] = c
    globals()['state'] = st
t = time.time() * 1000
c.store(st['seq'], '+FLAGS' if args[1] else '-FLAGS', '(\\\\Flagged)')
result = t`, [subj, on]);
    const seen = await (async () => {
      const end = Date.now() + 10000;
      for (;;) {
        const ch = await page.evaluate((b) => window.__changes.slice(b), before);
        const hit = ch.find(([, l]) => l && l.includes(subj) && l.includes('flagged') === on);
        if (hit) return hit[0];
        if (Date.now() > end) throw new Error(`change ${i} not seen`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    lat.push(seen - sent);
  }
  out.storeToRowMs = { p50: pct(lat, 50), p95: pct(lat, 95), max: Math.max(...lat), n: lat.length };

  // 4: heap after scrolling through every message
  const scroller = page.locator('.list-scroll');
  const t4 = Date.now();
  await scroller.evaluate(async (el) => {
    const step = el.clientHeight * 3;
    while (el.scrollTop + el.clientHeight < el.scrollHeight - 1) {
      el.scrollTop += step;
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 16)));
    }
  });
  await page.getByRole('grid', { name: 'Messages' }).getByRole('row', { name: /Message number 0 about/ }).waitFor({ timeout: 120000 });
  out.scrollSeconds = (Date.now() - t4) / 1000;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  out.heapAfterScrollMB = +(heap.usedSize / 1048576).toFixed(1);
  const sizes = JSON.parse(fs.readFileSync(path.join(process.env.LOFT_BUILD || path.join(SRC, 'build'), 'webmail', 'build-sizes.json'), 'utf8'));
  out.buildGzipBytes = sizes.firstLoadGzip;
} finally {
  await closeBrowser();
  await loft.stop();
}
out.loadAfter = os.loadavg();
const dir = path.join(SRC, 'bench', 'results');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, `webmail-${out.date.replace(/[:.]/g, '')}.json`), JSON.stringify(out, null, 1));
console.log(`| figure | Loft | goal |
| --- | --- | --- |
| compressed JS+CSS on first load | ${(out.firstLoadBytes / 1024).toFixed(1)} KiB (build: ${(out.buildGzipBytes / 1024).toFixed(1)} KiB) | <= 150 KB |
| "Sign in" to the list painted, ${N.toLocaleString()} in Inbox | first visit ${out.signinToListMs.median} ms, returning ${out.signinAgainToListMs.median} ms (medians of ${REPS}) | < 1 s |
| IMAP STORE to the row changing, ${out.storeToRowMs.n} changes | p50 ${Math.round(out.storeToRowMs.p50)} ms, p95 ${Math.round(out.storeToRowMs.p95)} ms, max ${Math.round(out.storeToRowMs.max)} ms | p95 < 300 ms |
| JS heap after scrolling ${N.toLocaleString()} messages | ${out.heapAfterScrollMB} MB (scroll took ${out.scrollSeconds.toFixed(1)} s) | report |
load ${out.load.map((x) => x.toFixed(1)).join(' ')} -> ${out.loadAfter.map((x) => x.toFixed(1)).join(' ')}`);
