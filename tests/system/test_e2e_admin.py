#!/usr/bin/env python3
"""End to end: an admin following README.md, a migration from Dovecot, and
a crash.

1. The README's configuration (own ports and paths) passes `loftd --check`;
   typical typos fail it with FILE:LINE: messages on the right lines.
2. Accounts through loftctl as README.md shows them, each error a one-line
   reason and a non-zero exit; changes made while loftd runs take effect
   at once (a new password, a deleted user).
3. Accounts moved from Dovecot keep their passwords: `{SHA512-CRYPT}` and
   `{BLF-CRYPT}` hashes made by `doveadm pw` log in over IMAP and POP3 and
   are re-hashed to argon2id.
4. kill -9 while mail arrives on several LMTP connections and a client
   sets flags: after the restart every acknowledged message and flag is
   there, `loftctl check` has nothing to repair, and UIDVALIDITY, UIDs and
   UIDLs are unchanged, so no client downloads anything again.
"""

import imaplib
import os
import poplib
import re
import shutil
import subprocess
import sys
import threading
import time

import loftenv
from pop3client import Pop3, scram_login
from loftenv import Loft, Results, SLOW, client_tls_context

R = Results()
DOVEADM = shutil.which('doveadm')


def readme_config(env):
    """README.md's "minimal configuration", on this test's ports."""
    p = env.ports
    return '\n'.join([
        '# as in README.md "Running it for real"',
        'data_dir = %s' % env.data_dir,
        'hostname = mail.example.test',
        '[tls]',
        'cert = %s' % env.cert,
        'key = %s' % env.key,
        '[imap]',
        'listen = 127.0.0.1:%d, [::1]:%d' % (p['imap'], p['imap']),
        '[imaps]',
        'listen = 127.0.0.1:%d' % p['imaps'],
        '[pop3]',
        'listen = 127.0.0.1:%d' % p['pop3'],
        '[pop3s]',
        'listen = 127.0.0.1:%d' % p['pop3s'],
        '[lmtp]',
        'listen = unix:%s' % env.lmtp_socket,
        '[smtp]',
        'listen = 127.0.0.1:%d' % loftenv.free_port(),
        '[policy]',
        'quota_bytes = 2G',
        'pop3_delete = trash',
        'trash_retention_days = 30',
        '[auth]',
        'argon2_t_cost = 1',
        'argon2_m_cost = 64',
        'throttle = no',
        '']) + '\n'


def check_config(path):
    r = subprocess.run([loftenv.LOFTD, '--config', path, '--check'],
                       capture_output=True, text=True, timeout=30 * SLOW)
    return r.returncode, r.stdout + r.stderr


def config_journey(env):
    path = env.config_path
    with open(path, 'w') as f:
        f.write(readme_config(env))
    rc, out = check_config(path)
    R.check('README config passes --check', rc == 0, out)
    # SMTP is built now (issue 13): its section is taken without the
    # "not built yet" warning the first release gave.
    R.check('[smtp] taken as built', re.search(
        r'not built', out, re.I) is None, out)

    typos = {
        3: ('hostname = mail.example.test', 'hostnme = mail.example.test',
            r"unknown key 'hostnme'"),
        8: (None, None, r'bad port|port'),
        11: ('[pop3]', '[pop]', r'unknown section \[pop\]'),
        21: ('pop3_delete = trash', 'pop3_delete = trahs', r"pop3_delete: .*'trahs'"),
        20: ('quota_bytes = 2G', 'quota_bytes = 2 GB', r"quota_bytes: .*'2 GB'"),
    }
    lines = readme_config(env).split('\n')
    bad = list(lines)
    bad[2] = 'hostnme = mail.example.test'
    bad[7] = 'listen = 127.0.0.1:99999, [::1]:%d' % env.ports['imap']
    bad[10] = '[pop]'
    bad[20] = 'pop3_delete = trahs'
    bad[19] = 'quota_bytes = 2 GB'
    bad_path = os.path.join(env.dir, 'typo.conf')
    with open(bad_path, 'w') as f:
        f.write('\n'.join(bad))
    rc, out = check_config(bad_path)
    R.check('typos fail --check with exit 1', rc == 1, out)
    for line, (_, _, msg) in typos.items():
        R.check('typo reported at line %d' % line, re.search(
            r'^%s:%d: .*(%s)' % (re.escape(bad_path), line, msg), out, re.M)
            is not None, out)
    # a certificate path that does not exist
    nocert = readme_config(env).replace(env.cert, '/nonexistent/cert.pem')
    with open(bad_path, 'w') as f:
        f.write(nocert)
    rc, out = check_config(bad_path)
    R.check('missing cert fails --check', rc == 1 and
            re.search(r'^%s:5: .*cert' % re.escape(bad_path), out, re.M | re.I)
            is not None, out)
    with open(path, 'w') as f:
        f.write(readme_config(env))


