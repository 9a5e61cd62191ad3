#!/usr/bin/env python3
"""`loftctl import` over TLS, certificates verified (issue 17): a second
loftd is the source (IMAP with STARTTLS, IMAPS, POP3 with STLS; the
test's self-signed certificate for 127.0.0.1):

  - imap:// where the source offers STARTTLS, its certificate not
    trusted: exit 1 naming the host and the reason, nothing imported;
  - the same with the certificate trusted (LOFT_MIGRATE_CA_FILE, as an
    admin's CA bundle would be): every message with its flags,
    UIDVALIDITY and UIDs;
  - imaps:// (TLS from the first byte), trusted: a second run copies
    only what is new;
  - pop3:// with STLS, trusted: INBOX with the source's UIDLs.
"""

import os
import re
import subprocess
import sys

from loftenv import SLOW, Loft, Results, test_cert

R = Results()
PW = 'migrate-tls-password-1'
SRC = 'src@example.test'


def msg(i):
    return (b'From: s%d@example.org\r\nSubject: tls %d\r\n'
            b'Message-ID: <tls%d@example.org>\r\n\r\nbody %d\r\n'
            % (i, i, i, i))


def ctl(env, *args, ca=None):
    e = dict(os.environ)
    e.pop('LOFT_MIGRATE_CA_FILE', None)
    if ca is not None:
        e['LOFT_MIGRATE_CA_FILE'] = ca
    r = subprocess.run([env.loftctl_bin, '--config', env.config_path] +
                       list(args), input=PW + '\n', capture_output=True,
                       text=True, env=e, timeout=120 * SLOW)
    return r.returncode, r.stdout, r.stderr


def inbox(env, address):
    imap = env.imap_login(address, PW)
    imap.select('INBOX', readonly=True)
    uv = int(imap.response('UIDVALIDITY')[1][0])
    typ, data = imap.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[])')
    imap.logout()
    got = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
            flags = b'\\Seen' in item[0]
            got[uid] = (flags, item[1])
    return uv, got


def main():
    cert, _ = test_cert()
    users = {'a@example.test': PW, 'b@example.test': PW,
             'c@example.test': PW}
    with Loft(users={SRC: PW}) as src, Loft(users=users) as dst:
        imap = src.imap_login(SRC, PW)
        for i in range(1, 4):
            imap.append('INBOX', '(\\Seen)' if i != 2 else None, None,
                        msg(i))
        imap.logout()
        src_uv, src_msgs = inbox(src, SRC)
        user = 'src%40example.test@127.0.0.1'
        plain = 'imap://%s:%d' % (user, src.port('imap'))

        rc, out, err = ctl(dst, 'import', 'a@example.test', plain)
        R.check('STARTTLS, certificate not trusted: exit 1, named',
                rc == 1 and re.search(r'certificate of 127\.0\.0\.1 is not'
                                      r' trusted', err), (rc, out, err))
        R.check('nothing imported then',
                inbox(dst, 'a@example.test')[1] == {},
                inbox(dst, 'a@example.test')[1])

        rc, out, err = ctl(dst, 'import', 'a@example.test', plain, ca=cert)
        R.check('STARTTLS, trusted: exit 0', rc == 0, out + err)
        uv, got = inbox(dst, 'a@example.test')
        R.check('every message, flags, UIDVALIDITY and UIDs kept',
                uv == src_uv and got == src_msgs, (uv, src_uv, got))

        imaps = 'imaps://%s:%d' % (user, src.port('imaps'))
        rc, out, err = ctl(dst, 'import', 'b@example.test', imaps, ca=cert)
        R.check('IMAPS, trusted: exit 0, 3 imported',
                rc == 0 and re.search(r'INBOX: 3 imported', out), out + err)
        imap = src.imap_login(SRC, PW)
        imap.append('INBOX', None, None, msg(4))
        imap.logout()
        rc, out, err = ctl(dst, 'import', 'b@example.test', imaps, ca=cert)
        R.check('IMAPS, second run: only the new one',
                rc == 0 and re.search(r'INBOX: 1 imported', out),
                (rc, out, err))
        R.check('IMAPS copy equals the source',
                inbox(dst, 'b@example.test') == inbox(src, SRC),
                (inbox(dst, 'b@example.test'), inbox(src, SRC)))

        pop = 'pop3://%s:%d' % (user, src.port('pop3'))
        rc, out, err = ctl(dst, 'import', 'c@example.test', pop, ca=cert)
        R.check('POP3 with STLS, trusted: exit 0, 4 imported',
                rc == 0 and re.search(r'INBOX: 4 imported', out), out + err)
        p = src.pop3_login(SRC, PW)
        want = sorted(x.split()[1] for x in p.uidl()[1])
        p.quit()
        p = dst.pop3_login('c@example.test', PW)
        have = sorted(x.split()[1] for x in p.uidl()[1])
        p.quit()
        R.check('POP3: the source\'s UIDLs kept', have == want,
                (have, want))
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
