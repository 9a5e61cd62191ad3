#!/usr/bin/env python3
"""End to end: a mail client built on imapflow (npm, pinned in
tests/interop/package-lock.json) over IMAPS with CONDSTORE/QRESYNC.

Mail arrives over LMTP (a multipart message with an attachment, RFC 2047
headers); the client lists folders with special-use and STATUS, creates a
folder with a non-ASCII name (sent as modified UTF-7, checked with imaplib
on the wire), fetches the structure and then one part, downloads the
attachment decoded, searches with non-ASCII text, flags, moves to Trash,
appends to Sent, hears an LMTP delivery in IDLE, and reopens the mailbox
with QRESYNC to get the changes another device made while it was away.
"""

import json
import os
import re
import subprocess
import sys

from loftenv import Loft, Results, SLOW, client_tls_context

R = Results()
HERE = os.path.dirname(os.path.abspath(__file__))
ATTACHMENT = bytes(range(256)) * 8

MSG = (b'From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>\r\n'
       b'To: alice@example.test\r\n'
       b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_dem_M=C3=A4rchenwald?=\r\n'
       b'Date: Fri, 20 Nov 2026 10:00:00 +0100\r\n'
       b'Message-ID: <flow1@example.org>\r\n'
       b'MIME-Version: 1.0\r\n'
       b'Content-Type: multipart/mixed; boundary="xyz"\r\n\r\n'
       b'--xyz\r\nContent-Type: text/plain; charset=utf-8\r\n'
       b'Content-Transfer-Encoding: quoted-printable\r\n\r\n'
       b'Sch=C3=B6ne Gr=C3=BC=C3=9Fe aus dem Wald.\r\n'
       b'--xyz\r\nContent-Type: application/octet-stream; name="daten.bin"\r\n'
       b'Content-Disposition: attachment; filename="daten.bin"\r\n'
       b'Content-Transfer-Encoding: base64\r\n\r\n'
       + __import__('base64').encodebytes(ATTACHMENT).replace(b'\n', b'\r\n')
       + b'--xyz--\r\n')

