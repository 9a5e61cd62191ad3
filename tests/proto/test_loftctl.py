#!/usr/bin/env python3
"""loftctl: every verb, its error exits, and that a password never shows up
in argv, in any output, or in clear in accounts.db (or the PostgreSQL
database's rows). Ends with the live part: changes made by loftctl take
effect in a running loftd at once."""

import imaplib
import os
import poplib
import re
import shutil
import subprocess
import sys
import tempfile
import time

from loftenv import BACKEND, LOFTCTL, LOFTD, Loft, Results

r = Results()

SECRET = 'Tr0ub4dor&3-never-shown'
STRONG = 'long-enough-password'   # passes the policy; its account fails otherwise
# Known vectors (crypt(3) / the argon2 reference): Dovecot-style imports.
IMPORTS = [
    ('{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817'
     'G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1', 'Hello world!',
     'SHA512-CRYPT'),
    ('{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW',
     'U*U', 'BLF-CRYPT'),
    ('{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMa'
     'O6Mm5c8y7cJHAph8ArZWb2GRPPc', 'password', 'ARGON2ID'),
]

outputs = []   # everything loftctl printed, to look for passwords at the end


def ctl(env, *args, input=None):
    rc, out, err = env.loftctl(*args, input=input)
    outputs.append(out + err)
    return rc, out, err


def one_line_error(name, rc, err):
    r.check(name + ' fails', rc != 0, 'rc=%d' % rc)
    lines = err.strip().splitlines()
    r.check(name + ' one-line reason', len(lines) == 1 and
            (lines[0].startswith('loftctl: ') or
             lines[0].startswith('usage: ')), repr(err))


def show(env, address):
    rc, out, err = ctl(env, 'user', 'show', address)
    return rc, out


def test_usage(env):
    p = subprocess.run([LOFTCTL, '--help'], capture_output=True, text=True)
    r.check('--help exits 0', p.returncode == 0, p.stderr)
    for verb in ('user add', 'user del', 'domain add', 'alias add', 'check'):
        r.check('--help lists ' + verb, verb in p.stdout, p.stdout)
    p = subprocess.run([LOFTCTL], capture_output=True, text=True)
    r.check('no verb: usage exit 2', p.returncode == 2, p.returncode)
    # without --config: $LOFT_CONFIG (else /etc/loft/loftd.conf)
    p = subprocess.run([LOFTCTL, 'user', 'list'], capture_output=True,
                       text=True, env=dict(os.environ,
                                           LOFT_CONFIG='/nonexistent/l.conf'))
    one_line_error('no --config', p.returncode, p.stderr)
    r.check('no --config names the file', '/nonexistent/l.conf' in p.stderr,
            p.stderr)
    rc, out, err = ctl(env, 'frobnicate')
    one_line_error('unknown command', rc, err)
    rc, out, err = ctl(env, 'user', 'frob')
    one_line_error('unknown verb', rc, err)
    rc, out, err = ctl(env, 'user', 'show')
    r.check('missing argument: exit 2', rc == 2, (rc, err))
    p = subprocess.run([LOFTCTL, '--config', '/nonexistent/loft.conf',
                        'user', 'list'], capture_output=True, text=True)
    one_line_error('missing config file', p.returncode, p.stderr)


def test_bad_config():
    d = tempfile.mkdtemp(prefix='loft-ctl-')
    try:
        path = os.path.join(d, 'bad.conf')
        with open(path, 'w') as f:
            f.write('data_dir = %s/data\n[auth]\nargon2_t_cost = 1\n'
                    'bogus_key = 1\n' % d)
        p = subprocess.run([LOFTCTL, '--config', path, 'user', 'list'],
                           capture_output=True, text=True)
        r.check('bad [auth] key fails', p.returncode == 1, p.returncode)
        r.check('bad key FILE:LINE', (path + ':4:') in p.stderr, p.stderr)
        # data_dir is created when missing, parents included.
        path2 = os.path.join(d, 'good.conf')
        data = os.path.join(d, 'a', 'b', 'data')
        with open(path2, 'w') as f:
            f.write('data_dir = %s\n[auth]\nargon2_t_cost = 1\n'
                    'argon2_m_cost = 64\n' % data)
        p = subprocess.run([LOFTCTL, '--config', path2, 'domain', 'list'],
                           capture_output=True, text=True)
        r.check('creates data_dir', p.returncode == 0 and
                os.path.exists(os.path.join(data, 'accounts.db')), p.stderr)
    finally:
        shutil.rmtree(d, True)


