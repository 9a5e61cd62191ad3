"""Loft on the internet, in miniature: two network namespaces the test
creates and removes (ip netns, one veth, RFC 5737 / RFC 3849 addresses:
nothing outside is touched), one for Loft and a validating unbound, one
for "the internet": nsd serving a DNSSEC-signed zone (ldns-signzone) with
MX, A, AAAA, TXT (SPF, DKIM, DMARC, MTA-STS) and TLSA records, a private
Postfix (`postfix -c`) as the remote MX with OpenDKIM as its milter, and
an HTTPS server for MTA-STS policies.

    Loft -> Postfix     DANE (TLSA 3 1 1 of Postfix's key) verified; the
                        signatures verify in OpenDKIM (Postfix's
                        Authentication-Results) and in python3-dkim
    Loft -> wrong TLSA  deferred, never sent in clear; a delay warning
                        reaches the local sender
    Loft -> MTA-STS     enforce: delivered over verified TLS; a policy
                        whose MX the certificate does not name: deferred
    Loft -> no user     bounced: the DSN reaches the local sender
    Postfix -> Loft     by MX and DANE (Postfix checks Loft's TLSA from
                        `loftctl dns`), OpenDKIM-signed: spf, dkim and
                        dmarc pass in Loft's Authentication-Results
    SPF                 Loft's results equal python3-spf's for the same
                        clients and senders

The zone holds `loftctl dns example.test` verbatim, so its master-file
syntax is checked by nsd and its records by the real peers.
"""

import base64
import glob
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'lib'))

from loftenv import Loft, Results, SLOW  # noqa: E402

LOFT_IP, LOFT_IP6, OTHER_IP = '192.0.2.10', '2001:db8::10', '192.0.2.99'
NET_IP, NET_IP6 = '192.0.2.20', '2001:db8::20'
USER = 'alice@example.test'


def run(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True,
                          text=True, timeout=120, **kw)


# ---- outside: the namespaces --------------------------------------------

def outer():
    tag = 'lofte2e%d' % os.getpid()
    ns_loft, ns_net = tag + 'a', tag + 'b'
    skip = []
    for tool in ('/usr/sbin/nsd', '/usr/bin/ldns-signzone', '/usr/sbin/unbound',
                 '/usr/sbin/postfix', '/usr/sbin/opendkim', '/usr/bin/ip'):
        if not os.access(tool, os.X_OK):
            skip.append(tool)
    if skip or os.getuid() != 0:
        print('FAIL cannot run: missing %s%s' % (skip, ' (not root)' if os.getuid() else ''))
        print('0 passed, 1 failed')
        return 1
    created = []
    try:
        for ns in (ns_loft, ns_net):
            run('ip', 'netns', 'add', ns)
            created.append(ns)
            # `ip netns exec` makes / a slave mount: impossible where / is
            # not a mount point (a plain chroot, as fresh-machine-check
            # uses). Say so and skip instead of failing on the machine.
            probe = run('ip', 'netns', 'exec', ns, 'true', check=False)
            if probe.returncode != 0:
                print('SKIP: cannot enter a network namespace here: %s'
                      % probe.stderr.strip())
                return 77
            os.makedirs('/etc/netns/' + ns, exist_ok=True)
            with open('/etc/netns/%s/resolv.conf' % ns, 'w') as f:
                f.write('nameserver %s\noptions trust-ad\n' % LOFT_IP)
        run('ip', 'link', 'add', tag + 'x', 'type', 'veth', 'peer', 'name', tag + 'y')
        run('ip', 'link', 'set', tag + 'x', 'netns', ns_loft)
        run('ip', 'link', 'set', tag + 'y', 'netns', ns_net)
        setup = [
            (ns_loft, tag + 'x', [LOFT_IP + '/24', OTHER_IP + '/24'], LOFT_IP6),
            (ns_net, tag + 'y', [NET_IP + '/24'], NET_IP6),
        ]
        for ns, dev, v4, v6 in setup:
            ex = ['ip', 'netns', 'exec', ns]
            run(*ex, 'ip', 'link', 'set', 'lo', 'up')
            for a in v4:
                run(*ex, 'ip', 'addr', 'add', a, 'dev', dev)
            run(*ex, 'ip', 'addr', 'add', v6 + '/64', 'dev', dev, 'nodad')
            run(*ex, 'ip', 'link', 'set', dev, 'up')
        p = subprocess.run(['ip', 'netns', 'exec', ns_loft, sys.executable,
                            os.path.abspath(__file__), '--inside', ns_net],
                           timeout=900 * SLOW)
        return p.returncode
    finally:
        for ns in created:
            # whatever the test started in there (only ours can be)
            pids = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except OSError:
                    pass
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
            shutil.rmtree('/etc/netns/' + ns, True)


