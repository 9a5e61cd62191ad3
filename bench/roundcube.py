"""Roundcube from Debian over a private Dovecot, for bench/webmail.mjs
--roundcube: starts Dovecot (tests/lib/dovecotenv.py) with N small messages
in alice's INBOX (over LMTP, the same messages bench/webmail.mjs gives
Loft), a private Roundcube configuration (sqlite database, its own temp and
log dirs, Debian's defaults otherwise: 50 messages a page, refresh every
60 s) served by php's built-in server on a free loopback port. Prints one
JSON line {url, user, password, imap}, then waits for EOF on stdin and
removes everything. Nothing of /etc/roundcube is changed.

    python3 bench/roundcube.py 100000 [--maildir]

--maildir writes the messages into the Maildir instead of delivering them
(fill_maildir: the same bytes, indexed by Dovecot before the measures).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'lib'))
from dovecotenv import Dovecot  # noqa: E402
from ports import free_port  # noqa: E402

ROUNDCUBE = '/var/lib/roundcube'


def fill(dc, n):
    lock = threading.Lock()
    state = {'next': 0}

    def worker():
        c = dc.lmtp() if hasattr(dc, 'lmtp') else None
        import smtplib
        if c is None:
            c = smtplib.LMTP('127.0.0.1', dc.ports['lmtp'])
        while True:
            with lock:
                i = state['next']
                if i >= n:
                    break
                state['next'] = i + 1
            c.sendmail('fill@example.org', ['alice@example.test'], message(i))
        c.quit()
    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def message(i):
    return ('From: Sender %d <s%d@example.org>\r\nTo: alice@example.test\r\nSubject: Message number %d about topic %d\r\n'
            'Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <m%d@example.org>\r\n\r\nBody of message %d.\r\n'
            % (i % 977, i % 977, i, i % 53, i, i)).encode()


def fill_maildir(dc, n):
    """The same messages written straight into alice's Maildir (cur/, in
    delivery order by their names' times), then indexed by Dovecot through
    IMAP (SELECT, and a FETCH of every envelope, the way a first visit of a
    mail client leaves Dovecot's cache): delivering 100,000 over LMTP took
    Dovecot over 100 minutes on a loaded 2-core machine. What Roundcube is
    measured on is the same: the Maildir, Dovecot's index and cache."""
    imap = dc.imap_login('alice@example.test')    # makes the Maildir
    imap.logout()
    md = os.path.join(dc.mail_dir, 'alice@example.test', 'Maildir')
    cur = os.path.join(md, 'cur')
    os.makedirs(cur, exist_ok=True)
    t0 = 1700000000
    for i in range(n):
        data = message(i)
        name = '%d.M%dP1.loftbench,S=%d:2,' % (t0 + i, i, len(data))
        path = os.path.join(cur, name)
        with open(path, 'wb') as f:
            f.write(data)
        os.utime(path, (t0 + i, t0 + i))
        os.chown(path, dc.uid, dc.gid)
    for dirpath, dirs, files in os.walk(md):
        os.chown(dirpath, dc.uid, dc.gid)
    imap = dc.imap_login('alice@example.test')
    imap.select('INBOX')
    imap.fetch('1:*', '(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)')
    imap.logout()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    direct = '--maildir' in sys.argv
    with Dovecot(fsync=False) as dc:
        t0 = time.time()
        if direct:
            fill_maildir(dc, n)
        else:
            fill(dc, n)
        fill_s = time.time() - t0
        d = tempfile.mkdtemp(prefix='loft-roundcube-')
        try:
            conf = os.path.join(d, 'config')
            os.makedirs(conf)
            for sub in ('temp', 'logs'):
                os.makedirs(os.path.join(d, sub))
            shutil.copy('/etc/roundcube/defaults.inc.php', conf)
            shutil.copy('/etc/roundcube/mimetypes.php', conf)
            db = os.path.join(d, 'roundcube.db')
            subprocess.run(['php', '-r', '$p = new PDO("sqlite:" . $argv[1]); $p->exec(file_get_contents($argv[2]));',
                            db, '/usr/share/roundcube/SQL/sqlite.initial.sql'], check=True)
            with open(os.path.join(conf, 'config.inc.php'), 'w') as f:
                f.write("""<?php
$config = [];
$config['db_dsnw'] = 'sqlite:///%s?mode=0646';
$config['imap_host'] = '127.0.0.1:%d';
$config['smtp_host'] = '';
$config['des_key'] = 'loft-bench-roundcube-key';
$config['plugins'] = [];
$config['skin'] = 'elastic';
$config['temp_dir'] = '%s/temp/';
$config['log_dir'] = '%s/logs/';
$config['enable_installer'] = false;
$config['use_https'] = false;
$config['login_rate_limit'] = 0;
""" % (db, dc.ports['imap'], d, d))
            port = free_port()
            env = dict(os.environ, ROUNDCUBE_CONFIG_DIR=conf)
            php = subprocess.Popen(['php', '-d', 'memory_limit=1G', '-S', '127.0.0.1:%d' % port, '-t',
                                    os.path.join(ROUNDCUBE, 'public_html')],
                                   env=env, cwd=os.path.join(ROUNDCUBE, 'public_html'),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                try:
                    socket.create_connection(('127.0.0.1', port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            print(json.dumps({'url': 'http://127.0.0.1:%d' % port, 'user': 'alice@example.test',
                              'password': dc.users['alice@example.test'], 'imap': dc.ports['imap'],
                              'fillSeconds': fill_s}), flush=True)
            for line in sys.stdin:
                line = line.strip()
                if not line:
                    continue
                req = json.loads(line)
                local = {'dc': dc, 'result': None, 'args': req.get('args')}
                try:
                    exec(req['code'], local)
                    out = {'ok': True, 'result': local.get('result')}
                except Exception as e:
                    out = {'ok': False, 'error': repr(e)}
                print(json.dumps(out, default=str), flush=True)
            php.send_signal(signal.SIGTERM)
            php.wait(timeout=30)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
