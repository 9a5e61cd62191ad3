// Drives jmap-jam (a real JMAP client library from npm) and the npm
// `eventsource` package against Loft: a client's day. Prints one JSON
// object with what it saw; test_jmap_jam.py checks it.
// Usage: node jmap-jam-check.mjs SESSION_URL TOKEN
import JamClient from 'jmap-jam';
import { EventSource as ES } from 'eventsource';

const [sessionUrl, token] = process.argv.slice(2);
// jmap-jam opens `new EventSource(url)`: give it one that authenticates
globalThis.EventSource = class extends ES {
    constructor(url, init) {
        super(url, { ...init, fetch: (u, i) => fetch(u, {
            ...i, headers: { ...i.headers, Authorization: `Bearer ${token}` } }) });
    }
};

function raw(msgid, subject) {
    return `From: Dana <dana@remote.test>\r\nTo: alice@example.test\r\n` +
        `Subject: ${subject}\r\nMessage-ID: <${msgid}>\r\n` +
        `Date: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\nImported over JMAP.\r\n`;
}

async function main() {
    const out = {};
    const jam = new JamClient({ sessionUrl, bearerToken: token });
    const accountId = await jam.getPrimaryAccount();
    out.accountId = accountId;

    // list
    const [mb] = await jam.api.Mailbox.get({ accountId, ids: null });
    const role = r => mb.list.find(m => m.role === r).id;
    out.mailboxes = mb.list.map(m => ({ name: m.name, role: m.role,
        total: m.totalEmails, unread: m.unreadEmails }));

    // query + get, one request with a result reference
    const [res] = await jam.requestMany(t => {
        const q = t.Email.query({ accountId, filter: { inMailbox: role('inbox') },
            sort: [{ property: 'receivedAt', isAscending: false }],
            calculateTotal: true });
        const g = t.Email.get({ accountId, ids: q.$ref('/ids'),
            properties: ['subject', 'from', 'keywords', 'preview', 'mailboxIds'] });
        return { q, g };
    });
    out.total = res.q.total;
    out.subjects = res.g.list.map(e => e.subject);
    const first = res.g.list[0].id;

    // keywords and a move
    const [set1] = await jam.api.Email.set({ accountId, update: {
        [first]: { 'keywords/$seen': true, 'keywords/$flagged': true } } });
    out.keywordsUpdated = Object.keys(set1.updated || {});
    const second = res.g.list[1].id;
    const [mv] = await jam.api.Email.set({ accountId, update: {
        [second]: { mailboxIds: { [role('archive')]: true } } } });
    out.moved = Object.keys(mv.updated || {});

    // push: an EventSource open while we import
    const sse = await jam.connectEventSource({ types: '*', ping: 0, closeafter: 'no' });
    const pushed = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no StateChange in 5 s')), 5000);
        sse.addEventListener('state', ev => {
            clearTimeout(timer);
            resolve({ at: Date.now(), sc: JSON.parse(ev.data) });
        });
    });
    await new Promise(r => setTimeout(r, 300));

    // upload and import
    const up = await jam.uploadBlob(accountId,
        new Blob([raw('jam-import@remote.test', 'jam import')], { type: 'message/rfc822' }));
    out.uploaded = up.size > 0 && typeof up.blobId === 'string';
    const t0 = Date.now();
    const [imp] = await jam.api.Email.import({ accountId, emails: {
        i: { blobId: up.blobId, mailboxIds: { [role('inbox')]: true }, keywords: {} } } });
    out.imported = imp.created && imp.created.i ? imp.created.i.id : null;
    const { at, sc } = await pushed;
    out.pushMs = at - t0;
    out.pushedTypes = Object.keys(sc.changed[accountId] || {});
    sse.close();

    // download what was imported
    const dl = await jam.downloadBlob({ accountId, blobId: imp.created.i.blobId,
        mimeType: 'message/rfc822', fileName: 'mail.eml' });
    out.downloaded = (await dl.text()).includes('Imported over JMAP.');

    // submit: a draft, then EmailSubmission with onSuccessUpdateEmail
    const [ids] = await jam.api.Identity.get({ accountId, ids: null });
    const identity = ids.list.find(i => i.email === 'alice@example.test');
    const [draft] = await jam.api.Email.set({ accountId, create: { d: {
        mailboxIds: { [role('drafts')]: true }, keywords: { $draft: true, $seen: true },
        from: [{ name: 'Alice', email: 'alice@example.test' }],
        to: [{ name: 'Bob', email: 'bob@example.test' }],
        subject: 'Sent by jmap-jam',
        bodyValues: { b: { value: 'Hello Bob, from jmap-jam.' } },
        textBody: [{ partId: 'b', type: 'text/plain' }] } } });
    // the response to the call is the EmailSubmission/set one; the
    // implicit Email/set (RFC 8621 7.5) follows under the same call id
    const [sub] = await jam.api.EmailSubmission.set({ accountId,
        create: { s: { identityId: identity.id, emailId: draft.created.d.id } },
        onSuccessUpdateEmail: { '#s': {
            [`mailboxIds/${role('drafts')}`]: null,
            [`mailboxIds/${role('sent')}`]: true, 'keywords/$draft': null } } });
    out.submitted = Object.keys(sub.created || {});
    out.notSubmitted = sub.notCreated || null;
    const [sent] = await jam.api.Email.query({ accountId,
        filter: { inMailbox: role('sent') } });
    out.inSent = sent.ids.length;
    console.log(JSON.stringify(out));
}

main().catch(e => {
    console.log(JSON.stringify({ error: String(e && e.stack || JSON.stringify(e)) }));
});
