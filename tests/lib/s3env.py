"""A private S3 server for tests of [store] blobs = s3, behind a proxy that
can inject faults.

    from s3env import S3

    with S3() as s3:
        s3.endpoint            # 'http://127.0.0.1:N' (the fault proxy)
        s3.secret_file         # the secret key, one line, for secret_key_file
        s3.access_key
        s3.fail(2, 503, 'SlowDown')   # the next 2 requests get 503 SlowDown
        s3.hang(1)             # the next request gets no answer at all
        s3.requests            # requests that reached the proxy, by method

The server is s3rver 3.7.1 (npm, pinned in tests/interop/package.json;
`make npm` installs it): a Node.js implementation of the S3 REST API that
keeps objects in a directory. It starts in about a second, next to Ceph
radosgw's tens of seconds and 400 MB (see docs/scale-out.md, Tests). It
listens on a port the kernel picks (-p 0) on loopback. s3rver checks the
access key but neither AWS Signature V4 nor Content-MD5, so the proxy in
front of it (also on loopback) does, as S3 and radosgw do: it recomputes
each request's signature from the secret key (here, in Python, from
AWS's specification: a second implementation next to the C one) and
answers 403 SignatureDoesNotMatch when it differs, 400 BadDigest when the
body's MD5 is not its Content-MD5, 403 RequestTimeTooSkewed past 15
minutes. Otherwise it forwards the request unchanged, unless told to
fail it.

S3.available() says whether node and s3rver are installed, so a test can
skip (exit 77) on a machine without them.
"""

import base64
import calendar
import hashlib
import hmac
import http.client
import http.server
import os
import re
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
S3RVER = os.path.join(HERE, '..', 'interop', 'node_modules', 's3rver',
                      'bin', 's3rver.js')
# s3rver's built-in account
ACCESS_KEY = 'S3RVER'
SECRET_KEY = 'S3RVER'


