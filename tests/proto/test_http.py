"""HTTP/1.1 conversations with loftd's [http], [https] and [metrics]
listeners: /healthz, 404/405, keep-alive and pipelining, HEAD, chunked
request bodies, the smuggling and limit cases of issue 12 (400 and a
close, 431, 413, 408), and the webmail sign-in (cookie flags, a new id
at every sign-in, CSRF, sign-out ending the session on the server)."""

import json
import socket
import ssl
import sys
import time

from loftenv import SLOW, Loft, Results, client_tls_context

r = Results()


def raw(env, data, proto='http', timeout=10, shut=False):
    """Sends bytes on a fresh connection; returns everything read until
    the server closes (or the timeout)."""
    s = socket.create_connection(('127.0.0.1', env.ports[proto]))
    if proto == 'https':
        s = client_tls_context().wrap_socket(s)
    s.settimeout(timeout * SLOW)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b''
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        out += b'<timeout>' if not out.endswith(b'<timeout>') else b''
    s.close()
    return out


def status(resp_bytes):
    try:
        return int(resp_bytes.split(b' ', 2)[1])
    except (IndexError, ValueError):
        return None


def get(env, path, proto='http', headers=None, method='GET', body=None):
    c = env.http(proto=proto)
    c.request(method, path, body=body, headers=headers or {})
    resp = c.getresponse()
    data = resp.read()
    c.close()
    return resp, data


def test_basics(env):
    for proto in ('http', 'https', 'metrics'):
        resp, data = get(env, '/healthz', proto)
        r.check('healthz ' + proto, resp.status == 200 and data == b'ok\n',
                (resp.status, data))
    resp, data = get(env, '/no/such/thing')
    r.check('404', resp.status == 404, resp.status)
    resp, data = get(env, '/healthz', method='DELETE')
    r.check('405', resp.status == 405 and 'GET' in resp.getheader('Allow', ''),
            (resp.status, resp.getheaders()))
    resp, data = get(env, '/healthz', method='HEAD')
    r.check('HEAD no body', resp.status == 200 and data == b'' and
            resp.getheader('Content-Length') == '3', resp.getheaders())
    resp, data = get(env, '/metrics', 'metrics')
    r.check('metrics on admin', resp.status == 200 and
            resp.getheader('Content-Type').startswith('text/plain'), resp.status)
    resp, data = get(env, '/metrics', 'http')
    r.check('no metrics on [http]', resp.status == 404, resp.status)
    resp, _ = get(env, '/healthz')
    r.check('security headers', resp.getheader('X-Content-Type-Options') ==
            'nosniff', resp.getheaders())


def test_keepalive(env):
    # Three pipelined requests on one connection, answered in order.
    out = raw(env, b'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'
              b'GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n'
              b'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    codes = [int(x.split(b' ', 2)[1]) for x in out.split(b'HTTP/1.1 ')[1:]
             if False] or [int(p[:3]) for p in out.split(b'HTTP/1.1 ')[1:]]
    r.check('pipelined', codes == [200, 404, 200], out)
    r.check('closed after Connection: close', not out.endswith(b'<timeout>'),
            out[-50:])
    # HTTP/1.0 without keep-alive closes.
    out = raw(env, b'GET /healthz HTTP/1.0\r\n\r\n')
    r.check('1.0 closes', status(out) == 200 and b'Connection: close' in out
            and not out.endswith(b'<timeout>'), out)
    # http.client reuses its connection.
    c = env.http()
    for i in range(3):
        c.request('GET', '/healthz')
        resp = c.getresponse()
        resp.read()
    r.check('keep-alive reuse', resp.status == 200 and c.sock is not None)
    c.close()


