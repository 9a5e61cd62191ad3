"""JMAP mail (RFC 8621) against a private loftd: Mailbox get/changes/
query/queryChanges/set with every property and error, Email get with
every property (header:* forms and :all, bodyStructure, textBody,
htmlBody, attachments, bodyValues with maxBodyValueBytes, preview),
Email/changes, Email/query with every FilterCondition, sorts,
collapseThreads, anchors and totals, queryChanges, Email/set (create
with attachments by blobId, keyword and mailbox patches, destroy,
invalidPatch, overQuota, tooLarge, header injection), Email/import,
Email/parse, Email/copy, SearchSnippet/get, Thread/get and
Thread/changes, Identity, Quota."""

import base64
import sys
import time

from loftenv import Loft, Results
from jmapclient import Jmap

R = Results()


def deliver(env, rcpt, msg):
    c = env.lmtp(unix=True)
    c.connect(env.lmtp_socket)
    c.ehlo('test')
    c.sendmail('sender@remote.test', [rcpt], msg)
    c.quit()


def msg(subject, body='Hello.', frm='Carol <carol@remote.test>',
        to='alice@example.test', mid=None, extra=''):
    mid = mid or '<%s@remote.test>' % subject.replace(' ', '.')
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n'
            'Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n%s\r\n%s\r\n'
            % (frm, to, subject, mid, extra, body)).encode()


RICH = (b'From: =?UTF-8?Q?Andr=C3=A9?= <andre@remote.test>, "Group" <g@x.test>\r\n'
        b'To: Team: a@x.test, b@x.test;, c@x.test\r\n'
        b'Cc: <cc@x.test>\r\nReply-To: reply@x.test\r\n'
        b'Subject: =?UTF-8?B?w6l0w6kgcmljaA==?=\r\n'
        b'Date: Wed, 02 Dec 2026 08:30:00 -0500\r\n'
        b'Message-ID: <rich@remote.test>\r\n'
        b'References: <a@x.test> <b@x.test>\r\n'
        b'List-Unsubscribe: <mailto:u@x.test>, <https://x.test/u>\r\n'
        b'X-Custom: one\r\nX-Custom: two\r\n'
        b'MIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary=o\r\n\r\n'
        b'--o\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n'
        b'--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\n'
        b'Content-Transfer-Encoding: quoted-printable\r\n\r\n'
        b'Caf=E9 au lait, a long plain body of text.\r\n'
        b'--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n'
        b'<p>Caf\xc3\xa9 <b>au lait</b></p>\r\n--a--\r\n'
        b'--o\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\n'
        b'Content-Disposition: inline; filename=dot.png\r\n'
        b'Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n'
        b'--o\r\nContent-Type: application/pdf; name="r\xc3\xa9sum\xc3\xa9.pdf"\r\n'
        b'Content-Disposition: attachment\r\nContent-Language: fr, en\r\n'
        b'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0K\r\n--o--\r\n')


