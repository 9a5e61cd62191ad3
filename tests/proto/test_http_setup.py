"""HTTP with curl and http.client: the webmail's static files (a fixture
directory: content-hashed names immutable, precompressed .gz, dynamic
gzip, ETag/If-None-Match, Range, CSP on HTML, no escape from the
directory, [http] webmail = no), client set-up (Thunderbird autoconfig,
Autodiscover POX, .mobileconfig, services.json) generated from the
listeners, CORS preflight, /metrics and /healthz; app passwords from
`loftctl token` as Bearer tokens and as IMAP/POP3 passwords; `loftctl
dns`."""

import base64
import gzip
import http.client
import imaplib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from loftenv import SLOW, Loft, Results, client_tls_context

r = Results()
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, 'fixtures', 'webmail')
ORIGIN = 'https://app.example.test'


def curl(*args):
    """Runs curl -sS -i; returns (status, headers dict lowercased, body)."""
    p = subprocess.run(['curl', '-sS', '-i', '-k', '--max-time', str(30 * SLOW)]
                       + list(args), capture_output=True, timeout=60 * SLOW)
    raw = p.stdout
    # Skip "100 Continue" heads.
    while raw.startswith(b'HTTP/1.1 100'):
        raw = raw.split(b'\r\n\r\n', 1)[1]
    head, _, body = raw.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    try:
        st = int(lines[0].split()[1])
    except (IndexError, ValueError):
        st = None
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return st, {k: ', '.join(v) for k, v in hdrs.items()}, body


def test_static(env):
    u = 'http://127.0.0.1:%d' % env.ports['http']
    st, h, body = curl(u + '/')
    r.check('index', st == 200 and b'fixture' in body, (st, body[:80]))
    csp = h.get('content-security-policy', '')
    for part in ("script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
                 "connect-src 'self' data: blob:", "img-src 'self' data: blob:"):
        r.check('csp has ' + part, part in csp, csp)
    r.check('csp no unsafe', 'unsafe-inline' not in csp and 'unsafe-eval' not in csp,
            csp)
    r.check('index revalidated', h.get('cache-control') == 'no-cache', h)
    etag = h.get('etag')
    st, h2, body = curl('-H', 'If-None-Match: %s' % etag, u + '/')
    r.check('If-None-Match 304', st == 304 and body == b'', (st, body[:50]))
    st, h2, body = curl('-H', 'If-None-Match: "other", %s' % etag, u + '/index.html')
    r.check('If-None-Match list 304', st == 304, st)
    # The hashed bundle: immutable, the precompressed .gz when accepted.
    js = open(os.path.join(FIXTURE, 'assets', 'app-3F2A9C1B.js'), 'rb').read()
    st, h, body = curl(u + '/assets/app-3F2A9C1B.js')
    r.check('bundle plain', st == 200 and body == js and
            'immutable' in h.get('cache-control', '') and
            'content-encoding' not in h, (st, h))
    st, h, body = curl('-H', 'Accept-Encoding: gzip', u + '/assets/app-3F2A9C1B.js')
    gzfile = open(os.path.join(FIXTURE, 'assets', 'app-3F2A9C1B.js.gz'), 'rb').read()
    r.check('bundle precompressed', st == 200 and body == gzfile and
            h.get('content-encoding') == 'gzip' and
            'Accept-Encoding' in h.get('vary', ''), (st, h))
    r.check('one Vary', h.get('vary', '').count('Accept-Encoding') == 1, h)
    st, h, body = curl('--compressed', u + '/assets/style.css')
    css = open(os.path.join(FIXTURE, 'assets', 'style.css'), 'rb').read()
    r.check('css gzip on the fly', st == 200 and body == css and
            h.get('content-encoding') == 'gzip', (st, h))
    st, h, body = curl('-H', 'Accept-Encoding: deflate', u + '/assets/style.css')
    import zlib
    r.check('deflate', st == 200 and h.get('content-encoding') == 'deflate' and
            zlib.decompress(body) == css, h)
    st, h, body = curl('-H', 'Accept-Encoding: gzip;q=0', u + '/assets/style.css')
    r.check('gzip q=0 refused', 'content-encoding' not in h and body == css, h)
    # Range.
    png = open(os.path.join(FIXTURE, 'assets', 'logo.png'), 'rb').read()
    st, h, body = curl('-H', 'Range: bytes=100-199', u + '/assets/logo.png')
    r.check('range 206', st == 206 and body == png[100:200] and
            h.get('content-range') == 'bytes 100-199/%d' % len(png), (st, h))
    st, h, body = curl('-H', 'Range: bytes=-10', u + '/assets/logo.png')
    r.check('suffix range', st == 206 and body == png[-10:], st)
    st, h, body = curl('-H', 'Range: bytes=99999-', u + '/assets/logo.png')
    r.check('range 416', st == 416 and
            h.get('content-range') == 'bytes */%d' % len(png), (st, h))
    st, h, body = curl('-H', 'Range: bytes=0-1', '-H', 'If-Range: "stale"',
                       u + '/assets/logo.png')
    r.check('If-Range mismatch: whole', st == 200 and body == png, st)
    st, h, body = curl('-r', '0-9', u + '/assets/logo.png')
    r.check('curl -r', st == 206 and body == png[:10], st)
    # HEAD gives the headers only.
    st, h, body = curl('-I', u + '/assets/logo.png')
    r.check('HEAD', st == 200 and body == b'' and
            h.get('content-length') == str(len(png)), (st, h))
    # No way out of the directory.
    for bad in ('/../loftd.conf', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2fx',
                '/.hidden', '/assets%5c..%5cindex.html', '/a%00b', '//etc/passwd'):
        st, h, body = curl('--path-as-is', u + bad)
        r.check('no escape ' + bad, st == 404, (st, body[:60]))
    # Page routes fall back to the page for HTML requests only.
    st, h, body = curl('-H', 'Accept: text/html', u + '/mailbox/inbox')
    r.check('page route', st == 200 and b'fixture' in body, st)
    st, h, body = curl(u + '/missing.js')
    r.check('missing 404', st == 404, st)