# ---- inside: the world ---------------------------------------------------

class World:
    def __init__(self, ns_net):
        self.ns_net = ns_net
        self.dir = tempfile.mkdtemp(prefix='loft-e2e-')
        os.chmod(self.dir, 0o755)
        self.procs = []

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def net(self, *args, **kw):
        """A command in the other namespace."""
        return ['ip', 'netns', 'exec', self.ns_net] + list(args)

    def spawn(self, name, args, net=False):
        log = open(self.path(name + '.log'), 'wb')
        p = subprocess.Popen(self.net(*args) if net else args, stdout=log,
                             stderr=log)
        self.procs.append((p, log))
        return p

    def log(self, name):
        try:
            with open(self.path(name + '.log'), errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def close(self):
        for p, log in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            log.close()
        if not os.environ.get('LOFT_KEEP_TMP'):
            shutil.rmtree(self.dir, True)

    # -- certificates --

    def ca(self):
        d = self.path('ca')
        os.makedirs(d)
        run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days',
            '3', '-subj', '/CN=Loft e2e CA', '-keyout', d + '/ca.key',
            '-out', d + '/ca.pem')
        self.ca_pem = d + '/ca.pem'

    def cert(self, name, sans):
        d = self.path('ca')
        key, csr, pem = ['%s/%s.%s' % (d, name, x) for x in ('key', 'csr', 'pem')]
        run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-subj',
            '/CN=' + sans[0], '-keyout', key, '-out', csr)
        ext = d + '/%s.ext' % name
        with open(ext, 'w') as f:
            f.write('subjectAltName=' + ','.join('DNS:' + s for s in sans) + '\n')
        run('openssl', 'x509', '-req', '-in', csr, '-CA', d + '/ca.pem', '-CAkey',
            d + '/ca.key', '-CAcreateserial', '-days', '3', '-extfile', ext,
            '-out', pem)
        os.chmod(key, 0o644)
        return pem, key

    @staticmethod
    def tlsa311(pem):
        pub = run('openssl', 'x509', '-in', pem, '-pubkey', '-noout').stdout
        der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'DER'],
                             input=pub.encode(), capture_output=True, check=True).stdout
        import hashlib
        return hashlib.sha256(der).hexdigest()


def txt(data):
    parts = [data[i:i + 255] for i in range(0, len(data), 255)]
    return 'TXT ' + ' '.join('"%s"' % p for p in parts)


POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = {ip}, {ip6}
inet_protocols = all
myhostname = mx.remote.example
mydomain = remote.example
myorigin = remote.example
mydestination =
mynetworks = 192.0.2.0/24, [2001:db8::]/64, 127.0.0.0/8
local_recipient_maps =
virtual_mailbox_domains = remote.example, sts.example, wrongtlsa.example, stsbad.example
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = inline:{{ bob@remote.example=bob/, y@sts.example=y/, x@wrongtlsa.example=x/, z@stsbad.example=z/, later@remote.example=later/ }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{ later@remote.example = 450 4.2.0 Try again later }} }}, permit_mynetworks, reject_unauth_destination
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtp_tls_security_level = dane
smtp_dns_support_level = dnssec
smtp_tls_loglevel = 1
smtp_tls_CAfile = {ca}
smtpd_milters = inet:127.0.0.1:8891
non_smtpd_milters = inet:127.0.0.1:8891
milter_default_action = tempfail
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
biff = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

