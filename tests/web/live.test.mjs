// Live: a change from another device shows within 1 s without reload:
// IMAP flags, moves and expunges, POP3 deletion under each pop3_delete
// policy, LMTP delivery (title count, the status live region), another
// browser. It comes through the EventSource and then /changes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Loft, newPage, signIn, message, closeBrowser, row, until, SLOW, axe } from './loft.mjs';

after(closeBrowser);
// The bound: 1 s. On a machine loaded past 4 runnable tasks per
// core (CI neighbours, parallel ctest) the test allows 3 s and says so;
// bench/webmail.mjs measures the real figure.
const overloaded = os.loadavg()[0] / os.cpus().length > 4;
const LIVE_MS = 1000 * SLOW * (overloaded ? 3 : 1);
if (overloaded) console.log(`# load ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores: live bound ${LIVE_MS} ms`);

/**
 * ms from now until the page shows it: the page itself checks at every
 * frame (no polling round trip from here) and notes when it first saw it.
 * want: {sub, present, must: [], not: []} over the rows' accessible names.
 */
async function within(page, want, limit, what) {
  const t0 = Date.now();
  const handle = await page.waitForFunction((w) => {
    const rows = [...document.querySelectorAll('[role=grid] [role=row]')].map((r) => r.getAttribute('aria-label') || '');
    const hit = rows.some((l) => l.includes(w.sub) && w.must.every((m) => l.includes(m)) && w.not.every((m) => !l.includes(m)));
    return hit === w.present ? Date.now() : 0;
  }, { must: [], not: [], ...want }, { polling: 'raf', timeout: Math.max(limit * 3, 10000) });
  const ms = (await handle.jsonValue()) - t0;
  assert.ok(ms <= limit, `${what}: ${ms} ms (limit ${limit})`);
  return ms;
}
const label = (page, re) => row(page, re).getAttribute('aria-label', { timeout: 2000 }).catch(() => null);

test('IMAP STORE, MOVE, EXPUNGE and LMTP delivery show within 1 s', async () => {
  const loft = await Loft.start();
  try {
    await loft.deliver('alice@example.test', message({ subject: 'Alpha one' }));
    await loft.deliver('alice@example.test', message({ subject: 'Beta two' }));
    await loft.deliver('alice@example.test', message({ subject: 'Gamma three' }));
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await row(page, /Alpha one.*unread/).waitFor();
    await page.waitForTimeout(300);   // the EventSource is open
    // STORE on another connection
    await loft.py(`c = env.imap_login('alice@example.test')
c.select('INBOX')
c.uid('SEARCH', None, 'SUBJECT', '"Alpha one"')
typ, d = c.search(None, 'SUBJECT', '"Alpha one"')
c.store(d[0].split()[0], '+FLAGS', '(\\\\Seen \\\\Flagged)')
c.logout()`);
    const ms = await within(page, { sub: 'Alpha one', present: true, must: ['flagged'], not: ['unread'] }, LIVE_MS, 'IMAP STORE in the row');
    console.log(`# IMAP STORE -> row: ${ms} ms`);
    // MOVE to Archive, EXPUNGE
    await loft.py(`c = env.imap_login('alice@example.test')
c.select('INBOX')
typ, d = c.search(None, 'SUBJECT', '"Beta two"')
c._simple_command('MOVE', d[0].split()[0].decode(), 'Archive')
typ, d = c.search(None, 'SUBJECT', '"Gamma three"')
c.store(d[0].split()[0], '+FLAGS', '(\\\\Deleted)')
c.expunge()
c.logout()`);
    await within(page, { sub: 'Beta two', present: false }, LIVE_MS, 'IMAP MOVE leaves the list');
    await within(page, { sub: 'Gamma three', present: false }, LIVE_MS, 'IMAP EXPUNGE leaves the list');
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Archive 1 unread/ }).waitFor();
    // LMTP delivery: the row, the title, the live region
    await loft.deliver('alice@example.test', message({ from: 'Dee Liver <dee@example.org>', subject: 'Fresh delivery' }));
    await within(page, { sub: 'Fresh delivery', present: true, must: ['unread'] }, LIVE_MS, 'LMTP delivery in the list');
    await until(async () => (await page.title()).startsWith('(1)'), 3000, 'title count');
    await until(async () => /New mail from Dee Liver: Fresh delivery/.test(await page.getByRole('status').first().innerText()), 3000, 'announcement');
  } finally { await loft.stop(); }
});