def test_webmail_off():
    with Loft(extra={'http': {'webmail': 'no'}}) as env:
        st, h, body = curl('http://127.0.0.1:%d/' % env.ports['http'])
        r.check('webmail = no', st == 404, st)
        st, h, body = curl('http://127.0.0.1:%d/healthz' % env.ports['http'])
        r.check('healthz with webmail off', st == 200, st)


def test_autoconfig(env):
    for base in ('http://127.0.0.1:%d' % env.ports['http'],
                 'https://127.0.0.1:%d' % env.ports['https']):
        for path in ('/.well-known/autoconfig/mail/config-v1.1.xml',
                     '/mail/config-v1.1.xml'):
            st, h, body = curl(base + path + '?emailaddress=alice%40example.test')
            ok = st == 200 and h.get('content-type', '').startswith('application/xml')
            r.check('autoconfig ' + path, ok, (st, body[:200]))
            if not ok:
                continue
            root = ET.fromstring(body)
            prov = root.find('emailProvider')
            r.check('autoconfig domain', prov.get('id') == 'example.test' and
                    prov.findtext('domain') == 'example.test', body[:300])
            inc = [(s.get('type'), s.findtext('hostname'), int(s.findtext('port')),
                    s.findtext('socketType')) for s in prov.findall('incomingServer')]
            want = [('imap', 'loft.example.test', env.ports['imaps'], 'SSL'),
                    ('imap', 'loft.example.test', env.ports['imap'], 'STARTTLS'),
                    ('pop3', 'loft.example.test', env.ports['pop3s'], 'SSL'),
                    ('pop3', 'loft.example.test', env.ports['pop3'], 'STARTTLS')]
            r.check('autoconfig servers from listeners', inc == want, inc)
    st, h, body = curl('http://127.0.0.1:%d/mail/config-v1.1.xml?emailaddress=x%%40other.example'
                       % env.ports['http'])
    r.check('autoconfig foreign domain 404', st == 404, st)
    st, h, body = curl('http://127.0.0.1:%d/mail/config-v1.1.xml?emailaddress=%%3Cscript%%3E'
                       % env.ports['http'])
    r.check('autoconfig bad address 400', st == 400, st)


AD_REQ = ('<?xml version="1.0" encoding="utf-8"?>\n'
          '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/'
          'outlook/requestschema/2006">\n  <Request>\n    <EMailAddress>%s'
          '</EMailAddress>\n    <AcceptableResponseSchema>http://schemas.microsoft.'
          'com/exchange/autodiscover/outlook/responseschema/2006a'
          '</AcceptableResponseSchema>\n  </Request>\n</Autodiscover>\n')


