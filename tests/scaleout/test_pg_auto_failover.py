#!/usr/bin/env python3
"""Failover by pg_auto_failover under load (issue 18; docs/scale-out.md
"Failover", the tested recipe).

A monitor and two data nodes (tests/lib/autofailover.py: Debian's
pg_autoctl, private, as the postgres account on loopback), synchronous
replication as pg_auto_failover sets it (synchronous_standby_names =
'ANY 1 (...)' on the primary); one loftd with the multi-host string
`host=127.0.0.1,127.0.0.1 port=P1,P2 ... target_session_attrs=read-write`.

Rounds (LOFT_PAF_ROUNDS, default 3; each one fails over to the other
node, so round 2 fails back): two IMAP clients APPEND and one LMTP client
delivers without pause (test_failover's load, which retries what was
refused); kill -9 of the primary's keeper and postgres, every process of
that node at once (a dead machine). Checked:
- the standby is promoted by pg_auto_failover (the test promotes
  nothing): the monitor has it wait_primary, it is out of recovery, and
  its synchronous_standby_names is empty while the other node is dead;
- loftd finds it: APPENDs and deliveries are acknowledged again while
  the old primary is still dead (writes do not hang on a standby that
  is not there);
- every answer during the gap is OK or the retryable one (IMAP
  NO [UNAVAILABLE], LMTP 451 4.3.0);
- the dead node's keeper started again: pg_auto_failover makes it a
  standby (demoted, catchingup, secondary: pg_rewind or a new clone),
  the new primary names it in synchronous_standby_names and it streams
  (sync_state quorum), and the load is acknowledged through it;
- every acknowledged message is readable (APPENDs at the UID APPENDUID
  gave, with their bytes), no acknowledged UID given twice, and none
  seen out of order: each client's UIDs ascend, and an APPEND sent after
  another was acknowledged has a higher UID.
Then kill -9 of the standby's machine: pg_auto_failover has the primary
go on alone (wait_primary, synchronous_standby_names cleared), writes are
acknowledged again, the standby started again is synchronous again.
Printed per round and as p50/max: kill -9 to the promotion (the monitor
says wait_primary), kill -9 to the first acknowledged APPEND.

Skipped (77) without PostgreSQL 15 or pg_auto_failover (scripts/deps.sh
scaleout installs postgresql-15-auto-failover and pg-auto-failover-cli).
"""

import os
import re
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'system'))
import test_failover as fo          # noqa: E402  (its load and checks)
from autofailover import Formation  # noqa: E402
from imapconv import Conv           # noqa: E402
from loftenv import Results, SLOW   # noqa: E402
from scaleenv import ScaleEnv, skip_without_postgres   # noqa: E402

USER, PW = fo.USER, fo.PW
ROUNDS = int(os.environ.get('LOFT_PAF_ROUNDS', '3'))
r = Results()
fo.r = r
T0 = time.monotonic()


def phase(what):
    print('%6.1f s  %s' % (time.monotonic() - T0, what), flush=True)


class Load(fo.Load):
    """test_failover's load; each APPEND also remembers its client, when
    it was sent and when acknowledged (the order checks)."""

    def imap_client(self, k):
        c = None
        while not self.stop.is_set():
            try:
                if c is None:
                    c = Conv(self.env.raw('imap'), Results())
                    tag = c.next_tag()
                    c.send('%s LOGIN %s %s\r\n' % (tag, USER, PW))
                    line = self._tagged(c, tag)
                    if ' OK' not in line:
                        if not re.search(r' NO \[UNAVAILABLE\]', line):
                            self.errors.append('imap %d: %s' % (k, line))
                        c.close()
                        c = None
                        time.sleep(0.05)
                        continue
                n = self.marker()
                m = fo.msg(n)
                tag = c.next_tag()
                sent = time.monotonic()
                c.send('%s APPEND INBOX {%d+}\r\n%s\r\n' % (tag, len(m), m))
                line = self._tagged(c, tag)
                mm = re.search(r' OK \[APPENDUID \d+ (\d+)\]', line)
                if mm:
                    now = time.monotonic()
                    with self.state['mu']:
                        self.state['appended'][n] = int(mm.group(1))
                        self.state['acks'].append((now, 'a'))
                        self.state['order'].append((k, sent, now,
                                                    int(mm.group(1))))
                elif re.search(r' NO \[UNAVAILABLE\]', line):
                    with self.state['mu']:
                        self.state['refused'] += 1
                        self.state['refusals'].append(time.monotonic())
                else:
                    self.errors.append('imap %d: %s' % (k, line))
            except Exception as e:
                self.errors.append('imap %d: %s' % (k, e))
                c = None
        if c is not None:
            c.close()


