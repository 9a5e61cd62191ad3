#!/usr/bin/env python3
"""IMAP state rules that a stress client found broken (issue 9):

1. a keyword is announced in "* FLAGS" (and PERMANENTFLAGS) before any
   FETCH shows it, in every session with the mailbox selected, including
   the session that made it;
3. APPEND with a literal8 keeps the octets as sent (BINARY[1], BINARY.SIZE);
4. ESEARCH MIN or MAX alone with MODSEQ gives that message's modseq;
5. after another session's change a CONDSTORE session gets an untagged
   "* OK [HIGHESTMODSEQ n]" (NOOP, IDLE, after EXPUNGE), never one that
   covers an expunge it has not been told of yet;
6. ID with the RFC 2971 maximum is accepted before login, and the
   pre-login line limit still holds past it;
7. LIST (SUBSCRIBED RECURSIVEMATCH) gives CHILDINFO only for a parent
   whose subscribed child the pattern does not return itself;
and that STORE .SILENT never hides another session's change of the same
message (the client's picture would be wrong with no way to tell).
"""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

USER = 'alice@example.test'
r = Results()


def msg(n):
    return 'Subject: state %d\r\nFrom: a@example.test\r\n\r\nbody %d\r\n' % (n, n)


def append(c, text, flags=''):
    data = text.encode() if isinstance(text, str) else text
    tag = c.next_tag()
    c.send(b'%s APPEND INBOX %s{%d+}\r\n' % (tag.encode(), flags.encode() + (b' ' if flags else b''),
                                            len(data)) + data + b'\r\n')
    c.collect(tag, 'OK', name='append')


class FlagsWatch:
    """Follows the FLAGS list in a session's untagged responses and
    reports every FETCH that shows a keyword not announced before it."""

    def __init__(self, name):
        self.name = name
        self.known = set()

    def feed(self, lines):
        bad = []
        for l in lines:
            m = re.match(r'^\* FLAGS \((.*)\)$', l)
            if m:
                self.known = set(f.lower() for f in m.group(1).split())
                continue
            m = re.match(r'^\* \d+ FETCH \(.*FLAGS \(([^)]*)\)', l)
            if m:
                for f in m.group(1).split():
                    if not f.startswith('\\') and f.lower() not in self.known:
                        bad.append(l)
        r.check('%s: keywords announced before FETCH' % self.name, not bad, bad)


def modseq_of(line):
    m = re.search(r'MODSEQ \((\d+)\)', line)
    return int(m.group(1)) if m else None


