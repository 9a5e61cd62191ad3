"""A private loftd for tests: free ports, temp data dir, self-signed cert.

    from loftenv import Loft

    with Loft() as env:                       # users alice@, bob@example.test
        imap = env.imap_login('alice@example.test')
        ...
        env.restart()                         # same ports, same data
        rc, out, err = env.loftctl('user', 'list')

The binaries come from $LOFTD and $LOFTCTL (set by ctest), falling back to
$LOFT_BUILD/loftd or build/loftd. Under LOFT_SANITIZE=1 every timeout is
multiplied, since ASan builds start and run slower.

Never uses the demo ports: every port is found by binding port 0.
"""

import atexit
import imaplib
import os
import re
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

from ports import free_port  # noqa: F401 (re-exported for tests)

SRC = os.environ.get('LOFT_SRC',
                     os.path.dirname(os.path.dirname(os.path.dirname(
                         os.path.abspath(__file__)))))
BUILD = os.environ.get('LOFT_BUILD', os.path.join(SRC, 'build'))
LOFTD = os.environ.get('LOFTD', os.path.join(BUILD, 'loftd'))
LOFTCTL = os.environ.get('LOFTCTL', os.path.join(BUILD, 'loftctl'))
SANITIZE = os.environ.get('LOFT_SANITIZE', '0').lower() in ('1', 'on', 'true', 'yes')
# Scale for every wait: ASan+UBSan builds are several times slower.
SLOW = 4 if SANITIZE else 1


def load_scale():
    """How much slower than usual a latency bound may be now: 1 on a
    machine with at most two runnable tasks per core, else the 1-minute
    load per core over 2 (a CPU-bound wait stretches about that much).
    For the few tests that bound a latency, never for waits (those wait
    for their condition)."""
    per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return max(1.0, per_core / 2)

PROTOCOLS = ('imap', 'imaps', 'pop3', 'pop3s', 'lmtp', 'http', 'https',
             'metrics')
DOMAIN = 'example.test'
DEFAULT_USERS = {
    'alice@example.test': 'tea-party-rabbit-hole',
    'bob@example.test': 'can-we-fix-it-yes',
}

_cert_dir = None

# LOFT_TEST_BACKEND=postgres: every Loft of this process runs on the
# postgres store backend (docs/scale-out.md), each with a database of its
# own on one private PostgreSQL (tests/lib/pgenv.py) started on first use.
BACKEND = os.environ.get('LOFT_TEST_BACKEND', 'sqlite')
_pg = None


_schema_db = {}


def _postgres():
    global _pg
    if _pg is None:
        from pgenv import Postgres
        _pg = Postgres()
        atexit.register(_pg.close)
    return _pg


def _store_database(loftctl):
    """A new database for one Loft: a copy of one the first of this
    process got its schemas in (the store's and the accounts', made by
    `loftctl retention run` as a first loftd would: 1-3 s of DDL each
    time otherwise). Empty of rows but the schema versions."""
    pg = _postgres()
    name = _schema_db.get(loftctl)
    if name is None:
        conninfo = pg.new_database()
        d = tempfile.mkdtemp(prefix='loft-schema-')
        try:
            cfg = os.path.join(d, 'loftd.conf')
            with open(cfg, 'w') as f:
                f.write('data_dir = %s\n[store]\nbackend = postgres\n'
                        'postgres = %s\nblob_dir = %s\n'
                        % (os.path.join(d, 'data'), conninfo,
                           os.path.join(d, 'blobs')))
            r = subprocess.run([loftctl, '--config', cfg, 'retention', 'run'],
                               capture_output=True, text=True,
                               timeout=120 * SLOW)
            if r.returncode != 0:
                raise RuntimeError('loftctl retention run on an empty'
                                   ' database: %s%s' % (r.stdout, r.stderr))
        finally:
            shutil.rmtree(d, True)
        name = re.search(r'dbname=(\S+)', conninfo).group(1)
        _schema_db[loftctl] = name
    return pg.new_database(template=name)




