// The reading pane (region "Message"): headers, the body, attachments,
// the thread, source and headers on request. HTML bodies are sanitised
// (sanitize.ts), uploaded as the user's own blob and shown in a
// sandboxed iframe from /jmap/frame/ under a CSP of their own: no script
// runs, nothing remote loads until "Load remote content".
import { useEffect, useState } from 'preact/hooks';
import type { Model, Addr } from './model';
import { addrText, describeErr } from './model';
import { sanitizeHtml, linkify, safeFileName } from './sanitize';
import { pick, CAP } from './jmap';

export const FULL_PROPS = ['id', 'blobId', 'threadId', 'mailboxIds', 'keywords', 'from', 'to', 'cc', 'bcc',
  'replyTo', 'sender', 'subject', 'sentAt', 'receivedAt', 'messageId', 'inReplyTo', 'references', 'size',
  'hasAttachment', 'preview', 'textBody', 'htmlBody', 'attachments', 'bodyValues', 'bodyStructure'];
export const MAX_BODY = 512 * 1024;

export interface BodyPart { partId: string | null; blobId: string | null; size: number; name: string | null;
  type: string; charset: string | null; disposition: string | null; cid: string | null; subParts?: BodyPart[] }
export interface FullEmail {
  id: string; blobId: string; threadId: string; mailboxIds: Record<string, boolean>; keywords: Record<string, boolean>;
  from: Addr[] | null; to: Addr[] | null; cc: Addr[] | null; bcc: Addr[] | null; replyTo: Addr[] | null;
  subject: string | null; sentAt: string | null; receivedAt: string; messageId: string[] | null;
  inReplyTo: string[] | null; references: string[] | null; size: number; hasAttachment: boolean; preview: string;
  textBody: BodyPart[]; htmlBody: BodyPart[]; attachments: BodyPart[];
  bodyValues: Record<string, { value: string; isTruncated: boolean; isEncodingProblem: boolean }>;
}

