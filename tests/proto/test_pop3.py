#!/usr/bin/env python3
"""POP3 conversations with loftd: every command and its errors, response
codes, byte-stuffing, pipelining, [IN-USE], STLS/POP3S, AUTH (PLAIN, LOGIN,
SCRAM-SHA-256, cancel, broken base64), a connection dropped in the middle
of RETR, and UIDL stability across a restart and `loftctl check`."""

import os
import re
import socket
import sys
import time

from loftenv import Loft, Results, SLOW
from pop3client import (Pop3, b64, deliver, make_env, message_bytes,
                        scram_login, simple_message, unstuff)

R = Results()
NO_IMAP = os.environ.get('LOFT_POP3_NO_IMAP') == '1'
ALICE, ALICE_PW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BOB_PW = 'bob@example.test', 'can-we-fix-it-yes'


def ok(r):
    return r.startswith(b'+OK')


def err(r):
    return r.startswith(b'-ERR')


def login(env, user=ALICE, pw=ALICE_PW, **kw):
    p = Pop3.connect(env, **kw)
    r = p.login(user, pw)
    assert ok(r), r
    return p


def fill(env):
    """Six messages for alice: plain, dot-stuffing, a NUL, a long body for
    TOP, no final CRLF, and a 3 MB one for the dropped-RETR test."""
    msgs = [
        simple_message(1),
        simple_message(2, body='.starts with a dot\r\n..two dots\r\n.\r\nend\r\n'),
        simple_message(3, body='nul here:\x00:end\r\n'),
        simple_message(4, body=''.join('line %d\r\n' % i for i in range(1, 21))),
        simple_message(5, body='no final newline'),
        simple_message(6, body=('x' * 76 + '\r\n') * 40000),
    ]
    for m in msgs:
        deliver(env, ALICE, m)
    return msgs


def test_greeting_capa(env):
    p = Pop3.connect(env)
    R.check('greeting +OK', ok(p.greeting), p.greeting)
    R.check('no APOP timestamp', b'<' not in p.greeting, p.greeting)
    st, caps = p.multi('CAPA')
    caps = [c.decode() for c in caps or []]
    for c in ('TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING',
              'USER', 'STLS', 'EXPIRE NEVER USER'):
        R.check('CAPA has ' + c, c in caps, caps)
    R.check('CAPA IMPLEMENTATION', any(c.startswith('IMPLEMENTATION ') for c in caps), caps)
    sasl = [c for c in caps if c.startswith('SASL ')]
    R.check('CAPA SASL', sasl and all(m in sasl[0].split() for m in
                                       ('PLAIN', 'LOGIN', 'SCRAM-SHA-256')), caps)
    R.check('CAPA with argument', err(p.cmd('CAPA X')))
    p.close()


def test_authorization_state(env):
    p = Pop3.connect(env)
    for c in ('STAT', 'LIST', 'UIDL', 'RETR 1', 'DELE 1', 'RSET', 'NOOP', 'TOP 1 1'):
        R.check('%s before login' % c, err(p.cmd(c)))
    R.check('unknown command', err(p.cmd('FOO bar')))
    R.check('APOP refused', err(p.cmd('APOP alice@example.test 0123456789abcdef0123456789abcdef')))
    R.check('PASS without USER', err(p.cmd('PASS x')))
    R.check('USER without name', err(p.cmd('USER')))
    R.check('USER ok', ok(p.cmd('USER ' + ALICE)))
    r = p.cmd('PASS wrong-password')
    R.check('wrong password [AUTH]', r.startswith(b'-ERR [AUTH]'), r)
    R.check('PASS after failure needs USER', err(p.cmd('PASS ' + ALICE_PW)))
    R.check('unknown user [AUTH]', p.login('nobody@example.test', 'x').startswith(b'-ERR [AUTH]'))
    r = p.login(ALICE, ALICE_PW)
    R.check('login', ok(r), r)
    R.check('USER after login', err(p.cmd('USER ' + ALICE)))
    R.check('AUTH after login', err(p.cmd('AUTH PLAIN')))
    R.check('STLS after login', err(p.cmd('STLS')))
    st, caps = p.multi('CAPA')
    R.check('CAPA after login: EXPIRE NEVER', b'EXPIRE NEVER' in (caps or []), caps)
    R.check('QUIT', ok(p.cmd('QUIT')))
    R.check('closed after QUIT', p.closed())