POSTFIX_MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""

HTTPS_SERVER = r'''
import http.server, ssl, sys
cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
policies = {
    'mta-sts.sts.example': b'version: STSv1\r\nmode: enforce\r\nmx: mx3.remote.example\r\nmax_age: 86400\r\n',
    'mta-sts.stsbad.example': b'version: STSv1\r\nmode: enforce\r\nmx: mx4.remote.example\r\nmax_age: 86400\r\n',
}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get('Host') or '').split(':')[0]
        body = policies.get(host)
        if self.path != '/.well-known/mta-sts.txt' or body is None:
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.HTTPServer((sys.argv[4], port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('ready', flush=True)
srv.serve_forever()
'''


WAIT_PORT = r'''
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
'''


def wait_port(host, port, timeout=30):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_for(cond, timeout=60):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    return None


def inside(ns_net):
    r = Results()
    w = World(ns_net)
    try:
        build_and_check(r, w)
    finally:
        w.close()
    return r.finish()


def build_and_check(r, w):
    w.ca()
    loft_cert, loft_key = w.cert('loft', ['loft.example.test'])
    pf_cert, pf_key = w.cert('postfix', ['mx.remote.example', 'mx2.remote.example',
                                         'mx3.remote.example'])
    sts_cert, sts_key = w.cert('sts', ['mta-sts.sts.example', 'mta-sts.stsbad.example'])

    # ---- Loft's configuration, keys and records ----
    sub_port = 1587
    extra = {
        '': {'hostname': 'loft.example.test'},
        'tls': {'cert': loft_cert, 'key': loft_key},
        'smtp': {'listen': '%s:25, [%s]:25' % (LOFT_IP, LOFT_IP6)},
        'submission': {'listen': '127.0.0.1:%d, %s:587' % (sub_port, LOFT_IP)},
        'submissions': {'listen': '%s:465' % LOFT_IP},
        'queue': {'tls_ca_file': w.ca_pem, 'retry_min': '1s', 'retry_max': '2s',
                  'delay_warning': '3s'},
    }
    env = Loft(extra=extra, start=False)
    try:
        return run_world(r, w, env, loft_cert, pf_cert, pf_key, sts_cert, sts_key,
                         sub_port)
    finally:
        env.close()


