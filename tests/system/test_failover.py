#!/usr/bin/env python3
"""Failover of the postgres store backend to a synchronous standby
(issue 18, docs/scale-out.md "Failures").

One loftd on a PostgreSQL primary with a synchronous standby (pg_basebackup
-R; synchronous_standby_names names it), connected with a multi-host
string (host=127.0.0.1,127.0.0.1 port=P,S; loftd adds
target_session_attrs=read-write, keepalives and tcp_user_timeout).

- loftd says in its log that a synchronous standby streams, and warns
  once the promoted primary has none.
- The primary away (kill -9 of every process of it, no promotion yet):
  /healthz answers 503; IMAP APPEND on a logged-in session and a new
  LOGIN get NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP], LMTP and SMTP
  451 4.3.0, JMAP serverUnavailable. The standby promoted: /healthz 200
  again, the same session's APPEND works.
- Rounds (LOFT_FAILOVER_ROUNDS, default 3; `make test-scaleout` runs 20):
  two IMAP clients APPEND and one LMTP client delivers without pause;
  kill -9 of the primary, `pg_ctl promote` of the standby; the clients
  retry what was refused. After each round every acknowledged message
  is readable with its bytes (APPENDs at the UID APPENDUID gave), no
  acknowledged UID is given twice; a new standby is cloned from the new
  primary (on the dead one's port) and made synchronous.

Printed: kill -9 to the first acknowledged APPEND after it, p50 and max
over the rounds (the failover figure; bench/scaleout.py --failover runs
20 rounds). Skipped (77) without PostgreSQL 15.
"""

import os
import re
import smtplib
import statistics
import sys
import threading
import time

from imapconv import Conv
from jmapclient import Jmap
from loftenv import Results, SLOW
from pgenv import Postgres
from ports import free_port
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
# an account no session holds open (alice's handle is cached by hers)
BOB, BOB_PW = 'bob@example.test', 'can-we-fix-it-yes'
ROUNDS = int(os.environ.get('LOFT_FAILOVER_ROUNDS', '3'))
r = Results()
T0 = time.monotonic()


def phase(what):
    print('%6.1f s  %s' % (time.monotonic() - T0, what), flush=True)


def msg(n):
    return 'Subject: fo %d\r\n\r\nfailover body %d\r\n' % (n, n)


def wait_for(cond, what, bound=60):
    deadline = time.monotonic() + bound * SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    r.check(what, False, 'not within %d s' % (bound * SLOW))
    return None


def healthz(env):
    try:
        c = env.http(timeout=10)
        c.request('GET', '/healthz')
        resp = c.getresponse()
        resp.read()
        c.close()
        return resp.status
    except OSError:
        return None


class Load:
    """Two IMAP clients APPENDing and one LMTP client delivering without
    pause; what was refused is sent again (a new marker: the old one may
    or may not have committed, and is not acknowledged either way)."""

    # the LMTP answers the load expects besides 250
    RETRYABLE = (('451', '4.3.0'),)

    def __init__(self, env, state):
        self.env = env
        self.state = state          # shared across rounds
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.imap_client, args=(k,))
                        for k in range(2)]
        self.threads.append(threading.Thread(target=self.lmtp_client))
        for t in self.threads:
            t.start()

    def marker(self):
        with self.state['mu']:
            self.state['next'] += 1
            return self.state['next']

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
                        c.close()
                        c = None
                        time.sleep(0.05)
                        continue
                n = self.marker()
                m = msg(n)
                tag = c.next_tag()
                c.send('%s APPEND INBOX {%d+}\r\n%s\r\n' % (tag, len(m), m))
                line = self._tagged(c, tag)
                mm = re.search(r' OK \[APPENDUID \d+ (\d+)\]', line)
                if mm:
                    with self.state['mu']:
                        self.state['appended'][n] = int(mm.group(1))
                        self.state['acks'].append((time.monotonic(), 'a'))
                elif not re.search(r' NO \[UNAVAILABLE\]', line):
                    self.errors.append(line)
            except Exception as e:
                # a connection lost: loftd is up, this should not happen
                self.errors.append('imap %d: %s' % (k, e))
                c = None
        if c is not None:
            c.close()

    @staticmethod
    def _tagged(c, tag):
        while True:
            line = c.read_response(timeout=60 * SLOW)
            if line.startswith(tag + ' '):
                return line

    def lmtp_client(self):
        lm = None
        while not self.stop.is_set():
            n = self.marker()
            try:
                if lm is None:
                    lm = self.env.lmtp()
                    lm.ehlo('client.example.test')
                lm.sendmail('x@example.net', [USER], msg(n).encode())
                with self.state['mu']:
                    self.state['delivered'].add(n)
                    self.state['acks'].append((time.monotonic(), 'l'))
            except (smtplib.SMTPRecipientsRefused,
                    smtplib.SMTPDataError) as e:
                text = str(e)
                if not any(code in text and enh in text
                           for code, enh in self.RETRYABLE):
                    self.errors.append('lmtp: %s' % text)
                try:
                    lm.rset()
                except Exception:
                    lm = None
            except Exception as e:
                self.errors.append('lmtp: %r' % e)
                lm = None
        if lm is not None:
            try:
                lm.quit()
            except Exception:
                pass

    def acks_since(self, t, kind):
        with self.state['mu']:
            return [a for a, k in self.state['acks'] if a >= t and k == kind]

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(120 * SLOW)


