// The filter editor's rule builder: Sieve text of a rule, quoting, and the
// require line merged at the top of the script.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
const built = process.env.LOFT_WEB_TEST_BUILD || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.test-build');
const { addRule, ruleText, quote, requires } = await import(pathToFileURL(path.join(built, 'sievebuild.mjs')).href);

test('quoting: backslash and double quote', () => {
  assert.equal(quote('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quote('plain'), '"plain"');
});

test('a rule as Sieve', () => {
  assert.equal(ruleText({ field: 'subject', text: 'invoice', action: 'fileinto', folder: 'Bills/2026', stop: true }),
    'if header :contains "subject" "invoice" {\n  fileinto "Bills/2026";\n  stop;\n}\n');
  assert.equal(ruleText({ field: 'from', text: 'boss@example.com', action: 'flag', stop: false }),
    'if address :contains "from" "boss@example.com" {\n  addflag "\\\\Flagged";\n}\n');
  assert.match(ruleText({ field: 'to', text: 'list', action: 'seen', stop: false }), /address :contains \["to", "cc"\] "list"/);
  assert.match(ruleText({ field: 'any', text: 'x', action: 'discard', stop: false }), /^if anyof \(header :contains "subject" "x", address :contains \["from", "to", "cc"\] "x"\) \{\n  discard;\n\}\n$/);
});

test('require merged: added, extended, not repeated, after leading comments', () => {
  const r = { field: 'subject', text: 'a', action: 'fileinto', folder: 'A', stop: false };
  const one = addRule('', r);
  assert.ok(one.startsWith('require ["fileinto"];\n\nif header'), one);
  const two = addRule(one, { ...r, action: 'seen' });
  assert.deepEqual(requires(two), ['fileinto', 'imap4flags']);
  assert.equal(two.match(/require/g).length, 1);
  const three = addRule(two, { ...r, action: 'flag' });
  assert.deepEqual(requires(three), ['fileinto', 'imap4flags']);
  const c = addRule('# mine\nrequire "vacation";\nvacation "away";\n', r);
  assert.ok(c.startsWith('# mine\nrequire ["vacation", "fileinto"];\nvacation "away";\n\nif '), c);
  assert.equal(addRule('keep;', { ...r, action: 'discard' }), 'keep;\n\nif header :contains "subject" "a" {\n  discard;\n}\n');
});

test('a rule without text or folder is refused', () => {
  assert.throws(() => addRule('', { field: 'subject', text: ' ', action: 'discard', stop: false }), /looks for/);
  assert.throws(() => addRule('', { field: 'subject', text: 'x', action: 'fileinto', stop: false }), /folder/);
});
