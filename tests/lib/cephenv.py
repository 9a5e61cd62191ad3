"""A private Ceph cluster with its S3 gateway (radosgw), for `make
test-scaleout` (docs/scale-out.md, Tests):

    from cephenv import Ceph

    with Ceph(osds=2) as ceph:
        ceph.endpoint          # 'http://127.0.0.1:N': the checking and
                               # fault-injecting proxy (s3env.FaultProxy)
        ceph.access_key, ceph.secret_file
        ceph.fail(2, 503, 'SlowDown'); ceph.hang(1); ceph.requests
        ceph.objects('bucket') # keys radosgw holds (radosgw-admin)
        ceph.kill_osd(0)       # kill -9 of one OSD, waits until marked down

One monitor, one manager when Debian's ceph-mgr is installed, `osds`
OSDs (bluestore, each on a sparse 4 GiB file: never memstore, which
corrupts its space accounting), radosgw with its beast front-end on
loopback; cephx with keyrings made for the cluster (ceph-authtool); pools
of size `osds` (min_size 1: one OSD may die and every object is still
read and written) with 8 placement groups, the replicas on different
OSDs of this one host (crush chooseleaf type 0). Everything lives in a
temporary directory, the daemons in the foreground as children of the
test. Debian 12's packages (scripts/deps.sh scaleout). Ceph.available()
says whether they are installed.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from ports import free_port
from s3env import FaultProxy

BIN = '/usr/bin'
ACCESS_KEY = 'LOFTTESTACCESSKEY000'
SECRET_KEY = 'loft-test-secret-key-0000000000000000000'


class Ceph(FaultProxy):
    def __init__(self, osds=1, timeout=600):
        self.dir = tempfile.mkdtemp(prefix='loft-ceph-')
        self.osds = osds
        self.procs = {}            # name -> (Popen, log file)
        self.access_key = ACCESS_KEY
        self.secret_file = os.path.join(self.dir, 'secret')
        with open(self.secret_file, 'w') as f:
            f.write(SECRET_KEY + '\n')
        os.chmod(self.secret_file, 0o644)
        os.chmod(self.dir, 0o755)
        self._proxy_init()
        self.started = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - self.started

    @staticmethod
    def available():
        return all(os.path.exists(os.path.join(BIN, b)) for b in
                   ('ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin',
                    'monmaptool', 'ceph', 'ceph-authtool'))

    def _conf(self):
        return """[global]
