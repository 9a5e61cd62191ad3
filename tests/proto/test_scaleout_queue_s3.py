#!/usr/bin/env python3
"""The outbound queue shared by two loftd nodes with [store] blobs = s3
(issue 18, docs/scale-out.md "The queue"): the rows in PostgreSQL, each
queued message's bytes one object in the bucket (no directory the nodes
share), so any node delivers any message.

- A message submitted on node B leaves once; its object is gone from the
  bucket (and from blob_object) after the delivery.
- S3 answering 503 SlowDown twice during a submission: the PUT is
  retried and the message leaves; S3 refusing (403): the submission gets
  451 after DATA and nothing is queued.
- A message submitted on node A, which dies (kill -9 of all its
  processes) while the remote holds its answer to DATA: node B reads the
  object from the bucket (`loftctl queue show --body` on B too), delivers
  it once after A's lease ran out, and the object is removed.
- A damaged object (overwritten in the bucket behind loftd's back, same
  size): nothing is sent, the recipient stays queued with a temporary
  error, and the log names the damage; once the object is whole again the
  message leaves, intact, once.
- S3 not answering a read: only that message waits (up to [s3]
  timeout, then it is tried again); another message submitted meanwhile
  leaves at once.
- A node that kept its own queue (the embedded one: every node with
  blobs = s3 did before) moves what waits there into the shared queue
  when it starts as a node of the cluster; it leaves once.
Runs against s3rver (make test) or, with LOFT_TEST_S3=ceph, a private
Ceph radosgw (make test-scaleout). Skipped (77) without PostgreSQL 15,
s3rver (make npm) or Ceph."""

import os
import re
import signal
import smtplib
import socket
import sys
import threading
import time

from loftenv import Results, free_port, SLOW
from s3env import S3
from scaleenv import ScaleEnv, merge, skip_without_postgres

USER = 'alice@example.test'
BUCKET = 'loft-mail'
LEASE = 6
r = Results()