def test_transaction(env, msgs):
    p = login(env)
    r = p.cmd('STAT')
    m = re.match(rb'\+OK (\d+) (\d+)$', r)
    R.check('STAT format', m is not None, r)
    count, total = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    R.check('STAT count', count == len(msgs), r)
    st, listing = p.multi('LIST')
    sizes = {}
    for l in listing or []:
        n, s = l.split()
        sizes[int(n)] = int(s)
    R.check('LIST all', sorted(sizes) == list(range(1, len(msgs) + 1)), listing)
    R.check('STAT size is the sum of LIST', sum(sizes.values()) == total)
    R.check('LIST n', p.cmd('LIST 2') == b'+OK 2 %d' % sizes.get(2, -1))
    for bad in ('LIST 0', 'LIST 999999', 'LIST abc', 'LIST -1', 'LIST 1 2',
                'LIST 99999999999999999999999'):
        R.check(bad, err(p.cmd(bad)))
    if not NO_IMAP:
        # The same octet count as IMAP's RFC822.SIZE (one stored form).
        c = env.imap_login(ALICE)
        c.select('INBOX', readonly=True)
        typ, data = c.fetch('1:*', '(RFC822.SIZE)')
        c.logout()
        imap_sizes = {int(m.group(1)): int(m.group(2)) for m in
                      (re.match(rb'(\d+) \(RFC822.SIZE (\d+)\)', d) for d in data or [])
                      if m}
        R.check('LIST octets == IMAP RFC822.SIZE', imap_sizes == sizes, (imap_sizes, sizes))
    st, uidls = p.multi('UIDL')
    uid = {int(l.split()[0]): l.split()[1] for l in uidls or []}
    R.check('UIDL all', sorted(uid) == sorted(sizes), uidls)
    R.check('UIDL unique', len(set(uid.values())) == len(uid))
    R.check('UIDL chars', all(re.fullmatch(rb'[\x21-\x7e]{1,70}', u) for u in uid.values()))
    R.check('UIDL n', p.cmd('UIDL 3') == b'+OK 3 ' + uid.get(3, b''))
    R.check('UIDL 0', err(p.cmd('UIDL 0')))

    # RETR: the octets match LIST exactly, and the message ends with what
    # was delivered (loftd adds Received/Delivered-To in front).
    for n in range(1, len(msgs) + 1):
        st, lines = p.multi('RETR %d' % n)
        got = message_bytes(lines or [])
        R.check('RETR %d status' % n, st == b'+OK %d octets' % sizes[n], st)
        want = msgs[n - 1].replace(b'\x00', b'\x80')
        if not want.endswith(b'\r\n'):
            want += b'\r\n'   # LMTP's DATA ends the last line
        R.check('RETR %d octets' % n, len(got) == sizes[n], (len(got), sizes[n]))
        R.check('RETR %d content' % n, got.endswith(want), got[-200:])
        R.check('RETR %d CRLF only' % n, b'\n' not in got.replace(b'\r\n', b''))
    # byte-stuffing on the wire
    p.send('RETR 2\r\n')
    p.line()
    raw = p.raw_multi()
    R.check('dot-stuffed on the wire', b'\r\n..starts with a dot\r\n...two dots\r\n..\r\nend\r\n' in raw, raw)
    R.check('NUL replaced', b'\x00' not in message_bytes(p.multi('RETR 3')[1] or []))
    for bad in ('RETR', 'RETR 0', 'RETR 999999', 'RETR x', 'RETR 1 2'):
        R.check(bad, err(p.cmd(bad)))

    # TOP
    st, lines = p.multi('TOP 4 0')
    R.check('TOP n 0: header + blank line', lines is not None and lines[-1] == b''
            and b'Subject: message 4' in lines and b'line 1' not in lines, lines)
    st, lines = p.multi('TOP 4 3')
    R.check('TOP n 3', lines is not None and lines[-3:] == [b'line 1', b'line 2', b'line 3'], lines)
    st, lines = p.multi('TOP 4 1000')
    R.check('TOP n beyond the end', lines is not None and lines[-1] == b'line 20', lines)
    st, lines = p.multi('TOP 2 5')
    R.check('TOP is stuffed too', lines is not None and b'.starts with a dot' in lines, lines)
    for bad in ('TOP 1', 'TOP 1 -1', 'TOP 0 1', 'TOP 999 1', 'TOP 1 x', 'TOP'):
        R.check(bad, err(p.cmd(bad)))

    # DELE, RSET, NOOP
    R.check('DELE 1', ok(p.cmd('DELE 1')))
    R.check('DELE twice', err(p.cmd('DELE 1')))
    R.check('RETR deleted', err(p.cmd('RETR 1')))
    R.check('LIST deleted', err(p.cmd('LIST 1')))
    R.check('UIDL deleted', err(p.cmd('UIDL 1')))
    R.check('TOP deleted', err(p.cmd('TOP 1 0')))
    R.check('STAT after DELE', p.cmd('STAT') == b'+OK %d %d' % (count - 1, total - sizes[1]))
    st, listing = p.multi('LIST')
    R.check('LIST skips deleted', listing is not None and not any(l.startswith(b'1 ') for l in listing))
    R.check('DELE 0', err(p.cmd('DELE 0')))
    R.check('DELE 999999', err(p.cmd('DELE 999999')))
    R.check('DELE without argument', err(p.cmd('DELE')))
    R.check('RSET', ok(p.cmd('RSET')))
    R.check('STAT after RSET', p.cmd('STAT') == b'+OK %d %d' % (count, total))
    R.check('RSET with argument', err(p.cmd('RSET 1')))
    R.check('NOOP', p.cmd('NOOP') == b'+OK')
    R.check('NOOP with argument', err(p.cmd('NOOP 1')))
    R.check('STAT with argument', err(p.cmd('STAT 1')))
    R.check('unknown command after login', err(p.cmd('XYZZY')))

    # DELE then a dropped connection: nothing is deleted.
    p.cmd('DELE 1')
    p.close()
    time.sleep(0.2)
    p = login(env)
    R.check('drop after DELE deletes nothing', p.cmd('STAT') == b'+OK %d %d' % (count, total))
    R.check('QUIT with argument', err(p.cmd('QUIT now')))
    p.cmd('QUIT')
    p.close()
    return uid


