#!/usr/bin/env python3
"""The outbound queue shared by two loftd nodes on one PostgreSQL (issue
18, docs/scale-out.md "The queue"): a message submitted on node A goes
out through node B when node A is killed (kill -9 of all its processes)
while it waits for the remote's answer to DATA: node B takes the
recipient once A's lease ran out (in the database's clock) and the
remote gets the message from B; A's cut-off attempt was never
acknowledged by the remote, so the message is delivered once. Also:
`loftctl queue list` on node B shows a message node A queued, and a
message submitted on node B with both nodes up leaves once. Skipped (77)
without PostgreSQL 15."""

import os
import signal
import smtplib
import socket
import sys
import threading
import time

from loftenv import Results, free_port, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER = 'alice@example.test'
LEASE = 6
r = Results()


class StallingSink:
    """An SMTP server that answers DATA at once, except for a message
    whose body holds b'STALL': that one waits (the connection stays
    open, no reply) until the test lets it go, and is then not kept
    (the sender died: nobody acknowledges it)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.kept = []            # (peer, data) of acknowledged messages
        self.stalled = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,),
                             daemon=True).start()

    def _session(self, c):
        f = c.makefile('rb')
        try:
            c.sendall(b'220 sink ESMTP\r\n')
            while True:
                line = f.readline()
                if not line:
                    break
                up = line.upper()
                if up.startswith(b'EHLO'):
                    c.sendall(b'250-sink\r\n250-PIPELINING\r\n'
                              b'250 8BITMIME\r\n')
                elif up.startswith(b'DATA'):
                    c.sendall(b'354 go\r\n')
                    data = b''
                    while True:
                        l2 = f.readline()
                        if l2 in (b'.\r\n', b''):
                            break
                        data += l2
                    if b'STALL' in data and not self.stalled.is_set():
                        # the first try: hold the answer; the sender
                        # is killed meanwhile (the connection drops)
                        self.stalled.set()
                        while f.readline():
                            pass
                        return
                    with self.lock:
                        self.kept.append(data)
                    c.sendall(b'250 2.0.0 queued\r\n')
                elif up.startswith(b'QUIT'):
                    c.sendall(b'221 bye\r\n')
                    break
                else:
                    c.sendall(b'250 ok\r\n')
        except OSError:
            pass
        finally:
            c.close()

    def count(self, marker):
        with self.lock:
            return sum(1 for d in self.kept if marker in d)


def submit(env, marker):
    c = smtplib.SMTP('127.0.0.1', env.port('submission'), timeout=30 * SLOW)
    c.login(USER, env.users[USER])
    c.sendmail(USER, ['x@remote.example'],
               ('From: %s\r\nTo: x@remote.example\r\nSubject: %s\r\n\r\n'
                'body %s\r\n' % (USER, marker, marker)).encode())
    c.quit()


def wait(cond, bound):
    deadline = time.monotonic() + bound * SLOW
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def sender_extra(sink, **queue):
    """What a node sending through sink has ([queue] keys beside)."""
    return {'queue': dict({'smarthost': '127.0.0.1:%d' % sink.port,
                           'smarthost_tls': 'none', 'retry_min': '1s',
                           'retry_max': '2s'}, **queue),
            'auth': {'throttle': 'no'}}


def own_submission(i):
    """A submission listener of node i's own."""
    return {'submission': {'listen': '127.0.0.1:%d' % free_port()}}


def main():
    if skip_without_postgres():
        return 77
    sink = StallingSink()
    with ScaleEnv(nodes=2, extra=sender_extra(sink, lease='%ds' % LEASE),
                  node_extra=own_submission) as env:
        run(*env.nodes, sink)
    return r.finish()


def run(na, nb, sink):
    # both nodes up: a message from B leaves once
    submit(nb, 'PLAIN1')
    r.check('a message submitted on node B reaches the remote',
            wait(lambda: sink.count(b'PLAIN1') >= 1, 60))

    # node A takes a message and dies waiting for the remote's answer
    submit(na, 'STALL1')
    r.check('node A is delivering (the remote holds DATA)',
            sink.stalled.wait(60 * SLOW))
    rc, out, err = nb.loftctl('queue', 'list')
    r.check('node B\'s loftctl lists node A\'s message',
            rc == 0 and 'x@remote.example' in out, (rc, out, err))
    t0 = time.monotonic()
    for pid in na.children().values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    na.kill9()
    r.check('node B delivers it once node A\'s lease ran out',
            wait(lambda: sink.count(b'STALL1') >= 1, 4 * LEASE + 60))
    took = time.monotonic() - t0
    print('node A killed: node B delivered after %.1f s (lease %d s)'
          % (took, LEASE))
    # A renewed its lease every third of it until the kill, so it runs
    # out between 2/3 of a lease and a whole one after it
    r.check('not before the lease ran out', took >= LEASE * 2 / 3 - 1, took)
    # nothing more comes (no second delivery, the queue is empty)
    r.check('the queue is empty',
            wait(lambda: nb.loftctl('queue', 'list')[1].strip() == '', 30),
            nb.loftctl('queue', 'list')[1])
    r.check('delivered once', sink.count(b'STALL1') == 1,
            sink.count(b'STALL1'))
    r.check('the first message was delivered once too',
            sink.count(b'PLAIN1') == 1, sink.count(b'PLAIN1'))


if __name__ == '__main__':
    sys.exit(main())
