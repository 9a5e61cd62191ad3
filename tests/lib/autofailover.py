"""pg_auto_failover for tests: a monitor and data nodes, private.

    from autofailover import Formation

    with Formation() as f:                 # the monitor, running
        a = f.add_node('n1')               # the first: the primary
        b = f.add_node('n2')               # cloned from it: the standby
        f.wait_states({'n1': 'primary', 'n2': 'secondary'})
        f.conninfo()   # 'host=127.0.0.1,127.0.0.1 port=P1,P2 dbname=loft
                       #  user=loft target_session_attrs=read-write'
        a.kill9()      # the machine dies: its keeper and its postgres
        f.wait_states({'n2': 'wait_primary'})   # pg_auto_failover promotes
        a.start()      # the keeper again: the monitor makes it a standby
        f.node_state() # {'n1': ('secondary', 'secondary'), ...}

Debian's pg-auto-failover-cli (pg_autoctl) and postgresql-15-auto-failover
(the monitor's extension), PostgreSQL 15 from tests/lib/pgenv.py's PG_BIN.
Everything runs as the 'postgres' account when we are root (as pgenv.py
does), in a temporary directory: pg_autoctl's configuration and state
(XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR), the data directories
and the Unix sockets (PG_REGRESS_SOCK_DIR); every server listens on
127.0.0.1 only, on free ports, trust authentication on loopback. Each
`pg_autoctl run` (a keeper and the postgres it supervises) is a process
group of its own, so kill9() ends the node at once, as a dead machine.

The settings are those of docs/scale-out.md "Failover": every data node
has wal_retrieve_retry_interval = 200ms; the monitor's health checks
(pgautofailover.health_check_period, node_considered_unhealthy_timeout,
primary_demote_timeout, ...) are MONITOR_SETTINGS (shorter than the
defaults, which take 20-50 s to fail over). Data nodes run with fsync =
off and small shared_buffers (tests; pg_autoctl would give each a
quarter of the machine's memory), full_page_writes on (pg_rewind).

LOFT_PAF_KEEP=1 keeps the directory (the nodes' logs) after close().

Formation.available() says whether pg_autoctl and the extension are
installed (scripts/deps.sh scaleout), so a test can exit 77.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from pgenv import PG_BIN, SANITIZE
from ports import free_port

PG_AUTOCTL = os.environ.get('LOFT_PG_AUTOCTL', '/usr/bin/pg_autoctl')
EXTENSION = '/usr/share/postgresql/15/extension/pgautofailover.control'

# the monitor (postgresql.auto.conf of its data directory)
MONITOR_SETTINGS = {
    'pgautofailover.health_check_period': '1000',       # ms; default 5 s
    'pgautofailover.health_check_timeout': '1000',      # default 5 s
    'pgautofailover.health_check_max_retries': '1',     # default 2
    'pgautofailover.health_check_retry_delay': '500',   # default 2 s
    # no keeper report for this long and a failed check: unhealthy
    'pgautofailover.node_considered_unhealthy_timeout': '4000',  # 20 s
    # an unreachable old primary: how long the standby waits before it
    # takes writes (the old one's keeper demotes itself meanwhile)
    'pgautofailover.primary_demote_timeout': '5000',    # default 30 s
    'pgautofailover.startup_grace_period': '1000',      # default 10 s
    'shared_buffers': '32MB',
    'fsync': 'off',
}
# every data node (postgresql.auto.conf: pg_basebackup copies it)
NODE_SETTINGS = {
    'wal_retrieve_retry_interval': '200ms',
    'shared_buffers': '32MB',
    'fsync': 'off',
    # full_page_writes stays on: pg_rewind needs it on the new primary
    # (without it the old primary is cloned anew, pg_basebackup waiting
    # out a spread checkpoint: 30-50 s here instead of 1-3)
    'max_connections': '200',
}


def _write_auto_conf(pgdata, settings):
    with open(os.path.join(pgdata, 'postgresql.auto.conf'), 'a') as f:
        for k, v in settings.items():
            f.write("%s = '%s'\n" % (k, v))


class Node:
    """One pg_autoctl-managed server: a monitor or a data node."""

    def __init__(self, formation, name, port):
        self.f = formation
        self.name = name
        self.port = port
        self.pgdata = os.path.join(formation.dir, name)
        self.logfile = os.path.join(formation.dir, name + '.log')
        self.proc = None

    def start(self):
        """pg_autoctl run: the keeper, which starts postgres."""
        log = open(self.logfile, 'ab')
        self.proc = subprocess.Popen(
            [PG_AUTOCTL, 'run', '--pgdata', self.pgdata],
            preexec_fn=self.f._demote, env=self.f.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def pids(self):
        """The keeper and every process below it."""
        if self.proc is None:
            return []
        kids = {}
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as fh:
                    st = fh.read()
            except OSError:
                continue
            ppid = int(st[st.rindex(')') + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    def kill9(self):
        """The machine dies: SIGKILL to the keeper's process group and to
        every process below it (postgres and its backends) at once."""
        if self.proc is None:
            return
        pids = self.pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None
        # wait until the postmaster is gone (its port free again)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                os.path.exists('/proc/%d' % p) for p in pids):
            time.sleep(0.02)

    def stop(self):
        """pg_autoctl's own shutdown (SIGTERM: fast), else SIGKILL."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill9()
            return
        pids = self.pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def psql(self, sql, db='loft', timeout=30):
        return self.f.psql(self.port, sql, db=db, timeout=timeout)

    def ready(self):
        """Whether its postgres answers (pg_isready)."""
        return subprocess.run([os.path.join(PG_BIN, 'pg_isready'), '-q',
                               '-h', self.f.sock, '-p', str(self.port)],
                              env=self.f.env).returncode == 0

    def log(self):
        try:
            with open(self.logfile, errors='replace') as fh:
                return fh.read()
        except OSError:
            return ''


