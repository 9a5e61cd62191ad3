"""The outside world misbehaving, as the submission user sees it: nothing
is lost, half sent or bounced for a temporary fault.

- a remote (the smarthost) that drops the connection in the middle of
  DATA: the message is deferred, tried again, and reaches the remote once,
  whole; the queue is empty after;
- a DNS server that answers garbage, and one that stays silent: mail to a
  remote domain is deferred (kept, no bounce to the sender), never
  refused or dropped;
- a full disk while queueing (the queue's files on a 4 MiB tmpfs): the message
  that does not fit gets 452 4.3.1 and leaves nothing behind; a small one
  still goes;
- the admin while the remote was down: `loftctl queue hold`, `retry` and
  `release` on a running loftd take effect at once (loftd notices
  loftctl's change within a second), not at the next attempt an hour
  later; a held message stays until released.
"""

import os
import random
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time

from loftenv import BACKEND, Loft, Results, free_port, SLOW
from smtpconv import Sink, inbox_messages, wait_for

USER = 'alice@example.test'


class DroppingSink:
    """SMTP sink that closes the first `drops` connections after reading
    part of the message, then takes messages normally."""

    def __init__(self, drops):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.drops = drops
        self.dropped = 0
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        f = c.makefile('rb')
        c.sendall(b'220 sink ESMTP\r\n')
        while True:
            line = f.readline()
            if not line:
                break
            up = line[:4].upper()
            if up == b'EHLO':
                c.sendall(b'250-sink\r\n250 8BITMIME\r\n')
            elif up == b'DATA':
                c.sendall(b'354 go\r\n')
                with self.lock:
                    drop = self.dropped < self.drops
                    if drop:
                        self.dropped += 1
                if drop:
                    f.readline()
                    f.readline()
                    c.shutdown(socket.SHUT_RDWR)
                    break
                data = b''
                while True:
                    l2 = f.readline()
                    if l2 in (b'.\r\n', b''):
                        break
                    data += l2
                with self.lock:
                    self.messages.append(data)
                c.sendall(b'250 2.0.0 queued\r\n')
            elif up == b'QUIT':
                c.sendall(b'221 bye\r\n')
                break
            else:
                c.sendall(b'250 ok\r\n')
        c.close()


