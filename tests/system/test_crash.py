"""Crash test of the durability contract (DESIGN.md): several LMTP
connections deliver to 1-5 recipients (one body, a copy per recipient),
with sizes on both sides of the store's in-index threshold (128 KiB),
while an IMAP client expunges older mail, and loftd is killed with
SIGKILL at a random moment. After each restart every (Message-ID,
recipient) that got a 250 is in that recipient's INBOX exactly once
(unless the IMAP client may have expunged it), byte for byte the message
sent with that copy's own trace fields in front, nothing is stored twice,
and `loftctl check` finds nothing to repair. `loftctl compact` runs on
the accounts in turn meanwhile and is killed with loftd.

A JMAP client works on its own account meanwhile (issue 12): uploads
(both sides of the threshold), Email/import of each upload into INBOX,
Email/set creates in Drafts with the upload attached, and a draft chain
where each save creates the new version and destroys the old one in one
Email/set. After each restart every upload that got its 201 downloads
byte for byte, every import and create that was answered is in its
mailbox exactly once, nothing unanswered is there twice, and the draft
chain has exactly one version: the last answered, or the one in flight.

Shared mailboxes (issue 15): alice's folder Team is shared with bob
(lrswi) and carol; alice changes carol's rights with SETACL in a loop
while bob APPENDs into Team. After each restart carol's entry is the
last answered SETACL or the one in flight, nothing between, bob's entry
is untouched, and every APPEND bob got OK for is in Team exactly once.

Vacation (issue 16): a Sieve vacation reply left the queue (the sink has
it, the queue has recorded it), loftd is killed with SIGKILL (its mail
process first), started again, and the same sender writes again within
the period: the message is delivered, no second reply is sent; a new
sender still gets one, and after the period (a clock the test moves,
LOFT_TEST_CLOCK, never a sleep) the first sender gets a reply again.

Rounds: 20 by default (10 under ASan), LOFT_CRASH_ROUNDS=N for longer runs.
Each message has a unique Message-ID; IMAP (when it is up) lists them per
user, otherwise `loftctl user show` counts bound them (acknowledged <=
stored <= attempted).
"""

import hashlib
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loftenv import SANITIZE, SLOW, Loft, Results  # noqa: E402
from lmtplib import (Conv, deliver, dot_stuff, imap_messages, imap_up,  # noqa: E402
                     message_count, wait_for)
from jmapclient import Jmap  # noqa: E402
from smtpconv import Sink  # noqa: E402

R = Results()
USERS = {'alice@example.test': 'first-crash-pw-1', 'bob@example.test': 'second-crash-pw-2',
         'carol@example.test': 'third-crash-pw-3', 'dave@example.test': 'fourth-crash-pw-4',
         'erin@example.test': 'fifth-crash-pw-5'}
# bigger than this is a file of its own in the store (SQ_INLINE_MAX)
INLINE_MAX = 128 * 1024
CONNECTIONS = 4
JMAP_USER, JMAP_PW = 'frank@example.test', 'sixth-crash-pw-6'


SHARED = 'Other Users/alice@example.test/Team'
# carol's rights in turn: each SETACL replaces the entry with the next
CAROL_RIGHTS = ['lr', 'lrs', 'lrsw', 'lrswk', 'lrswkx', 'lrswkxte']


