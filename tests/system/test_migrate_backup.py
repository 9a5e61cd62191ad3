#!/usr/bin/env python3
"""Online backup and restore (issue 17, docs/backup.md):

  - `loftctl backup ADDRESS DEST` while LMTP delivers and IMAP stores
    flags; `restore DEST ADDRESS --as OTHER` gives a copy equal to the
    source at one instant (a prefix of the deliveries, same UIDVALIDITY,
    UIDs, flags, dates, bytes);
  - an unchanged re-run references the account instead of rewriting it;
  - a run killed -9 leaves no snapshot (`backup list` says incomplete),
    the next one completes;
  - a write that fails in DEST (a full disk; the file size limit stands
    in for it) ends the run with exit 1 naming it, makes no snapshot,
    leaves the older ones whole, and the next run completes;
  - `backup verify` names a damaged blob and a damaged manifest (exit 1),
    and restore refuses a damaged backup (an account it would have made
    is not left behind); a SNAPSHOT naming a path with
    ".." is refused;
  - a restore killed -9 and run again stores each message once.
"""

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

from loftenv import LOFTCTL, Loft, Results

R = Results()
PW = 'backup-test-password-1'
USERS = {a + '@example.test': PW for a in
         ('alice', 'bob', 'carol', 'dave', 'erin')}


def msg(i, size=0):
    return ('From: s%d@example.org\r\nSubject: backup %d\r\n'
            'Message-ID: <b%d@example.org>\r\n\r\nmessage %d\r\n%s'
            % (i, i, i, i, 'x' * size + '\r\n' if size else '')).encode()