def test_domains(env):
    rc, out, err = ctl(env, 'domain', 'add', 'Other.Test')
    r.check('domain add', rc == 0, err)
    rc, out, err = ctl(env, 'domain', 'add', 'other.test')
    one_line_error('domain add twice', rc, err)
    rc, out, err = ctl(env, 'domain', 'add', 'bad domain')
    one_line_error('domain add malformed', rc, err)
    rc, out, err = ctl(env, 'domain', 'list')
    r.check('domain list', rc == 0 and out.split() == ['example.test',
                                                       'other.test'], out)
    rc, out, err = ctl(env, 'domain', 'del', 'example.test')
    one_line_error('domain del with users', rc, err)
    rc, out, err = ctl(env, 'domain', 'del', 'other.test')
    r.check('domain del', rc == 0, err)
    rc, out, err = ctl(env, 'domain', 'del', 'other.test')
    one_line_error('domain del unknown', rc, err)


def verify(env, address, password):
    rc, out, err = ctl(env, 'user', 'verify', address, input=password + '\n')
    return rc == 0


def test_users(env):
    rc, out, err = ctl(env, 'user', 'add', 'carol@example.test',
                       input=SECRET + '\n')
    r.check('user add', rc == 0, err)
    r.check('user add: password works', verify(env, 'carol@example.test',
                                               SECRET))
    rc, out, err = ctl(env, 'user', 'verify', 'carol@example.test',
                       input=SECRET)
    r.check('a last line without newline is read too', rc == 0, err)
    r.check('a prefix of the password is refused',
            not verify(env, 'carol@example.test', SECRET[:-1]))
    r.check('login is the full address, any case',
            verify(env, 'Carol@Example.Test', SECRET))
    r.check('wrong password refused', not verify(env, 'carol@example.test',
                                                 'nope'))
    # CRLF from a Windows-made file is stripped too.
    rc, out, err = ctl(env, 'user', 'add', 'dave@example.test',
                       input='daisy-give-me-your-answer\r\n')
    r.check('user add CRLF', rc == 0 and verify(env, 'dave@example.test',
                                                'daisy-give-me-your-answer'), err)

    rc, out, err = ctl(env, 'user', 'add', 'eve@example.test', 'pw-in-argv',
                       input='x\n')
    one_line_error('password in argv refused', rc, err)
    rc, out, err = ctl(env, 'user', 'list')
    r.check('argv password created nothing', 'eve@' not in out, out)
    rc, out, err = ctl(env, 'user', 'add', 'eve@example.test', input='')
    one_line_error('user add without stdin', rc, err)
    rc, out, err = ctl(env, 'user', 'add', 'eve@example.test', input='\n')
    one_line_error('user add empty password', rc, err)
    rc, out, err = ctl(env, 'user', 'add', 'eve@nowhere.test', input=STRONG + '\n')
    one_line_error('user add unknown domain', rc, err)
    r.check('unknown domain named', 'nowhere.test' in err, err)
    rc, out, err = ctl(env, 'user', 'add', 'carol@example.test', input=STRONG + '\n')
    one_line_error('user add duplicate', rc, err)
    rc, out, err = ctl(env, 'user', 'add', '../x@example.test', input=STRONG + '\n')
    one_line_error('user add path in address', rc, err)

    # The password policy ([auth] password_min_length, 12 characters; not
    # the name before the @): exit 1, the reason, nothing created.
    for pw, why in (('a', '1 characters, at least 12'),
                    ('eleven-char', '11 characters, at least 12'),
                    ('my-Eve-password!', "account's name 'eve'"),
                    ('tab\tin-the-password', 'prohibited')):
        rc, out, err = ctl(env, 'user', 'add', 'eve@example.test',
                           input=pw + '\n')
        one_line_error('weak password refused: %r' % pw, rc, err)
        r.check('weak password: says why (%r)' % pw, why in err, err)
    p = subprocess.run('echo a | "%s" --config "%s" user add eve@example.test'
                       % (LOFTCTL, env.config_path), shell=True,
                       capture_output=True, text=True)
    r.check('echo a | loftctl user add: exit 1', p.returncode == 1, p)
    r.check('echo a | loftctl user add: says why',
            'password too weak' in p.stderr, p.stderr)
    rc, out, err = ctl(env, 'user', 'show', 'eve@example.test')
    r.check('weak password created nothing', rc == 1, out)

    rc, out, err = ctl(env, 'user', 'list')
    r.check('user list', rc == 0 and out.split() == [
        'alice@example.test', 'bob@example.test', 'carol@example.test',
        'dave@example.test'], out)

    rc, out, err = ctl(env, 'user', 'passwd', 'carol@example.test',
                       input='new-' + SECRET + '\n')
    r.check('user passwd', rc == 0, err)
    r.check('passwd: old refused', not verify(env, 'carol@example.test',
                                              SECRET))
    r.check('passwd: new works', verify(env, 'carol@example.test',
                                        'new-' + SECRET))
    rc, out, err = ctl(env, 'user', 'passwd', 'carol@example.test',
                       input='short\n')
    one_line_error('passwd weak refused', rc, err)
    r.check('passwd weak: says why', 'at least 12' in err, err)
    r.check('passwd weak: the password stays', verify(
        env, 'carol@example.test', 'new-' + SECRET))
    rc, out, err = ctl(env, 'user', 'passwd', 'nobody@example.test',
                       input='x\n')
    one_line_error('passwd unknown user', rc, err)


