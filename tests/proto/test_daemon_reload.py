"""SIGHUP and sd_notify (issue 10).

- sd_notify on a NOTIFY_SOCKET the test opens: READY=1 once loftd serves,
  RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP,
  STOPPING=1 at SIGTERM; nothing from the children.
- A renewed certificate: after SIGHUP a new TLS client sees the new
  fingerprint, while an IMAP client in IDLE since before stays connected,
  on the old certificate, and gets EXISTS for a delivery.
- Garbage for a certificate, then SIGHUP: logged, the reload refused, the
  old certificate still served.
- A live key (log_level) takes effect; a key that needs a restart (an
  [imap] listen address) is logged as such.
- Front-end timeouts ([imap] timeout_login, [pop3] timeout) are live: the
  next connections get the new ones.
- [smtp] and [submission] keys are live for new sessions (EHLO's SIZE),
  a session open before keeps its own; [http] cors_origins is live for
  the next request (a preflight refused, then allowed).
- [sieve]'s before script is compiled again: the next delivery runs the
  new one; a broken one refuses the reload and the running one stays.
"""

import os
import socket
import ssl
import subprocess
import sys
import time

from loftenv import SLOW, Loft, Results, client_tls_context, free_port

R = Results()


def fingerprint(env):
    s = socket.create_connection(('127.0.0.1', env.port('imaps')),
                                 timeout=10 * SLOW)
    t = client_tls_context().wrap_socket(s, server_hostname='localhost')
    der = t.getpeercert(binary_form=True)
    t.close()
    import hashlib
    return hashlib.sha256(der).hexdigest()


def new_cert(dirname, cn):
    cert = os.path.join(dirname, 'cert.pem')
    key = os.path.join(dirname, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                    '-days', '30', '-subj', '/CN=' + cn,
                    '-keyout', key, '-out', cert],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


