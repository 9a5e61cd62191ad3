// The message list: a virtualised grid ("Messages"). Only the rows on
// screen exist in the DOM; the scroll content is as tall as the whole
// folder, so the scroll bar jumps anywhere and the rows there are fetched
// (Email/query position + limit). Rows carry the sender, subject, and
// "unread"/"flagged"/"has attachment" in their accessible names.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Model, Email } from './model';
import { addrText } from './model';
import { contentHeight, windowAt, scrollToRow } from './listwindow';
import { Icon } from './icons';

export const ROW_HEIGHT = 64;

export interface ListProps {
  model: Model;
  cursor: number;                 // focused row
  selected: Set<string>;          // selected email ids (rows)
  openId: string | null;
  onOpen: (index: number) => void;
  onSelect: (index: number, e: { shift: boolean; ctrl: boolean }) => void;
  onDragIds: (id: string) => string[];
}

function dateText(iso: string): string {
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (d.getFullYear() === now.getFullYear()) return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** A SearchSnippet's HTML ("<mark>word</mark>", escaped otherwise) as
 * text pieces: never parsed as HTML. */
export function snippetPieces(s: string): Array<{ t: string; mark: boolean }> {
  const out: Array<{ t: string; mark: boolean }> = [];
  const unesc = (x: string) => x.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'").replace(/&amp;/g, '&');
  const re = /<mark>([\s\S]*?)<\/mark>/g;
  let last = 0;
  for (const m of s.matchAll(re)) {
    if ((m.index ?? 0) > last) out.push({ t: unesc(s.slice(last, m.index)), mark: false });
    out.push({ t: unesc(m[1]), mark: true });
    last = (m.index ?? 0) + m[0].length;
  }
  if (last < s.length) out.push({ t: unesc(s.slice(last)), mark: false });
  return out;
}

function Snip({ html, fallback }: { html: string | null | undefined; fallback: string }) {
  if (!html) return <>{fallback}</>;
  return <>{snippetPieces(html).map((p, i) => (p.mark ? <mark key={i}>{p.t}</mark> : p.t))}</>;
}

export function rowName(m: Model, e: Email, count: number): string {
  const sent = m.byRole('sent')?.id;
  const who = sent && e.mailboxIds[sent] ? `To ${addrText(e.to, 2) || 'nobody'}` : (addrText(e.from, 2) || 'Unknown sender');
  const bits = [who, e.subject || '(no subject)'];
  if (!e.keywords.$seen) bits.push('unread');
  if (e.keywords.$flagged) bits.push('flagged');
  if (e.hasAttachment) bits.push('has attachment');
  if (count > 1) bits.push(`${count} messages`);
  bits.push(dateText(e.receivedAt));
  return bits.join(', ');
}

export function MessageList(p: ListProps) {
  const { model } = p;
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const geo = { total: model.total, rowHeight: ROW_HEIGHT, viewport, overscan: 8 };
  const win = windowAt(geo, scrollTop);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewport(el.clientHeight || 600));
    ro.observe(el);
    setViewport(el.clientHeight || 600);
    return () => ro.disconnect();
  }, []);
  useEffect(() => { void model.ensure(win.first, win.last); }, [win.first, win.last, model.total, model.ids]);
  // keep the cursor row in view
  useEffect(() => {
    const el = ref.current;
    if (!el || p.cursor < 0) return;
    const t = scrollToRow(geo, p.cursor, el.scrollTop);
    if (t !== el.scrollTop) el.scrollTop = t;
  }, [p.cursor]);
  // a new folder starts at the top
  useEffect(() => { if (ref.current) ref.current.scrollTop = 0; setScrollTop(0); }, [model.mailboxId, model.search, model.acc]);

  // the first rows on screen: a mark for bench/webmail.mjs (sign-in to
  // painted list)
  useEffect(() => {
    if (model.total > 0 && model.ids[0] && performance.getEntriesByName('loft-list-painted').length === 0) {
      requestAnimationFrame(() => performance.mark('loft-list-painted'));
    }
  });
  const rows = [];
  for (let i = win.first; i < win.last; i++) {
    const id = model.ids[i];
    const e = id ? model.emails.get(id) : undefined;
    const top = win.top + (i - win.first) * ROW_HEIGHT;
    if (!e || !id) {
      rows.push(<div role="row" aria-rowindex={i + 1} class="row loading" style={{ top: `${top}px` }} key={`l${i}`} aria-label="Loading">
        <div role="gridcell" class="cell-main"><span class="skeleton" /></div></div>);
      continue;
    }
    const count = model.settings.threads ? (model.threadSize.get(e.threadId) ?? 1) : 1;
    const snip = model.snippets.get(id);
    const sel = p.selected.has(id);
    const sent = model.byRole('sent')?.id;
    const who = sent && e.mailboxIds[sent] ? `To: ${addrText(e.to, 2)}` : addrText(e.from, 2) || 'Unknown sender';
    rows.push(
      <div role="row" aria-rowindex={i + 1} aria-selected={sel ? 'true' : 'false'} key={id}
        aria-label={rowName(model, e, count)}
        class={`row${e.keywords.$seen ? '' : ' unread'}${sel ? ' selected' : ''}${p.cursor === i ? ' cursor' : ''}${p.openId === id ? ' open' : ''}`}
        style={{ top: `${top}px` }} draggable
        tabIndex={p.cursor === i ? 0 : -1} data-index={i}
        onDragStart={(ev) => {
          const ids = p.onDragIds(id);
          ev.dataTransfer?.setData('application/x-loft-emails', JSON.stringify(ids));
          ev.dataTransfer?.setData('text/plain', `${ids.length} message(s)`);
          if (ev.dataTransfer) ev.dataTransfer.effectAllowed = 'move';
        }}
        onClick={(ev) => {
          const me = ev as MouseEvent;
          if (me.shiftKey || me.ctrlKey || me.metaKey) p.onSelect(i, { shift: me.shiftKey, ctrl: me.ctrlKey || me.metaKey });
          else p.onOpen(i);
        }}>
        <div role="gridcell" class="cell-marks" aria-hidden="true">
          {!e.keywords.$seen && <span class="dot" title="Unread" />}
          {e.keywords.$flagged && <Icon name="flag" class="flagged" />}
          {e.hasAttachment && <Icon name="clip" />}
        </div>
        <div role="gridcell" class="cell-main">
          <div class="line1"><span class="who">{who}</span>{count > 1 && <span class="count">{count}</span>}
            <span class="date">{dateText(e.receivedAt)}</span></div>
          <div class="subject"><Snip html={snip?.subject} fallback={e.subject || '(no subject)'} /></div>
          <div class="preview"><Snip html={snip?.preview} fallback={e.preview} /></div>
        </div>
      </div>);
  }
  return (
    <div class="list-scroll" ref={ref} onScroll={(ev) => setScrollTop((ev.currentTarget as HTMLElement).scrollTop)}>
      <div role="grid" aria-label="Messages" aria-rowcount={model.total} aria-multiselectable="true" class="grid"
        style={model.total ? { height: `${contentHeight(geo)}px` } : undefined}>
        {rows}
        {model.total === 0 && (
          <div role="row" class="row empty-row"><div role="gridcell" class={model.listError ? 'empty error' : 'empty'}>
            {model.listError || (model.search ? 'No messages match.' : 'No messages here.')}</div></div>)}
      </div>
    </div>
  );
}