def run_world(r, w, env, loft_cert, pf_cert, pf_key, sts_cert, sts_key, sub_port):
    env.loftctl('dkim', 'add', 'example.test', '--selector', 'rsa1')
    env.loftctl('dkim', 'add', 'example.test', '--ed25519', '--selector', 'ed1')
    rc, loft_dns, err = env.loftctl('dns', 'example.test')
    r.check('loftctl dns', rc == 0 and 'TLSA 3 1 1' in loft_dns, loft_dns + err)

    # OpenDKIM's key (Postfix side)
    dk = w.path('opendkim')
    os.makedirs(dk)
    run('opendkim-genkey', '-D', dk, '-d', 'remote.example', '-s', 'pf', '-b', '2048')
    pf_txt = open(dk + '/pf.txt').read()
    pf_dkim = ''.join(re.findall(r'"([^"]*)"', pf_txt))

    # ---- the signed zone "test." ----
    z = w.path('zone')
    os.makedirs(z)
    loft_tlsa = w.tlsa311(loft_cert)
    pf_tlsa = w.tlsa311(pf_cert)
    # "test." holds Loft's own names; "example." the rest of the world
    # (libunbound, like unbound, answers NXDOMAIN for test. names itself,
    # RFC 6761: Loft only ever looks up the world's)
    own = [
        '$ORIGIN test.', '$TTL 60',
        '@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60',
        '@ IN NS ns.test.', 'ns IN A ' + NET_IP,
        'loft.example IN A ' + LOFT_IP, 'loft.example IN AAAA ' + LOFT_IP6,
    ]
    world = [
        '$ORIGIN example.', '$TTL 60',
        '@ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60',
        '@ IN NS ns.example.', 'ns IN A ' + NET_IP,
        'mx.remote IN A ' + NET_IP, 'mx.remote IN AAAA ' + NET_IP6,
        'mx2.remote IN A ' + NET_IP, 'mx3.remote IN A ' + NET_IP,
        'mx4.remote IN A ' + NET_IP,
        'remote IN MX 10 mx.remote.example.',
        'remote IN ' + txt('v=spf1 ip4:%s ip6:%s -all' % (NET_IP, NET_IP6)),
        'pf._domainkey.remote IN ' + txt(pf_dkim),
        '_dmarc.remote IN ' + txt('v=DMARC1; p=reject'),
        '_25._tcp.mx.remote IN TLSA 3 1 1 ' + pf_tlsa,
        # a TLSA record that does not match Postfix's key
        'wrongtlsa IN MX 10 mx2.remote.example.',
        '_25._tcp.mx2.remote IN TLSA 3 1 1 ' + '00' * 32,
        # MTA-STS: enforce, and enforce with a host the certificate lacks
        'sts IN MX 10 mx3.remote.example.',
        '_mta-sts.sts IN ' + txt('v=STSv1; id=e2e1'),
        'mta-sts.sts IN A ' + NET_IP,
        'stsbad IN MX 10 mx4.remote.example.',
        '_mta-sts.stsbad IN ' + txt('v=STSv1; id=e2e1'),
        'mta-sts.stsbad IN A ' + NET_IP,
        # a sender domain with no SPF record
        'spfnone IN A ' + OTHER_IP,
        # Loft's client address has a name
        'client IN A ' + OTHER_IP,
    ]
    zones = {'test.': '\n'.join(own) + '\n' + loft_dns,   # loftctl dns, verbatim
             'example.': '\n'.join(world) + '\n'}
    anchors = []
    for name, text in zones.items():
        with open('%s/%szone' % (z, name), 'w') as f:
            f.write(text)
        ksk = run('ldns-keygen', '-a', 'ECDSAP256SHA256', '-k', name,
                  cwd=z).stdout.strip()
        zsk = run('ldns-keygen', '-a', 'ECDSAP256SHA256', name, cwd=z).stdout.strip()
        p = run('ldns-signzone', '-o', name, name + 'zone', ksk, zsk, cwd=z,
                check=False)
        r.check('zone %s signs%s' % (name, ' (loftctl dns is master-file syntax)'
                                     if name == 'test.' else ''),
                p.returncode == 0, p.stdout + p.stderr)
        with open(z + '/' + ksk + '.key') as f:
            anchors.append(f.read())
    anchor = z + '/anchors'
    with open(anchor, 'w') as f:
        f.write(''.join(anchors))

    # ---- nsd (the internet's authoritative server) ----
    nsd_conf = w.path('nsd.conf')
    with open(nsd_conf, 'w') as f:
        f.write('server:\n  ip-address: %s\n  port: 53\n  username: ""\n'
                '  database: ""\n  zonelistfile: "%s/zone.list"\n'
                '  xfrdfile: "%s/xfrd.state"\n  pidfile: "%s/nsd.pid"\n'
                '  logfile: "%s/nsd.err"\n  verbosity: 1\n  server-count: 1\n'
                'remote-control:\n  control-enable: no\n'
                'zone:\n  name: "test."\n  zonefile: "%s/test.zone.signed"\n'
                'zone:\n  name: "example."\n  zonefile: "%s/example.zone.signed"\n'
                % (NET_IP, z, z, z, z, z, z))
    w.spawn('nsd', ['/usr/sbin/nsd', '-d', '-c', nsd_conf], net=True)

    # ---- unbound (Loft's side: a validating resolver) ----
    ub_conf = w.path('unbound.conf')
    with open(ub_conf, 'w') as f:
        f.write('server:\n  interface: %s\n  port: 53\n  do-daemonize: no\n'
                '  username: ""\n  chroot: ""\n  directory: "%s"\n'
                '  pidfile: "%s/unbound.pid"\n  use-syslog: no\n  logfile: ""\n'
                '  access-control: 192.0.2.0/24 allow\n'
                '  access-control: 127.0.0.0/8 allow\n'
                '  module-config: "validator iterator"\n'
                '  trust-anchor-file: "%s"\n  val-log-level: 2\n'
                '  local-zone: "." static\n  local-zone: "test." transparent\n'
                '  local-zone: "example." transparent\n'
                '  local-zone: "2.0.192.in-addr.arpa." static\n'
                '  do-not-query-localhost: no\n  num-threads: 1\n'
                '  cache-max-ttl: 5\n  cache-max-negative-ttl: 5\n'
                'stub-zone:\n  name: "test."\n  stub-addr: %s\n'
                'stub-zone:\n  name: "example."\n  stub-addr: %s\n'
                % (LOFT_IP, w.dir, w.dir, anchor, NET_IP, NET_IP))
    w.spawn('unbound', ['/usr/sbin/unbound', '-d', '-c', ub_conf])

    import dns.resolver
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [LOFT_IP]
    res.use_edns(0, dns.flags.DO, 1232)
    dns.resolver.default_resolver = res

    def resolves():
        try:
            ans = res.resolve('_25._tcp.mx.remote.example', 'TLSA')
            return ans.response.flags & dns.flags.AD
        except Exception:
            return False
    r.check('DNSSEC-validated TLSA from nsd through unbound',
            wait_for(resolves, 30), w.log('unbound')[-2000:] + w.log('nsd'))

    # ---- OpenDKIM and Postfix (the remote MX) ----
    with open(dk + '/opendkim.conf', 'w') as f:
        f.write('Mode sv\nDomain remote.example\nSelector pf\nKeyFile %s/pf.private\n'
                'Socket inet:8891@127.0.0.1\nPidFile %s/opendkim.pid\n'
                'InternalHosts 192.0.2.0/24,127.0.0.1\nAuthservID mx.remote.example\n'
                'Nameservers %s\nUserID postfix\nSyslog no\nBackground no\n'
                'AlwaysAddARHeader yes\n'
                # the key is under /tmp (world-writable): opendkim refuses
                # such paths unless told
                'RequireSafeKeys no\n'
                # its libunbound answers test. names itself (RFC 6761) unless
                # told: Loft's keys are under example.test.
                'ResolverConfiguration %s/unbound.conf\n' % (dk, dk, LOFT_IP, dk))
    with open(dk + '/unbound.conf', 'w') as f:
        f.write('server:\n  local-zone: "test." nodefault\n')
    shutil.chown(dk, 'postfix')
    for fn in glob.glob(dk + '/*'):
        shutil.chown(fn, 'postfix')
    odk = w.spawn('opendkim', ['/usr/sbin/opendkim', '-f', '-x',
                               dk + '/opendkim.conf'], net=True)
    # the milter listens on the other namespace's loopback: ask from there
    p = subprocess.run(w.net(sys.executable, '-c', WAIT_PORT, '127.0.0.1', '8891',
                             str(30 * SLOW)), capture_output=True, text=True)
    r.check('opendkim listens', p.returncode == 0 and odk.poll() is None,
            w.log('opendkim')[-2000:])
    pf = w.path('postfix')
    os.makedirs(pf + '/queue')
    os.makedirs(pf + '/data')
    os.makedirs(pf + '/mail')
    shutil.chown(pf + '/data', 'postfix', 'postfix')
    import pwd
    pw = pwd.getpwnam('postfix')
    shutil.chown(pf + '/mail', 'postfix', 'postfix')
    with open(pf + '/main.cf', 'w') as f:
        f.write(POSTFIX_MAIN.format(d=pf, ip=NET_IP, ip6='[%s]' % NET_IP6,
                                    uid=pw.pw_uid, gid=pw.pw_gid, cert=pf_cert,
                                    key=pf_key, ca=w.ca_pem))
    with open(pf + '/master.cf', 'w') as f:
        f.write(POSTFIX_MASTER)
    p = run(*w.net('/usr/sbin/postfix', '-c', pf, 'start'), check=False)
    r.check('postfix starts', p.returncode == 0, p.stdout + p.stderr)
    w.spawn('https', [sys.executable, '-c', HTTPS_SERVER, sts_cert, sts_key, '443',
                      NET_IP], net=True)
    r.check('postfix listens', wait_port(NET_IP, 25))
    r.check('MTA-STS server listens', wait_port(NET_IP, 443))
    pflog = lambda: open(pf + '/maillog', errors='replace').read() \
        if os.path.exists(pf + '/maillog') else ''

    extra_dns = {'resolvers': LOFT_IP, 'trust_anchor': anchor, 'timeout': '3s'}
    env.sections['dns'] = extra_dns
    env.write_config()
    env.start()
    try:
        check_world(r, w, env, pf, pflog, sub_port)
    finally:
        run(*w.net('/usr/sbin/postfix', '-c', pf, 'stop'), check=False)
    return 0


