import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
const built = process.env.LOFT_WEB_TEST_BUILD || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.test-build');
const { parseSearch, tokenize, parseDate, namesFolder } = await import(pathToFileURL(path.join(built, 'search.mjs')).href);

const folders = { inbox: 'M1', archive: 'M6', 'old mail': 'M9', 'work/projects': 'M10' };
const f = (n) => folders[n.toLowerCase()] ?? null;
const p = (s) => parseSearch(s, f);

test('empty box: no filter', () => {
  assert.equal(p('').filter, null);
  assert.equal(p('   ').filter, null);
});

test('free text is one text condition per word, phrases kept', () => {
  assert.deepEqual(p('hello').filter, { text: 'hello' });
  assert.deepEqual(p('hello world').filter, { operator: 'AND', conditions: [{ text: 'hello' }, { text: 'world' }] });
  assert.deepEqual(p('"hello world"').filter, { text: 'hello world' });
  assert.deepEqual(p('hello world').words, ['hello', 'world']);
});

test('operators', () => {
  assert.deepEqual(p('from:ann').filter, { from: 'ann' });
  assert.deepEqual(p('to:bob@example.com').filter, { to: 'bob@example.com' });
  assert.deepEqual(p('cc:carol').filter, { cc: 'carol' });
  assert.deepEqual(p('subject:"quarterly report"').filter, { subject: 'quarterly report' });
  assert.deepEqual(p('from:"Ann Lee"').filter, { from: 'Ann Lee' });
  assert.deepEqual(p('has:attachment').filter, { hasAttachment: true });
  assert.deepEqual(p('is:unread').filter, { notKeyword: '$seen' });
  assert.deepEqual(p('is:read').filter, { hasKeyword: '$seen' });
  assert.deepEqual(p('is:flagged').filter, { hasKeyword: '$flagged' });
  assert.deepEqual(p('IS:Flagged').filter, { hasKeyword: '$flagged' });
  assert.deepEqual(p('before:2024-03-01').filter, { before: '2024-03-01T00:00:00Z' });
  assert.deepEqual(p('after:2024/1/5').filter, { after: '2024-01-05T00:00:00Z' });
  assert.deepEqual(p('in:Inbox').filter, { inMailbox: 'M1' });
  assert.deepEqual(p('in:"Old mail"').filter, { inMailbox: 'M9' });
  assert.deepEqual(p('in:work/projects').filter, { inMailbox: 'M10' });
});

test('combined and negated', () => {
  assert.deepEqual(p('from:ann is:unread report').filter, {
    operator: 'AND', conditions: [{ from: 'ann' }, { notKeyword: '$seen' }, { text: 'report' }],
  });
  assert.deepEqual(p('-is:unread').filter, { operator: 'NOT', conditions: [{ notKeyword: '$seen' }] });
  assert.deepEqual(p('-from:spam@example.com x').filter, {
    operator: 'AND', conditions: [{ operator: 'NOT', conditions: [{ from: 'spam@example.com' }] }, { text: 'x' }],
  });
  assert.deepEqual(p('-from:spam x').words, ['x']);
});

test('what is not an operator is text', () => {
  assert.deepEqual(p('ratio 1:2').filter, { operator: 'AND', conditions: [{ text: 'ratio' }, { text: '1:2' }] });
  assert.deepEqual(p('http://example.com').filter, { text: 'http://example.com' });
  assert.deepEqual(p('is:bogus').filter, { text: 'is:bogus' });
  assert.deepEqual(p('before:yesterday').filter, { text: 'before:yesterday' });
  assert.deepEqual(p('before:2024-02-30').filter, { text: 'before:2024-02-30' });
  assert.deepEqual(p('from:').filter, { text: 'from:' });
  assert.deepEqual(p('-').filter, { text: '-' });
});

test('an unknown folder matches nothing and is reported', () => {
  const r = p('in:Nowhere');
  assert.deepEqual(r.unknownFolders, ['Nowhere']);
  assert.deepEqual(r.filter, { inMailbox: '-unknown-folder-' });
});

test('hostile input stays data', () => {
  const s = '<script>alert(1)</script> from:"<img src=x onerror=alert(1)>"';
  const r = p(s);
  assert.deepEqual(r.filter, { operator: 'AND', conditions: [{ text: '<script>alert(1)</script>' }, { from: '<img src=x onerror=alert(1)>' }] });
  assert.doesNotThrow(() => p('"unterminated quote'));
  assert.deepEqual(p('"unterminated quote').filter, { text: 'unterminated quote' });
  assert.doesNotThrow(() => p('x'.repeat(100000)));
});

test('tokenize and helpers', () => {
  assert.deepEqual(tokenize(' a  -b:c "d e" '), [
    { neg: false, key: null, value: 'a' }, { neg: true, key: 'b', value: 'c' }, { neg: false, key: null, value: 'd e' }]);
  assert.equal(parseDate('2024-13-01'), null);
  assert.equal(parseDate('2024-12-31'), '2024-12-31T00:00:00Z');
  assert.equal(namesFolder(p('in:inbox x').filter), true);
  assert.equal(namesFolder(p('x').filter), false);
});
