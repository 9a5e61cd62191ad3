// Compose (a dialog in the page). Each draft save is ONE Email/set that
// creates the new version in Drafts and destroys the previous one, so the
// server holds exactly one copy whatever happens (kill -9 included).
// Drafts save 3 s after the last keystroke and on close; the draft also
// lives in sessionStorage so an expired session (sign-in comes back) or a
// reload loses nothing. Send saves, then the app waits out the undo window
// and submits with EmailSubmission/set + onSuccessUpdateEmail (to Sent).
import { useEffect, useRef, useState } from 'preact/hooks';
import DOMPurify from 'dompurify';
import type { Model, Addr } from './model';
import { describeErr } from './model';
import { errorText, type Args } from './jmap';
import { sizeText, type FullEmail } from './reader';
import { safeFileName } from './sanitize';

export interface Identity { id: string; name: string; email: string; textSignature: string; htmlSignature: string; replyTo: Addr[] | null; bcc: Addr[] | null }

export interface Draft {
  key: string;                 // stable across saves (sessionStorage)
  draftId: string | null;      // the Email now holding it
  identityId: string;
  to: string; cc: string; bcc: string; subject: string;
  html: boolean; body: string;
  attachments: Array<{ name: string; type: string; size: number; blobId: string }>;
  inReplyTo: string[] | null; references: string[] | null;
  replyToId: string | null;    // the Email replied to ($answered on send)
  replyAccountId?: string;     // its account, when not the user's own (Shared with me)
}

export function parseAddrs(s: string): Addr[] {
  const out: Addr[] = [];
  for (const raw of s.split(/[,;\n]/)) {
    const t = raw.trim();
    if (!t) continue;
    const m = /^(.*?)\s*<([^<>\s]+@[^<>\s]+)>$/.exec(t);
    if (m) out.push({ name: m[1].replace(/^"|"$/g, '').trim() || null, email: m[2] });
    else out.push({ name: null, email: t });
  }
  return out;
}
export function addrsText(a: Addr[] | null | undefined): string {
  return (a ?? []).map((x) => (x.name ? `${x.name.replace(/[<>",]/g, '')} <${x.email}>` : x.email)).join(', ');
}
const validAddr = (a: Addr) => /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(a.email);

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
export function textToHtml(s: string): string {
  return escapeHtml(s).replace(/\n/g, '<br>');
}
export function htmlToText(html: string): string {
  const d = new DOMParser().parseFromString(DOMPurify.sanitize(html), 'text/html');
  d.querySelectorAll('br').forEach((b) => b.replaceWith('\n'));
  d.querySelectorAll('p,div,li,blockquote,h1,h2,h3').forEach((b) => b.append('\n'));
  return (d.body.textContent ?? '').replace(/\n{3,}/g, '\n\n').trimEnd();
}

/** A new draft replying to / forwarding e. */
export function draftFrom(mode: 'reply' | 'replyall' | 'forward' | 'forwardatt', e: FullEmail, me: string[], ident: Identity | undefined,
  html: boolean, quoteText: string): Draft {
  const mine = (a: Addr) => me.includes(a.email.toLowerCase());
  let to: Addr[] = [], cc: Addr[] = [];
  if (mode !== 'forward') {
    to = (e.replyTo && e.replyTo.length ? e.replyTo : e.from) ?? [];
    if (mode === 'replyall') {
      cc = [...(e.to ?? []), ...(e.cc ?? [])].filter((a) => !mine(a) && !to.some((t) => t.email === a.email));
    }
  }
  const subj = e.subject || '';
  if (mode === 'forwardatt') {
    // the original, whole, as a message/rfc822 attachment (RFC 2046 5.2.1)
    return {
      key: `d${Date.now()}${Math.random().toString(36).slice(2, 8)}`, draftId: null, identityId: ident?.id ?? '',
      to: '', cc: '', bcc: '', subject: /^fwd:/i.test(subj) ? subj : `Fwd: ${subj}`, html, body: withSignature('', ident, html),
      attachments: [{ name: safeFileName(`${subj || 'message'}.eml`), type: 'message/rfc822', size: e.size, blobId: e.blobId }],
      inReplyTo: null, references: null, replyToId: null,
    };
  }
  const prefix = mode === 'forward' ? 'Fwd: ' : 'Re: ';
  const subject = new RegExp(`^${prefix.trim()}`, 'i').test(subj) ? subj : prefix + subj;
  const when = new Date(e.sentAt || e.receivedAt).toLocaleString();
  const who = e.from?.[0] ? (e.from[0].name || e.from[0].email) : 'someone';
  const quotedText = quoteText.split('\n').map((l) => '> ' + l).join('\n');
  let body: string;
  if (mode === 'forward') {
    const head = `---------- Forwarded message ----------\nFrom: ${addrsText(e.from)}\nDate: ${when}\nSubject: ${subj}\nTo: ${addrsText(e.to)}\n\n`;
    body = html ? `<p><br></p><p>${textToHtml(head)}</p><blockquote>${textToHtml(quoteText)}</blockquote>` : `\n\n${head}${quoteText}`;
  } else {
    body = html ? `<p><br></p><p>On ${escapeHtml(when)}, ${escapeHtml(who)} wrote:</p><blockquote>${textToHtml(quoteText)}</blockquote>`
      : `\n\nOn ${when}, ${who} wrote:\n${quotedText}`;
  }
  body = withSignature(body, ident, html);
  const refs = [...(e.references ?? []), ...(e.messageId ?? [])];
  return {
    key: `d${Date.now()}${Math.random().toString(36).slice(2, 8)}`, draftId: null, identityId: ident?.id ?? '',
    to: addrsText(to), cc: addrsText(cc), bcc: '', subject, html, body,
    attachments: mode === 'forward'
      ? e.attachments.filter((a) => a.blobId).map((a) => ({ name: a.name || 'attachment', type: a.type, size: a.size, blobId: a.blobId! }))
      : [],
    inReplyTo: mode === 'forward' ? null : e.messageId, references: mode === 'forward' ? null : (refs.length ? refs : null),
    replyToId: mode === 'forward' ? null : e.id,
  };
}

