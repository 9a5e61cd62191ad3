"""Sieve at delivery, through a private loftd: loftctl sieve (put, get byte
for byte, list, activate, deactivate, del, check with line:column, test),
LMTP deliveries filed, flagged, discarded, erejected (550 5.7.1), rejected
(an RFC 5429 refusal at the sink), redirected (MAIL FROM the recipient,
never to itself, a two-user loop stopped by our Delivered-To), vacation
once per period with a clock the test moves (LOFT_TEST_CLOCK), never to a
list (no second reply after kill -9: tests/system/test_crash.py); the
admin's before script; a run-time
error keeps the message in INBOX with one notice per script version;
editheader gives its recipient its own copy; fileinto another account's
folder (its IMAP name under "Other Users/") with the p right, kept in
INBOX without it or without k for :create, and mailboxexists saying the
same; loftd --check reports a broken global script as FILE:LINE:COLUMN.

Run: LOFTD=... LOFTCTL=... PYTHONPATH=tests/lib python3 tests/proto/test_sieve_delivery.py
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'system'))

from loftenv import LOFTD, SLOW, Loft, Results  # noqa: E402
from lmtplib import Conv, deliver, imap_messages, wait_for  # noqa: E402
from smtpconv import Sink  # noqa: E402

R = Results()
A = 'alice@example.test'
B = 'bob@example.test'
CLOCK_DIR = tempfile.mkdtemp(prefix='loft-sieve-clock-')
CLOCK = os.path.join(CLOCK_DIR, 'clock')
with open(CLOCK, 'w') as f:
    f.write('0\n')
os.environ['LOFT_TEST_CLOCK'] = CLOCK   # loftd inherits it


def advance(seconds):
    with open(CLOCK) as f:
        now = float(f.read().strip() or 0)
    with open(CLOCK + '.tmp', 'w') as f:
        f.write('%d\n' % (now + seconds))
    os.replace(CLOCK + '.tmp', CLOCK)


def msg(subject, frm='friend@remote.test', to=A, extra=''):
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\n'
            'Message-ID: <%s@remote.test>\r\n%s\r\nHello.\r\n'
            % (frm, to, subject, subject.replace(' ', '.'), extra))


def lmtp(env, rcpts, data, sender='friend@remote.test'):
    c = Conv.tcp(env.port('lmtp'))
    try:
        rr, dr = deliver(c, sender, rcpts, data)
    finally:
        c.close()
    return rr, dr


def put(env, user, name, script, activate=True):
    args = ['sieve', 'put', user, name] + (['--activate'] if activate else [])
    rc, out, err = env.loftctl(*args, input=script)
    R.check('put %s' % name, rc == 0, err)


def subjects(env, user, box='INBOX'):
    return [m for m in (imap_messages(env, user, box) or [])]


def has(env, user, box, text):
    return any(text.encode() in m for m in subjects(env, user, box))


def sink_has(sink, text, n=1):
    return wait_for(lambda: sum(1 for m in sink.messages
                                if text.encode() in m.get('data', b'')) >= n,
                    timeout=20 * SLOW)


def sink_count(sink, text):
    return sum(1 for m in sink.messages if text.encode() in m.get('data', b''))


def test_loftctl(env):
    rc, out, _ = env.loftctl('sieve', 'check',
                             input='require "fileinto";\nfileinto "x"\n')
    R.check('check: exit 1 with line:column', rc == 1 and
            out.startswith('3:1: missing \';\''), out)
    rc, out, _ = env.loftctl('sieve', 'check', input='keep;\n')
    R.check('check: ok', rc == 0 and out.strip() == 'ok', out)
    script = 'require ["fileinto"];\r\n# caf\u00e9\r\nkeep;\r\n'
    put(env, A, 'first', script, activate=False)
    rc, out, err = env.loftctl('sieve', 'put', A, 'broken', input='frob;')
    R.check('put of a broken script refused', rc == 1 and '1:1:' in err, err)
    r = subprocess.run([os.environ['LOFTCTL'], '--config', env.config_path,
                        'sieve', 'get', A, 'first'], capture_output=True)
    R.check('get: byte for byte', r.stdout == script.encode(), r.stdout)
    rc, out, _ = env.loftctl('sieve', 'list', A)
    R.check('list', out.strip().split('\t')[0] == 'first', out)
    rc, out, _ = env.loftctl('sieve', 'activate', A, 'first')
    rc, out, _ = env.loftctl('sieve', 'list', A)
    R.check('list shows active', 'first (active)' in out, out)
    rc, _, err = env.loftctl('sieve', 'del', A, 'first')
    R.check('del of the active one refused', rc == 1 and 'active' in err, err)
    env.loftctl('sieve', 'deactivate', A)
    rc, _, _ = env.loftctl('sieve', 'del', A, 'first')
    R.check('del', rc == 0)
    with tempfile.NamedTemporaryFile('w', suffix='.sieve', delete=False) as f:
        f.write('require "fileinto";\nif header :contains "subject" "x" '
                '{ fileinto "X"; }\n')
        sfile = f.name
    with tempfile.NamedTemporaryFile('w', suffix='.eml', delete=False) as f:
        f.write(msg('an x here'))
        mfile = f.name
    rc, out, _ = env.loftctl('sieve', 'test', A, sfile, mfile)
    R.check('test prints the actions', rc == 0 and out == 'fileinto "X"\n',
            out)


def test_filing(env):
    env.imap_login(A).create('Lists')
    put(env, A, 'main', '''require ["fileinto", "imap4flags", "envelope",
 "subaddress", "mailbox", "reject", "ereject"];
if envelope :detail "to" "lists" { fileinto "Lists"; stop; }
if header :contains "subject" "flagme" {
  addflag ["\\\\Flagged", "$Work"]; keep; stop; }
if header :contains "subject" "drop" { discard; stop; }
if header :contains "subject" "nope" { ereject "We do not want this."; }
if header :contains "subject" "refuse" { reject "Not wanted here."; }
if header :contains "subject" "missing" { fileinto "Nowhere"; }
if header :contains "subject" "create" { fileinto :create "New/Sub"; }
if header :contains "subject" "copies" {
  fileinto :flags "\\\\Seen" "Lists"; fileinto "INBOX"; }
''')
    rr, dr = lmtp(env, ['alice+lists@example.test'], msg('list mail'))
    R.check('detail: 250', dr and dr[0][0] == 250, dr)
    R.check('envelope :detail filed in Lists', has(env, A, 'Lists', 'list mail'))
    rr, dr = lmtp(env, [A], msg('please flagme'))
    c = env.imap_login(A)
    c.select('INBOX', readonly=True)
    typ, data = c.search(None, 'KEYWORD', '$Work', 'FLAGGED')
    R.check('flags set', typ == 'OK' and data[0].split(), data)
    c.logout()
    rr, dr = lmtp(env, [A, B], msg('drop it'))
    R.check('discard: 250 for both', [d[0] for d in dr] == [250, 250], dr)
    R.check('discard: nothing stored', not has(env, A, 'INBOX', 'drop it'))
    R.check('discard: bob (no script) has it', has(env, B, 'INBOX', 'drop it'))
    rr, dr = lmtp(env, [B, A], msg('nope this'))
    R.check('ereject: 550 5.7.1 for alice only',
            dr[0][0] == 250 and dr[1][0] == 550 and
            dr[1][1][-1][4:].startswith('5.7.1') and
            'We do not want this.' in dr[1][1][-1], dr)
    rr, dr = lmtp(env, [A], msg('missing folder'))
    R.check('fileinto a missing folder: INBOX',
            dr[0][0] == 250 and has(env, A, 'INBOX', 'missing folder'), dr)
    rr, dr = lmtp(env, [A], msg('create it'))
    R.check('fileinto :create', has(env, A, 'New/Sub', 'create it'))
    rr, dr = lmtp(env, [A], msg('two copies'))
    R.check('two copies: Lists', has(env, A, 'Lists', 'two copies'))
    R.check('two copies: INBOX', has(env, A, 'INBOX', 'two copies'))
    c = env.imap_login(A)
    c.select('Lists', readonly=True)
    typ, data = c.search(None, 'SEEN', 'SUBJECT', '"two copies"')
    R.check('the Lists copy has its own flags', data[0].split(), data)
    c.select('INBOX', readonly=True)
    typ, data = c.search(None, 'SEEN', 'SUBJECT', '"two copies"')
    R.check('the INBOX copy not', not data[0].split(), data)
    c.logout()


def test_virustest(env):
    """virustest (RFC 5235) over LMTP reads [sieve] virustest_header, the
    header the MTA's scanner wrote (clamav-milter's X-Virus-Status)."""
    put(env, A, 'virus', '''require ["virustest", "relational",
 "comparator-i;ascii-numeric", "fileinto", "mailbox", "imap4flags"];
if virustest :value "ge" :comparator "i;ascii-numeric" "4" {
  fileinto :create "Virus"; stop; }
if virustest :value "eq" :comparator "i;ascii-numeric" "1" {
  addflag "$Clean"; }
if virustest :is "0" { addflag "$Untested"; }
''')
    lmtp(env, [A], msg('infected one', extra='X-Virus-Status: Infected '
                       '(Eicar-Test-Signature)\r\n'))
    lmtp(env, [A], msg('clean one', extra='X-Virus-Status: Clean\r\n'))
    lmtp(env, [A], msg('untested one'))
    R.check('virustest 5: filed in Virus', has(env, A, 'Virus', 'infected one'))
    R.check('virustest 5: not in INBOX', not has(env, A, 'INBOX', 'infected one'))
    c = env.imap_login(A)
    c.select('INBOX', readonly=True)
    typ, clean = c.search(None, 'KEYWORD', '$Clean')
    typ2, untested = c.search(None, 'KEYWORD', '$Untested')
    typ3, want_clean = c.search(None, 'SUBJECT', '"clean one"')
    typ4, want_untested = c.search(None, 'SUBJECT', '"untested one"')
    c.logout()
    R.check('virustest 1: the clean one', clean[0].split() ==
            want_clean[0].split() != [], (clean, want_clean))
    R.check('virustest 0: no header, not tested', untested[0].split() ==
            want_untested[0].split() != [], (untested, want_untested))
    env.loftctl('sieve', 'activate', A, 'main')   # test_reject_redirect's


def test_reject_redirect(env, sink):
    rr, dr = lmtp(env, [A], msg('refuse this'))
    R.check('reject: 250', dr[0][0] == 250, dr)
    R.check('reject: a refusal at the sink', sink_has(sink, 'Not wanted here.'))
    m = [x for x in sink.messages if b'Not wanted here.' in x['data']][0]
    R.check('refusal: null sender', m['from'].startswith(b'MAIL FROM:<> '),
            m['from'])
    R.check('refusal: an MDN', b'report-type=disposition-notification' in
            m['data'] and b'MDN-sent-automatically; deleted' in m['data'])
    R.check('reject: nothing stored', not has(env, A, 'INBOX', 'refuse this'))
    put(env, B, 'fwd', 'redirect "far@remote.test";\n'
        'if header :contains "subject" "loop" { redirect "%s"; }\n' % A)
    put(env, A, 'loop', 'if header :contains "subject" "loop" '
        '{ redirect "%s"; }\n' % B)
    rr, dr = lmtp(env, [B], msg('to forward'))
    R.check('redirect: 250', dr[0][0] == 250, dr)
    R.check('redirect: at the sink', sink_has(sink, 'to forward'))
    m = [x for x in sink.messages if b'to forward' in x['data']][0]
    R.check('redirect: MAIL FROM the recipient',
            m['from'].strip().startswith(b'MAIL FROM:<%s>' % B.encode()), m['from'])
    R.check('redirect: nothing kept', not has(env, B, 'INBOX', 'to forward'))
    rr, dr = lmtp(env, [B], msg('a loop'))
    R.check('loop: 250', dr[0][0] == 250, dr)
    R.check('loop: stopped and kept somewhere',
            wait_for(lambda: has(env, A, 'INBOX', 'a loop') or
                     has(env, B, 'INBOX', 'a loop'), timeout=20 * SLOW))
    env.loftctl('sieve', 'deactivate', B)
    put(env, A, 'self', 'redirect "%s";\n' % A)
    rr, dr = lmtp(env, [A], msg('to myself'))
    R.check('redirect to itself: kept', has(env, A, 'INBOX', 'to myself'))


def test_vacation(env, sink):
    put(env, A, 'away', '''require ["vacation", "vacation-seconds"];
vacation :seconds 120 :subject "Away" :handle "h1" "I am on holiday.";
''')
    lmtp(env, [A], msg('first hello', frm='pal@remote.test'),
         sender='pal@remote.test')
    R.check('vacation: a reply', sink_has(sink, 'I am on holiday.'))
    m = [x for x in sink.messages if b'I am on holiday.' in x['data']][0]
    R.check('vacation: MAIL FROM:<>', m['from'].startswith(b'MAIL FROM:<> '),
            m['from'])
    R.check('vacation: to the sender', b'pal@remote.test' in m['rcpts'][0])
    R.check('vacation: Auto-Submitted', b'Auto-Submitted: auto-replied\r\n'
            in m['data'])
    R.check('vacation: In-Reply-To', b'In-Reply-To: <first.hello@remote.test>'
            in m['data'])
    lmtp(env, [A], msg('second hello', frm='pal@remote.test'),
         sender='pal@remote.test')
    lmtp(env, [A], msg('list hello', frm='list@remote.test',
                       extra='List-Id: <l.remote.test>\r\n'),
         sender='list@remote.test')
    R.check('vacation: kept both', has(env, A, 'INBOX', 'second hello'))
    R.check('vacation: not twice within the period',
            sink_count(sink, 'I am on holiday.') == 1)
    advance(200)
    lmtp(env, [A], msg('third hello', frm='pal@remote.test'),
         sender='pal@remote.test')
    R.check('vacation: again after the period',
            sink_has(sink, 'I am on holiday.', 2))
    R.check('no reply to the list',
            not any(b'list@remote.test' in r for x in sink.messages
                    for r in x['rcpts']))
    env.loftctl('sieve', 'deactivate', A)


def test_jmap_vacation(env, sink):
    from jmapclient import Jmap
    j = Jmap(env, B)
    using = ['urn:ietf:params:jmap:core', 'urn:ietf:params:jmap:mail',
             'urn:ietf:params:jmap:vacationresponse']
    r = j.ok('VacationResponse/set', {'update': {'singleton': {
        'isEnabled': True, 'subject': 'Bob is away',
        'textBody': 'Back on Monday.'}}}, using=using)
    R.check('VacationResponse/set', 'singleton' in (r.get('updated') or {}), r)
    lmtp(env, [B], msg('jmap hello', frm='pen@remote.test', to=B),
         sender='pen@remote.test')
    R.check('JMAP vacation: a reply', sink_has(sink, 'Back on Monday.'))
    lmtp(env, [B], msg('jmap hello 2', frm='pen@remote.test', to=B),
         sender='pen@remote.test')
    R.check('JMAP vacation: once per period',
            not wait_for(lambda: sink_count(sink, 'Back on Monday.') > 1,
                         timeout=2))
    put(env, B, 'own-vacation', 'require "vacation";\n'
        'vacation :handle "b" "Script says away.";\n')
    lmtp(env, [B], msg('both hello', frm='kim@remote.test', to=B),
         sender='kim@remote.test')
    R.check('script vacation replies', sink_has(sink, 'Script says away.'))
    R.check('no second reply from JMAP vacation',
            not wait_for(lambda: any(b'kim@remote.test' in x['rcpts'][0] and
                                     b'Back on Monday.' in x['data']
                                     for x in sink.messages), timeout=2))
    env.loftctl('sieve', 'deactivate', B)
    j.ok('VacationResponse/set', {'update': {'singleton': {
        'isEnabled': False}}}, using=using)


def test_errors_and_editheader(env):
    put(env, A, 'fails', 'require ["include", "fileinto"];\n'
        'fileinto "a"; include "nowhere";\n')
    lmtp(env, [A], msg('error one'))
    lmtp(env, [A], msg('error two'))
    R.check('error: kept in INBOX', has(env, A, 'INBOX', 'error one') and
            has(env, A, 'INBOX', 'error two'))
    notices = [m for m in subjects(env, A) if b'Your Sieve script "fails"'
               in m]
    R.check('error: one notice', len(notices) == 1, len(notices))
    R.check('notice says line and why', notices and b'line 2' in notices[0]
            and b'nowhere' in notices[0], notices[:1])
    put(env, A, 'edit', 'require ["editheader"];\n'
        'addheader "X-Sieve-Was-Here" "yes";\n')
    lmtp(env, [A, B], msg('edited mail'))
    a = [m for m in subjects(env, A) if b'edited mail' in m]
    b = [m for m in subjects(env, B) if b'edited mail' in m]
    R.check('editheader: alice has it', a and b'X-Sieve-Was-Here: yes' in a[0])
    R.check('editheader: bob not', b and b'X-Sieve-Was-Here' not in b[0])
    env.loftctl('sieve', 'deactivate', A)


def keyword_count(env, user, keyword):
    c = env.imap_login(user)
    c.select('INBOX', readonly=True)
    typ, data = c.search(None, 'KEYWORD', keyword)
    c.logout()
    return len(data[0].split())


def test_global(tmp):
    before = os.path.join(tmp, 'before.sieve')
    with open(before, 'w') as f:
        f.write('require ["imap4flags"];\naddflag "$Global";\n')
    gdir = os.path.join(tmp, 'global')
    os.makedirs(gdir, exist_ok=True)
    common = os.path.join(gdir, 'common.sieve')
    with open(common, 'w') as f:
        f.write('require "imap4flags";\naddflag "$common";\n')
    env = Loft(extra={'sieve': {'before': before, 'global_dir': gdir}})
    with env:
        lmtp(env, [B], msg('global one'))
        R.check('before script ran for a user without script',
                keyword_count(env, B, '$Global') == 1)
        # include :global: compiled once per version of the file
        put(env, A, 'inc', 'require "include";\ninclude :global "common";\n')
        lmtp(env, [A], msg('include one'))
        lmtp(env, [A], msg('include two'))
        R.check('include :global ran (cached the second time)',
                keyword_count(env, A, '$common') == 2)
        with open(common + '.tmp', 'w') as f:
            f.write('require "imap4flags";\naddflag "$common2";\n')
        os.replace(common + '.tmp', common)
        lmtp(env, [A], msg('include three'))
        R.check('include :global: a new version of the file is used',
                keyword_count(env, A, '$common2') == 1 and
                keyword_count(env, A, '$common') == 2)
        with open(before, 'w') as f:
            f.write('require ["imap4flags"];\n\naddflag "$Global"\n')
        r = subprocess.run([LOFTD, '--config', env.config_path, '--check'],
                           capture_output=True, text=True)
        R.check('--check: FILE:LINE:COLUMN', r.returncode != 0 and
                ('%s:4:1: missing' % before) in r.stdout + r.stderr,
                r.stdout + r.stderr)


def test_shared(env):
    c = env.imap_login(B)
    for box in ('Family', 'Private'):
        typ, _ = c.create(box)
        R.check('bob creates %s' % box, typ == 'OK')
    c.logout()
    for box, rights in (('Family', 'lrp'), ('Private', 'lr')):
        rc, out, err = env.loftctl('acl', 'set', '%s/%s' % (B, box), A,
                                   rights)
        R.check('acl set %s %s' % (box, rights), rc == 0, out + err)
    put(env, A, 'shared', SHARED_SCRIPT)
    for subj in ('family news', 'private note', 'ghost mail', 'make one',
                 'plain'):
        rr, dr = lmtp(env, [A], msg(subj))
        R.check('shared: %s accepted' % subj, dr and dr[0][0] == 250, dr)
    R.check("fileinto another account's folder with p",
            has(env, B, 'Family', 'family news') and
            not has(env, A, 'INBOX', 'family news'))
    R.check('without p: kept in INBOX', has(env, A, 'INBOX', 'private note')
            and not has(env, B, 'Private', 'private note'))
    R.check('no such account: kept in INBOX',
            has(env, A, 'INBOX', 'ghost mail'))
    R.check(':create without k: kept in INBOX',
            has(env, A, 'INBOX', 'make one') and
            imap_messages(env, B, 'Family/New') is None)
    c = env.imap_login(A)
    c.select('INBOX', readonly=True)
    typ, data = c.search(None, 'KEYWORD', '$famok')
    fam = data[0].split()
    typ, data = c.search(None, 'KEYWORD', '$privok')
    priv = data[0].split()
    c.logout()
    R.check('mailboxexists: true with p, false without',
            len(fam) >= 1 and priv == [], (fam, priv))
    rc, out, err = env.loftctl('acl', 'set', '%s/Family' % B, A, 'lrpk')
    R.check('acl set Family lrpk', rc == 0, out + err)
    rr, dr = lmtp(env, [A], msg('make two'))
    R.check(':create with k: made and filed',
            has(env, B, 'Family/New', 'make two'), dr)


SHARED_SCRIPT = '''
require ["fileinto", "mailbox", "imap4flags"];
if header :contains "subject" "family" {
  fileinto "Other Users/bob@example.test/Family"; stop;
}
if header :contains "subject" "private" {
  fileinto "Other Users/bob@example.test/Private"; stop;
}
if header :contains "subject" "ghost" {
  fileinto "Other Users/nobody@example.test/Family"; stop;
}
if header :contains "subject" "make" {
  fileinto :create "Other Users/bob@example.test/Family/New"; stop;
}
if mailboxexists "Other Users/bob@example.test/Family" {
  addflag "$famok";
}
if mailboxexists "Other Users/bob@example.test/Private" {
  addflag "$privok";
}
'''


def main():
    sink = Sink()
    extra = {'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                       'smarthost_tls': 'none', 'retry_min': '1s'},
             'sieve': {'vacation_min_period': '60s',
                       'virustest_header': 'X-Virus-Status'}}
    with Loft(extra=extra) as env:
        test_loftctl(env)
        test_filing(env)
        test_virustest(env)
        test_reject_redirect(env, sink)
        test_vacation(env, sink)
        test_jmap_vacation(env, sink)
        test_errors_and_editheader(env)
        test_shared(env)
    test_global(CLOCK_DIR)
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