def test_dropped_retr(env):
    p = login(env)
    st, listing = p.multi('LIST')
    big = max(listing, key=lambda l: int(l.split()[1]))
    n = int(big.split()[0])
    p.cmd('DELE 1')
    p.send('RETR %d\r\n' % n)
    p.sock.recv(4096)
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    p.close()
    time.sleep(0.3)
    p = login(env)
    r = p.cmd('STAT')
    R.check('dropped during RETR: nothing deleted', r.startswith(b'+OK %d ' % len(listing)), r)
    st, lines = p.multi('RETR %d' % n)
    R.check('big message still complete', lines is not None and
            len(message_bytes(lines)) == int(big.split()[1]))
    p.cmd('QUIT')
    p.close()


def test_in_use(env):
    p1 = login(env)
    p2 = Pop3.connect(env)
    r = p2.login(ALICE, ALICE_PW)
    R.check('second session [IN-USE]', r.startswith(b'-ERR [IN-USE]'), r)
    R.check('other account not blocked', ok(Pop3.connect(env).login(BOB, BOB_PW)))
    if not NO_IMAP:
        imap = env.imap_login(ALICE)
        typ, data = imap.select('INBOX')
        R.check('IMAP not blocked by POP3', typ == 'OK', (typ, data))
        imap.logout()
    R.check('QUIT first', ok(p1.cmd('QUIT')))
    r = p2.login(ALICE, ALICE_PW)
    R.check('login after the first QUIT', ok(r), r)
    p2.cmd('QUIT')
    # a dropped session releases the lock too
    p3 = login(env)
    p3.close()
    time.sleep(0.3)
    p4 = Pop3.connect(env)
    r = p4.login(ALICE, ALICE_PW)
    R.check('lock released by a dropped session', ok(r), r)
    p4.cmd('QUIT')


def test_pipelining(env):
    p = Pop3.connect(env)
    p.send('CAPA\r\nUSER %s\r\nPASS %s\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\nRETR 1\r\n'
           'NOOP\r\nDELE 999\r\nTOP 1 0\r\nQUIT\r\n' % (ALICE, ALICE_PW))
    st, caps = p.multi()
    R.check('pipelined CAPA', ok(st) and b'PIPELINING' in caps)
    R.check('pipelined USER', ok(p.line()))
    R.check('pipelined PASS', ok(p.line()))
    R.check('pipelined STAT', p.line().startswith(b'+OK '))
    R.check('pipelined LIST 1', p.line().startswith(b'+OK 1 '))
    R.check('pipelined UIDL 1', p.line().startswith(b'+OK 1 '))
    st, lines = p.multi()
    R.check('pipelined RETR', ok(st) and lines)
    R.check('pipelined NOOP', p.line() == b'+OK')
    R.check('pipelined DELE error', err(p.line()))
    st, lines = p.multi()
    R.check('pipelined TOP', ok(st) and lines is not None)
    R.check('pipelined QUIT', ok(p.line()))
    R.check('pipelined closed', p.closed())


