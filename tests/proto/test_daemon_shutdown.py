"""loftd says goodbye on SIGTERM: every idle IMAP session (plain and
IMAPS, logged in or not) gets "* BYE Server shutting down" (RFC 9051
7.1.5) and then EOF, an LMTP session gets 421 (RFC 5321 3.8), a POP3
session "-ERR [SYS/TEMP] Server shutting down" (RFC 3206; a DELE it made
is not applied), and loftd exits 0 within its one-second grace."""

import ssl
import sys
import time

from loftenv import SLOW, Loft, Results

r = Results()


def read_line(s):
    data = b''
    while not data.endswith(b'\r\n'):
        c = s.recv(1)
        if not c:
            break
        data += c
    return data


def read_to_eof(s):
    """Everything until EOF; None if the peer never closed."""
    data = b''
    try:
        while True:
            c = s.recv(4096)
            if not c:
                return data
            data += c
    except ssl.SSLEOFError:
        return data    # closed without close_notify: still an EOF
    except (TimeoutError, OSError):
        return None


def main():
    with Loft() as env:
        sessions = []
        for tls in (False, True):
            s = env.raw('imaps' if tls else 'imap')
            r.check('greeting tls=%s' % tls, read_line(s).startswith(b'* OK'))
            s.sendall(b'a LOGIN alice@example.test tea-party-rabbit-hole\r\n')
            line = read_line(s)
            while line.startswith(b'* '):
                line = read_line(s)
            r.check('login tls=%s' % tls, line.startswith(b'a OK'), line)
            sessions.append(('imap tls=%s' % tls, s))
            # one more, not logged in
            s2 = env.raw('imaps' if tls else 'imap')
            read_line(s2)
            sessions.append(('imap preauth tls=%s' % tls, s2))
        pops = []
        for tls in (False, True):
            p = env.raw('pop3s' if tls else 'pop3')
            r.check('pop3 greeting tls=%s' % tls, read_line(p).startswith(b'+OK'))
            pops.append(('pop3 preauth tls=%s' % tls, p))
        # One logged in, with a message marked for deletion.
        lmc = env.lmtp()
        lmc.sendmail('a@remote.test', ['alice@example.test'],
                     b'Subject: keep me\r\n\r\nbody\r\n')
        lmc.quit()
        p = env.raw('pop3')
        read_line(p)
        pw = env.users['alice@example.test'].encode()
        for cmd in (b'USER alice@example.test', b'PASS ' + pw, b'DELE 1'):
            p.sendall(cmd + b'\r\n')
            line = read_line(p)
            r.check('pop3 %s' % cmd.split()[0].decode(), line.startswith(b'+OK'), line)
        pops.append(('pop3 with DELE', p))
        lm = env.raw('lmtp')
        r.check('lmtp greeting', read_line(lm).startswith(b'220'))
        lm.sendall(b'LHLO test\r\n')
        line = read_line(lm)
        while line.startswith(b'250-'):
            line = read_line(lm)
        r.check('lhlo', line.startswith(b'250 '), line)

        for _, s in sessions + pops + [('lmtp', lm)]:
            s.settimeout(10 * SLOW)
        t0 = time.monotonic()
        rc = env.stop()
        took = time.monotonic() - t0
        r.check('loftd exits 0', rc == 0, rc)
        r.check('stop is quick', took < 5 * SLOW, took)
        for name, s in sessions:
            got = read_to_eof(s)
            r.check('%s: BYE then EOF' % name,
                    got == b'* BYE Server shutting down\r\n', got)
            s.close()
        got = read_to_eof(lm)
        r.check('lmtp: 421 then EOF',
                got is not None and got.startswith(b'421 4.3.2 ') and
                got.endswith(b'Server shutting down\r\n') and
                got.count(b'\r\n') == 1, got)
        lm.close()
        for name, s in pops:
            got = read_to_eof(s)
            r.check('%s: -ERR [SYS/TEMP] then EOF' % name,
                    got == b'-ERR [SYS/TEMP] Server shutting down\r\n', got)
            s.close()
        # The DELE of the session that was cut off was not applied.
        env.start()
        c = env.pop3_login('alice@example.test')
        r.check('DELE not applied at shutdown', c.stat()[0] == 1, c.stat())
        c.quit()
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
