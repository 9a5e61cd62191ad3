"""IMAP conversation tests: send lines, expect server lines by regex.

    from imapconv import Conv
    c = Conv(env.raw('imap'), results)        # reads the greeting
    c.login('alice@example.test', 'tea-party-rabbit-hole')
    lines, tagged = c.run('SELECT INBOX', 'OK', [r'^\\* \\d+ EXISTS'])
    c.run('FETCH 1 (FLAGS', 'BAD \\[CLIENTBUG\\]')
    c.send(b'x IDLE\\r\\n'); c.expect(r'^\\+ ')

Responses are read whole: a line ending in a literal {n} is joined with
its n bytes and the rest of the line, so a pattern sees one response.
Every check goes to a loftenv.Results (its name is the command unless
given), and the transcript of the last exchange is printed on failure.
"""

import re
import socket
import time


class ConvError(Exception):
    pass


class Conv:
    def __init__(self, sock, results=None, greeting=r'^\* OK ', timeout=10):
        self.sock = sock
        self.results = results
        self.timeout = timeout
        self.buf = b''
        self.tagno = 0
        self.transcript = []
        if greeting is not None:
            self.greeting = self.expect(greeting, name='greeting')

    # ---- raw I/O -------------------------------------------------------

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8')
        self.transcript.append('C: %r' % data[:300])
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ConvError('timeout')
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ConvError('timeout')
        if not data:
            raise ConvError('connection closed')
        self.buf += data

    def read_response(self, timeout=None):
        """One response with literals joined; str (UTF-8, replace)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b''
        while True:
            while b'\r\n' not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b'\r\n', 1)
            out += line
            m = re.search(rb'\{(\d+)\+?\}$', line)
            if not m:
                break
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(deadline)
            out += b'\r\n' + self.buf[:n]
            self.buf = self.buf[n:]
        s = out.decode('utf-8', 'replace')
        self.transcript.append('S: ' + s[:300])
        return s

    def closed(self, timeout=None):
        """True if the server closes the connection (after any output)."""
        try:
            while True:
                self.read_response(timeout)
        except ConvError as e:
            return str(e) == 'connection closed'
        except OSError:
            return True

    # ---- checks ----------------------------------------------------------

    def check(self, name, cond, detail=''):
        if self.results is not None:
            if not cond:
                print('\n'.join(self.transcript[-12:]))
            self.results.check(name, cond, detail)
        elif not cond:
            raise AssertionError('%s: %s\n%s' % (name, detail,
                                                 '\n'.join(self.transcript[-12:])))
        return cond

    def pushed(self, pattern, name, before=None, timeout=None):
        """A push (IDLE, NOTIFY): reads unsolicited responses until one
        matches pattern, waited for, never slept for; before: a pattern
        that no response before it may match (what must not come)."""
        seen = []
        try:
            while True:
                line = self.read_response(timeout)
                if re.search(pattern, line, re.S):
                    break
                seen.append(line)
        except (ConvError, OSError) as e:
            return self.check(name, False, 'no %r pushed (%s); got %r'
                              % (pattern, e, seen))
        if before is not None:
            bad = [l for l in seen if re.search(before, l, re.S)]
            return self.check(name, not bad, 'unexpected %r before %r'
                              % (bad, pattern))
        return self.check(name, True)

    def expect(self, pattern, timeout=None, name=None):
        """Reads responses until one matches pattern; returns it (or None
        after a timeout, recorded as a failure)."""
        try:
            while True:
                r = self.read_response(timeout)
                if re.search(pattern, r, re.S):
                    self.check(name or pattern, True)
                    return r
        except (ConvError, OSError) as e:
            self.check(name or pattern, False, 'no %r (%s)' % (pattern, e))
            return None

    def next_tag(self):
        self.tagno += 1
        return 'c%d' % self.tagno

    def run(self, command, tagged='OK', untagged=(), absent=(), name=None,
            timeout=None):
        """Sends "tag command" and reads to the tagged reply. tagged: a
        regex for the reply after "tag " (e.g. 'NO \\[NONEXISTENT\\]').
        untagged: regexes each some untagged response must match; absent:
        regexes no untagged response may match. Returns (untagged list,
        tagged line)."""
        tag = self.next_tag()
        name = name or command.split('\r\n')[0][:60]
        self.transcript = []
        self.send('%s %s\r\n' % (tag, command))
        return self.collect(tag, tagged, untagged, absent, name, timeout)

    def collect(self, tag, tagged='OK', untagged=(), absent=(), name='',
                timeout=None):
        lines = []
        try:
            while True:
                r = self.read_response(timeout)
                if r.startswith(tag + ' '):
                    break
                lines.append(r)
        except (ConvError, OSError) as e:
            self.check(name, False, 'no tagged reply (%s)' % e)
            return lines, None
        self.check(name, re.match(r'%s %s' % (re.escape(tag), tagged), r, re.S)
                   is not None, 'tagged %r, wanted %r' % (r, tagged))
        for p in untagged:
            self.check('%s: %s' % (name, p),
                       any(re.search(p, l, re.S) for l in lines),
                       'no untagged %r in %r' % (p, lines))
        for p in absent:
            self.check('%s: not %s' % (name, p),
                       not any(re.search(p, l, re.S) for l in lines),
                       'unexpected %r in %r' % (p, lines))
        return lines, r

    def login(self, user, password):
        return self.run('LOGIN "%s" "%s"' % (user, password), 'OK',
                        name='login ' + user)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