def test_mailboxes(env, j):
    mbs = j.ok('Mailbox/get', {'ids': None})
    roles = {m['role'] for m in mbs['list']}
    R.check('roles from special-use', {'inbox', 'sent', 'drafts', 'trash',
                                       'junk', 'archive'} <= roles, roles)
    s0 = mbs['state']
    a = j.ok('Mailbox/set', {'create': {
        'p': {'name': 'Projects', 'isSubscribed': True, 'sortOrder': 5},
        'c': {'name': 'Loft', 'parentId': '#p'},
        'bad': {'name': 'a/b'}, 'bad2': {'name': ''},
        'bad3': {'name': 'X', 'parentId': 'Fnope'},
        'bad4': {'name': 'Y', 'role': 'nonsense'},
        'bad5': {'name': 'Z', 'totalEmails': 3}}})
    R.check('Mailbox/set create with a parent made in the same call',
            set(a['created']) == {'p', 'c'}, a)
    R.check('Mailbox/set create refusals', set(a['notCreated']) ==
            {'bad', 'bad2', 'bad3', 'bad4', 'bad5'} and
            all(e['type'] == 'invalidProperties'
                for e in a['notCreated'].values()), a['notCreated'])
    pid, cid = a['created']['p']['id'], a['created']['c']['id']
    g = j.ok('Mailbox/get', {'ids': [cid, pid, 'Fnope']})
    by = {m['id']: m for m in g['list']}
    R.check('child parentId', by[cid]['parentId'] == pid, by)
    R.check('sortOrder and isSubscribed', by[pid]['sortOrder'] == 5 and
            by[pid]['isSubscribed'] and not by[cid]['isSubscribed'], by)
    R.check('notFound', g['notFound'] == ['Fnope'], g)
    ch = j.ok('Mailbox/changes', {'sinceState': s0})
    R.check('Mailbox/changes: created', set(ch['created']) == {pid, cid}, ch)
    s1 = ch['newState']
    # rename, move to the top, role, subscribe
    a = j.ok('Mailbox/set', {'update': {
        cid: {'name': 'Loft-mail', 'parentId': None},
        pid: {'role': 'flagged', 'isSubscribed': False}}})
    R.check('Mailbox/set update', set(a['updated']) == {cid, pid}, a)
    g = {m['id']: m for m in j.ok('Mailbox/get', {'ids': [cid, pid]})['list']}
    R.check('renamed and moved', g[cid]['name'] == 'Loft-mail' and
            g[cid]['parentId'] is None, g)
    R.check('role set', g[pid]['role'] == 'flagged' and
            not g[pid]['isSubscribed'], g)
    imap = env.imap_login('alice@example.test')
    typ, lst = imap.list()
    R.check('IMAP sees the rename', any(b'Loft-mail' in x for x in lst), lst)
    R.check('IMAP sees the role', any(b'\\Flagged' in x and b'Projects' in x
                                      for x in lst), lst)
    ch = j.ok('Mailbox/changes', {'sinceState': s1})
    R.check('Mailbox/changes: updated, not counts only',
            set(ch['updated']) == {cid, pid} and
            ch['updatedProperties'] is None, ch)
    inbox = j.mailbox('inbox')
    a = j.ok('Mailbox/set', {'update': {inbox['id']: {'name': 'Other'}},
                             'destroy': [inbox['id']]})
    R.check('INBOX cannot be renamed or destroyed',
            inbox['id'] in a['notUpdated'] and
            a['notDestroyed'][inbox['id']]['type'] == 'forbidden', a)
    a = j.ok('Mailbox/set', {'update': {cid: {'parentId': cid}}})
    R.check('a mailbox cannot move into itself', cid in a['notUpdated'], a)
    a = j.ok('Mailbox/set', {'create': {'k': {'name': 'Kid', 'parentId': pid}}})
    kid = a['created']['k']['id']
    a = j.ok('Mailbox/set', {'destroy': [pid]})
    R.check('mailboxHasChild', a['notDestroyed'][pid]['type'] ==
            'mailboxHasChild', a)
    a = j.ok('Mailbox/set', {'update': {
        j.mailbox('trash')['id']: {'role': 'sent'}}})
    R.check('a role another mailbox has', list(a['notUpdated'].values())[0][
        'type'] == 'invalidProperties', a)
    # query: filter and tree sort
    q = j.ok('Mailbox/query', {'filter': {'parentId': pid}})
    R.check('Mailbox/query parentId', q['ids'] == [kid], q)
    q = j.ok('Mailbox/query', {'filter': {'hasAnyRole': False,
                                          'name': 'loft'}})
    R.check('Mailbox/query name', q['ids'] == [cid], q)
    q = j.ok('Mailbox/query', {'sortAsTree': True, 'sort': [
        {'property': 'name'}]})
    ids = q['ids']
    R.check('sortAsTree: parent before child', ids.index(pid) <
            ids.index(kid), ids)
    n, e = j.one('Mailbox/query', {'filter': {'nope': 1}})
    R.check('Mailbox/query unsupportedFilter', e.get('type') ==
            'unsupportedFilter', e)
    n, e = j.one('Mailbox/query', {'sort': [{'property': 'totalEmails'}]})
    R.check('Mailbox/query unsupportedSort', e.get('type') ==
            'unsupportedSort', e)
    qs = j.ok('Mailbox/query', {'filter': {'isSubscribed': True}})
    j.ok('Mailbox/set', {'update': {kid: {'isSubscribed': True}}})
    qc = j.ok('Mailbox/queryChanges', {'filter': {'isSubscribed': True},
                                       'sinceQueryState': qs['queryState']})
    R.check('Mailbox/queryChanges', kid in qc['removed'] and
            any(x['id'] == kid for x in qc['added']), qc)
    # destroy: with mail needs onDestroyRemoveEmails
    deliver(env, 'alice@example.test', msg('for kid'))
    imap.select('INBOX')
    imap.copy('1', 'Projects/Kid')
    a = j.ok('Mailbox/set', {'destroy': [kid]})
    R.check('mailboxHasEmail', a['notDestroyed'][kid]['type'] ==
            'mailboxHasEmail', a)
    a = j.ok('Mailbox/set', {'destroy': [kid],
                             'onDestroyRemoveEmails': True})
    R.check('onDestroyRemoveEmails', a['destroyed'] == [kid], a)
    imap.logout()
    q = j.ok('Email/query', {'filter': {'subject': 'for kid'}})
    R.check('the Email stays in INBOX', len(q['ids']) == 1, q)
    return inbox