def test_cert():
    """(cert, key) paths of a self-signed localhost cert, one per process."""
    global _cert_dir
    if _cert_dir is None:
        _cert_dir = tempfile.mkdtemp(prefix='loft-cert-')
        atexit.register(shutil.rmtree, _cert_dir, True)
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
             '-days', '30', '-subj', '/CN=localhost',
             '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
             '-keyout', os.path.join(_cert_dir, 'key.pem'),
             '-out', os.path.join(_cert_dir, 'cert.pem')],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (os.path.join(_cert_dir, 'cert.pem'),
            os.path.join(_cert_dir, 'key.pem'))


def client_tls_context():
    """A client TLS context that accepts the test's self-signed cert."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Loft:
    """One private loftd. Use as a context manager, or call start()/close().

    users:  {address: password} created with loftctl before the start
            (default DEFAULT_USERS); the domain example.test always exists.
    extra:  {section: {key: value}} merged into the generated config (a
            value of None removes the key; section '' is the top level).
    start:  start loftd in __enter__ (False: only write config and users).
    binaries: (loftd, loftctl) of another build (bench/privsep.py);
            default $LOFTD and $LOFTCTL.
    """

    def __init__(self, users=None, extra=None, start=True, binaries=None):
        self.loftd_bin, self.loftctl_bin = binaries or (LOFTD, LOFTCTL)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.dir = tempfile.mkdtemp(prefix='loft-test-')
        # A `user = ...` run: that user must reach data_dir inside.
        os.chmod(self.dir, 0o755)
        self.data_dir = os.path.join(self.dir, 'data')
        self.config_path = os.path.join(self.dir, 'loftd.conf')
        self.log_path = os.path.join(self.dir, 'loftd.log')
        self.lmtp_socket = os.path.join(self.dir, 'lmtp.sock')
        self.ports = {p: free_port() for p in PROTOCOLS}
        self.proc = None
        self._port_retries = 0
        self._hosts = {}           # names in self.ports not on 127.0.0.1
        self._start = start
        self._log = None
        self.cert, self.key = test_cert()
        self.sections = self._default_sections()
        for sec, kv in (extra or {}).items():
            dst = self.sections.setdefault(sec, {})
            for k, v in kv.items():
                if v is None:
                    dst.pop(k, None)
                else:
                    dst[k] = v
        # Listeners a test chose itself (e.g. [smtp] listen on a
        # free_port() of its own) move with the others when a start
        # finds a port taken: read them back with port(section) once
        # loftd runs.
        for sec, kv in self.sections.items():
            if sec in self.ports or not isinstance(kv.get('listen'), str):
                continue
            m = re.search(r'\b127\.0\.0\.1:(\d+)\b', kv['listen'])
            if m:
                self.ports[sec] = int(m.group(1))
        self.write_config()
        self._setup_accounts()

    # ---- config -------------------------------------------------------

    def _default_sections(self):
        p = self.ports
        return {
            '': {'data_dir': self.data_dir, 'hostname': 'loft.example.test',
                 'log_level': 'debug'},
            'tls': {'cert': self.cert, 'key': self.key},
            'imap': {'listen': '127.0.0.1:%d' % p['imap']},
            'imaps': {'listen': '127.0.0.1:%d' % p['imaps']},
            'pop3': {'listen': '127.0.0.1:%d' % p['pop3']},
            'pop3s': {'listen': '127.0.0.1:%d' % p['pop3s']},
            'lmtp': {'listen': '127.0.0.1:%d, unix:%s'
                     % (p['lmtp'], self.lmtp_socket)},
            'http': {'listen': '127.0.0.1:%d' % p['http']},
            'https': {'listen': '127.0.0.1:%d' % p['https']},
            'metrics': {'listen': '127.0.0.1:%d' % p['metrics']},
            # Cheap argon2: tests verify passwords many times.
            'auth': {'argon2_t_cost': '1', 'argon2_m_cost': '64',
                     'argon2_parallelism': '1'},
            # [store] before [limits]: tests that append a key to the
            # file (test_daemon) find the same last section on both
            # backends
            **self._store_section(),
            'limits': {'io_threads': '2', 'worker_threads': '4'},
        }

    def _store_section(self):
        if BACKEND != 'postgres':
            return {}
        return {'store': {'backend': 'postgres',
                          'postgres': _store_database(self.loftctl_bin),
                          'blob_dir': os.path.join(self.dir, 'blobs')}}

    def write_config(self):
        """Writes self.sections to self.config_path (call after editing)."""
        lines = []
        for sec, kv in self.sections.items():
            if sec:
                lines.append('\n[%s]' % sec)
            for k, v in kv.items():
                lines.append('%s = %s' % (k, v))
        with open(self.config_path, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def port(self, proto):
        """The port of a protocol, or of a section whose listen line the
        test gave (its first 127.0.0.1 address): after a start, since a
        start that finds a port taken moves every one."""
        return self.ports[proto]

    # ---- accounts -----------------------------------------------------

    def loftctl(self, *args, input=None, timeout=60):
        """Runs loftctl --config CFG ARGS; returns (rc, stdout, stderr)."""
        r = subprocess.run([self.loftctl_bin, '--config', self.config_path] +
                           list(args),
                           input=input, capture_output=True, text=True,
                           timeout=timeout * SLOW)
        return r.returncode, r.stdout, r.stderr

    def add_user(self, address, password):
        rc, out, err = self.loftctl('user', 'add', address,
                                    input=password + '\n')
        if rc != 0:
            raise RuntimeError('loftctl user add %s: %s%s' % (address, out, err))
        self.users[address] = password

    def _setup_accounts(self):
        rc, out, err = self.loftctl('domain', 'add', DOMAIN)
        store = self.sections.get('store', {})
        if (rc != 0 and 'already exists' in out + err and
                (store.get('backend') == 'postgres' or
                 'postgres' in self.sections.get('auth', {}))):
            # a second node on the same PostgreSQL: the accounts are
            # there too (docs/scale-out.md), made by the first node
            return
        if rc != 0:
            raise RuntimeError('loftctl domain add: %s%s' % (out, err))
        for address, password in list(self.users.items()):
            self.add_user(address, password)

    def accounts_sql(self, sql, params=()):
        """Runs one statement on this node's accounts (data_dir/accounts.db,
        or the loft_auth schema of its PostgreSQL database when the store
        is there: docs/scale-out.md "Accounts"); ? parameters, integers
        and strings only on postgres. Returns the rows (integers as int)."""
        store = self.sections.get('store', {})
        if store.get('backend') != 'postgres':
            import sqlite3
            db = sqlite3.connect(os.path.join(self.data_dir, 'accounts.db'),
                                 timeout=60)
            with db:
                rows = list(db.execute(sql, params))
            db.close()
            return rows
        return self._pg_sql('SET search_path = loft_auth; ' + sql, params)

    def pg_store_sql(self, sql, params=()):
        """Runs one statement on this node's PostgreSQL store database
        (backend = postgres only); as accounts_sql."""
        assert self.sections.get('store', {}).get('backend') == 'postgres'
        return self._pg_sql(sql, params)

    def _pg_sql(self, sql, params):
        parts = sql.split('?')
        assert len(parts) == len(params) + 1 and \
            all(isinstance(v, (int, str)) for v in params), (sql, params)

        def literal(v):
            if isinstance(v, int):
                return '%d' % v
            return "'%s'" % v.replace("'", "''")
        text = parts[0] + ''.join(literal(v) + parts[i + 1]
                                  for i, v in enumerate(params))
        conninfo = self.sections['store']['postgres']
        dbname = re.search(r'dbname=(\S+)', conninfo).group(1)
        out = _postgres().psql(text, db=dbname)
        return [tuple(int(f) if re.fullmatch(r'-?\d+', f) else f
                      for f in line.split('|'))
                for line in out.splitlines() if line]

    def accounts_bytes(self):
        """The accounts as stored, as bytes: data_dir/accounts.db and its
        -wal and -journal files, or on postgres a pg_dump of the node's
        database's rows (tests that a secret is never kept in clear)."""
        store = self.sections.get('store', {})
        if store.get('backend') != 'postgres':
            db = b''
            for name in sorted(os.listdir(self.data_dir)):
                if name == 'accounts.db' or name.startswith('accounts.db-'):
                    with open(os.path.join(self.data_dir, name), 'rb') as f:
                        db += f.read()
            return db
        dbname = re.search(r'dbname=(\S+)', store['postgres']).group(1)
        return _postgres().dump(dbname)

    # ---- process ------------------------------------------------------

    def start(self, timeout=30):
        """Starts loftd and waits until it has logged "loftd ready" (every
        listener is bound by then)."""
        assert self.proc is None
        log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen([self.loftd_bin, '--config',
                                      self.config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        # loftd logs "loftd ready" after every listener is bound and
        # listening, so no probe connection is needed (none shows up in
        # the server's log or counts against its per-address limit).
        deadline = time.monotonic() + timeout * SLOW
        while b'loftd ready' not in self._log_bytes()[log_start:]:
            if self.proc.poll() is not None:
                self._reap()
                tail = self._log_bytes()[log_start:]
                if b'Address already in use' in tail and self._port_retries < 5:
                    # A parallel test took a port between our check and
                    # loftd's bind: move to new ports and try again.
                    self._port_retries += 1
                    self._move_ports()
                    return self.start(timeout)
                raise RuntimeError('loftd exited at start:\n' + self.log())
            if time.monotonic() > deadline:
                raise RuntimeError('loftd not ready:\n' + self.log())
            time.sleep(0.02)

    def add_listen(self, section, host, name=None):
        """Adds a listener on host (e.g. a non-loopback address) to
        section's listen line; returns its name in self.ports (read the
        port after start: a retry moves it with the others)."""
        name = name or '%s@%s' % (section, host)
        self.ports[name] = free_port(host)
        self._hosts[name] = host
        self.sections[section]['listen'] += ', %s:%d' % (host, self.ports[name])
        self.write_config()
        return name

    def _move_ports(self):
        """Gives every protocol a new free port, in self.ports and in the
        listen lines of the config."""
        old_ports = dict(self.ports)
        self.ports = {proto: free_port(self._hosts.get(proto, '127.0.0.1'))
                      for proto in old_ports}
        by_port = {}
        for proto, old in old_ports.items():
            by_port.setdefault(old, self.ports[proto])
        # One pass over each value, so a port just given out is never
        # moved again by a later replacement; a section named after a
        # protocol takes that protocol's new port (two protocols that
        # were given the same port part here).
        pattern = re.compile(r'(\d+\.\d+\.\d+\.\d+):(\d+)\b')
        for name, kv in self.sections.items():
            def move(m, name=name):
                host, port = m.group(1), int(m.group(2))
                if old_ports.get(name) == port and host == '127.0.0.1':
                    port = self.ports[name]
                else:
                    port = by_port.get(port, port)
                return '%s:%d' % (host, port)
            for k, v in kv.items():
                if isinstance(v, str):
                    kv[k] = pattern.sub(move, v)
        self.write_config()

    def listening(self):
        """Protocols of self.ports that have a section with a listen key."""
        return [p for p in PROTOCOLS
                if 'listen' in self.sections.get(p, {})
                and ('127.0.0.1:%d' % self.ports[p]) in self.sections[p]['listen']]

    @staticmethod
    def _accepts(port):
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return True
        except OSError:
            return False

    def _reap(self):
        if self._log:
            self._log.close()
            self._log = None
        self.proc = None

    def stop(self, timeout=30):
        """SIGTERM and wait; returns loftd's exit status."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._reap()
            raise RuntimeError('loftd did not stop on SIGTERM:\n' + self.log())
        self._reap()
        return rc

    def kill9(self):
        """SIGKILL, as a crash would."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._reap()

    def restart(self, kill=False):
        """Stops (SIGKILL if kill) and starts again on the same ports."""
        if kill:
            self.kill9()
        else:
            self.stop()
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def children(self):
        """loftd's processes below the parent: {'auth': pid, 'mail': pid}
        (from /proc; names are the children's comm, loftd-<name>)."""
        out = {}
        if self.proc is None:
            return out
        try:
            with open('/proc/%d/task/%d/children' % (self.proc.pid,
                                                     self.proc.pid)) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return out
        for pid in pids:
            try:
                with open('/proc/%d/comm' % pid) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm.startswith('loftd-'):
                out[comm[len('loftd-'):]] = pid
        return out

    def serving_pid(self):
        """The process that serves the connections (the mail process
        under privilege separation), for memory figures: the parent's
        RSS says nothing about sessions."""
        return self.children().get('mail', self.proc.pid)

    def _log_bytes(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read()
        except FileNotFoundError:
            return b''

    def log(self):
        """Everything loftd wrote to stderr so far (all runs)."""
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def close(self):
        """Stops loftd if running and removes the temp dir."""
        try:
            if self.running():
                self.stop()
            elif self.proc is not None:
                self._reap()
        finally:
            if os.environ.get('LOFT_KEEP_TMP'):
                print('loftenv: kept', self.dir)
            else:
                shutil.rmtree(self.dir, True)

    def __enter__(self):
        if self._start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- clients ------------------------------------------------------

    def imap(self, tls=False, timeout=20):
        """imaplib client; tls=True uses IMAPS (implicit TLS)."""
        if tls:
            return imaplib.IMAP4_SSL('127.0.0.1', self.ports['imaps'],
                                     ssl_context=client_tls_context(),
                                     timeout=timeout * SLOW)
        return imaplib.IMAP4('127.0.0.1', self.ports['imap'],
                             timeout=timeout * SLOW)

    def imap_login(self, address, password=None, tls=False):
        c = self.imap(tls=tls)
        c.login(address, password if password is not None else self.users[address])
        return c

    def http(self, tls=False, timeout=20, proto=None):
        """http.client connection to [http] (tls: [https]; proto: any
        listener by name, e.g. 'metrics')."""
        import http.client
        proto = proto or ('https' if tls else 'http')
        if proto == 'https':
            return http.client.HTTPSConnection(
                '127.0.0.1', self.ports['https'], timeout=timeout * SLOW,
                context=client_tls_context())
        return http.client.HTTPConnection('127.0.0.1', self.ports[proto],
                                          timeout=timeout * SLOW)

    def pop3(self, tls=False, timeout=20):
        """poplib client; tls=True uses POP3S (implicit TLS)."""
        if tls:
            return poplib.POP3_SSL('127.0.0.1', self.ports['pop3s'],
                                   context=client_tls_context(),
                                   timeout=timeout * SLOW)
        return poplib.POP3('127.0.0.1', self.ports['pop3'],
                           timeout=timeout * SLOW)

    def pop3_login(self, address, password=None, tls=False):
        c = self.pop3(tls=tls)
        c.user(address)
        c.pass_(password if password is not None else self.users[address])
        return c

    def lmtp(self, unix=False, timeout=20):
        """smtplib.LMTP client, LHLO not sent yet; unix=True uses the socket."""
        if unix:
            c = smtplib.LMTP(self.lmtp_socket, timeout=timeout * SLOW)
        else:
            c = smtplib.LMTP('127.0.0.1', self.ports['lmtp'],
                             timeout=timeout * SLOW)
        return c

    def raw(self, proto, tls=None, timeout=20):
        """A plain socket to proto's port (wrapped in TLS for imaps/pop3s
        unless tls=False)."""
        s = socket.create_connection(('127.0.0.1', self.ports[proto]),
                                     timeout=timeout * SLOW)
        if tls is None:
            tls = proto.endswith('s')
        if tls:
            s = client_tls_context().wrap_socket(s, server_hostname='localhost')
        return s


class Results:
    """Counts checks and prints the closing "N passed, N failed" line.

        r = Results()
        r.check('greeting', line.startswith(b'* OK'), line)
        ...
        sys.exit(r.finish())
    """

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=''):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print('FAIL %s %s' % (name, detail), flush=True)
        return cond

    def finish(self):
        print('%d passed, %d failed' % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1
