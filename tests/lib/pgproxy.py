"""A TCP proxy in front of PostgreSQL that reads the wire protocol of
what clients send and can cut a connection at its COMMIT (tests of a
COMMIT whose answer was lost, docs/scale-out.md "Failures"):

    from pgproxy import PgProxy

    with PgProxy(pg.port) as px:
        px.conninfo_for('loft_1')      # through the proxy
        px.cut_commit('after', 'INSERT INTO msg')
        ... the next COMMIT of a transaction that ran a statement whose
        text holds 'INSERT INTO msg' reaches the server (it commits),
        its answer never reaches the client: both sides are closed.
        px.cut_commit('before', ...)   # closed before the server sees
                                       # the COMMIT: it rolls back
        px.cuts                        # cuts made so far

Statements are matched by their text in Parse ('P') and found again by
name in Bind ('B'), so prepared statements made earlier on the
connection count too; simple queries ('Q') by their text. Everything is
forwarded unchanged otherwise."""

import socket
import struct
import threading

SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


class _Pair:
    def __init__(self, proxy, client, server):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.statements = {}       # prepared name -> text
        self.marked = False        # this transaction ran a marked statement
        self.drop_answer = False   # 'after': the server's next bytes
        self.closed = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    @staticmethod
    def _recv_exact(sock, n):
        out = b''
        while len(out) < n:
            data = sock.recv(n - len(out))
            if not data:
                raise EOFError
            out += data
        return out

    def client_to_server(self):
        try:
            # untyped: SSL/GSS requests (answered by the server), then
            # the startup message
            while True:
                head = self._recv_exact(self.client, 8)
                n, code = struct.unpack('!ii', head)
                rest = self._recv_exact(self.client, n - 8)
                self.server.sendall(head + rest)
                if code not in (SSL_REQUEST, GSS_REQUEST):
                    break
            while True:
                head = self._recv_exact(self.client, 5)
                kind = head[:1]
                n = struct.unpack('!i', head[1:])[0]
                body = self._recv_exact(self.client, n - 4)
                if self._cut_here(kind, body):
                    return
                self.server.sendall(head + body)
        except (EOFError, OSError):
            pass
        finally:
            self.close()

    def _cut_here(self, kind, body):
        """Looks at one message from the client; True once it cut."""
        want = self.proxy.want
        if kind == b'P':
            name, rest = body.split(b'\0', 1)
            text = rest.split(b'\0', 1)[0]
            self.statements[name] = text
            if want and want[1] in text:
                self.marked = True
        elif kind == b'B':
            _, name, _ = body.split(b'\0', 2)
            if want and want[1] in self.statements.get(name, b''):
                self.marked = True
        elif kind == b'Q':
            text = body.rstrip(b'\0').strip().upper()
            if want and want[1] in body:
                self.marked = True
            if text in (b'BEGIN', b'ROLLBACK') or text.startswith(b'BEGIN '):
                self.marked = False
            elif text == b'COMMIT':
                marked, self.marked = self.marked, False
                with self.proxy.lock:
                    w = self.proxy.want
                    if not (marked and w):
                        return False
                    self.proxy.want = None
                    self.proxy.cuts.append(w[0])
                if w[0] == 'before':
                    self.close()
                    return True
                self.drop_answer = True
        return False

    def server_to_client(self):
        try:
            while True:
                data = self.server.recv(65536)
                if not data:
                    break
                if self.drop_answer:
                    break          # the COMMIT's answer: lost
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self.close()


class PgProxy:
    def __init__(self, port, host='127.0.0.1'):
        self.upstream = (host, port)
        self.lock = threading.Lock()
        self.want = None           # (mode, marker bytes)
        self.cuts = []
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.pairs = []
        threading.Thread(target=self._accept, daemon=True).start()

    def conninfo_for(self, db):
        return 'host=127.0.0.1 port=%d dbname=%s user=loft' % (self.port, db)

    def cut_commit(self, mode, marker):
        assert mode in ('before', 'after')
        with self.lock:
            self.want = (mode, marker.encode())

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.upstream, timeout=30)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            p = _Pair(self, c, s)
            self.pairs.append(p)
            threading.Thread(target=p.client_to_server, daemon=True).start()
            threading.Thread(target=p.server_to_client, daemon=True).start()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for p in self.pairs:
            p.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