def sigv4_problem(method, path, headers, body, secret):
    """None when the request is signed as AWS Signature V4 says (header
    form) and its Content-MD5 (if any) matches; else
    (status, code)."""
    h = {k.lower(): v for k, v in headers.items()}
    m = re.fullmatch(r'AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/'
                     r's3/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?'
                     r'Signature=([0-9a-f]{64})', h.get('authorization', ''))
    if m is None:
        return 403, 'AccessDenied'
    _, day, region, signed, sig = m.groups()
    names = signed.split(';')
    need = ['host', 'x-amz-content-sha256', 'x-amz-date']
    if 'content-md5' in h:
        need.append('content-md5')
    if any(n not in names for n in need) or names != sorted(names) or \
            any(n not in h for n in names):
        return 403, 'AccessDenied'
    date = h['x-amz-date']
    try:
        t = calendar.timegm(time.strptime(date, '%Y%m%dT%H%M%SZ'))
    except ValueError:
        return 403, 'AccessDenied'
    if abs(time.time() - t) > 900 or date[:8] != day:
        return 403, 'RequestTimeTooSkewed'
    uri, _, query = path.partition('?')
    # each parameter as name=value, sorted ("?uploads" signs "uploads=")
    canon_q = '&'.join(sorted(p if '=' in p else p + '='
                              for p in query.split('&'))) if query else ''
    canon_h = ''.join('%s:%s\n' % (n, ' '.join(h[n].strip().split()))
                      for n in names)
    creq = '\n'.join([method, uri, canon_q, canon_h, signed,
                      h['x-amz-content-sha256']])
    scope = '%s/%s/s3/aws4_request' % (day, region)
    sts = '\n'.join(['AWS4-HMAC-SHA256', date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ('AWS4' + secret).encode()
    for part in (day, region, 's3', 'aws4_request'):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return 403, 'SignatureDoesNotMatch'
    if 'content-md5' in h and \
            base64.b64encode(hashlib.md5(body).digest()).decode() != \
            h['content-md5']:
        return 400, 'BadDigest'
    return None


class _Proxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultProxy:
    """The checking, fault-injecting proxy in front of an S3 server on
    127.0.0.1:upstream_port whose secret key is secret (S3 here, Ceph's
    radosgw in cephenv.py)."""

    def _proxy_init(self):
        self.proxy = None
        self.lock = threading.Lock()
        self._faults = []          # [(status, code)] or ('hang', None)
        self.requests = {}
        self.bytes_in = 0          # request bodies (PUTs) received
        self.refused = []          # what the proxy's own checks refused

    def _proxy_start(self, port, secret):
        owner = self
        self._upstream = (port, secret)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(n) if n else b''
                with owner.lock:
                    owner.requests[self.command] = \
                        owner.requests.get(self.command, 0) + 1
                    owner.bytes_in += len(body)
                    fault = owner._faults.pop(0) if owner._faults else None
                if fault is None:
                    fault = sigv4_problem(self.command, self.path,
                                          self.headers, body, secret)
                    if fault is not None:
                        with owner.lock:
                            owner.refused.append((self.command, self.path,
                                                  fault[1]))
                if fault is not None and fault[0] == 'hang':
                    # no answer, then the connection closes
                    time.sleep(fault[1])
                    self.close_connection = True
                    return
                if fault is not None:
                    status, code = fault
                    doc = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                           '<Error><Code>%s</Code><Message>injected by the'
                           ' test</Message></Error>' % code).encode()
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/xml')
                    self.send_header('Content-Length', str(len(doc)))
                    self.end_headers()
                    if self.command != 'HEAD':
                        self.wfile.write(doc)
                    return
                conn = http.client.HTTPConnection('127.0.0.1', port,
                                                  timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in ('connection', 'keep-alive'):
                        conn.putheader(k, v)
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ('connection', 'keep-alive',
                                         'transfer-encoding',
                                         'content-length', 'date',
                                         'server'):
                        self.send_header(k, v)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _any

        self.proxy = _Proxy(('127.0.0.1', 0), Handler)
        self.port = self.proxy.server_address[1]
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        threading.Thread(target=self.proxy.serve_forever,
                         daemon=True).start()

    def object(self, bucket, key, data=None):
        """GET of bucket/key (data None), or PUT of data there, signed
        (AWS Signature V4) and sent to the server itself, past the proxy's
        faults and counts: what a test does behind loftd's back (a damaged
        object). Returns the bytes got, or the PUT's status."""
        port, secret = self._upstream
        method = 'GET' if data is None else 'PUT'
        host = '127.0.0.1:%d' % port
        date = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
        day, region = date[:8], 'us-east-1'
        uri = '/%s/%s' % (bucket, key)
        h = {'host': host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
             'x-amz-date': date}
        names = sorted(h)
        creq = '\n'.join([method, uri, '',
                          ''.join('%s:%s\n' % (n, h[n]) for n in names),
                          ';'.join(names), 'UNSIGNED-PAYLOAD'])
        scope = '%s/%s/s3/aws4_request' % (day, region)
        sts = '\n'.join(['AWS4-HMAC-SHA256', date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        k = ('AWS4' + secret).encode()
        for part in (day, region, 's3', 'aws4_request'):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        h['authorization'] = ('AWS4-HMAC-SHA256 Credential=%s/%s, '
                              'SignedHeaders=%s, Signature=%s'
                              % (self.access_key, scope, ';'.join(names),
                                 sig))
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        try:
            conn.request(method, uri, body=data, headers=h)
            resp = conn.getresponse()
            body = resp.read()
            if method == 'PUT':
                return resp.status
            if resp.status != 200:
                raise RuntimeError('GET %s: %d %s' % (uri, resp.status,
                                                      body[:200]))
            return body
        finally:
            conn.close()

    def fail(self, n, status=503, code='SlowDown'):
        """The next n requests get status with an S3 error document."""
        with self.lock:
            self._faults.extend([(status, code)] * n)

    def hang(self, n, seconds=30):
        """The next n requests get no answer for seconds."""
        with self.lock:
            self._faults.extend([('hang', seconds)] * n)

    def clear(self):
        with self.lock:
            self._faults = []

    def _proxy_close(self):
        if self.proxy is not None:
            self.proxy.shutdown()
            self.proxy.server_close()
            self.proxy = None


class S3(FaultProxy):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='loft-s3-')
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, 'data')
        self.secret_file = os.path.join(self.dir, 'secret')
        with open(self.secret_file, 'w') as f:
            f.write(SECRET_KEY + '\n')
        os.chmod(self.secret_file, 0o644)
        self.access_key = ACCESS_KEY
        self.proc = None
        self._proxy_init()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def available():
        return shutil.which('node') is not None and os.path.exists(S3RVER)

    def _start(self):
        self.log = open(os.path.join(self.dir, 's3rver.log'), 'w+')
        self.proc = subprocess.Popen(
            ['node', S3RVER, '-d', self.data, '-a', '127.0.0.1', '-p', '0',
             '--silent'],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            start_new_session=True)
        deadline = time.monotonic() + 120
        port = None
        while port is None:
            line = self.proc.stdout.readline()
            if line == '':
                raise RuntimeError('s3rver exited: ' + self._log_tail())
            m = re.search(r'listening on [^:]+:(\d+)', line)
            if m:
                port = int(m.group(1))
            if time.monotonic() > deadline:
                raise RuntimeError('s3rver did not start')
        self.server_port = port
        self._proxy_start(port, SECRET_KEY)

    def objects(self, bucket):
        """The keys s3rver holds in bucket (from its directory)."""
        root = os.path.join(self.data, bucket)
        keys = []
        for dirpath, _, files in os.walk(root):
            for f in files:
                if f.endswith('._S3rver_object'):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    keys.append(rel[:-len('._S3rver_object')])
        return sorted(keys)

    def _log_tail(self):
        try:
            self.log.flush()
            self.log.seek(0)
            return self.log.read()[-2000:]
        except (OSError, ValueError, AttributeError):
            return ''

    def close(self):
        self._proxy_close()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        if getattr(self, 'log', None) is not None:
            self.log.close()
            self.log = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
