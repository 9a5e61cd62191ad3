"""EmailSubmission (RFC 8621 7) through the outbound queue: a remote
recipient reaches the smarthost sink without its Bcc field, a local one
is stored at once; the envelope given or made from To/Cc/Bcc;
deliveryStatus; onSuccessUpdateEmail moves the draft to Sent and
onSuccessDestroyEmail destroys one; forbiddenFrom, forbiddenMailFrom,
noRecipients, invalidRecipients; undoStatus canceled while the queue
holds the message, cannotUnsend after; EmailSubmission/query,
queryChanges and changes. Also: PushSubscription URLs on loopback are
refused without [jmap] push_private."""

import sys
import time

from loftenv import Loft, Results
from jmapclient import Jmap
from smtpconv import Sink

R = Results()
ALICE = 'alice@example.test'


def draft(j, boxes, subject, to, cc=None, bcc=None, frm=ALICE):
    e = {'mailboxIds': {boxes['drafts']: True},
         'keywords': {'$draft': True, '$seen': True},
         'from': [{'email': frm}], 'to': [{'email': a} for a in to],
         'subject': subject,
         'bodyValues': {'b': {'value': 'Hello.'}},
         'textBody': [{'partId': 'b'}]}
    if cc:
        e['cc'] = [{'email': a} for a in cc]
    if bcc:
        e['bcc'] = [{'email': a} for a in bcc]
    a = j.ok('Email/set', {'create': {'d': e}})
    return a['created']['d']['id']


def wait_for(pred, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.1)
    return False


