"""The spam-scanner hook with Debian's rspamd, started privately: a clean
message gets "no action" (INBOX, X-Spam-Status: No), a message rspamd
scores for "add header" goes to Junk with X-Spam: Yes, GTUBE is refused
550 5.7.1 at the end of DATA, and with rspamd stopped mail still arrives,
unscanned. Sieve's virustest (RFC 5235) reads the antivirus verdict from
the symbols named in [smtp] rspamd_virus_symbols: a message with the
EICAR test string (TEST_VIRUS, a rule of the test's standing in for
rspamd's antivirus module and ClamAV, which need signatures from the
network) is 5 and filed in Virus, a clean one 1, an unscanned one 0."""

import sys

from loftenv import Loft, Results, free_port
from rspamdenv import Rspamd
from smtpconv import cmd, connect, inbox_messages

USER = 'alice@example.test'
GTUBE = b'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
EICAR = b'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
# as the antivirus module reports a virus: a symbol with the name as option
VIRUS_RULE = '''
rspamd_config.TEST_VIRUS = {
  callback = function(task)
    local c = tostring(task:get_content())
    if string.find(c, 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE', 1, true) then
      return true, 1.0, 'Eicar-Test-Signature'
    end
    return false
  end,
  score = 1.0,
  description = 'Loft test: stands in for the antivirus module',
}
'''
SCRIPT = '''require ["virustest", "relational", "comparator-i;ascii-numeric",
 "fileinto", "mailbox", "imap4flags"];
if virustest :value "eq" :comparator "i;ascii-numeric" "5" {
  fileinto :create "Virus"; stop; }
if virustest :value "eq" :comparator "i;ascii-numeric" "1" { addflag "$Clean"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "0" { addflag "$Untested"; }
'''


def send(port, data):
    s, g = connect(port)
    cmd(s, b'EHLO mail.sender.example')
    cmd(s, b'MAIL FROM:<someone@sender.example>')
    cmd(s, b'RCPT TO:<%s>' % USER.encode())
    cmd(s, b'DATA')
    s.sendall(data)
    rep = cmd(s, b'.')
    cmd(s, b'QUIT')
    s.close()
    return rep


def find(env, marker, mailbox='INBOX'):
    for m in inbox_messages(env, USER, mailbox):
        if marker in m:
            return m
    return None


def flagged(env, marker, keyword):
    """Whether the INBOX message with marker in its subject has keyword."""
    c = env.imap_login(USER)
    try:
        c.select('INBOX', readonly=True)
        typ, data = c.search(None, 'KEYWORD', keyword, 'SUBJECT',
                             '"%s"' % marker.decode())
        return typ == 'OK' and len(data[0].split()) == 1
    finally:
        c.logout()


def main():
    r = Results()
    port = free_port()
    with Rspamd(local_lua=VIRUS_RULE) as rs:
        extra = {'smtp': {'listen': '127.0.0.1:%d' % port, 'rspamd': rs.url,
                          'sender_checks': 'no', 'rspamd_timeout': '30s',
                          'rspamd_virus_symbols': 'TEST_VIRUS'}}
        with Loft(extra=extra) as env:
            port = env.port('smtp')   # moved on a clash
            rc, _, err = env.loftctl('sieve', 'put', USER, 'av', '--activate',
                                     input=SCRIPT)
            r.check('virustest script', rc == 0, err)
            clean = (b'From: Some One <someone@sender.example>\r\n'
                     b'To: Alice <alice@example.test>\r\n'
                     b'Subject: lunch on friday\r\n'
                     b'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n'
                     b'Message-ID: <lunch.1@sender.example>\r\n'
                     b'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n'
                     b'Shall we meet at noon?\r\n')
            rep = send(port, clean)
            r.check('clean: 250', rep.startswith(b'250'), rep)
            m = find(env, b'lunch on friday') or b''
            r.check('clean: INBOX, scanned', b'X-Spam-Status: No' in m, m[:800])
            r.check('clean: virustest 1', flagged(env, b'lunch on friday', '$Clean'))
            rep = send(port, clean.replace(b'Shall we meet at noon?', EICAR)
                       .replace(b'lunch on friday', b'eicar inside'))
            r.check('virus: 250', rep.startswith(b'250'), rep)
            m = find(env, b'eicar inside', 'Virus') or b''
            r.check('virus: virustest 5, filed in Virus', b'TEST_VIRUS' in m, m[:800])
            bare = (b'Subject: CHEAP PILLS NOW!!!\r\nFrom: x@sender.example\r\n'
            b'Content-Type: text/html\r\n\r\n'
            b'<html><body><a href="http://192.0.2.7/x">click</a></body></html>\r\n')
            rep = send(port, bare)
            r.check('suspicious: 250', rep.startswith(b'250'), rep)
            m = find(env, b'CHEAP PILLS', 'Junk') or b''
            r.check('suspicious: Junk with X-Spam: Yes',
                    b'X-Spam: Yes' in m and b'action="add header"' in m, m[:800])
            r.check('suspicious: not in INBOX', find(env, b'CHEAP PILLS') is None)
            rep = send(port, clean.replace(b'Shall we meet at noon?', GTUBE)
                       .replace(b'lunch on friday', b'gtube'))
            r.check('GTUBE: 550 5.7.1', rep.startswith(b'550 5.7.1'), rep)
            r.check('GTUBE: not stored', find(env, b'gtube') is None and
                    find(env, b'gtube', 'Junk') is None)
            rs.stop()
            rep = send(port, clean.replace(b'lunch on friday', b'while down'))
            r.check('rspamd down: 250', rep.startswith(b'250'), rep)
            m = find(env, b'while down') or b''
            r.check('rspamd down: INBOX unscanned', m and b'X-Spam' not in m, m[:400])
            r.check('rspamd down: virustest 0', flagged(env, b'while down', '$Untested'))
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