def test_imports(env):
    for i, (hash_, password, scheme) in enumerate(IMPORTS):
        addr = 'imp%d@example.test' % i
        rc, out, err = ctl(env, 'user', 'add', addr, '--hash',
                           input=hash_ + '\n')
        r.check('import %s' % scheme, rc == 0, err)
        rc, out = show(env, addr)
        r.check('show %s before login' % scheme,
                ('hash: %s (' % scheme) in out, out)
        r.check('import %s: wrong refused' % scheme,
                not verify(env, addr, password + 'x'))
        r.check('import %s: right accepted' % scheme,
                verify(env, addr, password))
        rc, out = show(env, addr)
        r.check('import %s re-hashed to argon2id with SCRAM' % scheme,
                'hash: ARGON2ID, with SCRAM-SHA-256 keys' in out, out)
        r.check('import %s: still accepted' % scheme,
                verify(env, addr, password))
    for bad in ('$6$saltstring$abc', '{MD5}abcdef', '{SHA512-CRYPT}nope',
                '{BLF-CRYPT}$2y$05$short'):
        rc, out, err = ctl(env, 'user', 'add', 'badimp@example.test',
                           '--hash', input=bad + '\n')
        one_line_error('import malformed %s' % bad[:14], rc, err)
    # passwd --hash replaces the password with an imported hash.
    hash_, password, scheme = IMPORTS[0]
    rc, out, err = ctl(env, 'user', 'passwd', 'dave@example.test', '--hash',
                       input=hash_ + '\n')
    r.check('passwd --hash', rc == 0 and verify(env, 'dave@example.test',
                                                password), err)


