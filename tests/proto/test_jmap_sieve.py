"""JMAP for Sieve (RFC 9661) against a private loftd: the capability
(session and account: limits, extensions, the account's maxNumberScripts),
SieveScript/set create from an uploaded blob with onSuccessActivateScript
by creation id (then a delivery runs it), the script's blob downloaded
byte for byte, ManageSieve/loftctl and JMAP seeing the same scripts,
invalidSieve with line and column (nothing stored), alreadyExists with
existingId, a server-set isActive refused, sieveIsActive for the active
script, onSuccessDeactivateScript, update of name and content (the new
blobId reported), /changes after JMAP and loftctl changes, /query with
filters, operators and sorts, /validate (valid, invalid, unknown blob),
overQuota (sieve_max_scripts) and tooLarge (max_script_size).

Run: LOFTD=... LOFTCTL=... PYTHONPATH=tests/lib python3 tests/proto/test_jmap_sieve.py
"""

import sys

from loftenv import Loft, Results
from jmapclient import Jmap, USING

R = Results()
A = 'alice@example.test'
SIEVE = USING + ['urn:ietf:params:jmap:sieve']
CAP = 'urn:ietf:params:jmap:sieve'

FILTER = (b'require ["fileinto", "mailbox"];\r\n'
          b'# from the webmail\r\n'
          b'if header :contains "subject" "invoice" {\r\n'
          b'  fileinto :create "Invoices";\r\n}\r\n')


def deliver(env, rcpt, subject):
    c = env.lmtp(unix=True)
    c.connect(env.lmtp_socket)
    c.ehlo('test')
    c.sendmail('bob@example.test', [rcpt],
               ('From: bob@example.test\r\nTo: %s\r\nSubject: %s\r\n'
                'Message-ID: <%s@example.test>\r\n\r\nbody\r\n'
                % (rcpt, subject, subject.replace(' ', '-'))).encode())
    c.quit()


def call(j, method, args):
    return j.one(method, args, using=SIEVE)


def sset(j, args):
    name, a = call(j, 'SieveScript/set', args)
    assert name == 'SieveScript/set', (name, a)
    return a


def sget(j, ids=None):
    name, a = call(j, 'SieveScript/get', {'ids': ids})
    assert name == 'SieveScript/get', (name, a)
    return a


def by_name(j):
    return {s['name']: s for s in sget(j)['list']}


def test_capability(env, j):
    s = j.session()
    R.check('session: sieve capability', CAP in s['capabilities'], s)
    ac = s['accounts'][j.account]['accountCapabilities'].get(CAP, {})
    R.check('account capability: limits',
            ac.get('maxSizeScript') == 4096 and
            ac.get('maxSizeScriptName') == 512 and
            ac.get('maxNumberRedirects') == 4 and
            ac.get('implementation') == 'Loft', ac)
    R.check('account capability: the extensions',
            'fileinto' in ac.get('sieveExtensions', []) and
            'vacation' in ac['sieveExtensions'] and
            ac.get('notificationMethods') is None, ac)
    R.check('primary account for sieve',
            s['primaryAccounts'].get(CAP) == j.account, s['primaryAccounts'])
    R.check('account capability: maxNumberScripts (policy)',
            ac.get('maxNumberScripts') == 3, ac)
    name, a = j.one('SieveScript/get', {'ids': None})
    R.check('without the capability in using: unknownMethod',
            name == 'error' and a['type'] == 'unknownMethod', (name, a))


def test_create_activate(env, j):
    st0 = sget(j, [])['state']
    up = j.upload(FILTER, 'application/sieve')
    a = sset(j, {'create': {'c1': {'name': 'webmail', 'blobId': up['blobId']}},
                 'onSuccessActivateScript': '#c1'})
    c1 = (a.get('created') or {}).get('c1', {})
    R.check('create: created with an id', c1.get('id') and
            c1.get('name') == 'webmail', a)
    R.check('create: activated by creation id', c1.get('isActive') is True, a)
    R.check('create: the server\'s blobId reported',
            c1.get('blobId') and c1['blobId'] != up['blobId'], a)
    R.check('create: states', a['oldState'] == st0 and
            a['newState'] != st0, a)
    g = sget(j, [c1['id']])
    R.check('get: the script', g['list'] == [{'id': c1['id'],
                                             'name': 'webmail',
                                             'isActive': True,
                                             'blobId': c1['blobId']}], g)
    st, h, data = j.download(c1['blobId'], 'webmail.sieve')
    R.check('download: byte for byte', st == 200 and data == FILTER,
            (st, data))
    R.check('download: application/sieve',
            h.get('content-type', '').startswith('application/sieve'), h)
    rc, out, _ = env.loftctl('sieve', 'get', A, 'webmail')
    R.check('loftctl sees the same script', rc == 0 and
            out.encode() == FILTER.replace(b'\r\n', b'\n') or
            out.encode() == FILTER, out)
    rc, out, _ = env.loftctl('sieve', 'list', A)
    R.check('loftctl: active', rc == 0 and 'webmail' in out and
            'active' in out.lower(), out)
    # the delivery runs it
    deliver(env, A, 'your invoice')
    deliver(env, A, 'hello')
    inv = j.mailbox(name='Invoices')
    inbox = j.mailbox(role='inbox')
    R.check('delivery: filed by the JMAP script',
            inv['totalEmails'] == 1 and inbox['totalEmails'] == 1,
            (inv, inbox))
    return c1


