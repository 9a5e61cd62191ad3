"""Sender authentication on the MX, against a private DNS (Debian's
unbound on a loopback port): messages signed by python3-dkim (RSA and
Ed25519) pass, SPF results match python3-spf's for the same records
(macros, include, redirect, a, mx, exists, ip4/ip6 ranges), one
Authentication-Results field names our hostname and a forged one claiming
it is removed, DMARC fail under p=reject is refused 550 5.7.1 (or filed in
Junk with dmarc_reject = junk), under p=quarantine it goes to Junk, and
none / temperror / a domain that does not exist never refuse or divert.
"""

import base64
import subprocess
import sys
import tempfile

import dkim
import dns.resolver
import spf

from dnsenv import Unbound, txt
from loftenv import Loft, Results, free_port
from smtpconv import cmd, connect, inbox_messages

HOST = 'loft.example.test'
USER = 'alice@example.test'


def rsa_key():
    d = tempfile.mkdtemp(prefix='loft-dkimkey-')
    key = d + '/k.pem'
    subprocess.run(['openssl', 'genrsa', '-traditional', '-out', key, '2048'],
                   check=True, capture_output=True)
    der = subprocess.run(['openssl', 'rsa', '-in', key, '-pubout', '-outform',
                          'DER'], check=True, capture_output=True).stdout
    return open(key, 'rb').read(), base64.b64encode(der).decode()


def ed_key():
    import nacl.signing
    sk = nacl.signing.SigningKey.generate()
    return (base64.b64encode(bytes(sk)),
            base64.b64encode(bytes(sk.verify_key)).decode())


def send(port, sender, rcpt, data, helo=b'mx.sender.example'):
    s, g = connect(port)
    cmd(s, b'EHLO ' + helo)
    rep = cmd(s, b'MAIL FROM:<%s>' % sender)
    rep = cmd(s, b'RCPT TO:<%s>' % rcpt)
    if not rep.startswith(b'250'):
        s.close()
        return rep
    cmd(s, b'DATA')
    s.sendall(data)
    rep = cmd(s, b'.')
    cmd(s, b'QUIT')
    s.close()
    return rep


def last_with(env, marker, mailbox='INBOX'):
    for m in reversed(inbox_messages(env, USER, mailbox)):
        if marker in m:
            return m
    return None


def authres(msg):
    """The Authentication-Results fields of a stored message (unfolded)."""
    head = msg.split(b'\r\n\r\n', 1)[0].replace(b'\r\n\t', b' ').replace(b'\r\n ', b' ')
    return [l for l in head.split(b'\r\n') if l.lower().startswith(b'authentication-results:')]


SPF_CASES = [
    # (domain, record(s), extra records, client ip)
    ('pass.example', 'v=spf1 ip4:127.0.0.0/8 -all', {}, '127.0.0.1'),
    ('fail.example', 'v=spf1 ip4:192.0.2.0/24 -all', {}, '127.0.0.1'),
    ('soft.example', 'v=spf1 ~all', {}, '127.0.0.1'),
    ('neutral.example', 'v=spf1 ?all', {}, '127.0.0.1'),
    ('inc.example', 'v=spf1 include:_spf.inc.example -all',
     {'_spf.inc.example.': [txt('v=spf1 a:out.inc.example -all')],
      'out.inc.example.': ['A 127.0.0.1']}, '127.0.0.1'),
    ('redir.example', 'v=spf1 redirect=_spf.redir.example',
     {'_spf.redir.example.': [txt('v=spf1 mx ~all')],
      '_spf.redir.example.': [txt('v=spf1 mx:mail.redir.example -all')],
      'mail.redir.example.': ['A 127.0.0.1']}, '127.0.0.1'),
    ('mx.example', 'v=spf1 mx/24 -all', {'mx.example.': ['MX 10 smtp.mx.example.'],
                                          'smtp.mx.example.': ['A 127.0.0.9']},
     '127.0.0.1'),
    ('macro.example', 'v=spf1 exists:%{i}.%{l1r-}.ok.macro.example -all',
     {'127.0.0.1.sender.ok.macro.example.': ['A 127.0.0.2']}, '127.0.0.1'),
    ('perm.example', 'v=spf1 ip4:300.0.0.1 -all', {}, '127.0.0.1'),
    ('two.example', ['v=spf1 -all', 'v=spf1 +all'], {}, '127.0.0.1'),
    ('loop.example', 'v=spf1 include:loop.example -all', {}, '127.0.0.1'),
    ('none.example', None, {'none.example.': ['A 127.0.0.1']}, '127.0.0.1'),
]


