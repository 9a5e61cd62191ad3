"""A private PostgreSQL 15 (Debian's postgresql-15) for tests.

    from pgenv import Postgres

    with Postgres() as pg:
        pg.conninfo            # 'host=127.0.0.1 port=N dbname=loft user=loft'
        pg.psql('SELECT 1')    # -> stdout text
        pg.new_database()      # -> conninfo of a fresh, empty database
        pg.new_database(template='loft_1')   # -> ... of a copy of loft_1
        pg.dump('loft_1')      # -> bytes: pg_dump --data-only of a database

initdb runs in a temporary directory as an unprivileged user (ourselves,
or the 'postgres' account when we are root: PostgreSQL refuses to run as
root), once: later servers copy its data directory (kept in the
temporary directory as loft-pg-template-*). The server listens on a free
loopback port only (and a Unix socket in the directory), trust
authentication for the superuser 'loft' on loopback. close() stops it
(fast shutdown, then SIGKILL if it hangs) and removes the directory.
Nothing of /etc/postgresql is read and no system service is started.

Postgres.available() says whether the binaries are there, so a test can
exit 77 (skipped) with a note on a machine without them.

A synchronous standby and failover (docs/scale-out.md):

    sb = pg.standby('s1')        # pg_basebackup -R, started, streaming
    pg.sync_to('s1')             # synchronous_standby_names = 's1', waits
    pg.kill9_all()               # the primary dies (every process of it)
    sb.promote()                 # pg_ctl promote -w: it takes writes

In a network namespace of the test's own (tests/scaleout/test_pg_partition.py):

    pg = Postgres(netns='loft-part-1', host='10.213.1.2')

runs the server in that namespace (setns before it drops root), listening
on host and its own loopback; conninfo names host, and the test's own
psql and pg_isready reach it through its Unix socket (a path: no network
namespace in the way).

A standby runs with wal_retrieve_retry_interval = 200ms (promotion in
well under a second) and never inherits synchronous_standby_names (a
promoted node with one named and none streaming would hang every write).
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from ports import free_port

PG_BIN = os.environ.get('LOFT_PG_BIN', '/usr/lib/postgresql/15/bin')
SANITIZE = os.environ.get('LOFT_SANITIZE', '0').lower() in ('1', 'on', 'true', 'yes')


class Postgres:
    def __init__(self, start=True, settings=None, port=None, netns=None,
                 host='127.0.0.1'):
        self.netns = netns
        self.host = host
        self.dir = tempfile.mkdtemp(prefix='loft-pg-')
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, 'data')
        self.sock = os.path.join(self.dir, 'sock')
        self.logfile = os.path.join(self.dir, 'postgres.log')
        self.port = None
        self.proc = None
        self.settings = dict(settings or {})
        self._dbs = 0
        self.run_as = None
        if os.getuid() == 0:
            self.run_as = pwd.getpwnam('postgres')
        os.mkdir(self.sock)
        if self.run_as is not None:
            for p in (self.dir, self.sock):
                os.chown(p, self.run_as.pw_uid, self.run_as.pw_gid)
        if start:
            try:
                self.start(port=port)
            except BaseException:
                self.close()
                raise

    @staticmethod
    def available():
        return os.access(os.path.join(PG_BIN, 'postgres'), os.X_OK)

    def _demote(self, netns=None):
        pw = self.run_as
        if pw is None and netns is None:
            return None
        if netns is not None:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)

        def fn():
            if netns is not None:
                fd = os.open('/run/netns/' + netns, os.O_RDONLY)
                if libc.setns(fd, 0x40000000) != 0:    # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), 'setns')
                os.close(fd)
            if pw is not None:
                os.setgid(pw.pw_gid)
                os.setgroups([])
                os.setuid(pw.pw_uid)
        return fn

    def _admin_host(self):
        """Where the test's own psql and pg_isready connect."""
        return self.sock if self.netns else '127.0.0.1'

    def _env(self):
        env = dict(os.environ)
        env['LC_ALL'] = 'C.UTF-8'
        env.pop('PGDATA', None)
        if self.run_as is not None:
            env['HOME'] = self.dir
        return env

    def _run(self, args, timeout=120):
        r = subprocess.run(args, preexec_fn=self._demote(), env=self._env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, text=True)
        if r.returncode != 0:
            raise RuntimeError('%s failed (%d):\n%s' % (args[0], r.returncode,
                                                        r.stdout))
        return r.stdout

    def start(self, timeout=120, port=None):
        """Starts the server (on port when given: a restart keeps it)."""
        if not os.path.exists(self.data):
            self._initdb()
            if self.netns is not None:
                # the namespace's own subnet (the test's veth pair)
                with open(os.path.join(self.data, 'pg_hba.conf'), 'a') as f:
                    f.write('host all all samenet trust\n')
        for attempt in range(5):
            self.port = port or free_port()
            opts = {
                'listen_addresses': '127.0.0.1' if self.netns is None
                else '127.0.0.1,' + self.host,
                'port': str(self.port),
                'unix_socket_directories': self.sock,
                'fsync': 'off',           # tests: a crash of the machine
                'synchronous_commit': 'on',
                'full_page_writes': 'off',
                'max_connections': '200',
                'shared_buffers': '32MB',
                'logging_collector': 'off',
            }
            opts.update(self.settings)
            args = [os.path.join(PG_BIN, 'postgres'), '-D', self.data]
            for k, v in opts.items():
                args += ['-c', '%s=%s' % (k, v)]
            log = open(self.logfile, 'ab')
            self.proc = subprocess.Popen(args,
                                         preexec_fn=self._demote(self.netns),
                                         env=self._env(), stdout=log,
                                         stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(timeout * (4 if SANITIZE else 1)):
                self.psql('SELECT 1', db='postgres')
                if not self._has_db('loft'):
                    self.psql('CREATE DATABASE loft', db='postgres')
                return
            # the port was taken meanwhile (or the start failed): again
            self._stop_proc()
        raise RuntimeError('postgres did not start:\n' + self.log())

    def _initdb(self):
        """self.data as initdb makes it: a copy of a template made once
        per machine, PostgreSQL build and user (initdb takes 1-5 s and
        most of a core; the copy a tenth of that), in the temporary
        directory. The template is made in a directory of its own and
        renamed into place, so tests starting at once never see half of
        one (the loser of a race removes its own)."""
        st = os.stat(os.path.join(PG_BIN, 'postgres'))
        uid = self.run_as.pw_uid if self.run_as is not None else os.getuid()
        tmpl = os.path.join(tempfile.gettempdir(), 'loft-pg-template-%d-%d-%d'
                            % (uid, st.st_ino, int(st.st_mtime)))
        if not os.path.isdir(os.path.join(tmpl, 'data', 'global')):
            made = tempfile.mkdtemp(prefix='loft-pg-template-new-')
            os.chmod(made, 0o755)
            if self.run_as is not None:
                os.chown(made, self.run_as.pw_uid, self.run_as.pw_gid)
            try:
                self._run([os.path.join(PG_BIN, 'initdb'), '-D',
                           os.path.join(made, 'data'), '-U', 'loft', '-E',
                           'UTF8', '--locale=C.UTF-8', '--auth=trust',
                           '--no-sync'])
                os.rename(made, tmpl)
            except OSError:
                pass                  # another test's is there
            finally:
                shutil.rmtree(made, ignore_errors=True)
        self._run(['cp', '-a', os.path.join(tmpl, 'data'), self.data])

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            r = subprocess.run([os.path.join(PG_BIN, 'pg_isready'), '-q',
                                '-h', self._admin_host(), '-p', str(self.port),
                                '-U', 'loft', '-d', 'postgres'],
                               env=self._env())
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def _has_db(self, name):
        out = self.psql("SELECT 1 FROM pg_database WHERE datname = '%s'"
                        % name, db='postgres')
        return out.strip() == '1'

    def conninfo_for(self, db):
        return 'host=%s port=%d dbname=%s user=loft' % (self.host, self.port,
                                                        db)

    @property
    def conninfo(self):
        return self.conninfo_for('loft')

    def psql(self, sql, db='loft'):
        """Runs sql; returns psql's unaligned, tuples-only output."""
        r = subprocess.run([os.path.join(PG_BIN, 'psql'), '-X', '-q', '-A',
                            '-t', '-v', 'ON_ERROR_STOP=1',
                            '-h', self._admin_host(), '-p', str(self.port),
                            '-U', 'loft', '-d', db, '-c', sql],
                           env=self._env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError('psql %r: %s' % (sql, r.stderr))
        return r.stdout

    def dump(self, db='loft'):
        """pg_dump of db's rows (plain text, --data-only): what the
        database keeps, as bytes."""
        r = subprocess.run([os.path.join(PG_BIN, 'pg_dump'), '-a',
                            '-h', self._admin_host(), '-p', str(self.port),
                            '-U', 'loft', '-d', db],
                           env=self._env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            raise RuntimeError('pg_dump %s: %s' % (db, r.stderr))
        return r.stdout

    def new_database(self, template=None):
        """A fresh empty database (or a copy of the database template);
        returns its conninfo."""
        self._dbs += 1
        name = 'loft_%d' % self._dbs
        self.psql('CREATE DATABASE %s' % name +
                  (' TEMPLATE %s' % template if template else ''),
                  db='postgres')
        return self.conninfo_for(name)

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _stop_proc(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)      # fast shutdown
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, kill=False):
        """Stops the server (fast shutdown; kill=True: SIGKILL) and starts
        it again on the same port."""
        if kill:
            self.kill9()
        else:
            self._stop_proc()
        self.start(port=self.port)

    # ---- streaming replication and failover ------------------------------

    def standby(self, name, port=None, timeout=120):
        """A hot standby of this server named name (its application_name),
        cloned with pg_basebackup -R and started (on port when given);
        returns its Postgres. Streaming, asynchronous until sync_to."""
        sb = Postgres(start=False, settings={
            'wal_retrieve_retry_interval': '200ms',
            'primary_conninfo': 'host=127.0.0.1 port=%d user=loft'
                                ' application_name=%s' % (self.port, name),
        })
        try:
            sb._run([os.path.join(PG_BIN, 'pg_basebackup'), '-h', '127.0.0.1',
                     '-p', str(self.port), '-U', 'loft', '-D', sb.data,
                     '-R', '-X', 'stream', '--no-sync',
                     '--checkpoint=fast'], timeout=timeout)
            # what the primary said of its own standbys is not the
            # standby's: once promoted it has none until one streams
            auto = os.path.join(sb.data, 'postgresql.auto.conf')
            with open(auto) as f:
                lines = [l for l in f
                         if not l.startswith('synchronous_standby_names')]
            with open(auto, 'w') as f:
                f.writelines(lines)
            sb.start(timeout=timeout, port=port)
        except BaseException:
            sb.close()
            raise
        return sb

    def sync_to(self, name, timeout=120):
        """Makes name this server's synchronous standby (ALTER SYSTEM,
        reload) and waits until pg_stat_replication says it is."""
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '%s'" % name)
        self.psql('SELECT pg_reload_conf()')
        deadline = time.monotonic() + timeout * (4 if SANITIZE else 1)
        while time.monotonic() < deadline:
            out = self.psql("SELECT sync_state FROM pg_stat_replication"
                            " WHERE application_name = '%s'" % name)
            if out.strip() == 'sync':
                return
            time.sleep(0.05)
        raise RuntimeError('standby %s not synchronous:\n%s' % (name,
                                                               self.log()))

    def promote(self, timeout=120):
        """pg_ctl promote -w: returns once the server takes writes."""
        self._run([os.path.join(PG_BIN, 'pg_ctl'), 'promote', '-w', '-t',
                   str(timeout), '-D', self.data], timeout=timeout + 10)

    def pids(self):
        """The postmaster and every process it started."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        out = [self.proc.pid]
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    st = f.read()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces
            if int(st[st.rindex(')') + 2:].split()[1]) == self.proc.pid:
                out.append(int(d))
        return out

    def kill9_all(self):
        """kill -9 of the whole server at once (a machine that dies):
        the postmaster first, so it restarts nothing, then each child."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.kill9()

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self):
        self._stop_proc()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