class Ledger:
    """What the clients saw: acknowledged and attempted (msgid, rcpt)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()
        self.attempted = set()
        self.maybe_expunged = set()   # (msgid, rcpt) the IMAP client targeted
        self.digest = {}              # msgid -> (len, sha256) of the body sent
        self.round_of = {}            # msgid -> round
        # JMAP: uploads (blobId -> sha256), imports and creates (msgid ->
        # mailbox), the draft chain (acked version, version in flight)
        self.uploads = {}
        self.j_attempted = {}
        self.j_acked = {}
        self.draft = None
        self.draft_pending = None
        # shared mailboxes: carol's rights (answered, in flight), bob's
        # APPENDs into alice's Team (Message-IDs answered OK, attempted)
        self.acl = 'lr'
        self.acl_pending = None
        self.setacls = 0
        self.shared_acked = set()
        self.shared_attempted = set()


def client(env, round_no, conn_no, ledger, stop, seed):
    rng = random.Random(seed)
    try:
        c = Conv.tcp(env.port('lmtp'), timeout=10 * SLOW)
        c.cmd('LHLO crash.client')
    except (OSError, EOFError):
        return
    seq = 0
    while not stop.is_set():
        seq += 1
        msgid = 'r%d-c%d-%d@crash.test' % (round_no, conn_no, seq)
        rcpts = rng.sample(sorted(USERS), rng.randint(1, 5))
        # one in five past the in-index threshold
        lines = (rng.randint(1, 400) if rng.random() < 0.8 else
                 rng.randint(INLINE_MAX // 30 + 10, INLINE_MAX // 12))
        body = ('Message-ID: <%s>\r\nSubject: crash %s\r\n\r\n' % (msgid, msgid)
                + ('%s line\r\n' % msgid) * lines)
        try:
            # PIPELINING: envelope and DATA in one write
            c.send('MAIL FROM:<crash@remote.test>\r\n'
                   + ''.join('RCPT TO:<%s>\r\n' % r for r in rcpts) + 'DATA\r\n')
            if c.reply()[0] != 250:
                return
            codes = [c.reply()[0] for _ in rcpts]
            if c.reply()[0] != 354:
                return
            with ledger.lock:
                for r in rcpts:
                    ledger.attempted.add((msgid, r))
                data = body.encode()
                ledger.digest[msgid] = (len(data), hashlib.sha256(data).hexdigest())
                ledger.round_of[msgid] = round_no
            c.send(dot_stuff(body))
            ok = [r for r, code in zip(rcpts, codes) if code == 250]
            for r in ok:
                code, lines = c.reply()
                if code == 250:
                    with ledger.lock:
                        ledger.acked.add((msgid, r))
        except (OSError, EOFError, ValueError):
            return
    try:
        c.close()
    except OSError:
        pass


def expunger(env, ledger, stop, seed):
    """An IMAP client that expunges a few older messages now and then, as
    a user cleaning up while mail arrives."""
    rng = random.Random(seed)
    user = sorted(USERS)[rng.randrange(len(USERS))]
    try:
        c = env.imap_login(user)
        c.select('INBOX')
    except Exception:
        return
    try:
        while not stop.is_set():
            typ, data = c.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
            found = []
            for item in data or []:
                if isinstance(item, tuple):
                    u = re.search(rb'UID (\d+)', item[0])
                    m = re.search(rb'<([^>]+)>', item[1])
                    if u and m:
                        found.append((int(u.group(1)), m.group(1).decode()))
            pick = rng.sample(found, min(len(found), rng.randint(1, 3)))
            if pick:
                with ledger.lock:
                    for _, msgid in pick:
                        ledger.maybe_expunged.add((msgid, user))
                uids = ','.join(str(u) for u, _ in pick)
                c.uid('STORE', uids, '+FLAGS.SILENT', '(\\Deleted)')
                c.uid('EXPUNGE', uids)
            time.sleep(0.05)
    except Exception:
        pass


def acl_client(env, ledger, stop, seed):
    """Alice changes carol's rights on Team, SETACL after SETACL."""
    rng = random.Random(seed)
    try:
        c = env.imap_login('alice@example.test')
    except Exception:
        return
    try:
        while not stop.is_set():
            rights = rng.choice([r for r in CAROL_RIGHTS if r != ledger.acl])
            ledger.acl_pending = rights
            typ, _ = c.setacl('Team', 'carol@example.test', rights)
            if typ == 'OK':
                ledger.acl = rights
                ledger.setacls += 1
            ledger.acl_pending = None
    except Exception:
        pass


