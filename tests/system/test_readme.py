#!/usr/bin/env python3
"""README.md as a new admin follows it.

- "Running it for real": the minimal configuration block, read from
  README.md, passes --check and starts as written (its ports moved to free
  ones, the same port number to the same new port, so listeners that
  would collide still do; paths moved into a temp dir); IMAP answers on
  IPv4 and IPv6 through its `*:` listener, POP3 too, LMTP on its socket.
- "Two commands": `make run` (scripts/demo.sh) with PORT_OFFSET: the
  demo line, then the lines that name run/loftd.conf, run/cert.pem and a
  first delivery; listening on 127.0.0.1 and [::1]; README's two Python
  snippets (deliver over LMTP, read over IMAP with the certificate checked
  for "localhost") work as printed, ports moved by the offset; a second
  demo from the same run/ says one runs and leaves it alone; a new offset
  moves the ports of the demo's own config; a bad offset is refused.
"""

import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import loftenv
from loftenv import LOFTCTL, LOFTD, SLOW, SRC, Results, free_port, test_cert

R = Results()
README = open(os.path.join(SRC, 'README.md')).read()


def service_user(conf):
    """`user = loft` as written where that user exists, else nobody (the
    package creates loft; a test machine may not have it)."""
    try:
        pwd.getpwnam('loft')
        return conf
    except KeyError:
        return re.sub(r'^user = loft$', 'user = nobody', conf, flags=re.M)


def section(title):
    m = re.search(r'^## %s\n(.*?)(?=^## )' % re.escape(title), README,
                  re.S | re.M)
    return m.group(1)


def code_blocks(text):
    """The indented code blocks of a markdown text, unindented."""
    blocks, cur = [], []
    for line in text.split('\n') + ['']:
        if line.startswith('    ') or (cur and line == ''):
            cur.append(line[4:])
        elif cur:
            blocks.append('\n'.join(cur).strip('\n') + '\n')
            cur = []
    if cur:
        blocks.append('\n'.join(cur).strip('\n') + '\n')
    return blocks


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


def wait_ready(log_path, proc, timeout=30):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if b'loftd ready' in open(log_path, 'rb').read():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def greeting(family, host, port):
    with socket.socket(family) as s:
        s.settimeout(10 * SLOW)
        s.connect((host, port))
        return s.recv(200)


def test_minimal_config():
    block = [b for b in code_blocks(section('Running it for real'))
             if 'data_dir' in b]
    R.check('README has the minimal configuration', len(block) == 1, block)
    if not block:
        return
    conf = block[0]
    R.check('README config: IMAP on IPv4 and IPv6 in one listener',
            re.search(r'^\[imap\]\nlisten = \*:143$', conf, re.M), conf)
    work = tempfile.mkdtemp(prefix='loft-readme-')
    try:
        cert, key = test_cert()
        ports = {}

        def move(m):
            old = int(m.group(2))
            ports.setdefault(old, free_port())
            return '%s:%d' % (m.group(1), ports[old])
        text = re.sub(r'(\*|\[[0-9a-f:.]*\]|[0-9.]+):(\d+)', move, conf)
        text = (text.replace('/var/lib/loft', os.path.join(work, 'data'))
                .replace('/etc/loft/cert.pem', cert)
                .replace('/etc/loft/key.pem', key)
                .replace('/run/loft/', os.path.join(work, 'run') + '/'))
        text = service_user(text)
        os.chmod(work, 0o755)     # the service user reaches data/ in it
        os.makedirs(os.path.join(work, 'run'))
        path = os.path.join(work, 'loftd.conf')
        with open(path, 'w') as f:
            f.write(text)
        p = subprocess.run([LOFTD, '--config', path, '--check'],
                           capture_output=True, text=True)
        R.check('README config passes --check', p.returncode == 0,
                p.stdout + p.stderr)
        log = os.path.join(work, 'loftd.log')
        with open(log, 'wb') as lf:
            proc = subprocess.Popen([LOFTD, '--config', path], stdout=lf,
                                    stderr=lf)
        try:
            ok = wait_ready(log, proc)
            R.check('README config starts as written', ok,
                    open(log).read()[-2000:])
            if not ok:
                return
            imap, pop3 = ports[143], ports[110]
            R.check('IMAP on IPv4', greeting(socket.AF_INET, '127.0.0.1',
                                             imap).startswith(b'* OK'))
            if has_ipv6():
                R.check('IMAP on IPv6', greeting(socket.AF_INET6, '::1',
                                                 imap).startswith(b'* OK'))
                R.check('POP3 on IPv6', greeting(socket.AF_INET6, '::1',
                                                 pop3).startswith(b'+OK'))
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10 * SLOW)
                s.connect(os.path.join(work, 'run', 'lmtp'))
                R.check('LMTP on its socket', s.recv(200).startswith(b'220'))
        finally:
            proc.terminate()
            proc.wait(30 * SLOW)
    finally:
        shutil.rmtree(work, True)


