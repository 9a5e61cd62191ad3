#!/usr/bin/env python3
"""Differential test of Sieve at delivery against Dovecot Pigeonhole
(issue 16): a private loftd and a private Dovecot with dovecot-sieve
(tests/lib/dovecotenv.py), the same global before and after scripts,
one user per script (at least 40 scripts), the same 60 messages over
LMTP to every user of both (one transaction per message, every user a
recipient, some with a +detail). Compared, per message and user: the
LMTP reply class, the folders the message landed in and its flags there;
and the vacation replies, redirects and refusals each server sent to its
own SMTP sink (Dovecot's submission_host, Loft's [queue] smarthost), as
(kind, recipient, original Message-ID, the user who answered).

Deliberate differences (docs/compat.md "Sieve and ManageSieve compared
with Dovecot Pigeonhole") are in KNOWN: reported, not failed.

Run: LOFTD=... LOFTCTL=... PYTHONPATH=tests/lib python3 tests/interop/test_sieve_pigeonhole.py
"""

import email
import os
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'system'))
from dovecotenv import Dovecot  # noqa: E402
from lmtplib import Conv, deliver  # noqa: E402
from loftenv import SLOW, Loft, Results  # noqa: E402
from smtpconv import Sink  # noqa: E402

R = Results()
DOMAIN = 'example.test'

REQ = ('require ["fileinto", "mailbox", "imap4flags", "envelope", '
       '"subaddress", "body", "variables", "relational", '
       '"comparator-i;ascii-numeric", "copy", "date", "index", '
       '"encoded-character"];\n')