def grantee_appender(env, round_no, ledger, stop, seed):
    """Bob APPENDs into alice's Team (he holds i there)."""
    try:
        c = env.imap_login('bob@example.test')
    except Exception:
        return
    seq = 0
    try:
        while not stop.is_set():
            seq += 1
            msgid = 'shared-r%d-%d@crash.test' % (round_no, seq)
            msg = ('From: bob@example.test\r\nTo: alice@example.test\r\n'
                   'Message-ID: <%s>\r\nSubject: shared %d\r\n\r\n'
                   'for the team\r\n' % (msgid, seq)).encode()
            with ledger.lock:
                ledger.shared_attempted.add(msgid)
            typ, _ = c.append('"%s"' % SHARED, None, None, msg)
            if typ == 'OK':
                with ledger.lock:
                    ledger.shared_acked.add(msgid)
    except Exception:
        pass


def acl_verify(env, ledger, round_no):
    """carol's entry: the last answered SETACL or the one in flight; bob's
    untouched; bob's answered APPENDs in Team exactly once."""
    c = env.imap_login('alice@example.test')
    try:
        typ, acl = c.getacl('Team')
        words = (acl[0] or b'').decode().replace('"', '').split()
        entries = dict(zip(words[1::2], words[2::2]))
        c.select('Team', readonly=True)
        typ, data = c.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        ids = {}
        for item in data or []:
            if isinstance(item, tuple):
                m = re.search(rb'<([^>]+)>', item[1])
                if m:
                    ids[m.group(1).decode()] = ids.get(m.group(1).decode(), 0) + 1
    finally:
        c.logout()
    letters = lambda r: ''.join(sorted(r.replace('c', '').replace('d', '')))
    carol = letters(entries.get('carol@example.test', ''))
    allowed = {letters(ledger.acl)}
    if ledger.acl_pending:
        allowed.add(letters(ledger.acl_pending))
    ok = R.check('round %d: carol\'s rights are the old or the new ACL' % round_no,
                 carol in allowed, (entries, ledger.acl, ledger.acl_pending))
    ok &= R.check('round %d: bob\'s entry untouched' % round_no,
                  letters(entries.get('bob@example.test', '')) == letters('lrswi'),
                  entries)
    if ledger.acl_pending and carol == letters(ledger.acl_pending):
        ledger.acl = ledger.acl_pending
    ledger.acl_pending = None
    missing = ledger.shared_acked - set(ids)
    twice = [k for k, n in ids.items() if n > 1]
    unknown = set(ids) - ledger.shared_attempted
    ok &= R.check('round %d: every answered shared APPEND stored' % round_no,
                  not missing, sorted(missing)[:5])
    ok &= R.check('round %d: no shared APPEND stored twice' % round_no,
                  not twice, twice[:5])
    ok &= R.check('round %d: nothing unknown in Team' % round_no,
                  not unknown, sorted(unknown)[:5])
    return ok


def compactor(env, stop, seed, state):
    """`loftctl compact` on the accounts in turn while mail arrives and
    is expunged (issue 11: compaction forced to run); the kill -9 of the
    round also kills a compaction in progress. A run that ends by itself
    must succeed."""
    import signal
    import subprocess
    from loftenv import LOFTCTL
    rng = random.Random(seed)
    while not stop.is_set():
        user = sorted(USERS)[rng.randrange(len(USERS))]
        p = subprocess.Popen([LOFTCTL, '--config', env.config_path, 'compact', user],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        state['proc'] = p
        out, _ = p.communicate()
        if p.returncode == -signal.SIGKILL:
            break
        state['runs'] += 1
        if p.returncode != 0 and not stop.is_set():
            state['failures'].append(out.decode(errors='replace'))
        time.sleep(0.02)


def stored_ids(env, address):
    """{Message-ID: [UID, ...]} in the user's INBOX, through IMAP."""
    c = env.imap_login(address)
    try:
        c.select('INBOX', readonly=True)
        typ, data = c.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        ids = {}
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb'<([^>]+)>', item[1])
                u = re.search(rb'UID (\d+)', item[0])
                if m and u:
                    ids.setdefault(m.group(1).decode(), []).append(int(u.group(1)))
        return ids
    finally:
        c.logout()