def loftctl_journey(env):
    ctl = env.loftctl
    rc, out, err = ctl('domain', 'list')
    R.check('domain list', rc == 0 and out.split() == ['example.test'], out + err)
    rc, out, err = ctl('user', 'add', 'dora@nowhere.test', input='pw\n')
    R.check('user in unknown domain refused', rc != 0 and
            len(err.strip().splitlines()) == 1, (rc, err))
    rc, out, err = ctl('domain', 'add', 'firma.test')
    R.check('domain add', rc == 0, out + err)
    rc, out, err = ctl('user', 'add', 'dora@firma.test', input='Weltreise pw 1\n')
    R.check('user add', rc == 0, out + err)
    rc, out, err = ctl('user', 'add', 'dora@firma.test', input='long-enough-pw-x\n')
    R.check('user add twice refused', rc != 0 and 'exists' in err, err)
    rc, out, err = ctl('user', 'add', '../etc@firma.test', input='long-enough-pw-x\n')
    R.check('path in address refused', rc != 0 and err.strip(), err)
    rc, out, err = ctl('alias', 'add', 'info@firma.test', 'dora@firma.test')
    R.check('alias add', rc == 0, out + err)
    rc, out, err = ctl('alias', 'list')
    R.check('alias list', rc == 0 and re.search(
        r'^info@firma\.test -> dora@firma\.test$', out, re.M) is not None, out)
    rc, out, err = ctl('user', 'quota', 'dora@firma.test', '500M')
    R.check('user quota', rc == 0, out + err)
    rc, out, err = ctl('user', 'quota', 'dora@firma.test', '500 MB')
    R.check('bad quota refused', rc != 0 and err.strip(), err)
    rc, out, err = ctl('user', 'set', 'dora@firma.test', 'pop3_delete=hide',
                       'trash_retention_days=7')
    R.check('user set', rc == 0, out + err)
    rc, out, err = ctl('user', 'set', 'dora@firma.test', 'pop3_delete=delete')
    R.check('bad policy refused', rc != 0 and 'pop3_delete' in err, err)
    rc, out, err = ctl('user', 'list')
    R.check('user list', rc == 0 and 'dora@firma.test' in out.split()
            and 'alice@example.test' in out.split(), out)
    rc, out, err = ctl('check', 'dora@firma.test')
    R.check('check of a new account: nothing to repair', rc == 0 and
            out.strip() == 'dora@firma.test: consistent', out + err)


def imap_ok(env, user, pw):
    try:
        c = imaplib.IMAP4_SSL('127.0.0.1', env.ports['imaps'],
                              ssl_context=client_tls_context(), timeout=10 * SLOW)
    except OSError as e:
        return 'connect: %s' % e
    try:
        # AUTHENTICATE PLAIN carries a UTF-8 password, as Thunderbird does
        c.authenticate('PLAIN', lambda _: ('\0%s\0%s' % (user, pw)).encode())
        c.select('INBOX')
        c.logout()
        return True
    except imaplib.IMAP4.error:
        return False


