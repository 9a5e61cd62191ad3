// The virtualised list's arithmetic, kept pure so it is unit-tested: which
// rows are on screen for a scroll position, how tall the scrolled content
// is (browsers cap an element's height near 2^25 px, so very long lists
// are scaled: the scroll bar still jumps anywhere), and which pages of
// ids the list must fetch (Email/query position + limit) for a window.

/** Tallest scroll content we ask a browser for (Chrome clamps ~33.5M px,
 * Firefox ~17.9M; 8M is safe everywhere). */
export const MAX_SCROLL_PX = 8_000_000;

export interface Geometry {
  total: number;      // rows in the list
  rowHeight: number;  // px per row
  viewport: number;   // visible px
  overscan: number;   // extra rows above and below
}

/** The scroll content's height in px. */
export function contentHeight(g: Geometry): number {
  return Math.min(g.total * g.rowHeight, MAX_SCROLL_PX);
}

/** Rows per scroll pixel (1/rowHeight unless the list is scaled). */
function scale(g: Geometry): number {
  const real = g.total * g.rowHeight;
  return real > MAX_SCROLL_PX ? (real - g.viewport) / Math.max(1, MAX_SCROLL_PX - g.viewport) : 1;
}

export interface Window {
  first: number;      // first row rendered (inclusive)
  last: number;       // last row rendered (exclusive)
  top: number;        // px offset (in scroll content) of row `first`
  firstVisible: number;
}

/** The rows to render for scrollTop. */
export function windowAt(g: Geometry, scrollTop: number): Window {
  if (g.total <= 0 || g.rowHeight <= 0) return { first: 0, last: 0, top: 0, firstVisible: 0 };
  const maxTop = Math.max(0, contentHeight(g) - g.viewport);
  const st = Math.min(Math.max(0, scrollTop), maxTop);
  const k = scale(g);
  // position in "real" pixels of the unscaled list
  const realTop = st * k;
  const firstVisible = Math.min(g.total - 1, Math.floor(realTop / g.rowHeight));
  const visibleRows = Math.ceil(g.viewport / g.rowHeight) + 1;
  const first = Math.max(0, firstVisible - g.overscan);
  const last = Math.min(g.total, firstVisible + visibleRows + g.overscan);
  // place row `first` so that row firstVisible sits at its real offset
  // relative to the viewport
  const offsetInRow = realTop - firstVisible * g.rowHeight;
  const top = st - offsetInRow - (firstVisible - first) * g.rowHeight;
  return { first, last, top, firstVisible };
}

/** scrollTop that puts row `index` in view (minimal move). */
export function scrollToRow(g: Geometry, index: number, scrollTop: number): number {
  // in "real" pixels (the viewport shows real pixels 1:1 from realTop)
  const k = scale(g);
  const realTop = scrollTop * k;
  const rowTop = index * g.rowHeight;
  const rowBottom = rowTop + g.rowHeight;
  if (rowTop < realTop) return rowTop / k;
  if (rowBottom > realTop + g.viewport) return Math.max(0, rowBottom - g.viewport) / k;
  return scrollTop;
}

/**
 * Pages to fetch so rows [first, last) are loaded: page-aligned
 * [position, limit) ranges, skipping rows already known. has(i) tells
 * whether row i is loaded.
 */
export function pagesToFetch(first: number, last: number, pageSize: number,
  total: number, has: (i: number) => boolean): Array<{ position: number; limit: number }> {
  const out: Array<{ position: number; limit: number }> = [];
  if (total <= 0) return out;
  const lo = Math.max(0, first);
  const hi = Math.min(total, last);
  for (let p = Math.floor(lo / pageSize) * pageSize; p < hi; p += pageSize) {
    const end = Math.min(total, p + pageSize);
    let missing = false;
    for (let i = Math.max(p, lo); i < Math.min(end, hi); i++) if (!has(i)) { missing = true; break; }
    if (missing) out.push({ position: p, limit: end - p });
  }
  return out;
}

/** Index after applying j/k style moves, clamped. */
export function step(index: number, delta: number, total: number): number {
  if (total <= 0) return -1;
  if (index < 0) return delta > 0 ? 0 : total - 1;
  return Math.max(0, Math.min(total - 1, index + delta));
}
