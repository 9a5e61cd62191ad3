#!/usr/bin/env python3
"""ESORT, CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267) and PARTIAL (RFC
9394): ESEARCH from SORT in sort order, PARTIAL pages of SEARCH, SORT and
FETCH results (from the start and from the end), RETURN (UPDATE)
contexts whose ADDTO/REMOVEFROM updates, replayed by the client, always
give the result a new search gives (while another session flags, appends
and expunges), NOUPDATE, CANCELUPDATE, and the bad input each must
refuse (ranges that overflow, mixed signs, PARTIAL with ALL)."""

import random
import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

USER = 'alice@example.test'
r = Results()


def msg(n, subject):
    return ('Subject: %s\r\nFrom: s%d@example.test\r\nDate: %d Jan 2024 10:00:00 +0000\r\n'
            '\r\nbody %d\r\n' % (subject, n, 1 + n % 28, n))


def append(c, text, flags=''):
    c.run('APPEND INBOX %s{%d+}\r\n%s' % (flags + ' ' if flags else '', len(text), text), 'OK')


def esearch(lines, tag=None):
    """{item: value} of the ESEARCH lines (for tag if given)."""
    out = []
    for l in lines:
        m = re.match(r'^\* ESEARCH \(TAG "([^"]+)"\)( UID)?(.*)$', l)
        if m and (tag is None or m.group(1) == tag):
            out.append((m.group(1), bool(m.group(2)), m.group(3).strip()))
    return out


def expand(s):
    """An ordered set "5,3:4,2" -> [5, 3, 4, 2]."""
    out = []
    for part in s.split(','):
        if ':' in part:
            a, b = (int(x) for x in part.split(':'))
            out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
        elif part:
            out.append(int(part))
    return out


def all_of(lines):
    e = esearch(lines)
    if not e:
        return None
    m = re.search(r'ALL (\S+)', e[-1][2])
    return expand(m.group(1)) if m else []


def apply_updates(result, lines, tag, sorted_):
    """Replays ADDTO/REMOVEFROM of tag on result (a list of numbers)."""
    for t, _, data in esearch(lines, tag):
        for kind, body in re.findall(r'(ADDTO|REMOVEFROM) \(([^)]*)\)', data):
            parts = body.split()
            for i in range(0, len(parts), 2):
                pos, nums = int(parts[i]), expand(parts[i + 1])
                for k, n in enumerate(nums):
                    if kind == 'REMOVEFROM':
                        if n in result:
                            result.remove(n)
                        else:
                            r.check('REMOVEFROM of a member', False, (n, result))
                    elif sorted_ and pos > 0:
                        result.insert(pos - 1 + k, n)
                    else:
                        result.append(n)
    return result