class BadDNS:
    """A DNS server on UDP and TCP that answers random bytes (garbage) or
    nothing at all (silent)."""

    def __init__(self, mode):
        self.mode = mode
        # one port number for UDP and TCP: another test may hold the TCP
        # side of the port UDP got, so try again until both bind
        for _ in range(100):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(('127.0.0.1', 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket()
            try:
                self.tcp.bind(('127.0.0.1', self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(8)
        self.queries = 0
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _reply(self, q):
        self.queries += 1
        if self.mode == 'silent':
            return None
        rnd = random.Random(self.queries)
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 600)))
        # half the time the query's id, so the resolver must parse it
        return (q[:2] + junk) if self.queries % 2 and len(q) >= 2 else junk

    def _udp(self):
        while True:
            try:
                q, addr = self.udp.recvfrom(4096)
            except OSError:
                return
            a = self._reply(q)
            if a is not None:
                self.udp.sendto(a, addr)

    def _tcp(self):
        while True:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                data = c.recv(4096)
                a = self._reply(data[2:])
                if a is not None:
                    c.sendall(len(a).to_bytes(2, 'big') + a)
                    c.close()
                else:
                    time.sleep(10)
                    c.close()
            except OSError:
                pass


def message(subject, size=0):
    body = ('x' * 76 + '\r\n') * (size // 78) if size else 'hello\r\n'
    return ('From: Alice <%s>\r\nTo: <bob@remote.example>\r\nSubject: %s\r\n\r\n%s'
            % (USER, subject, body)).encode()


def submit(port, pw, rcpt, msg):
    c = smtplib.SMTP('127.0.0.1', port, timeout=60 * SLOW)
    try:
        c.login(USER, pw)
        c.sendmail(USER, [rcpt], msg)
        return 250, b''
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return code, text
    finally:
        try:
            c.quit()
        except (OSError, smtplib.SMTPException):
            pass


def queue_listing(env):
    rc, out, err = env.loftctl('queue', 'list')
    return out if rc == 0 else err


def test_drop_mid_data(r):
    sink = DroppingSink(drops=2)
    port = free_port()
    extra = {'submission': {'listen': '127.0.0.1:%d' % port},
             'queue': {'smarthost': '127.0.0.1:%d' % sink.port, 'smarthost_tls': 'none',
                       'retry_min': '1s', 'retry_max': '1s'}}
    with Loft(extra=extra) as env:
        port = env.port('submission')   # moved on a clash
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('dropped twice', 20000))
        r.check('drop mid-DATA: accepted', code == 250, text)
        got = wait_for(lambda: sink.messages, 60 * SLOW)
        r.check('drop mid-DATA: delivered after the drops', got and sink.dropped == 2,
                (len(sink.messages), sink.dropped, env.log()[-1500:]))
        r.check('drop mid-DATA: deferred twice first',
                len(re.findall(r'to=<bob@remote.example> .*status=deferred', env.log())) >= 2,
                env.log()[-1500:])
        time.sleep(0.5)
        r.check('drop mid-DATA: reached the remote once, whole',
                len(sink.messages) == 1 and sink.messages[0].rstrip(b'\r\n').endswith(b'x' * 76),
                len(sink.messages))
        r.check('drop mid-DATA: queue empty',
                wait_for(lambda: queue_listing(env) == '', 20 * SLOW), queue_listing(env))


def test_bad_dns(r, mode):
    dns = BadDNS(mode)
    port = free_port()
    extra = {'submission': {'listen': '127.0.0.1:%d' % port},
             'dns': {'resolvers': '127.0.0.1:%d' % dns.port, 'trust_anchor': 'none',
                     'timeout': '1s'},
             'queue': {'retry_min': '1h', 'retry_max': '2h'}}
    with Loft(extra=extra) as env:
        port = env.port('submission')   # moved on a clash
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('dns %s' % mode))
        r.check('DNS %s: accepted (the lookup comes later)' % mode, code == 250, text)
        deferred = wait_for(lambda: re.search(
            r'to=<bob@remote.example> .*status=deferred \((\d+) (4\.\d+\.\d+)',
            env.log()), 60 * SLOW)
        r.check('DNS %s: deferred with a 4.x.x code' % mode, deferred, env.log()[-1500:])
        r.check('DNS %s: the server was asked' % mode, dns.queries > 0, dns.queries)
        listing = queue_listing(env)
        r.check('DNS %s: still queued' % mode, '<bob@remote.example>' in listing, listing)
        r.check('DNS %s: no bounce to the sender' % mode,
                not any(b'Undelivered' in m for m in inbox_messages(env, USER)))
        r.check('DNS %s: loftd still serves' % mode,
                submit(port, env.users[USER], USER, message('after dns'))[0] == 250)


def test_full_disk(r):
    if os.getuid() != 0:
        r.check('full disk: needs root for a tmpfs', False)
        return
    port = free_port()
    extra = {'submission': {'listen': '127.0.0.1:%d' % port},
             'queue': {'smarthost': '127.0.0.1:%d' % free_port(), 'smarthost_tls': 'none',
                       'retry_min': '1h', 'retry_max': '2h'}}
    env = Loft(extra=extra, start=False)
    qdir = os.path.join(env.data_dir, 'queue')
    if BACKEND == 'postgres':
        # the queue's files where every node sees them (docs/scale-out.md
        # "The queue"), its rows in the database
        qdir = os.path.join(env.sections['store']['blob_dir'], 'queue')
    os.makedirs(qdir, exist_ok=True)
    p = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', qdir],
                       capture_output=True, text=True)
    if p.returncode != 0:
        r.check('full disk: tmpfs mounted', False, p.stderr)
        env.close()
        return
    try:
        env.start()
        port = env.port('submission')   # moved on a clash
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('too big for the disk', 6 * 1024 * 1024))
        r.check('full disk: 452 4.3.1', code == 452 and text.startswith(b'4.3.1'),
                (code, text))
        listing = queue_listing(env)
        r.check('full disk: nothing queued of it', 'too big' not in listing and
                listing.count('<bob@remote.example>') == 0, listing)
        left = [f for f in os.listdir(os.path.join(qdir, 'tmp'))] \
            if os.path.isdir(os.path.join(qdir, 'tmp')) else []
        r.check('full disk: no temp file left', not left, left)
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('small one'))
        r.check('full disk: a small message still queued', code == 250, text)
        r.check('full disk: listed', '<bob@remote.example>' in queue_listing(env),
                queue_listing(env))
        # A queue error with room on the disk (its tmp directory removed
        # by hand: open() gives ENOENT) is a temporary local error, 451
        # 4.3.0; "452 4.3.1 Insufficient system storage" is for a full
        # disk only (it was given for every file and database error).
        tmp = os.path.join(qdir, 'tmp')
        shutil.rmtree(tmp)
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('no tmp directory'))
        r.check('queue error, disk not full: 451 4.3.0',
                code == 451 and text.startswith(b'4.3.0'), (code, text))
        os.mkdir(tmp, 0o750)
        code, text = submit(port, env.users[USER], 'bob@remote.example',
                            message('tmp directory back'))
        r.check('queue error: queued again once the directory is back',
                code == 250, text)
    finally:
        try:
            env.stop()
        finally:
            subprocess.run(['umount', '-l', qdir], capture_output=True)
            env.close()