def check_order(state, name):
    """No UID seen out of order: per client ascending; an APPEND sent
    after another was acknowledged got a higher UID."""
    with state['mu']:
        order = list(state['order'])
    bad = []
    for k in set(o[0] for o in order):
        uids = [o[3] for o in sorted((o for o in order if o[0] == k),
                                     key=lambda o: o[2])]
        bad += [(k, a, b) for a, b in zip(uids, uids[1:]) if b <= a]
    r.check('%s: each client\'s APPENDUIDs ascend' % name, not bad, bad[:5])
    acked = sorted(order, key=lambda o: o[2])
    bad = []
    i, top = 0, 0
    for o in sorted(order, key=lambda o: o[1]):
        while i < len(acked) and acked[i][2] < o[1]:
            top = max(top, acked[i][3])
            i += 1
        if o[3] <= top:
            bad.append((o[3], top))
    r.check('%s: an APPEND sent after another\'s answer has a higher UID'
            % name, not bad, bad[:5])


def sent_after(state, t):
    """When APPENDs sent after t were acknowledged."""
    with state['mu']:
        return [o[2] for o in state['order'] if o[1] >= t]


def verify(env, state):
    """test_failover's verify with a longer wait per response (the
    mailbox grows to a few thousand messages on a loaded machine)."""
    c = Conv(env.raw('imap', timeout=120), r)
    c.timeout = 120 * SLOW
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK', name='SELECT')
    lines, _ = c.run('UID FETCH 1:* (BODY.PEEK[])', 'OK',
                     name='every message')
    have = {}
    for line in lines:
        mu = re.search(r'UID (\d+)', line)
        ms = re.search(r'Subject: fo (\d+)\r\n\r\nfailover body (\d+)',
                       line)
        if mu and ms and ms.group(1) == ms.group(2):
            have.setdefault(int(ms.group(1)), []).append(int(mu.group(1)))
        elif mu:
            ms = re.search(r'Subject: fo (\d+)\r\n', line)
            if ms:
                have.setdefault(int(ms.group(1)), []).append(
                    int(mu.group(1)))
    with state['mu']:
        appended = dict(state['appended'])
        delivered = set(state['delivered'])
    lost = [n for n, uid in appended.items() if uid not in have.get(n, [])]
    r.check('every acknowledged APPEND readable at its UID',
            appended and not lost, (len(appended), lost[:5]))
    uids = list(appended.values())
    r.check('no acknowledged UID given twice',
            len(set(uids)) == len(uids), sorted(uids)[:20])
    lost = [n for n in delivered if n not in have]
    r.check('every acknowledged LMTP delivery readable',
            delivered and not lost, (len(delivered), lost[:5]))
    c.close()


def ssn(node):
    return node.psql('SHOW synchronous_standby_names').strip()


def wait_for(cond, what, bound=60):
    return fo.wait_for(cond, what, bound)


