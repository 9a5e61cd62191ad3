#!/usr/bin/env python3
"""`make test-tls`: testssl.sh (Debian's testssl.sh, /usr/bin/testssl) on
the demo's IMAPS port and its IMAP STARTTLS port, a full default scan of
each (both at once); fails on any HIGH or CRITICAL finding.

Not part of `make test`: the two scans take 1-2 minutes each on an idle
machine and about 6 on a loaded one (the issue's bound for `make test` is
3 minutes). The demo runs from a temp dir with a free PORT_OFFSET, as
`make run` would; testssl trusts the demo's CA (run/ca.pem), as a client
set up for the demo does.
"""

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('LOFT_SRC', os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get('LOFT_BUILD', os.path.join(SRC, 'build'))
TESTSSL = '/usr/bin/testssl'


def offset_free(n):
    for base in (1143, 1993, 1110, 1995, 2424, 8443, 9180):
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', base + n))
            except OSError:
                return False
    return True


def scan(target, extra, ca, out):
    cmd = [TESTSSL, '--quiet', '--color', '0', '--warnings', 'off',
           '--add-ca', ca, '--jsonfile-pretty', out] + extra + [target]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def findings(path):
    data = json.load(open(path))
    out, count = [], collections.Counter()
    for result in data.get('scanResult', []):
        for items in result.values():
            if not isinstance(items, list):
                continue
            for f in items:
                sev = f.get('severity', '')
                count[sev] += 1
                if sev in ('HIGH', 'CRITICAL'):
                    out.append('%s %s: %s' % (sev, f.get('id'),
                                              f.get('finding')))
    return out, count


def main():
    if not os.access(TESTSSL, os.X_OK):
        print('test-tls: %s is missing (sh scripts/deps.sh test)' % TESTSSL)
        return 1
    work = tempfile.mkdtemp(prefix='loft-tls-')
    demo = None
    try:
        offset = next(n for n in range(11000, 50000, 1000) if offset_free(n))
        env = dict(os.environ, LOFT_BUILD=BUILD, LOFT_PORT_OFFSET=str(offset))
        env.pop('LOFT_RUN', None)
        demo = subprocess.Popen(['sh', os.path.join(SRC, 'scripts',
                                                    'demo.sh')],
                                cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        err = b''
        deadline = time.monotonic() + 60
        while b'loftd ready' not in err and time.monotonic() < deadline:
            chunk = demo.stderr.read1(4096)
            if not chunk:
                break
            err += chunk
        if b'loftd ready' not in err:
            print('test-tls: the demo did not start:\n' + err.decode())
            return 1
        ca = os.path.join(work, 'run', 'ca.pem')
        started = time.monotonic()
        jobs = {
            'IMAPS %d' % (1993 + offset): (
                scan('localhost:%d' % (1993 + offset), [], ca,
                     os.path.join(work, 'imaps.json')), 'imaps.json'),
            'IMAP STARTTLS %d' % (1143 + offset): (
                scan('localhost:%d' % (1143 + offset), ['-t', 'imap'], ca,
                     os.path.join(work, 'imap.json')), 'imap.json'),
        }
        failed = False
        for name, (proc, json_name) in jobs.items():
            log = proc.communicate()[0].decode(errors='replace')
            path = os.path.join(work, json_name)
            if proc.returncode not in (0,) and not os.path.exists(path):
                print('test-tls: testssl on %s failed:\n%s' % (name, log))
                failed = True
                continue
            bad, count = findings(path)
            if 'Fatal error' in log or sum(count.values()) < 50:
                print('test-tls: %s: incomplete scan:\n%s' % (name, log))
                failed = True
            print('test-tls: %s: %s' % (name, ', '.join(
                '%d %s' % (n, s) for s, n in sorted(count.items()))))
            for line in bad:
                print('test-tls: FAIL ' + line)
                failed = True
        print('test-tls: both scans in %.0f s' % (time.monotonic() - started))
        print('test-tls: %s' % ('FAILED' if failed else
                                'no HIGH or CRITICAL finding'))
        return 1 if failed else 0
    finally:
        if demo is not None:
            demo.terminate()
            demo.communicate(timeout=60)
        shutil.rmtree(work, True)


if __name__ == '__main__':
    sys.exit(main())
