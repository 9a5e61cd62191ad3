#!/usr/bin/env python3
"""Real POP3 clients against loftd while the same accounts sit in IMAP
IDLE: fetchmail (keep, then no-keep), getmail6 (delete_after N days) and
python3 poplib. The IMAP side must see exactly what the account's
pop3_delete policy promises:
    expunge -> EXPUNGE;  hide -> no EXPUNGE;  trash -> EXPUNGE in INBOX and
    the messages in Trash;
and a download (RETR) marks the message read: the IDLE session sees FETCH
FLAGS (\Seen) when the POP3 session ends, and nothing else.
"""

import os
import poplib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from loftenv import Loft, Results, SLOW, client_tls_context
from pop3client import deliver, simple_message

R = Results()
USERS = {
    'alice@example.test': 'tea-party-rabbit-hole',   # fetchmail keep, trash
    'bob@example.test': 'can-we-fix-it-yes',       # fetchmail no-keep, expunge
    'carol@example.test': 'ghost-of-christmas-past',   # getmail6 delete_after, trash
    'dave@example.test': 'open-the-pod-bay-doors',     # poplib, hide
}


class Idle:
    """A raw IMAP session of one account in IDLE on INBOX."""

    def __init__(self, env, user):
        self.sock = socket.create_connection(('127.0.0.1', env.port('imap')),
                                             timeout=10 * SLOW)
        self.buf = b''
        self.line()
        self.command('a LOGIN "%s" "%s"' % (user, USERS[user]))
        lines = self.command('b SELECT INBOX')
        self.exists = next((int(l.split()[1]) for l in lines
                            if l.endswith(b' EXISTS')), None)
        self.send('c IDLE')
        r = self.line()
        self.idling = r.startswith(b'+')

    def send(self, s):
        self.sock.sendall(s.encode() + b'\r\n')

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        l, self.buf = self.buf.split(b'\r\n', 1)
        return l

    def command(self, cmd):
        tag = cmd.split()[0].encode()
        self.send(cmd)
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(tag + b' '):
                return lines

    def collect(self, want=None, seconds=3):
        """Untagged lines arriving within seconds (stops early once want
        lines matched want_re)."""
        got = []
        deadline = time.monotonic() + seconds * SLOW
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                got.append(self.line())
            except (socket.timeout, TimeoutError):
                break
            if want is not None and want(got):
                break
        return got

    def done(self):
        """Ends IDLE; the untagged lines before the tagged OK."""
        self.send('DONE')
        self.sock.settimeout(10 * SLOW)
        rest = []
        try:
            while True:
                l = self.line()
                if l.startswith(b'c '):
                    R.check('IMAP IDLE ends with OK', l.startswith(b'c OK'), l)
                    break
                rest.append(l)
            self.command('d LOGOUT')
        except (OSError, EOFError) as e:
            R.check('IMAP answers DONE', False, repr(e))
        self.sock.close()
        return rest


def status(env, user, mailbox):
    c = env.imap_login(user, USERS[user])
    typ, data = c.status(mailbox, '(MESSAGES)')
    c.logout()
    m = re.search(rb'MESSAGES (\d+)', data[0] or b'') if typ == 'OK' else None
    return int(m.group(1)) if m else None


def expunges(lines):
    return [l for l in lines if re.match(rb'\* \d+ EXPUNGE$', l)]


def changes(lines):
    return [l for l in lines if re.match(rb'\* \d+ (EXPUNGE|FETCH)', l)]


def only_seen(lines, n):
    """True when lines are n FETCH responses that set \\Seen, and nothing
    else changed (no EXPUNGE, no other flag)."""
    ch = changes(lines)
    return len(ch) == n and all(
        re.match(rb'\* \d+ FETCH \(.*FLAGS \(\\Seen( \\Recent)?\)', l)
        for l in ch)


