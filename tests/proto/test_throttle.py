"""Failed logins are throttled on timers, keep-failing addresses banned,
and `loftctl ban` shows and clears them (issue 10). loftd and loftctl run
with a clock this test moves (LOFT_TEST_CLOCK, seconds added to the wall
clock): a ban expiring or 30 days passing never means sleeping. Clients
use their own loopback addresses (127.0.0.x) so each case has its own.

Also: SASL exchanges left half done, and passwords with non-ASCII spaces
and compatibility characters through LOGIN, PLAIN, POP3 PASS and a real
SCRAM-SHA-256 client (gsasl, which prepares passwords as RFC 4013 says).
"""

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from loftenv import Loft, Results, SLOW, free_port

r = Results()
CLOCK_DIR = tempfile.mkdtemp(prefix='loft-clock-')
CLOCK = os.path.join(CLOCK_DIR, 'offset')
os.environ['LOFT_TEST_CLOCK'] = CLOCK   # loftd and loftctl inherit it


def set_clock(seconds):
    with open(CLOCK + '.tmp', 'w') as f:
        f.write('%d\n' % seconds)
    os.rename(CLOCK + '.tmp', CLOCK)


class Raw:
    """A line client from a chosen loopback address."""

    def __init__(self, port, src):
        self.s = socket.create_connection(('127.0.0.1', port),
                                          timeout=30 * SLOW,
                                          source_address=(src, 0))
        self.buf = b''

    def line(self):
        while b'\r\n' not in self.buf:
            try:
                d = self.s.recv(65536)
            except OSError:
                d = b''
            if not d:
                out, self.buf = self.buf, b''
                return out
            self.buf += d
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, tag, text):
        """Sends TAG TEXT; returns the tagged line (b'' at EOF) and the
        untagged ones before it."""
        self.send('%s %s\r\n' % (tag, text))
        seen = []
        while True:
            line = self.line()
            if line == b'' or line.startswith(tag.encode() + b' '):
                return line, seen
            seen.append(line)

    def eof(self):
        return self.line() == b'' and self.buf == b''

    def close(self):
        self.s.close()


def held(env):
    """`loftctl ban list` lines."""
    rc, out, err = env.loftctl('ban', 'list')
    r.check('ban list runs', rc == 0, err)
    return out.splitlines()


