"""Memory of loftd per idle JMAP EventSource connection.

    python3 bench/eventsource.py [N]          # plain HTTP, N = 10000
    TLS=1 python3 bench/eventsource.py [N]    # HTTPS

Starts a private loftd (tests/lib/loftenv.py), opens one stream to warm
up, then N-1 more (GET /jmap/eventsource/ with a Bearer token from
`loftctl token add`, each answered 200 and left idle), and prints loftd's
memory after minus before over N-1: PSS summed over loftd's processes
(the parent, loftd-auth, loftd-mail, loftd-outbound: the streams live in
the mail process). Goal (issue 12): at most 16 KiB."""
import os
import resource
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'lib'))
sys.path.insert(0, HERE)
os.environ.setdefault('LOFT_BUILD', os.path.join(os.path.dirname(HERE), 'build'))
from loftenv import Loft, client_tls_context
from targets import descendants, pss_of
TLS = os.environ.get('TLS') == '1'
ctx = client_tls_context()

def conn(env):
    if TLS:
        return ctx.wrap_socket(socket.create_connection(('127.0.0.1', env.ports['https'])))
    return socket.create_connection(('127.0.0.1', env.ports['http']))

def mem_kib(pid):
    return sum(pss_of(p) for p in descendants(pid)) // 1024

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
with Loft(extra={'limits': {'io_threads': '2', 'worker_threads': '4'}}) as env:
    rc, out, err = env.loftctl('token', 'add', 'alice@example.test')
    token = out.strip()
    req = ('GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\n'
           'Host: localhost\r\nAuthorization: Bearer %s\r\n'
           'Accept: text/event-stream\r\n\r\n' % token).encode()
    # warm up: one stream, then measure the baseline
    socks = []
    s = conn(env); s.sendall(req); s.recv(4096); socks.append(s)
    time.sleep(1)
    before = mem_kib(env.proc.pid)
    t0 = time.monotonic()
    for i in range(N - 1):
        s = conn(env)
        s.sendall(req)
        socks.append(s)
    ok = 0
    for s in socks[1:]:
        s.settimeout(30)
        d = s.recv(4096)
        ok += d.startswith(b'HTTP/1.1 200')
    time.sleep(2)
    after = mem_kib(env.proc.pid)
    print(('TLS ' if TLS else 'plain ') + '%d EventSource streams open (%d answered 200) in %.1f s: loftd PSS (all processes) %d -> %d KiB, %.2f KiB per stream'
          % (N, ok + 1, time.monotonic() - t0, before, after, (after - before) / (N - 1)))
    for s in socks:
        s.close()