def test_autodiscover(env):
    u = 'https://127.0.0.1:%d/autodiscover/autodiscover.xml' % env.ports['https']
    st, h, body = curl('-H', 'Content-Type: text/xml', '--data-binary',
                       AD_REQ % 'alice@example.test', u)
    r.check('autodiscover 200', st == 200, (st, body[:300]))
    ns = {'o': 'http://schemas.microsoft.com/exchange/autodiscover/outlook/'
               'responseschema/2006a'}
    try:
        root = ET.fromstring(body)
        protos = [(p.findtext('o:Type', namespaces=ns), int(p.findtext('o:Port', namespaces=ns)),
                   p.findtext('o:SSL', namespaces=ns), p.findtext('o:Encryption', namespaces=ns),
                   p.findtext('o:LoginName', namespaces=ns))
                  for p in root.iter('{%s}Protocol' % ns['o'])]
    except ET.ParseError as e:
        protos = [str(e)]
    r.check('autodiscover protocols', protos[:2] == [
        ('IMAP', env.ports['imaps'], 'on', None, 'alice@example.test'),
        ('IMAP', env.ports['imap'], None, 'TLS', 'alice@example.test')], protos)
    bad = [
        ('not xml', 'hello'),
        ('no address', AD_REQ.replace('<EMailAddress>%s</EMailAddress>', '')),
        ('doctype', '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>' +
         AD_REQ.split('?>', 1)[1]),
        ('billion laughs', '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">'
         '<!ENTITY b "&a;&a;&a;&a;">]><Autodiscover><Request><EMailAddress>&b;'
         '</EMailAddress></Request></Autodiscover>'),
        ('external entity', '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM '
         '"file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&x;'
         '</EMailAddress></Request></Autodiscover>'),
        ('deep', '<Autodiscover>' + '<a>' * 100 + '</a>' * 100 + '</Autodiscover>'),
        ('wrong root', '<Other><Request><EMailAddress>a@example.test</EMailAddress>'
         '</Request></Other>'),
    ]
    for name, data in bad:
        st, h, body = curl('--data-binary', data % 'alice@example.test'
                           if '%s' in data else data, u)
        r.check('autodiscover bad ' + name, st == 400 and b'<ErrorCode>600' in body
                and b'passwd' not in body and b'root:' not in body, (st, body[:200]))
    st, h, body = curl('--data-binary', AD_REQ % 'x@other.example', u)
    r.check('autodiscover foreign domain', st == 404, st)
    st, h, body = curl('--data-binary', (AD_REQ % 'alice@example.test').replace(
        'outlook/responseschema/2006a', 'mobilesync/responseschema/2006'), u)
    r.check('autodiscover other schema', st == 200 and b'<ErrorCode>601' in body, body)
    st, h, body = curl('--data-binary', 'x' * 20000, u)
    r.check('autodiscover too large', st == 413, st)


def test_mobileconfig(env):
    u = 'https://127.0.0.1:%d/setup/apple.mobileconfig?emailaddress=alice%%40example.test' \
        % env.ports['https']
    st, h, body = curl(u)
    r.check('mobileconfig 200', st == 200 and
            h.get('content-type') == 'application/x-apple-aspen-config', (st, h))
    r.check('mobileconfig attachment', 'attachment' in h.get('content-disposition', ''), h)
    import plistlib
    try:
        pl = plistlib.loads(body)
        mail = pl['PayloadContent'][0]
        ok = (mail['PayloadType'] == 'com.apple.mail.managed' and
              mail['IncomingMailServerPortNumber'] == env.ports['imaps'] and
              mail['IncomingMailServerHostName'] == 'loft.example.test' and
              mail['IncomingMailServerUseSSL'] is True and
              mail['EmailAddress'] == 'alice@example.test' and
              pl['PayloadType'] == 'Configuration')
    except Exception as e:  # noqa: BLE001 (any parse problem is a failure)
        ok, pl = False, e
    r.check('mobileconfig payload', ok, pl)
    st2, h2, body2 = curl(u)
    r.check('mobileconfig stable UUIDs', body2 == body)
    st, h, body = curl(u.split('?')[0])
    r.check('mobileconfig needs address', st == 400, st)
    st, h, body = curl('http://127.0.0.1:%d/setup/services.json' % env.ports['http'])
    info = json.loads(body)
    r.check('services.json', info['hostname'] == 'loft.example.test' and
            {'protocol': 'imap', 'port': env.ports['imaps'], 'security': 'tls'}
            in info['services'], info)


