// Search (the query syntax, live results with Email/queryChanges,
// SearchSnippet highlights), drag and drop onto folders, multi-select,
// undo, empty Trash, and the keyboard shortcuts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loft, newPage, signIn, message, closeBrowser, row, until, SLOW, axe } from './loft.mjs';

after(closeBrowser);
const rows = async (page) => (await page.getByRole('grid', { name: 'Messages' }).getByRole('row').evaluateAll(
  (els) => els.map((e) => e.getAttribute('aria-label') || ''))).filter((l) => l && l !== 'Loading');

test('search: syntax, snippets, live results', async () => {
  const loft = await Loft.start();
  try {
    await loft.deliver('alice@example.test', message({ from: 'Carol <carol@example.org>', subject: 'Invoice 2024-001', body: 'Please pay the invoice by Friday.' }));
    await loft.deliver('alice@example.test', message({ from: 'Dan <dan@example.org>', subject: 'Lunch', body: 'Pizza or sushi?' }));
    await loft.deliver('alice@example.test', message({ from: 'Carol <carol@example.org>', subject: 'Re: Lunch', body: 'Sushi, and bring the invoice.' }));
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await row(page, /Re: Lunch/).waitFor();
    const box = page.getByRole('searchbox', { name: 'Search mail' });
    await box.fill('from:carol');
    await until(async () => { const r = await rows(page); return r.length === 2 && r.every((l) => l.startsWith('Carol')); }, 5000, 'from:carol');
    await box.fill('subject:invoice');
    await until(async () => { const r = await rows(page); return r.length === 1 && /Invoice 2024-001/.test(r[0]); }, 5000, 'subject:invoice');
    await box.fill('invoice');
    await until(async () => (await rows(page)).length === 2, 5000, 'free text in body and subject');
    // SearchSnippet highlights
    await page.getByRole('grid', { name: 'Messages' }).locator('mark').first().waitFor();
    assert.match(await page.getByRole('grid', { name: 'Messages' }).locator('mark').first().innerText(), /invoice/i);
    await axe(page, 'search results');
    // live: a new match arrives while the search is open (queryChanges)
    await loft.deliver('alice@example.test', message({ from: 'Eve <eve@example.org>', subject: 'Another invoice', body: 'x' }));
    await until(async () => (await rows(page)).some((l) => /Another invoice/.test(l)), 1500 * SLOW, 'live search result');
    // is:unread after reading one, in:folder, has:attachment
    await box.fill('is:unread from:dan');
    await until(async () => { const r = await rows(page); return r.length === 1 && /Lunch/.test(r[0]); }, 5000, 'is:unread');
    await box.fill('in:Archive');
    await until(async () => (await page.getByRole('grid', { name: 'Messages' }).getByText('No messages match.').count()) === 1, 5000, 'in:Archive empty');
    await box.fill('');
    await until(async () => (await rows(page)).length === 4, 5000, 'back to Inbox');
  } finally { await loft.stop(); }
});

