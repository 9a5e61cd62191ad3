#!/usr/bin/env python3
"""IMAP COMPRESS=DEFLATE (RFC 4978) under load: big responses written by
a worker while the client reads slowly and sends more commands, on plain
and TLS connections. Every response must arrive intact and the server
must stay responsive (this is what mbsync does on every sync)."""

import socket
import sys
import threading
import time
import zlib

from imapconv import Conv
from loftenv import Loft, Results

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()
BIG = 'Subject: big\r\n\r\n' + ''.join('%06d %s\r\n' % (i, 'y' * 90) for i in range(5000))


def compressed_session(env, tls, name):
    c = Conv(env.raw('imaps' if tls else 'imap'), r)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    c.run('COMPRESS DEFLATE', 'OK')
    comp = zlib.compressobj(wbits=-15)
    dec = zlib.decompressobj(wbits=-15)
    rounds = 30
    got = bytearray()
    stop = threading.Event()

    def reader():
        c.sock.settimeout(30)
        while not stop.is_set():
            try:
                data = c.sock.recv(4096)
            except (socket.timeout, OSError):
                break
            if not data:
                break
            got.extend(dec.decompress(data))
            time.sleep(0.001)   # a slow reader keeps the output buffer full
            if got.count(b' OK ') >= rounds:
                break

    th = threading.Thread(target=reader)
    th.start()
    for i in range(rounds):
        c.sock.sendall(comp.compress(b'z%d FETCH 1 BODY.PEEK[]\r\n' % i) +
                       comp.flush(zlib.Z_SYNC_FLUSH))
        time.sleep(0.01)
    th.join(60)
    stop.set()
    ok = got.count(b' OK ') >= rounds
    r.check('%s: %d compressed big FETCHes answered' % (name, rounds), ok,
            '%d bytes, %d OK' % (len(got), got.count(b' OK ')))
    r.check('%s: bodies intact' % name, got.count(b'004999 ') >= rounds if ok else False,
            '%d bodies, %d bytes, tail %r' % (got.count(b'004999 '), len(got), bytes(got[-300:])))
    c.close()


with Loft() as env:
    a = Conv(env.raw('imap'), r)
    a.login(USER, PW)
    a.run('APPEND INBOX {%d+}\r\n%s' % (len(BIG), BIG), 'OK')
    compressed_session(env, False, 'plain')
    compressed_session(env, True, 'tls')
    w = Conv(env.raw('imap'), r, timeout=5)
    w.login(USER, PW)
    r.check('server responsive afterwards', w.run('NOOP', 'OK')[1] is not None)

sys.exit(r.finish())
