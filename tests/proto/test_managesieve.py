"""ManageSieve (RFC 5804) conversations with a private loftd: the greeting's
capabilities, every command and response code (NONEXISTENT, ACTIVE,
ALREADYEXISTS, QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE, ENCRYPT-NEEDED, TAG),
AUTHENTICATE PLAIN and SCRAM-SHA-256 (and an app password), STARTTLS with
the capabilities again and pipelined bytes before it dropped, PUTSCRIPT of
a script that does not compile (NO, one line per error, nothing stored),
a literal over max_script_size read and dropped, commands before login,
broken base64, names with control characters or 10,000 bytes long;
then sieve-connect (Debian) over STARTTLS and python3-sievelib with
LOGIN, when installed.

Run: LOFTD=... LOFTCTL=... PYTHONPATH=tests/lib python3 tests/proto/test_managesieve.py
"""

import base64
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

from loftenv import SLOW, Loft, Results, DEFAULT_USERS, client_tls_context  # noqa: E402
from ports import free_port  # noqa: E402

R = Results()
A = 'alice@example.test'
PW = DEFAULT_USERS[A]


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


class MS:
    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(('127.0.0.1', port),
                                             timeout=timeout * SLOW)
        self.buf = b''
        self.greeting = self.response()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError('closed')
        self.buf += chunk

    def line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def read_literal(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self):
        """Lines until OK/NO/BYE; returns (status line, [data lines],
        literal payloads)."""
        lines, lits = [], []
        while True:
            line = self.line()
            if line.endswith(b'}') and b'{' in line:
                n = int(line[line.rindex(b'{') + 1:-1].rstrip(b'+'))
                lits.append(self.read_literal(n))
                line = line[:line.rindex(b'{')] + b'<literal>' + self.line()
            if line.split(b' ', 1)[0] in (b'OK', b'NO', b'BYE'):
                return line, lines, lits
            lines.append(line)

    def cmd(self, text):
        self.send(text + '\r\n')
        return self.response()

    def starttls(self):
        st, _, _ = self.cmd('STARTTLS')
        self.sock = client_tls_context().wrap_socket(
            self.sock, server_hostname='localhost')
        return st

    def login(self, user=A, password=PW):
        st, _, _ = self.cmd('AUTHENTICATE "PLAIN" "%s"'
                            % b64('\0%s\0%s' % (user, password)))
        return st

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def scram(c, user, password):
    nonce = b64(os.urandom(18))
    first_bare = 'n=%s,r=%s' % (user, nonce)
    c.send('AUTHENTICATE "SCRAM-SHA-256" "%s"\r\n' % b64('n,,' + first_bare))
    chal = c.line()
    if not chal.startswith(b'"'):
        return chal, False
    server_first = base64.b64decode(chal.strip(b'"')).decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(),
                                 base64.b64decode(attrs['s']), int(attrs['i']))
    ck = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    sk = hashlib.sha256(ck).digest()
    without = 'c=%s,r=%s' % (b64('n,,'), attrs['r'])
    msg = ','.join([first_bare, server_first, without]).encode()
    proof = bytes(a ^ b for a, b in zip(ck, hmac.new(sk, msg, hashlib.sha256)
                                        .digest()))
    c.send('"%s"\r\n' % b64(without + ',p=' + b64(proof)))
    line = c.line()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    want = 'v=' + b64(hmac.new(server_key, msg, hashlib.sha256).digest())
    if line.startswith(b'"'):
        ok = base64.b64decode(line.strip(b'"')).decode() == want
        c.send('""\r\n')
        st, _, _ = c.response()
        return st, ok
    if line.startswith(b'OK (SASL "'):
        data = line.split(b'"')[1]
        return line, base64.b64decode(data).decode() == want
    return line, False