def copies_intact(env, ledger, address, uids_by_id, round_no):
    """The copies of this round's messages: the body sent, byte for byte,
    behind this copy's own trace fields."""
    want = {k: v[0] for k, v in uids_by_id.items()
            if ledger.round_of.get(k) == round_no and len(v) == 1}
    bad = []
    c = env.imap_login(address)
    try:
        c.select('INBOX', readonly=True)
        for msgid, uid in sorted(want.items())[:40]:
            typ, data = c.uid('FETCH', str(uid), '(RFC822.SIZE BODY.PEEK[])')
            raw = next((x[1] for x in data or [] if isinstance(x, tuple)), None)
            if raw is None:
                continue   # expunged by the IMAP client meanwhile
            size = re.search(rb'RFC822.SIZE (\d+)', data[0][0])
            n, digest = ledger.digest[msgid]
            body = raw[-n:]
            prefix = raw[:-n]
            ok = (hashlib.sha256(body).hexdigest() == digest
                  and prefix.startswith(b'Return-Path: <crash@remote.test>\r\n'
                                        b'Delivered-To: ' + address.encode() + b'\r\n'
                                        b'Received: ')
                  and prefix.endswith(b'\r\n') and b'\r\n\r\n' not in prefix
                  and size is not None and int(size.group(1)) == len(raw))
            if not ok:
                bad.append((msgid, uid, len(raw), n))
    finally:
        c.logout()
    return bad


def verify(env, ledger, round_no):
    ok = True
    use_imap = imap_up(env)
    for user in sorted(USERS):
        acked = {m for m, r in ledger.acked if r == user}
        attempted = {m for m, r in ledger.attempted if r == user}
        gone = {m for m, r in ledger.maybe_expunged if r == user}
        if use_imap:
            ids = stored_ids(env, user)
            missing = acked - set(ids) - gone
            twice = [k for k, n in ids.items() if len(n) > 1]
            unknown = set(ids) - attempted
            bad = copies_intact(env, ledger, user, ids, round_no)
            ok &= R.check('round %d %s: copies byte-identical behind their trace fields'
                          % (round_no, user), not bad, bad[:3])
            ok &= R.check('round %d %s: every 250 stored' % (round_no, user),
                          not missing, sorted(missing)[:5])
            ok &= R.check('round %d %s: none stored twice' % (round_no, user),
                          not twice, twice[:5])
            ok &= R.check('round %d %s: nothing unknown' % (round_no, user),
                          not unknown, sorted(unknown)[:5])
        else:
            n = message_count(env, user)
            ok &= R.check('round %d %s: acked <= stored <= attempted' % (round_no, user),
                          len(acked) <= n <= len(attempted),
                          (len(acked), n, len(attempted)))
        rc, out, err = env.loftctl('check', user)
        ok &= R.check('round %d %s: loftctl check clean' % (round_no, user),
                      rc == 0 and out.strip() == '%s: consistent' % user, out + err)
    return ok


