"""A private rspamd (Debian's) for tests: its normal worker on a loopback
port, the stock modules and scores from /etc/rspamd but those that reach
outside (their own $LOCAL_CONFDIR turns them off), no network (DNS goes to
a closed port), a short list of top-level domains so it starts
in seconds instead of compiling every public suffix.

    with Rspamd() as rs:
        Loft(extra={'smtp': {'rspamd': rs.url}})
"""

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from ports import free_port
from loftenv import SLOW

RSPAMD = shutil.which('rspamd') or '/usr/bin/rspamd'

CONF = '''.include "$CONFDIR/common.conf"
options {
  pidfile = "$RUNDIR/rspamd.pid";
  disable_hyperscan = true;
  .include "$CONFDIR/options.inc"
  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
  url_tld = "%(dir)s/tld.dat";
}
logging { type = "console"; level = "error"; }
worker "normal" {
  bind_socket = "127.0.0.1:%(port)d";
  .include "$CONFDIR/worker-normal.inc"
  count = 1;
}
'''


OUTSIDE_MODULES = ('fuzzy_check', 'rbl', 'whitelist', 'phishing', 'multimap',
                   'url_redirector', 'asn', 'emails', 'greylist', 'mime_types',
                   'mid')


class Rspamd:
    def __init__(self, local_lua=None):
        """local_lua: rules of the test's own ($LOCAL_CONFDIR/
        rspamd.local.lua, which the stock rspamd.lua loads)."""
        self.dir = tempfile.mkdtemp(prefix='loft-rspamd-')
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.proc = None
        if local_lua is not None:
            with open(os.path.join(self.dir, 'rspamd.local.lua'), 'w') as f:
                f.write(local_lua)
        with open(os.path.join(self.dir, 'tld.dat'), 'w') as f:
            f.write('com\nnet\norg\nexample\ntest\n')
        self.conf = os.path.join(self.dir, 'rspamd.conf')
        self._write_conf()
        # The stock modules that reach outside whatever the dns block
        # says (fuzzy_check resolves its upstreams with getaddrinfo at
        # start; the others fetch maps from maps.rspamd.com) are turned
        # off through our own $LOCAL_CONFDIR: a test never leaves the
        # machine.
        # DNS to a closed port, merged into the stock options through
        # local.d (a second dns block beside options.inc's is ignored)
        local = os.path.join(self.dir, 'local.d')
        os.makedirs(local)
        with open(os.path.join(local, 'options.inc'), 'w') as f:
            f.write('dns { nameserver = ["127.0.0.1:%d"]; timeout = 1s; '
                    'retransmits = 1; }\n' % free_port())
        over = os.path.join(self.dir, 'override.d')
        os.makedirs(over)
        for module in OUTSIDE_MODULES:
            with open(os.path.join(over, module + '.conf'), 'w') as f:
                f.write('enabled = false;\n')

    def _write_conf(self):
        with open(self.conf, 'w') as f:
            f.write(CONF % {'dir': self.dir, 'port': self.port})

    def start(self):
        """Starts rspamd and waits until it answers /ping. It is waited
        for as long as it makes progress (its processes use CPU or its
        log grows): a few seconds on an idle machine, many minutes under
        a CPU hog; it fails when nothing moved for 120 s (x SLOW). A port
        someone took meanwhile is chosen again."""
        for attempt in range(3):
            self._spawn()
            if self._wait_ready():
                return self
            out = self.output()
            # a failed start leaves nothing running (__exit__ is not
            # called for it: an rspamd left behind ran on for half an hour)
            self.stop_proc()
            if 'Address already in use' not in out or attempt == 2:
                self.stop()
                raise RuntimeError('rspamd did not start:\n' + out)
            self.port = free_port()
            self.url = 'http://127.0.0.1:%d' % self.port
            self._write_conf()
        raise RuntimeError('rspamd did not start')

    def _spawn(self):
        self.log = open(os.path.join(self.dir, 'rspamd.log'), 'wb')
        d = self.dir
        self.proc = subprocess.Popen(
            [RSPAMD, '-f', '-c', self.conf, '--insecure',
             '--var=RUNDIR=' + d, '--var=DBDIR=' + d, '--var=LOGDIR=' + d,
             '--var=LOCAL_CONFDIR=' + d],
            stdout=self.log, stderr=self.log)

    def _progress(self):
        """CPU ticks of rspamd's processes and its log's size."""
        ticks = 0
        pids = {self.proc.pid}
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    v = f.read().rsplit(')', 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(d) in pids or int(v[1]) in pids:
                pids.add(int(d))
                ticks += sum(int(x) for x in v[11:15])
        try:
            size = os.path.getsize(os.path.join(self.dir, 'rspamd.log'))
        except OSError:
            size = 0
        return (ticks, size)

    def _wait_ready(self):
        stall = 120 * SLOW
        last, moved = None, time.monotonic()
        while time.monotonic() - moved < stall:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + '/ping', timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            now = self._progress()
            if now != last:
                last, moved = now, time.monotonic()
            time.sleep(0.2)
        return False

    def output(self):
        try:
            with open(os.path.join(self.dir, 'rspamd.log')) as f:
                return f.read()[-3000:]
        except OSError:
            return ''

    def stop_proc(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def stop(self):
        self.stop_proc()
        shutil.rmtree(self.dir, True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