def test_limits(env):
    p = Pop3.connect(env)
    r = p.cmd('NOOP ' + 'A' * 5000)
    R.check('long line refused', err(r), r)
    R.check('session usable after a long line', ok(p.cmd('CAPA')) and p.raw_multi())
    p.send('USER ' + 'B' * 100000 + '\r\n')
    R.check('very long line refused', err(p.line()))
    R.check('invalid chars', err(p.cmd('NOOP\x00x')))
    for i in range(25):
        try:
            p.send('BOGUS\r\n')
        except OSError:
            break  # closed before the last ones were sent: what is checked below
    lines = []
    try:
        while True:
            lines.append(p.line())
    except (EOFError, OSError):
        pass
    R.check('too many bad commands: closed', len(lines) < 25 and lines[-1].startswith(b'-ERR'), lines[-2:])


def test_garbage(env):
    """Random bytes (split anywhere, NULs, bare CR/LF, 8-bit) in every
    state: the server answers each session or closes it, and stays up."""
    import random
    rnd = random.Random(1939)
    for i in range(30):
        p = Pop3.connect(env)
        if i % 2:
            p.login(ALICE, ALICE_PW)
        if i % 3 == 0:
            p.send('AUTH PLAIN\r\n')
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
        blob = blob.replace(b'\n', b'\r\n', rnd.randrange(4))
        try:
            for k in range(0, len(blob), 7):
                p.send(blob[k:k + 7])
            p.send(b'\r\nQUIT\r\n')
        except OSError:
            pass
        p.close()
    p = Pop3.connect(env)
    R.check('alive after garbage', ok(p.greeting) and ok(p.login(ALICE, ALICE_PW)))
    r = p.cmd('STAT')
    R.check('garbage deleted nothing', r.startswith(b'+OK 6 '), r)
    p.cmd('QUIT')


def test_auth(env):
    p = Pop3.connect(env)
    st, mechs = p.multi('AUTH')
    R.check('AUTH lists mechanisms', ok(st) and b'PLAIN' in mechs, (st, mechs))
    r = p.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, ALICE_PW)))
    R.check('AUTH PLAIN initial response', ok(r), r)
    p.cmd('QUIT')

    p = Pop3.connect(env)
    R.check('AUTH PLAIN empty challenge', p.cmd('AUTH PLAIN') == b'+ ')
    R.check('AUTH PLAIN answer', ok(p.cmd(b64('\0%s\0%s' % (ALICE, ALICE_PW)))))
    p.cmd('QUIT')

    p = Pop3.connect(env)
    r = p.cmd('AUTH PLAIN ' + b64('\0%s\0wrong' % ALICE))
    R.check('AUTH PLAIN wrong password [AUTH]', r.startswith(b'-ERR [AUTH]'), r)
    R.check('AUTH cancel', p.cmd('AUTH PLAIN') == b'+ ' and err(p.cmd('*')))
    R.check('AUTH broken base64', p.cmd('AUTH PLAIN') == b'+ ' and err(p.cmd('%%%not-base64')))
    R.check('AUTH broken base64 initial', err(p.cmd('AUTH PLAIN ab=c')))
    R.check('AUTH unknown mechanism', err(p.cmd('AUTH CRAM-MD5')))
    R.check('AUTH LOGIN', p.cmd('AUTH LOGIN').startswith(b'+ ')
            and p.cmd(b64(ALICE)).startswith(b'+ ') and ok(p.cmd(b64(ALICE_PW))))
    p.cmd('QUIT')

    p = Pop3.connect(env)
    r, sig_ok = scram_login(p, ALICE, ALICE_PW)
    R.check('AUTH SCRAM-SHA-256', ok(r), r)
    R.check('SCRAM server signature', sig_ok)
    p.cmd('QUIT')
    p = Pop3.connect(env)
    r, _ = scram_login(p, ALICE, 'wrong')
    R.check('SCRAM wrong password [AUTH]', r.startswith(b'-ERR [AUTH]'), r)
    r, sig_ok = scram_login(p, ALICE, ALICE_PW, initial=False)
    R.check('SCRAM without initial response', ok(r) and sig_ok, r)
    p.cmd('QUIT')