# One script per user. Each is compiled by both servers.
SCRIPTS = [
    # 0: nothing but keep
    'keep;',
    # 1: discard
    'if header :contains "subject" "discard" { discard; stop; }',
    # 2: fileinto a missing folder without :create: both keep in INBOX
    'if header :contains "subject" "invoice" { fileinto "Invoices"; }',
    # 3: fileinto :create, stop
    'if header :contains "subject" "invoice" { fileinto :create "Bills"; '
    'stop; }',
    # 4: fileinto :copy plus the implicit keep
    'if header :contains "subject" "report" { fileinto :copy :create '
    '"Reports"; }',
    # 5: address :domain
    'if address :domain :is "from" "lists.example.org" { fileinto :create '
    '"Lists"; stop; }',
    # 6: address :localpart and anyof
    'if anyof (address :localpart :is "from" "boss", address :all :is '
    '"from" "ceo@corp.example") { addflag "\\\\Flagged"; }',
    # 7: envelope :domain
    'if envelope :domain :is "from" "corp.example" { fileinto :create '
    '"Corp"; }',
    # 8: envelope :detail (subaddress)
    'if envelope :detail "to" "tag-a" { fileinto :create "TagA"; }\n'
    'elsif envelope :detail "to" "tag-b" { addflag "$tagb"; }',
    # 9: envelope :user
    'if envelope :user :matches "to" "u*" { addflag "$user"; }',
    # 10: :matches with match variables
    'if header :matches "subject" "[*] *" { fileinto :create '
    '"Tag-${1}"; stop; }',
    # 11: flags built up and taken away
    'addflag "$a"; addflag ["$b", "$c"]; removeflag "$a";\n'
    'if header :contains "subject" "urgent" { addflag "\\\\Flagged"; }',
    # 12: keep :flags and fileinto :flags
    'if header :contains "subject" "hello" { keep :flags "\\\\Seen"; '
    'fileinto :create :flags ["$x", "\\\\Answered"] "Hello"; stop; }',
    # 13: setflag then hasflag
    'setflag "$one";\nif hasflag :is "$one" { addflag "$two"; }\n'
    'if hasflag :contains "$t" { addflag "$three"; }',
    # 14: body :contains (default :text)
    'if body :contains "lottery" { fileinto :create "Spam"; stop; }',
    # 15: body :text under i;ascii-casemap
    'if body :text :contains "MEETING" { addflag "$meeting"; }',
    # 16: body :raw
    'if body :raw :contains "=3D" { addflag "$qp"; }',
    # 17: relational :count on addresses
    'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] '
    '"3" { fileinto :create "Many"; }',
    # 18: relational :value, i;ascii-numeric
    'if header :value "le" :comparator "i;ascii-numeric" "x-priority" "2" '
    '{ addflag "$prio"; }',
    # 19: allof / not
    'if allof (not exists "list-id", header :contains "from" "example") '
    '{ addflag "$direct"; }',
    # 20: size
    'if size :over 3K { fileinto :create "Big"; stop; }\n'
    'if size :under 600 { addflag "$small"; }',
    # 21: header :is under i;octet
    'if header :is :comparator "i;octet" "subject" "Hello World" '
    '{ addflag "$exact"; }',
    # 22: vacation
    'require "vacation";\nvacation :days 1 "I am away.";',
    # 23: vacation with :subject, :handle, :addresses
    'require "vacation";\nif header :contains "subject" "report" {\n'
    '  vacation :handle "r" :subject "Out" :addresses '
    '["alias23@example.test"] "Back soon.";\n}',
    # 24: vacation-seconds
    'require ["vacation", "vacation-seconds"];\nvacation :seconds 86400 '
    ':handle "s" "Away (seconds).";',
    # 25: redirect :copy
    'if header :contains "subject" "report" { redirect :copy '
    '"fwd25@remote.test"; }',
    # 26: redirect (cancels the keep)
    'if address :domain :is "from" "corp.example" { redirect '
    '"fwd26@remote.test"; }',
    # 27: reject
    'require "reject";\nif header :contains "subject" "reject-me" '
    '{ reject "Not wanted here."; }',
    # 28: variables with modifiers
    'if header :matches "from" "*@*" { set :lower "dom" "${2}"; }\n'
    'if string :is "${dom}" "lists.example.org" { addflag "$listdom"; }\n'
    'set :upper "u" "abc"; if string :is "${u}" "ABC" { addflag "$up"; }',
    # 29: date
    'if date :value "ge" :originalzone "date" "hour" "12" '
    '{ addflag "$pm"; }\nif date :is "date" "year" "2023" '
    '{ addflag "$y2023"; }',
    # 30: index
    'if header :index 1 :contains "received" "mx1" { addflag "$first"; }\n'
    'if header :index 1 :last :contains "received" "edge" '
    '{ addflag "$last"; }',
    # 31: duplicate
    'require "duplicate";\nif duplicate { fileinto :create "Dups"; stop; }',
    # 32: mailboxexists
    'if mailboxexists "INBOX" { addflag "$inbox"; }\n'
    'if mailboxexists "Nowhere" { addflag "$nowhere"; }',
    # 33: editheader, seen by a later test
    'require "editheader";\naddheader "X-Sieve-Seen" "yes";\n'
    'if header :is "x-sieve-seen" "yes" { addflag "$edited"; }',
    # 34: encoded-character
    'if header :contains "subject" "${hex:72 65 70 6f 72 74}" '
    '{ addflag "$enc"; }',
    # 35: elsif chain and stop
    'if header :contains "subject" "alpha" { fileinto :create "A"; stop; }\n'
    'elsif header :contains "subject" "beta" { fileinto :create "B"; }\n'
    'else { addflag "$other"; }\naddflag "$after-if";',
    # 36: discard then keep: the last wins? (keep cancels nothing)
    'if header :contains "subject" "news" { discard; }\n'
    'if header :contains "subject" "beta" { keep; }',
    # 37: List-Id filing with :matches
    'if header :matches "list-id" "*<*.example.org>*" { fileinto :create '
    '"L-${2}"; stop; }',
    # 38: :contains with several keys
    'if header :contains ["subject", "x-tags"] ["urgent", "asap"] '
    '{ fileinto :create "Now"; }',
    # 39: exists of several headers, false when one is missing
    'if exists ["x-priority", "x-tags"] { addflag "$both"; }',
    # 40: vacation to lists and bulk (never answered) and :from
    'require "vacation";\nvacation :days 2 :from "u40@example.test" '
    ':handle "v40" "Gone fishing.";',
    # 41: not, address :is with a list (ereject: Pigeonhole 0.5 has none)
    'if not address :is "from" ["friend@remote.test", "boss@corp.example"] '
    '{ fileinto :create "Strangers"; }',
    # 42: an explicit keep, then the after script
    'if header :contains "subject" "after-me" { keep; }',
    # 43: flags set, then the after script files it
    'addflag "$from43";',
]

BEFORE = ('require ["fileinto", "mailbox"];\n'
          'if header :is "x-spam-flag" "YES" { fileinto :create "Junk"; '
          'stop; }\n')
AFTER = ('require ["fileinto", "mailbox"];\n'
         'if header :contains "subject" "after-me" { fileinto :create '
         '"After"; }\n')

