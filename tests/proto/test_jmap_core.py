"""JMAP core (RFC 8620) against a private loftd: the session resource and
its well-known redirect, every request-level problem (notJSON,
notRequest, unknownCapability, limit for maxSizeRequest, maxCallsInRequest
and maxConcurrentRequests), method errors (unknownMethod,
invalidArguments, invalidResultReference, accountNotFound,
requestTooLarge, stateMismatch), result references with JSON Pointer and
'*', createdIds, Core/echo, uploads (maxSizeUpload, a cut upload keeps
nothing, another account's id), downloads (Content-Disposition, Range,
If-None-Match, another account's blob) and Blob/copy."""

import json
import os
import socket
import sys
import threading

from loftenv import Loft, Results
from jmapclient import Jmap, USING

R = Results()

MSG = (b'From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n'
       b'Subject: hello\r\nMessage-ID: <m1@example.test>\r\n'
       b'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n'
       b'Content-Type: text/plain\r\n\r\nHi Alice.\r\n--b\r\n'
       b'Content-Type: application/pdf; name="../../etc/pass\xc3\xa9.pdf"\r\n'
       b'Content-Disposition: attachment; filename="../../etc/pass\xc3\xa9.pdf"\r\n'
       b'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n')


def deliver(env, rcpt, msg):
    c = env.lmtp(unix=True)
    c.connect(env.lmtp_socket)
    c.ehlo('test')
    c.sendmail('bob@example.test', [rcpt], msg)
    c.quit()


def test_session(env, j):
    s = j.session_obj
    core = s['capabilities']['urn:ietf:params:jmap:core']
    R.check('session: core limits', core['maxSizeUpload'] == 65536 and
            core['maxCallsInRequest'] == 8 and core['maxObjectsInGet'] == 20,
            core)
    R.check('session: mail capability',
            'urn:ietf:params:jmap:mail' in s['capabilities'])
    R.check('session: account', s['accounts'][j.account]['name'] ==
            'alice@example.test' and s['accounts'][j.account]['isPersonal'])
    R.check('session: urls', s['apiUrl'].endswith('/jmap/api') and
            '{blobId}' in s['downloadUrl'] and
            '{closeafter}' in s['eventSourceUrl'], s)
    # deliveries answer with it (src/delivery/delivery-sieve.c)
    R.check('session: vacation offered with Sieve',
            'urn:ietf:params:jmap:vacationresponse' in s['capabilities'])
    st, h, _ = j.request('GET', '/.well-known/jmap')
    R.check('well-known redirects', st in (301, 307, 308) and
            h.get('location', '').endswith('/jmap/session'), (st, h))
    c = env.http()
    c.request('GET', '/jmap/session')
    r = c.getresponse()
    r.read()
    R.check('session needs auth', r.status == 401, r.status)
    c.close()
    bob = Jmap(env, 'bob@example.test')
    R.check('another account, another id', bob.account != j.account)


def problem(j, body, ctype='application/json'):
    st, r = j.raw(body, ctype)
    return st, r if isinstance(r, dict) else {}


