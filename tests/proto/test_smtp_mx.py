"""The MX listener's own rules: per-address connection and message-rate
limits (421 4.7.0 at connect, 451 4.7.1 at MAIL), and what happens when a
message is stored for some recipients and refused for others after the
DATA: a 250 for the message, a DSN (RFC 3464) to the sender for the
copies refused for good, a "delivered" DSN for NOTIFY=SUCCESS, nothing
for NOTIFY=NEVER."""

import sys

from loftenv import Loft, Results, free_port
from smtpconv import cmd, connect, inbox_messages, wait_for


def send(port, sender, rcpts, body, rcpt_params=b'', s=None):
    if s is None:
        s, greet = connect(port)
    cmd(s, b'EHLO client.example')
    cmd(s, b'MAIL FROM:<%s>' % sender)
    reps = [cmd(s, b'RCPT TO:<%s>%s' % (r, rcpt_params)) for r in rcpts]
    cmd(s, b'DATA')
    s.sendall(body)
    rep = cmd(s, b'.')
    cmd(s, b'QUIT')
    s.close()
    return reps, rep


def main():
    r = Results()
    port = free_port()
    users = {'alice@example.test': 'tea-party-rabbit-hole',
             'bob@example.test': 'can-we-fix-it-yes',
             'carol@example.test': 'a-long-enough-password'}
    extra = {'smtp': {'listen': '127.0.0.1:%d' % port,
                      'max_connections_per_ip': '3',
                      'max_messages_per_ip_per_hour': '4'},
             'queue': {'retry_min': '1s'}}
    with Loft(users=users, extra=extra) as env:
        port = env.port('smtp')   # moved on a clash
        rc, out, err = env.loftctl('user', 'set', 'bob@example.test',
                                   'quota_bytes=3K')
        r.check('quota set', rc == 0, out + err)

        # one stored, one over quota at the commit: 250, and carol (the
        # sender) gets a failure DSN naming bob
        body = (b'From: carol@example.test\r\nSubject: partly\r\n'
                b'Message-ID: <partly@example.test>\r\n\r\n'
                + b'x' * 4000 + b'\r\n')
        reps, rep = send(port, b'carol@example.test',
                         [b'alice@example.test', b'bob@example.test'], body)
        r.check('both rcpts accepted', all(x.startswith(b'250') for x in reps), reps)
        r.check('250 for the message', rep.startswith(b'250 2.0.0'), rep)
        r.check('alice has it', any(b'Subject: partly' in m
                                    for m in inbox_messages(env, 'alice@example.test')))

        def dsn_for(text):
            return [m for m in inbox_messages(env, 'carol@example.test')
                    if b'multipart/report' in m and text in m]
        r.check('failure DSN to the sender', wait_for(lambda: dsn_for(b'Action: failed')))
        d = (dsn_for(b'Action: failed') or [b''])[0]
        r.check('DSN names bob', b'Final-Recipient: rfc822; bob@example.test' in d, d[:2000])
        r.check('DSN status 5.2.2', b'Status: 5.2.2' in d, d[:2000])
        r.check('DSN not about alice', b'Final-Recipient: rfc822; alice@' not in d)
        r.check('DSN quotes the message', b'Message-ID: <partly@example.test>' in d)

        # NOTIFY=SUCCESS: a "delivered" DSN; NOTIFY=NEVER: nothing
        s, _ = connect(port)
        cmd(s, b'EHLO client.example')
        cmd(s, b'MAIL FROM:<carol@example.test> ENVID=env-one')
        cmd(s, b'RCPT TO:<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;alice@example.test')
        cmd(s, b'DATA')
        s.sendall(b'Subject: notify success\r\n\r\nhi\r\n')
        rep = cmd(s, b'.')
        r.check('notify success accepted', rep.startswith(b'250'), rep)
        cmd(s, b'QUIT')
        s.close()
        r.check('delivered DSN', wait_for(lambda: dsn_for(b'Action: delivered')))
        d = (dsn_for(b'Action: delivered') or [b''])[0]
        r.check('delivered DSN has ENVID', b'Original-Envelope-Id: env-one' in d, d[:1500])
        r.check('delivered DSN has ORCPT', b'Original-Recipient: rfc822;alice@example.test' in d,
                d[:1500])
        before = len(dsn_for(b'Action: failed'))
        reps, rep = send(port, b'carol@example.test',
                         [b'alice@example.test', b'bob@example.test'], body,
                         b' NOTIFY=NEVER')
        r.check('never: 250', rep.startswith(b'250'), rep)
        # a DSN to a local sender is stored before the 250: none came
        r.check('never: no DSN', len(dsn_for(b'Action: failed')) == before)

        # our MTA-STS policy (RFC 8461 3.2) on the HTTPS listener
        h = env.http(tls=True)
        h.request('GET', '/.well-known/mta-sts.txt')
        resp = h.getresponse()
        body = resp.read()
        r.check('mta-sts policy served', resp.status == 200 and
                resp.getheader('Content-Type', '').startswith('text/plain') and
                b'version: STSv1\r\nmode: enforce\r\nmx: loft.example.test\r\n'
                b'max_age: 604800' in body, (resp.status, body))
        h.close()

        # at most 3 connections from one address: the 4th gets 421
        socks = [connect(port) for _ in range(3)]
        r.check('3 connections greeted', all(g.startswith(b'220') for _, g in socks),
                [g for _, g in socks])
        s4, g4 = connect(port)
        r.check('4th connection refused', g4.startswith(b'421 4.7.0'), g4)
        s4.close()
        for s, _ in socks:
            s.close()
        # A greeting proves one slot free, not the next: the server may
        # not have counted every close yet. So each message below goes on
        # the connection that found its slot.
        held = []

        def free_slot():
            s, g = connect(port)
            if g.startswith(b'220'):
                held.append(s)
                return True
            s.close()
            return False
        r.check('slot free again', wait_for(free_slot))

        # 4 messages an hour from one address (3 counted above: the
        # partly, notify-success and never messages)
        reps, rep = send(port, b'x@remote.example', [b'alice@example.test'],
                         b'Subject: fourth\r\n\r\nx\r\n', s=held.pop())
        r.check('4th message accepted', rep.startswith(b'250'), rep)
        r.check('a slot for the 5th', wait_for(free_slot))
        s = held.pop() if held else connect(port)[0]
        cmd(s, b'EHLO client.example')
        rep = cmd(s, b'MAIL FROM:<x@remote.example>')
        r.check('5th message refused at MAIL', rep.startswith(b'451 4.7.1'), rep)
        s.close()
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