def test_bad_input(env):
    cases = [
        ('CL+TE', b'POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n'
         b'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400),
        ('two CL', b'POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n'
         b'Content-Length: 5\r\n\r\nabcde', 400),
        ('obs-fold', b'GET /healthz HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n', 400),
        ('bare LF', b'GET /healthz HTTP/1.1\nHost: a\n\n', 400),
        ('bare CR', b'GET /healthz HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n', 400),
        ('garbage', b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400),
        ('no host', b'GET /healthz HTTP/1.1\r\n\r\n', 400),
        ('version', b'GET /healthz HTTP/3.0\r\nHost: a\r\n\r\n', 505),
        ('bad chunk', b'POST /auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:'
         b' chunked\r\nContent-Type: application/json\r\n\r\nZZ\r\n', 400),
    ]
    for name, data, want in cases:
        out = raw(env, data)
        r.check('bad input ' + name, status(out) == want and
                b'Connection: close' in out and not out.endswith(b'<timeout>'),
                out[:200])
    # Pipelined garbage after a good request: the good one is answered,
    # then 400 and a close.
    out = raw(env, b'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nHELLO THERE\r\n\r\n')
    r.check('pipelined garbage', out.startswith(b'HTTP/1.1 200') and
            b'HTTP/1.1 400' in out and not out.endswith(b'<timeout>'), out)
    big = b'GET /healthz HTTP/1.1\r\nHost: a\r\n' + \
        b''.join(b'X-%d: %s\r\n' % (i, b'y' * 1000) for i in range(80)) + b'\r\n'
    out = raw(env, big)
    r.check('431', status(out) == 431, out[:100])
    out = raw(env, b'GET /' + b'a' * 10000 + b' HTTP/1.1\r\nHost: a\r\n\r\n')
    r.check('414', status(out) == 414, out[:100])
    out = raw(env, b'POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: '
              b'99999999\r\nContent-Type: application/json\r\n\r\n')
    r.check('413 from Content-Length', status(out) == 413, out[:100])
    body = b'{"x":"' + b'a' * 20000 + b'"}'
    chunked = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 1000]), body[i:i + 1000])
                       for i in range(0, len(body), 1000)) + b'0\r\n\r\n'
    out = raw(env, b'POST /auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: '
              b'chunked\r\nContent-Type: application/json\r\n\r\n' + chunked)
    r.check('413 chunked', status(out) == 413, out[:100])


def test_timeouts():
    with Loft(extra={'http': {'header_timeout': '2s', 'body_timeout': '2s'}}) as env:
        # Slowloris: a byte at a time, each before the idle timeout, still
        # meets the head's deadline.
        s = socket.create_connection(('127.0.0.1', env.ports['http']))
        s.settimeout(20 * SLOW)
        start = time.monotonic()
        got = b''
        try:
            for ch in b'GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ' + b'a' * 100:
                s.send(bytes([ch]))
                time.sleep(0.1)
                if time.monotonic() - start > 10 * SLOW:
                    break
        except OSError:
            pass
        try:
            while True:
                b = s.recv(1000)
                if not b:
                    break
                got += b
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        r.check('slowloris 408', status(got) == 408, got[:100])
        # A body that stops arriving.
        out = raw(env, b'POST /auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: '
                  b'100\r\nContent-Type: application/json\r\n\r\n{"a', timeout=20)
        r.check('body timeout 408', status(out) == 408, out[:100])
        # An idle keep-alive connection is closed quietly.
        out = raw(env, b'', timeout=20)
        r.check('idle closes quietly', out == b'', out[:100])


