#!/usr/bin/env python3
"""IMAP: greeting, CAPABILITY, LOGIN, AUTHENTICATE (PLAIN, LOGIN,
SCRAM-SHA-256, with and without SASL-IR), STARTTLS (and the bytes pipelined
after it), UNAUTHENTICATE, ID, ENABLE, NAMESPACE, COMPRESS, LOGOUT,
connection limits and the login timeout."""

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
import zlib

from imapconv import Conv
from loftenv import Loft, Results, client_tls_context

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def scram_exchange(c, user, password, ir=True):
    """A SCRAM-SHA-256 client (RFC 7677) speaking through Conv."""
    nonce = b64(os.urandom(18))
    first_bare = 'n=%s,r=%s' % (user, nonce)
    first = 'n,,' + first_bare
    tag = c.next_tag()
    if ir:
        c.send('%s AUTHENTICATE SCRAM-SHA-256 %s\r\n' % (tag, b64(first)))
    else:
        c.send('%s AUTHENTICATE SCRAM-SHA-256\r\n' % tag)
        c.expect(r'^\+ ?$', name='scram empty challenge')
        c.send(b64(first) + '\r\n')
    ch = c.expect(r'^\+ ', name='scram server-first')
    if ch is None:
        return None
    server_first = base64.b64decode(ch[2:]).decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    salt = base64.b64decode(attrs['s'])
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_wo = 'c=biws,r=%s' % attrs['r']
    auth_msg = ','.join([first_bare, server_first, final_wo]).encode()
    sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    c.send(b64(final_wo + ',p=' + b64(proof)) + '\r\n')
    resp = c.read_response()
    if resp.startswith('+ '):
        server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
        want = 'v=' + b64(hmac.new(server_key, auth_msg, hashlib.sha256).digest())
        c.check('scram server signature', base64.b64decode(resp[2:]).decode() == want,
                resp)
        c.send('\r\n')
        resp = c.read_response()
    return resp.startswith(tag + ' OK')