def fetchmail(env, tmp, user, keep, tls):
    home = os.path.join(tmp, 'fm-' + user.split('@')[0])
    os.makedirs(home, exist_ok=True)
    out = os.path.join(home, 'delivered')
    rc_path = os.path.join(home, 'fetchmailrc')
    port = env.port('pop3s' if tls else 'pop3')
    with open(rc_path, 'w') as f:
        f.write('set no syslog\n'
                'poll 127.0.0.1 with proto POP3 service %d uidl\n'
                '  user "%s" there with password "%s" is "%s" here\n'
                '  options %s %s\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n'
                % (port, user, USERS[user], os.environ.get('USER', 'root'),
                   'keep' if keep else 'nokeep',
                   'ssl no sslcertck' if tls else "sslproto ''", out))
    os.chmod(rc_path, 0o600)
    env_vars = dict(os.environ, FETCHMAILHOME=home, HOME=home)
    r = subprocess.run(['fetchmail', '-f', rc_path, '--nodetach', '-v'],
                       capture_output=True, text=True, env=env_vars,
                       timeout=60 * SLOW)
    try:
        with open(out, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        data = b''
    return r, data


def test_fetchmail(env, tmp):
    alice = 'alice@example.test'
    for i in range(3):
        deliver(env, alice, simple_message(i + 1))
    idle = Idle(env, alice)
    R.check('IMAP IDLE alice', idle.idling and idle.exists == 3)
    r, data = fetchmail(env, tmp, alice, keep=True, tls=True)
    R.check('fetchmail keep (POP3S): ran', r.returncode == 0, r.stdout + r.stderr)
    R.check('fetchmail keep: 3 messages', data.count(b'Message-ID: <m') == 3, data[:300])
    ev = idle.collect(seconds=1.5)
    R.check('keep: IMAP sees nothing', not changes(ev), ev)
    # UIDL: the next run fetches only what is new.
    deliver(env, alice, simple_message(4))
    ev = idle.collect(want=lambda g: any(b'EXISTS' in l for l in g))
    r, data = fetchmail(env, tmp, alice, keep=True, tls=True)
    R.check('fetchmail keep again: only the new one',
            data.count(b'Message-ID: <m') == 4 and data.count(b'<m4@') == 1,
            r.stdout + r.stderr)
    idle.done()
    R.check('keep: INBOX still has 4', status(env, alice, 'INBOX') == 4)

    bob = 'bob@example.test'
    env.loftctl('user', 'set', bob, 'pop3_delete=expunge')
    for i in range(3):
        deliver(env, bob, simple_message(i + 1))
    idle = Idle(env, bob)
    r, data = fetchmail(env, tmp, bob, keep=False, tls=False)
    R.check('fetchmail no-keep (plain, loopback): ran', r.returncode == 0,
            r.stdout + r.stderr)
    R.check('fetchmail no-keep: 3 messages', data.count(b'Message-ID: <m') == 3)
    ev = idle.collect(want=lambda g: len(expunges(g)) >= 3)
    R.check('expunge policy: IMAP sees 3 EXPUNGE', len(expunges(ev)) == 3, ev)
    idle.done()
    R.check('expunge: INBOX empty', status(env, bob, 'INBOX') == 0)
    R.check('expunge: Trash empty', status(env, bob, 'Trash') == 0)
    r, data2 = fetchmail(env, tmp, bob, keep=False, tls=False)
    R.check('fetchmail no-keep again: nothing', data2 == data, r.stdout)


def getmail(tmp, env, user, delete_after):
    gdir = os.path.join(tmp, 'gm-' + user.split('@')[0])
    os.makedirs(gdir, exist_ok=True)
    mbox = os.path.join(gdir, 'mbox')
    if not os.path.exists(mbox):
        open(mbox, 'w').close()
    rc = os.path.join(gdir, 'getmailrc')
    with open(rc, 'w') as f:
        f.write('[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n'
                'port = %d\nusername = %s\npassword = %s\n\n'
                '[destination]\ntype = MDA_external\npath = /bin/sh\n'
                'arguments = ("-c", "cat >> %s")\nallow_root_commands = true\n\n'
                '[options]\nread_all = false\ndelete = false\n'
                'delete_after = %d\nverbose = 2\n'
                % (env.port('pop3'), user, USERS[user], mbox, delete_after))
    r = subprocess.run(['getmail', '--getmaildir', gdir, '--rcfile', rc],
                       capture_output=True, text=True, timeout=60 * SLOW)
    with open(mbox, 'rb') as f:
        return r, f.read(), gdir


def age_oldmail(gdir, days):
    """Pretends getmail saw its messages `days` ago (its own clock)."""
    for name in os.listdir(gdir):
        if not name.startswith('oldmail-'):
            continue
        path = os.path.join(gdir, name)
        with open(path, 'rb') as f:
            lines = f.read().split(b'\n')
        out = []
        for l in lines:
            if b'\0' in l:
                uid, ts = l.rsplit(b'\0', 1)
                l = uid + b'\0' + str(int(ts) - days * 86400).encode()
            out.append(l)
        with open(path, 'wb') as f:
            f.write(b'\n'.join(out))


def test_getmail(env, tmp):
    carol = 'carol@example.test'
    # trash, whatever the default (auto: hide, as this account has an
    # IMAP client)
    env.loftctl('user', 'set', carol, 'pop3_delete=trash')
    for i in range(3):
        deliver(env, carol, simple_message(i + 1))
    idle = Idle(env, carol)
    r, data, gdir = getmail(tmp, env, carol, delete_after=2)
    R.check('getmail6: ran', r.returncode == 0, r.stdout + r.stderr)
    R.check('getmail6: 3 messages', data.count(b'Message-ID: <m') == 3, r.stdout)
    ev = idle.collect(want=lambda g: len(changes(g)) >= 3)
    R.check('getmail6 before delete_after: IMAP sees the 3 read, nothing else',
            only_seen(ev, 3), ev)
    age_oldmail(gdir, 3)
    r, data, gdir = getmail(tmp, env, carol, delete_after=2)
    R.check('getmail6 delete_after: ran', r.returncode == 0, r.stdout + r.stderr)
    R.check('getmail6 delete_after: nothing downloaded twice',
            data.count(b'Message-ID: <m') == 3)
    ev = idle.collect(want=lambda g: len(expunges(g)) >= 3)
    R.check('trash policy: IMAP sees 3 EXPUNGE in INBOX', len(expunges(ev)) == 3,
            (ev, r.stdout))
    idle.done()
    R.check('trash: INBOX empty', status(env, carol, 'INBOX') == 0)
    R.check('trash: Trash has 3', status(env, carol, 'Trash') == 3)


def test_poplib(env):
    dave = 'dave@example.test'
    env.loftctl('user', 'set', dave, 'pop3_delete=hide')
    for i in range(3):
        deliver(env, dave, simple_message(i + 1))
    idle = Idle(env, dave)
    p = poplib.POP3('127.0.0.1', env.port('pop3'), timeout=20 * SLOW)
    caps = p.capa()
    R.check('poplib capa', 'UIDL' in caps and 'TOP' in caps, caps)
    p.stls(context=client_tls_context())
    p.user(dave)
    p.pass_(USERS[dave])
    count, size = p.stat()
    R.check('poplib stat', count == 3)
    uidls = p.uidl()[1]
    for n in range(1, count + 1):
        resp, lines, octets = p.retr(n)
        R.check('poplib retr %d' % n, resp.startswith(b'+OK') and
                b'Message-ID: <m%d@example.org>' % n in lines)
        p.dele(n)
    p.quit()
    ev = idle.collect(want=lambda g: len(changes(g)) >= 3)
    ev += idle.collect(seconds=1.5)
    R.check('hide policy: IMAP sees the 3 read, no EXPUNGE', only_seen(ev, 3),
            ev)
    idle.done()
    R.check('hide: INBOX keeps 3', status(env, dave, 'INBOX') == 3)
    p = poplib.POP3_SSL('127.0.0.1', env.port('pop3s'), context=client_tls_context(),
                        timeout=20 * SLOW)
    p.user(dave)
    p.pass_(USERS[dave])
    R.check('hide: POP3 sees none', p.stat()[0] == 0)
    deliver(env, dave, simple_message(4))
    p.quit()
    p = poplib.POP3_SSL('127.0.0.1', env.port('pop3s'), context=client_tls_context(),
                        timeout=20 * SLOW)
    p.user(dave)
    p.pass_(USERS[dave])
    new = p.uidl()[1]
    R.check('hide: only the new message, with a new UIDL',
            len(new) == 1 and new[0].split()[1] not in [u.split()[1] for u in uidls], new)
    p.quit()


def main():
    tmp = tempfile.mkdtemp(prefix='loft-pop3-clients-')
    try:
        with Loft(users=USERS) as env:
            test_fetchmail(env, tmp)
            test_getmail(env, tmp)
            test_poplib(env)
    finally:
        shutil.rmtree(tmp, True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