def main():
    sink = Sink()
    extra = {'queue': {'smarthost': '127.0.0.1:%d' % sink.port,
                       'smarthost_tls': 'none', 'retry_min': '1s'}}
    with Loft(extra=extra) as env:
        j = Jmap(env, ALICE)
        boxes = {m['role']: m['id'] for m in
                 j.ok('Mailbox/get', {'ids': None})['list']}
        ids = j.ok('Identity/get', {'ids': None})['list']
        ident = [i for i in ids if i['email'] == ALICE][0]['id']
        s0 = j.state('EmailSubmission')
        eid = draft(j, boxes, 'to the world', ['dest@remote.test'],
                    cc=['bob@example.test'], bcc=['hidden@remote.test'])
        r = j.call([['EmailSubmission/set', {
            'accountId': j.account,
            'create': {'s': {'identityId': ident, 'emailId': eid}},
            'onSuccessUpdateEmail': {'#s': {
                'mailboxIds/%s' % boxes['drafts']: None,
                'mailboxIds/%s' % boxes['sent']: True,
                'keywords/$draft': None}}}, 'c']])
        names = [x[0] for x in r['methodResponses']]
        R.check('EmailSubmission/set then the implicit Email/set, same id',
                names == ['EmailSubmission/set', 'Email/set'] and
                all(x[2] == 'c' for x in r['methodResponses']), r)
        sub = j.resp(r, 'EmailSubmission/set')
        R.check('submission created', 's' in sub['created'], sub)
        sid = sub['created'].get('s', {}).get('id')
        e = j.ok('Email/get', {'ids': [eid], 'properties': ['mailboxIds',
                                                            'keywords']})
        R.check('onSuccessUpdateEmail: in Sent, not a draft', e['list'][0][
            'mailboxIds'] == {boxes['sent']: True} and
            '$draft' not in e['list'][0]['keywords'], e)
        ok = wait_for(lambda: any(b'to the world' in m.get('data', b'')
                                  for m in sink.messages))
        R.check('the remote copy reached the smarthost', ok, sink.messages)
        sent = [m for m in sink.messages if b'to the world' in
                m.get('data', b'')]
        if sent:
            rcpts = b''.join(sent[0]['rcpts'])
            R.check('envelope from To, Cc and Bcc (remote ones)',
                    b'dest@remote.test' in rcpts and
                    b'hidden@remote.test' in rcpts, rcpts)
            R.check('no Bcc field sent', b'hidden@remote.test' not in
                    sent[0]['data'] and b'\nBcc:' not in sent[0]['data'],
                    sent[0]['data'][:400])
        bob = env.imap_login('bob@example.test')
        bob.select('INBOX')
        typ, d = bob.search(None, 'SUBJECT', '"to the world"')
        R.check('the local Cc stored at once', len(d[0].split()) == 1, d)
        bob.logout()
        g = j.ok('EmailSubmission/get', {'ids': [sid]})
        ds = g['list'][0]['deliveryStatus'] if g['list'] else {}
        R.check('deliveryStatus per recipient', set(ds) == {
            'dest@remote.test', 'bob@example.test', 'hidden@remote.test'} and
            ds['bob@example.test']['delivered'] == 'yes', ds)
        R.check('undoStatus final', g['list'][0]['undoStatus'] == 'final')
        a = j.ok('EmailSubmission/set', {'update': {sid: {
            'undoStatus': 'canceled'}}})
        R.check('cannotUnsend once sent', a['notUpdated'][sid]['type'] ==
                'cannotUnsend', a)
        ch = j.ok('EmailSubmission/changes', {'sinceState': s0})
        R.check('EmailSubmission/changes', ch['created'] == [sid], ch)
        q = j.ok('EmailSubmission/query', {'filter': {'emailIds': [eid]}})
        R.check('EmailSubmission/query', q['ids'] == [sid], q)
        qc = j.ok('EmailSubmission/queryChanges',
                  {'sinceQueryState': s0, 'filter': {}})
        R.check('EmailSubmission/queryChanges', [x['id'] for x in
                                                 qc['added']] == [sid], qc)

        # an explicit envelope, and onSuccessDestroyEmail
        eid2 = draft(j, boxes, 'envelope', ['x@remote.test'])
        a = j.ok('EmailSubmission/set', {
            'create': {'e': {'identityId': ident, 'emailId': eid2,
                             'envelope': {'mailFrom': {'email': ALICE},
                                          'rcptTo': [{'email':
                                                      'bob@example.test'}]}}},
            'onSuccessDestroyEmail': ['#e']})
        R.check('explicit envelope', 'e' in a['created'], a)
        g = j.ok('Email/get', {'ids': [eid2]})
        R.check('onSuccessDestroyEmail', g['notFound'] == [eid2], g)

        # refusals
        eid3 = draft(j, boxes, 'forged', ['x@remote.test'],
                     frm='ceo@example.test')
        eid4 = draft(j, boxes, 'nobody', [])
        a = j.ok('EmailSubmission/set', {'create': {
            'f': {'identityId': ident, 'emailId': eid3},
            'm': {'identityId': ident, 'emailId': eid,
                  'envelope': {'mailFrom': {'email': 'ceo@example.test'},
                               'rcptTo': [{'email': 'x@remote.test'}]}},
            'n': {'identityId': ident, 'emailId': eid4},
            'i': {'identityId': ident, 'emailId': eid,
                  'envelope': {'mailFrom': {'email': ALICE},
                               'rcptTo': [{'email': 'not an address'}]}},
            'x': {'identityId': 'Inope', 'emailId': eid},
            'y': {'identityId': ident, 'emailId': 'Mnope-1'}}})
        nc = a['notCreated']
        R.check('forbiddenFrom', nc.get('f', {}).get('type') ==
                'forbiddenFrom', nc)
        R.check('forbiddenMailFrom', nc.get('m', {}).get('type') ==
                'forbiddenMailFrom', nc)
        R.check('noRecipients', nc.get('n', {}).get('type') ==
                'noRecipients', nc)
        R.check('invalidRecipients', nc.get('i', {}).get('type') ==
                'invalidRecipients', nc)
        R.check('unknown identity or Email', nc.get('x', {}).get('type') ==
                'invalidProperties' and nc.get('y', {}).get('type') ==
                'invalidProperties', nc)

        # a shared address: sent as only with i on its INBOX (the SMTP
        # submission check, delivery-sendas.h)
        env.loftctl('shared', 'add', 'sales@example.test')
        a = j.ok('Identity/set', {'create': {'s': {'email': 'sales@example.test'}}})
        R.check('shared address without i: forbiddenFrom',
                a.get('notCreated', {}).get('s', {}).get('type') == 'forbiddenFrom', a)
        rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', ALICE, 'lri')
        R.check('acl set i', rc == 0, out + err)
        a = j.ok('Identity/set', {'create': {'s': {'email': 'sales@example.test'}}})
        R.check('shared address with i: Identity created', 's' in a.get('created', {}), a)
        sident = a.get('created', {}).get('s', {}).get('id')
        eid6 = draft(j, boxes, 'from the team', ['team@remote.test'],
                     frm='sales@example.test')
        a = j.ok('EmailSubmission/set', {'create': {'t': {
            'identityId': sident, 'emailId': eid6}}})
        R.check('sent as the shared address', 't' in a.get('created', {}), a)
        R.check('reaches the sink from sales@', wait_for(
            lambda: any(b'Subject: from the team' in m.get('data', b'') and
                        b'<sales@example.test>' in m.get('from', b'')
                        for m in list(sink.messages)), 60),
            sink.messages[-1:])

        # cancel while the queue holds it (the smarthost is away)
        sink.sock.close()
        time.sleep(0.2)
        eid5 = draft(j, boxes, 'held', ['late@remote.test'])
        a = j.ok('EmailSubmission/set', {'create': {'h': {
            'identityId': ident, 'emailId': eid5}}})
        hid = a['created'].get('h', {}).get('id')
        a = j.ok('EmailSubmission/set', {'update': {hid: {
            'undoStatus': 'canceled'}}})
        canceled = hid in a['updated']
        R.check('undoStatus canceled while queued (or cannotUnsend once'
                ' tried)', canceled or a['notUpdated'][hid]['type'] ==
                'cannotUnsend', a)
        if canceled:
            g = j.ok('EmailSubmission/get', {'ids': [hid]})
            R.check('canceled shows', g['list'][0]['undoStatus'] ==
                    'canceled', g)
            rc, out, err = env.loftctl('queue', 'list')
            R.check('gone from the queue', 'late@remote.test' not in out,
                    out)

        # PushSubscription to loopback without push_private: refused
        r = j.call([['PushSubscription/set', {'create': {'p': {
            'deviceClientId': 'd', 'url': 'https://127.0.0.1:9/x'}}}, 'p'],
            ['PushSubscription/set', {'create': {'p': {
                'deviceClientId': 'd', 'url': 'http://example.com/x'}}}, 'q']])
        R.check('push to loopback refused', j.resp(
            r, 'PushSubscription/set', 'p')['notCreated']['p']['type'] ==
            'invalidProperties', r)
        R.check('push over plain http refused', j.resp(
            r, 'PushSubscription/set', 'q')['notCreated']['p']['type'] ==
            'invalidProperties', r)
        R.check('loftd still running', env.running())
    sys.exit(R.finish())


if __name__ == '__main__':
    main()