with Loft(extra={'imap': {'timeout_login': '2s',
                          'max_connections_per_user': '3'}}) as env:
    # ---- greeting and capabilities ------------------------------------
    c = Conv(env.raw('imap'), r)
    r.check('greeting has capabilities',
            c.greeting and 'IMAP4rev1' in c.greeting and 'IMAP4rev2' in c.greeting
            and 'STARTTLS' in c.greeting and 'AUTH=SCRAM-SHA-256' in c.greeting,
            c.greeting)
    lines, _ = c.run('CAPABILITY', 'OK', [r'^\* CAPABILITY IMAP4rev1 IMAP4rev2 .*SASL-IR'])
    c.run('CAPABILITY extra', 'BAD \\[CLIENTBUG\\]')
    c.run('NOOP')
    c.run('SELECT INBOX', 'BAD \\[CLIENTBUG\\] Command not valid before login')
    c.run('FOO', 'BAD \\[CLIENTBUG\\] Unknown command')
    c.run('LOGIN', 'BAD \\[CLIENTBUG\\]')
    c.run('LOGIN onlyuser', 'BAD \\[CLIENTBUG\\]')
    c.run('LOGIN a b c', 'BAD \\[CLIENTBUG\\]')
    c.run('LOGIN (a) b', 'BAD \\[CLIENTBUG\\]')
    c.run('LOGIN %s wrong' % USER, 'NO \\[AUTHENTICATIONFAILED\\]')
    c.run('LOGIN nobody@example.test x', 'NO \\[AUTHENTICATIONFAILED\\]')
    c.run('ID ("name" "test" "version" "1")', 'OK', [r'^\* ID \("name" "Loft"'])
    c.run('ID NIL', 'OK')
    c.run('ID ("odd")', 'BAD \\[CLIENTBUG\\]')
    c.run('ID', 'BAD \\[CLIENTBUG\\]')
    # LOGIN with literals (sync and LITERAL+)
    tag = c.next_tag()
    c.send('%s LOGIN {%d}\r\n' % (tag, len(USER)))
    c.expect(r'^\+ ', name='literal continuation')
    c.send('%s {%d+}\r\n%s\r\n' % (USER, len(PW), PW))
    _, t = c.collect(tag, 'OK \\[CAPABILITY [^]]*NAMESPACE', name='login with literals')
    c.run('LOGIN x y', 'BAD \\[CLIENTBUG\\] Command not valid after login')
    c.run('AUTHENTICATE PLAIN', 'BAD \\[CLIENTBUG\\]')
    c.run('CAPABILITY', 'OK', [r'QUOTA=RES-STORAGE', r'APPENDLIMIT=\d+', r'COMPRESS=DEFLATE',
                               r'UTF8=ACCEPT', r'CONDSTORE', r'QRESYNC', r'MOVE',
                               r'LIST-STATUS', r'SPECIAL-USE', r'UNAUTHENTICATE',
                               r' SORT=DISPLAY', r' WITHIN', r' ESEARCH',
                               r' THREAD=REFERENCES', r' BINARY'],
          absent=[r'STARTTLS', r'AUTH='])
    c.run('NAMESPACE', 'OK', [r'^\* NAMESPACE \(\(\"\" "/"\)\)'
                              r' \(\("Other Users/" "/"\)\) \(\("Shared/" "/"\)\)$'])
    c.run('ENABLE', 'BAD \\[CLIENTBUG\\]')
    c.run('ENABLE CONDSTORE X-UNKNOWN', 'OK', [r'^\* ENABLED CONDSTORE$'])
    c.run('ENABLE CONDSTORE', 'OK', [r'^\* ENABLED$'])
    c.run('ENABLE (CONDSTORE)', 'BAD \\[CLIENTBUG\\]')
    c.run('UNAUTHENTICATE', 'OK')
    c.run('SELECT INBOX', 'BAD \\[CLIENTBUG\\] Command not valid before login')
    c.run('CAPABILITY', 'OK', [r'AUTH=PLAIN'])
    c.close()

    # ---- AUTHENTICATE ---------------------------------------------------
    c = Conv(env.raw('imap'), r)
    c.run('AUTHENTICATE PLAIN ' + b64('\0%s\0wrong' % USER), 'NO \\[AUTHENTICATIONFAILED\\]')
    c.run('AUTHENTICATE X-NOPE', 'NO \\[CANNOT\\]')
    c.run('AUTHENTICATE PLAIN !!!notbase64', 'BAD \\[CLIENTBUG\\]')
    # cancel with "*"
    tag = c.next_tag()
    c.send('%s AUTHENTICATE PLAIN\r\n' % tag)
    c.expect(r'^\+ ?$', name='plain empty challenge')
    c.send('*\r\n')
    c.collect(tag, 'BAD', name='authenticate cancelled')
    # without initial response
    tag = c.next_tag()
    c.send('%s AUTHENTICATE PLAIN\r\n' % tag)
    c.expect(r'^\+ ?$', name='plain challenge')
    c.send(b64('\0%s\0%s' % (USER, PW)) + '\r\n')
    c.collect(tag, 'OK \\[CAPABILITY', name='plain without IR')
    c.close()

    c = Conv(env.raw('imap'), r)
    c.run('AUTHENTICATE PLAIN ' + b64('\0%s\0%s' % (USER, PW)), 'OK \\[CAPABILITY')
    c.close()

    c = Conv(env.raw('imap'), r)
    tag = c.next_tag()
    c.send('%s AUTHENTICATE LOGIN\r\n' % tag)
    c.expect(r'^\+ ', name='login mech username prompt')
    c.send(b64(USER) + '\r\n')
    c.expect(r'^\+ ', name='login mech password prompt')
    c.send(b64(PW) + '\r\n')
    c.collect(tag, 'OK', name='AUTHENTICATE LOGIN')
    c.close()

    for ir in (True, False):
        c = Conv(env.raw('imap'), r)
        r.check('scram-sha-256 ir=%s' % ir, scram_exchange(c, USER, PW, ir))
        c.close()
    c = Conv(env.raw('imap'), r)
    r.check('scram wrong password', scram_exchange(c, USER, 'nope') is False)
    c.close()

    # ---- STARTTLS, with bytes pipelined after it (discarded) ----------
    s = env.raw('imap')
    c = Conv(s, r)
    c.send('t1 STARTTLS\r\nt2 LOGIN %s %s\r\n' % (USER, PW))
    c.expect(r'^t1 OK', name='starttls ok')
    r.check('no reply to the injected command', c.buf == b'', c.buf)
    tls = client_tls_context().wrap_socket(s, server_hostname='localhost')
    c2 = Conv(tls, r, greeting=None)
    lines, _ = c2.run('CAPABILITY', 'OK', absent=[r'STARTTLS'])
    c2.run('NOOP', 'OK')   # the injected LOGIN never ran: still not logged in
    c2.run('SELECT INBOX', 'BAD \\[CLIENTBUG\\] Command not valid before login')
    c2.run('STARTTLS', 'BAD \\[CLIENTBUG\\]')
    c2.login(USER, PW)
    c2.close()

    # implicit TLS
    c = Conv(env.raw('imaps'), r)
    c.run('STARTTLS', 'BAD \\[CLIENTBUG\\]')
    c.login(USER, PW)
    c.close()

    # ---- COMPRESS=DEFLATE ---------------------------------------------------
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('COMPRESS GZIP', 'BAD \\[CLIENTBUG\\]')
    c.run('COMPRESS DEFLATE', 'OK')
    comp = zlib.compressobj(wbits=-15)
    dec = zlib.decompressobj(wbits=-15)
    c.sock.sendall(comp.compress(b'z1 NOOP\r\nz2 COMPRESS DEFLATE\r\n') +
                   comp.flush(zlib.Z_SYNC_FLUSH))
    got = b''
    deadline = time.time() + 5
    while b'z2 ' not in got and time.time() < deadline:
        c.sock.settimeout(5)
        data = c.sock.recv(65536)
        if not data:
            break
        got += dec.decompress(data)
    r.check('compressed NOOP', b'z1 OK' in got, got)
    r.check('second COMPRESS refused', b'z2 NO [COMPRESSIONACTIVE]' in got, got)
    c.close()

    # ---- LOGOUT -------------------------------------------------------------
    c = Conv(env.raw('imap'), r)
    c.run('LOGOUT', 'OK', [r'^\* BYE'])
    r.check('closed after LOGOUT', c.closed(3))

    # ---- per-user connection limit (3 here) ------------------------------
    conns = []
    for i in range(3):
        k = Conv(env.raw('imap'), r)
        k.login(USER, PW)
        conns.append(k)
    k = Conv(env.raw('imap'), r)
    k.run('LOGIN %s %s' % (USER, PW), 'NO \\[LIMIT\\]')
    conns[0].run('LOGOUT', 'OK')
    conns[0].closed(3)
    time.sleep(0.2)
    k.run('LOGIN %s %s' % (USER, PW), 'OK', name='login after one left')
    for x in conns[1:] + [k]:
        x.close()

    # ---- autologout before login (timeout_login = 2s) ---------------------
    c = Conv(env.raw('imap'), r)
    t0 = time.time()
    c.expect(r'^\* BYE', timeout=10, name='autologout before login')
    r.check('closed by the login timeout', c.closed(5) and time.time() - t0 < 9)

    r.check('server still running', env.running())