def pop_ok(env, user, pw):
    p = poplib.POP3_SSL('127.0.0.1', env.ports['pop3s'],
                        context=client_tls_context(), timeout=10 * SLOW)
    try:
        p.user(user)
        p.pass_(pw)
        n = p.stat()[0]
        p.quit()
        return n
    except poplib.error_proto:
        return False


def running_journey(env):
    R.check('login over IMAPS', imap_ok(env, 'dora@firma.test', 'Weltreise pw 1') is True)
    rc, out, err = env.loftctl('user', 'passwd', 'dora@firma.test', input='Weltreise pw 2\n')
    R.check('passwd', rc == 0, out + err)
    R.check('old password refused at once',
            imap_ok(env, 'dora@firma.test', 'Weltreise pw 1') is False)
    R.check('new password works', imap_ok(env, 'dora@firma.test', 'Weltreise pw 2') is True)
    R.check('new password over POP3', pop_ok(env, 'dora@firma.test', 'Weltreise pw 2') == 0)
    c = env.lmtp(unix=True)
    c.ehlo('mta')
    c.mail('x@example.org')
    code, _ = c.rcpt('info@firma.test')
    R.check('alias accepted over the unix socket', code == 250)
    code, msg = c.data(b'From: x@example.org\r\nSubject: to info\r\n\r\nhi\r\n')
    R.check('alias delivered', code == 250, msg)
    c.quit()
    rc, out, err = env.loftctl('user', 'show', 'dora@firma.test')
    R.check('user show after delivery', rc == 0 and re.search(
        r'^\s+INBOX: 1 messages', out, re.M) and 'pop3_delete = hide' in out
        and re.search(r'quota_bytes = 500(\.0)? ?Mi?B?', out), out)
    rc, out, err = env.loftctl('user', 'del', 'dora@firma.test', '--yes')
    R.check('user del', rc == 0, out + err)
    R.check('deleted user cannot log in',
            imap_ok(env, 'dora@firma.test', 'Weltreise pw 2') is False)
    c = env.lmtp(unix=True)
    c.ehlo('mta')
    c.mail('x@example.org')
    code, msg = c.rcpt('dora@firma.test')
    R.check('deleted user: 550 5.1.1', code == 550 and msg.startswith(b'5.1.1'), msg)
    c.quit()


def migration_journey(env):
    if DOVEADM is None:
        print('doveadm not installed: migration part skipped')
        return
    pw = 'Mïgrated pw 7'
    for user, scheme in (('mig1@example.test', 'SHA512-CRYPT'),
                         ('mig2@example.test', 'BLF-CRYPT')):
        h = subprocess.run([DOVEADM, 'pw', '-s', scheme, '-p', pw],
                           capture_output=True, text=True, check=True).stdout.strip()
        R.check(scheme + ' hash from doveadm', h.startswith('{%s}' % scheme), h)
        rc, out, err = env.loftctl('user', 'add', user, '--hash', input=h + '\n')
        R.check(scheme + ' user add --hash', rc == 0, out + err)
        rc, out, err = env.loftctl('user', 'show', user)
        R.check(scheme + ' stored as is', re.search(r'^hash: %s' % scheme, out, re.M)
                is not None, out)
        R.check(scheme + ' wrong password refused', pop_ok(env, user, 'nope') is False)
        R.check(scheme + ' POP3 login', pop_ok(env, user, pw) == 0)
        R.check(scheme + ' IMAP login', imap_ok(env, user, pw) is True)
        rc, out, err = env.loftctl('user', 'show', user)
        R.check(scheme + ' re-hashed to argon2id', re.search(
            r'^hash: ARGON2ID', out, re.M) is not None, out)
        R.check(scheme + ' login after re-hash', imap_ok(env, user, pw) is True)
        # the re-hash also stores SCRAM keys: SCRAM-SHA-256 clients work now
        p = Pop3.connect(env, 'pop3s')
        status, sig_ok = scram_login(p, user, pw)
        p.close()
        R.check(scheme + ' SCRAM-SHA-256 after re-hash', status.startswith(b'+OK')
                and sig_ok, status)
    rc, out, err = env.loftctl('user', 'add', 'mig3@example.test', '--hash',
                               input='{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72\n')
    R.check('unknown scheme refused', rc != 0 and err.strip(), (rc, out, err))