class Formation:
    def __init__(self, monitor_settings=None):
        self.dir = tempfile.mkdtemp(prefix='loft-paf-')
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, 'sock')
        self.run_as = pwd.getpwnam('postgres') if os.getuid() == 0 else None
        os.mkdir(self.sock)
        for sub in ('config', 'share', 'run'):
            os.mkdir(os.path.join(self.dir, sub), 0o700)
        if self.run_as is not None:
            for root, dirs, _ in os.walk(self.dir):
                os.chown(root, self.run_as.pw_uid, self.run_as.pw_gid)
        self.env = dict(os.environ)
        self.env.update({
            'HOME': self.dir, 'LC_ALL': 'C.UTF-8',
            'XDG_CONFIG_HOME': os.path.join(self.dir, 'config'),
            'XDG_DATA_HOME': os.path.join(self.dir, 'share'),
            'XDG_RUNTIME_DIR': os.path.join(self.dir, 'run'),
            'PG_REGRESS_SOCK_DIR': self.sock,
            'PGHOST': self.sock,
            # pg_autoctl finds pg_ctl on PATH (and looks at every entry)
            'PATH': PG_BIN + ':/usr/bin:/bin',
        })
        for k in ('PGDATA', 'PGPORT', 'PGUSER', 'PGDATABASE'):
            self.env.pop(k, None)
        self.nodes = {}
        self.monitor = None
        self.host = '127.0.0.1'
        self.dbname = 'loft'
        try:
            self._create_monitor(monitor_settings or MONITOR_SETTINGS)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def available():
        return (os.access(PG_AUTOCTL, os.X_OK) and os.path.exists(EXTENSION)
                and os.access(os.path.join(PG_BIN, 'postgres'), os.X_OK))

    def _demote(self):
        if self.run_as is not None:
            os.setgid(self.run_as.pw_gid)
            os.setgroups([])
            os.setuid(self.run_as.pw_uid)

    def _autoctl(self, *args, timeout=300):
        r = subprocess.run([PG_AUTOCTL] + list(args), preexec_fn=self._demote,
                           env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout * (4 if SANITIZE else 1),
                           cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError('pg_autoctl %s failed (%d):\n%s'
                               % (' '.join(args[:2]), r.returncode, r.stdout))
        return r.stdout

    def psql(self, port, sql, db='loft', timeout=30):
        """sql on the server at port (its Unix socket, as postgres)."""
        r = subprocess.run([os.path.join(PG_BIN, 'psql'), '-X', '-q', '-A',
                            '-t', '-v', 'ON_ERROR_STOP=1', '-h', self.sock,
                            '-p', str(port), '-U', 'postgres', '-d', db,
                            '-c', sql], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError('psql %r: %s' % (sql, r.stderr))
        return r.stdout

    def _create_monitor(self, settings):
        self.monitor = Node(self, 'monitor', free_port())
        self._autoctl('create', 'monitor', '--pgdata', self.monitor.pgdata,
                      '--pgport', str(self.monitor.port),
                      '--pgctl', os.path.join(PG_BIN, 'pg_ctl'),
                      '--hostname', self.host, '--auth', 'trust', '--no-ssl')
        self._autoctl('config', 'set', '--pgdata', self.monitor.pgdata,
                      'postgresql.listen_addresses', self.host)
        _write_auto_conf(self.monitor.pgdata, settings)
        self.monitor.start()
        self._wait(lambda: self._monitor_ready(), 'the monitor')
        self.monitor_uri = ('postgres://autoctl_node@%s:%d/pg_auto_failover'
                            '?sslmode=disable' % (self.host, self.monitor.port))

    def _monitor_ready(self):
        try:
            self.psql(self.monitor.port, 'SELECT 1 FROM pgautofailover.node'
                      ' LIMIT 1', db='pg_auto_failover')
            return True
        except Exception:
            return False

    def _wait(self, cond, what, bound=120):
        deadline = time.monotonic() + bound * (4 if SANITIZE else 1)
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        raise RuntimeError('%s not ready within %d s:\n%s' % (
            what, bound, self.logs()))

    def add_node(self, name, settings=None):
        """A data node named name (pg_autoctl create postgres), started.
        The first is the primary (a database loft and a superuser loft
        for loftd); the next ones are cloned from it."""
        node = Node(self, name, free_port())
        first = not self.nodes
        self._autoctl('create', 'postgres', '--pgdata', node.pgdata,
                      '--pgport', str(node.port), '--listen', self.host,
                      '--hostname', self.host, '--name', name,
                      '--dbname', self.dbname, '--monitor', self.monitor_uri,
                      '--pgctl', os.path.join(PG_BIN, 'pg_ctl'),
                      '--auth', 'trust', '--no-ssl')
        if first:
            _write_auto_conf(node.pgdata, dict(NODE_SETTINGS,
                                               **(settings or {})))
        self.nodes[name] = node
        node.start()
        if first:
            self.wait_states({name: 'single'})
            self._wait(node.ready, 'postgres of ' + name)
            node.psql('CREATE ROLE loft SUPERUSER LOGIN', db='postgres')
        return node

    def node_state(self):
        """{name: (reported state, goal state)} from the monitor."""
        out = self.psql(self.monitor.port,
                        'SELECT nodename, reportedstate, goalstate'
                        ' FROM pgautofailover.node', db='pg_auto_failover')
        states = {}
        for line in out.splitlines():
            if line:
                n, rep, goal = line.split('|')
                states[n] = (rep, goal)
        return states

    def wait_states(self, want, bound=120):
        """Until every named node reports (and has as its goal) its state."""
        def ok():
            try:
                st = self.node_state()
            except Exception:
                return False
            return all(st.get(n) == (s, s) for n, s in want.items())
        self._wait(ok, 'states %r' % want, bound)

    def events(self, limit=40):
        """The monitor's last events (what it decided, and why)."""
        return self.psql(self.monitor.port,
                         'SELECT eventtime, nodename, reportedstate,'
                         ' goalstate, description FROM pgautofailover.event'
                         ' ORDER BY eventid DESC LIMIT %d' % limit,
                         db='pg_auto_failover')

    def uri(self):
        """pg_autoctl show uri --formation default: the application's
        string (a multi-host URI with target_session_attrs=read-write)."""
        return self._autoctl('show', 'uri', '--pgdata', self.monitor.pgdata,
                             '--formation', 'default').strip()

    def conninfo(self, user='loft'):
        """The [store] postgres string: every data node, the writable one
        found by libpq."""
        nodes = list(self.nodes.values())
        return ('host=%s port=%s dbname=%s user=%s'
                ' target_session_attrs=read-write' % (
                    ','.join(self.host for _ in nodes),
                    ','.join(str(n.port) for n in nodes), self.dbname, user))

    def logs(self):
        parts = []
        for n in [self.monitor] + list(self.nodes.values()):
            if n is not None:
                parts.append('--- %s\n%s' % (n.name, n.log()[-4000:]))
        return '\n'.join(parts)

    def close(self):
        for n in list(self.nodes.values()) + [self.monitor]:
            if n is not None:
                try:
                    n.stop()
                except Exception:
                    pass
        if os.environ.get('LOFT_PAF_KEEP'):
            print('pg_auto_failover directory kept: %s' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