def test_problems(env, j):
    st, p = problem(j, b'{"using": [')
    R.check('notJSON', st == 400 and p.get('type') ==
            'urn:ietf:params:jmap:error:notJSON', (st, p))
    st, p = problem(j, b'\xff\xfe{}')
    R.check('notJSON: not UTF-8', st == 400 and 'notJSON' in p.get('type', ''))
    for bad in ({'methodCalls': []}, {'using': [], 'methodCalls': [['a', {}]]},
                {'using': 'x', 'methodCalls': []}, [1, 2],
                {'using': [], 'methodCalls': [['a', [], 'c']]},
                {'using': [], 'methodCalls': [], 'createdIds': []}):
        st, p = problem(j, bad)
        R.check('notRequest %s' % json.dumps(bad)[:40], st == 400 and
                p.get('type') == 'urn:ietf:params:jmap:error:notRequest',
                (st, p))
    st, p = problem(j, {'using': USING + ['urn:example:nope'],
                        'methodCalls': []})
    R.check('unknownCapability', st == 400 and p.get('type') ==
            'urn:ietf:params:jmap:error:unknownCapability', (st, p))
    calls = [['Core/echo', {}, str(i)] for i in range(9)]
    st, p = problem(j, {'using': USING, 'methodCalls': calls})
    R.check('limit: maxCallsInRequest', st == 400 and
            p.get('limit') == 'maxCallsInRequest', (st, p))
    big = {'using': USING, 'methodCalls': [['Core/echo', {'x': 'y' * 70000},
                                            'c']]}
    st, p = problem(j, big)
    R.check('limit: maxSizeRequest', st == 400 and
            p.get('limit') == 'maxSizeRequest', (st, p))
    # chunked, no Content-Length: still refused once over the limit
    s = socket.create_connection(('127.0.0.1', env.ports['http']))
    body = json.dumps(big).encode()
    s.sendall(b'POST /jmap/api HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n'
              b'Content-Type: application/json\r\n'
              b'Transfer-Encoding: chunked\r\n\r\n' % j.auth.encode())
    for i in range(0, len(body), 8192):
        part = body[i:i + 8192]
        try:
            s.sendall(b'%x\r\n%s\r\n' % (len(part), part))
        except OSError:
            break
    try:
        s.sendall(b'0\r\n\r\n')
    except OSError:
        pass
    s.settimeout(10)
    resp = b''
    try:
        while b'maxSizeRequest' not in resp:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
    except OSError:
        pass
    s.close()
    R.check('limit: chunked body over maxSizeRequest',
            resp.startswith(b'HTTP/1.1 400') and b'"maxSizeRequest"' in resp,
            resp[:300])
    st, r = j.raw({'using': USING, 'methodCalls': []},
                  'application/json;jmapVersion=rfc-8621')
    R.check('jmapVersion content type accepted', st == 200 and
            r['methodResponses'] == [], (st, r))


