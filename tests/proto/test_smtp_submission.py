"""Submission as a user sees it: real clients log in (swaks with AUTH PLAIN
and LOGIN over STARTTLS on 587 and on implicit-TLS 465, SCRAM-SHA-256 from
a Python client), mail leaves DKIM-signed with every key of the From:
domain (RSA and Ed25519, verified by python3-dkim; a key added or deleted
with loftctl while loftd runs takes effect at the next message), the
sender check follows send_as (own, aliases, any) server-wide and per
account, sent_copy keeps the message in Sent, postmaster@ is always
accepted, REQUIRETLS is offered only over TLS."""

import re
import shutil
import smtplib
import subprocess
import sys

import dkim

from loftenv import Loft, Results, free_port, client_tls_context, SLOW
from smtpconv import (Sink, cmd, connect, dkim_records, inbox_messages,
                      scram_sha256, wait_for)

ALICE = 'alice@example.test'


def sent_to_sink(sink, marker):
    got = [m for m in sink.messages if marker in m.get('data', b'')]
    return got[0] if got else None


def verify_all(data, records):
    """[(selector, ok)] for each DKIM-Signature, checked by python3-dkim."""
    def dnsfunc(name, timeout=5):
        return records.get(name if name.endswith(b'.') else name + b'.', b'')
    head = data.split(b'\r\n\r\n', 1)[0]
    count = sum(1 for line in head.split(b'\r\n')
                if line.lower().startswith(b'dkim-signature:'))
    d = dkim.DKIM(data)
    out = []
    for i in range(count):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            ok = False
            print('dkim:', e)
        out.append((d.signature_fields.get(b's', b'').decode(), bool(ok)))
    return out