JS = r"""
'use strict';
const { ImapFlow } = require('imapflow');
const { execFileSync } = require('child_process');
const [port, user, pass, deliverCmd] = JSON.parse(process.argv[process.argv.length - 1]);
function client() {
    return new ImapFlow({ host: '127.0.0.1', port: Number(port), secure: true,
        auth: { user, pass }, logger: false, qresync: true,
        tls: { rejectUnauthorized: false } });
}
async function streamToBuffer(s) {
    const chunks = []; for await (const c of s) chunks.push(c); return Buffer.concat(chunks);
}
async function main() {
    const out = {};
    const c = client();
    await c.connect();
    out.enabled = [...(c.enabled || [])];
    const list = await c.list({ statusQuery: { messages: true, unseen: true } });
    out.folders = list.map(f => [f.path, f.specialUse || null,
                                 f.status ? f.status.messages : null]);
    const made = await c.mailboxCreate(['Reisen', 'Köln']);
    out.created = made.path;
    let lock = await c.getMailboxLock('INBOX');
    out.uidValidity = String(c.mailbox.uidValidity);
    out.highestModseq = String(c.mailbox.highestModseq);
    const m = await c.fetchOne('*', { uid: true, envelope: true, bodyStructure: true, flags: true });
    out.subject = m.envelope.subject;
    out.from = m.envelope.from[0].name;
    out.parts = m.bodyStructure.childNodes.map(p => [p.part, p.type, p.disposition || null,
        p.dispositionParameters ? p.dispositionParameters.filename : null]);
    const one = await c.fetchOne(String(m.uid), { bodyParts: ['1'] }, { uid: true });
    out.part1 = one.bodyParts.get('1').toString('utf8');
    const dl = await c.download(String(m.uid), '2', { uid: true });
    out.attachment = (await streamToBuffer(dl.content)).toString('base64');
    out.seenAfterPeek = [...(await c.fetchOne(String(m.uid), { flags: true }, { uid: true })).flags];
    out.searchBody = await c.search({ body: 'schöne grüße' }, { uid: true });
    out.searchSubject = await c.search({ subject: 'Märchenwald' }, { uid: true });
    out.searchFrom = await c.search({ from: 'müller' }, { uid: true });
    out.searchSince = await c.search({ since: new Date('2026-01-01') }, { uid: true });
    await c.messageFlagsAdd(String(m.uid), ['\\Seen', '\\Flagged'], { uid: true });
    out.flags = [...(await c.fetchOne(String(m.uid), { flags: true }, { uid: true })).flags]
        .filter(f => f !== '\\Recent').sort();
    const app = await c.append('Sent', 'From: alice@example.test\r\nTo: joerg@example.org\r\n' +
        'Subject: Re: Grüße\r\nMessage-ID: <flow-sent@example.test>\r\n\r\nDanke!\r\n', ['\\Seen']);
    out.appendSent = [app.destination, app.uid != null];

    // IDLE hears a delivery over LMTP
    const heard = new Promise(resolve => c.on('exists', d => resolve(d.count)));
    const idle = c.idle();
    await new Promise(r => setTimeout(r, 200));
    const t0 = Date.now();
    execFileSync(deliverCmd[0], deliverCmd.slice(1));
    out.idleCount = await Promise.race([heard,
        new Promise(r => setTimeout(() => r('timeout'), 5000))]);
    out.idleMs = Date.now() - t0;

    const moved = await c.messageMove(String(m.uid), '\\Trash', { uid: true }).catch(e => null)
        || await c.messageMove(String(m.uid), 'Trash', { uid: true });
    out.moved = moved ? moved.destination : null;
    const modseqBefore = c.mailbox.highestModseq;
    lock.release();
    await c.logout();

    // another device changes things while this one is away
    const o = client();
    await o.connect();
    lock = await o.getMailboxLock('INBOX');
    await o.messageFlagsAdd('1', ['\\Answered']);
    await o.messageDelete('2');
    lock.release();
    await o.logout();

    const d = client();
    const vanished = [];
    const flagged = [];
    d.on('expunge', e => vanished.push(e.uid || e.seq));
    d.on('flags', f => flagged.push([f.uid, [...f.flags]]));
    await d.connect();
    // what a client that keeps a cache does: SELECT ... (QRESYNC (uv modseq))
    const mb = await d.mailboxOpen('INBOX', { uidValidity: BigInt(out.uidValidity),
                                              changedSince: BigInt(modseqBefore) });
    out.reopened = { exists: mb.exists, vanished, flagged, qresync: !!mb.qresync,
                     modseqGrew: BigInt(mb.highestModseq) > BigInt(modseqBefore) };
    await d.mailboxClose();
    const status = await d.status('Trash', { messages: true });
    out.trash = status.messages;
    await d.logout();
    return out;
}
main().then(o => console.log(JSON.stringify(o)))
      .catch(e => { console.log(JSON.stringify({ error: String(e && e.stack || e) })); });
"""

DELIVER = r"""
import smtplib, sys
c = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
c.ehlo('mta')
c.sendmail('x@example.org', ['alice@example.test'],
           b'From: x@example.org\r\nSubject: while idling\r\nMessage-ID: <flow-idle@example.org>\r\n\r\nhi\r\n')
c.quit()
"""


def lmtp(env, data):
    c = env.lmtp()
    c.ehlo('mta')
    c.sendmail('joerg@example.org', ['alice@example.test'], data)
    c.quit()


