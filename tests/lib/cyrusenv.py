"""A private Cyrus IMAP 3.6 (Debian 12) for the JMAP bench: its master
with lmtpd and httpd (`httpmodules: jmap`, conversations on), in a
temp dir owned by the cyrus user, listening on loopback only. Any password
is accepted (sasl_pwcheck_method: alwaystrue): a bench, not a server.
Users and their INBOX (and the usual special folders) are made at their
first LMTP delivery.

    from cyrusenv import Cyrus
    with Cyrus(['alice@example.test']) as c:
        c.ports['http'], c.ports['lmtp']
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from ports import free_port

BIN = '/usr/lib/cyrus/bin'


def available():
    return os.path.exists(os.path.join(BIN, 'master')) and \
        os.path.exists(os.path.join(BIN, 'httpd'))


class Cyrus:
    def __init__(self, users):
        self.users = list(users)
        self.dir = tempfile.mkdtemp(prefix='cyrus-bench-')
        # imapd is cyrus-imapd's, which conflicts with dovecot-imapd:
        # JMAP (httpd) and LMTP are all the bench needs
        self.ports = {p: free_port() for p in ('http', 'lmtp')}
        self.proc = None
        self.name = 'cyrus'
        d = self.dir
        for sub in ('conf/db', 'conf/proc', 'conf/lock', 'conf/socket',
                    'conf/log', 'conf/user', 'conf/quota', 'conf/msg',
                    'conf/ptclient', 'conf/sync', 'conf/backup', 'spool',
                    'socket', 'sieve', 'log'):
            os.makedirs(os.path.join(d, sub))
        conf = os.path.join(d, 'imapd.conf')
        with open(conf, 'w') as f:
            f.write('\n'.join([
                'configdirectory: %s/conf' % d,
                'serverbin: %s' % BIN,
                'partition-default: %s/spool' % d,
                'defaultpartition: default',
                'sievedir: %s/sieve' % d,
                'admins: cyrus',
                'sasl_pwcheck_method: alwaystrue',
                'sasl_mech_list: PLAIN LOGIN',
                'allowplaintext: yes',
                'virtdomains: userid',
                'unixhierarchysep: yes',
                'altnamespace: yes',
                'lmtp_downcase_rcpt: yes',
                'autocreate_post: yes',
                'autocreate_quota: 0',
                'autocreate_inbox_folders: Sent|Drafts|Trash|Junk|Archive',
                'autocreate_users: anyone',
                'xlist-sent: Sent', 'xlist-drafts: Drafts',
                'xlist-trash: Trash', 'xlist-junk: Junk',
                'xlist-archive: Archive',
                'specialusealways: yes',
                'conversations: yes',
                'conversations_db: twoskip',
                'httpmodules: jmap',
                'httpallowcompress: no',
                'jmap_preview_annot: /shared/vendor/messagingengine.com/preview',
                'idlesocket: %s/socket/idle' % d,
                'notifysocket: %s/socket/notify' % d,
                'lmtpsocket: %s/socket/lmtp' % d,
                'mboxname_lockpath: %s/socket/lock' % d,
                'syslog_prefix: cyrus-bench',
                'tls_required: no',
                'httpdocroot: %s' % d,
                'jmap_max_objects_in_get: 1000',
                '',
            ]))
        with open(os.path.join(d, 'cyrus.conf'), 'w') as f:
            f.write('START {\n recover cmd="ctl_cyrusdb -r -C %s"\n}\n'
                    'SERVICES {\n'
                    ' http cmd="httpd -C %s" listen="127.0.0.1:%d" prefork=2\n'
                    ' lmtp cmd="lmtpd -a -C %s" listen="127.0.0.1:%d" prefork=1\n'
                    '}\nEVENTS {\n}\nDAEMON {\n}\n'
                    % (conf, conf, self.ports['http'], conf,
                       self.ports['lmtp']))
        self.conf = conf
        pw = pwd.getpwnam('cyrus')
        for root, dirs, files in os.walk(d):
            for x in dirs + files:
                os.chown(os.path.join(root, x), pw.pw_uid, pw.pw_gid)
        os.chown(d, pw.pw_uid, pw.pw_gid)

    def start(self, timeout=60, nosync=False):
        """nosync: under eatmydata (fsync made a no-op), for filling a
        mailbox fast; stop() and start() again before measuring."""
        self.log = open(os.path.join(self.dir, 'log', 'master.log'), 'ab')
        pre = ['eatmydata'] if nosync else []
        self.proc = subprocess.Popen(
            ['runuser', '-u', 'cyrus', '--'] + pre +
            [os.path.join(BIN, 'master'),
             '-C', self.conf, '-M', os.path.join(self.dir, 'cyrus.conf'),
             '-p', os.path.join(self.dir, 'master.pid')],
            stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + timeout
        for p in self.ports.values():
            while True:
                try:
                    socket.create_connection(('127.0.0.1', p), 1).close()
                    break
                except OSError:
                    if time.time() > deadline or self.proc.poll() is not None:
                        raise RuntimeError('cyrus did not start: %s'
                                           % self.master_log())
                    time.sleep(0.2)

    def master_log(self):
        try:
            with open(os.path.join(self.dir, 'log', 'master.log'), 'rb') as f:
                return f.read().decode(errors='replace')[-2000:]
        except OSError:
            return ''

    def pid(self):
        try:
            with open(os.path.join(self.dir, 'master.pid')) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return self.proc.pid if self.proc else 0

    def password(self, user):
        return 'any'

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
