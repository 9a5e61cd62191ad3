"""The spam-scanner hook with Debian's rspamd, started privately: a clean
message gets "no action" (INBOX, X-Spam-Status: No), a message rspamd
scores for "add header" goes to Junk with X-Spam: Yes, GTUBE is refused
550 5.7.1 at the end of DATA, and with rspamd stopped mail still arrives,
unscanned."""

import sys

from loftenv import Loft, Results, free_port
from rspamdenv import Rspamd
from smtpconv import cmd, connect, inbox_messages

USER = 'alice@example.test'
GTUBE = b'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'


def send(port, data):
    s, g = connect(port)
    cmd(s, b'EHLO mail.sender.example')
    cmd(s, b'MAIL FROM:<someone@sender.example>')
    cmd(s, b'RCPT TO:<%s>' % USER.encode())
    cmd(s, b'DATA')
    s.sendall(data)
    rep = cmd(s, b'.')
    cmd(s, b'QUIT')
    s.close()
    return rep


def find(env, marker, mailbox='INBOX'):
    for m in inbox_messages(env, USER, mailbox):
        if marker in m:
            return m
    return None


def main():
    r = Results()
    port = free_port()
    with Rspamd() as rs:
        extra = {'smtp': {'listen': '127.0.0.1:%d' % port, 'rspamd': rs.url,
                          'sender_checks': 'no', 'rspamd_timeout': '30s'}}
        with Loft(extra=extra) as env:
            port = env.port('smtp')   # moved on a clash
            clean = (b'From: Some One <someone@sender.example>\r\n'
                     b'To: Alice <alice@example.test>\r\n'
                     b'Subject: lunch on friday\r\n'
                     b'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n'
                     b'Message-ID: <lunch.1@sender.example>\r\n'
                     b'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n'
                     b'Shall we meet at noon?\r\n')
            rep = send(port, clean)
            r.check('clean: 250', rep.startswith(b'250'), rep)
            m = find(env, b'lunch on friday') or b''
            r.check('clean: INBOX, scanned', b'X-Spam-Status: No' in m, m[:800])
            bare = (b'Subject: CHEAP PILLS NOW!!!\r\nFrom: x@sender.example\r\n'
            b'Content-Type: text/html\r\n\r\n'
            b'<html><body><a href="http://192.0.2.7/x">click</a></body></html>\r\n')
            rep = send(port, bare)
            r.check('suspicious: 250', rep.startswith(b'250'), rep)
            m = find(env, b'CHEAP PILLS', 'Junk') or b''
            r.check('suspicious: Junk with X-Spam: Yes',
                    b'X-Spam: Yes' in m and b'action="add header"' in m, m[:800])
            r.check('suspicious: not in INBOX', find(env, b'CHEAP PILLS') is None)
            rep = send(port, clean.replace(b'Shall we meet at noon?', GTUBE)
                       .replace(b'lunch on friday', b'gtube'))
            r.check('GTUBE: 550 5.7.1', rep.startswith(b'550 5.7.1'), rep)
            r.check('GTUBE: not stored', find(env, b'gtube') is None and
                    find(env, b'gtube', 'Junk') is None)
            rs.stop()
            rep = send(port, clean.replace(b'lunch on friday', b'while down'))
            r.check('rspamd down: 250', rep.startswith(b'250'), rep)
            m = find(env, b'while down') or b''
            r.check('rspamd down: INBOX unscanned', m and b'X-Spam' not in m, m[:400])
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