test('drag and drop, multi-select, undo, empty Trash', async () => {
  const loft = await Loft.start();
  try {
    for (const s of ['One', 'Two', 'Three', 'Four']) await loft.deliver('alice@example.test', message({ subject: `Item ${s}` }));
    await loft.py(`c = env.imap_login('alice@example.test')
c.create('Projects')
c.subscribe('Projects')
c.logout()`);
    const { page } = await newPage(loft);
    await signIn(page, loft);
    const nav = page.getByRole('navigation', { name: 'Folders' });
    await row(page, /Item One/).waitFor();
    await row(page, /Item One/).dragTo(nav.getByRole('link', { name: /^Projects/ }));
    await until(async () => (await row(page, /Item One/).count()) === 0, 3000, 'dragged row leaves');
    const inProjects = await until(async () => loft.py(`c = env.imap_login('alice@example.test')
c.select('Projects')
typ, d = c.search(None, 'SUBJECT', '"Item One"')
result = len(d[0].split())
c.logout()`), 5000, 'moved on the server');
    assert.equal(inProjects, 1);
    // ctrl-click two rows, shift-click a range; then delete (to Trash) and undo
    await row(page, /Item Two/).click({ modifiers: ['Control'] });
    await row(page, /Item Four/).click({ modifiers: ['Control'] });
    assert.equal(await page.getByRole('grid', { name: 'Messages' }).locator('[aria-selected="true"]').count(), 2);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await until(async () => (await rows(page)).length === 1, 3000, 'two deleted');
    await nav.getByRole('link', { name: /^Trash 2 unread/ }).waitFor();
    await page.getByRole('button', { name: 'Undo', exact: true }).click();
    await until(async () => (await rows(page)).length === 3, 3000, 'undo brings them back');
    await nav.getByRole('link', { name: /^Inbox 3 unread/ }).waitFor();
    // delete one for real: to Trash, then empty Trash
    await row(page, /Item Three/).click();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await nav.getByRole('link', { name: /^Trash/ }).click();
    await row(page, /Item Three/).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Empty Trash' }).click();
    await until(async () => (await rows(page)).length === 0, 3000, 'Trash emptied');
    const left = await loft.py(`c = env.imap_login('alice@example.test')
c.select('Trash')
typ, d = c.search(None, 'ALL')
result = len(d[0].split())
c.logout()`);
    assert.equal(left, 0);
    // deleted for good, yet kept a while: "Recover deleted messages" in Trash
    await page.getByRole('button', { name: 'Recover deleted messages' }).click();
    const dlg = page.getByRole('dialog', { name: 'Recover deleted messages' });
    const kept = dlg.getByRole('checkbox', { name: /Item Three/ });
    await kept.waitFor();
    await axe(page, 'recover deleted messages');
    await kept.check();
    await dlg.getByRole('button', { name: 'Recover selected' }).click();
    await dlg.getByText('There are no deleted messages to recover.').waitFor();
    await dlg.getByRole('button', { name: 'Close' }).click();
    await row(page, /Item Three/).waitFor();
    const back = await until(async () => loft.py(`c = env.imap_login('alice@example.test')
c.select('Trash')
typ, d = c.search(None, 'SUBJECT', '"Item Three"')
result = len(d[0].split())
c.logout()`), 5000, 'recovered on the server');
    assert.equal(back, 1);
  } finally { await loft.stop(); }
});

test('keyboard shortcuts and the help overlay', async () => {
  const loft = await Loft.start();
  try {
    for (const s of ['Kilo', 'Lima', 'Mike']) await loft.deliver('alice@example.test', message({ subject: `Key ${s}` }));
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await row(page, /Key Mike/).waitFor();
    await page.locator('body').click({ position: { x: 5, y: 700 } }).catch(() => {});
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await axe(page, 'help overlay');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).getByRole('button', { name: 'Close' }).click();
    await page.keyboard.press('j');       // first row (newest: Mike)
    await page.keyboard.press('j');       // Lima
    await page.keyboard.press('o');
    const msg = page.getByRole('region', { name: 'Message' });
    await msg.getByText('Key Lima', { exact: true }).waitFor();
    await page.keyboard.press('k');       // open the previous one
    await msg.getByText('Key Mike', { exact: true }).waitFor();
    await page.keyboard.press('e');       // archive
    await until(async () => (await row(page, /Key Mike/).count()) === 0, 3000, 'archived by e');
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Search mail');
    await page.keyboard.press('Escape');
    await page.keyboard.press('c');
    await page.getByRole('dialog', { name: 'New message' }).waitFor();
    await page.getByRole('dialog', { name: 'New message' }).getByRole('button', { name: 'Close' }).click();
    await page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Archive/ }).click();
    await row(page, /Key Mike/).waitFor();
    await page.keyboard.press('g');
    await page.keyboard.press('i');
    await row(page, /Key Lima/).waitFor();
    await page.keyboard.press('j');
    await page.keyboard.press('#');
    await until(async () => (await row(page, /Key Lima/).count()) === 0, 3000, 'deleted by #');
  } finally { await loft.stop(); }
});
