#!/usr/bin/env python3
"""Undelete over JMAP (issue 14's "Recover deleted messages", on issue
17's store undelete): Loft's vendor methods LoftDeleted/get and
LoftDeleted/recover (docs/jmap.md).

  - an Email destroyed over JMAP and a message expunged over IMAP are
    listed, newest removal first, with their folder, subject, from,
    keywords and size; Email/get no longer finds them;
  - recover by ids brings one back into its folder as a new Email
    (Email/changes shows it created, with its keywords), the other stays;
  - a deleted folder: its mail is listed with mailboxId null; recover by
    `all` makes the folder again (mailboxesMade 1);
  - bad input: no filter, an unknown mailboxId, a bad since, ids that are
    no kept message (notFound), without the vendor capability in using.
"""

import sys

from jmapclient import Jmap, USING
from loftenv import Loft, Results

R = Results()
ALICE = 'alice@example.test'
LOFT = 'https://loft.example/jmap/webmail'
USE = USING + [LOFT]


def msg(subject, sender='Ann Sender <ann@example.org>'):
    return ('From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\n'
            'Message-ID: <%s@example.org>\r\n\r\nBody of %s.\r\n'
            % (sender, subject, subject.replace(' ', '.'), subject)).encode()


def deliver(env, subject):
    c = env.lmtp()
    c.sendmail('ann@example.org', [ALICE], msg(subject))
    c.quit()


