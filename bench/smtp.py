"""SMTP figures of issue 13, one run, medians and ratios.

    python3 bench/smtp.py [--messages N] [--reps R] [--only inbound,submission]

inbound     10 KB messages over 16 connections from Postfix's smtp-source
            (Debian's postfix), durable, into
              loft         Loft's MX ([smtp]; sender_checks = no, as
                           Postfix checks no SPF/DKIM by default): the 250
                           means stored, so the run ends with smtp-source
              pf+dovecot   a private Postfix handing over to a private
                           Dovecot by LMTP (what users run today): the run
                           ends when the last message is in Dovecot's
                           Maildir
              pf-maildir   a private Postfix delivering to a maildir
                           itself (virtual(8)): ends with the last file
            figure: messages/s (N / time), ratio loft / other.
submission  10 KB messages submitted on 16 connections (one AUTH each for
            Loft; Postfix takes them from mynetworks without AUTH) to a
            loopback sink (a small asyncio SMTP server here, recording when
            each message arrives), DKIM-signed (RSA 2048):
              loft         [submission] + [queue] smarthost = the sink,
                           a key from `loftctl dkim add`
              pf+opendkim  Postfix with OpenDKIM as milter, relayhost =
                           the sink
            figures: messages/s until the last reached the sink; latency
            from the client's 250 to the sink's receipt, p50 and p99.
queue       N messages (--queue-messages, 100,000 in the issue) held in the
            queue for a remote that refuses connections (a closed loopback
            port as smarthost / relayhost), Loft beside Postfix:
              hold       memory (PSS) with N queued minus before: all
                         of loftd's processes; Postfix's qmgr (its smtpd
                         processes linger idle after taking the mail)
              schedule   every message retried at once (`loftctl queue
                         retry --all` / `postqueue -f`) until each was
                         tried or deferred again (log lines counted; both
                         defer what waits for a destination found dead
                         without trying it: Postfix one line per message,
                         Loft one line for all)
              restart    once stopped, start until it greets again with
                         N queued (Postfix: `postfix start`)

Everything runs on loopback, with private instances in temp dirs; the
machine is shared, so compare within one run.
"""

import argparse
import asyncio
import glob
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, 'tests', 'lib'))
sys.path.insert(0, os.path.join(SRC, 'tests', 'system'))

from loftenv import Loft, free_port  # noqa: E402
from targets import descendants, pss_of  # noqa: E402
from dovecotenv import Dovecot  # noqa: E402
from postfixenv import Postfix  # noqa: E402

USER = 'alice@example.test'
SIZE = 10 * 1024
SESSIONS = 16


