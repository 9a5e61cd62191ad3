"""Crash test of the durability contract (DESIGN.md): several LMTP
connections deliver while loftd is killed with SIGKILL at a random moment;
after each restart every message that got a 250 is in the store exactly
once, no message is stored twice, and `loftctl check` finds nothing to
repair.

Rounds: 20 by default (10 under ASan), LOFT_CRASH_ROUNDS=N for longer runs.
Each message has a unique Message-ID; IMAP (when it is up) lists them per
user, otherwise `loftctl user show` counts bound them (acknowledged <=
stored <= attempted).
"""

import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loftenv import SANITIZE, SLOW, Loft, Results  # noqa: E402
from lmtplib import Conv, dot_stuff, imap_up, message_count  # noqa: E402

R = Results()
USERS = {'alice@example.test': 'first-crash-pw-1', 'bob@example.test': 'second-crash-pw-2',
         'carol@example.test': 'third-crash-pw-3'}
CONNECTIONS = 4


class Ledger:
    """What the clients saw: acknowledged and attempted (msgid, rcpt)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()
        self.attempted = set()


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
        rcpts = rng.sample(sorted(USERS), rng.choice((1, 1, 2)))
        body = ('Message-ID: <%s>\r\nSubject: crash %s\r\n\r\n' % (msgid, msgid)
                + ('%s line\r\n' % msgid) * rng.randint(1, 400))
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


def stored_ids(env, address):
    """{Message-ID: count} in the user's INBOX, through IMAP."""
    c = env.imap_login(address)
    try:
        c.select('INBOX', readonly=True)
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


def verify(env, ledger, round_no):
    ok = True
    use_imap = imap_up(env)
    for user in sorted(USERS):
        acked = {m for m, r in ledger.acked if r == user}
        attempted = {m for m, r in ledger.attempted if r == user}
        if use_imap:
            ids = stored_ids(env, user)
            missing = acked - set(ids)
            twice = [k for k, n in ids.items() if n > 1]
            unknown = set(ids) - attempted
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


def main():
    rounds = int(os.environ.get('LOFT_CRASH_ROUNDS', '10' if SANITIZE else '20'))
    seed = int(os.environ.get('LOFT_CRASH_SEED', str(int(time.time()))))
    print('crash test: %d rounds, seed %d' % (rounds, seed))
    rng = random.Random(seed)
    ledger = Ledger()
    with Loft(users=USERS) as env:
        for rnd in range(1, rounds + 1):
            stop = threading.Event()
            threads = [threading.Thread(target=client,
                                        args=(env, rnd, i, ledger, stop, rng.random()))
                       for i in range(CONNECTIONS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 0.8) * SLOW)
            env.kill9()
            stop.set()
            for t in threads:
                t.join(30 * SLOW)
            env.start()
            if not verify(env, ledger, rnd):
                print('round %d failed; loftd log tail:\n%s' % (rnd, env.log()[-3000:]))
                break
        R.check('some messages acknowledged', len(ledger.acked) > 0, len(ledger.acked))
        print('acknowledged %d copies, attempted %d' % (len(ledger.acked),
                                                         len(ledger.attempted)))
        R.check('no sanitizer report', 'Sanitizer' not in env.log()
                and 'runtime error' not in env.log(), env.log()[-3000:])
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
