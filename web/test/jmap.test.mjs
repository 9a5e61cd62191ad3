// The JMAP client keeps to the server's maxConcurrentRequests (a refused
// Email/set would roll back what the page already shows) and retries a
// maxConcurrentRequests refusal caused by another client of the account.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
const built = process.env.LOFT_WEB_TEST_BUILD || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.test-build');
const { Jmap } = await import(pathToFileURL(path.join(built, 'jmap.mjs')).href);

const ok = (calls) => new Response(JSON.stringify({
  methodResponses: calls.map(([n, , id]) => [n, { done: true }, id]) }), { status: 200 });
const limited = () => new Response(JSON.stringify({
  type: 'urn:ietf:params:jmap:error:limit', limit: 'maxConcurrentRequests', status: 400,
  detail: 'Too many requests at once for this account.' }), { status: 400 });

function client(max) {
  const j = new Jmap('csrf');
  j.session = { capabilities: { 'urn:ietf:params:jmap:core': { maxConcurrentRequests: max }, 'urn:ietf:params:jmap:mail': {} },
    apiUrl: 'http://loft.test/jmap/api', primaryAccounts: {}, accounts: {}, username: 'a', state: 's' };
  return j;
}

test('no more requests in flight than maxConcurrentRequests', async () => {
  const saved = globalThis.fetch;
  let now = 0, most = 0;
  globalThis.fetch = async (_url, init) => {
    now++; most = Math.max(most, now);
    await new Promise((r) => setTimeout(r, 5));
    now--;
    return ok(JSON.parse(init.body).methodCalls);
  };
  try {
    const j = client(3);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => j.call([['Core/echo', {}, `c${i}`]])));
    assert.equal(rs.length, 20);
    rs.forEach((r, i) => assert.equal(r[0][2], `c${i}`));
    assert.equal(most, 3);
  } finally { globalThis.fetch = saved; }
});

test('a maxConcurrentRequests refusal is retried; other errors are not', async () => {
  const saved = globalThis.fetch;
  let n = 0;
  globalThis.fetch = async (_url, init) => (++n <= 2 ? limited() : ok(JSON.parse(init.body).methodCalls));
  try {
    const j = client(4);
    const r = await j.call([['Email/set', {}, 's']]);
    assert.equal(r[0][0], 'Email/set');
    assert.equal(n, 3);
    n = 0;
    globalThis.fetch = async () => { n++; return new Response(JSON.stringify({ type: 'urn:ietf:params:jmap:error:notRequest', status: 400, detail: 'bad' }), { status: 400 }); };
    await assert.rejects(j.call([['Email/set', {}, 's']]), /bad/);
    assert.equal(n, 1);
  } finally { globalThis.fetch = saved; }
});