def test_quota_and_policies(env):
    a = 'carol@example.test'
    rc, out, err = ctl(env, 'user', 'quota', a, '500M')
    r.check('quota 500M', rc == 0, err)
    rc, out = show(env, a)
    r.check('show quota 500M', 'quota_bytes = 500.0 MiB' in out, out)
    rc, out, err = ctl(env, 'user', 'quota', a, '2G')
    rc, out = show(env, a)
    r.check('show quota 2G', 'quota_bytes = 2.0 GiB' in out, out)
    rc, out, err = ctl(env, 'user', 'quota', a, 'none')
    rc, out = show(env, a)
    r.check('quota none', rc == 0 and 'quota_bytes = none' in out, out)
    rc, out, err = ctl(env, 'user', 'quota', a, 'lots')
    one_line_error('quota malformed', rc, err)
    rc, out, err = ctl(env, 'user', 'quota', 'nobody@example.test', '1G')
    one_line_error('quota unknown user', rc, err)

    rc, out, err = ctl(env, 'user', 'set', a, 'pop3_delete=hide',
                       'pop3_retention_days=14', 'over_quota_tempfail=yes')
    r.check('user set', rc == 0, err)
    rc, out = show(env, a)
    for line in ('pop3_delete = hide', 'pop3_retention_days = 14',
                 'over_quota_tempfail = yes', 'trash_retention_days = 30'):
        r.check('show ' + line, line in out, out)
    # All or nothing: one bad pair changes none.
    rc, out, err = ctl(env, 'user', 'set', a, 'pop3_delete=expunge',
                       'junk_retention_days=soon')
    one_line_error('user set bad value', rc, err)
    rc, out = show(env, a)
    r.check('bad set changed nothing', 'pop3_delete = hide' in out, out)
    rc, out, err = ctl(env, 'user', 'set', a, 'colour=blue')
    one_line_error('user set unknown key', rc, err)
    rc, out, err = ctl(env, 'user', 'set', a, 'novalue')
    one_line_error('user set without =', rc, err)
    rc, out, err = ctl(env, 'user', 'set', a, 'pop3_delete=default')
    rc, out = show(env, a)
    r.check('set default restores [policy]', rc == 0 and
            'pop3_delete = auto' in out, out)
    r.check('show says what auto does', 'last IMAP login: never' in out and
            'pop3 DELE now: trash (no IMAP login within 30 days)' in out, out)
    rc, out, err = ctl(env, 'user', 'set', a, 'disabled=yes')
    r.check('disabled user cannot log in', rc == 0 and
            not verify(env, a, 'new-' + SECRET))
    rc, out = show(env, a)
    r.check('show disabled', 'status: disabled' in out, out)
    ctl(env, 'user', 'set', a, 'disabled=no')
    r.check('enabled again', verify(env, a, 'new-' + SECRET))


def test_show_mail(env):
    rc, out = show(env, 'alice@example.test')
    r.check('user show', rc == 0, out)
    for want in ('address: alice@example.test', 'usage: ', 'mailboxes:',
                 'INBOX', 'Trash', 'Sent'):
        r.check('show has ' + want, want in out, out)
    rc, out, err = ctl(env, 'user', 'show', 'nobody@example.test')
    one_line_error('show unknown', rc, err)


def test_aliases(env):
    rc, out, err = ctl(env, 'alias', 'add', 'postmaster@example.test',
                       'alice@example.test')
    r.check('alias add', rc == 0, err)
    rc, out, err = ctl(env, 'alias', 'list')
    r.check('alias list', rc == 0 and
            'postmaster@example.test -> alice@example.test' in out, out)
    rc, out, err = ctl(env, 'alias', 'add', 'x@example.test',
                       'nobody@example.test')
    one_line_error('alias to unknown user', rc, err)
    rc, out, err = ctl(env, 'alias', 'add', 'bob@example.test',
                       'alice@example.test')
    one_line_error('alias shadowing a user', rc, err)
    rc, out, err = ctl(env, 'alias', 'add', 'x@nowhere.test',
                       'alice@example.test')
    one_line_error('alias in unknown domain', rc, err)
    r.check('alias is not a login', not verify(env, 'postmaster@example.test',
                                               'tea-party-rabbit-hole'))
    rc, out, err = ctl(env, 'alias', 'del', 'postmaster@example.test')
    r.check('alias del', rc == 0, err)
    rc, out, err = ctl(env, 'alias', 'del', 'postmaster@example.test')
    one_line_error('alias del unknown', rc, err)


