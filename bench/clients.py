"""Small asyncio protocol clients for the benchmarks: IMAP, POP3, LMTP.

They speak just enough of each protocol to drive a server hard and time it;
they are not general-purpose clients. Every call raises ProtocolError on an
unexpected reply, so a benchmark never counts a failure as a success.
"""

import asyncio
import base64
import re
import ssl
import time

LITERAL_RE = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ProtocolError(Exception):
    pass


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_conn(host, port, tls=False, limit=1 << 26):
    return await asyncio.open_connection(
        host, port, ssl=tls_context() if tls else None, limit=limit)


class Imap:
    """An IMAP connection. command() returns (untagged lines, tagged line);
    literals are folded into the line they belong to as raw bytes."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.tagn = 0

    @classmethod
    async def connect(cls, host, port, tls=False):
        r, w = await open_conn(host, port, tls)
        c = cls(r, w)
        greeting = await r.readline()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError("greeting: %r" % greeting[:100])
        return c

    async def read_response_line(self):
        """One logical response line, with literals inlined."""
        line = await self.r.readline()
        if not line:
            raise ProtocolError("connection closed")
        out = line
        m = LITERAL_RE.search(line)
        while m:
            out += await self.r.readexactly(int(m.group(1)))
            more = await self.r.readline()
            out += more
            m = LITERAL_RE.search(more)
        return out

    async def command(self, text, ok=True):
        self.tagn += 1
        tag = b"b%d" % self.tagn
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        return await self.read_until_tagged(tag, ok)

    async def read_until_tagged(self, tag, ok=True):
        untagged = []
        while True:
            line = await self.read_response_line()
            if line.startswith(tag + b" "):
                if ok and not line.startswith(tag + b" OK"):
                    raise ProtocolError("%s -> %r" % (tag, line[:200]))
                return untagged, line
            untagged.append(line)

    async def count_untagged(self, text):
        """Like command() but only counts untagged lines (for huge FETCH
        output: no list of 100,000 lines kept in memory)."""
        self.tagn += 1
        tag = b"b%d" % self.tagn
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        n = 0
        while True:
            line = await self.read_response_line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ProtocolError("%s -> %r" % (tag, line[:200]))
                return n
            n += 1

    async def login(self, user, password):
        await self.command('LOGIN "%s" "%s"' % (user, password))

    async def authenticate_plain(self, user, password):
        ir = base64.b64encode(b"\0" + user.encode() + b"\0" +
                              password.encode()).decode()
        await self.command("AUTHENTICATE PLAIN " + ir)

    async def idle_start(self):
        self.tagn += 1
        self.idle_tag = b"b%d" % self.tagn
        self.w.write(self.idle_tag + b" IDLE\r\n")
        line = await self.r.readline()
        if not line.startswith(b"+"):
            raise ProtocolError("IDLE: %r" % line[:100])

    async def wait_exists(self):
        while True:
            line = await self.r.readline()
            if not line:
                raise ProtocolError("closed in IDLE")
            if line.endswith(b"EXISTS\r\n"):
                return int(line.split()[1])

    async def wait_exists_at(self):
        """Waits for an untagged EXISTS; returns when it was read."""
        await self.wait_exists()
        return time.perf_counter()

    async def idle_done(self):
        self.w.write(b"DONE\r\n")
        await self.read_until_tagged(self.idle_tag)

    async def close(self):
        try:
            self.w.write(b"z LOGOUT\r\n")
            await asyncio.wait_for(self.w.drain(), 2)
            self.w.close()
        except Exception:
            pass


class Pop3:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, host, port, tls=False):
        r, w = await open_conn(host, port, tls)
        c = cls(r, w)
        line = await r.readline()
        if not line.startswith(b"+OK"):
            raise ProtocolError("greeting: %r" % line)
        return c

    async def command(self, text):
        self.w.write(text.encode() + b"\r\n")
        line = await self.r.readline()
        if not line.startswith(b"+OK"):
            raise ProtocolError("%s -> %r" % (text.split()[0], line[:200]))
        return line

    async def multiline(self, text):
        """Sends a command with a multi-line answer; returns (lines, bytes).
        Reads up to the terminating CRLF.CRLF in one go: line by line,
        Python, not the server, set the pace of RETR."""
        await self.command(text)
        return await self.read_multi()

    async def pipelined_multi(self, texts, window=200):
        """Sends the commands pipelined (RFC 2449 6.6; at most window
        unanswered), each with a multi-line answer; returns the total
        bytes of the answers."""
        total = 0
        for k in range(0, len(texts), window):
            part = texts[k:k + window]
            self.w.write(b"".join(t.encode() + b"\r\n" for t in part))
            for t in part:
                line = await self.r.readline()
                if not line.startswith(b"+OK"):
                    raise ProtocolError("%s -> %r" % (t.split()[0], line[:200]))
                _, size = await self.read_multi()
                total += size
        return total

    async def read_multi(self):
        # Chunks up to each ".CRLF"; the answer ends at the first one that
        # starts a line (dot-stuffing makes that unambiguous).
        chunks = []
        while True:
            try:
                chunk = await self.r.readuntil(b".\r\n")
            except asyncio.IncompleteReadError:
                raise ProtocolError("closed")
            chunks.append(chunk)
            if chunk.endswith(b"\r\n.\r\n") or (
                    chunk == b".\r\n" and
                    (len(chunks) == 1 or chunks[-2].endswith(b"\r\n"))):
                break
        data = b"".join(chunks)[:-3]
        return data.count(b"\n"), len(data)

    async def login(self, user, password):
        await self.command("USER " + user)
        await self.command("PASS " + password)

    async def close(self):
        try:
            await self.command("QUIT")
            self.w.close()
        except Exception:
            pass


class Lmtp:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, host, port):
        r, w = await open_conn(host, port)
        c = cls(r, w)
        line = await r.readline()
        if not line.startswith(b"220"):
            raise ProtocolError("greeting: %r" % line)
        c.w.write(b"LHLO bench.example\r\n")
        await c.reply()
        return c

    async def reply(self):
        """Reads a (multi-line) reply; returns its last line."""
        while True:
            line = await self.r.readline()
            if not line:
                raise ProtocolError("closed")
            if line[3:4] != b"-":
                return line

    async def deliver(self, sender, rcpts, data):
        """Delivers one message; raises unless every recipient got 2xx."""
        w = self.w
        w.write(b"MAIL FROM:<%s>\r\n" % sender.encode())
        for rc in rcpts:
            w.write(b"RCPT TO:<%s>\r\n" % rc.encode())
        w.write(b"DATA\r\n")
        line = await self.reply()
        if not line.startswith(b"250"):
            raise ProtocolError("MAIL: %r" % line)
        for _ in rcpts:
            line = await self.reply()
            if not line.startswith(b"250"):
                raise ProtocolError("RCPT: %r" % line)
        line = await self.reply()
        if not line.startswith(b"354"):
            raise ProtocolError("DATA: %r" % line)
        body = data.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        w.write(body + b".\r\n")
        for _ in rcpts:
            line = await self.reply()
            if not line.startswith(b"250"):
                raise ProtocolError("after DATA: %r" % line)

    async def close(self):
        try:
            self.w.write(b"QUIT\r\n")
            await self.reply()
            self.w.close()
        except Exception:
            pass
