// "Shared with me": folders another user shares with the signed-in user
// show under "Shared with me" (the owner's name), without a reload; they
// read, flag and move within, with the actions the rights forbid hidden;
// a delivery to the owner shows live; a revoked share goes away.
// Over JMAP accounts with isPersonal false (accountId = the owner's).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { Loft, newPage, signIn, message, closeBrowser, row, until, axe, shot } from './loft.mjs';

after(closeBrowser);
// a change from another account shows within the live bound (3 s on an
// overloaded machine: see live.test.mjs); sharing itself may take longer
// (a session fetch), bounded generously
const overloaded = os.loadavg()[0] / os.cpus().length > 4;
const LIVE_MS = 1000 * (overloaded ? 3 : 1);

/** alice's IMAP session runs code with c logged in; returns result. */
const asAlice = (loft, code, args = []) => loft.py(`c = env.imap_login('alice@example.test')
try:
${code.split('\n').map((l) => '    ' + l).join('\n')}
finally:
    c.logout()`, args);

const flagsOf = (loft, folder, subject) => asAlice(loft, `c.select('"%s"' % args[0])
typ, d = c.search(None, 'SUBJECT', '"%s"' % args[1])
ids = d[0].split()
if not ids:
    result = None
else:
    typ, f = c.fetch(ids[0], '(FLAGS)')
    result = f[0].decode()`, [folder, subject]);