def mails(pf, box):
    out = []
    for fn in sorted(glob.glob('%s/mail/%s/new/*' % (pf, box)) +
                     glob.glob('%s/mail/%s/cur/*' % (pf, box))):
        with open(fn, 'rb') as f:
            out.append(f.read())
    return out


def inbox(env, mailbox='INBOX'):
    m = env.imap_login(USER)
    typ, data = m.select(mailbox)
    out = []
    if int(data[0]) > 0:
        typ, data = m.fetch(b'1:*', '(BODY.PEEK[])')
        out = [d[1] for d in data if isinstance(d, tuple)]
    m.logout()
    return out


def submit(env, port, rcpt, subject):
    c = smtplib.SMTP('127.0.0.1', port, timeout=30 * SLOW)
    c.login(USER, env.users[USER])
    msg = ('From: Alice <%s>\r\nTo: <%s>\r\nSubject: %s\r\n'
           'Message-ID: <%s@example.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n'
           '\r\nHello from Loft.\r\n' % (USER, rcpt, subject,
                                         subject.replace(' ', '.'))).encode()
    c.sendmail(USER, [rcpt], msg)
    c.quit()


RELAY_TRICKS = (b'<x@remote.example>', b'<@example.test:x@remote.example>',
                b'<x%remote.example@example.test>', b'<remote.example!x@example.test>',
                b'<"x@remote.example"@example.test>', b'<x@remote.example.>',
                b'<x@[192.0.2.20]>')