def test_cors(env):
    u = 'http://127.0.0.1:%d/setup/services.json' % env.ports['http']
    st, h, body = curl('-X', 'OPTIONS', '-H', 'Origin: ' + ORIGIN,
                       '-H', 'Access-Control-Request-Method: GET',
                       '-H', 'Access-Control-Request-Headers: authorization', u)
    r.check('preflight allowed', st == 204 and
            h.get('access-control-allow-origin') == ORIGIN and
            'GET' in h.get('access-control-allow-methods', '') and
            'Authorization' in h.get('access-control-allow-headers', ''), (st, h))
    st, h, body = curl('-X', 'OPTIONS', '-H', 'Origin: https://evil.example',
                       '-H', 'Access-Control-Request-Method: GET', u)
    r.check('preflight foreign origin', st == 403 and
            'access-control-allow-origin' not in h, (st, h))
    st, h, body = curl('-H', 'Origin: ' + ORIGIN, u)
    r.check('CORS response header', st == 200 and
            h.get('access-control-allow-origin') == ORIGIN and
            'Origin' in h.get('vary', ''), h)
    st, h, body = curl('-H', 'Origin: https://evil.example', u)
    r.check('no CORS header for others', 'access-control-allow-origin' not in h, h)
    # Without cors_origins nobody is allowed.
    with Loft() as env2:
        st, h, body = curl('-X', 'OPTIONS', '-H', 'Origin: ' + ORIGIN,
                           '-H', 'Access-Control-Request-Method: GET',
                           'http://127.0.0.1:%d/setup/services.json' % env2.ports['http'])
        r.check('no origins by default', st == 403, st)


def test_metrics(env):
    # Some traffic first: an IMAP IDLE that gets a delivery pushed, a
    # failed login, HTTP requests.
    addr = 'alice@example.test'
    imap = env.imap_login(addr)
    imap.select('INBOX')
    tag = imap._new_tag().decode()
    imap.send(('%s IDLE\r\n' % tag).encode())
    imap.readline()
    lmtp = env.lmtp()
    lmtp.sendmail('x@example.org', [addr], b'Subject: m\r\n\r\nbody\r\n')
    lmtp.quit()
    line = imap.readline()
    imap.send(b'DONE\r\n')
    imap.readline()
    imap.logout()
    r.check('pushed', b'EXISTS' in line, line)
    try:
        env.imap_login(addr, 'wrong-password-here')
    except imaplib.IMAP4.error:
        pass
    st, h, body = curl('http://127.0.0.1:%d/metrics' % env.ports['metrics'])
    r.check('metrics', st == 200 and h.get('content-type', '').startswith('text/plain'),
            (st, h))
    text = body.decode()
    for want in ('loft_connections_total{proto="imap",tls="no"}',
                 'loft_connections_open{proto="http",tls="no"}',
                 'loft_commands_total{proto="imap",result="ok"}',
                 'loft_commands_total{proto="imap",result="no"}',
                 'loft_commands_total{proto="lmtp",result="ok"}',
                 'loft_commands_total{proto="http",result="2xx"}',
                 'loft_deliveries_total{result="ok"} 1',
                 'loft_store_commit_seconds_bucket{le="+Inf"}',
                 'loft_store_commit_seconds_count',
                 'loft_push_latency_seconds_count{proto="imap"} 1',
                 'loft_auth_failures_total'):
        r.check('metrics has ' + want, want in text, text[:3000])
    r.check('metrics types', '# TYPE loft_store_commit_seconds histogram' in text and
            '# TYPE loft_connections_open gauge' in text and
            '# TYPE loft_commands_total counter' in text)
    # Every sample line parses as NAME{LABELS} VALUE.
    bad = [l for l in text.splitlines() if l and not l.startswith('#') and
           not re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                            r'[-+0-9.eInf]+', l)]
    r.check('metrics syntax', bad == [], bad[:5])
    st, h, body = curl('http://127.0.0.1:%d/healthz' % env.ports['metrics'])
    r.check('healthz', st == 200 and body == b'ok\n', (st, body))


