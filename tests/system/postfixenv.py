"""A private Postfix (from Debian) that relays mail for example.test to an
LMTP server: its own config directory, queue and data directories in a
temp dir (`postfix -c DIR/etc`), SMTP on a free loopback port, no chroot,
no system service touched. Used by tests/system/test_postfix.py.

The config directory holds only main.cf and master.cf, as /etc/postfix
does: `postfix start` (postfix-script check-warn) walks the whole config
directory and runs one postlog per file not owned by root, so a queue
inside it (100,000 queue files owned by postfix) kept `postfix start`
busy for over half an hour.

    with Postfix(lmtp='inet:127.0.0.1:2424') as pf:
        smtplib.SMTP('127.0.0.1', pf.port).sendmail(...)
        pf.wait_delivered(1)     # reads its mail log
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from ports import free_port

POSTFIX = '/usr/sbin/postfix'
POSTCONF = '/usr/sbin/postconf'

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.example.test
mydomain = example.test
myorigin = postfix.example.test
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
relay_domains =
virtual_mailbox_domains = example.test
virtual_mailbox_maps =
virtual_transport = lmtp:{lmtp}
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
biff = no
smtputf8_enable = no
lmtp_destination_recipient_limit = 50
# deliver at once, retry soon: a test does not wait for the defaults
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"""




def _params(text):
    """{name: its lines} of a main.cf text (continuation lines included)."""
    out, name = {}, None
    for line in text.splitlines():
        if line[:1] in (' ', '\t') and name is not None:
            out[name].append(line)
        elif '=' in line and not line.lstrip().startswith('#'):
            name = line.split('=', 1)[0].strip()
            out[name] = [line]
        else:
            name = None
    return out


def merge_main_cf(base, extra):
    """base with extra's parameters replacing its own. Never two settings
    of one name: each would make every Postfix process log "overriding
    earlier entry" at start, and with a short datagram queue
    (net.unix.max_dgram_qlen) postlogd can block on its own warnings while
    smtpd waits for it - no greeting, ever."""
    replaced = set(_params(extra))
    lines, skipping = [], False
    for line in base.splitlines():
        if line[:1] in (' ', '\t') and skipping:
            continue
        skipping = ('=' in line and not line.lstrip().startswith('#') and
                    line.split('=', 1)[0].strip() in replaced)
        if not skipping:
            lines.append(line)
    return '\n'.join(lines) + '\n' + extra.strip('\n') + '\n'


class Postfix:
    def __init__(self, lmtp, transport=None, extra=None):
        """lmtp: the default next hop ("inet:HOST:PORT" or "unix:/PATH");
        transport: {address: "lmtp:unix:/PATH"} per-recipient overrides;
        extra: main.cf text whose settings replace the defaults'.
        """
        self.dir = tempfile.mkdtemp(prefix='loft-postfix-')
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, 'etc')    # postfix -c
        os.mkdir(self.conf, 0o755)
        self.port = free_port()
        self.lmtp = lmtp
        self.started = False
        main_cf = MAIN_CF.format(dir=self.dir, lmtp=lmtp)
        if transport:
            main_cf += 'transport_maps = inline:{ %s }\n' % ', '.join(
                '%s=%s' % kv for kv in sorted(transport.items()))
        if extra:
            main_cf = merge_main_cf(main_cf, extra.format(dir=self.dir))
        with open(os.path.join(self.conf, 'main.cf'), 'w') as f:
            f.write(main_cf)
        with open(os.path.join(self.conf, 'master.cf'), 'w') as f:
            f.write(MASTER_CF.format(port='127.0.0.1:%d' % self.port))
        for d in ('queue', 'data'):
            os.makedirs(os.path.join(self.dir, d))
        shutil.chown(os.path.join(self.dir, 'data'), 'postfix', 'postfix')

    @staticmethod
    def available():
        """None if Postfix can run here, else the reason it cannot."""
        if not os.access(POSTFIX, os.X_OK):
            return 'postfix is not installed'
        if os.getuid() != 0:
            return 'postfix must be started as root'
        try:
            import pwd
            pwd.getpwnam('postfix')
        except KeyError:
            return 'no postfix user'
        return None

    def _run(self, *args):
        return subprocess.run([POSTFIX, '-c', self.conf] + list(args),
                              capture_output=True, text=True, timeout=60)

    def start(self, timeout=120):
        """Starts Postfix and waits for smtpd's 220 greeting (master
        listens before any smtpd runs; on a loaded machine the first
        smtpd can take a while)."""
        r = self._run('start')
        if r.returncode != 0:
            raise RuntimeError('postfix start: %s%s\n%s' % (r.stdout, r.stderr, self.log()))
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(('127.0.0.1', self.port),
                                              timeout=10) as s:
                    s.settimeout(max(1, deadline - time.monotonic()))
                    if s.recv(100).startswith(b'220'):
                        s.sendall(b'QUIT\r\n')
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('postfix smtpd gives no greeting:\n' + self.log())

    def queue_dir(self):
        return os.path.join(self.dir, 'queue')

    def queue_listing(self):
        """What `postqueue -p` says (\"Mail queue is empty\" when it is)."""
        r = subprocess.run(['/usr/sbin/postqueue', '-c', self.conf, '-p'],
                           capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr

    def flush(self):
        self._run('flush')

    def stop(self):
        if self.started:
            try:
                r = self._run('stop')
                ok = r.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok:
                try:
                    self._run('abort')
                except subprocess.TimeoutExpired:
                    pass
            self.started = False

    def log(self):
        try:
            with open(os.path.join(self.dir, 'maillog'), errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def deliveries(self):
        """(to, status, reply) of every delivery attempt logged by lmtp."""
        return re.findall(r'postfix/lmtp\[\d+\]: \w+: to=<([^>]*)>.*status=(\w+) \((.*)\)',
                          self.log())

    def wait_delivered(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = [d for d in self.deliveries() if d[1] == 'sent']
            if len(sent) >= n:
                return True
            time.sleep(0.2)
        return False

    def close(self):
        try:
            self.stop()
        finally:
            if os.environ.get('LOFT_KEEP_TMP'):
                print('postfixenv: kept', self.dir)
            else:
                shutil.rmtree(self.dir, True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False