with Loft() as env:
    PW = env.users[USER]
    a = Conv(env.raw('imap'), r)
    b = Conv(env.raw('imap'), r)
    a.login(USER, PW)
    b.login(USER, PW)
    for i in range(1, 5):
        append(b, msg(i))

    # ---- 1. keywords: FLAGS before FETCH -----------------------------------
    wa, wb = FlagsWatch('session A'), FlagsWatch('session B')
    lines, _ = a.run('SELECT INBOX', 'OK')
    wa.feed(lines)
    lines, _ = b.run('SELECT INBOX', 'OK')
    wb.feed(lines)
    b.run('STORE 2 +FLAGS.SILENT ($Label9)', 'OK')
    lines, _ = a.run('NOOP', 'OK', [r'^\* 2 FETCH .*\$Label9', r'^\* FLAGS \(.*\$Label9'],
                     name='other session adds a keyword')
    wa.feed(lines)
    r.check('FLAGS comes before the FETCH that uses it',
            [i for i, l in enumerate(lines) if l.startswith('* FLAGS')][:1] <
            [i for i, l in enumerate(lines) if 'FETCH' in l][:1], lines)
    r.check('PERMANENTFLAGS follows with the new keyword and \\*',
            any(re.search(r'^\* OK \[PERMANENTFLAGS \(.*\$Label9.*\\\*\)\]', l)
                for l in lines), lines)
    # the same within one session: STORE reply and FETCH
    lines, _ = b.run('STORE 1 +FLAGS ($hello $world)', 'OK')
    wb.feed(lines)
    append(b, msg(5), '($new1)')
    lines, _ = b.run('FETCH 1:* (FLAGS)', 'OK')
    wb.feed(lines)
    lines, _ = a.run('FETCH 1:* (UID FLAGS)', 'OK')
    wa.feed(lines)
    # an IDLE session is told too
    a.send('i1 IDLE\r\n')
    a.expect(r'^\+ ')
    b.run('STORE 3 +FLAGS.SILENT ($idlekw)', 'OK')
    got = []
    while True:
        line = a.read_response(timeout=10)
        got.append(line)
        if 'FETCH' in line:
            break
    a.send('DONE\r\n')
    lines, _ = a.collect('i1', 'OK', name='IDLE DONE')
    wa.feed(got + lines)
    # EXAMINE: read-only PERMANENTFLAGS ()
    e = Conv(env.raw('imap'), r)
    e.login(USER, PW)
    lines, _ = e.run('EXAMINE INBOX', 'OK', [r'^\* OK \[PERMANENTFLAGS \(\)\]'])
    we = FlagsWatch('read-only session')
    we.feed(lines)
    b.run('STORE 4 +FLAGS.SILENT ($ro)', 'OK')
    lines, _ = e.run('NOOP', 'OK', [r'^\* OK \[PERMANENTFLAGS \(\)\]'],
                     name='read-only session: PERMANENTFLAGS ()')
    we.feed(lines)
    e.run('LOGOUT', 'OK')

    # ---- .SILENT never hides another session's change ----------------------
    a.run('ENABLE CONDSTORE', 'OK')
    b.run('STORE 1 +FLAGS.SILENT (\\Flagged)', 'OK')
    # a has not been told yet; its own .SILENT STORE of the same message
    # must still bring b's change to light
    lines, _ = a.run('STORE 1 +FLAGS.SILENT (\\Answered)', 'OK')
    r.check('.SILENT STORE reports the other session\'s \\Flagged',
            any(re.search(r'^\* 1 FETCH .*FLAGS \([^)]*\\Flagged', l) for l in lines),
            lines)
    lines, _ = a.run('FETCH 1 (FLAGS MODSEQ)', 'OK')
    final = [l for l in lines if 'FETCH' in l]
    r.check('both flags set', final and '\\Answered' in final[0] and '\\Flagged' in final[0],
            final)

    # ---- 5. untagged HIGHESTMODSEQ -----------------------------------------
    b.run('STORE 2 +FLAGS.SILENT (\\Seen)', 'OK')
    lines, t = a.run('NOOP', 'OK', [r'^\* 2 FETCH', r'^\* OK \[HIGHESTMODSEQ \d+\]'],
                     name='NOOP after another session\'s STORE')
    fetch_ms = [modseq_of(l) for l in lines if 'FETCH' in l]
    hms = [int(m.group(1)) for l in lines
           for m in [re.search(r'^\* OK \[HIGHESTMODSEQ (\d+)\]', l)] if m]
    r.check('HIGHESTMODSEQ covers the FETCH MODSEQ',
            hms and fetch_ms and hms[-1] >= max(fetch_ms), (hms, fetch_ms))
    r.check('HIGHESTMODSEQ after the FETCH it covers',
            lines.index([l for l in lines if 'HIGHESTMODSEQ' in l][-1]) >
            lines.index([l for l in lines if 'FETCH' in l][-1]) if hms and fetch_ms else False,
            lines)
    # expunge by another session: held back during FETCH by number, and
    # no HIGHESTMODSEQ may cover it until it has been sent
    b.run('STORE 4 +FLAGS.SILENT (\\Deleted)', 'OK')
    lines, _ = a.run('NOOP', 'OK')
    before = max([int(m.group(1)) for l in lines
                  for m in [re.search(r'HIGHESTMODSEQ (\d+)', l)] if m] or [0])
    b.run('EXPUNGE', 'OK')
    b.run('STORE 1 +FLAGS.SILENT (\\Draft)', 'OK')
    lines, _ = a.run('FETCH 1 (FLAGS)', 'OK', absent=[r'EXPUNGE'],
                     name='FETCH by number holds the expunge back')
    held = [int(m.group(1)) for l in lines for m in [re.search(r'HIGHESTMODSEQ (\d+)', l)] if m]
    lines2, _ = a.run('NOOP', 'OK', [r'^\* 4 EXPUNGE', r'^\* OK \[HIGHESTMODSEQ \d+\]'],
                      name='NOOP reports the expunge and HIGHESTMODSEQ')
    after = [int(m.group(1)) for l in lines2 for m in [re.search(r'HIGHESTMODSEQ (\d+)', l)] if m]
    r.check('no HIGHESTMODSEQ past a held-back expunge',
            all(h <= before for h in held), (before, held))
    r.check('HIGHESTMODSEQ after the EXPUNGE',
            after and lines2.index([l for l in lines2 if 'HIGHESTMODSEQ' in l][-1]) >
            lines2.index([l for l in lines2 if 'EXPUNGE' in l][0]), lines2)
    # IDLE
    a.send('i2 IDLE\r\n')
    a.expect(r'^\+ ')
    b.run('STORE 3 +FLAGS.SILENT (\\Seen)', 'OK')
    a.expect(r'^\* 3 FETCH', name='IDLE: FETCH')
    a.expect(r'^\* OK \[HIGHESTMODSEQ \d+\]', name='IDLE: HIGHESTMODSEQ follows')
    a.send('DONE\r\n')
    a.collect('i2', 'OK')
    # a session without CONDSTORE gets none
    lines, _ = b.run('NOOP', 'OK', absent=[r'HIGHESTMODSEQ'], name='no CONDSTORE: none')

    # ---- 4. ESEARCH MIN / MAX with MODSEQ ----------------------------------
    lines, _ = a.run('FETCH 1:* (MODSEQ)', 'OK')
    ms = {}
    for l in lines:
        m = re.match(r'^\* (\d+) FETCH .*MODSEQ \((\d+)\)', l)
        if m:
            ms[int(m.group(1))] = int(m.group(2))
    first, last = min(ms), max(ms)
    for opts, want in (('MIN', ms[first]), ('MAX', ms[last]),
                       ('MIN MAX', max(ms[first], ms[last])),
                       ('MIN COUNT', max(ms.values())), ('ALL', max(ms.values()))):
        lines, _ = a.run('SEARCH RETURN (%s) MODSEQ 1' % opts, 'OK')
        got = [int(m.group(1)) for l in lines
               for m in [re.search(r'MODSEQ (\d+)$', l)] if m]
        r.check('ESEARCH RETURN (%s) MODSEQ' % opts, got == [want], (lines, want, ms))

    # ---- 3. APPEND literal8 keeps the octets -------------------------------
    body = b'ab\ncd\x00e'
    m8 = (b'From: a@example.test\r\nSubject: bin\r\nContent-Type: application/octet-stream\r\n'
          b'Content-Transfer-Encoding: binary\r\n\r\n' + body)
    tag = a.next_tag()
    a.send(b'%s APPEND INBOX ~{%d+}\r\n' % (tag.encode(), len(m8)) + m8 + b'\r\n')
    _, t = a.collect(tag, r'OK \[APPENDUID \d+ (\d+)\]', name='APPEND literal8')
    uid = re.search(r'APPENDUID \d+ (\d+)', t or '').group(1)
    a.run('NOOP', 'OK')
    raw = None
    tag = a.next_tag()
    a.send('%s UID FETCH %s (BINARY.SIZE[1] BINARY.PEEK[1] RFC822.SIZE)\r\n' % (tag, uid))
    data = b''
    while not re.search(rb'\r\n' + tag.encode() + rb' OK', data):
        a._fill(__import__('time').monotonic() + 10)
        data, a.buf = a.buf, b''
        raw = (raw or b'') + data
        data = raw
    r.check('BINARY.SIZE[1] is the octets sent', b'BINARY.SIZE[1] %d' % len(body) in raw, raw[:300])
    r.check('BINARY[1] returns them unchanged', b'BINARY[1] ~{%d}\r\n' % len(body) + body in raw,
            raw[:300])
    r.check('RFC822.SIZE is the size sent', b'RFC822.SIZE %d' % len(m8) in raw, raw[:300])

    # ---- 7. LIST (SUBSCRIBED RECURSIVEMATCH) ----------------------------------
    for cmd in ('CREATE Foo/Bar', 'CREATE Foo/Baz', 'CREATE Tofu/Sub/Deep',
                'SUBSCRIBE Foo/Bar', 'SUBSCRIBE Tofu/Sub/Deep', 'CREATE Moo', 'SUBSCRIBE Moo',
                'SUBSCRIBE Moo/Kid'):
        a.run(cmd, 'OK')
    A = r'\* LIST \([^)]*\) "/" '   # any attributes
    S = r'\* LIST \([^)]*\\Subscribed[^)]*\) "/" '
    CI = r' \("CHILDINFO" \("SUBSCRIBED"\)\)$'
    a.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"', 'OK',
          ['^' + S + '"Foo/Bar"$', '^' + S + '"Tofu/Sub/Deep"$', '^' + S + '"Moo"$'],
          absent=[r'"Foo"', r'"Tofu"', r'"Tofu/Sub"', r'CHILDINFO'],
          name='"*": the children are listed, their parents not')
    a.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', 'OK',
          ['^' + A + '"Foo"' + CI, '^' + A + '"Tofu"' + CI, '^' + S + '"Moo"' + CI],
          absent=[r'Foo/Bar'], name='"%": parents get CHILDINFO')
    a.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Foo" "Foo/%")', 'OK',
          ['^' + S + '"Foo/Bar"$'], absent=[r'CHILDINFO', r'"Foo"$'],
          name='two patterns: the child matches one, no CHILDINFO')
    a.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Tofu/%"', 'OK',
          ['^' + A + '"Tofu/Sub"' + CI], name='deeper child left out by "%"')
    a.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Moo*"', 'OK',
          ['^' + S + '"Moo"$'], absent=[r'CHILDINFO'],
          name='subscribed parent, listed child: no CHILDINFO')

    # ---- 6. ID with the RFC 2971 maximum, before login -----------------------
    p = Conv(env.raw('imap'), r)
    fields = ' '.join('"field%02d" "%s"' % (i, ('\\"' * 512)) for i in range(30))
    p.run('ID (%s)' % fields, 'OK', [r'^\* ID '], name='ID with 30 fields of 1024 escaped octets')
    p.run('ID (%s)' % ' '.join('"f%02d" "%s"' % (i, 'v' * 1024) for i in range(30)), 'OK',
          name='ID with 30 plain 1024-octet values')
    p.run('ID (' + ' '.join('"f%d" {1024+}\r\n%s' % (i, 'w' * 1024) for i in range(30)) + ')',
          'OK', name='ID with literal values')
    p.run('ID ("x" "' + 'y' * 70000 + '")', r'BAD \[TOOBIG\]', name='pre-login line limit holds')
    p.run('ID ("f" "' + 'y' * 1025 + '")', r'BAD \[CLIENTBUG\]', name='value over 1024 octets')
    p.run('NOOP', 'OK', name='session goes on')
    p.login(USER, PW)

    wa.feed([])

sys.exit(r.finish())
