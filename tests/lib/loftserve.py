"""A private loftd for tests written in another language (the webmail's
Playwright tests): starts Loft() from loftenv.py, prints one JSON line
with its ports, users and directories, then answers requests, one JSON
line each, on stdin, until EOF (then stops loftd and removes it all).

    python3 loftserve.py '{"users": {...}, "extra": {...}}'
    -> {"ports": {"http": 40123, ...}, "users": {...}, "dir": "...", ...}
    <- {"code": "python statements; set result = ..."}
    -> {"ok": true, "result": ...} or {"ok": false, "error": "..."}

The code runs with env (the Loft), imaplib, poplib, smtplib and time in
scope, so a browser test can drive IMAP, POP3, LMTP and loftctl the same
way the Python tests do.
"""

import imaplib
import json
import poplib
import smtplib
import sys
import time
import traceback

from loftenv import Loft


def main():
    opts = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    env = Loft(users=opts.get('users'), extra=opts.get('extra'))
    with env:
        print(json.dumps({'ports': env.ports, 'users': env.users,
                          'dir': env.dir, 'data_dir': env.data_dir,
                          'log': env.log_path, 'pid': env.proc.pid}),
              flush=True)
        scope = {'env': env, 'imaplib': imaplib, 'poplib': poplib,
                 'smtplib': smtplib, 'time': time, 'json': json}
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                local = dict(scope, result=None, args=req.get('args'))
                exec(req['code'], local)
                out = {'ok': True, 'result': local.get('result')}
            except Exception as e:  # reported to the test, which fails
                out = {'ok': False, 'error': '%s: %s\n%s' % (
                    type(e).__name__, e, traceback.format_exc())}
            print(json.dumps(out, default=str), flush=True)


if __name__ == '__main__':
    main()
