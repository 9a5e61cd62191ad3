// Drives imapflow (a real IMAP client library) against a Loft server and
// prints one JSON object with what it saw; test_imap_imapflow.py checks it.
// Usage: node imapflow-check.js PORT USER PASSWORD
'use strict';
const { ImapFlow } = require('imapflow');

const [port, user, pass] = process.argv.slice(2);

function client() {
    return new ImapFlow({
        host: '127.0.0.1', port: Number(port), secure: false,
        auth: { user, pass }, logger: process.env.IMAPFLOW_DEBUG ? undefined : false,
        tls: { rejectUnauthorized: false },
    });
}

function message(n) {
    return `From: Sender <s@example.test>\r\nTo: ${user}\r\nSubject: imapflow ${n}\r\n` +
        `Message-ID: <if${n}@example.test>\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n` +
        `Content-Type: text/plain\r\n\r\nHello number ${n}\r\n`;
}

async function main() {
    const out = {};
    const a = client();
    await a.connect();
    out.secure = a.secureConnection || false;
    out.capabilities = [...a.capabilities.keys()];
    const list = await a.list();
    out.folders = list.map(f => ({ path: f.path, specialUse: f.specialUse || null }));
    for (let i = 1; i <= 3; i++)
        await a.append('INBOX', message(i), ['\\Seen']);
    const lock = await a.getMailboxLock('INBOX');
    out.exists = a.mailbox.exists;
    out.fetched = [];
    for await (const m of a.fetch('1:*', { envelope: true, flags: true, uid: true,
                                           bodyStructure: true, source: true })) {
        out.fetched.push({ uid: m.uid, subject: m.envelope.subject,
                           flags: [...m.flags], type: m.bodyStructure.type,
                           size: m.source.length });
    }
    out.search = await a.search({ subject: 'imapflow 2' }, { uid: true });
    await a.messageFlagsAdd('1', ['\\Flagged']);
    const moved = await a.messageMove('3', 'Archive');
    out.moved = moved && moved.uidMap ? [...moved.uidMap.entries()] : null;

    // IDLE: a second client appends, the first hears 'exists' at once
    const b = client();
    await b.connect();
    const heard = new Promise(resolve => {
        a.on('exists', ev => resolve(ev));
        setTimeout(() => resolve(null), 3000);
    });
    lock.release();
    a.idle().catch(() => {});                      // IDLE now, not after a pause
    await new Promise(r => setTimeout(r, 300));
    const t0 = Date.now();
    await b.append('INBOX', message(4));
    const ev = await heard;
    out.idle = ev ? { count: ev.count, prevCount: ev.prevCount, ms: Date.now() - t0 } : null;
    await b.logout();
    await a.logout();
    console.log(JSON.stringify(out));
}

main().catch(err => {
    console.log(JSON.stringify({ error: String(err && (err.responseText || err.message || err)) }));
    process.exit(1);
});