def test_signin(env):
    addr = 'alice@example.test'
    pw = env.users[addr]
    hdr = {'Content-Type': 'application/json'}
    # Wrong password.
    resp, data = get(env, '/auth/login', method='POST', headers=hdr,
                     body=json.dumps({'username': addr, 'password': 'nope'}))
    r.check('login wrong password', resp.status == 401, (resp.status, data))
    # A form post (a cross-site form could send it) is refused.
    resp, data = get(env, '/auth/login', method='POST',
                     headers={'Content-Type': 'application/x-www-form-urlencoded'},
                     body='username=%s&password=%s' % (addr, pw))
    r.check('login form refused', resp.status == 415, resp.status)
    resp, data = get(env, '/auth/login', method='POST',
                     headers=dict(hdr, Origin='https://evil.example'),
                     body=json.dumps({'username': addr, 'password': pw}))
    r.check('login foreign origin', resp.status == 403, resp.status)
    ids = []
    for proto in ('https', 'https', 'http'):
        resp, data = get(env, '/auth/login', proto, method='POST', headers=hdr,
                         body=json.dumps({'username': addr, 'password': pw}))
        cookie = resp.getheader('Set-Cookie') or ''
        ids.append(cookie.split(';')[0])
        r.check('login ' + proto, resp.status == 200, (resp.status, data))
        flags = [f.strip() for f in cookie.split(';')]
        r.check('cookie flags ' + proto, 'HttpOnly' in flags and
                'SameSite=Strict' in flags and
                (('Secure' in flags) == (proto == 'https')) and
                'Max-Age' not in cookie, cookie)
    r.check('new id each sign-in', len(set(ids)) == 3, ids)
    r.check('__Host- prefix under TLS', ids[0].startswith('__Host-'), ids[0])
    cookie = ids[1]
    resp, data = get(env, '/auth/session', 'https', headers={'Cookie': cookie})
    info = json.loads(data)
    r.check('session', resp.status == 200 and info['username'] == addr, data)
    csrf = info['csrf']
    # Sign-out without the CSRF token is refused; with it, it works and the
    # cookie no longer works.
    resp, data = get(env, '/auth/logout', 'https', method='POST',
                     headers={'Cookie': cookie})
    r.check('logout without csrf', resp.status == 403, resp.status)
    resp, data = get(env, '/auth/logout', 'https', method='POST',
                     headers={'Cookie': cookie, 'X-Loft-CSRF': csrf,
                              'Origin': 'https://evil.example'})
    r.check('logout foreign origin', resp.status == 403, resp.status)
    resp, data = get(env, '/auth/logout', 'https', method='POST',
                     headers={'Cookie': cookie, 'X-Loft-CSRF': csrf})
    r.check('logout', resp.status == 204, resp.status)
    resp, data = get(env, '/auth/session', 'https', headers={'Cookie': cookie})
    r.check('session over', resp.status == 401, resp.status)
    # The first session is still alive; "remember me" gives Max-Age.
    resp, data = get(env, '/auth/session', 'https', headers={'Cookie': ids[0]})
    r.check('other session alive', resp.status == 200, resp.status)
    resp, data = get(env, '/auth/login', 'https', method='POST', headers=hdr,
                     body=json.dumps({'username': addr, 'password': pw,
                                      'remember': True}))
    r.check('remember me', 'Max-Age=2592000' in (resp.getheader('Set-Cookie') or ''),
            resp.getheader('Set-Cookie'))


def test_proxy():
    """[http] trust_proxy: a reverse proxy on this host names the client
    (X-Forwarded-For) and the scheme (X-Forwarded-Proto); with
    session_bind_address a cookie replayed from another address fails."""
    extra = {'http': {'trust_proxy': 'yes', 'session_bind_address': 'yes'}}
    with Loft(extra=extra) as env:
        addr = 'alice@example.test'
        body = json.dumps({'username': addr, 'password': env.users[addr]})
        fwd = {'Content-Type': 'application/json', 'Host': 'mail.example.test',
               'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '198.51.100.7',
               'Origin': 'https://mail.example.test'}
        resp, data = get(env, '/auth/login', method='POST', headers=fwd, body=body)
        cookie = resp.getheader('Set-Cookie') or ''
        r.check('proxied sign-in', resp.status == 200, (resp.status, data))
        r.check('proxied https cookie', cookie.startswith('__Host-loft_session=') and
                'Secure' in cookie, cookie)
        pair = cookie.split(';')[0]
        same = {'Cookie': pair, 'Host': 'mail.example.test',
                'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '198.51.100.7'}
        resp, data = get(env, '/auth/session', headers=same)
        r.check('bound session from its address', resp.status == 200, resp.status)
        other = dict(same, **{'X-Forwarded-For': '203.0.113.9'})
        resp, data = get(env, '/auth/session', headers=other)
        r.check('stolen cookie from elsewhere', resp.status == 401, resp.status)
        r.check('log names the forwarded client', '198.51.100.7' in env.log())
    # Without trust_proxy the headers mean nothing.
    with Loft() as env:
        addr = 'alice@example.test'
        body = json.dumps({'username': addr, 'password': env.users[addr]})
        resp, data = get(env, '/auth/login', method='POST', body=body,
                         headers={'Content-Type': 'application/json',
                                  'X-Forwarded-Proto': 'https'})
        cookie = resp.getheader('Set-Cookie') or ''
        r.check('untrusted X-Forwarded-Proto ignored', resp.status == 200 and
                'Secure' not in cookie, cookie)


def main():
    with Loft() as env:
        test_basics(env)
        test_keepalive(env)
        test_bad_input(env)
        test_signin(env)
    test_timeouts()
    test_proxy()
    sys.exit(r.finish())


main()
