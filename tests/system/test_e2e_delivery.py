#!/usr/bin/env python3
"""End to end: real-world mail arriving over LMTP, read back over IMAP.

What an MTA (python smtplib.LMTP, as Postfix's lmtp: transport would) hands
Loft, and what the user then sees in a mail client: multipart with an
attachment, RFC 2047 and raw UTF-8 headers, HTML-only mail, a 20 MB
attachment, bare LF, user+folder@ detail delivery, an alias, several
recipients with one reply each (RFC 2033 4.2), an unknown user and an
over-quota user, whose quota shows in GETQUOTAROOT and `loftctl user show`.
"""

import base64
import email.policy
import os
import re
import subprocess
import sys
import tempfile
from email.message import EmailMessage

from loftenv import Loft, Results

R = Results()
SMTP = email.policy.SMTP


def lmtp_send(env, sender, rcpts, data):
    """One LMTP transaction; returns {rcpt: (code, text)} for every
    recipient: the RCPT reply if refused, else its own reply after DATA
    (smtplib's sendmail reads only the first of those, so do it by hand)."""
    c = env.lmtp()
    c.ehlo('mta.example.org')
    out = {}
    code, msg = c.mail(sender)
    assert code == 250, (code, msg)
    accepted = []
    for r in rcpts:
        code, msg = c.rcpt(r)
        if code == 250:
            accepted.append(r)
        else:
            out[r] = (code, msg.decode())
    if accepted:
        code, msg = c.data(data)
        out[accepted[0]] = (code, msg.decode())
        for r in accepted[1:]:
            code, msg = c.getreply()
            out[r] = (code, msg.decode())
    c.quit()
    return out


def smime_signed(tmp):
    """A real S/MIME signed message (openssl cms, multipart/signed with a
    multipart/alternative inside), CRLF line ends as an MTA hands it over;
    returns (message bytes, the signed part's bytes)."""
    key, cert = os.path.join(tmp, 'k.pem'), os.path.join(tmp, 'c.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                    '-days', '2', '-subj', '/CN=Joerg/emailAddress=joerg@example.org',
                    '-keyout', key, '-out', cert], check=True, capture_output=True)
    inner = (b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
             b'--alt\r\nContent-Type: text/plain; charset=utf-8\r\n'
             b'Content-Transfer-Encoding: quoted-printable\r\n\r\n'
             b'Signiert: Gr=C3=BC=C3=9Fe=20\r\ntrailing space \r\n'
             b'--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n'
             b'<p>Signiert</p>\r\n--alt--\r\n')
    r = subprocess.run(['openssl', 'cms', '-sign', '-binary', '-signer', cert,
                        '-inkey', key, '-from', 'joerg@example.org',
                        '-to', 'alice@example.test', '-subject', 'Signed'],
                       input=inner, check=True, capture_output=True)
    msg = re.sub(rb'(?<!\r)\n', b'\r\n', r.stdout)
    msg = msg.replace(b'\r\n\r\n', b'\r\nMessage-ID: <smime-1@example.org>\r\n\r\n', 1)
    boundary = re.search(rb'boundary="([^"]+)"', msg).group(1)
    signed = msg.split(b'--' + boundary + b'\r\n')[1][:-2]
    return msg, signed


def cms_verifies(tmp, data):
    path = os.path.join(tmp, 'fetched.eml')
    with open(path, 'wb') as f:
        f.write(data)
    return subprocess.run(['openssl', 'cms', '-verify', '-noverify', '-in', path,
                           '-out', os.devnull], capture_output=True).returncode == 0


def fetch_one(imap, uid, item):
    typ, data = imap.uid('FETCH', str(uid), '(%s)' % item)
    assert typ == 'OK', (typ, data)
    for d in data:
        if isinstance(d, tuple):
            return d[1]
    return data[0]


def uids(imap, *criteria):
    typ, data = imap.uid('SEARCH', *criteria)
    if typ != 'OK':
        print('SEARCH %r: %s %r' % (criteria, typ, data))
        return None
    return [int(x) for x in data[0].split()]