def test_admin_acts(r):
    block = socket.socket()
    block.bind(('127.0.0.1', 0))       # bound, never listening: refused
    sink_port = block.getsockname()[1]
    port = free_port()
    extra = {'submission': {'listen': '127.0.0.1:%d' % port},
             'queue': {'smarthost': '127.0.0.1:%d' % sink_port,
                       'smarthost_tls': 'none', 'retry_min': '1h',
                       'retry_max': '2h'}}
    sink = None

    def arrived(rcpt):
        with sink.lock:
            return any(rcpt.encode() in b''.join(m.get('rcpts', []))
                       for m in sink.messages)

    try:
        with Loft(extra=extra) as env:
            port = env.port('submission')   # moved on a clash
            for rcpt in ('bob@remote.example', 'carol@remote.example'):
                code, text = submit(port, env.users[USER], rcpt,
                                    message('admin ' + rcpt))
                r.check('admin: %s queued' % rcpt, code == 250, text)
            r.check('admin: both deferred (the remote refuses)', wait_for(
                lambda: len(re.findall(r'to=<(bob|carol)@remote.example> '
                                       r'.*status=deferred', env.log())) >= 2,
                60 * SLOW), env.log()[-1500:])
            ids, cur = {}, None
            for line in queue_listing(env).splitlines():
                if line and not line.startswith(' '):
                    cur = line.split()[0]
                elif cur and line.strip():
                    ids[line.split()[0].strip('<>')] = cur
            r.check('admin: both listed', len(ids) == 2, ids)
            bob = ids.get('bob@remote.example', '?')
            carol = ids.get('carol@remote.example', '?')
            rc, out, err = env.loftctl('queue', 'hold', carol)
            r.check('admin: hold', rc == 0, out + err)
            block.close()
            sink = Sink(port=sink_port)      # the remote is back
            t0 = time.monotonic()
            rc, out, err = env.loftctl('queue', 'retry', bob)
            r.check('admin: retry', rc == 0, out + err)
            got = wait_for(lambda: arrived('bob@'), 60 * SLOW)
            r.check('admin: retried at once, not in an hour', got,
                    env.log()[-1500:])
            print('loftctl queue retry -> at the remote: %.2f s'
                  % (time.monotonic() - t0))
            r.check('admin: the held message stays held',
                    not arrived('carol@') and 'next: held' in
                    queue_listing(env), queue_listing(env))
            t0 = time.monotonic()
            rc, out, err = env.loftctl('queue', 'release', carol)
            r.check('admin: release', rc == 0, out + err)
            got = wait_for(lambda: arrived('carol@'), 60 * SLOW)
            r.check('admin: released, sent at once', got, env.log()[-1500:])
            print('loftctl queue release -> at the remote: %.2f s'
                  % (time.monotonic() - t0))
            r.check('admin: queue empty after',
                    wait_for(lambda: queue_listing(env) == '', 20 * SLOW),
                    queue_listing(env))
    finally:
        block.close()
        if sink is not None:
            sink.sock.close()


def main():
    r = Results()
    test_drop_mid_data(r)
    test_bad_dns(r, 'garbage')
    test_bad_dns(r, 'silent')
    test_full_disk(r)
    test_admin_acts(r)
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