fsid = %(fsid)s
mon host = v2:127.0.0.1:%(mon)d
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = %(d)s/keyring
run dir = %(d)s/run
admin socket = %(d)s/run/$name.asok
log file = %(d)s/log/$name.log
pid file = %(d)s/run/$name.pid
mon data = %(d)s/mon/$name
osd data = %(d)s/osd/$name
mgr data = %(d)s/mgr/$name
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 4294967296
bluestore fsck on mkfs = false
bluestore cache autotune = false
bluestore cache size = 67108864
osd memory target = 939524096
osd pool default size = %(size)d
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon osd min down reporters = 1
osd heartbeat interval = 1
osd heartbeat grace = 4
mon osd down out interval = 0
ms bind msgr1 = false
debug ms = 0
[osd]
keyring = %(d)s/osd/$name/keyring
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:%(rgw)d
rgw data = %(d)s/rgw
rgw dns name = localhost
rgw enable usage log = false
""" % {'fsid': self.fsid, 'mon': self.mon_port, 'rgw': self.rgw_port,
       'd': self.dir, 'size': self.osds}

    def _run(self, args, timeout=120, input=None):
        r = subprocess.run(args, capture_output=True, text=True,
                           timeout=timeout, input=input)
        if r.returncode != 0:
            raise RuntimeError('%s: %s%s\n%s' % (' '.join(args), r.stdout,
                                                r.stderr, self.log_tail()))
        return r.stdout

    def _daemon(self, name, args):
        log = open(os.path.join(self.dir, 'log', name + '.out'), 'w')
        p = subprocess.Popen(args + ['-f', '-c', self.conf, '--setuser',
                                     'root', '--setgroup', 'root'],
                             stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs[name] = (p, log)
        return p

    def ceph(self, *args, timeout=120):
        return self._run([os.path.join(BIN, 'ceph'), '-c', self.conf,
                          '--connect-timeout', '60'] + list(args),
                         timeout=timeout)

    def _authtool(self, *args):
        return self._run([os.path.join(BIN, 'ceph-authtool')] + list(args))

    def _wait(self, what, cond, deadline):
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError('%s: not within the time allowed\n%s'
                                   % (what, self.log_tail()))
            time.sleep(0.5)

    def _up(self):
        return json.loads(self.ceph('osd', 'dump', '--format', 'json'))

    def _start(self, timeout):
        d = self.dir
        deadline = time.monotonic() + timeout
        for sub in ('run', 'log', 'mon/mon.a', 'mgr/mgr.x', 'rgw'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        self.fsid = str(uuid.uuid4())
        self.mon_port = free_port()
        self.rgw_port = free_port()
        self.conf = os.path.join(d, 'ceph.conf')
        with open(self.conf, 'w') as f:
            f.write(self._conf())
        # cephx: the monitor's key, the admin's, radosgw's and the
        # manager's in one keyring the monitor imports at --mkfs
        kr = os.path.join(d, 'keyring')
        self._authtool('--create-keyring', kr, '--gen-key', '-n', 'mon.',
                       '--cap', 'mon', 'allow *')
        self._authtool(kr, '--gen-key', '-n', 'client.admin', '--cap', 'mon',
                       'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr',
                       'allow *', '--cap', 'mds', 'allow *')
        self._authtool(kr, '--gen-key', '-n', 'client.rgw', '--cap', 'mon',
                       'allow rw', '--cap', 'osd', 'allow rwx', '--cap',
                       'mgr', 'allow rw')
        self._authtool(kr, '--gen-key', '-n', 'mgr.x', '--cap', 'mon',
                       'allow profile mgr', '--cap', 'osd', 'allow *',
                       '--cap', 'mds', 'allow *')
        monmap = os.path.join(d, 'monmap')
        self._run([os.path.join(BIN, 'monmaptool'), '--create', '--fsid',
                   self.fsid, '--addv', 'a',
                   '[v2:127.0.0.1:%d]' % self.mon_port, monmap])
        self._run([os.path.join(BIN, 'ceph-mon'), '-c', self.conf, '--mkfs',
                   '-i', 'a', '--monmap', monmap, '--keyring', kr,
                   '--setuser', 'root', '--setgroup', 'root'])
        self._daemon('mon.a', [os.path.join(BIN, 'ceph-mon'), '-i', 'a'])
        if os.path.exists(os.path.join(BIN, 'ceph-mgr')):
            self._daemon('mgr.x', [os.path.join(BIN, 'ceph-mgr'), '-i', 'x'])
        for i in range(self.osds):
            self._make_osd(timeout)
        self._wait('%d OSDs up' % self.osds,
                   lambda: sum(o['up'] for o in self._up()['osds'])
                   == self.osds, deadline)
        self._daemon('rgw', [os.path.join(BIN, 'radosgw'), '-n',
                             'client.rgw'])

        def answers():
            try:
                urllib.request.urlopen('http://127.0.0.1:%d'
                                       % self.rgw_port, timeout=5).read()
                return True
            except urllib.error.HTTPError:
                return True        # it answers (403 for anonymous is fine)
            except OSError:
                p = self.procs['rgw'][0]
                if p.poll() is not None:
                    raise RuntimeError('radosgw exited (%d)\n%s'
                                       % (p.returncode, self.log_tail()))
                return False
        self._wait('radosgw answers HTTP', answers, deadline)
        self._run([os.path.join(BIN, 'radosgw-admin'), '-c', self.conf,
                   '-n', 'client.rgw', 'user', 'create', '--uid', 'loft',
                   '--display-name', 'loft tests', '--access-key',
                   ACCESS_KEY, '--secret', SECRET_KEY], timeout=timeout)
        self._proxy_start(self.rgw_port, SECRET_KEY)

    def _make_osd(self, timeout):
        osd_uuid = str(uuid.uuid4())
        secret = self._authtool('--gen-print-key').strip()
        new = os.path.join(self.dir, 'osd-new.json')
        with open(new, 'w') as f:
            json.dump({'cephx_secret': secret}, f)
        osd_id = self.ceph('osd', 'new', osd_uuid, '-i', new).strip()
        data = os.path.join(self.dir, 'osd', 'osd.' + osd_id)
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, 'keyring'), 'w') as f:
            f.write('[osd.%s]\n\tkey = %s\n' % (osd_id, secret))
        self._run([os.path.join(BIN, 'ceph-osd'), '-c', self.conf, '-i',
                   osd_id, '--mkfs', '--key', secret, '--osd-uuid', osd_uuid,
                   '--setuser', 'root', '--setgroup', 'root'],
                  timeout=timeout)
        self._daemon('osd.' + osd_id, [os.path.join(BIN, 'ceph-osd'), '-i',
                                       osd_id])

    def objects(self, bucket):
        """The keys radosgw holds in bucket."""
        out = self._run([os.path.join(BIN, 'radosgw-admin'), '-c', self.conf,
                         '-n', 'client.rgw', 'bucket', 'list', '--bucket',
                         bucket, '--max-entries', '100000'])
        return sorted(e['name'] for e in json.loads(out))

    def kill_osd(self, n, timeout=120):
        """kill -9 of osd.n; returns once the monitor has marked it down
        (its peer's heartbeats: osd heartbeat grace)."""
        p, _ = self.procs['osd.%d' % n]
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + timeout
        self._wait('osd.%d marked down' % n,
                   lambda: not [o for o in self._up()['osds']
                                if o['osd'] == n][0]['up'], deadline)

    def log_tail(self):
        out = []
        logdir = os.path.join(self.dir, 'log')
        for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) \
                else []:
            with open(os.path.join(logdir, name), errors='replace') as f:
                out.append('--- %s\n%s' % (name, f.read()[-1500:]))
        return '\n'.join(out)

    def close(self):
        self._proxy_close()
        for p, log in reversed(list(self.procs.values())):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            log.close()
        self.procs = {}
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == '__main__':
    # python3 tests/lib/cephenv.py [OSDS]: start, say how long it took,
    # stop
    import sys
    with Ceph(osds=int(sys.argv[1]) if len(sys.argv) > 1 else 1) as c:
        print('radosgw at %s after %.1f s' % (c.endpoint, c.start_seconds))
