#!/usr/bin/env python3
"""End to end: a desktop client (Thunderbird-like) and a second device.

Over IMAPS, the command sequence a desktop client sends: CAPABILITY, ID,
ENABLE CONDSTORE/QRESYNC, LIST with SPECIAL-USE and STATUS, SELECT, headers
first then single body parts, flags, move to Trash, folders with non-ASCII
names (modified UTF-7, RFC 3501 5.1.3), APPEND to Sent and Drafts, SEARCH,
IDLE receiving a new delivery; then a second device that resynchronises
with QRESYNC (RFC 7162 3.2.5) and sees the first one's flag change and
deletion as FETCH and VANISHED (EARLIER).
"""

import re
import sys
import time

from imapconv import Conv
from loftenv import Loft, Results, SLOW

R = Results()

MSG1 = (b'From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\n'
        b'To: alice@example.test\r\n'
        b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_und_Fotos?=\r\n'
        b'Date: Fri, 20 Nov 2026 10:00:00 +0100\r\n'
        b'Message-ID: <d1@example.org>\r\n'
        b'MIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b'--b1\r\nContent-Type: text/plain; charset=utf-8\r\n'
        b'Content-Transfer-Encoding: 8bit\r\n\r\n'
        b'Hallo, hier die Fotos vom M\xc3\xa4rchenwald.\r\n'
        b'--b1\r\nContent-Type: image/jpeg; name="wald.jpg"\r\n'
        b'Content-Disposition: attachment; filename="wald.jpg"\r\n'
        b'Content-Transfer-Encoding: base64\r\n\r\n'
        b'/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgK\r\n'
        b'--b1--\r\n')


def deliver(env, rcpt, subject, msgid, body=b'hello\r\n', date='Sat, 21 Nov 2026 08:00:00 +0000'):
    c = env.lmtp()
    c.ehlo('mta')
    c.mail('sender@example.org')
    c.rcpt(rcpt)
    data = ('From: Sender <sender@example.org>\r\nTo: %s\r\nSubject: %s\r\n'
            'Date: %s\r\nMessage-ID: %s\r\n\r\n' % (rcpt, subject, date, msgid)).encode() + body
    code, msg = c.data(data)
    c.quit()
    assert code == 250, (code, msg)


def lmtp_raw(env, rcpt, data):
    c = env.lmtp()
    c.ehlo('mta')
    c.mail('sender@example.org')
    c.rcpt(rcpt)
    code, msg = c.data(data)
    c.quit()
    assert code == 250, (code, msg)