def submit(env, port, user, password, sender, rcpts, msg, implicit=False):
    if implicit:
        c = smtplib.SMTP_SSL('127.0.0.1', port, timeout=30 * SLOW,
                             context=client_tls_context())
    else:
        c = smtplib.SMTP('127.0.0.1', port, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
    c.login(user, password)
    try:
        c.sendmail(sender, rcpts, msg)
    finally:
        c.quit()


def swaks(port, auth, user, password, to, marker, implicit=False):
    args = ['swaks', '--server', '127.0.0.1', '--port', str(port),
            '--auth', auth, '--auth-user', user, '--auth-password', password,
            '--from', user, '--to', to, '--header', 'Subject: ' + marker,
            '--body', marker, '--timeout', str(30 * SLOW)]
    args += ['--tlsc'] if implicit else ['--tls']
    p = subprocess.run(args, capture_output=True, text=True, timeout=60 * SLOW)
    return p.returncode, p.stdout + p.stderr


def check_burl(r, env, ports):
    """BURL (RFC 4468): a draft stored over IMAP is sent by its URLAUTH URL
    (RFC 4467, access submit+alice), alone and after a BDAT chunk; a
    forged token, another user's URL and BURL outside a transaction are
    refused."""
    import imaplib
    imaplib.Commands.setdefault('GENURLAUTH', ('AUTH', 'SELECTED'))
    apw = env.users[ALICE]
    m = env.imap_login(ALICE)
    draft = (b'From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n'
             b'Subject: burl draft\r\n\r\nfrom the Drafts folder\r\n')
    typ, data = m.append('Drafts', None, None, draft)
    got = re.search(rb'APPENDUID (\d+) (\d+)', data[0] or b'')
    r.check('draft appended', typ == 'OK' and got, data)
    uv, uid = got.groups() if got else (b'0', b'0')

    def genurl(access):
        rump = ('imap://alice%%40example.test@loft.example.test/Drafts;'
                'UIDVALIDITY=%s/;UID=%s;URLAUTH=%s' % (uv.decode(), uid.decode(), access))
        typ, dat = m._simple_command('GENURLAUTH', '"%s"' % rump, 'INTERNAL')
        typ, dat = m._untagged_response(typ, dat, 'GENURLAUTH')
        u = re.search(rb'"([^"]+)"', dat[0] or b'') if typ == 'OK' and dat else None
        return u.group(1).decode() if u else 'imap://none'
    url = genurl('submit+alice%40example.test')
    url_bob = genurl('submit+bob%40example.test')
    m.logout()
    r.check('GENURLAUTH for submit+alice', ':INTERNAL:' in url, url)

    c = smtplib.SMTP('127.0.0.1', ports['submission'], timeout=30 * SLOW)
    c.starttls(context=client_tls_context())
    c.ehlo('client.example')
    r.check('BURL not offered before AUTH', 'burl' not in c.esmtp_features,
            c.esmtp_features)
    code, msg = c.docmd('BURL', url + ' LAST')
    r.check('BURL before AUTH: 530 5.7.0', code == 530 and msg.startswith(b'5.7.0'), msg)
    c.login(ALICE, apw)
    c.ehlo('client.example')
    r.check('BURL imap offered after AUTH', c.esmtp_features.get('burl') == 'imap',
            c.esmtp_features)
    code, msg = c.docmd('BURL', url + ' LAST')
    r.check('BURL outside a transaction: 503', code == 503, msg)
    before = len(inbox_messages(env, 'bob@example.test'))
    c.mail(ALICE)
    c.rcpt('bob@example.test')
    code, msg = c.docmd('BURL', url + ' LAST')
    r.check('BURL LAST: 250', code == 250, msg)
    box = inbox_messages(env, 'bob@example.test')
    r.check('BURL: the draft reached bob', len(box) == before + 1 and
            b'from the Drafts folder' in box[-1], box[-1:])
    # a BDAT chunk then the draft: one message
    c.mail(ALICE)
    c.rcpt('bob@example.test')
    prefix = b'X-Burl-Prefix: yes\r\n'
    c.send(b'BDAT %d\r\n' % len(prefix) + prefix)
    code, msg = c.getreply()
    r.check('BDAT before BURL: 250', code == 250, msg)
    code, msg = c.docmd('BURL', url + ' LAST')
    r.check('BDAT + BURL LAST: 250', code == 250, msg)
    box = inbox_messages(env, 'bob@example.test')
    r.check('BDAT + BURL: one message, prefix first',
            box and box[-1].count(b'X-Burl-Prefix: yes\r\nFrom: Alice') == 1, box[-1:])
    # a forged token, and a URL made for another account
    n = len(box)
    for name, bad in (('forged token', url[:-1] + ('0' if url[-1] != '0' else '1')),
                      ('URL for submit+bob', url_bob)):
        c.mail(ALICE)
        c.rcpt('bob@example.test')
        code, msg = c.docmd('BURL', bad + ' LAST')
        r.check('BURL %s: 554 5.6.6' % name, code == 554 and msg.startswith(b'5.6.6'), msg)
        c.rset()
    r.check('nothing sent for refused URLs',
            len(inbox_messages(env, 'bob@example.test')) == n)
    c.quit()
    # the MX does not offer it
    s = smtplib.SMTP('127.0.0.1', ports['smtp'], timeout=30 * SLOW)
    s.ehlo('client.example')
    code, msg = s.docmd('BURL', url + ' LAST')
    r.check('MX: BURL 502', code == 502 and 'burl' not in s.esmtp_features, msg)
    s.quit()


def check_shared_sender(r, env, sub):
    """A holder of i on a shared address's INBOX sends as it (envelope
    and From:), also with a +detail; someone without it gets 553 / 550,
    and losing the right takes effect at the next message."""
    bob = 'bob@example.test'
    rc, out, err = env.loftctl('shared', 'add', 'sales@example.test')
    r.check('shared add', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', ALICE, 'lri')
    r.check('acl set i', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', bob, 'lr')
    r.check('acl set without i', rc == 0, out + err)

    def session(user):
        c = smtplib.SMTP('127.0.0.1', sub, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
        c.login(user, env.users[user])
        return c
    c = session(ALICE)
    code, m = c.mail('sales@example.test')
    r.check('i on the shared INBOX: MAIL FROM 250', code == 250, m)
    c.rcpt('x@remote.example')
    code, m = c.data(b'From: Sales <sales@example.test>\r\nSubject: team\r\n\r\nx\r\n')
    r.check('i on the shared INBOX: From: 250', code == 250, m)
    code, m = c.mail('sales+offers@example.test')
    r.check('shared address with a +detail', code == 250, m)
    c.rset()
    # own envelope, the shared address in From:
    code, m = c.mail(ALICE)
    c.rcpt('x@remote.example')
    code, m = c.data(b'From: sales@example.test\r\nSubject: team 2\r\n\r\nx\r\n')
    r.check('own envelope, shared From: 250', code == 250, m)
    c.quit()

    c = session(bob)
    code, m = c.mail('sales@example.test')
    r.check('l r without i: 553 5.7.1', code == 553 and m.startswith(b'5.7.1'), m)
    c.rset()
    code, m = c.mail(bob)
    c.rcpt('x@remote.example')
    code, m = c.data(b'From: sales@example.test\r\nSubject: forged\r\n\r\nx\r\n')
    r.check('l r without i, shared From: 550 5.7.1',
            code == 550 and m.startswith(b'5.7.1'), m)
    c.quit()

    # the right goes: the next MAIL is refused
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', ALICE, '-i')
    r.check('acl remove i', rc == 0, out + err)
    c = session(ALICE)
    code, m = c.mail('sales@example.test')
    r.check('i removed: 553', code == 553, m)
    c.rset()
    c.quit()


def main():
    r = Results()
    sink = Sink()
    ports = {'smtp': free_port(), 'submission': free_port(),
             'submissions': free_port()}
    extra = {
        'smtp': {'listen': '127.0.0.1:%d' % ports['smtp']},
        'submission': {'listen': '127.0.0.1:%d' % ports['submission']},
        'submissions': {'listen': '127.0.0.1:%d' % ports['submissions']},
        'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                  'smarthost_tls': 'none', 'retry_min': '1s'},
    }
    with Loft(extra=extra) as env:
        ports.update({k: env.port(k) for k in ports})   # moved on a clash
        apw = env.users[ALICE]
        sub, subs = ports['submission'], ports['submissions']

        # ---- DKIM: every key of the From: domain signs ----
        rc, out, err = env.loftctl('dkim', 'add', 'example.test')
        r.check('dkim add rsa', rc == 0 and 'k=rsa' in out, out + err)
        rc, out, err = env.loftctl('dkim', 'add', 'example.test', '--ed25519',
                                   '--selector', 'ed1')
        r.check('dkim add ed25519', rc == 0 and 'k=ed25519' in out, out + err)
        rc, out, err = env.loftctl('dkim', 'add', 'nowhere.example')
        r.check('dkim add for a foreign domain refused', rc == 1 and
                'not a domain of this server' in err, err)
        rc, out, err = env.loftctl('dkim', 'add', 'example.test', '--rsa', '512')
        r.check('dkim add 512 bits refused', rc == 1 and '1024' in err, err)
        rc, out, err = env.loftctl('dkim', 'add', 'example.test', '--selector', 'ed1')
        r.check('dkim add existing selector refused', rc == 1 and 'exists' in err, err)
        records = dkim_records(env)
        r.check('two records listed', len(records) == 2, records)

        msg = (b'From: Alice <alice@example.test>\r\nTo: x@remote.example\r\n'
               b'Subject: signed one\r\nMessage-ID: <s1@example.test>\r\n\r\n'
               b'a line\r\n.leading dot\r\n' + b'y' * 1500 + b'\r\n')
        submit(env, sub, ALICE, apw, ALICE, ['x@remote.example'], msg)
        r.check('signed one relayed', wait_for(lambda: sent_to_sink(sink, b'signed one')))
        got = sent_to_sink(sink, b'signed one') or {'data': b''}
        data = got['data'].replace(b'\r\n..', b'\r\n.')
        res = verify_all(data, records)
        r.check('two signatures, both verify in python3-dkim',
                sorted(res) == [('ed1', True), (sorted(records)[1].split(b'.')[0].decode(), True)],
                res)
        r.check('long line not folded', b'y' * 1500 in data)

        # a key added while loftd runs signs the next message; a deleted
        # one no longer does
        rc, out, err = env.loftctl('dkim', 'add', 'example.test', '--selector', 'late')
        rsa_sel = [s for s, _ in res if s != 'ed1']
        rc2, out2, err2 = env.loftctl('dkim', 'del', 'example.test', 'ed1')
        r.check('dkim del', rc2 == 0, out2 + err2)
        rc3, out3, err3 = env.loftctl('dkim', 'del', 'example.test', 'ed1')
        r.check('dkim del twice fails', rc3 == 1 and 'no key' in err3, err3)
        records.update(dkim_records(env))
        submit(env, subs, ALICE, apw, ALICE, ['x@remote.example'],
               msg.replace(b'signed one', b'signed two'), implicit=True)
        r.check('signed two relayed', wait_for(lambda: sent_to_sink(sink, b'signed two')))
        got = sent_to_sink(sink, b'signed two') or {'data': b''}
        res = verify_all(got['data'].replace(b'\r\n..', b'\r\n.'), records)
        r.check('new key signs, deleted one does not',
                sorted(s for s, ok in res if ok) == sorted(rsa_sel + ['late']), res)
        rc, out, err = env.loftctl('dkim', 'list')
        r.check('dkim list', rc == 0 and 'example.test late rsa 2048' in out and
                'ed1' not in out, out + err)

        # ---- the sender check ----
        c = smtplib.SMTP('127.0.0.1', sub, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
        c.login(ALICE, apw)
        code, m = c.mail('info@example.test')
        r.check('alias not yet: 553', code == 553 and m.startswith(b'5.7.1'), m)
        c.rset()
        env.loftctl('alias', 'add', 'info@example.test', ALICE)
        code, m = c.mail('info+news@example.test')
        r.check('own alias with detail as sender', code == 250, m)
        c.rcpt('x@remote.example')
        code, m = c.data(b'From: info@example.test\r\nSubject: alias\r\n\r\nx\r\n')
        r.check('own alias in From:', code == 250, m)
        code, m = c.mail('someone@remote.example')
        r.check('foreign sender: 553', code == 553, m)
        c.rset()
        env.loftctl('user', 'set', ALICE, 'send_as=any')
        code, m = c.mail('someone@remote.example')
        r.check('send_as=any: foreign sender', code == 250, m)
        c.rcpt('x@remote.example')
        code, m = c.data(b'From: someone@remote.example\r\nSubject: any\r\n\r\nx\r\n')
        r.check('send_as=any: foreign From:', code == 250, m)
        rc, out, err = env.loftctl('user', 'show', ALICE)
        r.check('user show send_as', 'send_as = any' in out, out)
        env.loftctl('user', 'set', ALICE, 'send_as=default')
        code, m = c.mail('someone@remote.example')
        r.check('back to own', code == 553, m)
        c.rset()
        rc, out, err = env.loftctl('user', 'set', ALICE, 'send_as=everyone')
        r.check('bad send_as refused', rc == 1 and 'own or any' in err, err)
        c.quit()

        # ---- send-as a shared address: the i right on its INBOX ----
        check_shared_sender(r, env, sub)

        # ---- sent_copy ----
        before = len(inbox_messages(env, ALICE, 'Sent'))
        submit(env, sub, ALICE, apw, ALICE, ['x@remote.example'],
               b'From: alice@example.test\r\nSubject: not kept\r\n\r\nx\r\n')
        r.check('sent_copy off by default', len(inbox_messages(env, ALICE, 'Sent')) == before)
        env.loftctl('user', 'set', ALICE, 'sent_copy=yes')
        submit(env, sub, ALICE, apw, ALICE, ['x@remote.example', 'bob@example.test'],
               b'From: alice@example.test\r\nSubject: kept copy\r\n\r\nbody\r\n')
        sent = inbox_messages(env, ALICE, 'Sent')
        r.check('sent_copy stored in Sent', len(sent) == before + 1 and
                b'Subject: kept copy' in sent[-1], [m[:80] for m in sent])
        m = env.imap_login(ALICE)
        m.select('Sent')
        typ, fl = m.fetch(b'*', '(FLAGS)')
        m.logout()
        r.check('Sent copy is \\Seen', b'\\Seen' in fl[0], fl)
        env.loftctl('user', 'set', ALICE, 'sent_copy=no')

        # ---- postmaster@ ----
        s, g = connect(ports['smtp'])
        cmd(s, b'EHLO client.example')
        cmd(s, b'MAIL FROM:<someone@remote.example>')
        rep = cmd(s, b'RCPT TO:<Postmaster@example.test>')
        r.check('postmaster@ accepted', rep.startswith(b'250'), rep)
        cmd(s, b'DATA')
        s.sendall(b'Subject: to the postmaster\r\n\r\nhello\r\n')
        r.check('postmaster@ stored', cmd(s, b'.').startswith(b'250'))
        rep = cmd(s, b'EHLO client.example')
        r.check('no REQUIRETLS in clear', b'REQUIRETLS' not in rep, rep)
        cmd(s, b'QUIT')
        s.close()
        r.check('postmaster mail reaches the first account',
                any(b'to the postmaster' in x for x in inbox_messages(env, ALICE)))
        c = smtplib.SMTP('127.0.0.1', sub, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
        c.ehlo('client.example')
        r.check('REQUIRETLS over TLS', 'requiretls' in c.esmtp_features, c.esmtp_features)
        c.quit()

        # ---- AUTH from real clients ----
        if shutil.which('swaks'):
            for auth in ('PLAIN', 'LOGIN'):
                for implicit, port in ((False, sub), (True, subs)):
                    marker = 'swaks-%s-%s' % (auth, 'tlsc' if implicit else 'starttls')
                    rc, out = swaks(port, auth, ALICE, apw, 'bob@example.test',
                                    marker, implicit)
                    r.check('swaks %s' % marker, rc == 0 and '235 2.7.0' in out, out[-600:])
                    r.check('swaks %s delivered' % marker,
                            any(marker.encode() in x
                                for x in inbox_messages(env, 'bob@example.test')))
            rc, out = swaks(sub, 'LOGIN', ALICE, 'not the password', 'bob@example.test',
                            'nope')
            r.check('swaks wrong password', rc != 0 and '535 5.7.8' in out, out[-400:])
        else:
            r.check('swaks installed', False)
        c = smtplib.SMTP('127.0.0.1', sub, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
        c.ehlo('client.example')
        r.check('SCRAM offered', 'SCRAM-SHA-256' in c.esmtp_features.get('auth', ''),
                c.esmtp_features)
        code, server_ok = scram_sha256(c, ALICE, apw)
        r.check('SCRAM-SHA-256 login', code == 235 and server_ok, code)
        code, m = c.mail(ALICE)
        r.check('SCRAM session may send', code == 250, m)
        c.quit()
        c = smtplib.SMTP('127.0.0.1', sub, timeout=30 * SLOW)
        c.starttls(context=client_tls_context())
        c.ehlo('client.example')
        code, server_ok = scram_sha256(c, ALICE, 'not the password at all')
        r.check('SCRAM wrong password', code == 535, code)
        c.quit()
        check_burl(r, env, ports)
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
