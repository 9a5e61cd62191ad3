"""A small JMAP client for tests (RFC 8620/8621 over http.client).

    from jmapclient import Jmap
    j = Jmap(env, 'alice@example.test')
    r = j.call([['Mailbox/get', {'accountId': j.account}, '0']])
    mailboxes = j.resp(r, 'Mailbox/get')['list']

Basic authentication over the plain [http] listener (loopback), as IMAP
allows cleartext from loopback.
"""

import base64
import json
import socket
import time
import urllib.parse

USING = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
         'urn:ietf:params:jmap:submission', 'urn:ietf:params:jmap:quota']


class Jmap:
    def __init__(self, env, address, password=None, token=None):
        self.env = env
        self.address = address
        self.password = password or env.users[address]
        if token:
            self.auth = 'Bearer ' + token
        else:
            raw = ('%s:%s' % (address, self.password)).encode()
            self.auth = 'Basic ' + base64.b64encode(raw).decode()
        s = self.session()
        self.session_obj = s
        self.account = s['primaryAccounts']['urn:ietf:params:jmap:mail']

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers dict, body bytes)."""
        c = self.env.http(timeout=timeout)
        h = {'Authorization': self.auth}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def session(self):
        st, _, data = self.request('GET', '/jmap/session')
        assert st == 200, (st, data)
        return json.loads(data)

    def raw(self, body, content_type='application/json'):
        """POST /jmap/api with any body: (status, parsed JSON or text)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        st, hdrs, data = self.request('POST', '/jmap/api', body,
                                      {'Content-Type': content_type})
        try:
            return st, json.loads(data)
        except ValueError:
            return st, data

    def call(self, calls, using=None, created_ids=None):
        req = {'using': using or USING, 'methodCalls': calls}
        if created_ids is not None:
            req['createdIds'] = created_ids
        st, r = self.raw(req)
        assert st == 200, (st, r)
        return r

    def resp(self, r, name, call_id=None):
        """The arguments of the first response called name."""
        for n, args, cid in r['methodResponses']:
            if n == name and (call_id is None or cid == call_id):
                return args
        raise AssertionError('no %s in %r' % (name, r))

    def one(self, method, args, using=None):
        """One call; returns (name, arguments)."""
        a = dict(args)
        a.setdefault('accountId', self.account)
        r = self.call([[method, a, 'c']], using=using)
        name, args, _ = r['methodResponses'][0]
        return name, args

    def ok(self, method, args, using=None):
        name, a = self.one(method, args, using)
        assert name == method, (name, a)
        return a

    def mailbox(self, role=None, name=None):
        mbs = self.ok('Mailbox/get', {'ids': None})['list']
        for m in mbs:
            if (role and m['role'] == role) or (name and m['name'] == name):
                return m
        raise AssertionError('no mailbox %s %s' % (role, name))

    def upload(self, data, content_type='application/octet-stream'):
        st, _, body = self.request('POST', '/jmap/upload/%s/' % self.account,
                                   data, {'Content-Type': content_type})
        assert st == 201, (st, body)
        return json.loads(body)

    def download(self, blob, name='x', type_=None):
        path = '/jmap/download/%s/%s/%s' % (self.account, blob,
                                            urllib.parse.quote(name, safe=''))
        if type_:
            path += '?type=' + type_
        return self.request('GET', path)

    def state(self, type_):
        return self.ok('%s/get' % type_, {'ids': []})['state']


class EventSource:
    """A raw EventSource reader: events as (event, data) tuples."""

    def __init__(self, env, jmap, query='types=*&closeafter=no&ping=0',
                 headers=None):
        self.sock = socket.create_connection(('127.0.0.1', env.ports['http']),
                                             timeout=30)
        extra = ''.join('%s: %s\r\n' % kv for kv in (headers or {}).items())
        req = ('GET /jmap/eventsource/?%s HTTP/1.1\r\nHost: localhost\r\n'
               'Authorization: %s\r\nAccept: text/event-stream\r\n%s\r\n'
               % (query, jmap.auth, extra))
        self.sock.sendall(req.encode())
        self.buf = b''
        self.head = self._until(b'\r\n\r\n')
        self.status = int(self.head.split(b' ')[1])

    def _until(self, sep, deadline=None):
        while sep not in self.buf:
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _chunk(self, deadline):
        """One chunk of the chunked body."""
        size = int(self._until(b'\r\n', deadline).strip(), 16)
        if size == 0:
            raise EOFError
        while len(self.buf) < size + 2:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size + 2:]
        return data

    def event(self, timeout=5):
        """The next event (name, data), or None after timeout. One chunk
        may carry several events (writes queued together are flushed in
        one), and an event may span chunks: what follows the event's
        blank line is kept for the next call."""
        deadline = time.time() + timeout
        text = getattr(self, '_pending', b'')
        try:
            while b'\n\n' not in text:
                text += self._chunk(deadline)
        except TimeoutError:
            self._pending = text
            return None
        i = text.index(b'\n\n')
        text, self._pending = text[:i], text[i + 2:]
        name, data = None, []
        for line in text.decode().split('\n'):
            if line.startswith('event:'):
                name = line[6:].strip()
            elif line.startswith('data:'):
                data.append(line[5:].strip())
        return name, '\n'.join(data)

    def state_event(self, timeout=5):
        """The next StateChange (parsed), skipping pings; None if none."""
        deadline = time.time() + timeout
        while True:
            ev = self.event(max(0.01, deadline - time.time()))
            if ev is None:
                return None
            if ev[0] == 'state':
                return json.loads(ev[1])

    def drain(self, quiet=0.3):
        """Reads events until none comes for quiet seconds (what earlier
        changes still had on the way)."""
        while self.event(timeout=quiet) is not None:
            pass

    def close(self):
        self.sock.close()