def snapshot(env, address):
    imap = env.imap_login(address, PW)
    out = {}
    typ, lines = imap.list('""', '*')
    for line in lines:
        name = re.search(rb' "?([^"]*)"?$', line).group(1).decode()
        imap.select('"%s"' % name, readonly=True)
        uv = int(imap.response('UIDVALIDITY')[1][0])
        typ, data = imap.uid('FETCH', '1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
        msgs = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
                flags = sorted(f for f in re.search(
                    rb'FLAGS \(([^)]*)\)', item[0]).group(1).split()
                    if f != b'\\Recent')
                date = re.search(rb'INTERNALDATE "([^"]+)"', item[0]).group(1)
                msgs[uid] = (flags, date, item[1])
        out[name] = (uv, msgs)
        imap.close()
    imap.logout()
    return out


def main():
    tmp = tempfile.mkdtemp(prefix='loft-backup-')
    dest = os.path.join(tmp, 'backup')
    with Loft(users=USERS) as env:
        imap = env.imap_login('alice@example.test', PW)
        imap.create('Projects/2026')
        for i in range(1, 41):
            imap.append('INBOX', '(\\Seen)' if i % 3 else '($Work)', None,
                        msg(i, 200000 if i % 10 == 0 else 0))
        for i in range(41, 46):
            imap.append('Projects/2026', '(\\Flagged)', None, msg(i))
        imap.logout()

        # backup while LMTP delivers and IMAP stores flags
        stop = threading.Event()

        def load():
            n = 100
            while not stop.is_set():
                n += 1
                try:
                    with smtplib.LMTP('127.0.0.1', env.port('lmtp')) as s:
                        s.sendmail('s@example.org', ['alice@example.test'],
                                   msg(n))
                    im = env.imap_login('alice@example.test', PW)
                    im.select('INBOX')
                    im.uid('STORE', '%d' % (n % 40 + 1), '+FLAGS', '(\\Answered)')
                    im.logout()
                except Exception:
                    pass
        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        rc, out, err = env.loftctl('backup', 'alice@example.test', dest)
        stop.set()
        t.join()
        R.check('backup under load exit 0', rc == 0, out + err)
        first = re.search(r'snapshot (\S+)', out)
        R.check('backup names its snapshot', first, out)
        R.check('DEST is 0700', os.stat(dest).st_mode & 0o777 == 0o700,
                oct(os.stat(dest).st_mode))

        rc, out, err = env.loftctl('restore', dest, 'alice@example.test',
                                   '--as', 'bob@example.test')
        R.check('restore exit 0', rc == 0, out + err)
        with open(os.path.join(dest, 'snapshots', first.group(1),
                               'alice@example.test.json')) as f:
            man = json.load(f)
        bob = snapshot(env, 'bob@example.test')
        alice = snapshot(env, 'alice@example.test')
        for mb in man['mailboxes']:
            name = mb['name']
            uids = [m['uid'] for m in mb['messages']]
            R.check('restored %s: UIDVALIDITY' % name,
                    bob.get(name, (0,))[0] == mb['uidvalidity'],
                    (bob.get(name, (0,))[0], mb['uidvalidity']))
            R.check('restored %s: the UIDs of the snapshot' % name,
                    sorted(bob.get(name, (0, {}))[1]) == uids,
                    (sorted(bob.get(name, (0, {}))[1])[:5], uids[:5]))
            # a prefix of the deliveries: every UID the snapshot has is
            # the source's, with the same bytes and date
            for uid in uids:
                if uid in alice.get(name, (0, {}))[1] and uid in bob[name][1]:
                    same = (alice[name][1][uid][1:] == bob[name][1][uid][1:])
                    if not same:
                        R.check('restored %s UID %d equal' % (name, uid),
                                False, uid)
            if name == 'INBOX':
                R.check('the snapshot is a prefix of the deliveries',
                        uids == list(range(1, len(uids) + 1)), uids[-5:])
                # the 40 appended before the backup at least (a backup
                # once kept only the first message of each folder)
                R.check('the snapshot has every message before it',
                        len(uids) >= 40, len(uids))
            if name == 'Projects/2026':
                R.check('the snapshot has the folder\'s five',
                        len(uids) == 5, uids)
        R.check('restored Projects/2026 flags',
                all(v[0] == [b'\\Flagged'] for v in
                    bob['Projects/2026'][1].values()), bob['Projects/2026'])

        # unchanged: referenced, not rewritten
        rc, out, err = env.loftctl('backup', 'alice@example.test', dest)
        second = re.search(r'snapshot (\S+)', out)
        R.check('second backup exit 0', rc == 0 and second, out + err)
        rc, out, err = env.loftctl('backup', 'alice@example.test', dest)
        third = re.search(r'snapshot (\S+)', out)
        if third:
            with open(os.path.join(dest, 'snapshots', third.group(1),
                                   'SNAPSHOT')) as f:
                idx = json.load(f)
            R.check('an unchanged account is referenced',
                    idx['accounts'][0]['file'].startswith(second.group(1)),
                    idx)
            R.check('and not rewritten', not os.path.exists(os.path.join(
                dest, 'snapshots', third.group(1), 'alice@example.test.json')),
                os.listdir(os.path.join(dest, 'snapshots', third.group(1))))

        # runs in one second (the newest name ending in 9 once reused
        # the newest snapshot's directory): each its own, growing name
        names = [second.group(1)] + ([third.group(1)] if third else [])
        for i in range(4):
            rc, out, err = env.loftctl('backup', 'alice@example.test', dest)
            nth = re.search(r'snapshot (\S+)', out)
            R.check('quick unchanged run %d exit 0' % i, rc == 0 and nth,
                    out + err)
            if nth:
                names.append(nth.group(1))
        R.check('quick runs: distinct names in run order',
                names == sorted(set(names)), names)
        for nm in names[1:]:
            R.check('quick run %s references, not rewritten' % nm,
                    os.listdir(os.path.join(dest, 'snapshots', nm))
                    == ['SNAPSHOT'],
                    os.listdir(os.path.join(dest, 'snapshots', nm)))

        rc, out, err = env.loftctl('backup', 'verify', dest)
        R.check('verify a whole backup: exit 0', rc == 0, out + err)

        # kill -9 during a backup: no snapshot; the next run completes
        imap = env.imap_login('erin@example.test', PW)
        for i in range(300):
            imap.append('INBOX', None, None, msg(1000 + i, 20000))
        imap.logout()
        # killed in the middle (once its run directory exists): never a
        # half snapshot taken for whole; the next run completes
        b2 = os.path.join(tmp, 'b2')
        incomplete = 0

        def copying():
            sd = os.path.join(b2, 'snapshots')
            if not os.path.isdir(sd):
                return False
            return any(not os.path.exists(os.path.join(sd, d, 'SNAPSHOT'))
                       for d in os.listdir(sd))
        for attempt in range(3):
            p = subprocess.Popen([LOFTCTL, '--config', env.config_path,
                                  'backup', 'alice@example.test',
                                  'erin@example.test', b2],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < deadline:
                if copying():
                    p.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.005)
            p.wait()
            rc, out, err = env.loftctl('backup', 'list', b2)
            incomplete += out.count('incomplete')
            if 'accounts' in out.replace('incomplete', ''):
                rc, vout, verr = env.loftctl('backup', 'verify', b2)
                R.check('a snapshot left by a killed run is whole', rc == 0,
                        vout + verr)
            # a new start: the blobs stay (they are shared), runs go
            sd = os.path.join(b2, 'snapshots')
            for d in os.listdir(sd) if os.path.isdir(sd) else []:
                shutil.rmtree(os.path.join(sd, d))
            shutil.rmtree(os.path.join(b2, 'blobs'), ignore_errors=True)
        R.check('a killed backup is no snapshot', incomplete > 0, incomplete)
        rc, out, err = env.loftctl('backup', 'alice@example.test',
                                   os.path.join(tmp, 'b2'))
        R.check('the next backup completes', rc == 0, out + err)

        # a write that fails in DEST (a full disk; here the file size
        # limit, which fails write() the same way with EFBIG): exit 1
        # naming it, no snapshot, the older ones whole; the next run
        # completes
        imap = env.imap_login('alice@example.test', PW)
        imap.append('INBOX', None, None, msg(5000, 400000))
        imap.logout()
        before = env.loftctl('backup', 'list', b2)[1]

        def small_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        r = subprocess.run([LOFTCTL, '--config', env.config_path, 'backup',
                            'alice@example.test', b2], capture_output=True,
                           text=True, preexec_fn=small_files, timeout=300)
        R.check('a failing write in DEST: exit 1, named',
                r.returncode == 1 and 'File too large' in r.stderr and
                'blobs/' in r.stderr, (r.returncode, r.stderr[-600:]))
        rc, out, err = env.loftctl('backup', 'list', b2)
        R.check('no snapshot from it: the complete ones as before',
                [l for l in out.splitlines() if 'incomplete' not in l] ==
                [l for l in before.splitlines() if 'incomplete' not in l],
                (before, out))
        rc, out, err = env.loftctl('backup', 'verify', b2)
        R.check('the older snapshots stay whole (verify)', rc == 0,
                out + err)
        rc, out, err = env.loftctl('backup', 'alice@example.test', b2)
        R.check('the next backup with room completes', rc == 0, out + err)

        # damage: a blob, then a manifest
        blobs = []
        for root, dirs, files in os.walk(os.path.join(dest, 'blobs')):
            blobs += [os.path.join(root, f) for f in files]
        victim = sorted(blobs)[0]
        with open(victim, 'rb') as f:
            saved = f.read()
        with open(victim, 'r+b') as f:
            f.write(b'X')
        rc, out, err = env.loftctl('backup', 'verify', dest)
        R.check('verify names a damaged blob', rc == 1 and victim in err and
                'damaged' in err, out + err)
        rc, out, err = env.loftctl('restore', dest, 'alice@example.test',
                                   '--as', 'carol@example.test')
        R.check('restore refuses a damaged backup', rc == 1 and
                'restore refused' in err, out + err)
        c = snapshot(env, 'carol@example.test')
        R.check('nothing restored from it',
                all(not v[1] for v in c.values()), c.keys())
        # into an account the restore would make: none is left behind
        # (an empty account with alice's password, as there was)
        rc, out, err = env.loftctl('restore', dest, 'alice@example.test',
                                   '--as', 'frank@example.test')
        R.check('restore --as a new account refuses the damaged backup',
                rc == 1 and 'restore refused' in err, out + err)
        rc, out, err = env.loftctl('user', 'list')
        R.check('... and leaves no account made for it',
                rc == 0 and 'frank@example.test' not in out, out + err)
        with open(victim, 'wb') as f:
            f.write(saved)
        man_path = os.path.join(dest, 'snapshots', second.group(1),
                                'alice@example.test.json')
        with open(man_path) as f:
            text = f.read()
        with open(man_path, 'w') as f:
            f.write(text.replace('"internaldate":', '"internaldate":1', 1))
        rc, out, err = env.loftctl('backup', 'verify', dest)
        R.check('verify names a damaged manifest', rc == 1 and
                'alice@example.test.json' in err and 'checksum' in err,
                out + err)
        with open(man_path, 'w') as f:
            f.write(text)

        # a SNAPSHOT naming ".." paths (its checksum made right)
        evil_dir = os.path.join(dest, 'snapshots', '2099-01-01T000000Z')
        os.makedirs(evil_dir)
        idx = {'format': 'loft-backup-1', 'time': 1,
               'accounts': [{'address': 'alice@example.test',
                             'file': '../../../../etc/x@example.test.json',
                             'modseq': 1, 'sha256': '0' * 64}],
               'sha256': ''}
        s = json.dumps(idx, separators=(',', ':'), sort_keys=True)
        idx['sha256'] = hashlib.sha256(s.encode()).hexdigest()
        with open(os.path.join(evil_dir, 'SNAPSHOT'), 'w') as f:
            json.dump(idx, f)
        rc, out, err = env.loftctl('restore', dest, 'alice@example.test',
                                   '--as', 'carol@example.test')
        R.check('a manifest naming ".." is refused', rc == 1 and
                'outside the backup' in err, out + err)
        shutil.rmtree(evil_dir)

        # kill -9 during a restore, then again: each message once
        p = subprocess.Popen([LOFTCTL, '--config', env.config_path, 'restore',
                              dest, 'alice@example.test', '--as',
                              'dave@example.test'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        p.send_signal(signal.SIGKILL)
        p.wait()
        rc, out, err = env.loftctl('restore', dest, 'alice@example.test',
                                   '--as', 'dave@example.test')
        R.check('a restore run again finishes', rc == 0, out + err)
        d = snapshot(env, 'dave@example.test')
        with open(os.path.join(dest, 'snapshots', second.group(1),
                               'alice@example.test.json')) as f:
            man2 = json.load(f)
        want = sum(len(mb['messages']) for mb in man2['mailboxes'])
        R.check('each message once',
                sum(len(v[1]) for v in d.values()) == want,
                (sum(len(v[1]) for v in d.values()), want))

        # every account with its accounts.db record (hash, aliases,
        # overrides), for a server that has none of them
        for args in (('alias', 'add', 'ali@example.test',
                      'alice@example.test'),
                     ('user', 'set', 'alice@example.test', 'quota_bytes=50M')):
            rc, out, err = env.loftctl(*args)
            R.check(' '.join(args), rc == 0, out + err)
        script = ('require "fileinto";\nif header :contains "subject"'
                  ' "backup" { fileinto "INBOX"; }\n')
        rc, out, err = env.loftctl('sieve', 'put', 'alice@example.test',
                                   'rules', '--activate', input=script)
        R.check('sieve put', rc == 0, out + err)
        b3 = os.path.join(tmp, 'b3')
        rc, out, err = env.loftctl('backup', b3)
        R.check('backup of every account', rc == 0 and
                'snapshot' in out, out + err)
        alice_now = snapshot(env, 'alice@example.test')
    with Loft(users={}) as fresh:
        rc, out, err = fresh.loftctl('restore', b3, 'alice@example.test')
        R.check('restore into a fresh loftd makes the account', rc == 0 and
                'account made from the backup' in out, out + err)
        try:
            got = snapshot(fresh, 'alice@example.test')
        except Exception as e:
            got = {}
            R.check('the same password logs in', False, e)
        R.check('its mail as it was: folders, UIDVALIDITY, UIDs',
                {k: (v[0], sorted(v[1])) for k, v in got.items()} ==
                {k: (v[0], sorted(v[1])) for k, v in alice_now.items()},
                (sorted(got), sorted(alice_now)))
        rc, out, err = fresh.loftctl('user', 'show', 'alice@example.test')
        R.check('its policy override', re.search(
            r'^  quota_bytes = 50\.0 MiB', out, re.M), out)
        rc, out, err = fresh.loftctl('alias', 'list')
        R.check('its alias', 'ali@example.test' in out, out + err)
        rc, out, err = fresh.loftctl('sieve', 'get', 'alice@example.test',
                                     'rules')
        R.check('its Sieve script, byte for byte', rc == 0 and
                out == script, (out, err))
        rc, out, err = fresh.loftctl('sieve', 'list', 'alice@example.test')
        R.check('and active', rc == 0 and re.search(r'rules.*active', out),
                out + err)
        p = fresh.pop3_login('alice@example.test', PW)
        R.check('POP3 with the same password', p.stat()[0] > 0)
        p.quit()
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