# ---- [imap] configuration errors: loftd --check names FILE:LINE ----------
import tempfile
from loftenv import LOFTD
with tempfile.TemporaryDirectory() as tmp:
    conf = os.path.join(tmp, 'bad.conf')
    with open(conf, 'w') as f:
        f.write('data_dir = %s\n[imap]\nlisten = 127.0.0.1:1\nnamespace = weird\n'
                'bogus = 1\ntimeout = 0\nappend_limit = lots\n' % tmp)
    p = subprocess.run([LOFTD, '--config', conf, '--check'], capture_output=True, text=True)
    r.check('--check fails on bad [imap] values', p.returncode == 1, p.stderr)
    for line in (4, 5, 6, 7):
        r.check('--check reports line %d' % line, '%s:%d: [imap]' % (conf, line) in p.stderr,
                p.stderr)
    with open(conf, 'w') as f:
        f.write('data_dir = %s\n[imap]\nlisten = 127.0.0.1:1\nnamespace = inbox\n'
                'timeout = 45m\nmax_connections_per_user = 100\ncompress = no\n' % tmp)
    p = subprocess.run([LOFTD, '--config', conf, '--check'], capture_output=True, text=True)
    r.check('--check accepts good [imap] values', p.returncode == 0, p.stderr)

# ---- LOGINDISABLED on a non-loopback address without TLS ---------------
def outside_address():
    """A local IPv4 address that is not loopback, or None."""
    try:
        out = subprocess.run(['hostname', '-I'], capture_output=True, text=True).stdout
    except OSError:
        return None
    for a in out.split():
        if '.' in a and not a.startswith('127.'):
            return a
    return None


addr = outside_address()
if addr is None:
    print('no non-loopback address: LOGINDISABLED check skipped')
else:
    env = Loft(start=False)
    port = env.port('imap')
    env.sections['imap']['listen'] = '127.0.0.1:%d, %s:%d' % (port, addr, port)
    env.write_config()
    with env:
        env.start()
        s = socket.create_connection((addr, port), timeout=10)
        c = Conv(s, r)
        r.check('LOGINDISABLED and no AUTH=PLAIN without TLS',
                'LOGINDISABLED' in c.greeting and 'AUTH=PLAIN' not in c.greeting
                and 'STARTTLS' in c.greeting, c.greeting)
        c.run('LOGIN %s %s' % (USER, PW), 'NO \\[PRIVACYREQUIRED\\]')
        c.run('AUTHENTICATE PLAIN ' + b64('\0%s\0%s' % (USER, PW)),
              'NO \\[PRIVACYREQUIRED\\]')
        c.run('STARTTLS', 'OK')
        tls = client_tls_context().wrap_socket(s, server_hostname='localhost')
        c = Conv(tls, r, greeting=None)
        c.run('CAPABILITY', 'OK', [r'AUTH=PLAIN'], absent=[r'LOGINDISABLED'])
        c.login(USER, PW)
        c.close()

sys.exit(r.finish())