def smtp_reply(f):
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b'-':
            return b''.join(lines)


def open_relay(r, pflog):
    """Every listener, from OTHER_IP: no trick relays, nothing reaches the
    remote MX."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for name, port, tls in (('mx', 25, False), ('submission', 587, False),
                            ('submissions', 465, True)):
        s = socket.create_connection((LOFT_IP, port), timeout=30 * SLOW,
                                     source_address=(OTHER_IP, 0))
        if tls:
            s = ctx.wrap_socket(s)
        f = s.makefile('rb')

        def cmd(line):
            s.sendall(line + b'\r\n')
            return smtp_reply(f)
        r.check('%s greets from %s' % (name, OTHER_IP), smtp_reply(f)[:4] == b'220 ')
        ehlo = cmd(b'EHLO client.example')
        if name == 'submission':
            r.check('submission: no AUTH before TLS from a remote address',
                    b'AUTH' not in ehlo, ehlo)
            for mech in (b'PLAIN', b'SCRAM-SHA-256'):
                rep = cmd(b'AUTH ' + mech)
                r.check('submission: AUTH %s before TLS refused 538 5.7.11'
                        % mech.decode(), rep.startswith(b'538 5.7.11'), rep)
        else:
            r.check('%s: AUTH offered where it may be used' % name,
                    (b'AUTH' in ehlo) == (name == 'submissions'), ehlo)
        rep = cmd(b'MAIL FROM:<x@remote.example>')
        if name == 'mx':
            r.check('mx: MAIL from anywhere', rep[:3] == b'250', rep)
        else:
            r.check('%s: MAIL without AUTH 530 5.7.0' % name,
                    rep.startswith(b'530 5.7.0'), rep)
        for trick in RELAY_TRICKS:
            rep = cmd(b'RCPT TO:' + trick)
            r.check('%s from %s: no relay to %s' % (name, OTHER_IP, trick.decode()),
                    rep[:1] == b'5', rep)
        rep = cmd(b'DATA')
        r.check('%s: DATA refused without a recipient' % name, rep[:1] == b'5', rep)
        cmd(b'QUIT')
        s.close()
    r.check('no relay attempt reached the remote MX',
            'to=<x@remote.example>' not in pflog() and
            'x@remote.example' not in pflog(), pflog()[-1500:])


def loft_log(env):
    return env.log()


def check_world(r, w, env, pf, pflog, sub_port):
    import dkim
    import dns.resolver
    import spf

    # ---- Loft -> Postfix over DANE, signed ----
    submit(env, sub_port, 'bob@remote.example', 'dane one')
    got = wait_for(lambda: [m for m in mails(pf, 'bob') if b'dane one' in m])
    r.check('delivered to the remote MX', got, pflog()[-3000:] + loft_log(env)[-3000:])
    m = got[0] if got else b''
    r.check('Loft used DANE', re.search(r'to=<bob@remote.example> relay=mx.remote.example\['
                                        r'[^\]]+\] tls=dane status=sent',
                                        loft_log(env)) is not None,
            loft_log(env)[-2000:])
    r.check('over IPv6 first', 'mx.remote.example[2001:db8::20] tls=dane' in loft_log(env),
            loft_log(env)[-1500:])
    r.check('OpenDKIM (Postfix side) verifies Loft\'s signature',
            re.search(rb'Authentication-Results: mx.remote.example;\s+dkim=pass[^;]*'
                      rb'header.d=example.test', m) is not None, m[:1500])

    def dnsfunc(name, timeout=5):
        try:
            ans = dns.resolver.resolve(name.decode().rstrip('.'), 'TXT')
            return b''.join(b''.join(rd.strings) for rd in ans)
        except Exception:
            return b''
    head = m.split(b'\n\n', 1)[0]
    sigs = len(re.findall(rb'(?mi)^DKIM-Signature:', head))
    d = dkim.DKIM(m.replace(b'\n', b'\r\n'))
    ok = [bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(sigs)]
    r.check('python3-dkim verifies both signatures (RSA, Ed25519)',
            sigs == 2 and all(ok), (sigs, ok))

    # ---- a TLSA record that does not match: deferred, never in clear ----
    submit(env, sub_port, 'x@wrongtlsa.example', 'wrong tlsa')
    deferred = wait_for(lambda: re.search(r'to=<x@wrongtlsa.example> .*status=deferred',
                                          loft_log(env)))
    r.check('wrong TLSA: deferred', deferred, loft_log(env)[-2000:])
    r.check('wrong TLSA: not delivered', not mails(pf, 'x'))
    r.check('wrong TLSA: nothing of it sent in clear',
            'x@wrongtlsa.example' not in pflog(), pflog()[-2000:])
    delay = wait_for(lambda: [x for x in inbox(env) if b'Delayed Mail' in x and
                              b'x@wrongtlsa.example' in x], 60)
    r.check('delay warning reaches the sender', delay)

    # ---- MTA-STS ----
    submit(env, sub_port, 'y@sts.example', 'sts enforce')
    got = wait_for(lambda: [m for m in mails(pf, 'y') if b'sts enforce' in m])
    r.check('MTA-STS enforce: delivered', got, loft_log(env)[-2000:])
    r.check('MTA-STS enforce: verified TLS',
            re.search(r'to=<y@sts.example> relay=mx3.remote.example\[[^\]]+\] tls=pkix '
                      r'status=sent', loft_log(env)) is not None,
            loft_log(env)[-1500:])
    submit(env, sub_port, 'z@stsbad.example', 'sts bad cert')
    deferred = wait_for(lambda: re.search(r'to=<z@stsbad.example> .*status=deferred',
                                          loft_log(env)))
    r.check('MTA-STS, certificate without the host: deferred', deferred,
            loft_log(env)[-2000:])
    r.check('MTA-STS, certificate without the host: not delivered', not mails(pf, 'z'))

    # ---- a remote refusal: the bounce reaches the sender ----
    submit(env, sub_port, 'nobody@remote.example', 'to nobody')
    bounce = wait_for(lambda: [x for x in inbox(env) if b'Undelivered Mail' in x and
                               b'nobody@remote.example' in x])
    r.check('bounce reaches the sender', bounce, loft_log(env)[-2000:])
    if bounce:
        r.check('bounce names the remote reply', b'Status: 5.1.1' in bounce[0], bounce[0][:2000])

    # ---- a remote 4xx: deferred and kept (retried), no bounce ----
    submit(env, sub_port, 'later@remote.example', 'try later')
    deferred = wait_for(lambda: re.search(
        r'to=<later@remote.example> relay=mx.remote.example\[[^\]]+\] tls=dane '
        r'status=deferred \(450 4.2.0 ', loft_log(env)))
    r.check('remote 450: deferred with its reply', deferred, loft_log(env)[-2000:])
    rc, out, err = env.loftctl('queue', 'list')
    r.check('remote 450: still queued', rc == 0 and 'later@remote.example' in out,
            out + err)

    # ---- no open relay, from an address that is not loopback ----
    open_relay(r, pflog)

    # ---- Postfix -> Loft: by MX, DANE, signed by OpenDKIM ----
    c = smtplib.SMTP(NET_IP, 25, timeout=30 * SLOW)
    c.sendmail('carol@remote.example', [USER],
               b'From: Carol <carol@remote.example>\r\nTo: alice@example.test\r\n'
               b'Subject: from postfix\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n'
               b'Message-ID: <pf1@remote.example>\r\n\r\nHi Alice.\r\n')
    c.quit()
    got = wait_for(lambda: [x for x in inbox(env) if b'from postfix' in x])
    r.check('Postfix delivers to Loft', got, pflog()[-3000:])
    m = got[0] if got else b''
    r.check('Postfix verified Loft by DANE',
            re.search(r'Verified TLS connection established to loft.example.test',
                      pflog()) is not None, pflog()[-2000:])
    ar = re.search(rb'Authentication-Results: loft.example.test;(.*?)\r\n(?!\t)', m,
                   re.S)
    ar = ar.group(1) if ar else b''
    r.check('spf=pass', b'spf=pass smtp.mailfrom=remote.example' in ar, ar)
    r.check('dkim=pass (OpenDKIM\'s signature)', b'dkim=pass' in ar and
            b'header.d=remote.example header.s=pf' in ar, ar)
    r.check('dmarc=pass', b'dmarc=pass' in ar, ar)

    # ---- SPF as python3-spf sees it ----
    cases = [(OTHER_IP, 'carol@remote.example', 'From: x@spfnone.example'),
             (OTHER_IP, 'someone@spfnone.example', 'From: x@spfnone.example'),
             (OTHER_IP, 'someone@nowhere.example', 'From: x@spfnone.example')]
    for ip, sender, frm in cases:
        theirs = spf.check2(i=ip, s=sender, h='client.test')[0]
        marker = ('spf %s %s' % (ip, sender)).encode()
        c = smtplib.SMTP(LOFT_IP, 25, timeout=30 * SLOW, source_address=(ip, 0),
                         local_hostname='client.test')
        try:
            c.sendmail(sender, [USER], frm.encode() + b'\r\nSubject: ' + marker +
                       b'\r\n\r\nx\r\n')
        except smtplib.SMTPException as e:
            print('refused:', e)
        c.quit()
        msgs = [x for x in inbox(env) + inbox(env, 'Junk') if marker in x]
        got = re.search(rb'spf=(\w+)', msgs[0]) if msgs else None
        ours = got.group(1).decode() if got else '?'
        r.check('SPF %s from %s: loft %s, python3-spf %s' % (sender, ip, ours, theirs),
                ours == theirs)


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == '--inside':
        sys.exit(inside(sys.argv[2]))
    sys.exit(outer())