def main():
    with Loft() as env:
        env.add_user('carol@example.test', 'ghost-of-christmas-past')
        rc, out, err = env.loftctl('alias', 'add', 'postmaster@example.test',
                                   'alice@example.test')
        R.check('alias add', rc == 0, out + err)
        rc, out, err = env.loftctl('user', 'quota', 'carol@example.test', '100K')
        R.check('user quota', rc == 0, out + err)

        # 1. multipart/mixed with a binary attachment, RFC 2047 headers.
        m = EmailMessage()
        m['From'] = 'Jörg Müller <joerg@example.org>'
        m['To'] = 'Alice <alice@example.test>'
        m['Subject'] = 'Grüße aus Köln – Rechnung'
        m['Message-ID'] = '<mixed-1@example.org>'
        m['Date'] = 'Fri, 20 Nov 2026 10:00:00 +0100'
        m.set_content('Hallo Alice,\nanbei die Rechnung. Schöne Grüße\n')
        attachment = bytes(range(256)) * 40
        m.add_attachment(attachment, maintype='application', subtype='pdf',
                         filename='Rechnung-Köln.pdf')
        res = lmtp_send(env, 'joerg@example.org', ['alice@example.test'],
                        m.as_bytes(policy=SMTP))
        R.check('multipart 250', res['alice@example.test'][0] == 250, res)

        # 2. raw UTF-8 (RFC 6532) headers, 8-bit body.
        raw_utf8 = ('From: Zoë <zoe@example.org>\r\nTo: alice@example.test\r\n'
                    'Subject: Ünïcödé ohne Kodierung ☃\r\n'
                    'Message-ID: <utf8-1@example.org>\r\n'
                    'Date: Fri, 20 Nov 2026 11:00:00 +0000\r\n'
                    'MIME-Version: 1.0\r\n'
                    'Content-Type: text/plain; charset=utf-8\r\n'
                    'Content-Transfer-Encoding: 8bit\r\n\r\n'
                    'Straße, Café, naïve\r\n').encode('utf-8')
        res = lmtp_send(env, 'zoe@example.org', ['alice@example.test'], raw_utf8)
        R.check('utf8 250', res['alice@example.test'][0] == 250, res)

        # 2b. Latin-1 mail, found by a client that searches in Latin-1
        #     (SEARCH CHARSET ISO-8859-1, RFC 3501 6.4.4; Dovecot allows it).
        latin1 = (b'From: =?ISO-8859-1?Q?Fran=E7ois?= <f@example.org>\r\n'
                  b'To: alice@example.test\r\nSubject: =?iso-8859-1?q?Caf=E9_cr=E8me?=\r\n'
                  b'Message-ID: <latin1-1@example.org>\r\nMIME-Version: 1.0\r\n'
                  b'Content-Type: text/plain; charset=iso-8859-1\r\n'
                  b'Content-Transfer-Encoding: 8bit\r\n\r\n'
                  b'Un caf\xe9 cr\xe8me, s\'il vous pla\xeet.\r\n')
        res = lmtp_send(env, 'f@example.org', ['alice@example.test'], latin1)
        R.check('latin1 250', res['alice@example.test'][0] == 250, res)

        # 2c. S/MIME signed: every byte of the signed part must survive
        tmp = tempfile.mkdtemp(prefix='loft-smime-', dir=env.dir)
        smime, signed_part = smime_signed(tmp)
        R.check('S/MIME original verifies', cms_verifies(tmp, smime))
        res = lmtp_send(env, 'joerg@example.org', ['alice@example.test'], smime)
        R.check('smime 250', res['alice@example.test'][0] == 250, res)

        # 3. HTML only.
        h = EmailMessage()
        h['From'] = 'news@shop.example.org'
        h['To'] = 'alice@example.test'
        h['Subject'] = 'Newsletter'
        h['Message-ID'] = '<html-1@example.org>'
        h.set_content('<html><body><p>Sonderangebot: <b>Fahrräder</b> '
                      'heute billiger</p></body></html>', subtype='html')
        res = lmtp_send(env, 'news@shop.example.org', ['alice@example.test'],
                        h.as_bytes(policy=SMTP))
        R.check('html 250', res['alice@example.test'][0] == 250, res)

        # 4. bare LF line endings, no final newline before the dot.
        bare = (b'From: lf@example.org\nTo: alice@example.test\n'
                b'Subject: bare LF\nMessage-ID: <lf-1@example.org>\n\n'
                b'line one\nline two\nlast line without newline')
        c = env.lmtp()
        c.ehlo('mta')
        c.mail('lf@example.org')
        c.rcpt('alice@example.test')
        # smtplib would fix the line ends; send the payload raw.
        c.putcmd('DATA')
        code, _ = c.getreply()
        c.send(bare + b'\r\n.\r\n')
        code2, msg2 = c.getreply()
        c.quit()
        R.check('bare LF 250', code == 354 and code2 == 250, (code, code2, msg2))

        # 5. a 20 MB attachment.
        big_payload = os.urandom(15 * 1024 * 1024)
        b = EmailMessage()
        b['From'] = 'scanner@example.org'
        b['To'] = 'alice@example.test'
        b['Subject'] = 'Scan 20MB'
        b['Message-ID'] = '<big-1@example.org>'
        b.set_content('see attachment')
        b.add_attachment(big_payload, maintype='application', subtype='octet-stream',
                         filename='scan.tiff')
        big_bytes = b.as_bytes(policy=SMTP)
        res = lmtp_send(env, 'scanner@example.org', ['alice@example.test'], big_bytes)
        R.check('20MB 250', res['alice@example.test'][0] == 250, res)

        # 6. several recipients, an alias, an unknown one, an over-quota one:
        #    one reply per accepted recipient after DATA.
        imap_b = env.imap_login('bob@example.test')
        typ, _ = imap_b.create('Lists')
        R.check('create Lists', typ == 'OK')
        filler = b'x' * 150 * 1024
        multi = (b'From: team@example.org\r\nTo: alice@example.test, bob@example.test\r\n'
                 b'Subject: Team update\r\nMessage-ID: <multi-1@example.org>\r\n\r\n'
                 b'Everyone, see below.\r\n' + filler + b'\r\n')
        res = lmtp_send(env, 'team@example.org',
                        ['postmaster@example.test', 'bob+Lists@example.test',
                         'nobody@example.test', 'carol@example.test',
                         'bob+NoSuchFolder@example.test'],
                        multi)
        R.check('alias 250', res['postmaster@example.test'][0] == 250, res)
        R.check('detail 250', res['bob+Lists@example.test'][0] == 250, res)
        R.check('unknown 550 5.1.1', res['nobody@example.test'][0] == 550
                and res['nobody@example.test'][1].startswith('5.1.1'), res)
        R.check('over quota 552 5.2.2', res['carol@example.test'][0] == 552
                and res['carol@example.test'][1].startswith('5.2.2'), res)
        R.check('missing folder 250', res['bob+NoSuchFolder@example.test'][0] == 250, res)

        # ---- what alice sees ------------------------------------------
        a = env.imap_login('alice@example.test', tls=True)
        typ, data = a.select('INBOX')
        R.check('alice 8 messages', data == [b'8'], data)

        u = uids(a, 'HEADER', 'Message-ID', '<mixed-1@example.org>')
        R.check('mixed found by Message-ID', len(u) == 1, u)
        if u:
            bs = fetch_one(a, u[0], 'BODYSTRUCTURE')
            R.check('mixed bodystructure', re.search(
                rb'\("text" "plain" \("charset" "utf-8"\).*\("application" "pdf" .*"base64".*"attachment" \("filename\*?" ',
                bs) is not None, bs)
            part2 = fetch_one(a, u[0], 'BODY.PEEK[2]')
            R.check('attachment decodes', base64.b64decode(part2) == attachment,
                    len(part2))
            mime = fetch_one(a, u[0], 'BODY.PEEK[2.MIME]')
            R.check('2.MIME has Content-Disposition',
                    b'Content-Disposition: attachment' in mime, mime)
            env_ = fetch_one(a, u[0], 'ENVELOPE')
            R.check('envelope subject kept encoded',
                    b'=?utf-8?' in env_.lower() or b'=?UTF-8?' in env_, env_)
            hdr = fetch_one(a, u[0], 'BODY.PEEK[HEADER]')
            R.check('Delivered-To', b'Delivered-To: alice@example.test\r\n' in hdr, hdr[:300])
            R.check('Received first', hdr.startswith(b'Return-Path: <joerg@example.org>\r\n')
                    and b'\r\nReceived: from ' in hdr, hdr[:300])
            R.check('not seen', b'\\Seen' not in fetch_one(a, u[0], 'FLAGS'))
        R.check('search SUBJECT utf-8 (RFC 2047)',
                uids(a, 'CHARSET', 'UTF-8', 'SUBJECT', '"Grüße"'.encode()) == u, u)
        R.check('search FROM decoded name',
                uids(a, 'CHARSET', 'UTF-8', 'FROM', '"Müller"'.encode()) == u, u)
        R.check('search BODY 8bit text',
                uids(a, 'CHARSET', 'UTF-8', 'BODY', '"schöne grüße"'.encode()) == u)

        u8 = uids(a, 'HEADER', 'Message-ID', '<utf8-1@example.org>')
        R.check('raw utf8 found', len(u8) == 1, u8)
        R.check('search raw utf8 subject',
                uids(a, 'CHARSET', 'UTF-8', 'SUBJECT', '"ünïcödé"'.encode()) == u8)
        R.check('search raw utf8 body',
                uids(a, 'CHARSET', 'UTF-8', 'BODY', '"straße"'.encode()) == u8)
        if u8:
            hf = fetch_one(a, u8[0], 'BODY.PEEK[HEADER.FIELDS (SUBJECT)]')
            R.check('raw utf8 subject served as sent',
                    hf == 'Subject: Ünïcödé ohne Kodierung ☃\r\n\r\n'.encode(), hf)

        u1 = uids(a, 'HEADER', 'Message-ID', '<latin1-1@example.org>')
        R.check('latin1 found', len(u1) == 1, u1)
        R.check('search CHARSET ISO-8859-1 SUBJECT',
                uids(a, 'CHARSET', 'ISO-8859-1', 'SUBJECT', b'"caf\xe9"') == u1)
        R.check('search CHARSET ISO-8859-1 BODY',
                uids(a, 'CHARSET', 'ISO-8859-1', 'BODY', b'"pla\xeet"') == u1)
        R.check('search CHARSET UTF-8 finds Latin-1 text',
                uids(a, 'CHARSET', 'UTF-8', 'BODY', '"crème"'.encode()) == u1)
        typ, data = a.uid('SEARCH', 'CHARSET', 'X-NO-SUCH-CHARSET', 'ALL')
        R.check('unknown charset: NO [BADCHARSET]', typ == 'NO' and
                b'BADCHARSET' in data[0], (typ, data))

        us = uids(a, 'HEADER', 'Message-ID', '<smime-1@example.org>')
        if R.check('smime found', len(us) == 1, us):
            R.check('S/MIME verifies after delivery (BODY[])',
                    cms_verifies(tmp, fetch_one(a, us[0], 'BODY.PEEK[]')))
            part = (fetch_one(a, us[0], 'BODY.PEEK[1.MIME]') +
                    fetch_one(a, us[0], 'BODY.PEEK[1]'))
            R.check('signed part byte-exact from 1.MIME + 1', part == signed_part,
                    (part[:80], signed_part[:80]))
            bs = fetch_one(a, us[0], 'BODYSTRUCTURE')
            R.check('signed structure', re.search(
                rb'"alternative" .*\("application" "pkcs7-signature" .*"signed" '
                rb'\("protocol" "application/pkcs7-signature"', bs) is not None, bs)

        uh = uids(a, 'HEADER', 'Message-ID', '<html-1@example.org>')
        R.check('html-only found by body text',
                uids(a, 'CHARSET', 'UTF-8', 'BODY', '"Fahrräder"'.encode()) == uh
                and len(uh) == 1, uh)

        ul = uids(a, 'HEADER', 'Message-ID', '<lf-1@example.org>')
        if R.check('bare LF found', len(ul) == 1, ul):
            full = fetch_one(a, ul[0], 'BODY.PEEK[]')
            size = int(re.search(rb'RFC822.SIZE (\d+)',
                                 a.uid('FETCH', str(ul[0]), '(RFC822.SIZE)')[1][0]).group(1))
            R.check('bare LF stored as CRLF', b'\n' not in full.replace(b'\r\n', b''), full[-80:])
            R.check('bare LF size matches bytes', size == len(full), (size, len(full)))
            R.check('bare LF text', fetch_one(a, ul[0], 'BODY.PEEK[TEXT]').startswith(
                b'line one\r\nline two\r\nlast line without newline'))

        ub = uids(a, 'HEADER', 'Message-ID', '<big-1@example.org>')
        if R.check('20MB found', len(ub) == 1, ub):
            got = fetch_one(a, ub[0], 'BINARY.PEEK[2]')
            R.check('20MB attachment intact', got == big_payload, len(got))
            size = int(re.search(rb'RFC822.SIZE (\d+)',
                                 a.uid('FETCH', str(ub[0]), '(RFC822.SIZE)')[1][0]).group(1))
            R.check('20MB size', size > len(big_bytes), (size, len(big_bytes)))

        um = uids(a, 'HEADER', 'Message-ID', '<multi-1@example.org>')
        R.check('alias delivered to alice', len(um) == 1, um)
        if um:
            hdr = fetch_one(a, um[0], 'BODY.PEEK[HEADER.FIELDS (DELIVERED-TO)]')
            R.check('alias Delivered-To', b'postmaster@example.test' in hdr
                    or b'alice@example.test' in hdr, hdr)
        a.logout()

        # ---- bob: detail delivery --------------------------------------
        typ, data = imap_b.select('Lists')
        R.check('bob+Lists in Lists', data == [b'1'], data)
        typ, data = imap_b.select('INBOX')
        R.check('bob+NoSuchFolder in INBOX', data == [b'1'], data)
        imap_b.logout()

        # ---- carol: over quota, quota visible ---------------------------
        small = (b'From: a@example.org\r\nTo: carol@example.test\r\nSubject: small\r\n'
                 b'Message-ID: <small-1@example.org>\r\n\r\nhi\r\n')
        res = lmtp_send(env, 'a@example.org', ['carol@example.test'], small)
        R.check('carol small 250', res['carol@example.test'][0] == 250, res)
        cc = env.imap_login('carol@example.test')
        typ, data = cc.getquotaroot('INBOX')
        quota = b' '.join(x if isinstance(x, bytes) else b' '.join(x) for x in data)
        R.check('GETQUOTAROOT STORAGE 100', re.search(rb'\(STORAGE \d+ 100\)', quota)
                is not None, data)
        cc.select('INBOX')
        R.check('carol has 1', uids(cc, 'ALL') == [1])
        cc.logout()
        rc, out, err = env.loftctl('user', 'show', 'carol@example.test')
        R.check('user show quota', rc == 0 and re.search(r'quota_bytes = 100(\.0)? ?Ki?B', out)
                is not None, out)
        R.check('user show usage 1 message',
                re.search(r'usage: \d+ bytes.*1 messages?', out) is not None, out)

        # over_quota_tempfail turns the refusal into 452 4.2.2
        rc, out, err = env.loftctl('user', 'set', 'carol@example.test',
                                   'over_quota_tempfail=yes')
        R.check('set tempfail', rc == 0, out + err)
        res = lmtp_send(env, 'team@example.org', ['carol@example.test'], multi)
        R.check('over quota 452 4.2.2', res['carol@example.test'][0] == 452
                and res['carol@example.test'][1].startswith('4.2.2'), res)

    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