def test_tls(env):
    p = Pop3.connect(env)
    R.check('STLS', ok(p.cmd('STLS')))
    p.starttls()
    st, caps = p.multi('CAPA')
    R.check('no STLS in CAPA after STLS', ok(st) and b'STLS' not in caps, caps)
    R.check('STLS twice', err(p.cmd('STLS')))
    R.check('login over STLS', ok(p.login(ALICE, ALICE_PW)))
    p.cmd('QUIT')
    p = Pop3.connect(env, 'pop3s')
    R.check('POP3S greeting', ok(p.greeting))
    st, caps = p.multi('CAPA')
    R.check('POP3S: no STLS', ok(st) and b'STLS' not in caps and b'USER' in caps, caps)
    R.check('POP3S login', ok(p.login(ALICE, ALICE_PW)))
    R.check('POP3S STAT', p.cmd('STAT').startswith(b'+OK'))
    p.cmd('QUIT')


def test_uidl_stable(env, uid_before):
    env.restart()
    p = login(env)
    st, uidls = p.multi('UIDL')
    uid = {int(l.split()[0]): l.split()[1] for l in uidls or []}
    R.check('UIDL stable across restart', uid == uid_before, (uid, uid_before))
    p.cmd('QUIT')
    rc, out, errout = env.loftctl('check', ALICE)
    R.check('loftctl check', rc == 0, out + errout)
    p = login(env)
    st, uidls = p.multi('UIDL')
    uid = {int(l.split()[0]): l.split()[1] for l in uidls or []}
    R.check('UIDL stable across loftctl check', uid == uid_before)
    # A different account has its own UIDLs that never collide.
    deliver(env, BOB, simple_message(1))
    q = login(env, BOB, BOB_PW)
    st, bob = q.multi('UIDL')
    R.check('UIDL unique per account', bob and bob[0].split()[1] != uid.get(1))
    q.cmd('QUIT')
    p.cmd('QUIT')


def test_policy_expire(env):
    rc, out, e = env.loftctl('user', 'set', BOB, 'pop3_retention_days=14')
    R.check('user set pop3_retention_days', rc == 0, out + e)
    p = login(env, BOB, BOB_PW)
    st, caps = p.multi('CAPA')
    R.check('EXPIRE 14 after login', b'EXPIRE 14' in caps, caps)
    p.cmd('QUIT')


def host_address():
    """A non-loopback IPv4 address of this machine, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(('192.0.2.1', 9))       # no packet is sent
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith('127.') else ip


def test_cleartext_remote():
    """From a non-loopback address without TLS: no USER, no PLAIN/LOGIN,
    and [AUTH] refusals; after STLS everything is offered."""
    ip = host_address()
    if ip is None:
        print('SKIP cleartext: no non-loopback address on this machine')
        return
    for allow in ('no', 'yes'):
        env = make_env(extra={'auth': {'allow_cleartext': allow}}, imap=False)
        name = env.add_listen('pop3', ip)
        with env:
            port = env.ports[name]     # moved if a start was retried
            p = Pop3.connect(env, host=ip, port=port)
            st, caps = p.multi('CAPA')
            sasl = next((c for c in caps if c.startswith(b'SASL ')), b'')
            if allow == 'no':
                R.check('remote: no USER in CAPA', b'USER' not in caps, caps)
                R.check('remote: SASL without PLAIN/LOGIN',
                        b'PLAIN' not in sasl and b'LOGIN' not in sasl
                        and b'SCRAM-SHA-256' in sasl, sasl)
                r = p.cmd('USER ' + ALICE)
                R.check('remote: USER refused [AUTH]', r.startswith(b'-ERR [AUTH]'), r)
                R.check('remote: PASS refused', err(p.cmd('PASS ' + ALICE_PW)))
                r = p.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, ALICE_PW)))
                R.check('remote: AUTH PLAIN refused [AUTH]', r.startswith(b'-ERR [AUTH]'), r)
                r, sig = scram_login(p, ALICE, ALICE_PW)
                R.check('remote: SCRAM allowed without TLS', ok(r) and sig, r)
                p.cmd('QUIT')
                p = Pop3.connect(env, host=ip, port=port)
                R.check('remote: STLS', ok(p.cmd('STLS')))
                p.starttls()
                st, caps = p.multi('CAPA')
                R.check('remote after STLS: USER offered', b'USER' in caps, caps)
                R.check('remote after STLS: login', ok(p.login(ALICE, ALICE_PW)))
            else:
                R.check('allow_cleartext: USER in CAPA', b'USER' in caps, caps)
                R.check('allow_cleartext: login', ok(p.login(ALICE, ALICE_PW)))
            p.cmd('QUIT')
            p.close()


def test_expire_before_login():
    """RFC 2449 6.7: before login EXPIRE shows the smallest value of any
    account, with USER, as the background retention task last computed
    it (here every second); after login the account's own."""
    with make_env(extra={'pop3': {'retention_interval': '1s'},
                         'policy': {'pop3_retention_days': '30'}},
                  imap=False) as env:
        p = Pop3.connect(env)
        st, caps = p.multi('CAPA')
        R.check('EXPIRE default before the first pass', b'EXPIRE 30 USER' in caps, caps)
        p.close()
        env.loftctl('user', 'set', BOB, 'pop3_retention_days=7')
        env.loftctl('user', 'set', ALICE, 'pop3_retention_days=0')
        caps = []
        deadline = time.monotonic() + 15 * SLOW
        while time.monotonic() < deadline and b'EXPIRE 7 USER' not in caps:
            time.sleep(0.2)
            p = Pop3.connect(env)
            caps = p.multi('CAPA')[1]
            p.close()
        R.check('EXPIRE before login: the smallest of all accounts', b'EXPIRE 7 USER' in caps, caps)
        p = login(env)
        caps = p.multi('CAPA')[1]
        R.check('EXPIRE after login: NEVER for alice', b'EXPIRE NEVER' in caps, caps)
        p.cmd('QUIT')