def test_email_get(env, j, inbox):
    deliver(env, 'alice@example.test', RICH)
    q = j.ok('Email/query', {'filter': {'inMailbox': inbox['id'],
                                        'subject': 'rich'}})
    R.check('query by an encoded subject', len(q['ids']) == 1, q)
    eid = q['ids'][0]
    a = j.ok('Email/get', {'ids': [eid], 'fetchAllBodyValues': True,
                           'maxBodyValueBytes': 8, 'properties': [
        'id', 'blobId', 'threadId', 'mailboxIds', 'keywords', 'size',
        'receivedAt', 'messageId', 'inReplyTo', 'references', 'sender',
        'from', 'to', 'cc', 'bcc', 'replyTo', 'subject', 'sentAt',
        'hasAttachment', 'preview', 'bodyStructure', 'bodyValues',
        'textBody', 'htmlBody', 'attachments', 'headers',
        'header:X-Custom:all', 'header:X-Custom', 'header:To:asGroupedAddresses',
        'header:List-Unsubscribe:asURLs', 'header:Subject:asRaw',
        'header:Date:asDate', 'header:From:asAddresses:all',
        'header:x-missing']})
    e = a['list'][0]
    R.check('from decoded', e['from'] == [
        {'name': 'André', 'email': 'andre@remote.test'},
        {'name': 'Group', 'email': 'g@x.test'}], e['from'])
    R.check('to flattens the group', [x['email'] for x in e['to']] ==
            ['a@x.test', 'b@x.test', 'c@x.test'], e['to'])
    R.check('asGroupedAddresses', e['header:To:asGroupedAddresses'][0][
        'name'] == 'Team' and len(e['header:To:asGroupedAddresses']) == 2,
        e['header:To:asGroupedAddresses'])
    R.check('subject', e['subject'] == 'été rich', e['subject'])
    R.check('asRaw', e['header:Subject:asRaw'] ==
            ' =?UTF-8?B?w6l0w6kgcmljaA==?=', e['header:Subject:asRaw'])
    R.check('sentAt keeps the offset', e['sentAt'] ==
            '2026-12-02T08:30:00-05:00', e['sentAt'])
    R.check('header:Date:asDate', e['header:Date:asDate'] == e['sentAt'])
    R.check('messageId, references', e['messageId'] == ['rich@remote.test']
            and e['references'] == ['a@x.test', 'b@x.test'] and
            e['inReplyTo'] is None, e)
    R.check(':all', e['header:X-Custom:all'] == [' one', ' two'] and
            e['header:X-Custom'] == ' two', e)
    R.check('asURLs', e['header:List-Unsubscribe:asURLs'] ==
            ['mailto:u@x.test', 'https://x.test/u'], e)
    R.check('missing header is null', e['header:x-missing'] is None)
    R.check('headers list', any(h['name'] == 'X-Custom' for h in e['headers']))
    # RFC 8621 4.1.4: an inline image after the alternative shows in both
    # bodies, not as an attachment
    R.check('textBody: plain part, inline image', [p['type'] for p in
                                                   e['textBody']] ==
            ['text/plain', 'image/png'], e['textBody'])
    R.check('htmlBody: html part, inline image', [p['type'] for p in
                                                  e['htmlBody']] ==
            ['text/html', 'image/png'], e['htmlBody'])
    R.check('attachments: the pdf', [p['type'] for p in e['attachments']] ==
            ['application/pdf'], e['attachments'])
    pdf = e['attachments'][0]
    R.check('attachment name from RFC 2047 in quotes', pdf['name'] ==
            'résumé.pdf' and pdf['language'] == ['fr', 'en'] and
            pdf['disposition'] == 'attachment', pdf)
    img = e['textBody'][1]
    R.check('cid', img['cid'] == 'img1@x' and img['disposition'] == 'inline')
    R.check('hasAttachment', e['hasAttachment'] is True)
    tv = e['bodyValues'][e['textBody'][0]['partId']]
    R.check('bodyValues decoded and cut', tv['value'] == 'Café au' and
            tv['isTruncated'] and not tv['isEncodingProblem'], tv)
    R.check('charset of the plain part', e['textBody'][0]['charset'] ==
            'iso-8859-1')
    bs = e['bodyStructure']
    R.check('bodyStructure', bs['type'] == 'multipart/mixed' and
            bs['partId'] is None and len(bs['subParts']) == 3 and
            bs['subParts'][0]['type'] == 'multipart/alternative', bs)
    R.check('preview', e['preview'].startswith('Café au lait'), e['preview'])
    R.check('mailboxIds', e['mailboxIds'] == {inbox['id']: True})
    R.check('keywords', e['keywords'] == {}, e['keywords'])
    R.check('receivedAt UTC', e['receivedAt'].endswith('Z'))
    n, err = j.one('Email/get', {'ids': [eid], 'properties': ['header:Subject:asAddresses']})
    R.check('a form the field cannot take', err.get('type') ==
            'invalidArguments', err)
    bob = Jmap(env, 'bob@example.test')
    g = bob.ok('Email/get', {'ids': [eid]})
    R.check('another account\'s Email id: notFound', g['notFound'] == [eid]
            and g['list'] == [], g)
    a = j.ok('Email/get', {'ids': [eid], 'properties': ['bodyStructure'],
                           'bodyProperties': ['partId', 'type',
                                              'header:Content-Type']})
    sp = a['list'][0]['bodyStructure']['subParts'][2]
    R.check('bodyProperties with header forms', set(sp) ==
            {'partId', 'type', 'header:Content-Type'}, sp)
    return eid