def test_tokens(env):
    addr = 'bob@example.test'
    rc, out, err = env.loftctl('token', 'add', addr, '--name', 'phone')
    token = out.strip()
    r.check('token add', rc == 0 and re.fullmatch(r'loft_[A-Za-z0-9_-]{43}', token),
            (rc, out, err))
    rc, out, err = env.loftctl('token', 'add', addr, '--name', 'phone')
    r.check('token name taken', rc == 1 and 'phone' in err, (rc, err))
    rc, out, err = env.loftctl('token', 'add', addr, '--expires', 'yesterday')
    r.check('token bad expiry', rc == 1 and '--expires' in err, (rc, err))
    rc, out, err = env.loftctl('token', 'add', 'nobody@example.test')
    r.check('token unknown user', rc == 1 and 'no user' in err, (rc, err))
    rc, out, err = env.loftctl('token', 'list', addr)
    r.check('token list', rc == 0 and out.startswith('phone ') and token not in out,
            out)
    # Only the hash is kept.
    db = env.accounts_bytes()
    r.check('token not stored', token.encode() not in db)
    u = 'https://127.0.0.1:%d/auth/session' % env.ports['https']
    st, h, body = curl('-H', 'Authorization: Bearer ' + token, u)
    r.check('bearer works', st == 200 and json.loads(body)['username'] == addr and
            json.loads(body)['auth'] == 'bearer', (st, body))
    st, h, body = curl('-H', 'Authorization: Bearer loft_' + 'A' * 43, u)
    r.check('bad bearer 401', st == 401 and 'invalid_token' in
            h.get('www-authenticate', ''), (st, h))
    st, h, body = curl('-u', '%s:%s' % (addr, env.users[addr]), u)
    r.check('basic over TLS', st == 200 and json.loads(body)['auth'] == 'basic',
            (st, body))
    st, h, body = curl('-u', '%s:wrong' % addr, u)
    r.check('basic wrong 401', st == 401 and 'Basic' in h.get('www-authenticate', ''),
            (st, h))
    # The token is an app password for IMAP and POP3 too.
    imap = env.imap(tls=True)
    typ, _ = imap.login(addr, token)
    r.check('token as IMAP password', typ == 'OK')
    imap.logout()
    pop = env.pop3(tls=True)
    pop.user(addr)
    r.check('token as POP3 password', pop.pass_(token).startswith(b'+OK'))
    pop.quit()
    # Not for another account.
    imap = env.imap(tls=True)
    try:
        imap.login('alice@example.test', token)
        ok = False
    except imaplib.IMAP4.error:
        ok = True
    r.check('token only for its account', ok)
    rc, out, err = env.loftctl('token', 'del', addr, 'phone')
    r.check('token del', rc == 0, (rc, err))
    st, h, body = curl('-H', 'Authorization: Bearer ' + token, u)
    r.check('deleted token refused at once', st == 401, st)
    rc, out, err = env.loftctl('token', 'del', addr, 'phone')
    r.check('token del again', rc == 1 and 'no token' in err, err)
    # Expired tokens are refused.
    rc, out, err = env.loftctl('token', 'add', addr, '--expires', '1s')
    token2 = out.strip()
    import time
    time.sleep(2.1)
    st, h, body = curl('-H', 'Authorization: Bearer ' + token2, u)
    r.check('expired token refused', st == 401, st)


def test_dns(env):
    rc, out, err = env.loftctl('dns', 'example.test')
    lines = [l for l in out.splitlines() if not l.startswith(';')]
    recs = {l.split()[0]: l.split()[1:] for l in lines}
    r.check('dns imaps', recs.get('_imaps._tcp.example.test.') ==
            ['3600', 'IN', 'SRV', '0', '1', str(env.ports['imaps']), 'loft.example.test.'],
            out)
    r.check('dns submission not offered', recs.get('_submissions._tcp.example.test.') ==
            ['3600', 'IN', 'SRV', '0', '0', '0', '.'], out)
    r.check('dns autoconfig CNAME', recs.get('autoconfig.example.test.') ==
            ['3600', 'IN', 'CNAME', 'loft.example.test.'], out)
    rc, out, err = env.loftctl('dns', 'not a domain')
    r.check('dns bad domain', rc == 1, (rc, err))
    rc, out, err = env.loftctl('dns', 'other.example')
    r.check('dns foreign domain warns', rc == 0 and 'warning' in err, err)


def main():
    extra = {'http': {'webmail_dir': FIXTURE, 'cors_origins': ORIGIN}}
    with Loft(extra=extra) as env:
        test_static(env)
        test_autoconfig(env)
        test_autodiscover(env)
        test_mobileconfig(env)
        test_cors(env)
        test_metrics(env)
        test_tokens(env)
        test_dns(env)
    test_webmail_off()
    sys.exit(r.finish())


main()
