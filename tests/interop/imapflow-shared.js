// imapflow (a real IMAP client library) as a reader of another account's
// mailbox: NAMESPACE, LIST, STATUS, open, fetch, its own \Seen, and IDLE
// while the owner appends. Prints one JSON object;
// test_imap_shared_clients.py checks it.
// Usage: node imapflow-shared.js PORT READER PASSWORD OWNER PASSWORD
//        SHARED-PATH OWNER-PATH
'use strict';
const { ImapFlow } = require('imapflow');

const [port, user, pass, owner, ownerPass, path, ownerPath] = process.argv.slice(2);

function client(u, p) {
    return new ImapFlow({
        host: '127.0.0.1', port: Number(port), secure: false,
        auth: { user: u, pass: p }, logger: process.env.IMAPFLOW_DEBUG ? undefined : false,
        tls: { rejectUnauthorized: false },
    });
}

async function main() {
    const out = {};
    const b = client(user, pass);
    await b.connect();
    out.namespaces = b.namespaces || null;
    const list = await b.list();
    out.folders = list.map(f => ({ path: f.path, flags: [...f.flags],
                                   specialUse: f.specialUse || null }));
    const st = await b.status(path, { messages: true, unseen: true });
    out.status = { path: st.path, messages: st.messages, unseen: st.unseen };
    const lock = await b.getMailboxLock(path);
    out.exists = b.mailbox.exists;
    out.fetched = [];
    for await (const m of b.fetch('1:*', { envelope: true, flags: true, uid: true,
                                           source: true })) {
        out.fetched.push({ uid: m.uid, subject: m.envelope.subject,
                           flags: [...m.flags], size: m.source.length });
    }
    // the reader's own \Seen (per-user by default)
    await b.messageFlagsAdd('1', ['\\Seen']);
    for await (const m of b.fetch('1', { flags: true }))
        out.seenAfter = [...m.flags];

    // IDLE in the shared mailbox: the owner appends, the reader hears it
    const a = client(owner, ownerPass);
    await a.connect();
    const heard = new Promise(resolve => b.on('exists', ev => resolve(ev)));
    lock.release();
    b.idle().catch(() => {});
    const t0 = Date.now();
    await a.append(ownerPath, 'From: o@example.test\r\nSubject: while idling\r\n\r\nhi\r\n');
    // a generous bound: the push is waited for, it comes in milliseconds
    const ev = await Promise.race([heard, new Promise(r => setTimeout(() => r(null), 60000))]);
    out.idle = ev ? { count: ev.count, ms: Date.now() - t0 } : null;
    const sa = await a.status(ownerPath, { unseen: true });
    out.ownerUnseen = sa.unseen;
    await a.logout();
    await b.logout();
    console.log(JSON.stringify(out));
}

main().catch(err => {
    console.log(JSON.stringify({ error: String(err && (err.responseText || err.message || err)) }));
    process.exit(1);
});