def test_query(env, j, inbox):
    archive = j.mailbox('archive')
    s0 = j.state('Email')
    for i in range(5):
        extra = 'In-Reply-To: <t0@remote.test>\r\n' if i in (2, 4) else ''
        deliver(env, 'alice@example.test',
                msg('thread %d' % i, body='word%d common' % i,
                    mid='<t%d@remote.test>' % i, extra=extra))
        time.sleep(1.05)
    q = j.ok('Email/query', {'filter': {'inMailbox': inbox['id'],
                                        'subject': 'thread'},
                             'sort': [{'property': 'receivedAt',
                                       'isAscending': False}],
                             'calculateTotal': True})
    ids = q['ids']
    R.check('query: newest first', len(ids) == 5, q)
    R.check('query: total', q['total'] == 5, q)
    th = j.ok('Email/query', {'filter': {'subject': 'thread'},
                              'collapseThreads': True,
                              'calculateTotal': True})
    R.check('collapseThreads', len(th['ids']) == 3 and th['total'] == 3, th)
    w = j.ok('Email/query', {'filter': {'subject': 'thread'}, 'position': 1,
                             'limit': 2})
    R.check('position/limit', w['ids'] == ids[1:3] and w['position'] == 1, w)
    w = j.ok('Email/query', {'filter': {'subject': 'thread'},
                             'anchor': ids[2], 'anchorOffset': -1, 'limit': 2})
    R.check('anchor', w['ids'] == ids[1:3], (w, ids))
    n, e = j.one('Email/query', {'anchor': 'Mnope-1'})
    R.check('anchorNotFound', e.get('type') == 'anchorNotFound', e)
    w = j.ok('Email/query', {'filter': {'subject': 'thread'}, 'position': -2})
    R.check('negative position', w['ids'] == ids[3:], w)
    # flags through JMAP, then every filter
    j.ok('Email/set', {'update': {ids[0]: {'keywords/$flagged': True,
                                           'keywords/custom': True},
                                  ids[1]: {'keywords': {'$seen': True}}}})
    def q1(f, **kw):
        a = dict(kw)
        a['filter'] = f
        return j.ok('Email/query', a)['ids']
    R.check('hasKeyword', q1({'hasKeyword': '$flagged'}) == [ids[0]])
    R.check('hasKeyword custom', q1({'hasKeyword': 'CUSTOM'}) == [ids[0]])
    R.check('notKeyword', ids[1] not in q1({'notKeyword': '$seen'}))
    R.check('body', q1({'body': 'word3'}) == [ids[1]], q1({'body': 'word3'}))
    R.check('text', len(q1({'text': 'common'})) == 5)
    R.check('from', len(q1({'from': 'carol@remote'})) >= 5)
    R.check('to', len(q1({'to': 'alice@example'})) >= 5)
    R.check('header exists', len(q1({'header': ['In-Reply-To']})) == 2)
    R.check('header value', len(q1({'header': ['Message-ID',
                                               't3@remote']})) == 1)
    R.check('minSize/maxSize', len(q1({'minSize': 1, 'maxSize': 100000})) >= 5)
    R.check('hasAttachment', len(q1({'hasAttachment': True})) == 1)
    R.check('NOT', ids[0] not in q1({'operator': 'NOT', 'conditions': [
        {'hasKeyword': '$flagged'}]}))
    R.check('OR', len(q1({'operator': 'OR', 'conditions': [
        {'body': 'word1'}, {'body': 'word2'}]})) == 2)
    R.check('inMailboxOtherThan', q1({'inMailboxOtherThan': [inbox['id']]})
            == [])
    R.check('someInThreadHaveKeyword', set(q1({'someInThreadHaveKeyword':
                                               '$seen'})) >= {ids[1]})
    R.check('noneInThreadHaveKeyword', ids[1] not in q1(
        {'noneInThreadHaveKeyword': '$seen'}))
    R.check('allInThreadHaveKeyword', q1({'allInThreadHaveKeyword': '$seen'})
            == [ids[1]], q1({'allInThreadHaveKeyword': '$seen'}))
    R.check('before/after', len(q1({'after': '2000-01-01T00:00:00Z',
                                    'before': '2100-01-01T00:00:00Z'})) >= 5)
    n, e = j.one('Email/query', {'filter': {'before': 'yesterday'}})
    R.check('bad date', e.get('type') in ('unsupportedFilter',
                                         'invalidArguments'), e)
    n, e = j.one('Email/query', {'filter': {'nope': 1}})
    R.check('unsupportedFilter', e.get('type') == 'unsupportedFilter', e)
    n, e = j.one('Email/query', {'sort': [{'property': 'nope'}]})
    R.check('unsupportedSort', e.get('type') == 'unsupportedSort', e)
    by = j.ok('Email/query', {'filter': {'subject': 'thread'},
                              'sort': [{'property': 'subject',
                                        'isAscending': True}]})['ids']
    R.check('sort subject', by == list(reversed(ids)), by)
    by = j.ok('Email/query', {'filter': {'subject': 'thread'},
                              'sort': [{'property': 'hasKeyword',
                                        'keyword': '$flagged',
                                        'isAscending': False},
                                       {'property': 'size'}]})['ids']
    R.check('sort hasKeyword', by[0] == ids[0], by)
    # Email/changes and queryChanges
    ch = j.ok('Email/changes', {'sinceState': s0})
    R.check('Email/changes created', set(ids) <= set(ch['created']), ch)
    qs = j.ok('Email/query', {'filter': {'inMailbox': inbox['id']}})
    deliver(env, 'alice@example.test', msg('late arrival'))
    j.ok('Email/set', {'update': {ids[4]: {'mailboxIds': {
        archive['id']: True}}}})
    qc = j.ok('Email/queryChanges', {'filter': {'inMailbox': inbox['id']},
                                     'sinceQueryState': qs['queryState'],
                                     'calculateTotal': True})
    added = {a['id']: a['index'] for a in qc['added']}
    R.check('queryChanges: moved out', ids[4] in qc['removed'] and
            ids[4] not in added, qc)
    R.check('queryChanges: new at index 0', 0 in added.values(), qc)
    now = j.ok('Email/query', {'filter': {'inMailbox': inbox['id']}})
    R.check('queryChanges matches a new query', all(
        now['ids'][i] == k for k, i in added.items()) and
        qc['total'] == len(now['ids']), (qc, now))
    qc = j.ok('Email/queryChanges', {'filter': {'hasKeyword': '$flagged'},
                                     'sinceQueryState': qs['queryState']})
    R.check('queryChanges of another filter', qc['newQueryState'] ==
            now['queryState'], qc)
    n, e = j.one('Email/queryChanges', {'sinceQueryState': '1',
                                        'maxChanges': 1})
    R.check('tooManyChanges', e.get('type') == 'tooManyChanges', e)
    th = j.ok('Email/get', {'ids': [ids[0]], 'properties': ['threadId']})
    tid = th['list'][0]['threadId']
    t = j.ok('Thread/get', {'ids': [tid, 'Tnope']})
    R.check('Thread/get', len(t['list'][0]['emailIds']) == 3 and
            t['notFound'] == ['Tnope'], t)
    snip = j.ok('SearchSnippet/get', {'filter': {'text': 'word4'},
                                      'emailIds': [ids[0]]})
    R.check('SearchSnippet <mark>', '<mark>word4</mark>' in
            (snip['list'][0]['preview'] or ''), snip)
    return ids


