// The phone layout at 360 px (list and message as separate screens, touch
// targets >= 44 px), dark mode, the settings screens (identities, folders,
// storage, password, app passwords, "Set up a device", remote content),
// axe-core on every screen, screenshots as artefacts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loft, newPage, signIn, message, closeBrowser, row, until, SLOW, axe, shot, jmap } from './loft.mjs';

after(closeBrowser);

async function smallTargets(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('button, a[href], [role=row], input, select, textarea, label.file-btn')) {
      const r = el.getBoundingClientRect();
      const st = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || st.visibility === 'hidden' || r.bottom < 0 || r.top > innerHeight) continue;
      if (el.closest('.sr-only') || (el.tagName === 'INPUT' && (el.type === 'checkbox' || el.type === 'file'))) continue;
      if (r.height < 44 || (r.width < 44 && el.tagName !== 'A')) bad.push(`${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 30)}" ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
    return bad;
  });
}

test('360 px: list and message are separate screens with 44 px targets', async () => {
  const loft = await Loft.start();
  try {
    await loft.deliver('alice@example.test', message({ subject: 'Small screen', body: 'Read me on a phone.' }));
    const { page } = await newPage(loft, { viewport: { width: 360, height: 740 }, context: { hasTouch: true, isMobile: true } });
    await page.goto(loft.url + '/');
    await axe(page, 'phone sign-in');
    await signIn(page, loft);
    await row(page, /Small screen/).waitFor();
    assert.equal(await page.getByRole('region', { name: 'Message' }).count(), 0, 'no message screen yet');
    assert.deepEqual(await smallTargets(page), []);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'no sideways scrolling');
    await axe(page, 'phone list');
    await shot(page, 'phone-list');
    await page.getByRole('button', { name: 'Show folders' }).click();
    const nav = page.getByRole('navigation', { name: 'Folders' });
    await nav.getByRole('link', { name: /^Inbox/ }).waitFor();
    assert.deepEqual(await smallTargets(page), []);
    await axe(page, 'phone folders');
    await nav.getByRole('link', { name: /^Inbox/ }).click();
    await row(page, /Small screen/).click();
    const msg = page.getByRole('region', { name: 'Message' });
    await msg.getByText('Read me on a phone.').waitFor();
    assert.equal(await page.getByRole('grid', { name: 'Messages' }).isVisible(), false, 'the list is another screen');
    for (const n of ['Reply', 'Reply all', 'Forward', 'Delete', 'Archive', 'Move to', 'Mark as unread', 'Flag']) {
      await page.getByRole('button', { name: n, exact: true }).waitFor();
    }
    assert.deepEqual(await smallTargets(page), []);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'no sideways scrolling');
    await axe(page, 'phone message');
    await shot(page, 'phone-message');
    await msg.getByRole('button', { name: 'Back to list' }).click();
    await row(page, /Small screen/).waitFor();
    await page.getByRole('button', { name: 'Compose' }).click();
    await page.getByRole('dialog', { name: 'New message' }).waitFor();
    await axe(page, 'phone compose');
    await shot(page, 'phone-compose');
  } finally { await loft.stop(); }
});

test('dark mode and every settings screen', async () => {
  const loft = await Loft.start({ extra: { policy: { quota_bytes: '1M' } } });
  try {
    await loft.deliver('alice@example.test', message({ subject: 'Fills the quota', body: 'z'.repeat(950 * 1024) }));
    const { page } = await newPage(loft, { context: { colorScheme: 'light' } });
    await signIn(page, loft);
    await page.getByRole('button', { name: 'Dark mode' }).click();
    await page.getByRole('button', { name: 'Light mode' }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await axe(page, 'dark list');
    await shot(page, 'dark-list');
    // the choice follows the user (kept on the server)
    const st = await jmap(loft, [['LoftSettings/get', { ids: null }, 's']]);
    assert.equal(st.methodResponses[0][1].list[0].theme, 'dark');
    // the quota bar warns near the limit
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('meter', { name: /Storage used: 9\d%/ }).waitFor();
    await page.getByRole('button', { name: 'Settings' }).click();
    const s = page.getByRole('region', { name: 'Settings' });
    const nav = s.getByRole('navigation', { name: 'Settings sections' });
    for (const tab of ['General', 'Identities', 'Folders', 'Storage', 'Password', 'App passwords', 'Set up a device', 'Remote content']) {
      await nav.getByRole('link', { name: tab, exact: true }).click();
      await s.getByRole('heading', { level: 3 }).first().waitFor();
      await page.waitForTimeout(100);
      await axe(page, `settings: ${tab}`);
    }
    // identities: a signature
    await nav.getByRole('link', { name: 'Identities', exact: true }).click();
    await s.getByRole('textbox', { name: 'Signature' }).fill('Alice\nLoft tester');
    await s.getByRole('button', { name: 'Save identity' }).click();
    await until(async () => {
      const r = await jmap(loft, [['Identity/get', { ids: null }, 'i']]);
      return r.methodResponses[0][1].list.some((i) => i.textSignature === 'Alice\nLoft tester');
    }, 5000, 'signature saved');
    // folders: create, rename, delete
    await nav.getByRole('link', { name: 'Folders', exact: true }).click();
    await s.getByRole('textbox', { name: 'New folder name' }).fill('Receipts');
    await s.getByRole('button', { name: 'Create folder' }).click();
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Receipts/ }).waitFor();
    await s.getByRole('textbox', { name: 'New name for Receipts' }).fill('Bills');
    await s.getByRole('button', { name: 'Rename Receipts' }).click();
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Bills/ }).waitFor();
    // share it with bob (read), then read and change, then stop: IMAP's ACL follows
    const acl = () => loft.py(`c = env.imap_login('alice@example.test')
typ, d = c.getacl('Bills')
c.logout()
result = d[0].decode() if d and d[0] else ''`);
    await s.getByRole('button', { name: 'Share Bills' }).click();
    const share = page.getByRole('dialog', { name: 'Share Bills' });
    await share.getByText('Nobody else can see this folder.').waitFor();
    await axe(page, 'share dialog');
    await share.getByRole('combobox', { name: 'Person' }).selectOption({ label: 'bob@example.test' });
    await share.getByRole('combobox', { name: 'Access' }).selectOption({ label: 'Can read' });
    await share.getByRole('button', { name: 'Share', exact: true }).click();
    const bobAccess = share.getByRole('combobox', { name: 'Access for bob@example.test' });
    await bobAccess.waitFor();
    assert.match(await acl(), /bob@example\.test lrs\b/);
    assert.equal(await bobAccess.inputValue(), 'read');
    await bobAccess.selectOption({ label: 'Can read and change' });
    await until(async () => /bob@example\.test \S*i/.test(await acl()), 5000, 'bob may add');
    await share.getByRole('button', { name: 'Stop sharing with bob@example.test' }).click();
    await share.getByText('Nobody else can see this folder.').waitFor();
    assert.doesNotMatch(await acl(), /bob@example/);
    await share.getByRole('button', { name: 'Close' }).click();
    page.once('dialog', (d) => d.accept());
    await s.getByRole('button', { name: 'Remove folder Bills' }).click();
    await until(async () => (await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Bills/ }).count()) === 0, 5000, 'folder deleted');
    // storage
    await nav.getByRole('link', { name: 'Storage', exact: true }).click();
    await s.getByText(/nearly full/).waitFor();
    // set up a device: the real listeners and the POP3 policy in words
    await nav.getByRole('link', { name: 'Set up a device', exact: true }).click();
    await s.getByRole('cell', { name: String(loft.ports.imaps) }).waitFor();
    await s.getByRole('cell', { name: String(loft.ports.pop3s) }).waitFor();
    await s.getByText(/Mail your POP3 device deletes stays here, hidden from that device/).waitFor();
    await s.getByRole('link', { name: /Profile for iPhone/ }).waitFor();
    // app passwords: made, works for IMAP, removed
    await nav.getByRole('link', { name: 'App passwords', exact: true }).click();
    await s.getByRole('textbox', { name: 'Device name' }).fill('phone');
    await s.getByRole('button', { name: 'Create app password' }).click();
    const secret = (await s.locator('code.secret').innerText()).trim();
    assert.match(secret, /^loft_/);
    const ok = await loft.py(`c = env.imap()
c.login('alice@example.test', args[0])
c.logout()
result = True`, [secret]);
    assert.equal(ok, true);
    await s.getByRole('button', { name: 'Remove app password phone' }).click();
    await until(async () => (await s.getByRole('button', { name: 'Remove app password phone' }).count()) === 0, 5000, 'removed');
    // password: a wrong current one is refused in plain words, then changed
    await nav.getByRole('link', { name: 'Password', exact: true }).click();
    await s.getByLabel('Current password', { exact: true }).fill('not-my-password');
    await s.getByLabel('New password', { exact: true }).fill('a-much-better-passphrase-42');
    await s.getByLabel('Repeat new password', { exact: true }).fill('a-much-better-passphrase-42');
    await s.getByRole('button', { name: 'Change password' }).click();
    await s.getByText('The current password is not right.').waitFor();
    await s.getByLabel('Current password', { exact: true }).fill(loft.users['alice@example.test']);
    await s.getByRole('button', { name: 'Change password' }).click();
    await s.getByText('Your password has been changed.').waitFor();
    const imapOk = await loft.py(`c = env.imap()
c.login('alice@example.test', 'a-much-better-passphrase-42')
c.logout()
result = True`);
    assert.equal(imapOk, true);
    await shot(page, 'settings');
  } finally { await loft.stop(); }
});

test('filters: a rule from the menus files new mail; errors in words', async () => {
  const loft = await Loft.start();
  try {
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await page.getByRole('button', { name: 'Settings' }).click();
    const s = page.getByRole('region', { name: 'Settings' });
    await s.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Filters', exact: true }).click();
    const script = s.getByRole('textbox', { name: 'Sieve script' });
    await script.waitFor();
    await axe(page, 'settings: Filters');
    // a broken script: Check says what and where, nothing is stored
    await script.fill('if header :contains "subject" "x" { fileinto "A" }');
    await s.getByRole('button', { name: 'Check' }).click();
    await s.getByRole('alert').getByText(/line|column|fileinto|;/i).waitFor();
    const none = await jmap(loft, [['SieveScript/get', { ids: null }, 'g']], 'alice@example.test', ['urn:ietf:params:jmap:sieve']);
    assert.deepEqual(none.methodResponses[0][1].list, []);
    // a rule from the menus: subject contains "invoice" -> Archive
    await script.fill('');
    await s.getByRole('textbox', { name: 'contains' }).fill('invoice');
    await s.getByRole('combobox', { name: 'Folder' }).selectOption({ label: 'Archive' });
    await s.getByRole('button', { name: 'Add rule' }).click();
    assert.match(await script.inputValue(), /require \["fileinto"\];[\s\S]*fileinto "Archive";/);
    await s.getByRole('button', { name: 'Check' }).click();
    await s.getByText('No errors found.').waitFor();
    await s.getByRole('button', { name: 'Save filters' }).click();
    await s.getByText(/Saved\. New mail is filtered with it\./).waitFor();
    await s.getByRole('combobox', { name: 'Filter set' }).getByRole('option', { name: /My filters \(in use\)/ }).waitFor({ state: 'attached' });
    // the server runs it at delivery
    await loft.deliver('alice@example.test', message({ subject: 'Your invoice 42' }));
    await loft.deliver('alice@example.test', message({ subject: 'Hello there' }));
    const where = await until(async () => {
      const r = await loft.py(`c = env.imap_login('alice@example.test')
out = {}
for mb in ('INBOX', 'Archive'):
    c.select(mb, readonly=True)
    typ, d = c.search(None, 'ALL')
    out[mb] = len(d[0].split())
c.logout()
result = out`);
      return r.Archive + r.INBOX === 2 ? r : null;
    }, 10000, 'both delivered');
    assert.deepEqual(where, { INBOX: 1, Archive: 1 });
    // vacation reply (VacationResponse, offered with Sieve): set in the
    // page, kept on the server, shown again after a reload
    await s.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Vacation reply', exact: true }).click();
    await s.getByRole('checkbox', { name: 'Reply automatically' }).check();
    await s.getByRole('textbox', { name: 'Subject' }).fill('Away until Monday');
    await s.getByRole('textbox', { name: 'Reply' }).fill('I read mail on Monday.');
    await axe(page, 'settings: Vacation reply');
    await s.getByRole('button', { name: 'Save vacation reply' }).click();
    const v = await until(async () => {
      const vr = await jmap(loft, [['VacationResponse/get', { ids: null }, 'v']], 'alice@example.test', ['urn:ietf:params:jmap:vacationresponse']);
      const x = vr.methodResponses[0][1].list[0];
      return x && x.isEnabled ? x : null;
    }, 10000, 'vacation reply saved');
    assert.equal(v.subject, 'Away until Monday');
    assert.equal(v.textBody, 'I read mail on Monday.');
    await page.reload();
    await page.getByRole('grid', { name: 'Messages' }).waitFor();
    await page.getByRole('button', { name: 'Settings' }).click();
    await s.getByRole('navigation', { name: 'Settings sections' }).getByRole('link', { name: 'Vacation reply', exact: true }).click();
    assert.equal(await s.getByRole('checkbox', { name: 'Reply automatically' }).isChecked(), true);
    assert.equal(await s.getByRole('textbox', { name: 'Subject' }).inputValue(), 'Away until Monday');
    assert.deepEqual(page.errors, []);
  } finally { await loft.stop(); }
});