# ---- the demo -----------------------------------------------------------

DEMO_PORTS = (1143, 1993, 1110, 1995, 2424, 2525, 1587, 1465, 8443, 9180,
              14190)


def offset_free(n):
    for base in DEMO_PORTS:
        for fam, host in ((socket.AF_INET, '127.0.0.1'),
                          (socket.AF_INET6, '::1')):
            if fam == socket.AF_INET6 and not has_ipv6():
                continue
            with socket.socket(fam) as s:
                try:
                    s.bind((host, base + n))
                except OSError:
                    return False
    return True


def pick_offset(not_this=()):
    for n in range(11000, 23000, 1000):
        if n not in not_this and offset_free(n):
            return n
    raise RuntimeError('no free demo offset')


class Demo:
    def __init__(self, cwd, offset):
        self.cwd = cwd
        env = dict(os.environ, LOFT_BUILD=os.path.dirname(LOFTD),
                   LOFT_PORT_OFFSET=str(offset))
        env.pop('LOFT_RUN', None)
        self.proc = subprocess.Popen(['sh', os.path.join(SRC, 'scripts',
                                                         'demo.sh')],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def lines(self, n):
        return [self.proc.stdout.readline().decode() for _ in range(n)]

    def ready(self):
        err = b''
        deadline = time.monotonic() + 30 * SLOW
        while b'loftd ready' not in err and time.monotonic() < deadline:
            chunk = self.proc.stderr.read1(4096)
            if not chunk:
                break
            err += chunk
        return b'loftd ready' in err, err

    def stop(self):
        self.proc.terminate()
        self.proc.communicate(timeout=30 * SLOW)


def readme_snippets():
    text = ''.join(code_blocks(section('Two commands')))
    return re.findall(r"^python3 - <<'PY'\n.*?^PY\n", text, re.S | re.M)


def run_snippet(block, cwd, offset):
    """A README heredoc block with the demo ports moved by offset."""
    text = re.sub(r'"localhost", (\d+)',
                  lambda m: '"localhost", %d' % (int(m.group(1)) + offset),
                  block)
    return subprocess.run(['sh', '-c', text], cwd=cwd, capture_output=True,
                          text=True, timeout=60 * SLOW)


def test_demo():
    work = tempfile.mkdtemp(prefix='loft-demo-')
    try:
        for attempt in range(3):
            offset = pick_offset()
            demo = Demo(work, offset)
            first = demo.lines(1)[0]
            m = re.match(r'^demo: demo@example\.test password: (\S+)\n$',
                         first)
            ok, err = demo.ready() if m else (False, b'')
            if ok or b'Address already in use' not in err:
                break
            demo.stop()     # a parallel test took a port: another offset
        R.check('demo: the password line first', m is not None, first)
        R.check('demo: loftd ready', ok, err[-800:])
        rest = demo.lines(7)
        text = ''.join(rest)
        R.check('demo: listens on 127.0.0.1 and [::1]',
                ('127.0.0.1 [::1]' if has_ipv6() else '127.0.0.1') in
                rest[0] and 'IMAP %d' % (1143 + offset) in rest[0], rest)
        R.check('demo: names run/loftd.conf and run/cert.pem',
                'config run/loftd.conf, certificate run/cert.pem' in text,
                text)
        lmtp_cmd = [l for l in rest if 'smtplib.LMTP' in l]
        R.check('demo: an LMTP command for a first message',
                len(lmtp_cmd) == 1 and '"localhost", %d' % (2424 + offset)
                in lmtp_cmd[0], rest)
        conf = open(os.path.join(work, 'run', 'loftd.conf')).read()
        if has_ipv6():
            R.check('demo: IMAP on [::1]', '[::1]:%d' % (1143 + offset)
                    in conf and greeting(socket.AF_INET6, '::1', 1143 +
                                         offset).startswith(b'* OK'), conf)
        # the printed command delivers
        p = subprocess.run(['sh', '-c', lmtp_cmd[0].strip()], cwd=work,
                           capture_output=True, text=True,
                           timeout=60 * SLOW) if lmtp_cmd else None
        R.check('demo: the printed LMTP command delivers',
                p is not None and p.returncode == 0, p and p.stderr)
        # README's two snippets, as written but for the offset
        snippets = readme_snippets()
        R.check('README: two demo snippets', len(snippets) == 2, snippets)
        if len(snippets) == 2:
            p = run_snippet(snippets[0], work, offset)
            R.check('README: LMTP snippet', p.returncode == 0, p.stderr)
            p = run_snippet(snippets[1], work, offset)
            R.check('README: IMAP snippet (STARTTLS, certificate checked '
                    'for localhost)', p.returncode == 0 and
                    p.stdout.count('Subject: Hello') >= 1, p.stdout + p.stderr)
        # a second demo from the same run/: says so, first one untouched
        second = Demo(work, offset)
        out, errs = second.proc.communicate(timeout=60 * SLOW)
        R.check('demo: a second one says a demo runs',
                second.proc.returncode == 1 and
                b'a demo already runs from run/ (loftd running, pid %d)'
                % demo_pid(work) in errs, errs)
        R.check('demo: the first still serves', greeting(
            socket.AF_INET, '127.0.0.1', 1143 + offset).startswith(b'* OK'))
        demo.stop()
        # another offset moves the demo's own config
        # (a port of a free-looking offset can be taken before the demo
        # binds it, by another test run on the machine: then the next one)
        tried = [offset]
        for _ in range(3):
            other = pick_offset(not_this=tried)
            tried.append(other)
            demo = Demo(work, other)
            demo.lines(1)
            ok, err = demo.ready()
            if ok or b'Address already in use' not in err:
                break
            demo.stop()
        R.check('demo: a new offset moves the ports', ok and
                'listen = 127.0.0.1:%d' % (1143 + other) in
                open(os.path.join(work, 'run', 'loftd.conf')).read(), err)
        demo.stop()
        bad = Demo(work, 1234)
        out, errs = bad.proc.communicate(timeout=60 * SLOW)
        R.check('demo: offset 1234 refused', bad.proc.returncode == 1 and
                b'PORT_OFFSET must be a multiple of 1000' in errs, errs)
    finally:
        shutil.rmtree(work, True)


def demo_pid(work):
    p = subprocess.run([LOFTCTL, '--config',
                        os.path.join(work, 'run', 'loftd.conf'), 'status'],
                       capture_output=True, text=True)
    m = re.search(r'pid (\d+)', p.stdout)
    return int(m.group(1)) if m else -1


def test_smtp_setups():
    """README's two SMTP setups (alone; behind Postfix), each added to the
    minimal configuration, pass --check and start: SMTP greets on every
    listener."""
    base = [b for b in code_blocks(section('Running it for real'))
            if 'data_dir' in b]
    blocks = [b for b in code_blocks(section('Mail in and out: SMTP, alone or '
                                             'behind Postfix'))
              if b.startswith('[')]
    R.check('README: two SMTP setups', len(base) == 1 and len(blocks) == 2,
            blocks)
    if len(base) != 1 or len(blocks) != 2:
        return
    for name, block in zip(('alone', 'behind Postfix'), blocks):
        conf = base[0]
        if '[lmtp]' in block:
            # the Postfix setup's LMTP socket replaces the minimal one's
            conf = re.sub(r'^\[lmtp\]\nlisten = .*\n', '', conf, flags=re.M)
        conf += block
        work = tempfile.mkdtemp(prefix='loft-readme-smtp-')
        try:
            cert, key = test_cert()
            ports = {}

            def move(m):
                old = int(m.group(2))
                ports.setdefault(old, free_port())
                return '%s:%d' % (m.group(1), ports[old])
            text = re.sub(r'(\*|\[[0-9a-f:.]*\]|[0-9.]+):(\d+)', move, conf)
            text = (text.replace('/var/lib/loft', os.path.join(work, 'data'))
                    .replace('/etc/loft/cert.pem', cert)
                    .replace('/etc/loft/key.pem', key)
                    .replace('/run/loft/', os.path.join(work, 'run') + '/')
                    .replace('/var/spool/postfix/private/',
                             os.path.join(work, 'run') + '/'))
            text = service_user(text)
            os.chmod(work, 0o755)     # the service user reaches data/ in it
            os.makedirs(os.path.join(work, 'run'))
            path = os.path.join(work, 'loftd.conf')
            with open(path, 'w') as f:
                f.write(text)
            p = subprocess.run([LOFTD, '--config', path, '--check'],
                               capture_output=True, text=True)
            R.check('README SMTP %s: passes --check' % name,
                    p.returncode == 0 and 'warning' not in p.stderr,
                    p.stdout + p.stderr)
            log = os.path.join(work, 'loftd.log')
            with open(log, 'wb') as lf:
                proc = subprocess.Popen([LOFTD, '--config', path], stdout=lf,
                                        stderr=lf)
            try:
                ok = wait_ready(log, proc)
                R.check('README SMTP %s: starts' % name, ok,
                        open(log).read()[-2000:])
                if not ok:
                    continue
                listening = [int(x) for x in
                             re.findall(r'^listen = \*:(\d+)$', block, re.M)]
                for port, tls in ((25, False), (587, False), (465, True)):
                    if port not in listening:
                        continue
                    with socket.create_connection(('127.0.0.1', ports[port]),
                                                  timeout=10 * SLOW) as s:
                        if tls:
                            ctx = ssl.create_default_context()
                            ctx.check_hostname = False
                            ctx.verify_mode = ssl.CERT_NONE
                            s = ctx.wrap_socket(s)
                        R.check('README SMTP %s: %d greets' % (name, port),
                                s.recv(200).startswith(b'220 '))
            finally:
                proc.terminate()
                proc.wait(30 * SLOW)
        finally:
            shutil.rmtree(work, True)


def main():
    test_minimal_config()
    test_smtp_setups()
    test_demo()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