def test_set(env, j, inbox):
    drafts = j.mailbox('drafts')
    up = j.upload(b'PNGDATA', 'image/png')
    a = j.ok('Email/set', {'create': {'d': {
        'mailboxIds': {drafts['id']: True},
        'keywords': {'$draft': True, '$seen': True},
        'from': [{'name': 'Alice Ünicode', 'email': 'alice@example.test'}],
        'to': [{'email': 'bob@example.test'}],
        'subject': 'Draft with ümlaut',
        'header:X-Loft': ' yes',
        'bodyValues': {'t': {'value': 'Line one\nline two é'},
                       'h': {'value': '<p>hi <img src="cid:c1"></p>'}},
        'textBody': [{'partId': 't'}],
        'htmlBody': [{'partId': 'h'}],
        'attachments': [{'blobId': up['blobId'], 'type': 'image/png',
                         'name': 'é.png', 'disposition': 'inline',
                         'cid': 'c1'}]}}})
    R.check('Email/set create', 'd' in a['created'], a)
    did = a['created']['d']['id']
    g = j.ok('Email/get', {'ids': [did], 'fetchAllBodyValues': True,
                           'properties': ['subject', 'from', 'keywords',
                                          'textBody', 'htmlBody',
                                          'attachments', 'bodyValues',
                                          'header:X-Loft', 'bodyStructure',
                                          'mailboxIds']})['list'][0]
    R.check('created: round trip of headers', g['subject'] ==
            'Draft with ümlaut' and g['from'][0]['name'] == 'Alice Ünicode',
            g)
    R.check('created: keywords', g['keywords'] == {'$draft': True,
                                                   '$seen': True}, g)
    R.check('created: text value', g['bodyValues'][g['textBody'][0][
        'partId']]['value'] == 'Line one\nline two é', g['bodyValues'])
    R.check('created: related html with the inline image',
            g['bodyStructure']['type'] == 'multipart/related', g['bodyStructure'])
    st, _, data = j.download(g['attachments'][0]['blobId']) \
        if g['attachments'] else (0, 0, b'')
    R.check('created: attachment bytes', data == b'PNGDATA' or
            any(True for _ in []), (st, data))
    R.check('created: header:X-Loft', g['header:X-Loft'] == ' yes', g)
    # header injection and bad values: nothing stored
    before = j.state('Email')
    a = j.ok('Email/set', {'create': {
        'inj': {'mailboxIds': {drafts['id']: True},
                'subject': 'x\r\nBcc: evil@x.test'},
        'inj2': {'mailboxIds': {drafts['id']: True},
                 'header:X-A\r\nBcc': 'v'},
        'addr': {'mailboxIds': {drafts['id']: True},
                 'to': [{'email': 'not an address'}]},
        'nomb': {'subject': 'x'},
        'blob': {'mailboxIds': {drafts['id']: True},
                 'attachments': [{'blobId': 'Unope-9'}]},
        'kw': {'mailboxIds': {drafts['id']: True}, 'keywords': {'a b': True}},
        'srv': {'mailboxIds': {drafts['id']: True}, 'size': 3},
        'hdrs': {'mailboxIds': {drafts['id']: True}, 'headers': []}}})
    nc = a['notCreated']
    R.check('refused creates', set(nc) == {'inj', 'inj2', 'addr', 'nomb',
                                           'blob', 'kw', 'srv', 'hdrs'}, a)
    R.check('blobNotFound', nc['blob']['type'] == 'blobNotFound', nc['blob'])
    R.check('nothing stored for refused creates', j.state('Email') == before)
    # patches
    a = j.ok('Email/set', {'update': {
        did: {'keywords/$seen': None, 'keywords/$flagged': True,
              'mailboxIds/%s' % inbox['id']: True},
        'Mnope-1': {'keywords/$seen': True}}})
    R.check('keyword and mailbox patches', did in a['updated'] and
            a['notUpdated']['Mnope-1']['type'] == 'notFound', a)
    g = j.ok('Email/get', {'ids': [did], 'properties': ['keywords',
                                                        'mailboxIds']})
    e = g['list'][0]
    R.check('patched', e['keywords'] == {'$draft': True, '$flagged': True}
            and set(e['mailboxIds']) == {drafts['id'], inbox['id']}, e)
    bad = {'keywords/$seen': False, 'keywords': {}, 'mailboxIds/Fnope': True,
           'subject': 'x', 'keywords/a/b': True}
    for k, v in bad.items():
        p = {k: v}
        if k == 'keywords':
            p['keywords/$x'] = True
        a = j.ok('Email/set', {'update': {did: p}})
        R.check('refused patch %s' % k, did in a['notUpdated'] and
                a['notUpdated'][did]['type'] in ('invalidPatch',
                                                 'invalidProperties'), a)
    a = j.ok('Email/set', {'update': {did: {'mailboxIds': {}}}})
    R.check('no mailbox left: invalidProperties', did in a['notUpdated'], a)
    # a draft's new version and the old one's destroy in one call
    a = j.ok('Email/set', {'create': {'v2': {
        'mailboxIds': {drafts['id']: True}, 'subject': 'v2',
        'bodyValues': {'t': {'value': 'v2'}}, 'textBody': [{'partId': 't'}]}},
        'destroy': [did, 'Mnope-2']})
    R.check('create and destroy together', 'v2' in a['created'] and
            a['destroyed'] == [did] and 'Mnope-2' in a['notDestroyed'], a)
    # import and parse
    up = j.upload(msg('imported', body='imported body'), 'message/rfc822')
    a = j.ok('Email/import', {'emails': {
        'i': {'blobId': up['blobId'], 'mailboxIds': {inbox['id']: True},
              'keywords': {'$seen': True},
              'receivedAt': '2020-01-02T03:04:05Z'},
        'nb': {'blobId': 'Unope-5', 'mailboxIds': {inbox['id']: True}},
        'nm': {'blobId': up['blobId'], 'mailboxIds': {'Fnope': True}}}})
    R.check('Email/import', 'i' in a['created'] and
            a['notCreated']['nb']['type'] == 'blobNotFound' and
            a['notCreated']['nm']['type'] == 'invalidProperties', a)
    g = j.ok('Email/get', {'ids': [a['created']['i']['id']],
                           'properties': ['receivedAt', 'subject']})
    R.check('import keeps receivedAt', g['list'][0]['receivedAt'] ==
            '2020-01-02T03:04:05Z', g)
    p = j.ok('Email/parse', {'blobIds': [up['blobId'], 'Unope-1'],
                             'fetchTextBodyValues': True})
    pe = p['parsed'].get(up['blobId'], {})
    R.check('Email/parse', pe.get('subject') == 'imported' and
            p['notFound'] == ['Unope-1'], p)
    n, e = j.one('Email/copy', {'fromAccountId': j.account, 'create': {}})
    R.check('Email/copy within one account', e.get('type') ==
            'invalidArguments', e)
    n, e = j.one('Email/copy', {'fromAccountId': 'Azz', 'create': {}})
    R.check('Email/copy fromAccountNotFound', e.get('type') in
            ('fromAccountNotFound', 'invalidArguments'), e)


