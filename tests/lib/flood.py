"""A password-guessing flood against an IMAP server on loopback, and a
legitimate user logging in meanwhile: for tests/system/test_flood.py and
bench/flood.py (Loft beside Dovecot).

    from flood import flood
    res = flood(port, attempts=20000, addresses=200, conns_per_address=5,
                targets=[...], legit=(src, user, password))
    res['p50_ms'], res['p99_ms'], res['answered'], ...

Attackers come from 127.0.0.10 onwards, one loopback address each (Linux
routes all of 127.0.0.0/8 to lo), conns_per_address connections each; a
connection sends LOGIN with a wrong password for one of `targets` right
after connecting (before the greeting, as guessing tools do) and again
after every NO, and reconnects when the server closes. An attempt counts
once the server answered it (NO, BYE or a close). The flood ends after
`attempts` answers, or at `limit` seconds. The legitimate user logs in
from its own address in a separate process (so the flood's event loop
cannot delay its clock): connect, LOGIN, LOGOUT, every `legit_every`
seconds; the time from sending LOGIN to its OK is what is reported, and
beside it the time from connect() to that OK (what the user waits for,
the connection's queueing in the kernel and the greeting included).
Everything stays on loopback and stops by itself.
"""

import asyncio
import multiprocessing
import resource
import socket
import time


def _legit(port, src, user, password, every, stop, out):
    times, full, failures = [], [], 0
    while not stop.is_set():
        t_next = time.monotonic() + every
        try:
            t_conn = time.monotonic()
            s = socket.create_connection(('127.0.0.1', port), timeout=30,
                                         source_address=(src, 0))
            f = s.makefile('rb')
            f.readline()
            t0 = time.monotonic()
            s.sendall(b'a LOGIN %s "%s"\r\n' % (user.encode(),
                                                password.encode()))
            while True:
                line = f.readline()
                if not line or line.startswith(b'a '):
                    break
            dt = time.monotonic() - t0
            if line.startswith(b'a OK'):
                times.append(dt)
                full.append(dt + (t0 - t_conn))
            else:
                failures += 1
            s.sendall(b'b LOGOUT\r\n')
            s.close()
        except OSError:
            failures += 1
        left = t_next - time.monotonic()
        if left > 0:
            stop.wait(left)
    out.put((times, full, failures))


class _Counter:
    def __init__(self, goal):
        self.goal = goal
        self.answered = 0
        self.refused_at_connect = 0
        self.no = 0
        self.closed = 0
        self.done = asyncio.Event()

    def add(self, what):
        self.answered += 1
        setattr(self, what, getattr(self, what) + 1)
        if self.answered >= self.goal:
            self.done.set()


async def _attacker(port, src, targets, k, counter):
    n = k
    while not counter.done.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                '127.0.0.1', port, local_addr=(src, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            user = targets[n % len(targets)]
            n += 1
            writer.write(b'a LOGIN %s wrong-%d\r\n' % (user.encode(), n))
            greeting = await reader.readline()
            if not greeting.startswith(b'* OK'):
                counter.add('refused_at_connect')
                continue
            while not counter.done.is_set():
                line = await reader.readline()
                if not line:
                    counter.add('closed')
                    break
                if line.startswith(b'* BYE'):
                    counter.add('closed')
                    break
                if line.startswith(b'a '):
                    counter.add('no')
                    user = targets[n % len(targets)]
                    n += 1
                    writer.write(b'a LOGIN %s wrong-%d\r\n'
                                 % (user.encode(), n))
        except (OSError, asyncio.IncompleteReadError):
            counter.add('closed')
        finally:
            writer.close()


async def _flood(port, attempts, addresses, per_address, targets, limit,
                 stall=None):
    counter = _Counter(attempts)
    tasks = []
    for a in range(addresses):
        src = '127.0.%d.%d' % ((10 + a) // 250, (10 + a) % 250 + 1)
        for k in range(per_address):
            tasks.append(asyncio.ensure_future(
                _attacker(port, src, targets, a * per_address + k, counter)))
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline and counter.answered != last:
        last = counter.answered
        left = deadline - time.monotonic()
        try:
            await asyncio.wait_for(counter.done.wait(),
                                   left if stall is None else min(left, stall))
            break
        except asyncio.TimeoutError:
            if stall is None:
                break
    return counter, tasks


def flood(port, attempts=20000, addresses=200, conns_per_address=5,
          targets=('alice@example.test',), legit=None, legit_every=0.05,
          limit=300, on_end=None, stall=None):
    """Runs the flood until attempts are answered or limit seconds pass;
    with stall, also until no attempt was answered for stall seconds (a
    test waits for its 20,000 answers as long as they come: a loaded
    machine answers slower). on_end() is called the moment it ends, with
    the attackers still connected (e.g. to stop the server then). Returns
    a dict of counts and the legitimate user's latencies."""
    # 1,000 sockets and more: as many descriptors as the hard limit allows
    # (the soft limit is often 1024).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = multiprocessing.get_context('fork')
    stop, out = ctx.Event(), ctx.Queue()
    proc = None
    if legit is not None:
        src, user, password = legit
        proc = ctx.Process(target=_legit, args=(port, src, user, password,
                                                legit_every, stop, out))
        proc.start()
    loop = asyncio.new_event_loop()
    t0 = time.monotonic()
    counter, tasks = loop.run_until_complete(_flood(
        port, attempts, addresses, conns_per_address, list(targets), limit,
        stall))
    elapsed = time.monotonic() - t0
    # The owner's last login finishes before on_end (which may stop the
    # server): it must not count as a failure.
    stop.set()
    times, full, failures = [], [], 0
    if proc is not None:
        times, full, failures = out.get(timeout=120)
        proc.join(60)
    end_result = on_end() if on_end is not None else None
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()
    times.sort()
    full.sort()

    def pct(p, times=times):
        if not times:
            return None
        return 1000 * times[min(len(times) - 1, int(len(times) * p))]

    return {'answered': counter.answered, 'no': counter.no,
            'refused_at_connect': counter.refused_at_connect,
            'closed': counter.closed, 'seconds': elapsed,
            'legit_logins': len(times), 'legit_failures': failures,
            'p50_ms': pct(0.50), 'p99_ms': pct(0.99),
            'max_ms': 1000 * times[-1] if times else None,
            'connect_p99_ms': pct(0.99, full),
            'connect_max_ms': 1000 * full[-1] if full else None,
            'on_end': end_result}