def test_concurrency(env, j):
    """maxConcurrentRequests = 2: a third request at once is refused."""
    results = []
    barrier = threading.Barrier(6)

    def one():
        barrier.wait()
        calls = [['Email/query', {'accountId': j.account,
                                  'filter': {'text': 'nothing-like-this'}},
                  str(i)] for i in range(8)]
        st, r = j.raw({'using': USING, 'methodCalls': calls})
        results.append((st, r.get('limit') if isinstance(r, dict) else None))
    ts = [threading.Thread(target=one) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ok = [r for r in results if r[0] == 200]
    lim = [r for r in results if r[1] == 'maxConcurrentRequests']
    R.check('maxConcurrentRequests: every request answered 200 or limit',
            len(ok) + len(lim) == 6 and len(ok) >= 2, results)
    st, r = j.raw({'using': USING, 'methodCalls': []})
    R.check('the slots come back', st == 200, (st, r))


def test_methods(env, j):
    r = j.call([['Core/echo', {'hello': [1, 2]}, 'e'],
                ['Nope/get', {}, 'n'],
                ['Mailbox/get', {}, 'noacc'],
                ['Mailbox/get', {'accountId': 'Azz'}, 'other'],
                ['Mailbox/get', {'accountId': j.account, 'ids': 'x'}, 'badids'],
                ['Mailbox/get', {'accountId': j.account,
                                 'properties': ['name', 'nope']}, 'badprop']])
    m = r['methodResponses']
    R.check('Core/echo', m[0] == ['Core/echo', {'hello': [1, 2]}, 'e'], m[0])
    R.check('unknownMethod', m[1][0] == 'error' and
            m[1][1]['type'] == 'unknownMethod', m[1])
    R.check('invalidArguments: no accountId', m[2][1]['type'] ==
            'invalidArguments', m[2])
    R.check('accountNotFound', m[3][1]['type'] == 'accountNotFound', m[3])
    R.check('invalidArguments: ids', m[4][1]['type'] == 'invalidArguments')
    R.check('invalidArguments: properties', m[5][1]['type'] ==
            'invalidArguments', m[5])
    # a method whose capability is not in "using"
    r = j.call([['Mailbox/get', {'accountId': j.account}, 'm']],
               using=['urn:ietf:params:jmap:core'])
    R.check('unknownMethod without its capability',
            r['methodResponses'][0][1]['type'] == 'unknownMethod', r)
    # result references: ids from a query, '*' over a list
    r = j.call([
        ['Mailbox/query', {'accountId': j.account,
                           'filter': {'hasAnyRole': True}}, 'q'],
        ['Mailbox/get', {'accountId': j.account, '#ids': {
            'resultOf': 'q', 'name': 'Mailbox/query', 'path': '/ids'},
            'properties': ['name']}, 'g'],
        ['Core/echo', {'#names': {'resultOf': 'g', 'name': 'Mailbox/get',
                                  'path': '/list/*/name'}}, 'star'],
        ['Mailbox/get', {'accountId': j.account, '#ids': {
            'resultOf': 'nope', 'name': 'Mailbox/query', 'path': '/ids'}},
         'bad1'],
        ['Mailbox/get', {'accountId': j.account, '#ids': {
            'resultOf': 'q', 'name': 'Mailbox/get', 'path': '/ids'}}, 'bad2'],
        ['Mailbox/get', {'accountId': j.account, '#ids': {
            'resultOf': 'q', 'name': 'Mailbox/query', 'path': '/nope'}},
         'bad3'],
        ['Mailbox/get', {'accountId': j.account, 'ids': [], '#ids': {
            'resultOf': 'q', 'name': 'Mailbox/query', 'path': '/ids'}},
         'both'],
    ])
    m = {cid: (n, a) for n, a, cid in r['methodResponses']}
    R.check('result reference: ids', m['g'][0] == 'Mailbox/get' and
            len(m['g'][1]['list']) == 6, m['g'])
    R.check('result reference: * path', sorted(m['star'][1]['names']) ==
            sorted(x['name'] for x in m['g'][1]['list']), m['star'])
    for k in ('bad1', 'bad2', 'bad3'):
        R.check('invalidResultReference %s' % k, m[k][0] == 'error' and
                m[k][1]['type'] == 'invalidResultReference', m[k])
    R.check('both ids and #ids', m['both'][1]['type'] == 'invalidArguments')
    ids = ['F%d' % i for i in range(21)]
    n, a = j.one('Mailbox/get', {'ids': ids})
    R.check('requestTooLarge: maxObjectsInGet', a.get('type') ==
            'requestTooLarge', (n, a))
    create = {'c%d' % i: {'name': 'x%d' % i} for i in range(21)}
    n, a = j.one('Mailbox/set', {'create': create})
    R.check('requestTooLarge: maxObjectsInSet', a.get('type') ==
            'requestTooLarge', (n, a))
    n, a = j.one('Mailbox/set', {'ifInState': 'x', 'create': {}})
    R.check('stateMismatch', a.get('type') == 'stateMismatch', (n, a))
    n, a = j.one('Mailbox/changes', {'sinceState': 'garbage'})
    R.check('cannotCalculateChanges for a foreign state',
            a.get('type') == 'cannotCalculateChanges', a)
    # createdIds: given and returned, and usable as "#id"
    r = j.call([['Mailbox/set', {'accountId': j.account, 'create': {
        'k1': {'name': 'Created', 'parentId': None}}}, 's'],
        ['Mailbox/get', {'accountId': j.account, 'ids': ['#k1'],
                         'properties': ['name']}, 'g']], created_ids={})
    R.check('createdIds returned', 'k1' in r.get('createdIds', {}), r)
    g = j.resp(r, 'Mailbox/get')
    R.check('#creation id resolves', g['list'] and
            g['list'][0]['name'] == 'Created', g)
    R.check('sessionState present', isinstance(r.get('sessionState'), str))


def test_blobs(env, j):
    up = j.upload(b'\x00\x01binary\xff', 'application/x-test')
    R.check('upload: blobId, size, type', up['size'] == 9 and
            up['type'] == 'application/x-test' and up['accountId'] ==
            j.account, up)
    st, h, data = j.download(up['blobId'], 'f.bin')
    R.check('download: the bytes', st == 200 and data == b'\x00\x01binary\xff',
            (st, data))
    R.check('download: attachment', h.get('content-disposition', '')
            .startswith('attachment'), h)
    st, h2, data = j.request('GET', '/jmap/download/%s/%s/x?type=text/plain'
                             % (j.account, up['blobId']),
                             headers={'Range': 'bytes=2-7'})
    R.check('download: Range', st == 206 and data == b'binary', (st, data))
    R.check('download: ?type', h2.get('content-type', '').startswith(
        'text/plain'), h2)
    st, _, _ = j.request('GET', '/jmap/download/%s/%s/x' % (j.account,
                                                            up['blobId']),
                         headers={'If-None-Match': h.get('etag', '')})
    R.check('download: If-None-Match', st == 304, st)
    # a name with path, CRLF, quotes and non-ASCII
    name = '..%2F..%2Fevil%0D%0AX-Bad%3A%201%22%E2%80%AE.exe'
    st, h, _ = j.request('GET', '/jmap/download/%s/%s/%s' % (
        j.account, up['blobId'], name))
    cd = h.get('content-disposition', '')
    R.check('download: name made safe', st == 200 and '\r' not in cd and
            '\n' not in cd and 'x-bad' not in {k for k in h} and
            '../' not in cd.split("filename*")[0], (st, cd))
    # over maxSizeUpload: 413, nothing kept
    st, _, _ = j.request('POST', '/jmap/upload/%s/' % j.account,
                         b'x' * 70000, {'Content-Type': 'text/plain'})
    R.check('upload over maxSizeUpload', st == 413, st)
    st, _, _ = j.request('POST', '/jmap/upload/Azz/', b'x',
                         {'Content-Type': 'text/plain'})
    R.check('upload to another account', st in (403, 404), st)
    # another account's blob ids: notFound, never the data
    bob = Jmap(env, 'bob@example.test')
    st, _, data = bob.download(up['blobId'])
    R.check('another account\'s blob: 404', st == 404 and b'binary' not in data,
            st)
    st, _, _ = bob.request('GET', '/jmap/download/%s/%s/x' % (j.account,
                                                             up['blobId']))
    R.check('download from another account\'s path: 404', st == 404, st)
    # a cut upload keeps nothing
    updir = os.path.join(env.data_dir, 'mail')
    before = sum(len(f) for _, _, f in os.walk(updir) if 'uploads' in _)
    s = socket.create_connection(('127.0.0.1', env.ports['http']))
    s.sendall(b'POST /jmap/upload/%s/ HTTP/1.1\r\nHost: x\r\n'
              b'Authorization: %s\r\nContent-Length: 60000\r\n\r\n'
              % (j.account.encode(), j.auth.encode()) + b'y' * 30000)
    s.close()
    import time
    time.sleep(0.5)
    after = sum(len(f) for _, _, f in os.walk(updir) if 'uploads' in _)
    R.check('a cut upload leaves no file', after == before, (before, after))
    # Blob/copy within the account; from another: fromAccountNotFound
    n, a = j.one('Blob/copy', {'fromAccountId': j.account,
                               'blobIds': [up['blobId'], 'Unope-1']})
    R.check('Blob/copy', n == 'Blob/copy' and up['blobId'] in a['copied'] and
            'Unope-1' in a['notCopied'], a)
    n, a = j.one('Blob/copy', {'fromAccountId': 'Azz', 'blobIds': []})
    R.check('Blob/copy: fromAccountNotFound', a.get('type') ==
            'fromAccountNotFound', a)
    # the Email blob and a part blob
    deliver(env, 'alice@example.test', MSG)
    q = j.ok('Email/query', {})
    e = j.ok('Email/get', {'ids': q['ids'][:1],
                           'properties': ['blobId', 'attachments']})['list'][0]
    st, h, data = j.download(e['blobId'], 'mail.eml', 'message/rfc822')
    R.check('download: the Email', st == 200 and b'Subject: hello' in data)
    att = e['attachments'][0]
    st, h, data = j.download(att['blobId'], att['name'])
    R.check('download: a part, decoded', st == 200 and data == b'%PDF-1.4\n',
            (st, data))
    cd = h.get('content-disposition', '')
    R.check('download: non-ASCII name as RFC 8187', "filename*=UTF-8''" in cd
            and '/' not in cd.split(';')[1], cd)
    st, _, _ = bob.download(e['blobId'])
    R.check('another account\'s Email blob: 404', st == 404, st)


def main():
    extra = {'jmap': {'max_size_upload': '64K', 'max_size_request': '64K',
                      'max_calls_in_request': '8', 'max_objects_in_get': '20',
                      'max_objects_in_set': '20',
                      'max_concurrent_requests': '2'}}
    with Loft(extra=extra) as env:
        j = Jmap(env, 'alice@example.test')
        for t in (test_session, test_problems, test_methods,
                  test_concurrency, test_blobs):
            try:
                t(env, j)
            except Exception as e:  # noqa: BLE001
                R.check('%s raised' % t.__name__, False, repr(e))
                import traceback
                traceback.print_exc()
        R.check('loftd still running', env.running())
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
