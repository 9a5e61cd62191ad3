// Compose: a reply found in Sent over IMAP (In-Reply-To, References),
// an attachment with its upload progress reaching the recipient, undo
// send, and a draft reopened in a second browser with exactly one copy
// on the server after every save.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loft, newPage, signIn, message, closeBrowser, row, until, SLOW, axe, settings, shot } from './loft.mjs';

after(closeBrowser);

const imapFetch = (loft, user, mailbox, crit) => loft.py(`c = env.imap_login(args[0])
c.select(args[1])
typ, d = c.uid('SEARCH', *args[2])
result = []
for n in d[0].split():
    # a draft the webmail replaced between SEARCH and FETCH is gone: the
    # server answers with no data for it (RFC 9051 7.4.1), so it is left out
    typ, m = c.uid('FETCH', n, '(FLAGS BODY.PEEK[])')
    if typ == 'OK' and m and isinstance(m[0], tuple):
        result.append({'flags': m[0][0].decode(), 'raw': m[0][1].decode('utf-8', 'replace')})
c.logout()`, [user, mailbox, crit]);

test('reply: found in Sent over IMAP with In-Reply-To and References', async () => {
  const loft = await Loft.start();
  try {
    await settings(loft, { undoSendSeconds: 1 });
    await loft.deliver('alice@example.test', message({ from: 'Bob <bob@example.test>', subject: 'Plans',
      messageId: '<plans-1@example.test>', headers: 'References: <earlier@example.test>\r\n', body: 'Dinner at eight?' }));
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await row(page, /Plans/).click();
    await page.getByRole('region', { name: 'Message' }).getByText('Dinner at eight?').waitFor();
    await page.getByRole('button', { name: 'Reply', exact: true }).click();
    const dlg = page.getByRole('dialog', { name: /Compose: Re: Plans/ });
    await dlg.waitFor();
    assert.equal(await dlg.getByRole('combobox', { name: 'To' }).inputValue(), 'Bob <bob@example.test>');
    assert.equal(await dlg.getByRole('textbox', { name: 'Subject' }).inputValue(), 'Re: Plans');
    await dlg.getByRole('textbox', { name: 'Message body' }).click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.type('Eight is fine.');
    await axe(page, 'compose');
    await shot(page, 'compose');
    await dlg.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByRole('button', { name: 'Undo send' }).waitFor();
    await until(async () => /Message sent/.test(await page.getByRole('status').first().innerText()), 15000, 'sent');
    const sent = await until(async () => { const r = await imapFetch(loft, 'alice@example.test', 'Sent', ['SUBJECT', '"Re: Plans"']); return r.length ? r : null; }, 10000, 'copy in Sent');
    assert.equal(sent.length, 1);
    assert.match(sent[0].raw, /^In-Reply-To: <plans-1@example\.test>/m);
    assert.match(sent[0].raw, /^References: <earlier@example\.test>\s+<plans-1@example\.test>/m);
    assert.match(sent[0].raw, /Eight is fine\./);
    assert.match(sent[0].flags, /\\Seen/);
    assert.doesNotMatch(sent[0].flags, /\\Draft/);
    const drafts = await imapFetch(loft, 'alice@example.test', 'Drafts', ['ALL']);
    assert.equal(drafts.length, 0, 'the draft left Drafts');
    const orig = await imapFetch(loft, 'alice@example.test', 'INBOX', ['SUBJECT', '"Plans"']);
    assert.match(orig[0].flags, /\\Answered/);
    // bob (local) received it
    const got = await until(async () => { const r = await imapFetch(loft, 'bob@example.test', 'INBOX', ['SUBJECT', '"Re: Plans"']); return r.length ? r : null; }, 15000, 'delivery to bob');
    assert.match(got[0].raw, /Eight is fine\./);
    // forward as an attachment: the original whole, as message/rfc822
    await row(page, /Plans/).first().click();
    await page.getByRole('region', { name: 'Message' }).getByText('Dinner at eight?').waitFor();
    await page.getByRole('button', { name: 'Forward as attachment' }).click();
    const fw = page.getByRole('dialog', { name: /Compose: Fwd: Plans/ });
    await fw.getByRole('combobox', { name: 'To' }).fill('bob@example.test');
    await fw.getByRole('button', { name: 'Send', exact: true }).click();
    const fwd = await until(async () => { const r = await imapFetch(loft, 'bob@example.test', 'INBOX', ['SUBJECT', '"Fwd: Plans"']); return r.length ? r : null; }, 15000, 'forward to bob');
    assert.match(fwd[0].raw, /Content-Type: message\/rfc822/i);
    assert.match(fwd[0].raw, /Message-ID: <plans-1@example\.test>/);
  } finally { await loft.stop(); }
});

