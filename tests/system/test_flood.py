"""The flood of issue 10: 20,000 wrong passwords from 200 loopback
addresses (1,000 connections) while the account's owner logs in again and
again from their own address. The owner's logins stay fast (p99 under
200 ms, stretched by loftenv.load_scale() on an overloaded machine: a
login found in the cache never waits for the guessers' hashes,
and the owner's address is slowed only by its own failures); loftd stops
at once right after the flood (no queued login is waited for); and it
never checks a password for a client that has gone.

The guessers try the owner's account and others; passwords are hashed
with a noticeable argon2id cost (4 MiB) on one hash thread, so their
hashes queue while the owner's cache hits must not. Default throttle
settings otherwise (3 s cap, a ban after 10 failures).
"""

import os
import resource
import select
import signal
import socket
import sys
import time

from flood import flood
from loftenv import Loft, Results, SLOW, load_scale

r = Results()
ATTEMPTS = 20000
OWNER_SRC = '127.0.0.250'


def queued_while_busy(env, n=1000):
    """n clients connect while the mail process accepts none (stopped, as
    a server short of CPU is for a moment): the kernel holds every one
    for accept(2), so each is connected at once and gets its greeting
    when loftd runs again. With a full accept queue the kernel drops a
    SYN and the client tries again only 1, 2, 4 ... s later (the owner's
    login that waited 28.7 s during the flood, with libevent's queue of
    128): those stay unconnected while loftd is stopped."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mail = env.children()['mail']
    socks = []
    os.kill(mail, signal.SIGSTOP)
    try:
        for i in range(n):
            # 5 per address (the per-address limit), away from the
            # flood's and the owner's addresses
            s = socket.socket()
            s.bind(('127.1.%d.%d' % (i // 5 // 250, i // 5 % 250 + 1), 0))
            s.setblocking(False)
            s.connect_ex(('127.0.0.1', env.ports['imap']))
            socks.append(s)
        # connected: writable (a dropped SYN stays pending while loftd
        # is stopped, so this waits only for the kernel's handshakes)
        pending = {s.fileno(): s for s in socks}
        poll = select.poll()
        for fd in pending:
            poll.register(fd, select.POLLOUT)
        deadline = time.monotonic() + 20 * SLOW
        while pending and time.monotonic() < deadline:
            for fd, _ in poll.poll(200):
                s = pending.pop(fd, None)
                poll.unregister(fd)
                if s is not None and s.getsockopt(
                        socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    pending[-fd] = s        # refused: not connected
        connected = n - len(pending)
    finally:
        os.kill(mail, signal.SIGCONT)
    # every greeting, as long as they keep coming
    greeted = 0
    waiting = {s.fileno(): s for s in socks}
    poll = select.poll()
    for fd in waiting:
        poll.register(fd, select.POLLIN)
    last = time.monotonic()
    while waiting and time.monotonic() - last < 30 * SLOW:
        for fd, _ in poll.poll(200):
            poll.unregister(fd)
            s = waiting.pop(fd)
            try:
                greeted += s.recv(64).startswith(b'* OK')
            except OSError:
                pass
            last = time.monotonic()
    for s in socks:
        s.close()
    return connected, greeted


def main():
    alice = 'alice@example.test'
    extra = {'': {'log_level': 'info'},
             'auth': {'argon2_m_cost': '4M', 'argon2_t_cost': '1',
                      'hash_threads': '1'},
             'limits': {'io_threads': '2', 'worker_threads': '8'}}
    with Loft(extra=extra) as env:
        pw = env.users[alice]
        # The owner's device logged in before (a known pair; the cache).
        c = env.imap()
        c.login(alice, pw)
        c.logout()
        import socket
        s = socket.create_connection(('127.0.0.1', env.ports['imap']),
                                     source_address=(OWNER_SRC, 0))
        f = s.makefile('rb')
        f.readline()
        s.sendall(b'a LOGIN %s "%s"\r\n' % (alice.encode(), pw.encode()))
        r.check('owner logs in before the flood',
                f.readline().startswith(b'a OK'))
        s.close()
        connected, greeted = queued_while_busy(env)
        r.check('1,000 connections made while loftd accepts none are all '
                'held for it (none has its SYN dropped)', connected == 1000,
                connected)
        r.check('each of them gets its greeting once loftd runs again',
                greeted == 1000, greeted)
        stopped = {}

        def stop_now():
            t0 = time.monotonic()
            env.proc.send_signal(signal.SIGTERM)
            env.proc.wait(120 * SLOW)
            stopped['seconds'] = time.monotonic() - t0
            stopped['rc'] = env.proc.returncode

        res = flood(env.ports['imap'], attempts=ATTEMPTS, addresses=200,
                    conns_per_address=5,
                    targets=[alice, 'bob@example.test',
                             'nobody@example.test', 'admin@example.test'],
                    legit=(OWNER_SRC, alice, pw),
                    # as long as answers keep coming (under a CPU hog
                    # 16,100 came in 240 s), within ctest's 900 s
                    limit=max(240 * SLOW, 700), stall=30 * SLOW,
                    on_end=stop_now)
        env._reap()
        print('flood: %(answered)d answered in %(seconds).1f s (%(no)d NO, '
              '%(refused_at_connect)d refused at connect, %(closed)d '
              'closed); owner: %(legit_logins)d logins, p50 %(p50_ms).1f ms,'
              ' p99 %(p99_ms).1f ms, max %(max_ms).1f ms, %(legit_failures)d '
              'failed; from connect: p99 %(connect_p99_ms).1f ms, max '
              '%(connect_max_ms).1f ms' % res)
        print('stop right after the flood: %.2f s' % stopped.get('seconds', -1))
        r.check('the flood ran to 20,000 answered attempts',
                res['answered'] >= ATTEMPTS, res)
        r.check('the owner logged in throughout', res['legit_logins'] >= 50
                and res['legit_failures'] == 0, res)
        # 200 ms on a machine that is not overloaded; on a shared one the
        # bound stretches with the load (queued behind the guessers'
        # hashes, the owner would wait seconds: 1,000 connections' worth).
        bound = 200 * SLOW * load_scale()
        r.check('owner p99 under %.0f ms' % bound,
                res['p99_ms'] is not None and res['p99_ms'] < bound,
                res['p99_ms'])
        # what the owner waits for, the connection included
        r.check('owner p99 from connect under %.0f ms' % bound,
                res['connect_p99_ms'] is not None and
                res['connect_p99_ms'] < bound, res['connect_p99_ms'])
        r.check('loftd stops at once after the flood (SIGTERM)',
                stopped.get('seconds', 99) < 3 * SLOW and
                stopped.get('rc') == 0, stopped)
        log = env.log()
        r.check('guessers were banned', 'banned for' in log)
        r.check('checks of clients that left were dropped, not made',
                'dropped: the client left' in log or
                res['refused_at_connect'] > 0)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