test('Shared with me: appears live, reads, flags, moves within, rights, live delivery, revoke', async () => {
  const loft = await Loft.start();
  try {
    // alice's folders: Projects (shared to change), Projects/Done (a
    // target), Inbox (shared to read only)
    await asAlice(loft, `c.create('Projects')
c.create('Projects/Done')
for m in args:
    c.append('Projects', None, None, m.encode())`,
    ['Plan one', 'Plan two'].map((subject) => message({ from: 'Carol Client <carol@example.org>', subject })));
    await loft.deliver('alice@example.test', message({ from: 'Dan Boss <dan@example.org>', subject: 'Inbox memo' }));
    await loft.deliver('bob@example.test', message({ subject: 'Bob own mail' }));

    const { page } = await newPage(loft);
    await signIn(page, loft, 'bob@example.test');
    await row(page, /Bob own mail/).waitFor();
    const nav = page.getByRole('navigation', { name: 'Folders' });
    const sharedGroup = nav.getByRole('group', { name: 'Shared with me' });
    assert.equal(await sharedGroup.count(), 0, 'nothing shared yet');

    // alice shares over IMAP (RFC 4314): Projects and Done to change,
    // her Inbox to read; bob's page shows them without a reload
    await asAlice(loft, `c._simple_command('SETACL', 'Projects', 'bob@example.test', 'lrswite')
c._simple_command('SETACL', '"Projects/Done"', 'bob@example.test', 'lrswite')
c._simple_command('SETACL', 'INBOX', 'bob@example.test', 'lrs')`);
    const owner = sharedGroup.getByRole('group', { name: /alice/ });
    await owner.getByRole('link', { name: /^Projects/ }).waitFor({ timeout: 15000 });
    await owner.getByRole('link', { name: /^Inbox/ }).waitFor({ timeout: 15000 });
    // bob's own folders stay first and his own
    await nav.getByRole('link', { name: /^Inbox/ }).first().waitFor();
    await axe(page, 'folders with Shared with me');

    // read: open Projects, the rows are alice's
    await owner.getByRole('link', { name: /^Projects/ }).click();
    await row(page, /Carol Client.*Plan one/).waitFor();
    assert.equal(await row(page, /Bob own mail/).count(), 0, "bob's own mail is not in alice's folder");
    await row(page, /Plan one/).click();
    const reader = page.getByRole('region', { name: 'Message' });
    await reader.getByText('Plan one', { exact: true }).first().waitFor();
    // per-user \Seen: bob read it; alice's own flags do not say so
    await until(async () => !/unread/.test(await row(page, /Plan one/).getAttribute('aria-label')), 5000, 'read for bob');
    // rights lrswite: flag, delete, move are offered
    const toolbar = page.getByRole('toolbar', { name: 'Message actions' });
    for (const name of ['Flag', 'Delete', 'Move to']) await toolbar.getByRole('button', { name, exact: true }).waitFor();
    assert.equal(await toolbar.getByRole('button', { name: 'Junk' }).count(), 0, 'no Junk in a shared folder');
    await toolbar.getByRole('button', { name: 'Flag', exact: true }).click();
    await until(async () => /\\Flagged/.test(await flagsOf(loft, 'Projects', 'Plan one') || ''), 10000, 'flag seen by alice over IMAP');
    const aliceFlags = await flagsOf(loft, 'Projects', 'Plan one');
    assert.ok(!/\\Seen/.test(aliceFlags), `bob's reading is his own (per-user \\Seen): ${aliceFlags}`);

    // move within alice's account: Plan two into Projects/Done
    await row(page, /Plan two/).click();
    await toolbar.getByRole('button', { name: 'Move to' }).click();
    const menu = page.getByRole('group', { name: 'Move to folder' });
    assert.equal(await menu.getByRole('button', { name: /^Archive$|^Trash$/ }).count(), 0, "no folder of bob's own in the menu");
    await menu.getByRole('button', { name: 'Projects/Done' }).click();
    await until(async () => (await flagsOf(loft, 'Projects/Done', 'Plan two')) !== null, 10000, 'moved into Projects/Done (IMAP)');
    assert.equal(await flagsOf(loft, 'Projects', 'Plan two'), null, 'gone from Projects');
    await row(page, /Plan two/).waitFor({ state: 'detached' });

    // alice's Inbox, shared to read (lrs): no Flag, Delete or Move
    await owner.getByRole('link', { name: /^Inbox/ }).click();
    await row(page, /Inbox memo/).click();
    await reader.getByText('Inbox memo', { exact: true }).first().waitFor();
    await toolbar.getByRole('button', { name: /^Mark as (un)?read$/ }).waitFor();
    for (const name of ['Flag', 'Unflag', 'Delete', 'Move to', 'Archive']) {
      assert.equal(await toolbar.getByRole('button', { name, exact: true }).count(), 0, `${name} is hidden with rights lrs`);
    }
    // the keyboard cannot do it either: "#" says why, nothing changes
    await page.locator('body').press('#');
    await page.getByRole('alert').filter({ hasText: /owner did not allow/ }).waitFor();
    assert.ok(await flagsOf(loft, 'INBOX', 'Inbox memo') !== null, 'still in alice\'s Inbox');
    await axe(page, 'a read-only shared folder');
    await shot(page, 'shared-with-me');

    // a delivery to alice shows in bob's view of her Inbox, live
    const t0 = Date.now();
    await loft.deliver('alice@example.test', message({ from: 'Eve Partner <eve@example.org>', subject: 'Live to alice' }));
    await row(page, /Eve Partner.*Live to alice.*unread/).waitFor({ timeout: Math.max(LIVE_MS * 3, 10000) });
    const ms = Date.now() - t0;
    console.log(`# delivery to the owner -> viewer's row: ${ms} ms`);
    assert.ok(ms <= LIVE_MS + 1000, `delivery shown after ${ms} ms`);

    // alice takes her Inbox back: it leaves bob's tree and he is back in
    // his own Inbox
    await asAlice(loft, `c._simple_command('DELETEACL', 'INBOX', 'bob@example.test')`);
    await owner.getByRole('link', { name: /^Inbox/ }).waitFor({ state: 'detached', timeout: 15000 });
    await row(page, /Bob own mail/).waitFor();
    await owner.getByRole('link', { name: /^Projects/ }).waitFor();
    assert.deepEqual(page.errors, []);
  } finally { await loft.stop(); }
});
