#!/usr/bin/env python3
"""PROXY protocol v1 and v2 (HAProxy's spec) on every TCP listener from
[proxy] trusted (issue 18; src/net/net-proxy.c).

A Python sender plays the load balancer from 127.0.0.2 (trusted: its
header is required); clients from 127.0.0.1 are untrusted (a PROXY header
from them is refused). Checked:
- IMAP behind v1 and v2 (IPv4 and IPv6 clients, v2 with a TLV): the
  client address from the header is the one logged at login and the one
  banned after failed logins (ban_after), while the balancer's own
  address and other clients behind it stay admitted; v2 LOCAL (a health
  check) keeps the balancer's address;
- the header split over two writes; bytes right behind the header (an
  HTTP request in the same packet, a TLS ClientHello on IMAPS) are the
  connection's own: POP3, LMTP, HTTP /healthz and IMAPS all work behind
  the header;
- refused: from 127.0.0.2 a connection without a header, with a
  malformed one, with a v2 header of another version; from 127.0.0.1 a
  v1 or v2 header sent after the greeting.
"""

import re
import socket
import ssl
import struct
import sys
import time

from loftenv import Loft, Results, SLOW, client_tls_context

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
PROXY = '127.0.0.2'
SIG = b'\r\n\r\n\x00\r\nQUIT\n'
r = Results()


def v1(src, sport=40000, dst='127.0.0.1', dport=143):
    fam = 'TCP6' if ':' in src else 'TCP4'
    if ':' in src and ':' not in dst:
        dst = '::1'
    return ('PROXY %s %s %s %d %d\r\n' % (fam, src, dst, sport,
                                           dport)).encode()


def v2(src, sport=40000, dst='127.0.0.1', dport=143, local=False, tlv=b''):
    if local:
        return SIG + bytes([0x20, 0x00]) + struct.pack('!H', 0)
    if ':' in src:
        addrs = (socket.inet_pton(socket.AF_INET6, src) +
                 socket.inet_pton(socket.AF_INET6, '::1') +
                 struct.pack('!HH', sport, dport))
        fam = 0x21
    else:
        addrs = (socket.inet_aton(src) + socket.inet_aton(dst) +
                 struct.pack('!HH', sport, dport))
        fam = 0x11
    body = addrs + tlv
    return SIG + bytes([0x21, fam]) + struct.pack('!H', len(body)) + body


def connect(port, src):
    return socket.create_connection(('127.0.0.1', port), timeout=20 * SLOW,
                                    source_address=(src, 0))