export function withSignature(body: string, ident: Identity | undefined, html: boolean): string {
  if (!ident) return body;
  if (html && (ident.htmlSignature || ident.textSignature)) {
    const sig = ident.htmlSignature ? DOMPurify.sanitize(ident.htmlSignature) : textToHtml(ident.textSignature);
    return `<p><br></p><div class="signature">-- <br>${sig}</div>` + body;
  }
  if (!html && ident.textSignature) return `\n\n-- \n${ident.textSignature}` + body;
  return body;
}

export function emptyDraft(ident: Identity | undefined, html: boolean): Draft {
  return { key: `d${Date.now()}${Math.random().toString(36).slice(2, 8)}`, draftId: null, identityId: ident?.id ?? '',
    to: '', cc: '', bcc: '', subject: '', html, body: withSignature('', ident, html), attachments: [],
    inReplyTo: null, references: null, replyToId: null };
}

/** The Email/set create object for a draft. */
export function draftEmail(d: Draft, ident: Identity | undefined, draftsId: string): Args {
  const e: Args = {
    mailboxIds: { [draftsId]: true }, keywords: { $draft: true, $seen: true },
    from: ident ? [{ name: ident.name || null, email: ident.email }] : undefined,
    to: parseAddrs(d.to), cc: parseAddrs(d.cc), bcc: parseAddrs(d.bcc), subject: d.subject,
  };
  if (ident?.replyTo?.length) e.replyTo = ident.replyTo;
  if (d.inReplyTo) e.inReplyTo = d.inReplyTo;
  if (d.references) e.references = d.references;
  const text = d.html ? htmlToText(d.body) : d.body;
  if (d.html) {
    const html = `<!doctype html><html><body>${DOMPurify.sanitize(d.body)}</body></html>`;
    e.bodyValues = { t: { value: text }, h: { value: html } };
    e.textBody = [{ partId: 't', type: 'text/plain' }];
    e.htmlBody = [{ partId: 'h', type: 'text/html' }];
  } else {
    e.bodyValues = { t: { value: text } };
    e.textBody = [{ partId: 't', type: 'text/plain' }];
  }
  if (d.attachments.length) {
    e.attachments = d.attachments.map((a) => ({ blobId: a.blobId, type: a.type, name: a.name, disposition: 'attachment' }));
  }
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return e;
}

interface Props {
  model: Model;
  initial: Draft;
  identities: Identity[];
  suggestions: string[];
  onClose: (saved: boolean) => void;
  onSend: (d: Draft, emailId: string) => void;
  notify: (t: string) => void;
}

export const DRAFT_STORE = 'loft-open-draft';