def test_check(env):
    rc, out, err = ctl(env, 'check', 'alice@example.test')
    r.check('check consistent', rc == 0 and 'consistent' in out, (out, err))
    rc, out, err = ctl(env, 'check', 'nobody@example.test')
    one_line_error('check unknown user', rc, err)


def test_delete(env):
    a = 'dave@example.test'
    rc, out, err = ctl(env, 'user', 'del', a)
    one_line_error('del without --yes off a tty', rc, err)
    rc, out, err = ctl(env, 'user', 'list')
    r.check('not deleted without confirmation', a in out, out)
    ctl(env, 'alias', 'add', 'dave2@example.test', a)
    rc, out = show(env, a)    # opens (creates) its mail
    uid = re.search(r'^id: (\d+)$', out, re.M).group(1)
    mail = os.path.join(env.data_dir, 'mail')

    def mail_dirs():
        # on postgres its rows (docs/scale-out.md): the account, its
        # mailboxes
        if BACKEND == 'postgres':
            return env.pg_store_sql(
                "SELECT 'account' FROM account WHERE user_id = ?"
                " UNION ALL SELECT 'mailbox ' || name FROM mailbox"
                " WHERE user_id = ?", (int(uid), int(uid)))
        return [root for root, dirs, files in os.walk(mail)
                if os.path.basename(root) == uid]
    r.check('user has a mail directory', mail_dirs() != [], uid)
    rc, out, err = ctl(env, 'user', 'del', a, '--yes')
    r.check('del --yes', rc == 0, err)
    r.check('del removed the mail', mail_dirs() == [], mail_dirs())
    rc, out, err = ctl(env, 'user', 'list')
    r.check('deleted', a not in out, out)
    rc, out, err = ctl(env, 'alias', 'list')
    r.check('its aliases went with it', 'dave2@' not in out, out)
    rc, out, err = ctl(env, 'user', 'del', a, '--yes')
    one_line_error('del unknown', rc, err)


def test_no_password_leaks(env):
    secrets = [SECRET, 'new-' + SECRET, 'daisy-give-me-your-answer'] + [p for _, p, _ in
                                                       IMPORTS[:1]]
    text = '\n'.join(outputs)
    for s in secrets:
        r.check('password never printed', s not in text, s)
    db = env.accounts_bytes()
    r.check('password not stored in clear', SECRET.encode() not in db)


def imap_ok(env, user, password):
    try:
        c = env.imap()
        try:
            c.login(user, password)
            return True
        except imaplib.IMAP4.error:
            return False
        finally:
            try:
                c.logout()
            except Exception:
                pass
    except OSError:
        return False


def pop3_ok(env, user, password):
    try:
        c = env.pop3()
    except OSError:
        return None
    try:
        c.user(user)
        c.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            c.quit()
        except Exception:
            pass


def account_files(env, user_id):
    """Sum of the sizes of an account's files; on postgres, of the body
    files its rows name in blob_dir (its rows are no files of its own:
    docs/running.md, `user show`)."""
    if BACKEND == 'postgres':
        blob_dir = env.sections['store']['blob_dir']
        return sum(os.path.getsize(os.path.join(blob_dir, sha[:2], sha))
                   for (sha,) in env.pg_store_sql(
                       'SELECT DISTINCT sha256 FROM blob WHERE user_id = ?',
                       (user_id,)))
    top = os.path.join(env.data_dir, 'mail', '%02x' % (user_id % 256), str(user_id))
    total = 0
    for root, dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p):
                total += os.path.getsize(p)
    return total