def held_line(env, prefix, timeout=10):
    """The ban list line starting with prefix, waiting for it to appear
    (loftd answers from memory; without loftd the file is read)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        for line in held(env):
            if line.startswith(prefix):
                return line
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def login(env, src, user, pw, port='imap'):
    """(tagged reply, seconds) of one LOGIN on a fresh connection."""
    c = Raw(env.ports[port], src)
    greeting = c.line()
    if not greeting.startswith(b'* OK'):
        c.close()
        return greeting, 0.0
    t0 = time.monotonic()
    reply, untagged = c.cmd('a', 'LOGIN %s "%s"' % (user, pw))
    dt = time.monotonic() - t0
    c.close()
    if reply == b'' and untagged:
        reply = untagged[-1]      # * BYE, then the connection closed
    return reply, dt


# ---- back-off, bans, loftctl ban -----------------------------------------

def test_backoff_and_bans(env):
    src = '127.0.0.11'
    c = Raw(env.ports['imap'], src)
    r.check('greeting', c.line().startswith(b'* OK'))
    times = []
    for i in range(6):
        t0 = time.monotonic()
        reply, _ = c.cmd('a%d' % i, 'LOGIN bob@example.test wrong-%d' % i)
        times.append(time.monotonic() - t0)
        r.check('wrong password %d refused' % i,
                reply.startswith(b'a%d NO [AUTHENTICATIONFAILED]' % i), reply)
    # Failures 1-3 cost nothing (typos), then 100, 200, 400 ms (the cap
    # in this instance): each a timer, the delay before the check.
    r.check('first three answered at once', max(times[:3]) < 1.0 * SLOW, times)
    r.check('fourth waited 100 ms', times[3] >= 0.095, times)
    r.check('fifth waited 200 ms', times[4] >= 0.195, times)
    r.check('sixth waited 400 ms (the cap)', times[5] >= 0.395, times)
    line = held_line(env, 'address %s ' % src)
    r.check('ban list: the address banned for ban_time',
            line is not None and line.startswith(
                'address %s banned 60s failures 6 ' % src), line)
    line = held_line(env, 'account bob@example.test ')
    r.check('ban list: the account held back',
            line is not None and line.startswith(
                'account bob@example.test delay 400ms failures 6'), line)
    line = held_line(env, 'pair %s bob@example.test ' % src)
    r.check('ban list: the pair', line is not None and
            re.search(r'failures 6 forgotten-in (59\d|600)s$', line), line)
    # The next attempt on the open connection meets the ban.
    c.send('a9 LOGIN bob@example.test can-we-fix-it-yes\r\n')
    line = c.line()
    r.check('banned at login: * BYE [UNAVAILABLE]',
            line.startswith(b'* BYE [UNAVAILABLE]'), line)
    r.check('banned at login: closed', c.eof())
    c.close()
    # ... and every protocol that takes passwords, at connect.
    c = Raw(env.ports['imap'], src)
    line = c.line()
    r.check('banned at connect: IMAP * BYE [UNAVAILABLE]',
            line.startswith(b'* BYE [UNAVAILABLE]'), line)
    r.check('banned at connect: IMAP closed', c.eof())
    c.close()
    c = Raw(env.ports['pop3'], src)
    line = c.line()
    r.check('banned at connect: POP3 -ERR [SYS/TEMP]',
            line.startswith(b'-ERR [SYS/TEMP]'), line)
    c.close()
    c = Raw(env.ports['submission'], src)
    line = c.line()
    r.check('banned at connect: submission 421 4.7.0',
            line.startswith(b'421 4.7.0'), line)
    c.close()
    c = Raw(env.ports['lmtp'], src)
    r.check('LMTP (no passwords) is never refused',
            c.line().startswith(b'220'))
    c.close()
    # Another address is not banned; bob's own count slows it (400 ms).
    reply, dt = login(env, '127.0.0.12', 'bob@example.test',
                      'can-we-fix-it-yes')
    r.check('other address: bob logs in', reply.startswith(b'a OK'), reply)
    r.check('other address: after the account\'s delay', dt >= 0.395, dt)

    # A ban lasts "a while": ban_time later (the clock moves, nobody
    # sleeps) the address may try again...
    set_clock(61)
    c = Raw(env.ports['imap'], src)
    r.check('after the ban: greeting', c.line().startswith(b'* OK'))
    reply, _ = c.cmd('b1', 'LOGIN bob@example.test wrong-again')
    r.check('after the ban: a wrong password refused',
            reply.startswith(b'b1 NO'), reply)
    c.close()
    # ... and one that keeps failing is banned again, twice as long.
    line = held_line(env, 'address %s ' % src)
    r.check('keeps failing: banned for twice as long',
            line is not None and re.match(
                r'address %s banned (11\d|120)s failures 7 ' % re.escape(src),
                line), line)

    # loftctl ban del, with loftd running (the control socket): at once.
    rc, out, err = env.loftctl('ban', 'del', src)
    r.check('ban del ADDRESS', rc == 0 and out.strip() == '%s: cleared' % src,
            (out, err))
    reply, dt = login(env, src, 'alice@example.test', env.users['alice@example.test'])
    r.check('cleared address logs in again', reply.startswith(b'a OK'),
            (reply, dt))
    r.check('ban list: the address is gone',
            not any(l.startswith('address %s ' % src) for l in held(env)))
    rc, out, err = env.loftctl('ban', 'del', 'Bob@Example.Test')
    r.check('ban del ACCOUNT', rc == 0 and 'cleared' in out, (out, err))
    r.check('ban list: the account is gone', not any(
        l.startswith('account bob@example.test ') for l in held(env)))
    reply, dt = login(env, '127.0.0.13', 'bob@example.test', 'can-we-fix-it-yes')
    r.check('cleared account logs in', reply.startswith(b'a OK'), (reply, dt))
    rc, out, err = env.loftctl('ban', 'del', 'not-an-address')
    r.check('ban del refuses garbage', rc == 1 and 'neither' in err, err)


def test_ban_without_loftd(env):
    """loftctl ban list / del on throttle.db while loftd is down; a restart
    keeps the bans (a guesser gets no fresh start)."""
    src = '127.0.0.14'
    for i in range(6):
        login(env, src, 'carol@example.test', 'wrong-%d' % i)
    env.stop()
    line = held_line(env, 'address %s ' % src)
    r.check('loftd down: ban list reads throttle.db',
            line is not None and line.startswith('address %s banned' % src),
            line)
    env.start()
    c = Raw(env.ports['imap'], src)
    r.check('a restart keeps the ban', c.line().startswith(b'* BYE'))
    c.close()
    env.stop()
    rc, out, err = env.loftctl('ban', 'del', src)
    r.check('loftd down: ban del', rc == 0 and 'cleared' in out, (out, err))
    r.check('loftd down: gone from the list',
            not any(l.startswith('address %s ' % src) for l in held(env)))
    env.start()
    c = Raw(env.ports['imap'], src)
    r.check('the clear holds after a restart', c.line().startswith(b'* OK'))
    c.close()


def test_owner_never_locked_out(env):
    owner, router = '127.0.0.21', '127.0.0.21'
    alice = 'alice@example.test'
    reply, _ = login(env, owner, alice, env.users[alice])
    r.check('owner logs in once', reply.startswith(b'a OK'), reply)
    reply, _ = login(env, router, 'kid@example.test', env.users['kid@example.test'])
    r.check('the kid\'s phone logs in once', reply.startswith(b'a OK'), reply)
    # A guesser elsewhere hammers alice from six addresses at once...
    def guess(src):
        for i in range(8):
            reply, _ = login(env, src, alice, 'guess-%d' % i)
            if not reply.startswith(b'a NO'):
                break
    threads = [threading.Thread(target=guess, args=('127.0.0.%d' % (30 + i),))
               for i in range(6)]
    for t in threads:
        t.start()
    # ... one behind the same router guesses other accounts until banned,
    # and the kid's phone keeps trying a stale password.
    for i in range(6):
        login(env, router, 'boss@example.test', 'guess-%d' % i)
    for i in range(6):
        login(env, router, 'kid@example.test', 'stale-password-%d' % i)
    for t in threads:
        t.join()
    line = held_line(env, 'account %s ' % alice)
    r.check('the account is held back for strangers',
            line is not None and 'delay 400ms' in line, line)
    line = held_line(env, 'address %s ' % router)
    r.check('the router address is banned', line is not None and
            'banned' in line, line)
    # A stranger with the right password waits the account's delay; the
    # owner does not (compared, not timed against a guess: both run on
    # the same loaded machine).
    reply, dt_stranger = login(env, '127.0.0.29', alice, env.users[alice])
    r.check('stranger: logs in after the account\'s delay',
            reply.startswith(b'a OK') and dt_stranger >= 0.395,
            (reply, dt_stranger))
    reply, dt = login(env, owner, alice, env.users[alice])
    r.check('owner: still logs in', reply.startswith(b'a OK'), reply)
    r.check('owner: without the account\'s delay', dt < dt_stranger,
            (dt, dt_stranger))
    reply, _ = login(env, router, 'boss@example.test', 'guess-x')
    r.check('guesser behind the router: refused',
            reply.startswith(b'* BYE [UNAVAILABLE]'), reply)
    line = held_line(env, 'pair %s kid@example.test ' % router)
    r.check('the stale phone slows only its own pair',
            line is not None and 'delay' in line and 'known' in line, line)
    # 30 days on, the pair is a stranger: the ban applies to it too.
    set_clock(31 * 86400)
    c = Raw(env.ports['imap'], owner)
    line = c.line()
    c.close()
    r.check('after 30 days without a login the owner is a stranger',
            line.startswith(b'* OK') or line.startswith(b'* BYE'), line)
    set_clock(0)


def test_half_close_login(env):
    """printf 'a LOGIN ...\\r\\nb LOGOUT\\r\\n' | nc -N: a client that
    half-closes after its commands still gets the answers, though its
    password needs a hash (not in the cache yet)."""
    c = Raw(env.ports['imap'], '127.0.0.71')
    c.send(('a LOGIN carol@example.test "%s"\r\nb LOGOUT\r\n'
            % env.users['carol@example.test']).encode())
    c.s.shutdown(socket.SHUT_WR)
    lines = []
    while True:
        line = c.line()
        if line == b'':
            break
        lines.append(line)
    c.close()
    r.check('half-close: the login answered',
            any(l.startswith(b'a OK') for l in lines), lines)
    r.check('half-close: the LOGOUT too',
            any(l.startswith(b'b OK') for l in lines), lines)


def test_dies_with_connection(env):
    """A pending check dies with its connection: a client that hangs up
    while its login waits is never checked."""
    src = '127.0.0.41'
    for i in range(4):
        login(env, src, 'dave@example.test', 'wrong-%d' % i)
    before = held_line(env, 'address %s ' % src)
    c = Raw(env.ports['imap'], src)
    c.line()
    c.send('a LOGIN dave@example.test wrong-x\r\n')
    c.close()              # the check would wait 200 ms: it is dropped
    deadline = time.monotonic() + 10 * SLOW
    while b'dropped: the client left' not in env.log().encode() and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    r.check('the waiting check is dropped',
            'login check of %s dropped: the client left' % src in env.log())
    after = held_line(env, 'address %s ' % src)
    r.check('... and never counted', before is not None and
            'failures 4 ' in before and after is not None and
            'failures 4 ' in after, (before, after))


# ---- SASL left half done, and SASLprep -----------------------------------

def test_half_done_sasl(env):
    src = '127.0.0.51'
    c = Raw(env.ports['imap'], src)
    c.line()
    c.send('a AUTHENTICATE PLAIN\r\n')
    r.check('PLAIN: continuation', c.line().startswith(b'+'))
    c.close()                       # gone mid-exchange
    c = Raw(env.ports['imap'], src)
    c.line()
    first = b'n,,n=alice@example.test,r=abcdefghijklmnop'
    c.send(b'b AUTHENTICATE SCRAM-SHA-256 ' + base64.b64encode(first) + b'\r\n')
    line = c.line()
    r.check('SCRAM: server-first', line.startswith(b'+ '), line)
    c.send('*\r\n')
    line = c.line()
    r.check('SCRAM cancelled: BAD', line.startswith(b'b BAD'), line)
    c.send('c AUTHENTICATE SCRAM-SHA-256\r\n')
    c.line()
    c.send(base64.b64encode(first) + b'\r\n')
    c.line()
    c.close()                       # gone before client-final
    c = Raw(env.ports['pop3'], src)
    c.line()
    c.send('AUTH SCRAM-SHA-256\r\n')
    r.check('POP3 AUTH: continuation', c.line().startswith(b'+'))
    c.send('!!!not base64!!!\r\n')
    line = c.line()
    r.check('POP3 AUTH garbage: -ERR', line.startswith(b'-ERR'), line)
    c.send('AUTH PLAIN\r\n')
    c.line()
    c.send('*\r\n')
    line = c.line()
    r.check('POP3 AUTH cancelled: -ERR', line.startswith(b'-ERR'), line)
    c.close()
    c = Raw(env.ports['submission'], src)
    c.line()
    c.send('EHLO test\r\n')
    while not c.line().startswith(b'250 '):
        pass
    c.send('AUTH LOGIN\r\n')
    line = c.line()
    r.check('SMTP AUTH LOGIN: 334', line.startswith(b'334'), line)
    c.close()                       # gone mid-exchange
    reply, _ = login(env, src, 'alice@example.test',
                     env.users['alice@example.test'])
    r.check('after half-done exchanges a login works',
            reply.startswith(b'a OK'), reply)
    r.check('half-done exchanges count as no failure',
            not any(l.startswith('address %s ' % src) for l in held(env)))
    r.check('loftd still runs', env.running())


NBSP_PW = 'pass\u00a0word-\uff21\uff22\uff23-1234'   # as stored
PLAIN_PW = 'pass word-ABC-1234'                      # its SASLprep form
IDEO_PW = 'pass\u3000word-A\uff22C-1234'             # another spelling


def literal_login(env, user, pw):
    c = Raw(env.ports['imap'], '127.0.0.61')
    c.line()
    data = pw.encode()
    c.send('a LOGIN %s {%d}\r\n' % (user, len(data)))
    r.check('literal continuation', c.line().startswith(b'+'))
    c.send(data + b'\r\n')
    while True:
        line = c.line()
        if line.startswith(b'a ') or line == b'':
            break
    c.close()
    return line


def gsasl(env, user, pw):
    p = subprocess.run(['gsasl', '--imap', '--no-starttls', '--quiet',
                        '--connect=127.0.0.1:%d' % env.ports['imap'],
                        '--mechanism=SCRAM-SHA-256',
                        '--authentication-id=' + user, '--password=' + pw],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60 * SLOW)
    return p.returncode, (p.stdout + p.stderr).decode('utf-8', 'replace')


def test_non_ascii_passwords(env):
    user = 'erin@example.test'
    env.add_user(user, NBSP_PW)
    r.check('LOGIN with the stored spelling',
            literal_login(env, user, NBSP_PW).startswith(b'a OK'))
    r.check('LOGIN with the prepared spelling',
            literal_login(env, user, PLAIN_PW).startswith(b'a OK'))
    r.check('LOGIN with ideographic space and full-width letters',
            literal_login(env, user, IDEO_PW).startswith(b'a OK'))
    r.check('LOGIN with the wrong case refused',
            literal_login(env, user, 'pass word-abc-1234').startswith(b'a NO'))
    c = Raw(env.ports['imap'], '127.0.0.61')
    c.line()
    msg = base64.b64encode(('\0%s\0%s' % (user, IDEO_PW)).encode()).decode()
    reply, _ = c.cmd('p', 'AUTHENTICATE PLAIN ' + msg)
    r.check('AUTHENTICATE PLAIN, another spelling', reply.startswith(b'p OK'),
            reply)
    c.close()
    c = Raw(env.ports['pop3'], '127.0.0.61')
    c.line()
    c.send(('USER %s\r\nPASS %s\r\n' % (user, NBSP_PW)).encode())
    c.line()
    line = c.line()
    r.check('POP3 PASS with a no-break space', line.startswith(b'+OK'), line)
    c.close()
    c = Raw(env.ports['pop3'], '127.0.0.61')
    c.line()
    c.send(b'AUTH LOGIN\r\n')
    c.line()
    c.send(base64.b64encode(user.encode()) + b'\r\n')
    c.line()
    c.send(base64.b64encode(PLAIN_PW.encode()) + b'\r\n')
    line = c.line()
    r.check('POP3 AUTH LOGIN, the prepared spelling', line.startswith(b'+OK'),
            line)
    c.close()
    if shutil.which('gsasl') is None:
        r.check('gsasl installed (scripts/deps.sh)', False)
        return
    for name, pw in (('stored', NBSP_PW), ('prepared', PLAIN_PW),
                     ('ideographic', IDEO_PW)):
        rc, out = gsasl(env, user, pw)
        r.check('SCRAM-SHA-256 (gsasl), %s spelling' % name, rc == 0, out)
    rc, out = gsasl(env, user, 'pass word-abc-1234')
    r.check('SCRAM-SHA-256 (gsasl), wrong password refused', rc != 0, out)


def main():
    set_clock(0)
    submission = free_port()
    extra = {'auth': {'throttle_max_delay': '400ms', 'ban_after': '6',
                      'ban_time': '60s'},
             'submission': {'listen': '127.0.0.1:%d' % submission}}
    users = {'alice@example.test': 'tea-party-rabbit-hole',
             'bob@example.test': 'can-we-fix-it-yes',
             'carol@example.test': 'ghost-of-christmas-past',
             'dave@example.test': 'open-the-pod-bay-doors',
             'kid@example.test': 'homework-is-done-42'}
    try:
        with Loft(users=users, extra=extra) as env:
            env.ports['submission'] = submission
            test_half_close_login(env)
            test_backoff_and_bans(env)
            set_clock(0)
            test_dies_with_connection(env)
            test_half_done_sasl(env)
            test_non_ascii_passwords(env)
            test_owner_never_locked_out(env)
            test_ban_without_loftd(env)
    finally:
        shutil.rmtree(CLOCK_DIR, True)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