# Known differences (docs/compat.md): (check name pattern, why)
KNOWN = [
    (r'^script 20 ', 'size: Pigeonhole counts the Return-Path, Delivered-To '
     'and Received fields its LMTP adds; Loft the message as received'),
]

SUBJECTS = ['invoice 42', 'discard this', '[alpha] report', '[beta] news',
            'reject-me please', 'Hello World', 'URGENT: call me',
            'weekly report', 'after-me too', 'lottery winner', 'plain',
            'asap things']
FROMS = ['friend@remote.test', 'boss@corp.example', 'ceo@corp.example',
         'news@lists.example.org', 'Someone <someone@remote.test>',
         'owner-list@lists.example.org', 'Me <me@remote.test>']
SENDERS = ['friend@remote.test', 'boss@corp.example', 'ceo@corp.example',
           'bounce@lists.example.org', 'someone@remote.test', '',
           'owner-list@lists.example.org', 'me@remote.test']


def users():
    return ['u%02d@%s' % (i, DOMAIN) for i in range(len(SCRIPTS))]


def message(j):
    """(envelope sender, detail or None, bytes) of message j."""
    subj = SUBJECTS[j % len(SUBJECTS)]
    frm = FROMS[(j // 2) % len(FROMS)]
    sender = SENDERS[(j // 3) % len(SENDERS)]
    # a +detail only where the user is not in Cc: Pigeonhole's vacation
    # wants the address as given in RCPT TO in the header, Loft also the
    # address without +detail (docs/compat.md)
    detail = ['tag-a', None, 'tag-b', None, None][j % 5] if j % 2 else None
    hour = (j * 7) % 24
    year = 2023 if j % 4 else 2024
    h = ['Received: from edge.example by mx2.example; Mon, 1 Jan 2024 '
         '00:00:00 +0000',
         'Received: from mx1.example by edge.example; Mon, 1 Jan 2024 '
         '00:00:00 +0000',
         'From: %s' % frm,
         'To: %s' % ('u%02d@%s' % (j % len(SCRIPTS), DOMAIN)
                     if j % 3 else 'undisclosed-recipients:;'),
         'Subject: %s' % subj,
         'Date: Tue, 14 Mar %d %02d:15:00 +0100' % (year, hour),
         # two messages share each Message-ID from j = 50 on (duplicate)
         'Message-ID: <m%d@diff.test>' % (j if j < 50 else j - 5)]
    if j % 2 == 0:
        h.append('Cc: ' + ', '.join(users()))
    if j % 7 == 3:
        h.append('List-Id: Weekly <weekly.example.org>')
    if j % 11 == 5:
        h.append('Precedence: bulk')
    if j % 5 == 1:
        h.append('X-Priority: %d' % (j % 4 + 1))
    if j % 6 == 2:
        h.append('X-Tags: misc, asap')
    if j % 13 == 7:
        h.append('X-Spam-Flag: YES')
    if j % 9 == 4:
        h.append('MIME-Version: 1.0')
        h.append('Content-Type: text/plain; charset=utf-8')
        h.append('Content-Transfer-Encoding: quoted-printable')
        body = 'Meeting at 10 =3D soon. Caf=C3=A9.\r\n'
    else:
        body = 'Hello, the meeting is moved.\r\n' if j % 4 == 1 else \
               'Just text.\r\n'
    if j % 10 == 9:
        body += ('filler line for size ' * 4 + '\r\n') * 60
    return sender, detail, ('\r\n'.join(h) + '\r\n\r\n' + body).encode()


# ---- the servers ----------------------------------------------------

DOVECOT_EXTRA = '''
postmaster_address = postmaster@example.test
hostname = dovecot.example.test
submission_host = 127.0.0.1:{sink}
recipient_delimiter = +
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = {before}
  sieve_after = {after}
  sieve_extensions = +editheader +vacation-seconds
  sieve_max_redirects = 4
}}
'''


def dovecot_setup(dc, tmp):
    for i, u in enumerate(users()):
        home = os.path.join(dc.mail_dir, u)
        sdir = os.path.join(home, 'sieve')
        os.makedirs(sdir, exist_ok=True)
        with open(os.path.join(sdir, 'main.sieve'), 'w') as f:
            f.write(REQ + SCRIPTS[i] + '\n')
        os.symlink('sieve/main.sieve', os.path.join(home, '.dovecot.sieve'))
        for root, ds, fs in os.walk(home):
            os.chown(root, dc.uid, dc.gid)
            for f in fs:
                os.chown(os.path.join(root, f), dc.uid, dc.gid)


def loft_setup(env):
    for i, u in enumerate(users()):
        rc, out, err = env.loftctl('sieve', 'put', u, 'main', '--activate',
                                   input=REQ + SCRIPTS[i] + '\n')
        R.check('loft compiles script %d' % i, rc == 0, out + err)


def deliver_all(port):
    """{(j, user): reply class} for every message to every user."""
    replies = {}
    for j in range(60):
        sender, detail, data = message(j)
        rcpts = []
        for u in users():
            local, dom = u.split('@')
            rcpts.append('%s+%s@%s' % (local, detail, dom) if detail else u)
        c = Conv.tcp(port, timeout=60 * SLOW)
        try:
            rr, dr = deliver(c, sender, rcpts, data)
            c.cmd('QUIT')
        finally:
            c.close()
        codes = iter(code for code, _ in dr)
        for u, (rc, _) in zip(users(), rr):
            replies[(j, u)] = (next(codes) if rc == 250 else rc) // 100
    return replies


def mailbox_state(imap):
    """{message-id: sorted [(folder, flags)]} of one user."""
    out = {}
    typ, boxes = imap.list()
    for line in boxes or []:
        m = re.match(rb'\((.*?)\) (NIL|"[^"]*") (.*)$', line)
        if not m:
            continue
        sep = m.group(2).strip(b'"').decode() if m.group(2) != b'NIL' else ''
        name = m.group(3).decode()
        if name.startswith('"'):
            name = name[1:-1]
        folder = name.replace(sep, '/') if sep else name
        typ, _ = imap.select('"%s"' % name, readonly=True)
        if typ != 'OK':
            continue
        typ, data = imap.fetch('1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS '
                                      '(MESSAGE-ID)])')
        if typ != 'OK':
            continue
        for item in data:
            if not isinstance(item, tuple):
                continue
            fl = re.search(rb'FLAGS \(([^)]*)\)', item[0])
            flags = sorted(f for f in (fl.group(1).decode().split()
                                       if fl else []) if f != '\\Recent')
            mid = item[1].decode(errors='replace').split(':', 1)[-1].strip()
            out.setdefault(mid, []).append((folder, ' '.join(flags)))
    for v in out.values():
        v.sort()
    return out


def sink_keys(sink):
    """Sorted [(kind, rcpt, original Message-ID, answering user)]."""
    keys = []
    for m in list(sink.messages):
        data = m.get('data', b'')
        msg = email.message_from_bytes(data)
        rc = [r.decode().split(':', 1)[1].strip().strip('<>').lower()
              for r in m.get('rcpts', [])]
        auto = (msg.get('Auto-Submitted') or '').lower()
        ctype = (msg.get_content_type() or '').lower()
        orig = re.search(rb'<(m\d+@diff\.test)>', data)
        orig = orig.group(1).decode() if orig else '?'
        if auto.startswith('auto-replied') and ctype != 'multipart/report':
            kind = 'vacation'
            orig = (msg.get('In-Reply-To') or '?').strip().strip('<>')
            who = email.utils.parseaddr(msg.get('From') or '')[1].lower()
        elif ctype == 'multipart/report':
            kind = 'refusal'
            who = ''
        else:
            kind = 'redirect'
            who = ''
        for r in rc:
            keys.append((kind, r, orig, who))
    return sorted(keys)


def wait_quiet(sink, loft=None, timeout=60):
    """Until the sink stops growing (and Loft's queue is empty)."""
    deadline = time.monotonic() + timeout * SLOW
    last, stable = -1, 0
    while time.monotonic() < deadline:
        n = len(sink.messages)
        empty = loft is None or loft.loftctl('queue', 'list')[1] == ''
        stable = stable + 1 if n == last and empty else 0
        if stable >= 4:
            return True
        last = n
        time.sleep(0.5)
    return False


def known(name):
    return any(re.search(p, name) for p, _ in KNOWN)


T0 = time.monotonic()


def tick(what):
    print('# %6.1f s %s' % (time.monotonic() - T0, what), flush=True)


def main():
    if not Dovecot.available():
        print('dovecot not installed: 0 passed, 0 failed (skipped)')
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix='loft-sieve-diff-')
    os.chmod(tmp, 0o755)
    before = os.path.join(tmp, 'before.sieve')
    after = os.path.join(tmp, 'after.sieve')
    with open(before, 'w') as f:
        f.write(BEFORE)
    with open(after, 'w') as f:
        f.write(AFTER)
    pw = {u: 'diff-secret-%d-xyz' % i for i, u in enumerate(users())}
    dsink, lsink = Sink(), Sink()
    extra_d = DOVECOT_EXTRA.format(sink=dsink.port, before=before,
                                   after=after)
    extra_l = {'sieve': {'before': before, 'after': after},
               'queue': {'smarthost': '127.0.0.1:%d' % lsink.port,
                         'smarthost_tls': 'none', 'retry_min': '1s'}}
    with Dovecot(users=pw, extra=extra_d, fsync=False, start=False) as dc, \
            Loft(users=pw, extra=extra_l) as env:
        for p in (before, after):
            os.chown(p, dc.uid, dc.gid)
        os.chown(tmp, dc.uid, dc.gid)
        dovecot_setup(dc, tmp)
        dc.start()
        loft_setup(env)
        tick('both started, scripts in place')
        # both at once: the slower one sets the time
        got = {}
        t = threading.Thread(target=lambda: got.update(
            d=deliver_all(dc.ports['lmtp'])))
        t.start()
        l_replies = deliver_all(env.port('lmtp'))
        t.join()
        d_replies = got['d']
        tick('delivered')
        R.check('dovecot: sink quiet', wait_quiet(dsink))
        R.check('loft: sink quiet', wait_quiet(lsink, env))
        d_state, l_state = {}, {}
        for u in users():
            i = dc.imap_login(u, pw[u])
            d_state[u] = mailbox_state(i)
            i.logout()
            i = env.imap_login(u, pw[u])
            l_state[u] = mailbox_state(i)
            i.logout()
        d_sink, l_sink = sink_keys(dsink), sink_keys(lsink)
        tick('read back')
        log = dc.log().splitlines()
        if os.environ.get('SIEVE_DIFF_LOG'):
            for line in log:
                if os.environ['SIEVE_DIFF_LOG'] in line:
                    print('# dovecot: ' + line)
        # a script Pigeonhole cannot compile would compare nothing
        errors = [line for line in log if 'sieve' in line and
                  ('Error' in line or 'Warning' in line)]
        R.check('dovecot: no Sieve errors or warnings', not errors,
                '\n'.join(errors[:5]))
        R.check('loftd still running', env.running())
    # ---- compare ----
    mism = 0
    for i, u in enumerate(users()):
        bad = []
        for j in range(60):
            if d_replies[(j, u)] != l_replies[(j, u)]:
                bad.append('m%d reply dovecot %dxx loft %dxx'
                           % (j, d_replies[(j, u)], l_replies[(j, u)]))
        mids = sorted(set(d_state[u]) | set(l_state[u]))
        for mid in mids:
            dv, lv = d_state[u].get(mid, []), l_state[u].get(mid, [])
            if dv != lv:
                bad.append('%s dovecot %s loft %s' % (mid, dv, lv))
        name = 'script %d (%s)' % (i, SCRIPTS[i].split('\n')[-1][:50])
        if bad and known(name):
            print('KNOWN %s: %s' % (name, '; '.join(bad[:4])))
            continue
        mism += bool(bad)
        R.check(name + ': same folders, flags, replies', not bad,
                '\n    '.join(bad[:6]))
    dset, lset = list(d_sink), list(l_sink)
    only_d = [k for k in dset if k not in lset or lset.remove(k)]
    lset = list(l_sink)
    for k in d_sink:
        if k in lset:
            lset.remove(k)
    only_l = lset
    R.check('sinks: the same vacation replies, redirects and refusals '
            '(%d at Dovecot, %d at Loft)' % (len(d_sink), len(l_sink)),
            not only_d and not only_l,
            'only Dovecot: %s\n    only Loft: %s' % (only_d[:8], only_l[:8]))
    copies = [c for st in l_state.values() for v in st.values() for c in v]
    kinds = {k[0] for k in l_sink}
    print('# %d scripts x 60 messages: %d copies compared, %d messages at '
          'each sink' % (len(SCRIPTS), len(copies), len(l_sink)))
    R.check('the comparison saw work: %d copies, %d filed, %d flagged, '
            'sink kinds %s' % (len(copies),
                               sum(1 for c in copies if c[0] != 'INBOX'),
                               sum(1 for c in copies if c[1]),
                               sorted(kinds)),
            len(copies) > 1500 and
            sum(1 for c in copies if c[0] != 'INBOX') > 100 and
            sum(1 for c in copies if c[1]) > 300 and
            kinds == {'vacation', 'redirect', 'refusal'})
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