def test_timeout():
    with make_env(extra={'pop3': {'timeout': '2s'}}, imap=False) as env:
        p = Pop3.connect(env)
        p.login(ALICE, ALICE_PW)
        p.sock.settimeout(10 * SLOW)
        try:
            line = p.line()
        except (EOFError, OSError):
            line = b''
        R.check('autologout', line.startswith(b'-ERR'), line)
        R.check('closed after autologout', p.closed())


def test_pipelined_top_retr(env):
    """Issue 11: TOP n 0, TOP n 3, RETR and LIST for a whole maildrop sent
    in one pipelined burst (RFC 2449 6.6) over copies delivered with
    trace fields in front of a shared body (small bodies in the index, a
    big one in a file, one transaction for two accounts): every reply in
    order, each RETR's "+OK n octets" equal to LIST and to the bytes
    sent, each TOP exactly the header of its RETR (plus n body lines)."""
    user, pw = 'pipe@example.test', 'burst-of-commands-4-all'
    env.add_user(user, pw)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), 'system'))
    from lmtplib import Conv
    from lmtplib import deliver as lmtp_deliver
    sent = []
    c = Conv.tcp(env.port('lmtp'))
    c.cmd('LHLO test.example')
    for i in range(1, 41):
        body = ''.join('.dot line %d of %d\r\n' % (k, i) for k in range(i % 7 + 1))
        if i == 20:
            body = ('y' * 76 + '\r\n') * 2500      # past the in-index limit
        m = ('From: list@example.org\r\nTo: %s\r\nSubject: pipelined %d\r\n'
             'Message-ID: <pipe%d@example.org>\r\n\r\n%s' % (user, i, i, body)).encode()
        rcpts = [user, BOB] if i % 10 == 0 else [user]
        rr, dr = lmtp_deliver(c, 'list@example.org', rcpts, m, lhlo=False)
        R.check('pipelined maildrop: message %d delivered' % i,
                [x[0] for x in rr + dr] == [250] * (2 * len(rcpts)), rr + dr)
        sent.append(m)
    c.cmd('QUIT')
    n = len(sent)
    p = login(env, user, pw)
    st, listing = p.multi('LIST')
    sizes = [int(l.split()[1]) for l in listing or []]
    R.check('pipelined maildrop: LIST has every message', len(sizes) == n, len(sizes))
    burst = ''.join('TOP %d 0\r\n' % i for i in range(1, n + 1))
    burst += ''.join('RETR %d\r\nTOP %d 3\r\nLIST %d\r\n' % (i, i, i)
                     for i in range(1, n + 1))
    p.send(burst + 'STAT\r\n')
    tops = [p.multi() for _ in range(n)]
    good = 0
    for i in range(1, n + 1):
        st, lines = p.multi()
        msg = message_bytes(lines or [])
        t_st, t_lines = tops[i - 1]
        t3_st, t3_lines = p.multi()
        l_st = p.line()
        head = msg[:msg.find(b'\r\n\r\n') + 4]
        body_lines = msg[len(head):].split(b'\r\n')
        want3 = head + b''.join(l + b'\r\n' for l in body_lines[:3]
                                if l or len(body_lines) > 3)
        checks = [
            st == b'+OK %d octets' % len(msg),
            len(msg) == sizes[i - 1],
            l_st == b'+OK %d %d' % (i, len(msg)),
            msg.endswith(sent[i - 1] if sent[i - 1].endswith(b'\r\n')
                         else sent[i - 1] + b'\r\n'),
            msg.startswith(b'Return-Path: <list@example.org>\r\n'),
            b'Delivered-To: %s\r\n' % user.encode() in head,
            ok(t_st) and message_bytes(t_lines or []) == head,
            ok(t3_st) and message_bytes(t3_lines or [])[:len(want3)] == want3
            and len(message_bytes(t3_lines or [])) <= len(head) + sum(
                len(l) + 2 for l in body_lines[:3]),
        ]
        if all(checks):
            good += 1
        elif good == i - 1:
            print('message %d: %r' % (i, checks))
    R.check('pipelined maildrop: TOP n 0, RETR, TOP n 3, LIST right for all %d' % n,
            good == n, good)
    R.check('pipelined maildrop: STAT last', p.line().startswith(b'+OK %d ' % n))
    p.cmd('QUIT')