with Loft() as env:
    PW = env.users[USER]
    c = Conv(env.raw('imap'), r)
    o = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    o.login(USER, PW)
    lines, _ = c.run('CAPABILITY', 'OK')
    for cap in ('ESORT', 'CONTEXT=SEARCH', 'CONTEXT=SORT', 'PARTIAL'):
        r.check('capability %s' % cap, re.search(r'\b%s\b' % re.escape(cap), lines[0]) is not None,
                lines[0])
    subjects = ['delta', 'alpha', 'echo', 'charlie', 'bravo', 'foxtrot']
    for i, s in enumerate(subjects):
        append(o, msg(i + 1, s), '(\\Seen)' if i % 2 else '')
    c.run('SELECT INBOX', 'OK')
    o.run('SELECT INBOX', 'OK')

    # ---- ESORT ---------------------------------------------------------------
    lines, _ = c.run('SORT RETURN (ALL) (SUBJECT) UTF-8 ALL', 'OK')
    r.check('ESORT ALL in sort order', all_of(lines) == [2, 5, 4, 1, 3, 6], lines)
    lines, _ = c.run('SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL', 'OK',
                     [r'^\* ESEARCH \(TAG "\w+"\) MIN 2 MAX 6 COUNT 6$'])
    lines, _ = c.run('UID SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 ALL', 'OK',
                     [r'^\* ESEARCH \(TAG "\w+"\) UID ALL 6,3,1,4:5,2$'])
    c.run('SORT RETURN (PARTIAL 2:3) (SUBJECT) UTF-8 ALL', 'OK',
          [r'^\* ESEARCH \(TAG "\w+"\) PARTIAL \(2:3 5,4\)$'])
    c.run('SORT RETURN (PARTIAL -1:-2) (SUBJECT) UTF-8 ALL', 'OK',
          [r'^\* ESEARCH \(TAG "\w+"\) PARTIAL \(-1:-2 3,6\)$'])
    c.run('SORT (SUBJECT) UTF-8 ALL', 'OK', [r'^\* SORT 2 5 4 1 3 6$'],
          name='plain SORT unchanged')

    # ---- PARTIAL ---------------------------------------------------------------
    c.run('SEARCH RETURN (PARTIAL 2:3) ALL', 'OK', [r'PARTIAL \(2:3 2:3\)$'])
    c.run('SEARCH RETURN (PARTIAL 3:2) ALL', 'OK', [r'PARTIAL \(2:3 2:3\)$'],
          name='a range written backwards')
    c.run('UID SEARCH RETURN (PARTIAL -1:-2 COUNT) ALL', 'OK',
          [r'^\* ESEARCH \(TAG "\w+"\) UID PARTIAL \(-1:-2 5:6\) COUNT 6$'])
    c.run('SEARCH RETURN (PARTIAL 5:100) ALL', 'OK', [r'PARTIAL \(5:100 5:6\)$'])
    c.run('SEARCH RETURN (PARTIAL 7:9) ALL', 'OK', [r'PARTIAL \(7:9 NIL\)$'],
          name='a page past the end is NIL')
    c.run('SEARCH RETURN (PARTIAL -100:-7) ALL', 'OK', [r'PARTIAL \(-7:-100 NIL\)$'])
    c.run('SEARCH RETURN (PARTIAL 1:4294967295) ALL', 'OK', [r'PARTIAL \(1:4294967295 1:6\)$'])
    for bad in ('PARTIAL 0:5', 'PARTIAL 1:*', 'PARTIAL -1:5', 'PARTIAL 5',
                'PARTIAL "1:5"', 'PARTIAL 1:4294967296', 'PARTIAL -4294967296:-1',
                'PARTIAL 99999999999999999999:1', 'PARTIAL', 'PARTIAL 1:5 ALL',
                'PARTIAL 1:5 PARTIAL 6:9', 'ALL ALL', 'UPDATE UPDATE', 'BOGUS'):
        c.run('SEARCH RETURN (%s) ALL' % bad, r'BAD \[CLIENTBUG\]', name='refused: %s' % bad)
    c.run('SEARCH RETURN (SAVE PARTIAL 2:3) ALL', 'OK')
    c.run('FETCH $ (UID)', 'OK', [r'^\* 2 FETCH', r'^\* 3 FETCH'], absent=[r'^\* [1456] FETCH'],
          name='SAVE with PARTIAL saves the page')
    c.run('ENABLE CONDSTORE', 'OK')
    lines, _ = c.run('FETCH 1:* (MODSEQ)', 'OK')
    ms = {int(m.group(1)): int(m.group(2)) for l in lines
          for m in [re.match(r'^\* (\d+) FETCH .*MODSEQ \((\d+)\)', l)] if m}
    c.run('SEARCH RETURN (PARTIAL 1:2) MODSEQ 1', 'OK',
          [r'PARTIAL \(1:2 1:2\) MODSEQ %d$' % max(ms[1], ms[2])],
          name='MODSEQ of the page only')
    # FETCH PARTIAL (RFC 9394 3.3)
    c.run('UID FETCH 1:* (UID) (PARTIAL -1:-2)', 'OK', [r'^\* 5 FETCH', r'^\* 6 FETCH'],
          absent=[r'^\* [1-4] FETCH'], name='UID FETCH PARTIAL from the end')
    c.run('FETCH 1:* (FLAGS) (PARTIAL 2:3)', 'OK', [r'^\* 2 FETCH', r'^\* 3 FETCH'],
          absent=[r'^\* [1456] FETCH'], name='FETCH PARTIAL')
    c.run('FETCH 1:* (FLAGS) (PARTIAL 9:10)', 'OK', absent=[r'FETCH'],
          name='FETCH PARTIAL past the end')
    c.run('UID FETCH 1:* (FLAGS) (PARTIAL 1:5 PARTIAL 1:2)', r'BAD')
    c.run('UID FETCH 1:* (FLAGS) (PARTIAL)', r'BAD')
    c.run('UID FETCH 1:* (FLAGS) (PARTIAL 0:1)', r'BAD')

    # ---- contexts --------------------------------------------------------------
    tags = {}
    for name, cmd, sorted_ in (('unseen', 'SEARCH RETURN (UPDATE ALL) UNSEEN', False),
                               ('uidflag', 'UID SEARCH RETURN (UPDATE ALL) FLAGGED', False),
                               ('sorted', 'SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 NOT DELETED',
                                True),
                               ('usorted', 'UID SORT RETURN (UPDATE ALL) (REVERSE DATE) UTF-8 ALL',
                                True)):
        tag = c.next_tag()
        c.send('%s %s\r\n' % (tag, cmd))
        lines, _ = c.collect(tag, 'OK', name=cmd)
        tags[name] = (tag, cmd, sorted_, all_of(lines) or [])
    c.run('SEARCH RETURN (UPDATE COUNT) 1:3', 'OK', [r'^\* OK \[NOUPDATE "c\d+"\]'],
          name='message numbers: NOUPDATE')
    c.run('SEARCH RETURN (UPDATE PARTIAL 1:2) ALL', 'OK', [r'^\* OK \[NOUPDATE "c\d+"\]'])
    rng = random.Random(9)
    n = 6
    for round_no in range(12):
        act = rng.choice(['seen', 'unseen', 'flag', 'append', 'expunge', 'subject'])
        if act == 'append':
            n += 1
            append(o, msg(n, rng.choice(subjects) + ' %d' % n))
        elif act == 'expunge':
            o.run('STORE %d +FLAGS.SILENT (\\Deleted)' % rng.randint(1, 3), 'OK')
            o.run('EXPUNGE', 'OK')
        elif act in ('seen', 'unseen'):
            o.run('STORE %d:%d %sFLAGS.SILENT (\\Seen)' % (
                rng.randint(1, 2), rng.randint(3, 5), '+' if act == 'seen' else '-'), 'OK')
        elif act == 'flag':
            o.run('STORE %d +FLAGS.SILENT (\\Flagged)' % rng.randint(1, 4), 'OK')
        else:
            o.run('STORE 1 +FLAGS.SILENT (\\Deleted)', 'OK')
        lines, _ = c.run('NOOP', 'OK')
        # the updates use the numbering as it is when read: replay them
        # in order with the EXPUNGEs in between
        for name, (tag, cmd, sorted_, res) in tags.items():
            uid = cmd.startswith('UID')
            cur = list(res)
            for l in lines:
                m = re.match(r'^\* (\d+) EXPUNGE$', l)
                if m and not uid:
                    k = int(m.group(1))
                    cur = [x if x < k else x - 1 for x in cur if x != k]
                else:
                    cur = apply_updates(cur, [l], tag, sorted_)
            fresh, _ = c.run(cmd.replace('UPDATE ALL', 'ALL'), 'OK')
            want = all_of(fresh) or []
            if not sorted_:
                cur, want = sorted(cur), sorted(want)
            r.check('round %d (%s): %s replayed = a new search' % (round_no, act, name),
                    cur == want, (cur, want, lines))
            tags[name] = (tag, cmd, sorted_, cur)
    # an expunge: REMOVEFROM comes before the EXPUNGE, with its number
    o.run('STORE 1:* -FLAGS.SILENT (\\Seen)', 'OK')
    c.run('NOOP', 'OK')
    o.run('STORE 2 +FLAGS.SILENT (\\Deleted)', 'OK')
    o.run('EXPUNGE', 'OK')
    lines, _ = c.run('NOOP', 'OK', [r'REMOVEFROM \(0 2\)', r'^\* 2 EXPUNGE'])
    idx = [i for i, l in enumerate(lines) if 'REMOVEFROM (0 2)' in l]
    ex = [i for i, l in enumerate(lines) if l == '* 2 EXPUNGE']
    r.check('REMOVEFROM before the EXPUNGE', idx and ex and idx[0] < ex[0], lines)
    # CANCELUPDATE
    tag_unseen = tags['unseen'][0]
    c.run('CANCELUPDATE "%s"' % tag_unseen, 'OK')
    o.run('STORE 1 -FLAGS.SILENT (\\Seen)', 'OK')
    o.run('STORE 1 +FLAGS.SILENT (\\Seen)', 'OK')
    append(o, msg(99, 'after cancel'))
    c.run('NOOP', 'OK', absent=[r'TAG "%s"' % tag_unseen], name='no updates after CANCELUPDATE')
    c.run('CANCELUPDATE "nosuch"', r'NO \[NONEXISTENT\]')
    c.run('CANCELUPDATE %s' % tags['uidflag'][0], r'BAD \[CLIENTBUG\]', name='unquoted tag')
    c.run('CANCELUPDATE', r'BAD \[CLIENTBUG\]')
    # leaving the mailbox ends them
    c.run('UNSELECT', 'OK')
    c.run('SELECT INBOX', 'OK')
    append(o, msg(100, 'after reselect'))
    c.run('NOOP', 'OK', absent=[r'ESEARCH'], name='no contexts after a reselect')
    # many contexts: past the limit NOUPDATE, the session goes on
    for i in range(10):
        c.run('SEARCH RETURN (UPDATE COUNT) SUBJECT x%d' % i, 'OK')
    c.run('SEARCH RETURN (UPDATE COUNT) ALL', 'OK', [r'NOUPDATE'], name='context limit')
    c.run('CANCELUPDATE "c1"', r'NO|OK')
    c.run('NOOP', 'OK')
    c.run('LOGOUT', 'OK')

sys.exit(r.finish())