def main():
    r = Results()
    rsa_pem, rsa_pub = rsa_key()
    ed_priv, ed_pub = ed_key()
    records = {
        # a domain with everything: SPF, DKIM (RSA + Ed25519), DMARC reject
        'example.org.': [txt('v=spf1 ip4:127.0.0.1 -all')],
        'mx.sender.example.': ['A 127.0.0.1'],
        'rsa._domainkey.example.org.': [txt('v=DKIM1; k=rsa; p=' + rsa_pub)],
        'ed._domainkey.example.org.': [txt('v=DKIM1; k=ed25519; p=' + ed_pub)],
        '_dmarc.example.org.': [txt('v=DMARC1; p=reject')],
        'quarantine.example.': [txt('v=spf1 -all')],
        '_dmarc.quarantine.example.': [txt('v=DMARC1; p=quarantine')],
        'relaxed.example.': [txt('v=spf1 -all')],
        '_dmarc.relaxed.example.': [txt('v=DMARC1; p=none')],
        'sub.reject.example.': ['A 127.0.0.1'],
        '_dmarc.reject.example.': [txt('v=DMARC1; p=reject; sp=quarantine')],
        'tempfail.example.': [txt('v=spf1 ip4:127.0.0.1 -all')],
    }
    for dom, rec, extra, ip in SPF_CASES:
        if rec is not None:
            recs = rec if isinstance(rec, list) else [rec]
            records.setdefault(dom + '.', []).extend(txt(x) for x in recs)
        for k, v in extra.items():
            records.setdefault(k, []).extend(v)
    port = free_port()
    with Unbound(records, dead=['_dmarc.tempfail.example']) as udns:
        extra = {'smtp': {'listen': '127.0.0.1:%d' % port},
                 'dns': {'resolvers': udns.address, 'trust_anchor': 'none',
                         'timeout': '2s', 'message_timeout': '8s'}}
        with Loft(extra=extra) as env:
            port = env.port('smtp')   # moved on a clash
            base = (b'From: Joe <joe@example.org>\r\nTo: alice@example.test\r\n'
                    b'Subject: %s\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n'
                    b'Message-ID: <%s@example.org>\r\n\r\nHello.\r\n')

            # ---- signed by python3-dkim, SPF pass: everything passes ----
            msg = base % (b'all pass', b'allpass')
            sig_rsa = dkim.sign(msg, b'rsa', b'example.org', rsa_pem,
                                include_headers=[b'from', b'to', b'subject'])
            sig_ed = dkim.sign(msg, b'ed', b'example.org', ed_priv,
                               signature_algorithm=b'ed25519-sha256',
                               include_headers=[b'from', b'subject'])
            forged = (b'Authentication-Results: ' + HOST.encode() +
                      b'; dmarc=pass header.from=example.org\r\n'
                      b'Authentication-Results: other.example; spf=pass\r\n')
            rep = send(port, b'joe@example.org', USER.encode(),
                       forged + sig_rsa + sig_ed + msg)
            r.check('signed: 250', rep.startswith(b'250'), rep)
            got = last_with(env, b'all pass') or b''
            ar = authres(got)
            ours = [a for a in ar if (HOST + ';').encode() in a]
            r.check('one A-R of ours (the forged one removed)', len(ours) == 1, ar)
            r.check('other authserv-id kept',
                    any(b'other.example; spf=pass' in a for a in ar), ar)
            a = ours[0] if ours else b''
            r.check('spf=pass', b'spf=pass smtp.mailfrom=example.org' in a, a)
            r.check('dkim rsa pass', b'dkim=pass header.d=example.org header.s=rsa' in a, a)
            r.check('dkim ed25519 pass', b'dkim=pass header.d=example.org header.s=ed' in a, a)
            r.check('dmarc=pass', b'dmarc=pass (p=reject dis=none) header.from=example.org' in a, a)
            r.check('A-R after the trace fields', got.index(b'Received:') <
                    got.index(b'Authentication-Results: ' + HOST.encode()))

            # tampered after signing: dkim=fail, SPF still aligned: pass
            tampered = (sig_rsa + msg).replace(b'Hello.', b'Hello!')
            send(port, b'joe@example.org', USER.encode(), tampered)
            a = b' '.join(authres(last_with(env, b'Hello!') or b''))
            r.check('tampered: dkim=fail', b'dkim=fail (body hash did not verify)' in a, a)
            r.check('tampered: dmarc pass through SPF', b'dmarc=pass' in a, a)

            # ---- DMARC p=reject, nothing aligned: 550 5.7.1 ----
            msg = base % (b'spoofed', b'spoofed')
            rep = send(port, b'bounce@relaxed.example', USER.encode(), msg)
            r.check('dmarc reject: 550 5.7.1', rep.startswith(b'550 5.7.1'), rep)
            r.check('dmarc reject: not stored', last_with(env, b'spoofed') is None)
            # an unsigned message from a subdomain: sp=quarantine -> Junk
            msg = (b'From: x@sub.reject.example\r\nSubject: subdomain\r\n\r\nx\r\n')
            rep = send(port, b'x@relaxed.example', USER.encode(), msg)
            r.check('sp=quarantine: 250', rep.startswith(b'250'), rep)
            r.check('sp=quarantine: Junk', last_with(env, b'subdomain', 'Junk') is not None)
            # quarantine
            msg = base.replace(b'example.org>', b'quarantine.example>') % (
                b'quarantined', b'q')
            rep = send(port, b'joe@quarantine.example', USER.encode(), msg)
            r.check('quarantine: 250', rep.startswith(b'250'), rep)
            r.check('quarantine: in Junk', last_with(env, b'quarantined', 'Junk') is not None)
            r.check('quarantine: not in INBOX', last_with(env, b'quarantined') is None)
            # p=none, temperror, no DNS at all: INBOX, never refused
            for dom, marker, expect in (
                    (b'relaxed.example', b'policy none', b'dmarc=fail (p=none dis=none)'),
                    (b'tempfail.example', b'dmarc tempfail', b'dmarc=temperror'),
                    (b'nxdomain.example', b'no dns', b'dmarc=none')):
                msg = (b'From: someone@' + dom + b'\r\nSubject: ' + marker +
                       b'\r\n\r\nx\r\n')
                rep = send(port, b'someone@' + dom, USER.encode(), msg)
                r.check('%s: 250' % marker.decode(), rep.startswith(b'250'), rep)
                a = b' '.join(authres(last_with(env, marker) or b''))
                r.check('%s: INBOX with %s' % (marker.decode(), expect.decode()),
                        expect in a, a)

            # ---- SPF results as python3-spf computes them ----
            res = dns.resolver.Resolver(configure=False)
            res.nameservers = ['127.0.0.1']
            res.port = udns.port
            dns.resolver.default_resolver = res
            for dom, rec, extra_rr, ip in SPF_CASES:
                sender = 'sender@' + dom
                theirs = spf.check2(i=ip, s=sender, h='mx.sender.example')[0]
                marker = ('spf case ' + dom).encode()
                msg = (b'From: x@example.test\r\nSubject: ' + marker + b'\r\n\r\nx\r\n')
                rep = send(port, sender.encode(), USER.encode(), msg)
                a = b' '.join(authres(last_with(env, marker) or b'')).decode()
                ours = a.split('spf=', 1)[1].split()[0] if 'spf=' in a else '?'
                r.check('spf %s: loft %s, python3-spf %s' % (dom, ours, theirs),
                        ours == theirs, a)

            # ---- dmarc_reject = junk ----
            env.stop()
            env.sections['smtp']['dmarc_reject'] = 'junk'
            env.write_config()
            env.start()
            msg = base % (b'spoofed to junk', b'spoofed2')
            rep = send(port, b'bounce@relaxed.example', USER.encode(), msg)
            r.check('dmarc_reject=junk: 250', rep.startswith(b'250'), rep)
            r.check('dmarc_reject=junk: Junk',
                    last_with(env, b'spoofed to junk', 'Junk') is not None)
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