def main():
    with Loft() as env:
        lmtp_raw(env, 'alice@example.test', MSG1)
        deliver(env, 'alice@example.test', 'Meeting Monday', '<d2@example.org>',
                date='Mon, 02 Nov 2026 09:00:00 +0000')
        deliver(env, 'alice@example.test', 'Invoice 42', '<d3@example.org>',
                body=b'Please pay invoice 42.\r\n')

        d = Conv(env.raw('imaps'), R)
        d.check('greeting has CAPABILITY', 'CAPABILITY' in d.greeting, d.greeting)
        d.run('CAPABILITY', untagged=[r'^\* CAPABILITY .*IMAP4rev1.*AUTH=PLAIN'])
        d.login('alice@example.test', 'tea-party-rabbit-hole')
        lines, _ = d.run('CAPABILITY')
        caps = lines[0].split() if lines else []
        for cap in ('IDLE', 'CONDSTORE', 'QRESYNC', 'SPECIAL-USE', 'LIST-STATUS',
                    'MOVE', 'UIDPLUS', 'ENABLE', 'ID', 'NAMESPACE', 'QUOTA',
                    'LITERAL+', 'ESEARCH', 'UNSELECT', 'BINARY'):
            d.check('cap ' + cap, cap in caps, caps)
        d.run('ID ("name" "Thunderbird" "version" "128.5.0")',
              untagged=[r'^\* ID \(.*"name" "Loft"'])
        d.run('ENABLE CONDSTORE QRESYNC', untagged=[r'^\* ENABLED .*QRESYNC'])
        d.run('NAMESPACE', untagged=[r'^\* NAMESPACE \(\(""'])
        lines, _ = d.run('LIST (SPECIAL-USE) "" "*" RETURN (SUBSCRIBED)')
        uses = {}
        for l in lines:
            m = re.match(r'^\* LIST \(([^)]*)\) "/" "?([^"]*)"?$', l)
            if m:
                for f in m.group(1).split():
                    uses[f] = m.group(2)
        for f, name in (('\\Sent', 'Sent'), ('\\Drafts', 'Drafts'), ('\\Trash', 'Trash'),
                        ('\\Junk', 'Junk'), ('\\Archive', 'Archive')):
            d.check('special-use ' + f, uses.get(f) == name, lines)
        d.run('LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN UIDNEXT HIGHESTMODSEQ))',
              untagged=[r'^\* STATUS "?INBOX"? \(.*MESSAGES 3.*UNSEEN 3',
                        r'^\* LIST \(.*\\Trash.*\) "/" "?Trash',
                        r'^\* STATUS "?Trash"? \(.*MESSAGES 0'])
        lines, _ = d.run('SELECT INBOX (CONDSTORE)',
                         untagged=[r'^\* 3 EXISTS', r'UIDVALIDITY \d+',
                                   r'HIGHESTMODSEQ \d+', r'^\* FLAGS ',
                                   r'PERMANENTFLAGS .*\\\*'])
        uidvalidity = int(re.search(r'UIDVALIDITY (\d+)', ' '.join(lines)).group(1))
        # headers first, like Thunderbird's message list
        lines, _ = d.run('UID FETCH 1:* (UID RFC822.SIZE FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS '
                         '(FROM TO CC BCC SUBJECT DATE MESSAGE-ID PRIORITY X-PRIORITY '
                         'REFERENCES NEWSGROUPS IN-REPLY-TO CONTENT-TYPE REPLY-TO)])',
                         untagged=[r'^\* 1 FETCH .*UID 1 .*Subject: =\?utf-8\?q\?Gr',
                                   r'^\* 3 FETCH .*Invoice 42'])
        d.check('header fetch has no body', not any('Hallo' in l for l in lines), lines)
        d.run('UID FETCH 1 (BODYSTRUCTURE)',
              untagged=[r'\("text" "plain" \("charset" "utf-8"\) NIL NIL "8bit" 39 0 NIL NIL NIL NIL\)'
                        r'\("image" "jpeg" \("name" "wald.jpg"\) NIL NIL "base64" \d+ NIL '
                        r'\("attachment" \("filename" "wald.jpg"\)\)'])
        # one part only, without the attachment
        lines, _ = d.run('UID FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME])',
                         untagged=[r'BODY\[1\] \{\d+\}\r\nHallo, hier die Fotos vom M\u00e4rchenwald\. BODY\[2',
                                   r'BODY\[2\.MIME\] \{\d+\}\r\nContent-Type: image/jpeg; name="wald.jpg"\r\n'
                                   r'Content-Disposition: attachment; filename="wald.jpg"\r\n'
                                   r'Content-Transfer-Encoding: base64\r\n\r\n'])
        d.check('part 1 excludes attachment', not any('/9j/' in l for l in lines), lines)
        d.run('UID FETCH 1 (FLAGS)', untagged=[r'FLAGS \((\\Recent)?\)'],
              name='PEEK left message unseen')
        # reading marks it seen (BODY[] without PEEK)
        d.run('UID FETCH 1 (BODY[1])', untagged=[r'\\Seen'])
        # RFC 7162 3.1.3: under CONDSTORE even .SILENT answers with MODSEQ
        d.run('UID STORE 3 +FLAGS.SILENT (\\Flagged $Label1)',
              untagged=[r'^\* 3 FETCH \(UID 3 MODSEQ \(\d+\)\)$'])
        d.run('UID FETCH 3 (FLAGS)', untagged=[r'FLAGS \((?=.*\\Flagged)(?=.*\$Label1)'])
        # searches a client offers
        d.run('UID SEARCH CHARSET UTF-8 SUBJECT {6+}\r\nGrüße'.replace(
            '{6+}', '{%d+}' % len('Grüße'.encode())), untagged=[r'^\* SEARCH 1$'])
        d.run('UID SEARCH FROM "sender@example.org"', untagged=[r'^\* SEARCH 2 3$'])
        d.run('UID SEARCH CHARSET UTF-8 BODY {%d+}\r\nmärchenwald' % len('märchenwald'.encode()),
              untagged=[r'^\* SEARCH 1$'])
        d.run('UID SEARCH SENTSINCE 10-Nov-2026 NOT DELETED', untagged=[r'^\* SEARCH 1 3$'])
        d.run('UID SEARCH SINCE 20-Nov-2026', untagged=[r'^\* SEARCH 1 2 3$'])
        d.run('UID SEARCH UNSEEN', untagged=[r'^\* SEARCH 2 3$'])
        d.run('UID SEARCH OR SUBJECT invoice FROM joerg', untagged=[r'^\* SEARCH 1 3$'])

        # folders with non-ASCII names: "Reisen/Köln 2026" and rename
        kln = 'K&APY-ln 2026'
        d.run('CREATE "Reisen/%s"' % kln)
        d.run('LIST "" "Reisen*"', untagged=[r'^\* LIST \(.*HasChildren.*\) "/" "?Reisen"?$',
                                             r'^\* LIST \(.*\) "/" "Reisen/%s"$' % kln])
        d.run('SUBSCRIBE "Reisen/%s"' % kln)
        d.run('LSUB "" "Reisen/*"', untagged=[r'^\* LSUB \(.*\) "/" "Reisen/%s"$' % kln])
        d.run('RENAME "Reisen" "Urlaub-&AMQ-"')
        d.run('LIST "" "*"', untagged=[r'"Urlaub-&AMQ-/%s"' % kln],
              absent=[r'"Reisen'])
        d.run('CREATE "bad&name"', '(BAD|NO)', name='invalid mUTF-7 refused')
        d.run('UID COPY 2 "Urlaub-&AMQ-/%s"' % kln, 'OK \\[COPYUID \\d+ 2 1\\]')
        d.run('STATUS "Urlaub-&AMQ-/%s" (MESSAGES UIDNEXT)' % kln,
              untagged=[r'MESSAGES 1 UIDNEXT 2'])
        d.run('DELETE "Urlaub-&AMQ-/%s"' % kln)
        d.run('DELETE "Urlaub-&AMQ-"')
        d.run('LIST "" "Urlaub*"', absent=[r'LIST'])

        # APPEND to Sent (seen) and Drafts (draft), with UIDPLUS
        sent = (b'From: alice@example.test\r\nTo: joerg@example.org\r\n'
                b'Subject: Re: Gr\xc3\xbc\xc3\x9fe\r\nMessage-ID: <sent1@example.test>\r\n'
                b'Date: Sat, 21 Nov 2026 08:10:00 +0000\r\n'
                b'In-Reply-To: <d1@example.org>\r\n\r\nDanke!\r\n')
        d.send('%s APPEND Sent (\\Seen) {%d}\r\n' % ('a1', len(sent)))
        d.expect(r'^\+ ')
        d.send(sent + b'\r\n')
        d.collect('a1', r'OK \[APPENDUID \d+ 1\]', name='append Sent')
        draft = b'From: alice@example.test\r\nSubject: draft\r\n\r\nunfinished\r\n'
        d.run('APPEND Drafts (\\Draft) "21-Nov-2026 08:11:00 +0000" {%d+}\r\n%s'
              % (len(draft), draft.decode()), r'OK \[APPENDUID \d+ 1\]')
        d.run('STATUS Sent (MESSAGES UNSEEN)', untagged=[r'MESSAGES 1 UNSEEN 0'])
        d.run('STATUS Drafts (MESSAGES)', untagged=[r'MESSAGES 1'])

        # move message 2 to Trash (Thunderbird with MOVE)
        lines, _ = d.run('UID MOVE 2 Trash', 'OK',
                         untagged=[r'^\* OK \[COPYUID \d+ 2 1\]', r'^\* VANISHED 2$'])
        d.run('STATUS Trash (MESSAGES)', untagged=[r'MESSAGES 1'])
        lines, _ = d.run('NOOP')
        d.run('FETCH 1:* (UID)', untagged=[r'^\* 1 FETCH \(UID 1', r'^\* 2 FETCH \(UID 3'])

        # second device resyncs first: remember its state
        p = Conv(env.raw('imaps'), R)
        p.login('alice@example.test', 'tea-party-rabbit-hole')
        p.run('ENABLE QRESYNC')
        lines, _ = p.run('SELECT INBOX', untagged=[r'HIGHESTMODSEQ \d+'])
        modseq = int(re.search(r'HIGHESTMODSEQ (\d+)', ' '.join(lines)).group(1))
        p.run('UNSELECT')
        p.run('LOGOUT', untagged=[r'^\* BYE'])

        # IDLE on the desktop receives a new delivery
        d.send('i1 IDLE\r\n')
        d.expect(r'^\+ ')
        t0 = time.monotonic()
        deliver(env, 'alice@example.test', 'While idling', '<d4@example.org>')
        d.expect(r'^\* 3 EXISTS', timeout=2 * SLOW, name='IDLE EXISTS')
        d.check('IDLE push within 1 s', time.monotonic() - t0 < 1.0 * SLOW)
        d.send('DONE\r\n')
        d.collect('i1', 'OK', name='IDLE done')

        # desktop flags one and deletes another
        d.run('UID STORE 1 +FLAGS (\\Answered)', untagged=[r'FETCH \(.*UID 1.*\\Answered'])
        d.run('UID STORE 3 +FLAGS.SILENT (\\Deleted)')
        d.run('UID EXPUNGE 3', untagged=[r'^\* VANISHED 3$'])

        # second device: QRESYNC reselect gives only the changes
        p = Conv(env.raw('imaps'), R)
        p.login('alice@example.test', 'tea-party-rabbit-hole')
        p.run('ENABLE QRESYNC')
        lines, _ = p.run('SELECT INBOX (QRESYNC (%d %d 1:3))' % (uidvalidity, modseq),
                         untagged=[r'^\* VANISHED \(EARLIER\) 3$',
                                   r'^\* \d+ FETCH \(.*UID 1.*\\Answered',
                                   r'^\* \d+ FETCH \(.*UID 4'],
                         absent=[r'FETCH \(.*UID 2\b'])
        p.check('QRESYNC gives no unchanged message',
                sum(1 for l in lines if ' FETCH ' in l) == 2, lines)
        # and sees the desktop's next change live
        p.send('i2 IDLE\r\n')
        p.expect(r'^\+ ')
        d.run('UID STORE 4 +FLAGS (\\Seen)')
        p.expect(r'^\* \d+ FETCH \(.*UID 4.*\\Seen|^\* \d+ FETCH \(.*\\Seen.*UID 4',
                 timeout=2 * SLOW, name='second device sees flag')
        d.run('UID MOVE 4 Trash')
        p.expect(r'^\* VANISHED 4$', timeout=2 * SLOW, name='second device sees move')
        p.send('DONE\r\n')
        p.collect('i2', 'OK', name='IDLE 2 done')
        p.run('LOGOUT')
        d.run('GETQUOTAROOT INBOX', untagged=[r'^\* QUOTAROOT "?INBOX"?'])
        d.run('LOGOUT', untagged=[r'^\* BYE'])

        # a brand-new account's first sync: the empty INBOX has a positive
        # HIGHESTMODSEQ (RFC 7162 7), which the client can send back later
        n = Conv(env.raw('imaps'), R)
        n.login('bob@example.test', 'can-we-fix-it-yes')
        n.run('ENABLE QRESYNC')
        lines, _ = n.run('SELECT INBOX', untagged=[r'^\* 0 EXISTS',
                                                  r'HIGHESTMODSEQ [1-9]\d*\]'])
        m = re.search(r'UIDVALIDITY (\d+).*HIGHESTMODSEQ (\d+)', ' '.join(lines))
        if m:
            n.run('UNSELECT')
            n.run('SELECT INBOX (QRESYNC (%s %s))' % m.groups(), 'OK',
                  name='QRESYNC with the first HIGHESTMODSEQ')
        n.run('LOGOUT')
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