def main():
    if not os.path.isdir(os.path.join(HERE, 'node_modules', 'imapflow')):
        print('imapflow is not installed: run `npm ci` in tests/interop')
        R.check('imapflow installed', False)
        return R.finish()
    with Loft() as env:
        lmtp(env, MSG)
        lmtp(env, b'From: a@example.org\r\nSubject: second\r\n\r\nsecond\r\n')
        lmtp(env, MSG.replace(b'<flow1@', b'<flow3@'))
        deliver = [sys.executable, '-c', DELIVER, str(env.port('lmtp'))]
        args = json.dumps([env.port('imaps'), 'alice@example.test', 'tea-party-rabbit-hole', deliver])
        p = subprocess.run(['node', '-e', JS, '--', args], cwd=HERE,
                           env=dict(os.environ, NODE_PATH=os.path.join(HERE, 'node_modules')),
                           capture_output=True, text=True, timeout=60 * SLOW)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out = {'error': 'no JSON: %r %r' % (p.stdout[-500:], p.stderr[-2000:])}
        R.check('imapflow ran', 'error' not in out, out.get('error'))
        if 'error' in out:
            return R.finish()
        R.check('QRESYNC enabled', 'QRESYNC' in out['enabled'] or
                'CONDSTORE' in out['enabled'], out['enabled'])
        folders = {f[0]: f for f in out['folders']}
        R.check('special-use folders', all(folders.get(n, [0, None])[1] == u for n, u in (
            ('Sent', '\\Sent'), ('Drafts', '\\Drafts'), ('Trash', '\\Trash'),
            ('Junk', '\\Junk'), ('Archive', '\\Archive'), ('INBOX', '\\Inbox'))), folders)
        R.check('STATUS in LIST', folders.get('INBOX', [0, 0, None])[2] == 3, folders)
        R.check('non-ASCII folder created', out['created'] == 'Reisen/Köln', out['created'])
        R.check('decoded subject', out['subject'] == 'Grüße aus dem Märchenwald', out['subject'])
        R.check('decoded from', out['from'] == 'Jörg Müller', out['from'])
        R.check('structure', out['parts'] == [['1', 'text/plain', None, None],
                                              ['2', 'application/octet-stream', 'attachment',
                                               'daten.bin']], out['parts'])
        R.check('part 1 only', out['part1'] == 'Sch=C3=B6ne Gr=C3=BC=C3=9Fe aus dem Wald.',
                out['part1'])
        import base64
        R.check('attachment downloaded', base64.b64decode(out['attachment']) == ATTACHMENT,
                len(out['attachment']))
        R.check('peeks left it unseen', '\\Seen' not in out['seenAfterPeek'], out['seenAfterPeek'])
        R.check('search body (QP, non-ASCII)', out['searchBody'] == [1, 3], out['searchBody'])
        R.check('search subject (RFC 2047)', out['searchSubject'] == [1, 3], out['searchSubject'])
        R.check('search from name', out['searchFrom'] == [1, 3], out['searchFrom'])
        R.check('search since', out['searchSince'] == [1, 2, 3], out['searchSince'])
        R.check('flags', out['flags'] == ['\\Flagged', '\\Seen'], out['flags'])
        R.check('append to Sent', out['appendSent'] == ['Sent', True], out['appendSent'])
        R.check('IDLE heard the LMTP delivery', out['idleCount'] == 4, out['idleCount'])
        print('imapflow: delivery to EXISTS in %d ms (LMTP client start included)' % out['idleMs'])
        R.check('moved to Trash', out['moved'] == 'Trash', out['moved'])
        ro = out['reopened']
        R.check('reopen: 2 left', ro['exists'] == 2, ro)
        R.check('reopen: QRESYNC vanished uid 2', 2 in ro['vanished'], ro)
        R.check('reopen: flag change reported', any(
            u == 1 and '\\Answered' in f for u, f in ro['flagged']), ro)
        R.check('reopen: modseq grew', ro['modseqGrew'], ro)
        R.check('reopen: QRESYNC accepted', ro['qresync'], ro)
        R.check('Trash has the moved message', out['trash'] == 1, out['trash'])

        # what went over the wire for the folder name: modified UTF-7
        import imaplib
        c = imaplib.IMAP4_SSL('127.0.0.1', env.port('imaps'), ssl_context=client_tls_context())
        c.login('alice@example.test', 'tea-party-rabbit-hole')
        typ, data = c.list('Reisen/', '*')
        R.check('stored as mUTF-7', data == [b'(\\HasNoChildren) "/" "Reisen/K&APY-ln"'], data)
        c.logout()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
