"""The queue survives kill -9: 500 messages are submitted on four
connections while Postfix's smtp-sink (slowed down: it waits a second
before some DATA replies) takes them from the queue as the smarthost;
loftd is killed with SIGKILL three times at random moments (while
messages are being submitted, and while they are being delivered) and
restarted. Afterwards every message that got its 250 has reached the sink
at least once, the queue is empty, and a message reached the sink twice
only if its delivery was in flight at a kill (at most per_domain of them
per kill)."""

import glob
import os
import random
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

from loftenv import Loft, Results, free_port, SLOW

MESSAGES = 500
CLIENTS = 4
PER_DOMAIN = 8
KILLS = 3
USER = 'alice@example.test'


class Sink:
    """Postfix's smtp-sink writing one file per message."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='loft-sink-')
        shutil.chown(self.dir, 'postfix', 'postfix')
        self.port = free_port()
        self.log = open(os.path.join(self.dir, 'log'), 'wb')
        # a random 1 s wait before 1 in 20 DATA replies: deliveries are in
        # flight when loftd is killed
        self.proc = subprocess.Popen(
            ['/usr/sbin/smtp-sink', '-u', 'postfix', '-d',
             os.path.join(self.dir, 'm%H%M%S.'), '-W', 'data:1:5',
             '127.0.0.1:%d' % self.port, '256'],
            stdout=self.log, stderr=self.log)

    def markers(self):
        out = []
        for f in glob.glob(os.path.join(self.dir, 'm*')):
            try:
                with open(f, 'rb') as fh:
                    m = re.search(rb'X-Crash-Id: (\d+)', fh.read())
            except OSError:
                continue
            if m:
                out.append(int(m.group(1)))
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, True)


def main():
    r = Results()
    if not os.access('/usr/sbin/smtp-sink', os.X_OK):
        r.check('smtp-sink installed (postfix)', False)
        sys.exit(r.finish())
    sink = Sink()
    port = free_port()
    extra = {
        'submission': {'listen': '127.0.0.1:%d' % port},
        'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                  'smarthost_tls': 'none', 'retry_min': '1s',
                  'retry_max': '2s', 'per_domain': str(PER_DOMAIN),
                  'workers': str(PER_DOMAIN)},
        'auth': {'throttle': 'no'},
    }
    acked = set()
    lock = threading.Lock()
    next_id = iter(range(MESSAGES))
    done_submitting = threading.Event()

    with Loft(extra=extra) as env:
        pw = env.users[USER]

        def client():
            c = None
            while True:
                with lock:
                    n = next(next_id, None)
                if n is None:
                    break
                msg = ('From: %s\r\nTo: x@remote.example\r\nSubject: crash %d\r\n'
                       'X-Crash-Id: %d\r\n\r\nmessage %d\r\n' % (USER, n, n, n)).encode()
                try:
                    if c is None:
                        # the port moves if a restart finds it taken
                        c = smtplib.SMTP('127.0.0.1', env.port('submission'),
                                         timeout=30 * SLOW)
                        c.login(USER, pw)
                    c.sendmail(USER, ['x@remote.example'], msg)
                    with lock:
                        acked.add(n)
                except (OSError, smtplib.SMTPException):
                    # loftd went away: this one was not acknowledged; go on
                    # with the next (the client does not send it again)
                    try:
                        if c is not None:
                            c.close()
                    except OSError:
                        pass
                    c = None
                    time.sleep(0.05)
            if c is not None:
                try:
                    c.quit()
                except (OSError, smtplib.SMTPException):
                    pass

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        rng = random.Random(os.getpid())
        kills = 0
        # one kill while messages are being submitted ...
        while len(acked) < MESSAGES // 3 and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        time.sleep(rng.random() * 0.3)
        env.restart(kill=True)
        kills += 1
        for t in threads:
            t.join(300 * SLOW)
        done_submitting.set()
        r.check('most messages acknowledged', len(acked) >= MESSAGES * 0.8,
                len(acked))
        # ... and two while they are being delivered
        for _ in range(KILLS - kills):
            time.sleep(0.3 + rng.random() * 1.5)
            delivered = len(set(sink.markers()))
            env.restart(kill=True)
            kills += 1
            print('kill %d: %d acknowledged, %d at the sink' % (kills, len(acked),
                                                               delivered))
        deadline = time.time() + 240 * SLOW
        while time.time() < deadline:
            if acked <= set(sink.markers()):
                break
            time.sleep(0.2)
        got = sink.markers()
        missing = sorted(acked - set(got))
        r.check('every acknowledged message reached the remote', not missing,
                missing[:20])
        dups = len(got) - len(set(got))
        print('%d acknowledged, %d received, %d duplicates after %d kills' %
              (len(acked), len(set(got)), dups, kills))
        r.check('duplicates only for deliveries in flight at a kill',
                dups <= KILLS * PER_DOMAIN, dups)
        deadline = time.time() + 60 * SLOW
        while time.time() < deadline:
            rc, out, err = env.loftctl('queue', 'list')
            if rc == 0 and out == '':
                break
            time.sleep(0.2)
        r.check('queue empty at the end', rc == 0 and out == '', out[:500])
    sink.close()
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