test('compose with an attachment (progress), undo send first', async () => {
  const loft = await Loft.start();
  try {
    await settings(loft, { undoSendSeconds: 3, compose: 'plain' });
    const { page } = await newPage(loft);
    await signIn(page, loft);
    await page.getByRole('button', { name: 'Compose' }).click();
    const dlg = page.getByRole('dialog', { name: /New message|Compose/ });
    await dlg.getByRole('combobox', { name: 'To' }).fill('bob@example.test');
    await dlg.getByRole('textbox', { name: 'Subject' }).fill('The photos');
    await dlg.getByRole('textbox', { name: 'Message body' }).fill('Here they are.');
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    // the progress bar: seen by an observer installed before the upload
    await page.evaluate(() => {
      window.__progress = 0;
      new MutationObserver(() => { if (document.querySelector('progress[aria-label^="Uploading"]')) window.__progress++; })
        .observe(document.body, { childList: true, subtree: true, attributes: true });
    });
    await dlg.locator('input[type=file]').setInputFiles([{ name: 'holiday.bin', mimeType: 'application/octet-stream', buffer: big }]);
    await dlg.getByRole('button', { name: 'Remove holiday.bin' }).waitFor({ timeout: 30000 * SLOW });
    assert.ok(await page.evaluate(() => window.__progress) > 0, 'an upload progress bar was shown');
    // undo within the window: nothing goes out, the message is open again
    await dlg.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByRole('button', { name: 'Undo send' }).click();
    const again = page.getByRole('dialog', { name: /Compose: The photos/ });
    await again.waitFor();
    assert.equal(await again.getByRole('textbox', { name: 'Subject' }).inputValue(), 'The photos');
    await page.waitForTimeout(3500 * SLOW);
    assert.equal((await imapFetch(loft, 'bob@example.test', 'INBOX', ['ALL'])).length, 0, 'undone: nothing sent');
    await again.getByRole('button', { name: 'Send', exact: true }).click();
    const got = await until(async () => { const r = await imapFetch(loft, 'bob@example.test', 'INBOX', ['SUBJECT', '"The photos"']); return r.length ? r : null; }, 20000, 'delivery');
    assert.match(got[0].raw, /filename="?holiday\.bin"?/);
    assert.ok(got[0].raw.length > 4 * 1024 * 1024, 'the 3 MB attachment is there (base64)');
    const sent = await imapFetch(loft, 'alice@example.test', 'Sent', ['SUBJECT', '"The photos"']);
    assert.equal(sent.length, 1);
  } finally { await loft.stop(); }
});

test('a draft reopens in a second browser; each save leaves exactly one', async () => {
  const loft = await Loft.start();
  try {
    const a = await newPage(loft);
    await signIn(a.page, loft);
    await a.page.getByRole('button', { name: 'Compose' }).click();
    const dlg = a.page.getByRole('dialog', { name: /New message|Compose/ });
    await dlg.getByRole('combobox', { name: 'To' }).fill('carol@example.org');
    await dlg.getByRole('textbox', { name: 'Subject' }).fill('Draft across devices');
    await dlg.getByRole('textbox', { name: 'Message body' }).click();
    await a.page.keyboard.type('First version.');
    await dlg.getByText(/Draft saved/).waitFor({ timeout: 15000 * SLOW });
    await a.page.keyboard.type(' Second version.');
    await until(async () => {
      const r = await imapFetch(loft, 'alice@example.test', 'Drafts', ['ALL']);
      return r.length === 1 && r[0].raw.includes('Second version.');
    }, 15000, 'second save');
    const copies = await imapFetch(loft, 'alice@example.test', 'Drafts', ['ALL']);
    assert.equal(copies.length, 1, 'exactly one draft after two saves');
    assert.match(copies[0].flags, /\\Draft/);
    await dlg.getByRole('button', { name: 'Close' }).click();
    // the second browser
    const b = await newPage(loft);
    await signIn(b.page, loft);
    await b.page.getByRole('navigation', { name: 'Folders' }).getByRole('link', { name: /^Drafts/ }).click();
    await row(b.page, /Draft across devices/).click();
    const dlg2 = b.page.getByRole('dialog', { name: /Compose: Draft across devices/ });
    await dlg2.waitFor();
    assert.equal(await dlg2.getByRole('combobox', { name: 'To' }).inputValue(), 'carol@example.org');
    assert.match(await dlg2.getByRole('textbox', { name: 'Message body' }).innerText(), /First version\. Second version\./);
    await dlg2.getByRole('textbox', { name: 'Message body' }).click();
    await b.page.keyboard.press('Control+End');
    await b.page.keyboard.type(' Third.');
    await dlg2.getByRole('button', { name: 'Close' }).click();
    await until(async () => {
      const r = await imapFetch(loft, 'alice@example.test', 'Drafts', ['ALL']);
      return r.length === 1 && r[0].raw.includes('Third.');
    }, 15000, 'third save');
  } finally { await loft.stop(); }
});
