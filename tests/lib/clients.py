"""Real clients the interop tests drive: mbsync (isync) and Node.js
scripts (imapflow, jmap-jam) that print one JSON object."""

import json
import os
import subprocess


def mbsync_rc(path, env, user, password, maildir, channel):
    """Writes an mbsyncrc for user over IMAPS to env's loftd: a Maildir
    store at maildir, and channel (the Channel section, as text)."""
    with open(path, 'w') as f:
        f.write('''# the device's own fsyncs are not what these tests measure
FSync no

IMAPAccount loft
Host localhost
Port %d
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore remote
Account loft

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

%s''' % (env.port('imaps'), user, password, env.cert, maildir, maildir, channel))


def node_json(script, args, timeout, cwd):
    """Runs `node script args...`; (the JSON object of its last output
    line, or {'error': its output}, the process)."""
    p = subprocess.run(['node', script] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, cwd=cwd)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {'error': p.stdout + p.stderr}
    return out, p