def test_quota_identity(env, j, inbox):
    env.loftctl('user', 'quota', 'alice@example.test', '200K')
    q = j.ok('Quota/get', {'ids': None})
    R.check('Quota/get', any(x['resourceType'] == 'octets' and
                             x['hardLimit'] == 200 * 1024 for x in q['list']),
            q)
    big = 'x' * 1000 + '\n'
    a = j.ok('Email/set', {'create': {'big': {
        'mailboxIds': {inbox['id']: True},
        'bodyValues': {'t': {'value': big * 250}},
        'textBody': [{'partId': 't'}]}}})
    R.check('overQuota', a['notCreated'].get('big', {}).get('type') ==
            'overQuota', a)
    env.loftctl('user', 'quota', 'alice@example.test', 'none')
    a = j.ok('Email/set', {'create': {'huge': {
        'mailboxIds': {inbox['id']: True},
        'bodyValues': {'t': {'value': big * 1200}},
        'textBody': [{'partId': 't'}]}}})
    R.check('tooLarge', a['notCreated'].get('huge', {}).get('type') ==
            'tooLarge', a)
    ids = j.ok('Identity/get', {'ids': None})
    R.check('Identity/get: the address', any(
        i['email'] == 'alice@example.test' for i in ids['list']), ids)
    a = j.ok('Identity/set', {'create': {
        'n': {'email': 'alice@example.test', 'name': 'Alice',
              'textSignature': '-- A'},
        'x': {'email': 'mallory@example.test'}}})
    R.check('Identity/set', 'n' in a['created'] and
            a['notCreated']['x']['type'] == 'forbiddenFrom', a)
    nid = a['created']['n']['id']
    ch = j.ok('Identity/changes', {'sinceState': ids['state']})
    R.check('Identity/changes', nid in ch['created'], ch)
    a = j.ok('Identity/set', {'update': {nid: {'name': 'A.'}},
                              'destroy': [nid]})
    R.check('Identity update and destroy', nid in a['updated'] and
            a['destroyed'] == [nid], a)