def state(env, user, pw):
    """(uidvalidity, [(uid, flags, message-id)], [uidl]) as clients see it."""
    c = imaplib.IMAP4_SSL('127.0.0.1', env.ports['imaps'],
                          ssl_context=client_tls_context(), timeout=20 * SLOW)
    c.login(user, pw)
    typ, data = c.select('INBOX', readonly=True)
    uv = int(c.response('UIDVALIDITY')[1][0])
    msgs = []
    if int(data[0]) > 0:
        typ, data = c.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        for d in data:
            if isinstance(d, tuple):
                uid = int(re.search(rb'UID (\d+)', d[0]).group(1))
                flags = re.search(rb'FLAGS \(([^)]*)\)', d[0])
                mid = d[1].strip().split(b' ', 1)[-1]
                msgs.append((uid, flags.group(1) if flags else b'', mid))
    c.logout()
    p = poplib.POP3_SSL('127.0.0.1', env.ports['pop3s'],
                        context=client_tls_context(), timeout=20 * SLOW)
    p.user(user)
    p.pass_(pw)
    uidl = [x.split()[1] for x in p.uidl()[1]]
    p.quit()
    flags_of = {mid: fl.replace(b'\\Recent', b'').split() for _, fl, mid in msgs}
    return uv, sorted(msgs), uidl, flags_of


def crash_journey(env):
    user, pw = 'alice@example.test', 'tea-party-rabbit-hole'
    acked = []
    for i in range(10):
        c = env.lmtp(unix=True)
        c.ehlo('mta')
        c.mail('x@example.org')
        c.rcpt(user)
        code, _ = c.data(('From: x@example.org\r\nSubject: before %d\r\n'
                          'Message-ID: <pre%d@example.org>\r\n\r\nbody\r\n' % (i, i)).encode())
        c.quit()
        if code == 250:
            acked.append(b'<pre%d@example.org>' % i)
    c = imaplib.IMAP4_SSL('127.0.0.1', env.ports['imaps'],
                          ssl_context=client_tls_context(), timeout=20 * SLOW)
    c.login(user, pw)
    c.select('INBOX')
    typ, _ = c.uid('STORE', '2,4', '+FLAGS', '(\\Seen \\Flagged)')
    R.check('flags set before the crash', typ == 'OK')
    c.logout()
    uv0, msgs0, uidl0, flags0 = state(env, user, pw)

    stop = threading.Event()
    lock = threading.Lock()

    def sender(n):
        k = 0
        while not stop.is_set():
            try:
                c = env.lmtp(unix=True)
                c.ehlo('mta')
                while not stop.is_set():
                    mid = b'<t%d-%d@example.org>' % (n, k)
                    k += 1
                    c.mail('x@example.org')
                    c.rcpt(user)
                    code, _ = c.data(b'From: x@example.org\r\nSubject: during\r\n'
                                     b'Message-ID: ' + mid + b'\r\n\r\n' + b'y' * 3000 + b'\r\n')
                    if code == 250:
                        with lock:
                            acked.append(mid)
            except Exception:
                time.sleep(0.01)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # killed once the senders have had more than 20 deliveries answered
    # (a fixed second was not enough under a CPU hog: 17)
    deadline = time.monotonic() + 300 * SLOW
    while time.monotonic() < deadline:
        with lock:
            if len(acked) > 20:
                break
        time.sleep(0.02)
    env.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    env.start()
    uv1, msgs1, uidl1, flags1 = state(env, user, pw)
    print('crash run: %d messages acknowledged' % len(acked))
    R.check('messages delivered during the crash run', len(acked) > 20, len(acked))
    have = [m for _, _, m in msgs1]
    missing = [m for m in acked if m not in have]
    R.check('every acknowledged message is there', not missing, missing[:5])
    R.check('none stored twice', len(have) == len(set(have)), len(have) - len(set(have)))
    R.check('UIDVALIDITY unchanged', uv1 == uv0, (uv0, uv1))
    R.check('UIDs unchanged', msgs1[:len(msgs0)] == msgs0 or
            [(u, m) for u, _, m in msgs1[:len(msgs0)]] == [(u, m) for u, _, m in msgs0],
            (msgs0[:3], msgs1[:3]))
    R.check('flags kept', all(sorted(flags1[m]) == sorted(flags0[m]) for m in flags0),
            (flags0, {m: flags1.get(m) for m in flags0}))
    R.check('UIDLs unchanged', uidl1[:len(uidl0)] == uidl0, (uidl0[:3], uidl1[:3]))
    rc, out, err = env.loftctl('check', user)
    R.check('loftctl check: nothing to repair', rc == 0 and
            out.strip() == '%s: consistent' % user, out + err)


