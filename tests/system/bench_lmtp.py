"""LMTP delivery rate, Loft against Dovecot's LMTP in the same run: 10 KB
messages, 4 and 16 connections, durability on (Loft fsync on, Dovecot
mail_fsync = optimized), spread over 4 users. Not part of `make test`
(bench/ has the full harness); this is the lmtp engineer's quick figure.

    PYTHONPATH=tests/lib LOFTD=build/loftd LOFTCTL=build/loftctl \
        python3 tests/system/bench_lmtp.py [--messages 2000] [--conns 4,16]
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dovecotenv import Dovecot  # noqa: E402
from loftenv import Loft  # noqa: E402
from lmtplib import Conv, dot_stuff  # noqa: E402

USERS = {'u%d@example.test' % i: 'lmtp-bench-pw-%d' % i for i in range(4)}


def body(n):
    head = 'Message-ID: <bench-%d@test>\r\nSubject: bench %d\r\nFrom: b@remote.test\r\n\r\n' % (n, n)
    line = 'The quick brown fox jumps over the lazy dog, 0123456789 abcdefghij.\r\n'
    return dot_stuff((head + line * (10240 // len(line)))[:10240 - 2] + '\r\n')


def worker(port, conn_no, count, users, errors, lat):
    c = Conv.tcp(port, timeout=60)
    c.cmd('LHLO bench.client')
    for i in range(count):
        rcpt = users[(conn_no + i) % len(users)]
        t0 = time.monotonic()
        c.send('MAIL FROM:<b@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n' % rcpt)
        codes = [c.reply()[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            errors.append(codes)
            return
        c.send(body(conn_no * 1000000 + i))
        code, lines = c.reply()
        if code != 250:
            errors.append(lines)
        lat.append(time.monotonic() - t0)
    c.cmd('QUIT')


def run(port, conns, total):
    errors, lat = [], []
    per = total // conns
    threads = [threading.Thread(target=worker, args=(port, i, per, sorted(USERS), errors, lat))
               for i in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0  # noqa: E731
    return per * conns / dt, p(0.5), p(0.99), errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', type=int, default=2000)
    ap.add_argument('--conns', default='4,16')
    ap.add_argument('--only', default='loft,dovecot')
    args = ap.parse_args()
    conns = [int(x) for x in args.conns.split(',')]
    print('%-8s %5s %9s %8s %8s' % ('server', 'conns', 'msgs/s', 'p50 ms', 'p99 ms'))
    if 'loft' in args.only:
        with Loft(users=USERS, extra={'': {'log_level': 'info'}}) as env:
            for n in conns:
                rate, p50, p99, err = run(env.port('lmtp'), n, args.messages)
                print('%-8s %5d %9.1f %8.1f %8.1f%s' % ('loft', n, rate, p50, p99,
                                                      '  ERRORS %r' % err[:3] if err else ''))
    if 'dovecot' in args.only and Dovecot.available():
        with Dovecot(users=USERS, fsync=True) as dc:
            for n in conns:
                rate, p50, p99, err = run(dc.ports['lmtp'], n, args.messages)
                print('%-8s %5d %9.1f %8.1f %8.1f%s' % ('dovecot', n, rate, p50, p99,
                                                      '  ERRORS %r' % err[:3] if err else ''))


if __name__ == '__main__':
    main()