def test_thread_view(env, j, inbox):
    """Email/queryChanges of the list view with threads collapsed
    (inMailbox, receivedAt descending, collapseThreads): after each kind
    of change the old list with removed/added applied (RFC 8620 5.6) is
    the new query's list, and a keyword change changes nothing."""
    box = j.ok('Mailbox/set', {'create': {'v': {'name': 'Thread view'}}})
    box = box['created']['v']['id']
    archive = j.mailbox('archive')['id']
    view = {'filter': {'inMailbox': box}, 'collapseThreads': True,
            'sort': [{'property': 'receivedAt', 'isAscending': False}]}
    made = {}

    def put(name, t, refs=''):
        extra = 'References: %s\r\n' % refs if refs else ''
        blob = j.upload(msg('view %s' % name, mid='<v%s@remote.test>' % name,
                            extra=extra), 'message/rfc822')['blobId']
        a = j.ok('Email/import', {'emails': {'i': {
            'blobId': blob, 'mailboxIds': {box: True},
            'receivedAt': '2026-11-01T10:00:%02dZ' % t}}})
        made[name] = a['created']['i']['id']

    def query():
        q = j.ok('Email/query', dict(view, calculateTotal=True))
        return q['ids'], q['queryState'], q['total']

    def step(what, change, expect_nothing=False):
        old, qs, _ = query()
        change()
        qc = j.ok('Email/queryChanges', dict(view, sinceQueryState=qs,
                                             calculateTotal=True))
        ids = [i for i in old if i not in set(qc['removed'])]
        for a in sorted(qc['added'], key=lambda a: a['index']):
            ids.insert(a['index'], a['id'])
        now, nqs, total = query()
        R.check('thread view, %s: applied == new query' % what,
                ids == now and qc['total'] == total == len(now) and
                qc['newQueryState'] == nqs, (old, qc, now))
        if expect_nothing:
            R.check('thread view, %s: no change' % what,
                    qc['removed'] == [] and qc['added'] == [], qc)

    # threads A (a1, a2), B (b1), C (c1, c2), D (d1)
    put('a1', 1)
    put('b1', 2)
    put('c1', 3)
    put('c2', 4, '<vc1@remote.test>')
    put('a2', 5, '<va1@remote.test>')
    put('d1', 6)
    now, _, total = query()
    R.check('thread view: one row per thread, newest first',
            now == [made['d1'], made['a2'], made['c2'], made['b1']] and
            total == 4, now)
    step('keyword', lambda: j.ok('Email/set', {'update': {
        made['a2']: {'keywords/$flagged': True}}}), expect_nothing=True)
    step('reply', lambda: put('b2', 7, '<vb1@remote.test>'))
    step('moved out', lambda: j.ok('Email/set', {'update': {
        made['a2']: {'mailboxIds': {archive: True}}}}))
    step('destroyed', lambda: j.ok('Email/set', {'destroy': [made['c2']]}))
    step('last of a thread', lambda: j.ok('Email/set', {
        'destroy': [made['d1']]}))
    step('moved in', lambda: j.ok('Email/set', {'update': {
        made['a2']: {'mailboxIds': {box: True}}}}))
    # a late reply joining A and C: their Emails come back under new ids
    step('threads joined', lambda: put('x', 8,
                                       '<va1@remote.test> <vc1@remote.test>'))
    now, _, total = query()
    R.check('thread view: joined threads are one row', total == 2, now)


def main():
    extra = {'limits': {'max_message_size': '1M'}}
    with Loft(extra=extra) as env:
        j = Jmap(env, 'alice@example.test')
        inbox = None
        for t in ('mailboxes', 'email_get', 'query', 'set', 'quota_identity',
                  'thread_view'):
            try:
                if t == 'mailboxes':
                    inbox = test_mailboxes(env, j)
                else:
                    globals()['test_' + t](env, j, inbox)
            except Exception as e:  # noqa: BLE001
                R.check('%s raised' % t, False, repr(e))
                import traceback
                traceback.print_exc()
        R.check('loftd still running', env.running())
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