test('POP3 deletion under each pop3_delete policy', async () => {
  const loft = await Loft.start();
  try {
    const { page } = await newPage(loft);
    await signIn(page, loft);
    for (const policy of ['expunge', 'trash', 'hide', 'auto']) {
      await loft.py(`rc, out, err = env.loftctl('user', 'set', 'alice@example.test', 'pop3_delete=' + args[0])
assert rc == 0, err`, [policy]);
      const subj = `POP victim ${policy}`;
      await loft.deliver('alice@example.test', message({ subject: subj }));
      await row(page, new RegExp(subj)).waitFor();
      await loft.py(`p = env.pop3_login('alice@example.test')
n = len(p.list()[1])
for i in range(1, n + 1):
    top = b'\\n'.join(p.top(i, 0)[1])
    if args[0].encode() in top:
        p.dele(i)
p.quit()`, [subj]);
      if (policy === 'expunge' || policy === 'trash') {
        await within(page, { sub: subj, present: false }, LIVE_MS, `${policy}: gone from Inbox`);
        const trash = page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Trash/ });
        await trash.click();
        const inTrash = row(page, new RegExp(subj));
        if (policy === 'trash') await inTrash.waitFor();
        else { await page.waitForTimeout(300); assert.equal(await inTrash.count(), 0, 'expunge: not in Trash'); }
        await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Inbox/ }).click();
      } else {
        // hide (and auto, since the webmail is a client of another kind):
        // the webmail keeps the message
        await page.waitForTimeout(1200 * SLOW);
        assert.equal(await row(page, new RegExp(subj)).count(), 1, `${policy}: still in Inbox`);
      }
    }
  } finally { await loft.stop(); }
});

test('another browser sees an action within 1 s', async () => {
  const loft = await Loft.start();
  try {
    await loft.deliver('alice@example.test', message({ subject: 'Shared view' }));
    const a = await newPage(loft);
    const b = await newPage(loft);
    await signIn(a.page, loft);
    await signIn(b.page, loft);
    await row(b.page, /Shared view.*unread/).waitFor();
    await b.page.waitForTimeout(300);
    await row(a.page, /Shared view/).click();
    await a.page.getByRole('button', { name: 'Flag', exact: true }).click();
    await within(b.page, { sub: 'Shared view', present: true, must: ['flagged'], not: ['unread'] }, LIVE_MS, 'flag and read in the other browser');
    await a.page.getByRole('button', { name: 'Archive', exact: true }).click();
    await within(b.page, { sub: 'Shared view', present: false }, LIVE_MS, 'archive in the other browser');
    await axe(b.page, 'list after changes');
    // offline (or asleep): the change made meanwhile arrives on return
    await loft.deliver('alice@example.test', message({ subject: 'While away' }));
    await row(b.page, /While away.*unread/).waitFor();
    await b.ctx.setOffline(true);
    await b.page.waitForTimeout(300);
    await loft.py(`c = env.imap_login('alice@example.test')
c.select('INBOX')
typ, d = c.search(None, 'SUBJECT', '"While away"')
c.store(d[0].split()[0], '+FLAGS', '(\\\\Seen)')
c.logout()`);
    await b.ctx.setOffline(false);
    await until(async () => { const l = await label(b.page, /While away/); return l && !l.includes('unread'); }, 10000, 'caught up after being offline');
    // a refusal rolls the change back and says why (the server's answer
    // to this one Email/set is replaced by a refusal)
    await b.page.route('**/jmap/api', async (route) => {
      const body = route.request().postData() || '';
      if (!body.includes('"Email/set"') || !body.includes('$flagged')) return route.continue();
      const req = JSON.parse(body);
      const [name, args, id] = req.methodCalls[0];
      const notUpdated = Object.fromEntries(Object.keys(args.update).map((k) => [k, { type: 'forbidden' }]));
      await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({
        methodResponses: [[name, { accountId: args.accountId, oldState: '0', newState: '0', updated: {}, notUpdated }, id]], sessionState: '' }) });
    });
    await row(b.page, /While away/).click();
    await b.page.getByRole('button', { name: 'Flag', exact: true }).click();
    await b.page.getByRole('alert').getByText(/not allowed/).waitFor();
    await until(async () => { const l = await label(b.page, /While away/); return l && !l.includes('flagged'); }, 3000, 'rolled back');
    await b.page.unroute('**/jmap/api');
  } finally { await loft.stop(); }
});
