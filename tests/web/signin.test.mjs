// Signing in and reading: the accessible names contract, the session
// (remember me, sign-out, expiry keeping the draft, CSRF, fixation),
// axe-core on each screen.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loft, newPage, signIn, message, closeBrowser, shot, row, axe, foreign, until, SLOW } from './loft.mjs';

after(closeBrowser);

test('sign in and read', async () => {
  const loft = await Loft.start();
  try {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
    await loft.deliver('alice@example.test', message({ from: 'Ann Sender <ann@example.org>', subject: 'Lunch on Friday',
      body: 'Shall we meet at https://example.org/menu at noon?' }));
    await loft.deliver('alice@example.test', message({ from: 'Bo Report <bo@example.org>', subject: 'Quarterly report',
      extraParts: 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: multipart/related; boundary="b2"\r\n\r\n' +
        '--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See the <b>chart</b>: <img src="cid:chart@x" alt="chart"></p>\r\n' +
        `--b2\r\nContent-Type: image/png\r\nContent-ID: <chart@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n${png}\r\n--b2--\r\n` +
        '--b1\r\nContent-Type: application/pdf; name="report.pdf"\r\nContent-Disposition: attachment; filename="report.pdf"\r\n' +
        'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b1--\r\n' }));
    const { page } = await newPage(loft);
    await page.goto(loft.url + '/');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await axe(page, 'sign-in');
    await shot(page, 'signin');
    await signIn(page, loft);
    // folders by role first, with unread counts
    const nav = page.getByRole('navigation', { name: 'Folders' });
    await nav.getByRole('link', { name: 'Inbox 2 unread' }).waitFor();
    const names = await nav.getByRole('link').allInnerTexts();
    assert.deepEqual(names.slice(0, 6).map((n) => n.split('\n')[0]), ['Inbox', 'Drafts', 'Sent', 'Junk', 'Trash', 'Archive']);
    const lunch = row(page, /Ann Sender.*Lunch on Friday.*unread/);
    await lunch.waitFor();
    await axe(page, 'list');
    await shot(page, 'list');
    await lunch.click();
    const msg = page.getByRole('region', { name: 'Message' });
    await msg.getByText('Lunch on Friday', { exact: true }).waitFor();
    // plain-text links are clickable
    await msg.getByRole('link', { name: 'https://example.org/menu' }).waitFor();
    await until(async () => !(await row(page, /Lunch on Friday/).getAttribute('aria-label')).includes('unread'), 3000, 'read');
    await nav.getByRole('link', { name: 'Inbox 1 unread' }).waitFor();
    await axe(page, 'message');
    // "Mark as unread" / "Flag" follow the message's state, and reach IMAP
    await page.getByRole('button', { name: 'Mark as unread', exact: true }).click();
    await row(page, /Lunch on Friday.*unread/).waitFor();
    await page.getByRole('button', { name: 'Mark as read', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Flag', exact: true }).click();
    await page.getByRole('button', { name: 'Unflag', exact: true }).waitFor();
    await row(page, /Lunch on Friday.*flagged/).waitFor();
    // The button turns at once (the webmail shows the change before the
    // server's reply): IMAP sees it once the server has it. A refusal
    // would roll the row back and say why in an alert: that is reported.
    const alert = page.getByRole('alert');
    let flags = 0;
    await until(async () => {
      if (await alert.count()) throw new Error(`the page says: ${await alert.first().innerText()}`);
      flags = await loft.py(`c = env.imap_login('alice@example.test')
c.select('INBOX')
typ, d = c.search(None, 'FLAGGED')
result = len(d[0].split())
c.logout()`);
      return flags === 1;
    }, 30000, 'IMAP SEARCH FLAGGED to find the flagged message');
    await row(page, /Lunch on Friday.*flagged/).waitFor();
    // HTML with a cid: image and an attachment
    await row(page, /Quarterly report/).click();
    await msg.getByText('Quarterly report', { exact: true }).waitFor();
    const frame = page.frameLocator('iframe[title="Message content"]');
    await frame.getByText('chart', { exact: false }).first().waitFor();
    const img = await frame.locator('img').getAttribute('src');
    assert.match(img, /^data:image\/png;base64,/);
    await msg.getByRole('link', { name: 'report.pdf' }).waitFor();
    assert.match(await msg.getByRole('list', { name: 'Attachments' }).innerText(), /report\.pdf.*application\/pdf/s);
    // headers and source
    await msg.getByRole('button', { name: 'Show headers' }).click();
    await page.getByRole('dialog', { name: 'Message headers' }).getByText('Message-ID', { exact: true }).waitFor();
    await axe(page, 'headers dialog');
    await page.getByRole('dialog', { name: 'Message headers' }).getByRole('button', { name: 'Close' }).click();
    await msg.getByRole('button', { name: 'View source' }).click();
    await page.getByRole('dialog', { name: 'Message source' }).getByText(/Content-ID: <chart@x>/).waitFor();
    await page.getByRole('dialog', { name: 'Message source' }).getByRole('button', { name: 'Close' }).click();
    await shot(page, 'message');
    assert.deepEqual(foreign(page, loft), []);
    assert.deepEqual(page.errors, []);
  } finally { await loft.stop(); }
});

test('remember me, sign out, and an expired session keeps the open draft', async () => {
  const loft = await Loft.start();
  try {
    const { ctx, page } = await newPage(loft);
    await signIn(page, loft, 'alice@example.test', true);
    const c = (await ctx.cookies()).find((x) => x.name.includes('loft_session'));
    assert.ok(c, 'session cookie');
    assert.ok(c.httpOnly, 'HttpOnly');
    assert.equal(c.sameSite, 'Strict');
    const days = (c.expires - Date.now() / 1000) / 86400;
    assert.ok(days > 29 && days < 31, `remember me lasts 30 days, not ${days}`);
    // open a draft, then the session ends on the server (another tab signs out)
    await page.getByRole('button', { name: 'Compose' }).click();
    await page.getByRole('combobox', { name: 'To' }).fill('bob@example.test');
    await page.getByRole('textbox', { name: 'Subject' }).fill('Kept across expiry');
    await page.getByRole('textbox', { name: 'Message body' }).fill('Words I do not want to lose.');
    const csrf = await page.evaluate(async () => (await (await fetch('/auth/session')).json()).csrf);
    const r = await page.evaluate(async (t) => (await fetch('/auth/logout', { method: 'POST', headers: { 'X-Loft-CSRF': t } })).status, csrf);
    assert.ok(r >= 200 && r < 300, `sign-out answered ${r}`);
    // the draft's save runs into the ended session: sign-in comes back over it
    const again = page.getByRole('dialog', { name: 'Sign in again' });
    await again.waitFor({ timeout: 15000 * SLOW });
    await axe(page, 'sign-in again');
    await again.getByLabel('Password', { exact: true }).fill(loft.users['alice@example.test']);
    await again.getByRole('button', { name: 'Sign in' }).click();
    await again.waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('textbox', { name: 'Subject' }).inputValue(), 'Kept across expiry');
    assert.equal((await page.getByRole('textbox', { name: 'Message body' }).innerText()).trim(), 'Words I do not want to lose.');
    await page.getByText(/Draft saved/).waitFor({ timeout: 15000 * SLOW });
    // sign out ends it on the server
    await page.getByRole('button', { name: 'Close' }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    const st = await page.evaluate(async () => (await fetch('/auth/session')).status);
    assert.equal(st, 401);
  } finally { await loft.stop(); }
});

test('CSRF from another origin and session fixation change nothing', async () => {
  const loft = await Loft.start();
  try {
    const { ctx, page } = await newPage(loft);
    // fixation: a session id planted before sign-in is not the one used
    await ctx.addCookies([{ name: 'loft_session', value: 'attacker-chosen-session-id-0123456789', url: loft.url }]);
    await signIn(page, loft);
    const c = (await ctx.cookies()).find((x) => x.name === 'loft_session');
    assert.notEqual(c.value, 'attacker-chosen-session-id-0123456789');
    // a form posted from another origin (http://localhost:PORT is another
    // origin than http://127.0.0.1:PORT) carrying the cookie
    const before = await loft.py(`c = env.imap_login('alice@example.test')
typ, d = c.list()
result = len(d)
c.logout()`);
    const body = JSON.stringify({ using: ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail'],
      methodCalls: [['Mailbox/set', { accountId: 'A1', create: { x: { name: 'CSRF was here' } } }, '0']] });
    const direct = await page.request.post(loft.url + '/jmap/api', {
      headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' }, data: body });
    assert.ok(direct.status() === 401 || direct.status() === 403, `cookie without CSRF token: ${direct.status()}`);
    const wrongOrigin = await page.request.post(loft.url + '/jmap/api', {
      headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example', 'X-Loft-CSRF': 'guess' }, data: body });
    assert.ok(wrongOrigin.status() === 401 || wrongOrigin.status() === 403);
    const other = await ctx.newPage();
    await other.goto(`http://localhost:${loft.ports.http}/`).catch(() => {});
    await other.evaluate(([url, b]) => {
      const f = document.createElement('form');
      f.method = 'POST'; f.action = url; f.enctype = 'text/plain';
      const i = document.createElement('input'); i.name = b.slice(0, -2); i.value = '"}'; f.appendChild(i);
      document.body.appendChild(f); f.submit();
    }, [loft.url + '/jmap/api', body]).catch(() => {});
    await other.waitForLoadState().catch(() => {});
    const afterN = await loft.py(`c = env.imap_login('alice@example.test')
typ, d = c.list()
result = len(d)
c.logout()`);
    assert.equal(afterN, before, 'no folder was created');
  } finally { await loft.stop(); }
});