def tagged(c, command):
    tag = c.next_tag()
    c.send('%s %s\r\n' % (tag, command))
    return Load._tagged(c, tag)


def verify(env, state, name):
    """Every acknowledged message readable with its bytes; APPENDs at
    their UIDs; no acknowledged UID twice."""
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK', name='%s: SELECT' % name)
    lines, _ = c.run('UID FETCH 1:* (BODY.PEEK[])', 'OK',
                     name='%s: every message' % name)
    have = {}
    for line in lines:
        mu = re.search(r'UID (\d+)', line)
        ms = re.search(r'Subject: fo (\d+)\r\n\r\nfailover body (\d+)', line)
        if mu and ms and ms.group(1) == ms.group(2):
            have.setdefault(int(ms.group(1)), []).append(int(mu.group(1)))
    with state['mu']:
        appended = dict(state['appended'])
        delivered = set(state['delivered'])
    lost = [n for n, uid in appended.items() if uid not in have.get(n, [])]
    r.check('%s: every acknowledged APPEND readable at its UID' % name,
            appended and not lost, (len(appended), lost[:5]))
    uids = list(appended.values())
    r.check('%s: no acknowledged UID given twice' % name,
            len(set(uids)) == len(uids), sorted(uids)[:20])
    lost = [n for n in delivered if n not in have]
    r.check('%s: every acknowledged LMTP delivery readable' % name,
            delivered and not lost, (len(delivered), lost[:5]))
    c.close()


def away(env, primary, standby, smtp_port):
    """The primary dead, nothing promoted yet: every protocol answers with
    its retryable error and /healthz says 503; then the promotion."""
    j = Jmap(env, USER)
    quota = [['Quota/get', {'accountId': j.account, 'ids': None}, 'q']]
    res = j.call(quota)
    r.check('JMAP Quota/get with the database there',
            res['methodResponses'][0][0] == 'Quota/get', res)
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    primary.kill9_all()
    wait_for(lambda: healthz(env) == 503, '/healthz 503 while the database'
             ' is away')
    m = msg(1)

    # each waits postgres_timeout for the database: all at once
    def imap_append():
        line = tagged(c, 'APPEND INBOX {%d+}\r\n%s' % (len(m), m))
        return ' NO [UNAVAILABLE]' in line, line

    def imap_login():
        c2 = Conv(env.raw('imap'), Results())
        line = tagged(c2, 'LOGIN %s %s' % (BOB, BOB_PW))
        c2.close()
        return ' NO [UNAVAILABLE]' in line, line

    def pop3_pass():
        p = env.pop3()
        p.user(BOB)
        try:
            p.pass_(BOB_PW)
            return False, 'accepted'
        except Exception as e:
            return '[SYS/TEMP]' in str(e), e
        finally:
            p.close()

    def deliver(client):
        client.ehlo('client.example.test')
        try:
            client.sendmail('x@example.net', [USER], msg(2).encode())
            return False, 'accepted'
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as e:
            return '451' in str(e) and '4.3.0' in str(e), e
        finally:
            client.close()

    def jmap():
        res = j.call(quota)
        name, args, _ = res['methodResponses'][0]
        return (name == 'error' and args.get('type') == 'serverUnavailable'
                and 'cannot be reached' in args.get('description', ''), res)

    checks = {
        'APPEND while the database is away: NO [UNAVAILABLE]': imap_append,
        'LOGIN while the database is away: NO [UNAVAILABLE]': imap_login,
        'POP3 PASS while the database is away: -ERR [SYS/TEMP]': pop3_pass,
        'LMTP while the database is away: 451 4.3.0':
            lambda: deliver(env.lmtp()),
        'SMTP while the database is away: 451 4.3.0':
            lambda: deliver(smtplib.SMTP('127.0.0.1', smtp_port,
                                         timeout=60 * SLOW)),
        'JMAP while the database is away: serverUnavailable': jmap,
    }
    out = {}

    def run(name, fn):
        try:
            out[name] = fn()
        except Exception as e:
            out[name] = (False, repr(e))
    threads = [threading.Thread(target=run, args=kv) for kv in checks.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    for name in checks:
        ok, detail = out.get(name, (False, 'no answer'))
        r.check(name, ok, detail)
    standby.promote()
    wait_for(lambda: healthz(env) == 200, '/healthz 200 once promoted')
    c.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), r'OK \[APPENDUID',
          name='APPEND on the same session once promoted')
    c.close()
    wait_for(lambda: 'the primary has no synchronous standby' in env.log(),
             'loftd warns: the promoted primary has no synchronous standby')