def main():
    if skip_without_postgres():
        return 77
    if not Formation.available():
        print('0 passed, 0 failed (skipped: no pg_auto_failover:'
              ' scripts/deps.sh scaleout)')
        return 77
    with Formation() as f:
        a = f.add_node('n1')
        b = f.add_node('n2')
        f.wait_states({'n1': 'primary', 'n2': 'secondary'})
        phase('pg_auto_failover: monitor, n1 primary, n2 secondary')
        r.check('the primary has a synchronous standby (%s)' % ssn(a),
                ssn(a).startswith('ANY 1 (') and a.psql(
                    'SELECT sync_state FROM pg_stat_replication').strip()
                in ('sync', 'quorum'))
        r.check('the standby runs with wal_retrieve_retry_interval = 200ms',
                b.psql('SHOW wal_retrieve_retry_interval').strip() == '200ms')
        uri = f.uri()
        r.check('pg_autoctl show uri names both nodes, read-write',
                'target_session_attrs=read-write' in uri and
                str(a.port) in uri and str(b.port) in uri, uri)
        conninfo = f.conninfo()
        print('loftd: [store] postgres = %s' % conninfo)
        with ScaleEnv(nodes=1, pg=f, conninfo=conninfo,
                      store={'postgres_timeout': '5s'}) as scale:
            env = scale.nodes[0]
            phase('loftd up')
            wait_for(lambda: 'synchronous standby streaming' in env.log(),
                     'loftd says a synchronous standby streams')
            state = {'mu': threading.Lock(), 'next': 1000, 'appended': {},
                     'delivered': set(), 'acks': [], 'order': [],
                     'refused': 0, 'refusals': []}
            nodes = {'n1': a, 'n2': b}
            promo, firsts = [], []
            for rnd in range(1, ROUNDS + 1):
                st = f.node_state()
                pname = [n for n, s in st.items() if s[0] == 'primary'][0]
                sname = [n for n in nodes if n != pname][0]
                primary, standby = nodes[pname], nodes[sname]
                load = Load(env, state)
                t = time.monotonic()
                wait_for(lambda: len(load.acks_since(t, 'a')) >= 4 and
                         len(load.acks_since(t, 'l')) >= 2,
                         'round %d: load acknowledged before the kill' % rnd)
                refused0 = state['refused']
                t0 = time.monotonic()
                primary.kill9()
                phase('round %d: kill -9 of %s (keeper and postgres)'
                      % (rnd, pname))

                def promoted():
                    s = f.node_state().get(sname)
                    return s == ('wait_primary', 'wait_primary')
                if wait_for(promoted, 'round %d: pg_auto_failover promotes %s'
                            % (rnd, sname)):
                    promo.append(time.monotonic() - t0)
                r.check('round %d: %s out of recovery' % (rnd, sname),
                        standby.psql('SELECT pg_is_in_recovery()').strip()
                        == 'f')
                r.check('round %d: synchronous_standby_names empty on %s'
                        ' with %s dead' % (rnd, sname, pname),
                        ssn(standby) == '', ssn(standby))
                first = wait_for(lambda: sent_after(state, t0),
                                 'round %d: an APPEND after the kill' % rnd)
                if first:
                    firsts.append(min(first) - t0)
                t1 = time.monotonic()
                wait_for(lambda: len(load.acks_since(t1, 'a')) >= 4 and
                         len(load.acks_since(t1, 'l')) >= 2,
                         'round %d: writes acknowledged with %s still dead'
                         % (rnd, pname), bound=30)
                phase('round %d: promoted after %.1f s, first APPEND after'
                      ' %.1f s, %d APPENDs refused meanwhile' % (
                          rnd, promo[-1] if promo else -1,
                          firsts[-1] if firsts else -1,
                          state['refused'] - refused0))
                # the dead machine back: its keeper rejoins it as standby
                primary.log_mark = len(primary.log())
                primary.start()
                try:
                    f.wait_states({pname: 'secondary', sname: 'primary'},
                                  bound=120)
                    back = True
                except RuntimeError as e:
                    back = False
                    print(f.events(), e)
                r.check('round %d: %s back as a standby, %s primary'
                        % (rnd, pname, sname), back, f.node_state())
                since = primary.log()[primary.log_mark:]
                how = ('pg_basebackup (pg_rewind failed)'
                       if 'Failed to rewind' in since else
                       'pg_rewind' if 'pg_rewind' in since else '?')
                phase('round %d: %s back as a standby (%s)'
                      % (rnd, pname, how))
                r.check('round %d: %s in recovery' % (rnd, pname),
                        primary.psql('SELECT pg_is_in_recovery()').strip()
                        == 't')
                r.check('round %d: %s names %s its synchronous standby'
                        % (rnd, sname, pname),
                        ssn(standby).startswith('ANY 1 (') and standby.psql(
                            'SELECT sync_state FROM pg_stat_replication')
                        .strip() in ('sync', 'quorum'), ssn(standby))
                # loftd's connections lost (a network blip): it connects
                # again, to the primary, not to the standby listed first
                cut = standby.psql("SELECT count(pg_terminate_backend(pid))"
                                   " FROM pg_stat_activity WHERE"
                                   " application_name LIKE 'loft%'").strip()
                t2 = time.monotonic()
                wait_for(lambda: len(load.acks_since(t2, 'a')) >= 20 and
                         len(load.acks_since(t2, 'l')) >= 5,
                         'round %d: writes acknowledged with %s streaming,'
                         ' loftd connected again' % (rnd, pname))
                with state['mu']:
                    gap = [x for x in state['refusals'] if t0 <= x < t1]
                    mid = [x for x in state['refusals'] if t1 <= x < t2]
                    late = [x for x in state['refusals'] if x >= t2]
                print('round %d: APPENDs refused: %d in the gap, %d after'
                      ' the first acknowledged, %d with %s back (%s of'
                      ' loftd\'s connections ended)'
                      % (rnd, len(gap), len(mid), len(late), pname, cut))
                load.finish()
                r.check('round %d: every answer OK or retryable' % rnd,
                        not load.errors, load.errors[:5])
                check_order(state, 'round %d' % rnd)
                phase('round %d done' % rnd)
            # the standby's machine dies: the primary's COMMITs wait for
            # it until the monitor has the primary go on alone
            # (wait_primary, synchronous_standby_names cleared)
            st = f.node_state()
            pname = [n for n, x in st.items() if x[0] == 'primary'][0]
            sname = [n for n in nodes if n != pname][0]
            primary, standby = nodes[pname], nodes[sname]
            load = Load(env, state)
            t = time.monotonic()
            wait_for(lambda: len(load.acks_since(t, 'a')) >= 4,
                     'load acknowledged before the standby dies')
            t0 = time.monotonic()
            standby.kill9()
            phase('kill -9 of the standby %s' % sname)
            wait_for(lambda: f.node_state().get(pname) ==
                     ('wait_primary', 'wait_primary'),
                     '%s goes on alone (wait_primary)' % pname)
            r.check('synchronous_standby_names empty on %s with the standby'
                    ' dead' % pname, ssn(primary) == '', ssn(primary))
            t1 = time.monotonic()
            wait_for(lambda: len(load.acks_since(t1, 'a')) >= 4 and
                     len(load.acks_since(t1, 'l')) >= 2,
                     'writes acknowledged with the standby dead', bound=30)
            with state['mu']:
                stall = max((b - a for a, b in zip(
                    [t0] + sorted(x for x in (o[2] for o in state['order'])
                                  if x >= t0), sorted(
                        x for x in (o[2] for o in state['order'])
                        if x >= t0))), default=0)
                refused = [x for x in state['refusals'] if x >= t0]
            phase('standby dead: %s alone after %.1f s, longest wait for'
                  ' an APPEND answer %.1f s, %d APPENDs refused'
                  % (pname, t1 - t0, stall, len(refused)))
            standby.start()
            try:
                f.wait_states({sname: 'secondary', pname: 'primary'})
                back = True
            except RuntimeError:
                back = False
            r.check('%s back as the synchronous standby' % sname, back,
                    f.node_state())
            t2 = time.monotonic()
            wait_for(lambda: len(load.acks_since(t2, 'a')) >= 4,
                     'writes acknowledged with %s back' % sname)
            load.finish()
            r.check('standby dead: every answer OK or retryable',
                    not load.errors, load.errors[:5])
            check_order(state, 'standby dead')
            verify(env, state)
            phase('every acknowledged message read back')
            if r.failed:
                print('loftd log, its last errors:\n' + '\n'.join(
                    [l for l in env.log().splitlines()
                     if 'error' in l.lower() or 'warn' in l.lower()][-40:]))
            if firsts:
                ms = sorted(x * 1000 for x in firsts)
                ps = sorted(x * 1000 for x in promo)
                print('pg_auto_failover over %d rounds: kill -9 of the'
                      ' primary to promotion p50 %.0f ms, max %.0f ms; to'
                      ' the first acknowledged APPEND p50 %.0f ms, max'
                      ' %.0f ms (%d APPENDs, %d LMTP deliveries'
                      ' acknowledged, %d APPENDs refused and retried)' % (
                          len(ms), statistics.median(ps), ps[-1],
                          statistics.median(ms), ms[-1],
                          len(state['appended']), len(state['delivered']),
                          state['refused']))
        if r.failed:
            print('monitor events, last first:\n' + f.events())
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