export function sizeText(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function Recipients({ label, list }: { label: string; list: Addr[] | null }) {
  const [all, setAll] = useState(false);
  if (!list || !list.length) return null;
  const shown = all ? list : list.slice(0, 10);
  return (
    <div class="hdr"><span class="hdr-label">{label}</span>
      <span class="hdr-value">{shown.map((a, i) => <span key={i} title={a.email}>{i ? ', ' : ''}{a.name ? `${a.name} <${a.email}>` : a.email}</span>)}
        {list.length > 10 && !all && <> <button type="button" class="link" onClick={() => setAll(true)}>Show all {list.length.toLocaleString()} recipients</button></>}
      </span></div>
  );
}

function TextBody({ text }: { text: string }) {
  return <div class="text-body">{linkify(text).map((p, i) => p.href
    ? <a key={i} href={p.href} target="_blank" rel="noopener noreferrer">{p.text}</a> : p.text)}</div>;
}

async function blobToDataUrl(b: Blob): Promise<string> {
  return await new Promise((res, rej) => {
    const r = new FileReader();
    r.onload = () => res(String(r.result));
    r.onerror = () => rej(r.error);
    r.readAsDataURL(b);
  });
}

interface Props {
  model: Model;
  emailId: string;
  onLoaded: (e: FullEmail) => void;
  onForwardAttachment: () => void;
  onOpenId: (id: string) => void;
  onBack: () => void;
  notify: (t: string) => void;
}

export function Reader({ model, emailId, onLoaded, onForwardAttachment, onOpenId, onBack, notify }: Props) {
  const [email, setEmail] = useState<FullEmail | null>(null);
  const [err, setErr] = useState('');
  const [thread, setThread] = useState<Array<{ id: string; from: Addr[] | null; receivedAt: string; preview: string; keywords: Record<string, boolean> }>>([]);
  const [frame, setFrame] = useState<{ src: string; blocked: number } | null>(null);
  const [remote, setRemote] = useState(false);
  const [full, setFull] = useState(false);
  const [fullValues, setFullValues] = useState<FullEmail['bodyValues'] | null>(null);
  const [dialog, setDialog] = useState<null | { title: string; text?: string; rows?: Array<[string, string]> }>(null);
  const j = model.j;

  useEffect(() => {
    let live = true;
    setEmail(null); setErr(''); setFrame(null); setRemote(false); setFull(false); setFullValues(null); setThread([]);
    (async () => {
      const rs = await j.call([
        ['Email/get', { accountId: model.acc, ids: [emailId], properties: FULL_PROPS, fetchHTMLBodyValues: true,
          fetchTextBodyValues: true, maxBodyValueBytes: MAX_BODY }, 'e'],
        ['Thread/get', { accountId: model.acc, '#ids': { resultOf: 'e', name: 'Email/get', path: '/list/*/threadId' } }, 't'],
        ['Email/get', { accountId: model.acc, '#ids': { resultOf: 't', name: 'Thread/get', path: '/list/*/emailIds' },
          properties: ['id', 'from', 'receivedAt', 'preview', 'keywords'] }, 'te'],
      ]);
      const e = (pick(rs, 'e', 'Email/get').list as FullEmail[])[0];
      if (!live) return;
      if (!e) { setErr('This message no longer exists (deleted on another device?).'); return; }
      setEmail(e);
      onLoaded(e);
      try { setThread(pick(rs, 'te', 'Email/get').list as typeof thread); } catch { /* no thread */ }
    })().catch((x) => live && setErr(describeErr(x)));
    return () => { live = false; };
  }, [emailId]);

  const sender = email?.from?.[0]?.email?.toLowerCase() ?? '';
  const allowed = !!sender && model.settings.remoteContentSenders.some((s) => s === sender || (s.startsWith('@') && sender.endsWith(s)));
  const allowRemote = remote || allowed;

  // "Show all": the whole body values, once
  useEffect(() => {
    if (!full || !email || fullValues) return;
    model.one('Email/get', { ids: [email.id], properties: ['bodyValues'], fetchAllBodyValues: true })
      .then((r) => setFullValues((r.list as FullEmail[])[0]?.bodyValues ?? {}))
      .catch((x) => notify(describeErr(x)));
  }, [full, email]);
  const values = fullValues ?? email?.bodyValues ?? {};

  // the HTML body, when there is one
  useEffect(() => {
    if (!email) return;
    const hp = email.htmlBody.find((p) => p.type === 'text/html');
    if (!hp || !hp.partId) { setFrame(null); return; }
    let live = true;
    (async () => {
      const html = values[hp.partId!]?.value ?? '';
      // cid: parts, as data: URLs (the frame has no cookie of ours)
      const cid: Record<string, string> = {};
      const parts = [...email.attachments, ...email.htmlBody];
      for (const p of parts) {
        if (!p.cid || !p.blobId || !p.type.startsWith('image/') || p.size > 5 * 1024 * 1024) continue;
        try {
          const r = await j.fetch(j.downloadUrl(p.blobId, p.name || 'image', p.type, false, model.acc));
          if (r.ok) cid[p.cid.replace(/^<|>$/g, '')] = await blobToDataUrl(await r.blob());
        } catch { /* shown as missing */ }
      }
      const s = sanitizeHtml(html, { allowRemote, cid });
      const up = await j.upload(new Blob([s.html], { type: 'text/html' }), () => {});
      if (!live) return;
      const caps = j.session.accounts[j.accountId]?.accountCapabilities?.[CAP.loft] ?? {};
      const tmpl = String(caps.frameUrl ?? '/jmap/frame/{accountId}/{blobId}');
      const src = tmpl.replace('{accountId}', encodeURIComponent(j.accountId)).replace('{blobId}', encodeURIComponent(up.blobId));
      setFrame({ src: src + (allowRemote ? '?remote=1' : ''), blocked: s.remoteBlocked });
    })().catch((x) => live && setErr(describeErr(x)));
    return () => { live = false; };
  }, [email, allowRemote, fullValues]);

  if (err) return <section class="reader" role="region" aria-label="Message"><p class="error">{err}</p></section>;
  if (!email) return <section class="reader" role="region" aria-label="Message" aria-busy="true"><p class="muted">Loading…</p></section>;

  const tp = email.textBody.find((p) => p.type === 'text/plain' || p.type === 'text/html');
  const hasHtml = email.htmlBody.some((p) => p.type === 'text/html');
  const truncated = !fullValues && Object.values(email.bodyValues).some((v) => v.isTruncated);
  const text = tp?.partId ? values[tp.partId]?.value ?? '' : '';
  const atts = email.attachments.filter((a) => !(a.cid && hasHtml && a.disposition !== 'attachment' && a.type.startsWith('image/')));

  const showSource = async () => {
    try {
      const r = await j.fetch(j.downloadUrl(email.blobId, 'message.eml', 'message/rfc822', false, model.acc));
      const t = await r.text();
      setDialog({ title: 'Message source', text: t.length > 2_000_000 ? t.slice(0, 2_000_000) + '\n[… cut; download the source for all of it]' : t });
    } catch (x) { notify(describeErr(x)); }
  };
  const showHeaders = async () => {
    try {
      const r = await model.one('Email/get', { ids: [email.id], properties: ['headers'] });
      const hs = ((r.list as Array<{ headers: Array<{ name: string; value: string }> }>)[0]?.headers) ?? [];
      setDialog({ title: 'Message headers', rows: hs.map((h) => [h.name, h.value.trim()]) });
    } catch (x) { notify(describeErr(x)); }
  };
  const remember = async () => {
    if (!sender) return;
    try {
      // the user's own settings, also for a shared folder's message
      await (model.settingsFrom ?? model).saveSettings({ remoteContentSenders: [...model.settings.remoteContentSenders, sender] });
      notify(`Remote content from ${sender} will load from now on.`);
    } catch (x) { notify(describeErr(x)); }
  };

  return (
    <section class="reader" role="region" aria-label="Message">
      <div class="reader-head">
        <button type="button" class="icon-btn back" onClick={onBack} aria-label="Back to list">‹</button>
        <h2 class="subject">{email.subject || '(no subject)'}</h2>
      </div>
      <div class="headers">
        <Recipients label="From" list={email.from} />
        <Recipients label="To" list={email.to} />
        <Recipients label="Cc" list={email.cc} />
        <Recipients label="Bcc" list={email.bcc} />
        <div class="hdr"><span class="hdr-label">Date</span><span class="hdr-value">{new Date(email.sentAt || email.receivedAt).toLocaleString()}</span></div>
      </div>
      <div class="reader-tools">
        <button type="button" class="link" onClick={showSource}>View source</button>
        <button type="button" class="link" onClick={showHeaders}>Show headers</button>
        <button type="button" class="link" onClick={onForwardAttachment}>Forward as attachment</button>
        <a class="link" href={j.downloadUrl(email.blobId, safeFileName((email.subject || 'message') + '.eml'), 'message/rfc822', true, model.acc)}>Download</a>
      </div>
      {frame && frame.blocked > 0 && !allowRemote && (
        <div class="banner" role="note">
          <span>Remote content is blocked to protect your privacy.</span>
          <button type="button" onClick={() => setRemote(true)}>Load remote content</button>
          {sender && <button type="button" onClick={remember}>Always load from {sender}</button>}
        </div>)}
      {truncated && <div class="banner" role="note"><span>This message is long; only its start is shown.</span>
        <button type="button" onClick={() => setFull(true)} disabled={full}>{full ? 'Loading all of it…' : 'Show all'}</button></div>}
      {hasHtml
        ? (frame ? <iframe class="mail-frame" title="Message content" src={frame.src}
            sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" />
          : <p class="muted">Loading…</p>)
        : <TextBody text={text || email.preview || ''} />}
      {atts.length > 0 && (
        <ul class="attachments" aria-label="Attachments">
          {atts.map((a, i) => {
            const name = safeFileName(a.name || `attachment-${i + 1}`);
            return <li key={i}><a href={a.blobId ? j.downloadUrl(a.blobId, name, a.type, true, model.acc) : undefined} download={name}>
              {name}</a> <span class="muted">({sizeText(a.size)}, {a.type})</span></li>;
          })}
        </ul>)}
      {thread.length > 1 && (
        <nav class="thread" aria-label="Conversation">
          <h3>Conversation ({thread.length})</h3>
          <ul>{thread.map((t) => <li key={t.id}>
            <button type="button" class={`link${t.id === email.id ? ' current' : ''}`} aria-current={t.id === email.id ? 'true' : undefined}
              onClick={() => onOpenId(t.id)}>{addrText(t.from, 1) || 'Unknown'}, {new Date(t.receivedAt).toLocaleString()}: {t.preview.slice(0, 80)}</button>
          </li>)}</ul>
        </nav>)}
      {dialog && (
        <div class="modal-back" onClick={() => setDialog(null)}>
          <div class="modal wide" role="dialog" aria-modal="true" aria-label={dialog.title} onClick={(e) => e.stopPropagation()}>
            <div class="modal-head"><h2>{dialog.title}</h2><button type="button" onClick={() => setDialog(null)}>Close</button></div>
            {dialog.text !== undefined && <pre class="source">{dialog.text}</pre>}
            {dialog.rows && <table class="headers-table"><tbody>{dialog.rows.map(([n, v], i) => <tr key={i}><th scope="row">{n}</th><td>{v}</td></tr>)}</tbody></table>}
          </div>
        </div>)}
    </section>
  );
}
