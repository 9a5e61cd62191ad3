"""SMTP conversations on the three listeners ([smtp] MX, [submission] with
STARTTLS, [submissions] implicit TLS), with a smarthost sink for what
leaves: MX accepts only local recipients and never relays (loopback
included), DATA ends only at CRLF.CRLF (smuggling variants stay in the
message), SIZE limits exact, BDAT; submission needs AUTH, checks the
envelope sender and From:, stores local recipients at once and queues
remote ones to the smarthost; loftctl queue shows what waits. A listener
port the test chose and another program took moves at start."""

import smtplib
import socket
import sys

from loftenv import Loft, Results, free_port, client_tls_context, SLOW
from smtpconv import Sink, cmd, recv_reply, inbox_count, inbox_last, wait_for


def main():
    r = Results()
    sink = Sink()
    ports = {'smtp': free_port(), 'submission': free_port(),
             'submissions': free_port()}
    extra = {
        'smtp': {'listen': '127.0.0.1:%d' % ports['smtp'],
                 'max_message_size': '20K', 'max_recipients': '5'},
        'submission': {'listen': '127.0.0.1:%d' % ports['submission'],
                       'max_recipients': '5'},
        'submissions': {'listen': '127.0.0.1:%d' % ports['submissions']},
        'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                  'smarthost_tls': 'none', 'retry_min': '1s'},
    }
    # A port another program takes between free_port() and loftd's bind
    # (a parallel test): the start moves every listener, the test's own
    # [smtp] one too, and tries again.
    taken = socket.socket()
    taken.bind(('127.0.0.1', ports['smtp']))
    taken.listen(1)
    with Loft(extra=extra) as env:
        r.check('a taken SMTP port: loftd moved to another one',
                env.port('smtp') != ports['smtp'] and
                env.sections['smtp']['listen'].startswith(
                    '127.0.0.1:%d' % env.port('smtp')),
                (ports, env.ports, env.sections['smtp']))
        taken.close()
        ports.update({k: env.port(k) for k in ports})   # moved on a clash
        alice = 'alice@example.test'
        apw = env.users[alice]

        # ---- MX ----
        s = socket.create_connection(('127.0.0.1', ports['smtp']), timeout=20 * SLOW)
        greet = recv_reply(s)
        r.check('mx greeting', greet.startswith(b'220 '), greet)
        r.check('mx mail before ehlo', cmd(s, b'MAIL FROM:<a@b.example>').startswith(b'503 5.5.1'))
        ehlo = cmd(s, b'EHLO client.example')
        for ext in (b'PIPELINING', b'SIZE 20480', b'8BITMIME', b'SMTPUTF8',
                    b'CHUNKING', b'DSN', b'ENHANCEDSTATUSCODES', b'STARTTLS'):
            r.check('mx ehlo %s' % ext.decode(), ext in ehlo, ehlo)
        r.check('mx no auth', b'AUTH' not in ehlo, ehlo)
        r.check('mx vrfy', cmd(s, b'VRFY alice').startswith(b'252 2.5.2'))
        r.check('mx expn', cmd(s, b'EXPN staff').startswith(b'502 5.5.1'))
        r.check('mx mail', cmd(s, b'MAIL FROM:<sender@remote.example>').startswith(b'250 2.1.0'))
        for trick in (b'<x@remote.example>', b'<@example.test:x@remote.example>',
                      b'<x%remote.example@example.test>', b'<remote.example!x@example.test>',
                      b'<"x@remote.example"@example.test>'):
            rep = cmd(s, b'RCPT TO:' + trick)
            r.check('mx no relay %s' % trick.decode(), rep[:1] == b'5' and not rep.startswith(b'250'), rep)
        r.check('mx rcpt local', cmd(s, b'RCPT TO:<bob@example.test>').startswith(b'250 2.1.5'))
        r.check('mx data', cmd(s, b'DATA').startswith(b'354'))
        before = inbox_count(env, 'bob@example.test')
        body = (b'From: sender@remote.example\r\nSubject: smuggle\r\n\r\nline1\r\n'
                b'\n.\nMAIL FROM:<evil@x>\r\n\r.\rstill\r\n.\nx\r\n')
        s.sendall(body)
        rep = cmd(s, b'.')
        r.check('mx data end', rep.startswith(b'250 2.0.0'), rep)
        r.check('mx stored', inbox_count(env, 'bob@example.test') == before + 1)
        stored = inbox_last(env, 'bob@example.test')
        r.check('mx smuggled text kept', b'MAIL FROM:<evil@x>' in stored and b'still' in stored, stored)
        r.check('mx trace', stored.startswith(b'Return-Path: <sender@remote.example>') and
                b'with ESMTP id' in stored, stored[:300])
        # size: exactly the limit is accepted, one more byte is not
        cmd(s, b'MAIL FROM:<sender@remote.example>')
        cmd(s, b'RCPT TO:<bob@example.test>')
        cmd(s, b'DATA')
        hdr = b'Subject: size\r\n\r\n'
        fill = 20480 - len(hdr) - 2
        s.sendall(hdr + b'x' * fill + b'\r\n')
        r.check('mx size exact', cmd(s, b'.').startswith(b'250'))
        cmd(s, b'MAIL FROM:<sender@remote.example>')
        cmd(s, b'RCPT TO:<bob@example.test>')
        cmd(s, b'DATA')
        s.sendall(hdr + b'x' * (fill + 1) + b'\r\n')
        r.check('mx size over', cmd(s, b'.').startswith(b'552 5.3.4'))
        r.check('mx size declared', cmd(s, b'MAIL FROM:<a@remote.example> SIZE=99999999').startswith(b'552 5.3.4'))
        # too many recipients
        cmd(s, b'MAIL FROM:<a@remote.example>')
        reps = [cmd(s, b'RCPT TO:<bob@example.test>') for _ in range(6)]
        r.check('mx max recipients', reps[5].startswith(b'452 4.5.3'), reps[5])
        cmd(s, b'RSET')
        # BDAT, with a pipelined chunk
        cmd(s, b'MAIL FROM:<a@remote.example>')
        cmd(s, b'RCPT TO:<bob@example.test>')
        part1 = b'Subject: bdat\r\n\r\n'
        part2 = b'body via bdat\r\n'
        s.sendall(b'BDAT %d\r\n' % len(part1) + part1)
        r.check('bdat chunk', recv_reply(s).startswith(b'250 2.0.0'))
        s.sendall(b'BDAT %d LAST\r\n' % len(part2) + part2)
        r.check('bdat last', recv_reply(s).startswith(b'250 2.0.0'))
        r.check('bdat stored', b'body via bdat' in inbox_last(env, 'bob@example.test'))
        r.check('bdat without mail', cmd(s, b'BDAT 3 LAST\r\nabc').startswith(b'503'))
        r.check('nul in command', cmd(s, b'NOOP \x00').startswith(b'500 5.5.2'))
        r.check('long line', cmd(s, b'NOOP ' + b'x' * 5000).startswith(b'500 5.5.2'))
        r.check('quit', cmd(s, b'QUIT').startswith(b'221 2.0.0'))
        s.close()

        # ---- submission ----
        c = smtplib.SMTP('127.0.0.1', ports['submission'], timeout=20 * SLOW)
        code, _ = c.ehlo('client.example')
        r.check('sub ehlo', code == 250)
        code, msg = c.mail('alice@example.test')
        r.check('sub mail without auth', code == 530 and msg.startswith(b'5.7.0'), msg)
        c.starttls(context=client_tls_context())
        c.ehlo('client.example')
        r.check('sub auth offered after tls', 'auth' in c.esmtp_features, c.esmtp_features)
        try:
            c.login(alice, 'wrong password here')
            r.check('sub bad password', False)
        except smtplib.SMTPAuthenticationError as e:
            r.check('sub bad password', e.smtp_code == 535)
        c.login(alice, apw)
        code, msg = c.mail('bob@example.test')
        r.check('sub forged sender', code == 553 and msg.startswith(b'5.7.1'), msg)
        c.rset()
        try:
            c.sendmail(alice, ['bob@example.test'],
                       b'From: bob@example.test\r\nSubject: forged\r\n\r\nx\r\n')
            r.check('sub forged from', False)
        except smtplib.SMTPDataError as e:
            r.check('sub forged from', e.smtp_code == 550 and e.smtp_error.startswith(b'5.7.1'))
        before = inbox_count(env, 'bob@example.test')
        msg = (b'From: Alice <alice@example.test>\r\nTo: bob@example.test, x@remote.example\r\n'
               b'Subject: hello\r\n\r\nhi there\r\n')
        c.sendmail(alice, ['bob@example.test', 'x@remote.example'], msg)
        r.check('sub local stored at once', inbox_count(env, 'bob@example.test') == before + 1)
        r.check('sub remote relayed', wait_for(lambda: any(b'hi there' in m.get('data', b'')
                                                          for m in sink.messages)))
        got = [m for m in sink.messages if b'hi there' in m.get('data', b'')]
        r.check('sub remote rcpt only', got and got[0]['rcpts'] == [b'RCPT TO:<x@remote.example>\r\n'],
                got and got[0]['rcpts'])
        r.check('sub received', got and got[0]['data'].startswith(b'Received: from client.example'),
                got and got[0]['data'][:200])
        c.quit()

        # ---- submissions (implicit TLS) ----
        c = smtplib.SMTP_SSL('127.0.0.1', ports['submissions'], timeout=20 * SLOW,
                             context=client_tls_context())
        c.ehlo('client.example')
        r.check('subs no starttls', 'starttls' not in c.esmtp_features)
        c.login(alice, apw)
        c.sendmail(alice, ['y@remote.example'],
                   b'From: alice@example.test\r\nSubject: s\r\n\r\nvia 465\r\n')
        r.check('subs relayed', wait_for(lambda: any(b'via 465' in m.get('data', b'')
                                                    for m in sink.messages)))
        c.quit()

        # ---- the queue from loftctl ----
        # the sink has the message before the queue has committed the
        # outcome: wait for the queue to empty, do not read it once
        listed = []

        def queue_empty():
            listed[:] = [env.loftctl('queue', 'list')]
            return listed[0][0] == 0 and listed[0][1] == ''
        r.check('queue list empty once sent', wait_for(queue_empty), listed)
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
