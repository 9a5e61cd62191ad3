// Test helpers for the webmail's browser tests: a private loftd per test
// (tests/lib/loftserve.py over tests/lib/loftenv.py: free loopback ports,
// its own data directory), Debian's chromium through playwright-core, a
// request log per page, and axe-core.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SRC = process.env.LOFT_SRC || path.resolve(here, '..', '..');
const require = createRequire(path.join(SRC, 'web', 'package.json'));
const { chromium } = require('playwright-core');
export const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const SLOW = /^(1|on|true|yes)$/i.test(process.env.LOFT_SANITIZE || '') ? 4 : 1;
export const ARTIFACTS = process.env.LOFT_WEB_ARTIFACTS ||
  path.join(process.env.LOFT_BUILD || path.join(SRC, 'build'), 'web-artifacts');

export class Loft {
  static async start(opts = {}) {
    const l = new Loft();
    const env = { ...process.env, PYTHONPATH: path.join(SRC, 'tests', 'lib'), PYTHONDONTWRITEBYTECODE: '1' };
    l.proc = spawn('python3', [path.join(SRC, 'tests', 'lib', 'loftserve.py'), JSON.stringify(opts)],
      { env, stdio: ['pipe', 'pipe', 'inherit'] });
    l.lines = readline.createInterface({ input: l.proc.stdout })[Symbol.asyncIterator]();
    const first = await l.lines.next();
    if (first.done) throw new Error('loftserve.py did not start loftd');
    Object.assign(l, JSON.parse(first.value));
    l.url = `http://127.0.0.1:${l.ports.http}`;
    return l;
  }
  /** Runs Python with env in scope; returns `result`. */
  async py(code, args) {
    this.proc.stdin.write(JSON.stringify({ code, args }) + '\n');
    const r = await this.lines.next();
    if (r.done) throw new Error('loftserve.py went away');
    const o = JSON.parse(r.value);
    if (!o.ok) throw new Error(o.error);
    return o.result;
  }
  /** LMTP delivery of a raw message (string) to rcpt. */
  deliver(rcpt, raw, from = 'sender@example.org') {
    return this.py(`c = env.lmtp()\nc.sendmail(args[0], [args[1]], args[2].encode())\nc.quit()`, [from, rcpt, raw]);
  }
  async stop() {
    this.proc.stdin.end();
    if (this.proc.exitCode !== null) return;
    await new Promise((res) => { this.proc.on('exit', res); setTimeout(res, 30000).unref(); });
  }
}

export function message({ from = 'Ann Sender <ann@example.org>', to = 'alice@example.test', subject = 'Hello',
  body = 'Hello there.', html = null, date = new Date(), headers = '', extraParts = null, messageId = null } = {}) {
  const id = messageId || `<${Math.random().toString(36).slice(2)}@example.org>`;
  const d = date.toUTCString().replace('GMT', '+0000');
  let h = `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${d}\r\nMessage-ID: ${id}\r\nMIME-Version: 1.0\r\n${headers}`;
  if (extraParts) return h + extraParts;
  if (html) return `${h}Content-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n`;
  return `${h}Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
}

let browser = null;
export async function launch() {
  if (!browser) {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
  }
  return browser;
}
export async function closeBrowser() { if (browser) { await browser.close(); browser = null; } }

/** A new context + page with a log of every request's host. */
export async function newPage(loft, opts = {}) {
  const b = await launch();
  const ctx = await b.newContext({ viewport: opts.viewport || { width: 1280, height: 800 }, ...opts.context });
  ctx.setDefaultTimeout(15000 * SLOW);
  const page = await ctx.newPage();
  page.requests = [];
  ctx.on('request', (r) => page.requests.push(r.url()));
  // nothing leaves the machine: a request to any other host is logged
  // (above) and aborted here, before DNS
  await ctx.route((u) => !u.href.startsWith(loft.url + '/'), (r) => r.abort());
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return { ctx, page };
}

export async function signIn(page, loft, user = 'alice@example.test', remember = false) {
  await page.goto(loft.url + '/');
  await page.getByRole('textbox', { name: 'Email' }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill(loft.users[user]);
  if (remember) await page.getByRole('checkbox', { name: /Remember me/ }).check();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('grid', { name: 'Messages' }).waitFor();
}

/** axe-core on the page as it is: serious or critical violations. */
export async function axe(page, what) {
  // evaluated through the DevTools protocol: the page's CSP (no inline
  // script) stays in force for everything else
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  if (r.length) throw new Error(`axe on ${what}:\n  ${r.join('\n  ')}`);
}

export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/** Requests to anything but loftd (and the page's own data:/blob:). */
export function foreign(page, loft) {
  return page.requests.filter((u) => !u.startsWith(loft.url + '/') && !/^(data|blob|about):/.test(u));
}

/** JMAP as alice (or user) from Python (tests/lib/jmapclient.py); more:
 * capabilities to add to using. */
export function jmap(loft, calls, user = 'alice@example.test', more = []) {
  return loft.py(`from jmapclient import Jmap
j = Jmap(env, args[0])
for c in args[1]:
    c[1].setdefault('accountId', j.account)
result = j.call(args[1], using=args[2])`, [user, calls, ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
    'urn:ietf:params:jmap:submission', 'https://loft.example/jmap/webmail', ...more]]);
}

/** Sets the webmail settings of user through the vendor capability. */
export function settings(loft, patch, user = 'alice@example.test') {
  return jmap(loft, [['LoftSettings/set', { update: { singleton: patch } }, 's']], user);
}

/** Waits until fn() is truthy (polling), or throws after ms. */
export async function until(fn, ms = 10000, what = 'condition') {
  const end = Date.now() + ms * SLOW;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const row = (page, re) => page.getByRole('grid', { name: 'Messages' }).getByRole('row', { name: re });