def walk_bodies():
    """Bodies at the edges of dot-stuffing, CRLF and the read-ahead's
    limits, in the order test_walk delivers them (cycled)."""
    return [
        'plain line\r\n',
        '.starts with a dot\r\n',
        'a lone dot next\r\n.\r\nand after it\r\n',
        '..two dots\r\n...three\r\n',
        'nul:\x00:here\r\n',
        ''.join('line %d\r\n' % k for k in range(1, 8)),
        '\r\n\r\nblank lines first\r\n',
        '.\r\n',
        ('.z' + 'w' * 74 + '\r\n') * 2000,     # 150 KB: a file, fits
        ('q' * 76 + '\r\n') * 4000,            # 300 KB: past the budget
    ]


def raw_reply(p, command):
    """The status line and the raw (still stuffed) body of a reply, as
    the wire carried them."""
    st = p.cmd(command)
    return st, (p.raw_multi() if ok(st) else None)


def test_walk(env):
    """Issue 11: a client that walks the maildrop one command at a time
    (TOP 1 0, TOP 2 0, ...; RETR 1, DELE 1, RETR 2, ...) is answered from
    the read-ahead: every reply byte for byte what the same command gets
    when nothing is read ahead (the maildrop walked backwards), messages
    DELE'd after they were read ahead refused, RETRs answered from it
    marked \\Seen, and nothing left behind when the walk stops."""
    user, pw = 'walk@example.test', 'one-command-at-a-time'
    env.add_user(user, pw)
    bodies = walk_bodies()
    n = 75      # more than two read-aheads' worth
    for i in range(1, n + 1):
        body = bodies[i % len(bodies)]
        m = ('From: walker@example.org\r\nTo: %s\r\nSubject: walk %d\r\n'
             'Message-ID: <walk%d@example.org>\r\n\r\n%s'
             % (user, i, i, body)).encode()
        if i == 33:
            m = b'Subject: a header and nothing else\r\n'
        deliver(env, user, m)

    # RETR walk with DELEs in between: RETR i, then DELE i for every
    # third, and DELE of a message already read ahead
    p = login(env, user, pw)
    walked = {}
    refused = []
    for i in range(1, n + 1):
        if i == 10:
            R.check('walk: DELE of a message read ahead', ok(p.cmd('DELE 12')))
        st, raw = raw_reply(p, 'RETR %d' % i)
        if i == 12:
            refused.append(err(st))
            continue
        walked[i] = (st, raw)
        if i % 3 == 0:
            p.cmd('DELE %d' % i)
    R.check('walk: RETR of a message DELE\'d after it was read ahead', refused == [True])
    R.check('walk: RSET', ok(p.cmd('RSET')))
    R.check('walk: QUIT', ok(p.cmd('QUIT')))
    p.close()
    if not NO_IMAP:
        c = env.imap_login(user, pw)
        c.select('INBOX', readonly=True)
        typ, data = c.search(None, 'UNSEEN')
        c.logout()
        unseen = set(int(x) for x in (data[0] or b'').split())
        R.check('walk: RETR from the read-ahead sets \\Seen', unseen == {12}, unseen)

    # the same replies when nothing is read ahead: backwards
    p = login(env, user, pw)
    ref = {}
    for i in range(n, 0, -1):
        ref[i] = {c: raw_reply(p, c % i) for c in ('RETR %d', 'TOP %d 0', 'TOP %d 2')}
    bad = [i for i in walked if walked[i] != ref[i]['RETR %d']]
    R.check('walk: RETR replies byte for byte', not bad, bad[:5])
    R.check('walk: octet counts', all(
        ref[i]['RETR %d'][0] == b'+OK %d octets' % len(message_bytes(unstuff(ref[i]['RETR %d'][1])))
        for i in ref), None)
    for c in ('TOP %d 0', 'TOP %d 2'):
        got = {i: raw_reply(p, c % i) for i in range(1, n + 1)}
        bad = [i for i in got if got[i] != ref[i][c]]
        R.check('walk: %s replies byte for byte' % c.replace('%d', 'n'), not bad, bad[:5])
    st, lines = p.multi('TOP 33 0')
    R.check('walk: TOP of a message without a blank line', ok(st) and lines is not None
            and lines[-1] == b'Subject: a header and nothing else', lines)
    # a walk that stops halfway, then a jump: the jump is answered for
    # itself
    for i in range(1, 5):
        raw_reply(p, 'TOP %d 0' % i)
    R.check('walk: a jump after a walk', raw_reply(p, 'TOP 60 0') == ref[60]['TOP %d 0'])
    R.check('walk: back to the walk', raw_reply(p, 'TOP 5 0') == ref[5]['TOP %d 0'])
    R.check('walk: another line count', raw_reply(p, 'TOP 6 1') is not None
            and ok(p.cmd('NOOP')))
    p.cmd('QUIT')
    p.close()


