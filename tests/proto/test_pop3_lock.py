#!/usr/bin/env python3
"""POP3 maildrop lock and dropped connections (issue 9 item 8): a client
that drops its connection in TRANSACTION state (no QUIT) and logs in
again at once is never refused with [IN-USE] for its own dead session;
a second live session still is, and nothing of the dropped session's
DELE is applied (RFC 1939 6: no UPDATE state without QUIT)."""

import socket
import sys
import threading

from loftenv import Loft, Results
from pop3client import Pop3

USER = 'alice@example.test'
ROUNDS = 50
r = Results()


def cmd(c, line):
    c.send(line + '\r\n')
    return c.line().decode()


def login(env):
    c = Pop3.connect(env)
    cmd(c, 'USER ' + USER)
    return c, cmd(c, 'PASS ' + PW)


def busy(stop):
    """CPU contention inside the test: the I/O thread that must notice the
    dropped socket competes with these."""
    x = 0
    while not stop.is_set():
        x += 1


with Loft() as env:
    PW = env.users[USER]
    l = env.lmtp()
    l.ehlo('client.example.test')
    for i in range(3):
        l.sendmail('x@example.net', [USER], b'Subject: m%d\r\n\r\nbody\r\n' % i)
    l.quit()

    stop = threading.Event()
    hogs = [threading.Thread(target=busy, args=(stop,)) for _ in range(2)]
    for h in hogs:
        h.start()
    refused = []
    try:
        for i in range(ROUNDS):
            c, reply = login(env)
            if not reply.startswith('+OK'):
                refused.append((i, reply))
                c.sock.close()
                continue
            cmd(c, 'DELE 1')
            # dropped: no QUIT, the socket just goes
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\0' * 8)
            c.sock.close()
    finally:
        stop.set()
        for h in hogs:
            h.join()
    r.check('%d immediate logins after dropped sessions: none refused' % ROUNDS,
            not refused, refused[:5])

    c, reply = login(env)
    r.check('login after the drops', reply.startswith('+OK'), reply)
    stat = cmd(c, 'STAT')
    r.check('no DELE of a dropped session was applied', stat.startswith('+OK 3 '), stat)
    # a live session still holds the lock
    d, reply = login(env)
    r.check('a second live session is refused [IN-USE]',
            reply.startswith('-ERR [IN-USE]'), reply)
    d.sock.close()
    cmd(c, 'QUIT')
    c.sock.close()
    c, reply = login(env)
    r.check('login after QUIT', reply.startswith('+OK'), reply)
    cmd(c, 'QUIT')
    c.sock.close()

sys.exit(r.finish())
