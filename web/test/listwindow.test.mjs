import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
const built = process.env.LOFT_WEB_TEST_BUILD || path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.test-build');
const { windowAt, contentHeight, scrollToRow, pagesToFetch, step, MAX_SCROLL_PX } = await import(pathToFileURL(path.join(built, 'listwindow.mjs')).href);

const g = (total, viewport = 640) => ({ total, rowHeight: 64, viewport, overscan: 5 });

test('empty list', () => {
  assert.deepEqual(windowAt(g(0), 0), { first: 0, last: 0, top: 0, firstVisible: 0 });
  assert.equal(contentHeight(g(0)), 0);
});

test('top of a short list renders all of it', () => {
  const w = windowAt(g(3), 0);
  assert.equal(w.first, 0); assert.equal(w.last, 3); assert.equal(w.top, 0);
});

test('window follows the scroll position with overscan', () => {
  const w = windowAt(g(1000), 64 * 100 + 10);
  assert.equal(w.firstVisible, 100);
  assert.equal(w.first, 95);
  assert.equal(w.last, 100 + 11 + 5);   // 10 rows visible + 1 partial + overscan
  assert.equal(w.top, 95 * 64);
});

test('scrolling past the end is clamped', () => {
  const w = windowAt(g(100), 1e9);
  assert.equal(w.last, 100);
  assert.ok(w.firstVisible <= 99);
  assert.equal(windowAt(g(100), -50).first, 0);
});

test('100,000 rows: real height, the bar reaches the last row', () => {
  const geo = g(100000);
  assert.equal(contentHeight(geo), 6_400_000);
  const end = windowAt(geo, contentHeight(geo) - geo.viewport);
  assert.equal(end.last, 100000);
  const mid = windowAt(geo, 3_200_000);
  assert.equal(mid.firstVisible, 50000);
});

test('10 million rows are scaled under the browser limit and stay consistent', () => {
  const geo = g(10_000_000);
  assert.equal(contentHeight(geo), MAX_SCROLL_PX);
  const end = windowAt(geo, MAX_SCROLL_PX - geo.viewport);
  assert.equal(end.last, 10_000_000);
  const mid = windowAt(geo, (MAX_SCROLL_PX - geo.viewport) / 2);
  assert.ok(Math.abs(mid.firstVisible - 5_000_000) < 20, String(mid.firstVisible));
  // rendered rows sit inside the viewport's neighbourhood
  assert.ok(mid.top <= (MAX_SCROLL_PX - geo.viewport) / 2 + 1);
  assert.ok(mid.top + (mid.last - mid.first) * 64 >= (MAX_SCROLL_PX - geo.viewport) / 2 + geo.viewport);
  // scrolling to a row and back finds the same row
  const st = scrollToRow(geo, 7_654_321, 0);
  assert.ok(Math.abs(windowAt(geo, st).firstVisible - 7_654_321) <= 10);
});

test('scrollToRow moves only as far as needed', () => {
  const geo = g(1000);
  assert.equal(scrollToRow(geo, 0, 0), 0);
  assert.equal(scrollToRow(geo, 5, 0), 0);             // already visible
  assert.equal(scrollToRow(geo, 20, 0), 21 * 64 - 640); // below: bottom-aligned
  assert.equal(scrollToRow(geo, 3, 64 * 10), 3 * 64);   // above: top-aligned
});

test('pages to fetch: aligned, only what is missing', () => {
  const have = new Set([...Array(100).keys()]);
  assert.deepEqual(pagesToFetch(0, 50, 100, 1000, (i) => have.has(i)), []);
  assert.deepEqual(pagesToFetch(90, 130, 100, 1000, (i) => have.has(i)), [{ position: 100, limit: 100 }]);
  assert.deepEqual(pagesToFetch(250, 420, 100, 1000, () => false),
    [{ position: 200, limit: 100 }, { position: 300, limit: 100 }, { position: 400, limit: 100 }]);
  assert.deepEqual(pagesToFetch(990, 1010, 100, 1000, () => false), [{ position: 900, limit: 100 }]);
  assert.deepEqual(pagesToFetch(0, 10, 100, 0, () => false), []);
  assert.deepEqual(pagesToFetch(0, 50, 100, 30, () => false), [{ position: 0, limit: 30 }]);
});

test('step (j/k) clamps', () => {
  assert.equal(step(-1, 1, 10), 0);
  assert.equal(step(-1, -1, 10), 9);
  assert.equal(step(9, 1, 10), 9);
  assert.equal(step(0, -1, 10), 0);
  assert.equal(step(3, 1, 0), -1);
});