class Notify:
    """A NOTIFY_SOCKET as systemd opens one."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(30 * SLOW)
        self.got = []

    def wait(self, word):
        """Messages until one holding word (a line 'READY=1' etc)."""
        while True:
            for m in self.got:
                if word in m.split('\n'):
                    self.got.remove(m)
                    return m
            try:
                data, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                return None
            self.got.append(data.decode())


def wait_log(env, text, start=0, timeout=15):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if text in env.log()[start:]:
            return True
        time.sleep(0.05)
    return False


def main():
    with Loft(start=False) as env:
        tls_dir = os.path.join(env.dir, 'tls')
        os.mkdir(tls_dir, 0o700)
        env.cert, env.key = new_cert(tls_dir, 'first')
        env.sections['tls'] = {'cert': env.cert, 'key': env.key}
        for sec in ('smtp', 'submission'):   # moved on a clash
            env.ports[sec] = free_port()
            env.sections[sec] = {'listen': '127.0.0.1:%d' % env.ports[sec]}
        sieve_dir = os.path.join(env.dir, 'sieve')
        os.mkdir(sieve_dir)
        before = os.path.join(sieve_dir, 'before.sieve')
        with open(before, 'w') as f:
            f.write('require ["imap4flags"];\naddflag "$First";\n')
        env.sections['sieve'] = {'before': before}
        env.write_config()
        notify = Notify(os.path.join(env.dir, 'notify'))
        os.environ['NOTIFY_SOCKET'] = notify.path
        try:
            env.start()
        finally:
            del os.environ['NOTIFY_SOCKET']
        ready = notify.wait('READY=1')
        R.check('READY=1', ready is not None, notify.got)
        R.check('READY=1 from the main pid', ready is not None)
        first = fingerprint(env)

        # An IDLE client, on the first certificate.
        idle = env.imap_login('alice@example.test', tls=True)
        idle.select('INBOX')
        idle_fp = __import__('hashlib').sha256(
            idle.sock.getpeercert(binary_form=True)).hexdigest()
        R.check('IDLE client on the first certificate', idle_fp == first)
        idle.send(b'i1 IDLE\r\n')
        R.check('IDLE continuation', idle.readline().startswith(b'+'))

        # Renewed certificate and a live key.
        new_cert(tls_dir, 'second')
        env.sections['']['log_level'] = 'info'
        env.write_config()
        mark = len(env.log())
        env.proc.send_signal(1)
        m = notify.wait('RELOADING=1')
        R.check('RELOADING=1', m is not None, notify.got)
        R.check('RELOADING=1 with MONOTONIC_USEC',
                m is not None and 'MONOTONIC_USEC=' in m, m)
        R.check('READY=1 after the reload', notify.wait('READY=1') is not None)
        R.check('reload done logged', wait_log(env, 'reload done', mark))
        second = fingerprint(env)
        R.check('a new TLS client sees the new certificate', second != first,
                (first, second))
        R.check('the live key is logged',
                'reload: log_level: debug -> info' in env.log()[mark:],
                env.log()[mark:])
        # log_level info: the debug lines of new connections are gone.
        mark2 = len(env.log())
        fingerprint(env)
        time.sleep(0.3)
        R.check('log_level took effect', 'debug ' not in env.log()[mark2:],
                env.log()[mark2:][:500])

        # The IDLE client is still there and hears of a delivery.
        lm = env.lmtp()
        lm.sendmail('a@remote.test', ['alice@example.test'],
                    b'Subject: after reload\r\n\r\nbody\r\n')
        lm.quit()
        idle.sock.settimeout(10 * SLOW)
        line = idle.readline()
        R.check('IDLE client gets EXISTS after the reload',
                line.startswith(b'* 1 EXISTS'), line)
        idle.send(b'DONE\r\n')
        line = idle.readline()
        while line.startswith(b'* '):
            line = idle.readline()
        R.check('IDLE ends OK', line.startswith(b'i1 OK'), line)

        # A key that needs a restart.
        env.sections['imap']['listen'] += ', 127.0.0.1:%d' % free_port()
        env.write_config()
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('restart key: reload', notify.wait('READY=1') is not None)
        R.check('restart key logged', wait_log(
            env, '[imap] listen changed: it takes effect at the next restart',
            mark), env.log()[mark:])
        env.sections['imap']['listen'] = '127.0.0.1:%d' % env.port('imap')
        env.write_config()

        # Front-end timeouts are live: [imap] timeout_login and [pop3]
        # timeout (defaults 1 min and 10 min) become 1 s for the next
        # connections; logged as live changes, not as restart keys.
        env.sections['imap']['timeout_login'] = '1s'
        env.sections['pop3']['timeout'] = '1s'
        env.write_config()
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('timeouts: reload', notify.wait('READY=1') is not None)
        R.check('timeouts: reload done', wait_log(env, 'reload done', mark))
        tail = env.log()[mark:]
        R.check('timeouts: the live change is logged',
                'reload: [imap] timeout_login: (unset) -> 1s' in tail and
                'reload: [pop3] timeout: (unset) -> 1s' in tail, tail)
        R.check('timeouts: not logged as needing a restart',
                'timeout_login changed' not in tail and
                'timeout changed' not in tail, tail)
        for proto, bye in (('imap', b'* BYE Autologout'), ('pop3', None)):
            s = socket.create_connection(('127.0.0.1', env.port(proto)),
                                         timeout=30)
            f = s.makefile('rb')
            f.readline()                       # the greeting
            t0 = time.monotonic()
            rest = f.read()                    # until loftd closes
            took = time.monotonic() - t0
            s.close()
            R.check('timeouts: %s closed after the new timeout (%.1f s, '
                    'the old one was minutes)' % (proto, took),
                    took < 20, took)
            if bye is not None:
                R.check('timeouts: %s says why' % proto,
                        rest.startswith(bye), rest)
        del env.sections['imap']['timeout_login']
        del env.sections['pop3']['timeout']
        env.write_config()
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('timeouts: back to the defaults',
                notify.wait('READY=1') is not None and
                wait_log(env, 'reload: [imap] timeout_login: 1s -> (unset)',
                         mark), env.log()[mark:])

        # [smtp], [submission], [http] and [sieve] live.
        def ehlo_size(section, sock=None):
            if sock is None:
                port = int(env.sections[section]['listen'].split(':')[-1])
                sock = socket.create_connection(('127.0.0.1', port),
                                                timeout=30 * SLOW)
                f = sock.makefile('rb')
                R.check('%s: greeting' % section,
                        f.readline().startswith(b'220'))
            else:
                f = sock.makefile('rb')
                sock.sendall(b'RSET\r\n')
                f.readline()
            sock.sendall(b'EHLO client.test\r\n')
            size = None
            while True:
                line = f.readline()
                if line[4:9] == b'SIZE ':
                    size = int(line[9:].strip())
                if line[3:4] != b'-':
                    break
            return sock, size

        def preflight():
            h = env.http()
            h.request('OPTIONS', '/jmap/api', headers={
                'Origin': 'https://app.example.test',
                'Access-Control-Request-Method': 'POST'})
            r = h.getresponse()
            r.read()
            h.close()
            return r.status, r.getheader('Access-Control-Allow-Origin')

        def flagged(subject, keyword):
            c = env.imap_login('alice@example.test')
            c.select('INBOX', readonly=True)
            typ, data = c.search(None, 'SUBJECT', '"%s"' % subject,
                                 'KEYWORD', keyword)
            c.logout()
            return bool(data[0].split())

        def deliver(subject):
            lm = env.lmtp()
            lm.sendmail('a@remote.test', ['alice@example.test'],
                        b'Subject: ' + subject.encode() + b'\r\n\r\nx\r\n')
            lm.quit()

        old_mx, mx_size = ehlo_size('smtp')
        _, sub_size = ehlo_size('submission')
        R.check('smtp: the default SIZE', mx_size == 50 * 1024 * 1024,
                mx_size)
        R.check('http: an origin not listed is refused', preflight()[0] == 403)
        deliver('sieve one')
        R.check('sieve: the first before script ran',
                flagged('sieve one', '$First'))
        env.sections['smtp']['max_message_size'] = '2M'
        env.sections['submission']['max_message_size'] = '3M'
        env.sections['http']['cors_origins'] = 'https://app.example.test'
        with open(before, 'w') as f:
            f.write('require ["imap4flags"];\naddflag "$Second";\n')
        env.write_config()
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('live sections: reload', notify.wait('READY=1') is not None)
        R.check('live sections: reload done',
                wait_log(env, 'reload done', mark), env.log()[mark:])
        tail = env.log()[mark:]
        R.check('live sections: logged as live',
                'reload: [smtp] max_message_size: (unset) -> 2M' in tail and
                'reload: [submission] max_message_size: (unset) -> 3M' in tail
                and 'reload: [http] cors_origins: (unset) -> ' in tail, tail)
        R.check('live sections: nothing needs a restart',
                'next restart' not in tail, tail)
        R.check('smtp: a new session has the new SIZE',
                ehlo_size('smtp')[1] == 2 * 1024 * 1024)
        R.check('submission: a new session has the new SIZE',
                ehlo_size('submission')[1] == 3 * 1024 * 1024)
        R.check('smtp: a session open before keeps its SIZE',
                ehlo_size('smtp', old_mx)[1] == mx_size)
        old_mx.close()
        status, allow = preflight()
        R.check('http: the listed origin is allowed now',
                status == 204 and allow == 'https://app.example.test',
                (status, allow))
        deliver('sieve two')
        R.check('sieve: the new before script runs',
                flagged('sieve two', '$Second') and
                not flagged('sieve two', '$First'))
        # A broken script: refused with FILE:LINE:COLUMN, the running one
        # stays.
        with open(before, 'w') as f:
            f.write('require ["imap4flags"];\n\naddflag "$Third"\n')
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('sieve broken: READY=1 again',
                notify.wait('READY=1') is not None)
        R.check('sieve broken: reload refused with the place',
                wait_log(env, 'reload refused', mark) and
                ('%s:4:1: missing' % before) in env.log()[mark:],
                env.log()[mark:])
        deliver('sieve three')
        R.check('sieve broken: the running script stays',
                flagged('sieve three', '$Second'))
        with open(before, 'w') as f:
            f.write('require ["imap4flags"];\naddflag "$Second";\n')

        # Garbage for a certificate: refused, the old one stays.
        with open(env.cert, 'w') as f:
            f.write('garbage\n')
        mark = len(env.log())
        env.proc.send_signal(1)
        R.check('garbage: READY=1 again', notify.wait('READY=1') is not None)
        R.check('garbage: logged why', wait_log(
            env, 'cannot load certificate %s' % env.cert, mark),
            env.log()[mark:])
        R.check('garbage: reload refused', 'reload refused' in env.log()[mark:])
        R.check('garbage: the old certificate stays', fingerprint(env) == second)
        c = env.imap_login('alice@example.test', tls=True)
        R.check('garbage: still serving', c.select('INBOX')[0] == 'OK')
        c.logout()
        idle.logout()

        R.check('SIGTERM: exit 0', env.stop() == 0)
        R.check('STOPPING=1', notify.wait('STOPPING=1') is not None, notify.got)
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