def read_line(s):
    data = b''
    while not data.endswith(b'\n'):
        try:
            chunk = s.recv(1)
        except (socket.timeout, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk
    return data


def closed_without_answer(s):
    """True when the server closes the connection (EOF or reset) without
    writing anything more."""
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return data == b''


def imap_login(s, user, pw, tag='a1'):
    s.sendall(('%s LOGIN %s %s\r\n' % (tag, user, pw)).encode())
    while True:
        line = read_line(s)
        if not line or line.startswith(tag.encode() + b' '):
            return line


def proxied(env, proto, header, first=b''):
    s = connect(env.port(proto), PROXY)
    s.sendall(header + first)
    return s


def main():
    extra = {'proxy': {'trusted': '%s/32' % PROXY},
             # proxied clients are not loopback: plain LOGIN allowed here
             'auth': {'ban_after': '3', 'throttle_max_delay': '200ms',
                      'allow_cleartext': 'yes'}}
    with Loft(extra=extra) as env:
        imap(env)
        others(env)
        refused(env)
    return r.finish()


def imap(env):
    port = env.port('imap')
    # v1, an IPv4 client: its address is the one logged and the one banned
    for i in range(3):
        s = proxied(env, 'imap', v1('203.0.113.7', 40000 + i))
        r.check('v1: greeting behind the header',
                read_line(s).startswith(b'* OK'))
        line = imap_login(s, USER, 'wrong-password-%d' % i)
        r.check('v1: a wrong password is NO', b' NO ' in line, line)
        s.close()
    s = proxied(env, 'imap', v1('203.0.113.7', 41000))
    line = read_line(s)
    r.check('v1: the client address from the header is banned',
            line.startswith(b'* BYE [UNAVAILABLE]'), line)
    s.close()
    # another client behind the same balancer, v2 and split over writes
    s = connect(port, PROXY)
    h = v2('203.0.113.8', tlv=b'\x04\x00\x02ab')   # PP2_TYPE_NOOP
    s.sendall(h[:7])
    time.sleep(0.05)
    s.sendall(h[7:])
    r.check('v2 split in two writes: greeting', read_line(s).startswith(b'* OK'))
    line = imap_login(s, USER, PW)
    r.check('v2: another client behind the balancer logs in', b' OK' in line,
            line)
    s.close()
    wait_log(env, 'login user=%s from 203.0.113.8' % USER,
             'v2: the client address is in the login log line')
    # an IPv6 client
    s = proxied(env, 'imap', v2('2001:db8::5'))
    read_line(s)
    line = imap_login(s, USER, PW)
    r.check('v2 IPv6 client: LOGIN OK', b' OK' in line, line)
    s.close()
    wait_log(env, 'login user=%s from 2001:db8::5' % USER,
             'v2 IPv6: the client address is logged')
    s = proxied(env, 'imap', v1('2001:db8::6'))
    read_line(s)
    line = imap_login(s, USER, PW)
    r.check('v1 TCP6 client: LOGIN OK', b' OK' in line, line)
    s.close()
    # LOCAL (the balancer's health check): its own address
    s = proxied(env, 'imap', v2('', local=True))
    read_line(s)
    line = imap_login(s, USER, PW)
    r.check('v2 LOCAL: LOGIN OK', b' OK' in line, line)
    s.close()
    wait_log(env, 'login user=%s from %s' % (USER, PROXY),
             'v2 LOCAL: the balancer\'s own address is logged')
    # the balancer itself and untrusted clients are not banned
    s = socket.create_connection(('127.0.0.1', port), timeout=20 * SLOW)
    r.check('a direct client is not banned with the proxied one',
            read_line(s).startswith(b'* OK'))
    line = imap_login(s, USER, PW)
    r.check('a direct client logs in', b' OK' in line, line)
    s.close()


def wait_log(env, text, name):
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:
        if text in env.log():
            r.check(name, True)
            return
        time.sleep(0.05)
    r.check(name, False, text)


def others(env):
    s = proxied(env, 'pop3', v1('198.51.100.1', dport=110))
    r.check('POP3 behind v1: +OK', read_line(s).startswith(b'+OK'))
    s.sendall(b'QUIT\r\n')
    s.close()
    s = proxied(env, 'lmtp', v2('198.51.100.2', dport=24))
    r.check('LMTP behind v2: 220', read_line(s).startswith(b'220 '))
    s.sendall(b'QUIT\r\n')
    s.close()
    # the request in the same packet as the header
    s = proxied(env, 'http', v1('198.51.100.3', dport=80),
                b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close'
                b'\r\n\r\n')
    status = read_line(s)
    r.check('HTTP request right behind the header: 200',
            status.startswith(b'HTTP/1.1 200'), status)
    s.close()
    # implicit TLS: the ClientHello follows the header
    raw = connect(env.port('imaps'), PROXY)
    raw.sendall(v2('198.51.100.4', dport=993))
    try:
        t = client_tls_context().wrap_socket(raw, server_hostname='localhost')
        r.check('IMAPS behind v2: greeting over TLS',
                read_line(t).startswith(b'* OK'))
        line = imap_login(t, USER, PW)
        r.check('IMAPS behind v2: LOGIN OK', b' OK' in line, line)
        t.close()
    except (ssl.SSLError, OSError) as e:
        r.check('IMAPS behind v2: TLS handshake', False, e)
    wait_log(env, 'login user=%s from 198.51.100.4' % USER,
             'IMAPS behind v2: the client address is logged')


def refused(env):
    port = env.port('imap')
    # trusted, no header: the first bytes are a command
    s = connect(port, PROXY)
    s.sendall(b'a1 CAPABILITY\r\n')
    r.check('trusted without a header: closed, no greeting',
            closed_without_answer(s))
    s.close()
    # trusted, malformed
    for name, h in (('bad address', b'PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n'),
                    ('bad port', b'PROXY TCP4 192.0.2.1 127.0.0.1 1 65536\r\n'),
                    ('family mismatch',
                     b'PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n'),
                    ('v2 version 3', SIG + b'\x31\x11\x00\x0c' + b'\0' * 12),
                    ('v2 IPv4 cut short', SIG + b'\x21\x11\x00\x04' + b'\0' * 4),
                    ('no CRLF in 107 bytes', b'PROXY TCP4 ' + b'1' * 120)):
        s = connect(port, PROXY)
        s.sendall(h)
        r.check('trusted, %s: closed, no greeting' % name,
                closed_without_answer(s))
        s.close()
    wait_log(env, 'connection from proxy %s refused' % PROXY,
             'a refused proxy connection is logged')
    # untrusted: a header after the greeting is refused
    for name, h in (('v1', v1('192.0.2.9')), ('v2', v2('192.0.2.9'))):
        s = socket.create_connection(('127.0.0.1', port), timeout=20 * SLOW)
        r.check('untrusted %s: greeting' % name,
                read_line(s).startswith(b'* OK'))
        s.sendall(h + b'a1 LOGIN %s %s\r\n' % (USER.encode(), PW.encode()))
        r.check('untrusted %s header: closed without an answer' % name,
                closed_without_answer(s))
        s.close()
    wait_log(env, 'which is not in [proxy] trusted',
             'the untrusted PROXY header is logged')
    # and an untrusted client that sends none works
    s = socket.create_connection(('127.0.0.1', port), timeout=20 * SLOW)
    read_line(s)
    line = imap_login(s, USER, PW)
    r.check('untrusted without a header: LOGIN OK', b' OK' in line, line)
    s.close()


if __name__ == '__main__':
    sys.exit(main())