def jmap_client(env, round_no, ledger, stop, seed):
    """Uploads, imports, creates and draft saves over JMAP."""
    rng = random.Random(seed)
    try:
        j = Jmap(env, JMAP_USER, JMAP_PW)
        boxes = {m['role']: m['id'] for m in
                 j.ok('Mailbox/get', {'ids': None})['list']}
    except Exception:
        return
    seq = 0
    while not stop.is_set():
        seq += 1
        msgid = 'j%d-%d@crash.test' % (round_no, seq)
        lines = (rng.randint(1, 200) if rng.random() < 0.8 else
                 rng.randint(INLINE_MAX // 30 + 10, INLINE_MAX // 12))
        data = ('Message-ID: <%s>\r\nSubject: imported %s\r\n\r\n' % (msgid, msgid)
                + ('%s line\r\n' % msgid) * lines).encode()
        try:
            up = j.upload(data, 'message/rfc822')
            with ledger.lock:
                ledger.uploads[up['blobId']] = hashlib.sha256(data).hexdigest()
            with ledger.lock:
                ledger.j_attempted[msgid] = 'inbox'
            a = j.ok('Email/import', {'emails': {'i': {
                'blobId': up['blobId'], 'mailboxIds': {boxes['inbox']: True}}}})
            if 'i' in a['created']:
                with ledger.lock:
                    ledger.j_acked[msgid] = 'inbox'
            cid = 'c' + msgid
            with ledger.lock:
                ledger.j_attempted[cid] = 'drafts'
            a = j.ok('Email/set', {'create': {'n': {
                'mailboxIds': {boxes['drafts']: True}, 'messageId': [cid],
                'subject': 'created', 'bodyValues': {'t': {'value': 'x'}},
                'textBody': [{'partId': 't'}],
                'attachments': [{'blobId': up['blobId'],
                                 'type': 'message/rfc822'}]}}})
            if 'n' in a['created']:
                with ledger.lock:
                    ledger.j_acked[cid] = 'drafts'
            # a draft save: the new version and the old one's destroy
            did = 'd%d-%d@crash.test' % (round_no, seq)
            with ledger.lock:
                old = ledger.draft
                ledger.draft_pending = did
            args = {'create': {'d': {
                'mailboxIds': {boxes['drafts']: True}, 'messageId': [did],
                'subject': 'draft', 'bodyValues': {'t': {'value': did}},
                'textBody': [{'partId': 't'}]}}}
            if old is not None:
                args['destroy'] = [old[1]]
            a = j.ok('Email/set', args)
            if 'd' in a['created'] and (old is None or a['destroyed']):
                with ledger.lock:
                    ledger.draft = (did, a['created']['d']['id'])
                    ledger.draft_pending = None
        except Exception:
            return


def jmap_mailbox_ids(env, mailbox):
    c = env.imap_login(JMAP_USER, JMAP_PW)
    try:
        c.select(mailbox, readonly=True)
        typ, data = c.uid('FETCH', '1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        ids = {}
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb'<([^>]+)>', item[1])
                if m:
                    k = m.group(1).decode()
                    ids[k] = ids.get(k, 0) + 1
        return ids
    finally:
        c.logout()


def jmap_verify(env, ledger, round_no):
    ok = True
    j = Jmap(env, JMAP_USER, JMAP_PW)
    bad = []
    for blob, digest in sorted(ledger.uploads.items())[-20:]:
        st, _, data = j.download(blob)
        if st != 200 or hashlib.sha256(data).hexdigest() != digest:
            bad.append((blob, st))
    ok &= R.check('round %d jmap: every 201 upload downloads intact' % round_no,
                  not bad, bad[:3])
    inbox = jmap_mailbox_ids(env, 'INBOX')
    drafts = jmap_mailbox_ids(env, 'Drafts')
    boxes = {'inbox': inbox, 'drafts': drafts}
    missing = [m for m, b in ledger.j_acked.items() if boxes[b].get(m) != 1]
    ok &= R.check('round %d jmap: every answered import/create there once'
                  % round_no, not missing, missing[:5])
    chain = [k for k in drafts if k.startswith('d')]
    want = {ledger.draft[0]} if ledger.draft else set()
    if ledger.draft_pending:
        want.add(ledger.draft_pending)
    ok &= R.check('round %d jmap: exactly one draft version' % round_no,
                  (len(chain) == 1 and chain[0] in want) or
                  (not chain and ledger.draft is None), (chain, want))
    if chain:
        # the version there is the one to destroy next time
        q = j.ok('Email/query', {'filter': {'header': ['Message-ID', chain[0]]}})
        ledger.draft = (chain[0], q['ids'][0]) if q['ids'] else None
        ledger.draft_pending = None
    twice = [k for k, n in list(inbox.items()) + list(drafts.items()) if n > 1]
    ok &= R.check('round %d jmap: nothing stored twice' % round_no, not twice,
                  twice[:5])
    rc, out, err = env.loftctl('check', JMAP_USER)
    ok &= R.check('round %d jmap: loftctl check clean' % round_no,
                  rc == 0 and 'consistent' in out, out + err)
    return ok


# ---- vacation after kill -9 (issue 16) -----------------------------------

VACATION = '''require ["vacation", "vacation-seconds"];
vacation :seconds 3600 :subject "Away" :handle "crash" "Out of office.";
'''


def vacation_after_kill():
    user = 'alice@example.test'
    clock_dir = tempfile.mkdtemp(prefix='loft-crash-clock-')
    clock = os.path.join(clock_dir, 'clock')

    def set_clock(offset):
        with open(clock + '.tmp', 'w') as f:
            f.write('%d\n' % offset)
        os.replace(clock + '.tmp', clock)

    set_clock(0)
    os.environ['LOFT_TEST_CLOCK'] = clock   # the loftd below inherits it
    sink = Sink()
    extra = {'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                       'smarthost_tls': 'none', 'retry_min': '1s'},
             'sieve': {'vacation_min_period': '60s'}}

    def replies_to(sender):
        return sum(1 for m in list(sink.messages)
                   if b'Out of office.' in m.get('data', b'')
                   and any(sender.encode() in r for r in m['rcpts']))

    def send(sender, subject):
        """Delivers; True once the 250 came and the queue is empty again:
        a reply Sieve planned was queued before the 250, so after this
        the sink has every reply this message caused."""
        msg = ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>'
               '\r\n\r\nHello.\r\n' % (sender, user, subject,
                                        subject.replace(' ', '.')))
        c = Conv.tcp(env.port('lmtp'))
        try:
            _, dr = deliver(c, sender, [user], msg)
        finally:
            c.close()
        ok = len(dr) == 1 and dr[0][0] == 250
        return ok and wait_for(lambda: env.loftctl('queue', 'list')[1] == '',
                               timeout=60 * SLOW)

    def delivered(subject):
        return any(subject.encode() in m for m in imap_messages(env, user) or [])

    def crash():
        mail = env.children().get('mail')
        if mail is not None:
            os.kill(mail, signal.SIGKILL)
        env.kill9()
        env.start()

    with Loft(users=USERS, extra=extra) as env:
        rc, _, err = env.loftctl('sieve', 'put', user, 'away', '--activate',
                                 input=VACATION)
        R.check('vacation: script active', rc == 0, err)
        for n in range(3):
            sender = 'pal%d@remote.test' % n
            R.check('vacation %d: delivered' % n, send(sender, 'hello %d' % n))
            R.check('vacation %d: one reply' % n,
                    wait_for(lambda: replies_to(sender) == 1, timeout=30 * SLOW),
                    replies_to(sender))
            crash()
            R.check('vacation %d: delivered after kill -9' % n,
                    send(sender, 'again %d' % n) and delivered('again %d' % n))
            R.check('vacation %d: no second reply after kill -9' % n,
                    replies_to(sender) == 1, replies_to(sender))
        # the checks above can fail: a new period answers again
        set_clock(2 * 3600)
        R.check('vacation: after the period delivered', send('pal0@remote.test',
                                                              'later 0'))
        R.check('vacation: after the period a reply again',
                wait_for(lambda: replies_to('pal0@remote.test') == 2,
                         timeout=30 * SLOW), replies_to('pal0@remote.test'))
        R.check('vacation: no sanitizer report', 'Sanitizer' not in env.log()
                and 'runtime error' not in env.log(), env.log()[-3000:])


def answered_kinds(ledger, compactions):
    """Which kinds of write have had an answer so far."""
    with ledger.lock:
        return {'messages': len(ledger.acked) > 0,
                'jmap': len(ledger.j_acked) > 0,
                'shared appends': len(ledger.shared_acked) > 0,
                'setacls': ledger.setacls > 0,
                'compactions': compactions() > 0}


def wait_answered(ledger, compactions, timeout):
    """Waits (at most timeout s) until every kind of write has been
    answered once; at once when they all have."""
    deadline = time.monotonic() + timeout
    while (not all(answered_kinds(ledger, compactions).values())
           and time.monotonic() < deadline):
        time.sleep(0.02)


def main():
    rounds = int(os.environ.get('LOFT_CRASH_ROUNDS', '10' if SANITIZE else '20'))
    seed = int(os.environ.get('LOFT_CRASH_SEED', str(int(time.time()))))
    print('crash test: %d rounds, seed %d' % (rounds, seed))
    rng = random.Random(seed)
    ledger = Ledger()
    users = dict(USERS)
    users[JMAP_USER] = JMAP_PW
    compactions = 0
    with Loft(users=users) as env:
        a = env.imap_login('alice@example.test')
        a.create('Team')
        typ, _ = a.setacl('Team', 'bob@example.test', 'lrswi')
        typ2, _ = a.setacl('Team', 'carol@example.test', 'lr')
        a.logout()
        R.check('Team shared with bob and carol', typ == typ2 == 'OK', (typ, typ2))
        for rnd in range(1, rounds + 1):
            stop = threading.Event()
            threads = [threading.Thread(target=client,
                                        args=(env, rnd, i, ledger, stop, rng.random()))
                       for i in range(CONNECTIONS)]
            threads.append(threading.Thread(target=expunger,
                                            args=(env, ledger, stop, rng.random())))
            threads.append(threading.Thread(target=jmap_client,
                                            args=(env, rnd, ledger, stop, rng.random())))
            threads.append(threading.Thread(target=acl_client,
                                            args=(env, ledger, stop, rng.random())))
            threads.append(threading.Thread(target=grantee_appender,
                                            args=(env, rnd, ledger, stop, rng.random())))
            compacting = {'proc': None, 'runs': 0, 'failures': []}
            threads.append(threading.Thread(target=compactor,
                                            args=(env, stop, rng.random(), compacting)))
            for t in threads:
                t.start()
            # The checks at the end need every kind of write answered at
            # least once: until each has been, a round is killed only after
            # the missing kinds have one (on a loaded machine a random
            # moment alone may never let the JMAP client through its first
            # import); then at a random moment as before.
            wait_answered(ledger, lambda: compactions + compacting['runs'],
                          300 * SLOW)
            time.sleep(rng.uniform(0.05, 0.8) * SLOW)
            env.kill9()
            p = compacting['proc']
            if p is not None and p.poll() is None:
                p.kill()
            stop.set()
            for t in threads:
                t.join(30 * SLOW)
            R.check('round %d: every compaction that ended succeeded' % rnd,
                    not compacting['failures'], compacting['failures'][:1])
            compactions += compacting['runs']
            env.start()
            if (not verify(env, ledger, rnd) or not jmap_verify(env, ledger, rnd)
                    or not acl_verify(env, ledger, rnd)):
                print('round %d failed; loftd log tail:\n%s' % (rnd, env.log()[-3000:]))
                break
        R.check('some messages acknowledged', len(ledger.acked) > 0, len(ledger.acked))
        R.check('some JMAP writes answered', len(ledger.j_acked) > 0,
                len(ledger.j_acked))
        R.check('compactions ran to their end', compactions > 0, compactions)
        R.check('some shared APPENDs answered', len(ledger.shared_acked) > 0,
                len(ledger.shared_acked))
        R.check('some SETACLs answered', ledger.setacls > 0, ledger.setacls)
        print('shared: %d SETACLs, %d APPENDs answered' % (
            ledger.setacls, len(ledger.shared_acked)))
        print('compactions: %d ran to their end' % compactions)
        print('acknowledged %d copies, attempted %d' % (len(ledger.acked),
                                                         len(ledger.attempted)))
        print('jmap: %d uploads, %d imports/creates answered' % (
            len(ledger.uploads), len(ledger.j_acked)))
        R.check('no sanitizer report', 'Sanitizer' not in env.log()
                and 'runtime error' not in env.log(), env.log()[-3000:])
    vacation_after_kill()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