def wait_until(cond, timeout, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return False


def smtp_source(port, n):
    """Postfix's smtp-source: n messages of SIZE bytes, SESSIONS at once.
    Returns the seconds it took (all 250s received)."""
    t0 = time.monotonic()
    p = subprocess.run(['/usr/sbin/smtp-source', '-c', '-l', str(SIZE), '-m', str(n),
                        '-s', str(SESSIONS), '-f', 'sender@remote.example',
                        '-t', USER, '-M', 'client.remote.example',
                        '127.0.0.1:%d' % port], capture_output=True, text=True,
                       timeout=3600)
    if p.returncode != 0:
        raise RuntimeError('smtp-source: %s' % p.stderr[-2000:])
    return time.monotonic() - t0, t0


def maildir_count(root):
    return len(glob.glob(os.path.join(root, '**', 'new', '*'), recursive=True)) + \
        len(glob.glob(os.path.join(root, '**', 'cur', '*'), recursive=True))


def loft_inbox_count(env):
    m = env.imap_login(USER)
    typ, data = m.select('INBOX', readonly=True)
    m.logout()
    return int(data[0])


# ---- inbound ------------------------------------------------------------

def inbound_loft(n):
    port = free_port()
    extra = {'': {'log_level': 'info'},
             'smtp': {'listen': '127.0.0.1:%d' % port, 'sender_checks': 'no',
                      'max_connections_per_ip': '0',
                      'max_messages_per_ip_per_hour': '0'},
             'limits': {'io_threads': '2', 'worker_threads': '16'}}
    with Loft(extra=extra) as env:
        before = loft_inbox_count(env)
        secs, _ = smtp_source(port, n)
        got = loft_inbox_count(env) - before
        if got != n:
            raise RuntimeError('loft stored %d of %d' % (got, n))
        return n / secs


PF_VIRTUAL = 'virtual   unix  -       n       n       -       -       virtual\n'


def postfix_extra_fast():
    # Postfix's own defaults but for the quick retry knobs postfixenv sets
    return ('smtpd_client_connection_count_limit = 0\n'
            'smtpd_client_message_rate_limit = 0\n'
            'default_process_limit = 100\n')


def inbound_postfix_dovecot(n):
    with Dovecot(users={USER: 'bench-password-1'}) as dc:
        pf = Postfix(lmtp='inet:127.0.0.1:%d' % dc.ports['lmtp'],
                     extra=postfix_extra_fast() +
                     'lmtp_destination_concurrency_limit = 16\n')
        try:
            pf.start()
            before = maildir_count(dc.mail_dir)
            secs, t0 = smtp_source(pf.port, n)
            if not wait_until(lambda: maildir_count(dc.mail_dir) - before >= n, 600, 0.1):
                raise RuntimeError('dovecot got %d of %d' %
                                   (maildir_count(dc.mail_dir) - before, n))
            return n / (time.monotonic() - t0)
        finally:
            pf.close()


def inbound_postfix_maildir(n):
    pf = Postfix(lmtp='inet:127.0.0.1:1',
                 extra=postfix_extra_fast() +
                 'virtual_transport = virtual\n'
                 'virtual_mailbox_base = {dir}/mail\n'
                 'virtual_mailbox_maps = inline:{{ %s=alice/ }}\n'
                 'virtual_uid_maps = static:%d\n'
                 'virtual_gid_maps = static:%d\n'
                 'virtual_destination_concurrency_limit = 16\n' % (
                     USER, pwd_uid('postfix'), pwd_gid('postfix')))
    with open(os.path.join(pf.conf, 'master.cf'), 'a') as f:
        f.write(PF_VIRTUAL)
    mail = os.path.join(pf.dir, 'mail')
    os.makedirs(mail)
    shutil.chown(mail, 'postfix', 'postfix')
    try:
        pf.start()
        secs, t0 = smtp_source(pf.port, n)
        if not wait_until(lambda: maildir_count(mail) >= n, 600, 0.1):
            raise RuntimeError('postfix maildir got %d of %d' % (maildir_count(mail), n))
        return n / (time.monotonic() - t0)
    finally:
        pf.close()


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def pwd_gid(name):
    import pwd
    return pwd.getpwnam(name).pw_gid


# ---- the sink -------------------------------------------------------------

class Sink:
    """A loopback SMTP server in a thread: answers 250 to everything,
    records the monotonic time each message (by its X-Bench-Id) arrived."""

    def __init__(self):
        self.port = free_port()
        self.arrived = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        srv = self.loop.run_until_complete(
            asyncio.start_server(self._client, '127.0.0.1', self.port))
        self.server = srv
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        writer.write(b'220 sink ESMTP\r\n')
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b'EHLO',):
                    writer.write(b'250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n'
                                 b'250 SIZE 100000000\r\n')
                elif verb == b'DATA':
                    writer.write(b'354 go\r\n')
                    await writer.drain()
                    ident = None
                    while True:
                        l2 = await reader.readline()
                        if not l2 or l2 == b'.\r\n':
                            break
                        if ident is None and l2.startswith(b'X-Bench-Id: '):
                            ident = int(l2[12:].strip())
                    if ident is not None and ident not in self.arrived:
                        self.arrived[ident] = time.monotonic()
                    writer.write(b'250 2.0.0 ok\r\n')
                elif verb == b'QUIT':
                    writer.write(b'221 bye\r\n')
                    await writer.drain()
                    break
                else:
                    writer.write(b'250 ok\r\n')
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def message(i):
    head = ('From: Alice <%s>\r\nTo: <rcpt@remote.example>\r\n'
            'Subject: bench %d\r\nMessage-ID: <bench%d@example.test>\r\n'
            'Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nX-Bench-Id: %d\r\n\r\n'
            % (USER, i, i, i))
    line = 'x' * 76 + '\r\n'
    body = line * ((SIZE - len(head)) // len(line))
    return (head + body).encode()


SUBMIT_RATE = 0     # messages/s offered in all (0: as fast as it takes them)


def submit_all(port, n, password):
    """SESSIONS client threads; returns ({id: time of the 250}, seconds).
    With SUBMIT_RATE, message i is sent no earlier than i / SUBMIT_RATE s
    after the start (a paced load: latency without a backlog)."""
    acked = {}
    lock = threading.Lock()
    counter = iter(range(n))
    errors = []

    def client():
        try:
            c = smtplib.SMTP('127.0.0.1', port, timeout=120)
            if password is not None:
                c.login(USER, password)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                if SUBMIT_RATE:
                    delay = pace0 + i / SUBMIT_RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                c.sendmail(USER, ['rcpt@remote.example'], message(i))
                t = time.monotonic()
                with lock:
                    acked[i] = t
            c.quit()
        except Exception as e:   # noqa: BLE001 (reported below)
            errors.append(repr(e))
    threads = [threading.Thread(target=client) for _ in range(SESSIONS)]
    t0 = time.monotonic()
    pace0 = t0 + 1.0                # after the logins
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError('submission: %s' % errors[:3])
    return acked, t0


def latency_figures(acked, sink, t0, n):
    if not wait_until(lambda: len(sink.arrived) >= n, 600):
        raise RuntimeError('sink got %d of %d' % (len(sink.arrived), n))
    end = max(sink.arrived.values())
    lat = sorted((sink.arrived[i] - acked[i]) * 1000 for i in acked)
    return {'msgs_s': n / (end - t0),
            'p50_ms': lat[len(lat) // 2],
            'p99_ms': lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def submission_loft(n):
    sink = Sink()
    port = free_port()
    extra = {'': {'log_level': 'info'},
             'submission': {'listen': '127.0.0.1:%d' % port},
             'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                       'smarthost_tls': 'none', 'per_domain': str(SESSIONS),
                       'user_messages_per_hour': '0',
                       'user_recipients_per_hour': '0'},
             'auth': {'throttle': 'no'},
             'limits': {'io_threads': '2', 'worker_threads': '16'}}
    try:
        with Loft(extra=extra, start=False) as env:
            rc, out, err = env.loftctl('dkim', 'add', 'example.test', '--selector', 'bench')
            if rc != 0:
                raise RuntimeError('loftctl dkim add: %s' % err)
            env.start()
            acked, t0 = submit_all(port, n, env.users[USER])
            return latency_figures(acked, sink, t0, n)
    finally:
        sink.close()


def submission_postfix(n):
    sink = Sink()
    d = tempfile.mkdtemp(prefix='loft-bench-opendkim-')
    os.chmod(d, 0o755)
    mport = free_port()
    pf = None
    odk = None
    try:
        subprocess.run(['opendkim-genkey', '-D', d, '-d', 'example.test', '-s', 'bench',
                        '-b', '2048'], check=True, capture_output=True)
        with open(os.path.join(d, 'opendkim.conf'), 'w') as f:
            f.write('Mode s\nDomain example.test\nSelector bench\nKeyFile %s/bench.private\n'
                    'Socket inet:%d@127.0.0.1\nPidFile %s/opendkim.pid\n'
                    'InternalHosts 127.0.0.1\nUserID postfix\nSyslog no\n'
                    'Background no\nRequireSafeKeys no\nCanonicalization relaxed/relaxed\n'
                    % (d, mport, d))
        for fn in [d] + glob.glob(d + '/*'):
            shutil.chown(fn, 'postfix')
        odk = subprocess.Popen(['/usr/sbin/opendkim', '-f', '-x', d + '/opendkim.conf'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pf = Postfix(lmtp='inet:127.0.0.1:1',
                     extra=postfix_extra_fast() +
                     'relayhost = [127.0.0.1]:%d\n'
                     'smtpd_milters = inet:127.0.0.1:%d\n'
                     'milter_default_action = tempfail\n'
                     'smtpd_recipient_restrictions = permit_mynetworks, reject\n'
                     'smtpd_relay_restrictions = permit_mynetworks, reject\n'
                     'default_destination_concurrency_limit = 16\n'
                     % (sink.port, mport))
        pf.start()
        acked, t0 = submit_all(pf.port, n, None)
        return latency_figures(acked, sink, t0, n)
    finally:
        if pf is not None:
            pf.close()
        if odk is not None:
            odk.terminate()
            odk.wait(10)
        shutil.rmtree(d, True)
        sink.close()


# ---- the queue ------------------------------------------------------------

def greets(port, timeout):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=5) as c:
                if c.recv(100).startswith(b'220'):
                    return True
        except OSError:
            time.sleep(0.02)
    return False


def count_in(path, needle):
    try:
        with open(path, 'rb') as f:
            return f.read().count(needle)
    except OSError:
        return 0


def loft_deferred(path):
    """Recipients Loft deferred: one log line each for a try (or a
    deferral without one), plus the count of a line that deferred every
    recipient of an unreachable destination at once."""
    import re
    try:
        with open(path, 'rb') as f:
            text = f.read()
    except OSError:
        return 0
    bulk = sum(int(m) for m in re.findall(rb'unreachable \(.*?\): (\d+) queued recipients', text))
    return text.count(b'status=deferred') + bulk


def queue_loft(n):
    dead = free_port()     # nothing listens there
    port = free_port()
    extra = {'': {'log_level': 'info'},
             'submission': {'listen': '127.0.0.1:%d' % port},
             'queue': {'smarthost': '127.0.0.1:%d' % dead, 'smarthost_tls': 'none',
                       'retry_min': '1h', 'retry_max': '2h', 'delay_warning': '0',
                       'user_messages_per_hour': '0', 'user_recipients_per_hour': '0'},
             'auth': {'throttle': 'no'},
             'limits': {'io_threads': '2', 'worker_threads': '16'}}
    out = {}
    with Loft(extra=extra) as env:
        def restart():
            env.stop(timeout=300)
            t0 = time.monotonic()
            env.start(timeout=300)
            if not greets(port, 300):
                raise RuntimeError('loft did not come back')
            return time.monotonic() - t0
        out['restart_empty_s'] = restart()
        print('    loft %s' % out, flush=True)
        mem0 = sum(pss_of(p) for p in descendants(env.proc.pid))
        t0 = time.monotonic()
        submit_all(port, n, env.users[USER])
        out['ingest_msgs_s'] = n / (time.monotonic() - t0)
        deferred = lambda: loft_deferred(env.log_path)
        wait_until(lambda: deferred() >= n, 1200, 0.5)
        out['hold_mb'] = (sum(pss_of(p) for p in descendants(env.proc.pid)) - mem0) / 1e6
        print('    loft %s' % out, flush=True)
        before = deferred()
        t0 = time.monotonic()
        rc, o, e = env.loftctl('queue', 'retry', '--all')
        if not wait_until(lambda: deferred() - before >= n, 1200, 0.5):
            raise RuntimeError('loft: %d of %d retried' % (deferred() - before, n))
        out['schedule_s'] = time.monotonic() - t0
        print('    loft %s' % out, flush=True)
        out['restart_s'] = restart()
        rc, o, e = env.loftctl('queue', 'list', timeout=600)
        out['listed'] = o.count('next:')
    return out


def queue_postfix(n):
    dead = free_port()
    pf = Postfix(lmtp='inet:127.0.0.1:1',
                 extra=postfix_extra_fast() +
                 'relayhost = [127.0.0.1]:%d\n'
                 'smtpd_recipient_restrictions = permit_mynetworks, reject\n'
                 'smtpd_relay_restrictions = permit_mynetworks, reject\n'
                 'minimal_backoff_time = 3600s\nmaximal_backoff_time = 7200s\n'
                 'queue_run_delay = 3600s\ndelay_warning_time = 0\n' % dead)
    out = {}
    maillog = os.path.join(pf.dir, 'maillog')

    def master_pid():
        with open(os.path.join(pf.dir, 'queue', 'pid', 'master.pid')) as f:
            return int(f.read().strip())

    def mem():
        # the queue manager holds the queue (the smtpd processes that
        # took the messages linger for max_idle: not counted)
        total = 0
        for p in descendants(master_pid()):
            try:
                with open('/proc/%d/cmdline' % p, 'rb') as f:
                    if b'qmgr' in f.read():
                        total += pss_of(p)
            except OSError:
                pass
        return total
    def restart():
        old = master_pid()
        subprocess.run(['/usr/sbin/postfix', '-c', pf.conf, 'stop'], capture_output=True,
                       timeout=900)
        wait_until(lambda: not os.path.exists('/proc/%d' % old), 900)
        t0 = time.monotonic()
        subprocess.run(['/usr/sbin/postfix', '-c', pf.conf, 'start'], capture_output=True,
                       timeout=1800)
        if not greets(pf.port, 900):
            raise RuntimeError('postfix did not come back')
        return time.monotonic() - t0
    try:
        pf.start()
        out['restart_empty_s'] = restart()
        print('    postfix %s' % out, flush=True)
        mem0 = mem()
        t0 = time.monotonic()
        subprocess.run(['/usr/sbin/smtp-source', '-c', '-l', str(SIZE), '-m', str(n),
                        '-s', str(SESSIONS), '-f', USER, '-t', 'rcpt@remote.example',
                        '127.0.0.1:%d' % pf.port], capture_output=True, timeout=3600,
                       check=True)
        out['ingest_msgs_s'] = n / (time.monotonic() - t0)
        deferred = lambda: count_in(maillog, b'status=deferred')
        wait_until(lambda: deferred() >= n, 1200, 0.5)
        out['hold_mb'] = (mem() - mem0) / 1e6
        print('    postfix %s' % out, flush=True)
        before = deferred()
        t0 = time.monotonic()
        subprocess.run(['/usr/sbin/postqueue', '-c', pf.conf, '-f'], capture_output=True)
        if not wait_until(lambda: deferred() - before >= n, 1200, 0.5):
            raise RuntimeError('postfix: %d of %d retried' % (deferred() - before, n))
        out['schedule_s'] = time.monotonic() - t0
        print('    postfix %s' % out, flush=True)
        out['restart_s'] = restart()
    finally:
        pf.close()
    return out


# ---- main -----------------------------------------------------------------

def median_of(fn, n, reps):
    vals = [fn(n) for _ in range(reps)]
    if isinstance(vals[0], dict):
        return {k: statistics.median(v[k] for v in vals) for k in vals[0]}
    return statistics.median(vals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', type=int, default=3000)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--only', default='inbound,submission')
    ap.add_argument('--queue-messages', type=int, default=100000)
    ap.add_argument('--submit-rate', type=float, default=0,
                    help='submission: messages/s offered (0: unpaced)')
    ap.add_argument('--queue-targets', default='loft,postfix',
                    help='which servers the queue figures run on')
    a = ap.parse_args()
    global SUBMIT_RATE
    SUBMIT_RATE = a.submit_rate
    only = a.only.split(',')
    print('# bench/smtp.py: %d messages of %d bytes, %d sessions, %d reps, '
          'load %.1f, %d cores' % (a.messages, SIZE, SESSIONS, a.reps,
                                   os.getloadavg()[0], os.cpu_count()), flush=True)
    if 'inbound' in only:
        res = {}
        # alternate the targets, so load changes hit each alike
        runs = {'loft': [], 'pf+dovecot': [], 'pf-maildir': []}
        fns = {'loft': inbound_loft, 'pf+dovecot': inbound_postfix_dovecot,
               'pf-maildir': inbound_postfix_maildir}
        for _ in range(a.reps):
            for k, fn in fns.items():
                runs[k].append(fn(a.messages))
                print('  inbound %-11s %.0f msgs/s' % (k, runs[k][-1]), flush=True)
        for k, v in runs.items():
            res[k] = statistics.median(v)
        print('inbound msgs/s (median): loft %.0f, postfix+dovecot lmtp %.0f '
              '(loft %.2fx), postfix maildir %.0f (loft %.2fx)' % (
                  res['loft'], res['pf+dovecot'], res['loft'] / res['pf+dovecot'],
                  res['pf-maildir'], res['loft'] / res['pf-maildir']), flush=True)
    if 'submission' in only:
        runs = {'loft': [], 'pf+opendkim': []}
        fns = {'loft': submission_loft, 'pf+opendkim': submission_postfix}
        for _ in range(a.reps):
            for k, fn in fns.items():
                runs[k].append(fn(a.messages))
                r = runs[k][-1]
                print('  submission %-11s %.0f msgs/s, 250->sink p50 %.1f ms p99 %.1f ms'
                      % (k, r['msgs_s'], r['p50_ms'], r['p99_ms']), flush=True)
        med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]}
               for k, v in runs.items()}
        lo, pf = med['loft'], med['pf+opendkim']
        print('submission, DKIM-signed, to a loopback sink (median): loft %.0f msgs/s, '
              'p50 %.1f ms, p99 %.1f ms; postfix+opendkim %.0f msgs/s, p50 %.1f ms, '
              'p99 %.1f ms (loft %.2fx msgs/s)' % (
                  lo['msgs_s'], lo['p50_ms'], lo['p99_ms'], pf['msgs_s'],
                  pf['p50_ms'], pf['p99_ms'], lo['msgs_s'] / pf['msgs_s']), flush=True)


    if 'queue' in only:
        n = a.queue_messages
        targets = a.queue_targets.split(',')
        if 'loft' in targets:
            lo = queue_loft(n)
            print('  queue loft    %s' % lo, flush=True)
        if 'postfix' in targets:
            pf = queue_postfix(n)
            print('  queue postfix %s' % pf, flush=True)
        if 'loft' not in targets or 'postfix' not in targets:
            return
        print('queue of %d: ingest %.0f vs %.0f msgs/s; hold %.0f MB vs %.0f MB; retry all '
              '%.1f s vs %.1f s; start to greeting %.2f s vs %.2f s (empty queue: %.2f s vs %.2f s) '
              '(loft vs postfix)' % (
                  n, lo['ingest_msgs_s'], pf['ingest_msgs_s'], lo['hold_mb'],
                  pf['hold_mb'], lo['schedule_s'], pf['schedule_s'], lo['restart_s'],
                  pf['restart_s'], lo['restart_empty_s'], pf['restart_empty_s']),
              flush=True)


if __name__ == '__main__':
    main()