class Sink:
    """An SMTP server. A message whose body holds b'STALL' gets no answer
    to its DATA the first time (the connection stays open until the
    sender dies; nothing kept). While defer is set, a message holding
    b'DEFER' gets 451. Anything else is kept (250)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.kept = []
        self.deferred = 0
        self.defer = True
        self.stalled = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,),
                             daemon=True).start()

    def _data(self, c, data):
        if b'STALL' in data and not self.stalled.is_set():
            self.stalled.set()
            return False
        if b'DEFER' in data and self.defer:
            with self.lock:
                self.deferred += 1
            c.sendall(b'451 4.3.0 not now\r\n')
            return True
        with self.lock:
            self.kept.append(data)
        c.sendall(b'250 2.0.0 kept\r\n')
        return True

    def _session(self, c):
        f = c.makefile('rb')
        try:
            c.sendall(b'220 sink ESMTP\r\n')
            while True:
                line = f.readline()
                if not line:
                    break
                up = line.upper()
                if up.startswith(b'EHLO'):
                    c.sendall(b'250-sink\r\n250 8BITMIME\r\n')
                elif up.startswith(b'DATA'):
                    c.sendall(b'354 go\r\n')
                    data = b''
                    while True:
                        l2 = f.readline()
                        if l2 in (b'.\r\n', b''):
                            break
                        data += l2
                    if not self._data(c, data):
                        while f.readline():
                            pass
                        return
                elif up.startswith(b'QUIT'):
                    c.sendall(b'221 bye\r\n')
                    break
                else:
                    c.sendall(b'250 ok\r\n')
        except OSError:
            pass
        finally:
            c.close()

    def count(self, marker):
        with self.lock:
            return sum(1 for d in self.kept if marker in d)

    def with_marker(self, marker):
        with self.lock:
            return [d for d in self.kept if marker in d]


def message(marker):
    filler = ''.join('line %d of %s\r\n' % (i, marker) for i in range(400))
    return ('From: %s\r\nTo: x@remote.example\r\nSubject: %s\r\n\r\n'
            'body %s\r\n%s' % (USER, marker, marker, filler)).encode()


def submit(node, marker):
    """None when the submission was accepted, else the SMTP error."""
    c = smtplib.SMTP('127.0.0.1', node.port('submission'), timeout=60 * SLOW)
    try:
        c.login(USER, node.users[USER])
        c.sendmail(USER, ['x@remote.example'], message(marker))
        return None
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    finally:
        try:
            c.quit()
        except (smtplib.SMTPException, OSError):
            pass


def wait(cond, bound):
    deadline = time.monotonic() + bound * SLOW
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def main():
    if skip_without_postgres():
        return 77
    ceph = os.environ.get('LOFT_TEST_S3') == 'ceph'
    if ceph:
        from cephenv import Ceph
        if not Ceph.available():
            print('0 passed, 0 failed (skipped: no Ceph: sh scripts/deps.sh'
                  ' scaleout)')
            return 77
    elif not S3.available():
        print('0 passed, 0 failed (skipped: no node or s3rver: make npm)')
        return 77
    sink = Sink()
    s3 = None
    try:
        s3 = Ceph() if ceph else S3()
        extra = {
            'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                      'smarthost_tls': 'none', 'retry_min': '1s',
                      'retry_max': '2s', 'lease': '%ds' % LEASE},
            'auth': {'throttle': 'no'},
            's3': {'endpoint': s3.endpoint, 'bucket': BUCKET,
                   'access_key': s3.access_key,
                   'secret_key_file': s3.secret_file, 'timeout': '10s'},
        }

        def node_extra(i):
            # node B reads every object from the bucket (no cache)
            return merge({'submission': {'listen': '127.0.0.1:%d'
                                         % free_port()}},
                         {'store': {'blob_cache': '4M' if i == 0 else '0'}})
        with ScaleEnv(nodes=2, store={'blobs': 's3'}, extra=extra,
                      node_extra=node_extra) as env:
            run(env, *env.nodes, sink, s3)
    finally:
        if s3 is not None:
            s3.close()
    return r.finish()


def objects(s3):
    return s3.objects(BUCKET)


def blob_rows(env, named=False):
    """Rows of blob_object (named: those a row names)."""
    out = env.psql('SELECT count(*) FROM blob_object' +
                   (' WHERE refs > 0' if named else ''))
    m = re.search(r'(\d+)', out or '')
    return int(m.group(1)) if m else None


def run(env, na, nb, sink, s3):
    # ---- both nodes up ---------------------------------------------------
    puts = s3.requests.get('PUT', 0)
    r.check('a submission on node B is accepted', submit(nb, 'PLAIN1') is None)
    r.check('... its bytes went to the bucket (a PUT)',
            s3.requests.get('PUT', 0) > puts)
    r.check('... and it reaches the remote',
            wait(lambda: sink.count(b'PLAIN1') >= 1, 60))
    r.check('... its object is removed after the delivery',
            wait(lambda: objects(s3) == [] and blob_rows(env) == 0, 30),
            (objects(s3), blob_rows(env)))

    s3.fail(2, 503, 'SlowDown')
    r.check('S3 answering 503 SlowDown twice: the submission is accepted'
            ' (the PUT retried)', submit(na, 'PLAIN2') is None)
    s3.clear()
    r.check('... and the message leaves',
            wait(lambda: sink.count(b'PLAIN2') == 1, 60))
    r.check('... and its object is removed',
            wait(lambda: objects(s3) == [] and blob_rows(env) == 0, 30),
            (objects(s3), blob_rows(env)))
    s3.fail(1000, 403, 'AccessDenied')
    code = submit(na, 'REFUSED1')
    s3.clear()
    r.check('S3 refusing (403): the submission gets 451 after DATA',
            code == 451, code)
    rc, out, _ = nb.loftctl('queue', 'list')
    r.check('... and nothing was queued', rc == 0 and out.strip() == '', out)
    # (its blob_object row, made before the PUT, is the collector's after
    # the grace period, as for any upload whose commit never came)

    # ---- node A dies while the remote holds its answer --------------------
    r.check('a submission on node A is accepted', submit(na, 'STALL1') is None)
    r.check('node A is delivering it (the remote holds DATA)',
            sink.stalled.wait(60 * SLOW))
    keys = objects(s3)
    r.check('one object in the bucket (the queued message), named by its'
            ' SHA-256', len(keys) == 1 and
            re.fullmatch(r'[0-9a-f]{64}', keys[0]) is not None, keys)
    rc, out, err = nb.loftctl('queue', 'list')
    m = re.search(r'^([0-9A-F]{16})\s', out, re.M)
    r.check('node B\'s loftctl lists node A\'s message', rc == 0 and m,
            (rc, out, err))
    qid = m.group(1) if m else 'none'
    rc, out, err = nb.loftctl('queue', 'show', '--body', qid)
    r.check('node B\'s loftctl shows its bytes (read from the bucket)',
            rc == 0 and 'body STALL1' in out and 'line 399 of STALL1' in out
            and 'X-Loft-Queue-Id' not in out, (rc, out[-300:], err))
    t0 = time.monotonic()
    for pid in na.children().values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    na.kill9()
    r.check('node B delivers it once node A\'s lease ran out',
            wait(lambda: sink.count(b'STALL1') >= 1, 4 * LEASE + 60))
    took = time.monotonic() - t0
    print('node A killed: node B delivered after %.1f s (lease %d s)'
          % (took, LEASE))
    # A renewed its lease every third of it until the kill
    r.check('not before the lease ran out', took >= LEASE * 2 / 3 - 1, took)
    got = sink.with_marker(b'STALL1')
    want = message('STALL1').split(b'\r\n\r\n', 1)[1]
    r.check('... the same bytes', len(got) == 1 and got[0].endswith(want),
            [len(g) for g in got])
    r.check('the queue is empty',
            wait(lambda: nb.loftctl('queue', 'list')[1].strip() == '', 30),
            nb.loftctl('queue', 'list')[1])
    r.check('the object is removed from the bucket (node B finished it)',
            wait(lambda: objects(s3) == [] and blob_rows(env, True) == 0, 30),
            (objects(s3), blob_rows(env, True)))
    time.sleep(2 * SLOW)
    r.check('delivered once', sink.count(b'STALL1') == 1,
            sink.count(b'STALL1'))

    # ---- a damaged object -------------------------------------------------
    sink.defer = True
    r.check('a submission on node B is accepted', submit(nb, 'DEFER1') is None)
    r.check('... the remote defers it (451)',
            wait(lambda: sink.deferred >= 1, 60))
    keys = objects(s3)
    r.check('one object in the bucket', len(keys) == 1, keys)
    key = keys[0] if keys else 'none'
    good = s3.object(BUCKET, key)
    at = good.index(b'line 200 of DEFER1')
    bad = good[:at] + b'X' + good[at + 1:]
    r.check('the object is overwritten behind loftd\'s back (same size)',
            s3.object(BUCKET, key, bad) == 200 and
            s3.object(BUCKET, key) == bad)
    sink.defer = False
    r.check('node B logs the damage',
            wait(lambda: 'is damaged' in nb.log() and
                 'cannot be read now' in nb.log(), 30),
            nb.log()[-1500:])
    time.sleep(3 * SLOW)
    r.check('... and sends nothing (never the wrong bytes)',
            sink.count(b'DEFER1') == 0, sink.count(b'DEFER1'))
    rc, out, _ = nb.loftctl('queue', 'list')
    r.check('... the recipient stays queued with a temporary error',
            rc == 0 and 'x@remote.example' in out and
            'cannot be read now' in out, out)
    r.check('the object whole again', s3.object(BUCKET, key, good) == 200)
    r.check('... the message leaves, intact, once',
            wait(lambda: sink.count(b'DEFER1') == 1, 60))
    got = sink.with_marker(b'DEFER1')
    r.check('... the same bytes', len(got) == 1 and got[0].endswith(
        message('DEFER1').split(b'\r\n\r\n', 1)[1]), [len(g) for g in got])
    r.check('... and its object is removed',
            wait(lambda: objects(s3) == [] and blob_rows(env, True) == 0, 30),
            (objects(s3), blob_rows(env, True)))

    # ---- a slow S3 holds only the message that waits for it --------------
    sink.defer = True
    before = sink.deferred
    r.check('a submission on node B is accepted',
            submit(nb, 'DEFERSLOW1') is None)
    r.check('... the remote defers it', wait(lambda: sink.deferred > before,
                                              60))
    gets = s3.requests.get('GET', 0)
    s3.hang(1, 40)
    sink.defer = False
    r.check('its next attempt reads the object: S3 does not answer',
            wait(lambda: s3.requests.get('GET', 0) > gets, 30))
    t0 = time.monotonic()
    r.check('meanwhile a submission on node B is accepted',
            submit(nb, 'FAST1') is None)
    r.check('... and leaves while the first one still waits for S3',
            wait(lambda: sink.count(b'FAST1') == 1, 8) and
            sink.count(b'DEFERSLOW1') == 0,
            (sink.count(b'FAST1'), sink.count(b'DEFERSLOW1'),
             time.monotonic() - t0))
    r.check('the first one leaves once S3 answers again ([s3] timeout)',
            wait(lambda: sink.count(b'DEFERSLOW1') == 1, 90))
    r.check('... both objects are removed',
            wait(lambda: objects(s3) == [] and blob_rows(env, True) == 0, 30),
            (objects(s3), blob_rows(env, True)))

    # ---- a node's own queue from before, taken into the shared one --------
    # node C kept its own queue (the embedded one, as every node with
    # blobs = s3 did before): a message waits there when C is set up as
    # a node of the cluster
    nc = env.add_node(extra={'submission': {'listen': '127.0.0.1:%d'
                                            % free_port()}}, start=False)
    nc.sections['store'] = {'backend': 'sqlite'}
    nc.write_config()
    nc._setup_accounts()      # its own accounts.db
    nc.start()
    sink.defer = True
    before = sink.deferred
    r.check('node C (its own queue) accepts a submission',
            submit(nc, 'DEFEROWN1') is None)
    r.check('... the remote defers it', wait(lambda: sink.deferred > before,
                                              60), nc.log()[-3000:])
    nc.stop()
    nc.sections['store'] = dict(env.store_section(), blob_cache='0')
    nc.write_config()
    sink.defer = False
    nc.start()
    r.check('node C, now a node of the cluster, moves it to the shared'
            ' queue', wait(lambda: 'moved from this node\'s own queue' in
                           nc.log(), 30), nc.log()[-1500:])
    r.check('... and it leaves once',
            wait(lambda: sink.count(b'DEFEROWN1') == 1, 60))
    time.sleep(2 * SLOW)
    r.check('... only once', sink.count(b'DEFEROWN1') == 1)
    r.check('... and its object is removed',
            wait(lambda: objects(s3) == [] and blob_rows(env, True) == 0, 30),
            (objects(s3), blob_rows(env, True)))
    rc, out, _ = nc.loftctl('queue', 'list')
    r.check('the shared queue is empty', rc == 0 and out.strip() == '', out)


if __name__ == '__main__':
    sys.exit(main())