with Loft() as env:
    for s in ('Keep me', 'Destroy me', 'Expunge me'):
        deliver(env, s)
    j = Jmap(env, ALICE)
    acaps = j.session_obj['accounts'][j.account]['accountCapabilities']
    R.check('account capability says undelete',
            acaps[LOFT].get('undelete') is True, acaps.get(LOFT))
    acc = j.ok('LoftAccount/get', {'ids': None}, using=USE)['list'][0]
    R.check('LoftAccount: deletedRetentionDays 14 by default',
            acc.get('deletedRetentionDays') == 14, acc)
    inbox = j.mailbox(role='inbox')['id']
    q = j.ok('Email/query', {'filter': {'inMailbox': inbox}})
    g = j.ok('Email/get', {'ids': q['ids'], 'properties': ['subject']})
    by = {e['subject']: e['id'] for e in g['list']}
    j.ok('Email/set', {'update': {by['Destroy me']: {'keywords/$flagged':
                                                     True}}})
    j.ok('Email/set', {'destroy': [by['Destroy me']]})
    c = env.imap_login(ALICE)
    c.select('INBOX')
    typ, d = c.search(None, 'SUBJECT', '"Expunge me"')
    c.store(d[0].split()[0], '+FLAGS', '(\\Deleted)')
    c.expunge()
    c.logout()

    st = j.state('Email')
    n, a = j.one('LoftDeleted/get', {})
    R.check('without the vendor capability: unknownMethod',
            n == 'error' and a['type'] == 'unknownMethod', (n, a))
    r = j.ok('LoftDeleted/get', {}, using=USE)
    subs = [x['subject'] for x in r['list']]
    R.check('both listed, newest removal first',
            subs == ['Expunge me', 'Destroy me'], r)
    d1 = next(x for x in r['list'] if x['subject'] == 'Destroy me')
    R.check('a kept message: folder, from, keywords, size, dates',
            d1['mailbox'] == 'INBOX' and d1['mailboxId'] == inbox and
            d1['from'] == 'Ann Sender' and
            d1['keywords'].get('$flagged') is True and d1['size'] > 0 and
            d1['receivedAt'].endswith('Z') and
            d1['deletedAt'].endswith('Z') and not r['hasMore'], d1)
    g = j.ok('Email/get', {'ids': [by['Destroy me']]})
    R.check('a kept message is no Email', g['notFound'] == [by['Destroy me']],
            g)
    r1 = j.ok('LoftDeleted/get', {'ids': [d1['id'], 'D999999', 'nope']},
              using=USE)
    R.check('get by ids: notFound for the others',
            [x['id'] for x in r1['list']] == [d1['id']] and
            sorted(r1['notFound']) == ['D999999', 'nope'], r1)
    r1 = j.ok('LoftDeleted/get', {'limit': 1}, using=USE)
    R.check('limit cuts, hasMore', len(r1['list']) == 1 and r1['hasMore'], r1)

    rec = j.ok('LoftDeleted/recover', {'ids': [d1['id']]}, using=USE)
    R.check('recover by id: one back', rec['recovered'] == 1 and
            rec['mailboxesMade'] == 0 and rec['bytes'] > 0, rec)
    # the kept message comes back as the Email it was (same id: its blob
    # was kept): Email/changes names it created again (a client that saw
    # it destroyed must fetch it), and Email/get has it
    ch = j.ok('Email/changes', {'sinceState': st})
    R.check('recovered: created again, not updated',
            len(ch['created']) == 1 and ch['updated'] == [], ch)
    g = j.ok('Email/get', {'ids': ch['created'] + ch['updated'],
                           'properties': ['subject', 'mailboxIds', 'keywords']})
    R.check('recovered: a new Email in its folder, with its keywords',
            len(g['list']) == 1 and g['list'][0]['subject'] == 'Destroy me' and
            g['list'][0]['mailboxIds'] == {inbox: True} and
            g['list'][0]['keywords'].get('$flagged') is True, (ch, g))
    r = j.ok('LoftDeleted/get', {}, using=USE)
    R.check('the other is still kept',
            [x['subject'] for x in r['list']] == ['Expunge me'], r)

    # a deleted folder with mail in it
    mk = j.ok('Mailbox/set', {'create': {'f': {'name': 'Old'}}})
    old = mk['created']['f']['id']
    q = j.ok('Email/query', {'filter': {'inMailbox': inbox}})
    g = j.ok('Email/get', {'ids': q['ids'], 'properties': ['subject']})
    oid = next(e['id'] for e in g['list'] if e['subject'] == 'Keep me')
    j.ok('Email/set', {'update': {oid: {'mailboxIds': {old: True}}}})
    r = j.ok('Mailbox/set', {'destroy': [old], 'onDestroyRemoveEmails': True})
    R.check('folder destroyed', r['destroyed'] == [old], r)
    r = j.ok('LoftDeleted/get', {}, using=USE)
    gone = [x for x in r['list'] if x['mailbox'] == 'Old']
    R.check('mail of a deleted folder: mailboxId null',
            len(gone) >= 1 and all(x['mailboxId'] is None for x in gone), r)

    n, a = j.one('LoftDeleted/recover', {}, using=USE)
    R.check('recover without a filter: invalidArguments',
            n == 'error' and a['type'] == 'invalidArguments', (n, a))
    n, a = j.one('LoftDeleted/get', {'mailboxId': 'Mnope'}, using=USE)
    R.check('unknown mailboxId: invalidArguments',
            n == 'error' and a['type'] == 'invalidArguments', (n, a))
    n, a = j.one('LoftDeleted/get', {'since': 'yesterday'}, using=USE)
    R.check('bad since: invalidArguments',
            n == 'error' and a['type'] == 'invalidArguments', (n, a))
    r = j.ok('LoftDeleted/get', {'since': '2999-01-01T00:00:00Z'}, using=USE)
    R.check('since in the future: nothing', r['list'] == [], r)

    kept = len(j.ok('LoftDeleted/get', {}, using=USE)['list'])
    rec = j.ok('LoftDeleted/recover', {'all': True}, using=USE)
    R.check('recover all: every kept one, the folder made again',
            kept == 2 and rec['recovered'] == kept and
            rec['mailboxesMade'] == 1, (kept, rec))
    mbs = j.ok('Mailbox/get', {'ids': None})['list']
    again = [m for m in mbs if m['name'] == 'Old']
    R.check('Old is back with its mail', len(again) == 1 and
            again[0]['totalEmails'] >= 1, again)
    r = j.ok('LoftDeleted/get', {}, using=USE)
    R.check('nothing kept any more', r['list'] == [], r)
    rec = j.ok('LoftDeleted/recover', {'all': True}, using=USE)
    R.check('nothing to recover is no error', rec['recovered'] == 0, rec)

sys.exit(R.finish())