def test_walk_long(env):
    """Issue 11: a long walk of small replies (TOP n 0 over a big
    maildrop) is answered in batches that grow while the walk goes on
    (32, 64, 128, ... replies, within the 256 KiB budget): 250 one-at-a-
    time TOPs take 4 read-ahead batches (the debug log's "read-ahead:"
    lines of the session), not one per 33 commands, and every reply is
    byte for byte what the same command gets with nothing read ahead."""
    user, pw = 'longwalk@example.test', 'a-long-walk-of-headers'
    env.add_user(user, pw)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), 'system'))
    from lmtplib import Conv
    from lmtplib import deliver as lmtp_deliver
    n = 250
    c = Conv.tcp(env.port('lmtp'))
    c.cmd('LHLO test.example')
    for i in range(1, n + 1):
        body = '.a dot line\r\n' if i % 5 == 0 else 'body %d\r\n' % i
        m = ('From: walker@example.org\r\nTo: %s\r\nSubject: long walk %d\r\n'
             'Message-ID: <long%d@example.org>\r\n\r\n%s' % (user, i, i, body)).encode()
        rr, dr = lmtp_deliver(c, 'walker@example.org', [user], m, lhlo=False)
        if [x[0] for x in rr + dr] != [250, 250]:
            R.check('long walk: message %d delivered' % i, False, rr + dr)
            return
    c.cmd('QUIT')
    p = login(env, user, pw)
    walked = [raw_reply(p, 'TOP %d 0' % i) for i in range(1, n + 1)]
    p.cmd('QUIT')
    p.close()
    p = login(env, user, pw)
    ref = [raw_reply(p, 'TOP %d 0' % i) for i in range(n, 0, -1)][::-1]
    p.cmd('QUIT')
    p.close()
    bad = [i + 1 for i in range(n) if walked[i] != ref[i] or not ok(walked[i][0])]
    R.check('long walk: TOP n 0 replies byte for byte', not bad, bad[:5])
    log = env.log()
    sids = re.findall(r'pop3\[(\w+)\]: login user=%s' % re.escape(user), log)
    fills = len(re.findall(r'pop3\[%s\]: read-ahead: ' % sids[0], log)) if sids else -1
    R.check('long walk: 250 TOPs in 4 read-ahead batches', fills == 4, (sids, fills))
    R.check('long walk: nothing read ahead for a backwards walk', len(sids) == 2 and
            not re.search(r'pop3\[%s\]: read-ahead: ' % sids[1], log), sids)


def main():
    with make_env(imap=not NO_IMAP) as env:
        msgs = fill(env)
        for t in (test_greeting_capa, test_authorization_state):
            t(env)
        uid = test_transaction(env, msgs)
        test_dropped_retr(env)
        test_in_use(env)
        test_pipelining(env)
        test_limits(env)
        test_garbage(env)
        test_auth(env)
        test_tls(env)
        test_policy_expire(env)
        test_uidl_stable(env, uid)
        test_pipelined_top_retr(env)
        test_walk(env)
        test_walk_long(env)
    test_cleartext_remote()
    test_expire_before_login()
    test_timeout()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