export function Compose({ model, initial, identities, suggestions, onClose, onSend, notify }: Props) {
  const [d, setD] = useState<Draft>(initial);
  const [status, setStatus] = useState('');
  const [uploads, setUploads] = useState<Array<{ key: number; name: string; done: number; total: number; error?: string }>>([]);
  const [showCcBcc, setShowCcBcc] = useState(!!(initial.cc || initial.bcc));
  const [dragOver, setDragOver] = useState(false);
  const dref = useRef(d);
  dref.current = d;
  const dirty = useRef(false);
  const saving = useRef<Promise<string | null> | null>(null);
  const timer = useRef<number | undefined>(undefined);
  const editor = useRef<HTMLDivElement>(null);
  const j = model.j;

  useEffect(() => {
    if (editor.current && d.html) editor.current.innerHTML = DOMPurify.sanitize(initial.body);
    return () => window.clearTimeout(timer.current);
  }, []);
  useEffect(() => { try { sessionStorage.setItem(DRAFT_STORE, JSON.stringify(d)); } catch { /* full */ } }, [d]);

  const change = (patch: Partial<Draft>) => {
    setD((x) => ({ ...x, ...patch }));
    dirty.current = true;
    setStatus('');
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => { void save(); }, 3000);
  };

  /** Saves when changed; returns the Email id holding the draft. */
  const save = async (force = false): Promise<string | null> => {
    if (saving.current) await saving.current;
    if (!dirty.current && !force && dref.current.draftId) return dref.current.draftId;
    const cur = dref.current;
    const drafts = model.byRole('drafts');
    if (!drafts) { notify('There is no Drafts folder.'); return null; }
    const ident = identities.find((i) => i.id === cur.identityId) ?? identities[0];
    dirty.current = false;
    setStatus('Saving…');
    const p = (async () => {
      try {
        const r = await j.one('Email/set', {
          create: { draft: draftEmail(cur, ident, drafts.id) },
          destroy: cur.draftId ? [cur.draftId] : [],
        });
        const nc = (r.notCreated ?? {}) as Record<string, Args>;
        if (nc.draft) throw new Error(errorText(nc.draft));
        const id = String(((r.created as Record<string, Args>).draft).id);
        dref.current = { ...dref.current, draftId: id };
        setD((x) => ({ ...x, draftId: id }));
        setStatus(`Draft saved at ${new Date().toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}`);
        return id;
      } catch (e) {
        dirty.current = true;
        setStatus(`Draft not saved: ${describeErr(e)}`);
        return null;
      }
    })();
    saving.current = p;
    const id = await p;
    saving.current = null;
    return id;
  };

  const addFiles = async (files: FileList | File[]) => {
    for (const f of Array.from(files)) {
      const key = Math.random();
      setUploads((u) => [...u, { key, name: f.name, done: 0, total: f.size }]);
      try {
        const r = await j.upload(f, (done, total) =>
          setUploads((u) => u.map((x) => (x.key === key ? { ...x, done, total } : x))));
        setUploads((u) => u.filter((x) => x.key !== key));
        const cur = dref.current;
        change({ attachments: [...cur.attachments, { name: safeFileName(f.name), type: f.type || r.type || 'application/octet-stream', size: f.size, blobId: r.blobId }] });
      } catch (e) {
        setUploads((u) => u.map((x) => (x.key === key ? { ...x, error: describeErr(e) } : x)));
      }
    }
  };

  const send = async () => {
    const cur = dref.current;
    const rcpts = [...parseAddrs(cur.to), ...parseAddrs(cur.cc), ...parseAddrs(cur.bcc)];
    if (!rcpts.length) { setStatus('Add at least one recipient.'); return; }
    const bad = rcpts.filter((a) => !validAddr(a));
    if (bad.length) { setStatus(`Not an email address: ${bad.map((a) => a.email).join(', ')}`); return; }
    if (uploads.some((u) => !u.error)) { setStatus('Wait for the attachments to finish uploading.'); return; }
    const id = await save(true);
    if (!id) return;
    try { sessionStorage.removeItem(DRAFT_STORE); } catch { /* */ }
    onSend(dref.current, id);
  };

  const close = async () => {
    window.clearTimeout(timer.current);
    const empty = !d.to && !d.cc && !d.bcc && !d.subject && !(d.html ? htmlToText(d.body) : d.body).trim() && !d.attachments.length;
    let saved = false;
    if (!(empty && !d.draftId)) saved = !!(await save());
    try { sessionStorage.removeItem(DRAFT_STORE); } catch { /* */ }
    onClose(saved);
  };

  const discard = async () => {
    window.clearTimeout(timer.current);
    if (saving.current) await saving.current;
    const id = dref.current.draftId;
    try {
      if (id) await j.one('Email/set', { destroy: [id] });
      try { sessionStorage.removeItem(DRAFT_STORE); } catch { /* */ }
      onClose(false);
    } catch (e) { setStatus(describeErr(e)); }
  };

  const exec = (cmd: string, arg?: string) => {
    editor.current?.focus();
    document.execCommand(cmd, false, arg);
    change({ body: editor.current?.innerHTML ?? '' });
  };
  const toggleFormat = () => {
    if (d.html) change({ html: false, body: htmlToText(editor.current?.innerHTML ?? d.body) });
    else {
      const html = textToHtml(d.body);
      change({ html: true, body: html });
      setTimeout(() => { if (editor.current) editor.current.innerHTML = html; }, 0);
    }
  };

  return (
    <div class="compose" role="dialog" aria-label={d.subject ? `Compose: ${d.subject}` : 'New message'}
      onKeyDown={(e) => { if (e.key === 'Escape') { e.stopPropagation(); void close(); } if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void send(); }}
      onDragOver={(e) => { if (e.dataTransfer?.types.includes('Files')) { e.preventDefault(); setDragOver(true); } }}
      onDragLeave={() => setDragOver(false)}
      onDrop={(e) => { if (e.dataTransfer?.files.length) { e.preventDefault(); setDragOver(false); void addFiles(e.dataTransfer.files); } }}>
      <div class="compose-head">
        <h2>{d.subject || 'New message'}</h2>
        <button type="button" onClick={() => void close()}>Close</button>
      </div>
      <datalist id="addr-suggest">{suggestions.map((s) => <option key={s} value={s} />)}</datalist>
      <div class="compose-fields">
        {identities.length > 0 && (
          <label class="field"><span>From</span>
            <select value={d.identityId} onChange={(e) => change({ identityId: (e.target as HTMLSelectElement).value })}>
              {identities.map((i) => <option key={i.id} value={i.id}>{i.name ? `${i.name} <${i.email}>` : i.email}</option>)}
            </select></label>)}
        <label class="field"><span>To</span>
          <input type="text" list="addr-suggest" autocomplete="off" value={d.to} onInput={(e) => change({ to: (e.target as HTMLInputElement).value })} /></label>
        {!showCcBcc && <button type="button" class="link" onClick={() => setShowCcBcc(true)}>Add Cc and Bcc</button>}
        {showCcBcc && <>
          <label class="field"><span>Cc</span>
            <input type="text" list="addr-suggest" autocomplete="off" value={d.cc} onInput={(e) => change({ cc: (e.target as HTMLInputElement).value })} /></label>
          <label class="field"><span>Bcc</span>
            <input type="text" list="addr-suggest" autocomplete="off" value={d.bcc} onInput={(e) => change({ bcc: (e.target as HTMLInputElement).value })} /></label>
        </>}
        <label class="field"><span>Subject</span>
          <input type="text" value={d.subject} onInput={(e) => change({ subject: (e.target as HTMLInputElement).value })} /></label>
      </div>
      <div class="compose-tools" role="toolbar" aria-label="Formatting">
        {d.html && <>
          <button type="button" onClick={() => exec('bold')} aria-label="Bold"><b>B</b></button>
          <button type="button" onClick={() => exec('italic')} aria-label="Italic"><i>I</i></button>
          <button type="button" onClick={() => exec('insertUnorderedList')} aria-label="Bulleted list">•</button>
          <button type="button" onClick={() => { const u = prompt('Link address'); if (u && /^(https?:|mailto:)/i.test(u)) exec('createLink', u); }} aria-label="Insert link">🔗</button>
        </>}
        <button type="button" onClick={toggleFormat}>{d.html ? 'Plain text' : 'Rich text'}</button>
        <label class="file-btn">Attach files<input type="file" multiple onChange={(e) => { const f = (e.target as HTMLInputElement).files; if (f) void addFiles(f); (e.target as HTMLInputElement).value = ''; }} /></label>
      </div>
      {d.html
        ? <div class={`editor${dragOver ? ' drop' : ''}`} ref={editor} contentEditable role="textbox" aria-multiline="true" aria-label="Message body"
            tabIndex={0} onInput={() => change({ body: editor.current?.innerHTML ?? '' })} />
        : <textarea class={`editor${dragOver ? ' drop' : ''}`} aria-label="Message body" value={d.body}
            onInput={(e) => change({ body: (e.target as HTMLTextAreaElement).value })} />}
      {(d.attachments.length > 0 || uploads.length > 0) && (
        <ul class="attachments" aria-label="Attached files">
          {d.attachments.map((a, i) => <li key={a.blobId + i}>{a.name} <span class="muted">({sizeText(a.size)})</span>
            <button type="button" class="link" onClick={() => change({ attachments: d.attachments.filter((_, k) => k !== i) })}
              aria-label={`Remove ${a.name}`}>Remove</button></li>)}
          {uploads.map((u) => <li key={u.key}>{u.name}{' '}
            {u.error ? <span class="error">{u.error}</span>
              : <progress max={u.total || 1} value={u.done} aria-label={`Uploading ${u.name}`} />}</li>)}
        </ul>)}
      <div class="compose-foot">
        <button type="button" class="primary" onClick={() => void send()}>Send</button>
        <button type="button" onClick={() => void discard()}>Discard draft</button>
        <span class="muted" aria-live="polite">{status}</span>
      </div>
    </div>
  );
}