def check_disk(env, address, out):
    """`user show`'s disk figures add up to the account's files (taken
    when the files did not change meanwhile: loftd's indexer writes)."""
    m = re.search(r'^id: (\d+)$', out, re.M)
    uid = int(m.group(1)) if m else 0
    figures = None
    for _ in range(20):
        before = account_files(env, uid)
        rc, out, err = ctl(env, 'user', 'show', address)
        after = account_files(env, uid)
        d = dict(re.findall(r'^  (index_bytes|search_bytes|blob_bytes) = (\d+)$',
                            out, re.M))
        if before == after and len(d) == 3:
            figures = ({k: int(v) for k, v in d.items()}, after)
            break
        time.sleep(0.2)
    r.check('disk figures shown', figures is not None, out)
    if figures is None:
        return
    d, files = figures
    if BACKEND == 'postgres':
        r.check('disk: blob = the bodies\' files', d['blob_bytes'] == files,
                (d, files))
        r.check('disk: the rows are counted', d['index_bytes'] > 0, d)
    else:
        r.check('disk: index + blob = the account\'s files',
                d['index_bytes'] + d['blob_bytes'] == files, (d, files))
    r.check('disk: the delivered body is counted', d['blob_bytes'] > 0, d)
    r.check('disk: search is part of the index',
            0 < d['search_bytes'] <= d['index_bytes'], d)


def test_live(env):
    """loftctl changes take effect in a running loftd at once."""
    a = 'alice@example.test'
    r.check('live: login', imap_ok(env, a, 'tea-party-rabbit-hole'))
    rc, out, err = ctl(env, 'user', 'passwd', a, input='changed-live\n')
    r.check('live: passwd while running', rc == 0, err)
    r.check('live: old password refused at once',
            not imap_ok(env, a, 'tea-party-rabbit-hole'))
    r.check('live: new password works at once',
            imap_ok(env, a, 'changed-live'))
    rc, out, err = ctl(env, 'user', 'add', 'frank@example.test',
                       input='to-be-or-not-to-be\n')
    r.check('live: new user logs in at once', rc == 0 and
            imap_ok(env, 'frank@example.test', 'to-be-or-not-to-be'), err)
    ctl(env, 'user', 'set', 'frank@example.test', 'disabled=yes')
    r.check('live: disabled at once',
            not imap_ok(env, 'frank@example.test', 'to-be-or-not-to-be'))
    msg = (b'From: x@example.org\r\nTo: alice@example.test\r\n'
           b'Subject: usage\r\n\r\nhello\r\n')
    c = env.lmtp()
    c.ehlo_or_helo_if_needed = lambda: None
    c.docmd('LHLO', 'test')
    c.sendmail('x@example.org', [a], msg)
    c.quit()
    rc, out, err = ctl(env, 'user', 'show', a)
    r.check('live: show while running', rc == 0, err)
    # Received: and Delivered-To: are added, so it is a bit larger.
    m = re.search(r'usage: (\d+) bytes .*, 1 messages', out)
    size = int(m.group(1)) if m else -1
    r.check('live: show counts the delivery', size > len(msg) and
            'INBOX: 1 messages, 1 unseen, %d bytes' % size in out, out)
    check_disk(env, a, out)
    ctl(env, 'user', 'quota', a, '1K')
    rc, out, err = ctl(env, 'user', 'show', a)
    r.check('live: show quota use', 'quota used: ' in out, out)
    rc, out, err = ctl(env, 'check', a)
    r.check('live: check while running', rc == 0, (out, err))


def main():
    with Loft(start=False) as env:
        test_usage(env)
        test_domains(env)
        test_users(env)
        test_imports(env)
        test_quota_and_policies(env)
        test_show_mail(env)
        test_aliases(env)
        test_check(env)
        test_delete(env)
        test_no_password_leaks(env)
    test_bad_config()
    if os.path.exists(LOFTD):
        with Loft(extra={'auth': {'cache_ttl': '60s'}}) as env:
            test_live(env)
    else:
        r.check('loftd built for the live part', False, LOFTD)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