def test_errors(env, j, c1):
    bad = j.upload(b'require "fileinto";\nif true {\n  fileinto "x"\n}\n')
    a = sset(j, {'create': {'b': {'name': 'bad', 'blobId': bad['blobId']}}})
    e = (a.get('notCreated') or {}).get('b', {})
    R.check('invalidSieve with line and column',
            e.get('type') == 'invalidSieve' and
            'line 4, column' in e.get('description', ''), a)
    R.check('invalidSieve: nothing stored', 'bad' not in by_name(j))
    ok = j.upload(b'keep;\n')
    a = sset(j, {'create': {'d': {'name': 'webmail', 'blobId': ok['blobId']}}})
    e = (a.get('notCreated') or {}).get('d', {})
    R.check('same name: alreadyExists with existingId',
            e.get('type') == 'alreadyExists' and
            e.get('existingId') == c1['id'], a)
    a = sset(j, {'create': {'d': {'name': 'x', 'blobId': ok['blobId'],
                                  'isActive': True}}})
    e = (a.get('notCreated') or {}).get('d', {})
    R.check('isActive is server-set', e.get('type') == 'invalidProperties'
            and e.get('properties') == ['isActive'], a)
    a = sset(j, {'create': {'d': {'name': 'x'}}})
    e = (a.get('notCreated') or {}).get('d', {})
    R.check('blobId required', e.get('type') == 'invalidProperties', a)
    a = sset(j, {'create': {'d': {'name': 'x', 'blobId': 'Unope'}}})
    e = (a.get('notCreated') or {}).get('d', {})
    R.check('unknown blob: blobNotFound', e.get('type') == 'blobNotFound', a)
    a = sset(j, {'create': {'d': {'name': 'a\x01b', 'blobId': ok['blobId']}}})
    e = (a.get('notCreated') or {}).get('d', {})
    R.check('control character in a name: invalidProperties',
            e.get('type') == 'invalidProperties', a)
    a = sset(j, {'destroy': [c1['id']]})
    e = (a.get('notDestroyed') or {}).get(c1['id'], {})
    R.check('destroy the active script: sieveIsActive',
            e.get('type') == 'sieveIsActive', a)
    big = j.upload(b'# ' + b'x' * 5000 + b'\nkeep;\n')
    a = sset(j, {'create': {'t': {'name': 'big', 'blobId': big['blobId']}}})
    e = (a.get('notCreated') or {}).get('t', {})
    R.check('over max_script_size: tooLarge', e.get('type') == 'tooLarge',
            a)
    name, a = call(j, 'SieveScript/set', {'onSuccessActivateScript': 5})
    R.check('onSuccessActivateScript not an Id: invalidArguments',
            name == 'error' and a['type'] == 'invalidArguments', (name, a))
    name, a = call(j, 'SieveScript/set', {'ifInState': 'nope',
                                          'destroy': [c1['id']]})
    R.check('ifInState: stateMismatch',
            name == 'error' and a['type'] == 'stateMismatch', (name, a))


def test_validate(env, j):
    ok = j.upload(b'require "vacation";\nvacation "away";\n')
    name, a = call(j, 'SieveScript/validate', {'blobId': ok['blobId']})
    R.check('validate: a valid script', name == 'SieveScript/validate' and
            a.get('error', 'x') is None, (name, a))
    bad = j.upload(b'if header :is "subject" {\n  stop;\n}\n')
    name, a = call(j, 'SieveScript/validate', {'blobId': bad['blobId']})
    e = a.get('error') or {}
    R.check('validate: invalidSieve with the line',
            e.get('type') == 'invalidSieve' and
            'line 1, column' in e.get('description', ''), a)
    name, a = call(j, 'SieveScript/validate', {'blobId': 'Zffff-1'})
    e = a.get('error') or {}
    R.check('validate: unknown blob', e.get('type') == 'blobNotFound', a)
    R.check('validate stores nothing', len(sget(j)['list']) == 1)