def demo_journey():
    """`make run` (scripts/demo.sh) in a fresh directory, twice: one line
    with the demo account and password, a login that works, the same
    password and the same mail on the second run. The config is written
    first with free ports (demo.sh keeps an existing one), so a running
    demo is never disturbed."""
    env = Loft(users={}, start=False)
    try:
        run = os.path.join(env.dir, 'run')
        os.makedirs(run)
        cfg = readme_config(env).replace(env.data_dir, os.path.join(run, 'data'))
        cfg = cfg.replace('listen = unix:%s' % env.lmtp_socket,
                          'listen = 127.0.0.1:%d' % env.ports['lmtp'])
        with open(os.path.join(run, 'loftd.conf'), 'w') as f:
            f.write(cfg)
        demo = os.path.join(loftenv.SRC, 'scripts', 'demo.sh')
        denv = dict(os.environ, LOFT_BUILD=os.path.dirname(loftenv.LOFTD), LOFT_RUN=run)
        secrets = []
        for round_ in (1, 2):
            proc = subprocess.Popen(['sh', demo], env=denv, cwd=env.dir,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            line = proc.stdout.readline().decode()
            m = re.match(r'^demo: demo@example\.test password: (\S+)\n$', line)
            R.check('demo %d: the one line' % round_, m is not None, line)
            if m is None:
                proc.kill()
                proc.wait()
                break
            secrets.append(m.group(1))
            # wait for the listeners (loftd logs "loftd ready" on stderr)
            err = b''
            deadline = time.monotonic() + 30 * SLOW
            while b'loftd ready' not in err and time.monotonic() < deadline:
                err += proc.stderr.read1(4096)
            R.check('demo %d: loftd ready' % round_, b'loftd ready' in err, err[-500:])
            c = imaplib.IMAP4('127.0.0.1', env.ports['imap'], timeout=10 * SLOW)
            c.login('demo@example.test', m.group(1))
            typ, data = c.select('INBOX')
            if round_ == 1:
                c.append('INBOX', None, None, b'Subject: kept\r\n\r\nacross runs\r\n')
            else:
                R.check('demo 2: mail kept', data == [b'1'], data)
            c.logout()
            proc.terminate()
            rest_out, rest_err = proc.communicate(timeout=30 * SLOW)
            R.check('demo %d: no other password line' % round_,
                    b'password' not in rest_out.lower() and
                    b'password' not in (err + rest_err).lower(), rest_out + rest_err)
        R.check('demo: same password on the second run',
                len(secrets) == 2 and secrets[0] == secrets[1], secrets)
        mode = os.stat(os.path.join(run, 'demo-secret')).st_mode & 0o777
        R.check('demo: secret file mode 600', mode == 0o600, oct(mode))
    finally:
        env.close()


def main():
    demo_journey()
    with Loft(start=False) as env:
        config_journey(env)
        env.start()
        loftctl_journey(env)
        running_journey(env)
        migration_journey(env)
        crash_journey(env)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
