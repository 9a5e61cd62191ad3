#!/usr/bin/env python3
"""A damaged message in the middle of a FETCH range (issue 18, "a damaged
object (a NO, never wrong bytes)"; DESIGN.md, durability).

Five messages; the third is big (its body is a file: the account's blobs/
on the embedded backend, blob_dir on postgres) and its bytes are then
changed on disk. A client that fetches 1:5 BODY[] (as Thunderbird and
mbsync fetch ranges) gets:
  - the four good messages, whole and exact, and nothing of the damaged
    one (never wrong bytes);
  - a tagged NO naming the damaged UID, with a response code: the fetch
    did not stop at the damaged one, so one bad message does not keep a
    device from ever downloading the rest of the folder;
  - \\Seen on the four it received and not on the damaged one (a message
    the user never got must not look read on every device);
and a second FETCH of the damaged message alone gets NO again, never
bytes. `loftctl check` names the damage.
Runs on both backends (tests/CMakeLists.txt, pg/)."""

import hashlib
import os
import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

A = 'alice@example.test'
r = Results()
SMALL = 'Subject: small %d\r\nFrom: a@example.test\r\n\r\nbody %d\r\n'
BIG = ('Subject: big\r\nFrom: a@example.test\r\n\r\n'
       + ('0123456789abcdef' * 8 + '\r\n') * 3000)   # ~400 KB: a file


def append(c, text):
    _, t = c.run('APPEND INBOX {%d+}\r\n%s' % (len(text), text), 'OK')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(m.group(1)) if m else None


def files_holding(root, needle):
    out = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                with open(p, 'rb') as f:
                    if needle in f.read():
                        out.append(p)
            except OSError:
                pass
    return out


def bodies(lines):
    """{uid: body bytes (as str)} of FETCH responses with BODY[]."""
    out = {}
    for l in lines:
        m = re.match(r'\* \d+ FETCH \(.*UID (\d+).*BODY\[\] \{(\d+)\}\r\n',
                     l, re.S)
        if m:
            start = l.index('}\r\n') + 3
            out[int(m.group(1))] = l[start:start + int(m.group(2))]
    return out


with Loft() as env:
    c = Conv(env.raw('imap'), r, timeout=120)
    c.login(A, env.users[A])
    msgs = [SMALL % (1, 1), SMALL % (2, 2), BIG, SMALL % (4, 4),
            SMALL % (5, 5)]
    uids = [append(c, m) for m in msgs]
    bad = uids[2]
    # the big body's file: raw bytes under the data dir or blob_dir
    marker = BIG.encode()[-2000:]
    paths = files_holding(env.dir, marker)
    r.check('the big body is one file on disk', len(paths) == 1, paths)
    for p in paths:
        with open(p, 'r+b') as f:
            f.seek(os.path.getsize(p) // 2)
            f.write(b'#')

    c.run('SELECT INBOX', 'OK', [r'^\* 5 EXISTS'])
    lines, tagged = c.run('UID FETCH 1:* (UID BODY[])',
                          r'NO \[(UNAVAILABLE|CORRUPTION)\] .*UID %d' % bad,
                          name='FETCH 1:5 BODY[] over a damaged message')
    got = bodies(lines)
    good = {u: m for u, m in zip(uids, msgs) if u != bad}
    r.check('the four good messages are sent, exact',
            {u: got.get(u) for u in good} == good,
            sorted(got))
    r.check('nothing of the damaged message is sent', bad not in got,
            sorted(got))
    # its flags may be reported (this FETCH set and took back \Seen, a
    # new MODSEQ), never with \Seen and never with data
    r.check('no data and no \\Seen for the damaged message',
            not any(re.match(r'\* \d+ FETCH \(.*UID %d[ )]' % bad, l) and
                    ('BODY' in l or '\\Seen' in l) for l in lines),
            [l[:80] for l in lines])

    lines, _ = c.run('UID FETCH 1:* (UID FLAGS)', 'OK')
    seen = {int(m.group(1)): '\\Seen' in m.group(2) for m in
            (re.match(r'\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)', l)
             for l in lines) if m}
    r.check('\\Seen on the four received, not on the damaged one',
            seen == {u: u != bad for u in uids}, seen)

    lines, _ = c.run('UID FETCH %d (BODY.PEEK[])' % bad,
                     r'NO \[(UNAVAILABLE|CORRUPTION)\]',
                     name='FETCH of the damaged message alone')
    r.check('... and no bytes', bodies(lines) == {}, lines)
    lines, _ = c.run('UID FETCH %d (BODY.PEEK[HEADER])' % uids[3], 'OK')
    r.check('a good message after it still reads', any(
        'Subject: small 4' in l for l in lines), lines)
    c.close()

    rc, out, err = env.loftctl('check', A)
    r.check('loftctl check fails naming the damage',
            rc != 0 and 'damaged' in (out + err).lower(),
            (rc, out[-300:], err[-300:]))

sys.exit(r.finish())