def test_update_changes(env, j, c1):
    st0 = sget(j, [])['state']
    ok = j.upload(b'keep;\n')
    a = sset(j, {'create': {'n': {'name': None, 'blobId': ok['blobId']}}})
    n = (a.get('created') or {}).get('n', {})
    R.check('null name: the server picks one', n.get('name'), a)
    new = j.upload(b'require "imap4flags";\naddflag "\\\\Flagged";\n')
    a = sset(j, {'update': {n['id']: {'name': 'flags',
                                      'blobId': new['blobId']}}})
    u = (a.get('updated') or {}).get(n['id'])
    R.check('update: the new blobId reported',
            isinstance(u, dict) and u.get('blobId'), a)
    s = by_name(j)
    R.check('update: renamed', 'flags' in s and n['name'] not in s, s)
    st, _, data = j.download(s['flags']['blobId'])
    R.check('update: new content', data.startswith(b'require "imap4flags"'),
            data)
    # activate it: both scripts change isActive
    a = sset(j, {'onSuccessActivateScript': n['id']})
    up = a.get('updated') or {}
    R.check('activate: the new one isActive true, the old false',
            up.get(n['id']) == {'isActive': True} and
            up.get(c1['id']) == {'isActive': False}, a)
    name, ch = call(j, 'SieveScript/changes', {'sinceState': st0})
    R.check('changes: created and updated', name == 'SieveScript/changes'
            and ch['created'] == [n['id']] and c1['id'] in ch['updated'],
            ch)
    st1 = ch['newState']
    # a change through loftctl shows too
    rc, _, err = env.loftctl('sieve', 'deactivate', A)
    R.check('loftctl deactivate', rc == 0, err)
    name, ch = call(j, 'SieveScript/changes', {'sinceState': st1})
    R.check('changes: loftctl deactivation', ch.get('updated') == [n['id']],
            ch)
    R.check('get: none active', not any(x['isActive']
                                        for x in sget(j)['list']))
    a = sset(j, {'onSuccessActivateScript': c1['id']})
    a = sset(j, {'onSuccessDeactivateScript': True})
    R.check('onSuccessDeactivateScript',
            (a.get('updated') or {}).get(c1['id']) == {'isActive': False}, a)
    st2 = sget(j, [])['state']
    a = sset(j, {'destroy': [n['id']]})
    R.check('destroy', a.get('destroyed') == [n['id']], a)
    name, ch = call(j, 'SieveScript/changes', {'sinceState': st2})
    R.check('changes: destroyed', ch.get('destroyed') == [n['id']], ch)
    a = sset(j, {'destroy': [n['id']]})
    R.check('destroy again: notFound',
            (a.get('notDestroyed') or {}).get(n['id'], {}).get('type') ==
            'notFound', a)
    # a failure anywhere: no activation
    a = sset(j, {'destroy': ['Z999'], 'onSuccessActivateScript': c1['id']})
    R.check('a failed destroy: nothing activated',
            not sget(j, [c1['id']])['list'][0]['isActive'], a)


def test_query(env, j, c1):
    ok = j.upload(b'keep;\n')
    sset(j, {'create': {'q1': {'name': 'alpha', 'blobId': ok['blobId']},
                        'q2': {'name': 'beta', 'blobId': ok['blobId']}},
             'onSuccessActivateScript': '#q2'})
    s = by_name(j)
    name, q = call(j, 'SieveScript/query', {'filter': {'isActive': True}})
    R.check('query: isActive', name == 'SieveScript/query' and
            q['ids'] == [s['beta']['id']], q)
    name, q = call(j, 'SieveScript/query', {
        'filter': {'operator': 'NOT', 'conditions': [{'name': 'ET'}]},
        'sort': [{'property': 'name', 'isAscending': False}],
        'calculateTotal': True})
    R.check('query: NOT name contains, sorted descending',
            q.get('ids') == [s['webmail']['id'], s['alpha']['id']] and
            q.get('total') == 2, q)
    name, q = call(j, 'SieveScript/query', {'filter': {'size': 3}})
    R.check('query: unknown filter', name == 'error' and
            q['type'] == 'unsupportedFilter', q)
    name, q = call(j, 'SieveScript/query', {'sort': [{'property': 'size'}]})
    R.check('query: unknown sort', name == 'error' and
            q['type'] == 'unsupportedSort', q)
    # the account's third script was its last (sieve_max_scripts = 3)
    a = sset(j, {'create': {'q3': {'name': 'gamma', 'blobId': ok['blobId']}}})
    e = (a.get('notCreated') or {}).get('q3', {})
    R.check('over sieve_max_scripts: overQuota', e.get('type') == 'overQuota',
            a)


def main():
    extra = {'sieve': {'max_script_size': '4K'}}
    with Loft(extra=extra) as env:
        rc, out, err = env.loftctl('user', 'set', A, 'sieve_max_scripts=3')
        R.check('loftctl user set sieve_max_scripts', rc == 0, out + err)
        j = Jmap(env, A)
        try:
            test_capability(env, j)
            c1 = test_create_activate(env, j)
            test_errors(env, j, c1)
            test_validate(env, j)
            test_update_changes(env, j, c1)
            test_query(env, j, c1)
        except Exception as e:  # noqa: BLE001
            R.check('raised', False, repr(e))
            import traceback
            traceback.print_exc()
        R.check('loftd still running', env.running())
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