def test_greeting(env):
    c = MS(env.port('managesieve'))
    st, caps, _ = c.greeting
    R.check('greeting OK', st.startswith(b'OK'), st)
    capd = {l.split(b' ')[0]: l for l in caps}
    R.check('IMPLEMENTATION', b'"IMPLEMENTATION"' in capd)
    R.check('SIEVE lists the extensions', b'"SIEVE"' in capd and
            b'fileinto' in capd[b'"SIEVE"'] and b'vacation-seconds' in
            capd[b'"SIEVE"'] and b'editheader' in capd[b'"SIEVE"'])
    R.check('STARTTLS offered', b'"STARTTLS"' in capd)
    R.check('VERSION 1.0', capd.get(b'"VERSION"') == b'"VERSION" "1.0"')
    R.check('MAXREDIRECTS', b'"MAXREDIRECTS"' in capd)
    R.check('SASL from loopback has PLAIN', b'PLAIN' in capd[b'"SASL"'])
    st, _, _ = c.cmd('LISTSCRIPTS')
    R.check('LISTSCRIPTS before login: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('PUTSCRIPT "a" {5+}\r\nkeep;')
    R.check('PUTSCRIPT before login: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('AUTHENTICATE "PLAIN" "!!notbase64"')
    R.check('broken base64: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('AUTHENTICATE "PLAIN" "%s"' % b64('\0%s\0wrong' % A))
    R.check('wrong password: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('FROBNICATE')
    R.check('unknown command: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('NOOP "tag1"')
    R.check('NOOP with TAG', st == b'OK (TAG "tag1") "Done"', st)
    st = c.login()
    R.check('AUTHENTICATE PLAIN', st.startswith(b'OK'), st)
    st, caps, _ = c.cmd('CAPABILITY')
    R.check('OWNER after login', any(l == b'"OWNER" "%s"' % A.encode()
                                     for l in caps), caps)
    st, _, _ = c.cmd('UNAUTHENTICATE')
    R.check('UNAUTHENTICATE', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('LISTSCRIPTS')
    R.check('after UNAUTHENTICATE: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('LOGOUT')
    R.check('LOGOUT', st.startswith(b'OK'), st)
    c.close()


def test_scripts(env):
    c = MS(env.port('managesieve'))
    c.login()
    script = 'require "fileinto";\r\n# \u00e9t\u00e9\r\nfileinto "x";\r\n'
    raw = script.encode()
    st, _, _ = c.cmd('PUTSCRIPT "main" {%d+}\r\n%s' % (len(raw), script))
    R.check('PUTSCRIPT', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('HAVESPACE "other" 1000')
    R.check('HAVESPACE', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('HAVESPACE "other" 999999999')
    R.check('HAVESPACE too big: QUOTA/MAXSIZE',
            st.startswith(b'NO (QUOTA/MAXSIZE)'), st)
    st, lines, _ = c.cmd('LISTSCRIPTS')
    R.check('LISTSCRIPTS', lines == [b'"main"'], lines)
    st, _, lits = c.cmd('GETSCRIPT "main"')
    R.check('GETSCRIPT byte for byte', st.startswith(b'OK') and
            lits == [raw], (st, lits))
    st, _, _ = c.cmd('GETSCRIPT "nope"')
    R.check('GETSCRIPT: NONEXISTENT', st.startswith(b'NO (NONEXISTENT)'), st)
    st, _, _ = c.cmd('SETACTIVE "main"')
    R.check('SETACTIVE', st.startswith(b'OK'), st)
    st, lines, _ = c.cmd('LISTSCRIPTS')
    R.check('LISTSCRIPTS shows ACTIVE', lines == [b'"main" ACTIVE'], lines)
    st, _, _ = c.cmd('DELETESCRIPT "main"')
    R.check('DELETESCRIPT active: ACTIVE', st.startswith(b'NO (ACTIVE)'), st)
    st, _, _ = c.cmd('PUTSCRIPT "two" "keep;"')
    st, _, _ = c.cmd('RENAMESCRIPT "two" "main"')
    R.check('RENAMESCRIPT: ALREADYEXISTS',
            st.startswith(b'NO (ALREADYEXISTS)'), st)
    st, _, _ = c.cmd('RENAMESCRIPT "nope" "x"')
    R.check('RENAMESCRIPT: NONEXISTENT', st.startswith(b'NO (NONEXISTENT)'),
            st)
    st, _, _ = c.cmd('RENAMESCRIPT "main" "renamed"')
    R.check('RENAMESCRIPT', st.startswith(b'OK'), st)
    st, lines, _ = c.cmd('LISTSCRIPTS')
    R.check('renamed stays active', b'"renamed" ACTIVE' in lines, lines)
    bad = 'require "fileinto";\r\nfileinto "x"\r\nfrob;\r\n'
    st, _, lits = c.cmd('PUTSCRIPT "bad" {%d+}\r\n%s' % (len(bad), bad))
    text = lits[0] if lits else st
    R.check('PUTSCRIPT of a broken script: NO with line, column',
            st.startswith(b'NO') and text.startswith(b'line 3, column 1: '),
            (st, lits))
    st, lines, _ = c.cmd('LISTSCRIPTS')
    R.check('nothing stored', not any(b'"bad"' in l for l in lines), lines)
    st, _, lits = c.cmd('CHECKSCRIPT {%d+}\r\n%s' % (len(bad), bad))
    R.check('CHECKSCRIPT: NO', st.startswith(b'NO'), st)
    st, _, _ = c.cmd('CHECKSCRIPT "keep;"')
    R.check('CHECKSCRIPT: OK', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('SETACTIVE ""')
    R.check('SETACTIVE "" deactivates', st.startswith(b'OK'), st)
    st, lines, _ = c.cmd('LISTSCRIPTS')
    R.check('none active', not any(b'ACTIVE' in l for l in lines), lines)
    st, _, _ = c.cmd('SETACTIVE "nope"')
    R.check('SETACTIVE: NONEXISTENT', st.startswith(b'NO (NONEXISTENT)'), st)
    st, _, _ = c.cmd('DELETESCRIPT "renamed"')
    R.check('DELETESCRIPT', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('DELETESCRIPT "renamed"')
    R.check('DELETESCRIPT: NONEXISTENT', st.startswith(b'NO (NONEXISTENT)'),
            st)
    st, _, _ = c.cmd('PUTSCRIPT "a\x01b" "keep;"')
    R.check('name with a control character: NO', st.startswith(b'NO'), st)
    long = 'n' * 10000
    st, _, _ = c.cmd('PUTSCRIPT {%d+}\r\n%s "keep;"' % (len(long), long))
    R.check('name of 10,000 bytes: NO', st.startswith(b'NO'), st)
    # a literal over max_script_size: NO (QUOTA/MAXSIZE), bytes dropped
    big = 1024 * 1024 + 1
    c.send('PUTSCRIPT "big" {%d+}\r\n' % big)
    c.send(b'#' * big + b'\r\n')
    st, _, _ = c.response()
    R.check('literal over max: QUOTA/MAXSIZE',
            st.startswith(b'NO (QUOTA/MAXSIZE)'), st)
    st, _, _ = c.cmd('NOOP')
    R.check('the stream is in step after it', st.startswith(b'OK'), st)
    # quota of scripts (the account's policy)
    c.cmd('DELETESCRIPT "two"')
    R.check('user set sieve_max_scripts', env.loftctl('user', 'set', A, 'sieve_max_scripts=3')[0] == 0)
    for i in range(3):
        st, _, _ = c.cmd('PUTSCRIPT "q%d" "keep;"' % i)
    R.check('third script fits', st.startswith(b'OK'), st)
    st, _, _ = c.cmd('PUTSCRIPT "q9" "keep;"')
    R.check('QUOTA/MAXSCRIPTS', st.startswith(b'NO (QUOTA/MAXSCRIPTS)'), st)
    st, _, _ = c.cmd('PUTSCRIPT "q0" "discard;"')
    R.check('replacing one still fits', st.startswith(b'OK'), st)
    env.loftctl('user', 'set', A, 'sieve_max_scripts=32')
    # SCRAM-SHA-256
    c.cmd('LOGOUT')
    c.close()
    c = MS(env.port('managesieve'))
    st, ok = scram(c, A, PW)
    R.check('SCRAM-SHA-256', st.startswith(b'OK') and ok, st)
    c.close()


def test_starttls(env):
    c = MS(env.port('managesieve'))
    # bytes pipelined after STARTTLS are dropped (injection)
    c.send('STARTTLS\r\nLISTSCRIPTS\r\n')
    st, _, _ = c.response()
    R.check('STARTTLS OK', st.startswith(b'OK'), st)
    c.sock = client_tls_context().wrap_socket(c.sock,
                                              server_hostname='localhost')
    c.buf = b''
    st, caps, _ = c.response()
    R.check('capabilities again after TLS', st.startswith(b'OK') and
            any(l.startswith(b'"SIEVE"') for l in caps), (st, caps))
    R.check('no STARTTLS after TLS', not any(l == b'"STARTTLS"'
                                               for l in caps), caps)
    st, _, _ = c.cmd('NOOP')
    R.check('the injected LISTSCRIPTS was dropped', st.startswith(b'OK'), st)
    c.close()


def test_clients(env):
    sc = shutil.which('sieve-connect')
    if sc is None:
        print('sieve-connect not installed: skipped')
    else:
        tmp = tempfile.mkdtemp(prefix='loft-sc-')
        path = os.path.join(tmp, 'x.sieve')
        with open(path, 'w') as f:
            f.write('require "fileinto";\nfileinto "Junk";\n')
        base = [sc, '--server', '127.0.0.1', '--port',
                str(env.port('managesieve')), '--user', A, '--passwordfd',
                '0', '--notlsverify', '--authmech', 'PLAIN']
        def run(*args):
            return subprocess.run(base + list(args), input=PW + '\n',
                                  capture_output=True, text=True,
                                  timeout=60 * SLOW)
        r = run('--upload', '--localsieve', path, '--remotesieve', 'sc')
        R.check('sieve-connect upload', r.returncode == 0, r.stderr)
        r = run('--list')
        R.check('sieve-connect list', 'sc' in r.stdout, r.stdout + r.stderr)
        r = run('--activate', '--remotesieve', 'sc')
        R.check('sieve-connect activate', r.returncode == 0, r.stderr)
        out = os.path.join(tmp, 'down.sieve')
        r = run('--download', '--remotesieve', 'sc', '--localsieve', out)
        R.check('sieve-connect download', r.returncode == 0 and
                open(out).read() == open(path).read(), r.stderr)
        run('--deactivate')
        r = run('--delete', '--remotesieve', 'sc')
        R.check('sieve-connect delete', r.returncode == 0, r.stderr)
    try:
        from sievelib.managesieve import Client
    except ImportError:
        print('python3-sievelib not installed: skipped')
        return
    # sievelib gives up a read after 5 s (Client.read_timeout): too short
    # for a loaded machine under ASan
    Client.read_timeout = 20 * SLOW
    c = Client('127.0.0.1', env.port('managesieve'))
    R.check('sievelib connect', c.connect(A, PW, starttls=False,
                                          authmech='LOGIN'))
    R.check('sievelib putscript', c.putscript('lib', 'keep;\n'))
    R.check('sievelib setactive', c.setactive('lib'))
    active, others = c.listscripts()
    R.check('sievelib listscripts', active == 'lib', (active, others))
    R.check('sievelib getscript', c.getscript('lib') == 'keep;\n')
    c.setactive('')
    R.check('sievelib deletescript', c.deletescript('lib'))
    c.logout()


def main():
    port = free_port()
    extra = {'managesieve': {'listen': '127.0.0.1:%d' % port}}
    env = Loft(extra=extra, start=False)
    env.ports['managesieve'] = port   # moved with the others on a retry
    with env:
        env.start()
        test_greeting(env)
        test_scripts(env)
        test_starttls(env)
        test_clients(env)
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
