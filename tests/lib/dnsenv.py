"""A private DNS for tests: Debian's unbound on a loopback port, answering
from local data (no network), started and stopped by the test.

    from dnsenv import Unbound
    with Unbound({'example.org.': ['TXT "v=spf1 -all"', 'MX 10 mx.example.org.'],
                  'mx.example.org.': ['A 127.0.0.1']},
                 dead=['tempfail.example']) as dns:
        env = Loft(extra={'dns': {'resolvers': dns.address,
                                  'trust_anchor': 'none'}})

dead: zones delegated to a port nobody answers on (lookups time out:
SERVFAIL, a temporary error for the caller).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from ports import free_port
from loftenv import SLOW

UNBOUND = shutil.which('unbound') or '/usr/sbin/unbound'


def txt(data):
    """A TXT rdata of any length: quoted strings of at most 255 octets."""
    parts = [data[i:i + 255] for i in range(0, len(data), 255)] or ['']
    return 'TXT ' + ' '.join('"%s"' % p.replace('"', '\\"') for p in parts)


class Unbound:
    def __init__(self, records, dead=()):
        self.dir = tempfile.mkdtemp(prefix='loft-dns-')
        self.port = free_port()
        self.dead_port = free_port()
        self.address = '127.0.0.1:%d' % self.port
        self.proc = None
        zones = set()
        lines = [
            'server:',
            '  interface: 127.0.0.1@%d' % self.port,
            '  port: %d' % self.port,
            '  do-daemonize: no',
            '  username: ""',
            '  chroot: ""',
            '  directory: "%s"' % self.dir,
            '  pidfile: "%s/unbound.pid"' % self.dir,
            '  use-syslog: no',
            '  logfile: ""',
            '  verbosity: 0',
            '  access-control: 127.0.0.0/8 allow',
            '  do-not-query-localhost: no',
            '  module-config: "iterator"',
            '  num-threads: 1',
            '  so-reuseport: no',
            '  outgoing-range: 64',
            '  incoming-num-tcp: 4',
            '  outgoing-num-tcp: 4',
            '  msg-cache-size: 1m',
            '  rrset-cache-size: 1m',
            '  infra-host-ttl: 1',
            '  cache-max-ttl: 1',
            '  cache-max-negative-ttl: 1',
        ]
        for name, rrs in records.items():
            if not name.endswith('.'):
                name += '.'
            zones.add(name)
            for rr in rrs:
                lines.append("  local-data: '%s 60 IN %s'" % (name, rr))
        for z in sorted(zones):
            # names without records of a type answer NODATA; unknown
            # names under them NXDOMAIN
            lines.append('  local-zone: "%s" static' % z)
        # everything else is unknown: never the internet
        lines.append('  local-zone: "." static')
        for d in dead:
            lines += ['  local-zone: "%s." transparent' % d.rstrip('.')]
        for d in dead:
            lines += ['stub-zone:', '  name: "%s."' % d.rstrip('.'),
                      '  stub-addr: 127.0.0.1@%d' % self.dead_port]
        self.conf = os.path.join(self.dir, 'unbound.conf')
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def start(self):
        self.log = open(os.path.join(self.dir, 'unbound.log'), 'wb')
        self.proc = subprocess.Popen([UNBOUND, '-d', '-c', self.conf],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('unbound exited:\n' + self.output())
            if self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError('unbound did not answer:\n' + self.output())

    def _answers(self):
        # a minimal query for "." NS over UDP
        q = b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01'
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ('127.0.0.1', self.port))
            return s.recv(512)[:2] == b'\x12\x34'
        except OSError:
            return False
        finally:
            s.close()

    def output(self):
        try:
            with open(os.path.join(self.dir, 'unbound.log')) as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.dir, True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