def main():
    if skip_without_postgres():
        return 77
    primary = Postgres()
    standby = None
    gen = 1
    try:
        standby = primary.standby('n%d' % gen)
        primary.sync_to('n%d' % gen)
        conninfo = ('host=127.0.0.1,127.0.0.1 port=%d,%d dbname=loft'
                    ' user=loft' % (primary.port, standby.port))
        phase('primary and synchronous standby up')
        # the servers change round by round: the test keeps them
        with ScaleEnv(nodes=1, pg=primary, conninfo=conninfo,
                      store={'postgres_timeout': '5s'},
                      extra={'smtp': {'listen': '127.0.0.1:%d'
                                      % free_port()}}) as scale:
            env = scale.nodes[0]
            phase('loftd up')
            smtp_port = env.port('smtp')
            wait_for(lambda: 'synchronous standby streaming: n1' in env.log(),
                     'loftd says a synchronous standby streams')
            r.check('/healthz 200 with the database there',
                    healthz(env) == 200)
            away(env, primary, standby, smtp_port)
            phase('database away: checked')
            dead = primary
            primary, standby = standby, None
            dead_port = dead.port
            dead.close()
            times = []
            state = {'mu': threading.Lock(), 'next': 1000, 'appended': {},
                     'delivered': set(), 'acks': []}
            for rnd in range(1, ROUNDS + 1):
                gen += 1
                standby = primary.standby('n%d' % gen, port=dead_port)
                primary.sync_to('n%d' % gen)
                phase('round %d: standby n%d synchronous' % (rnd, gen))
                load = Load(env, state)
                t = time.monotonic()
                wait_for(lambda: len(load.acks_since(t, 'a')) >= 4 and
                         len(load.acks_since(t, 'l')) >= 2,
                         'round %d: load acknowledged before the kill' % rnd)
                t0 = time.monotonic()
                primary.kill9_all()
                standby.promote()
                first = wait_for(lambda: load.acks_since(t0, 'a'),
                                 'round %d: an APPEND after the failover'
                                 % rnd)
                if first:
                    times.append(min(first) - t0)
                phase('round %d: failed over' % rnd)
                t1 = time.monotonic()
                wait_for(lambda: len(load.acks_since(t1, 'a')) >= 4 and
                         len(load.acks_since(t1, 'l')) >= 2,
                         'round %d: load acknowledged after the failover'
                         % rnd)
                load.finish()
                r.check('round %d: every answer OK or retryable' % rnd,
                        not load.errors, load.errors[:5])
                verify(env, state, 'round %d' % rnd)
                phase('round %d done' % rnd)
                dead, primary, standby = primary, standby, None
                dead_port = dead.port
                dead.close()
            if times:
                ms = sorted(t * 1000 for t in times)
                print('failover: kill -9 of the primary to the first'
                      ' acknowledged APPEND over %d rounds: p50 %.0f ms,'
                      ' max %.0f ms (%d APPENDs, %d LMTP deliveries'
                      ' acknowledged)' % (len(ms), statistics.median(ms),
                                          ms[-1], len(state['appended']),
                                          len(state['delivered'])))
    finally:
        for pg in (primary, standby):
            if pg is not None:
                pg.close()
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
