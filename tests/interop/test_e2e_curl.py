#!/usr/bin/env python3
"""End to end: curl (Debian's, with its own IMAP and POP3 client) as the
scripts and monitoring checks of real admins use it, over IMAPS and POP3S:
list folders, fetch a message by UID and one section, search, upload to
Sent, list/retrieve/UIDL over POP3; the bytes match what IMAP serves.
"""

import os
import shutil
import subprocess
import sys

from loftenv import Loft, Results, SLOW

R = Results()
MSG = (b'From: Monitor <monitor@example.org>\r\nTo: alice@example.test\r\n'
       b'Subject: disk check ok\r\nMessage-ID: <curl-1@example.org>\r\n\r\n'
       b'all disks fine\r\n.dot line\r\n')


def curl(*args, data=None):
    r = subprocess.run(['curl', '-k', '-s', '-S', '-u', 'alice@example.test:tea-party-rabbit-hole']
                       + list(args), capture_output=True, timeout=30 * SLOW, input=data)
    return r.returncode, r.stdout, r.stderr.decode(errors='replace')


def main():
    if shutil.which('curl') is None:
        print('curl not installed')
        R.check('curl installed', False)
        return R.finish()
    with Loft() as env:
        c = env.lmtp()
        c.ehlo('mta')
        c.sendmail('monitor@example.org', ['alice@example.test'], MSG)
        c.quit()
        imaps = 'imaps://127.0.0.1:%d' % env.port('imaps')
        pop3s = 'pop3s://127.0.0.1:%d' % env.port('pop3s')

        rc, out, err = curl(imaps + '/')
        R.check('LIST', rc == 0 and b'\\Sent) "/" "Sent"\r\n' in out, (rc, out, err))
        rc, full, err = curl(imaps + '/INBOX;UID=1')
        R.check('fetch by UID', rc == 0 and full.endswith(MSG), (rc, full[-120:], err))
        rc, out, err = curl(imaps + '/INBOX;UID=1;SECTION=TEXT')
        R.check('fetch TEXT', rc == 0 and out == b'all disks fine\r\n.dot line\r\n', (rc, out, err))
        rc, out, err = curl(imaps + '/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)')
        R.check('fetch header field', rc == 0 and out == b'Subject: disk check ok\r\n\r\n',
                (rc, out, err))
        rc, out, err = curl(imaps + '/INBOX?SUBJECT%20%22disk%20check%22')
        R.check('search', rc == 0 and out == b'* SEARCH 1\r\n', (rc, out, err))
        rc, out, err = curl(imaps + '/INBOX', '-X', 'STATUS INBOX (MESSAGES UNSEEN)')
        # curl fetches with BODY[] (not PEEK): the message is read now
        R.check('custom command', rc == 0 and out == b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 0)\r\n',
                (rc, out, err))
        up = b'From: alice@example.test\r\nTo: monitor@example.org\r\nSubject: ack\r\n\r\nack\r\n'
        path = os.path.join(env.dir, 'ack.eml')
        with open(path, 'wb') as f:
            f.write(up)
        rc, out, err = curl('-T', path, imaps + '/Sent')
        R.check('upload to Sent', rc == 0, (rc, err))
        rc, out, err = curl(imaps + '/Sent;UID=1')
        R.check('uploaded bytes', rc == 0 and out == up, (rc, out, err))

        rc, out, err = curl(pop3s + '/')
        R.check('POP3 LIST', rc == 0 and out == b'1 %d\r\n' % len(full), (rc, out, err))
        rc, out, err = curl(pop3s + '/1')
        R.check('POP3 RETR = IMAP BODY[]', rc == 0 and out == full, (rc, out[-80:], err))
        rc, out, err = curl(pop3s + '/', '-X', 'UIDL')
        R.check('POP3 UIDL', rc == 0 and len(out.split()) == 2 and out.startswith(b'1 '),
                (rc, out, err))
        rc, out, err = curl('-u', 'alice@example.test:wrong', imaps + '/')
        R.check('wrong password: login denied', rc == 67, (rc, err))
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
