// HTML mail, made safe to show. DOMPurify (npm, well kept) removes every
// script, event handler, form, frame, meta refresh, base and object; our
// hooks then decide what may load:
//  - links keep http(s) and mailto only, and open in a new tab;
//  - images: cid: parts (RFC 2392) become the data: URLs the caller gives;
//    small data: images stay; remote ones (http, https, protocol-relative,
//    in src, srcset, background, poster, and url() in CSS) are removed
//    unless the user allowed remote content, and counted, so the page can
//    offer "Load remote content";
//  - CSS: @import and url() to remote places go (unless allowed), and
//    position:fixed/sticky becomes static, so a mail cannot lay a fake
//    screen over its own frame.
// The result is a whole document shown in a sandboxed iframe without
// allow-scripts, under its own CSP (jmap-loft.c): two walls, not one.
import DOMPurify from 'dompurify';

export interface SanitizeOptions {
  allowRemote: boolean;
  /** Content-ID (without <>) -> data: URL */
  cid?: Record<string, string>;
  /** largest data: URL kept in the mail (bytes of the URL) */
  maxDataUrl?: number;
  dark?: boolean;
}

export interface Sanitized {
  html: string;          // a whole document
  remoteBlocked: number; // remote resources removed
  cidMissing: number;
}

const REMOTE = /^\s*(https?:|\/\/)/i;
const URL_IN_CSS = /url\(\s*(['"]?)(.*?)\1\s*\)/gi;

function cleanCss(css: string, o: SanitizeOptions, count: { remote: number }): string {
  // CSS escapes ("u\\72l(", "\\75rl(") hide url( and expression(: decode
  // them first, so what we match is what the browser would read
  let s = css.replace(/\\([0-9a-fA-F]{1,6})\s?/g, (_m, h: string) => {
    const c = parseInt(h, 16);
    return c > 0 && c < 0x110000 ? String.fromCodePoint(c) : '';
  }).replace(/\\(.)/g, '$1').replace(/\\/g, '');
  s = s.replace(/@import[^;]*;?/gi, () => { count.remote++; return ''; });
  s = s.replace(URL_IN_CSS, (_m, _q, u: string) => {
    const url = u.trim();
    if (/^data:image\//i.test(url) && url.length <= (o.maxDataUrl ?? 2_000_000)) return `url("${url.replace(/"/g, '')}")`;
    if (url.toLowerCase().startsWith('cid:')) {
      const d = o.cid?.[url.slice(4)];
      return d ? `url("${d}")` : 'none';
    }
    if (REMOTE.test(url) && o.allowRemote) return `url("${url.replace(/"/g, '%22')}")`;
    if (REMOTE.test(url)) count.remote++;
    return 'none';
  });
  // image-set("http://...") and the like take bare strings
  s = s.replace(/(["'])\s*(https?:)?\/\/[^"']*\1/gi, (m) => {
    if (o.allowRemote && /^["']\s*https?:/i.test(m)) return m;
    count.remote++;
    return '""';
  });
  s = s.replace(/expression\s*\(|behavior\s*:|-moz-binding\s*:|javascript:/gi, 'x-blocked(');
  s = s.replace(/position\s*:\s*(fixed|sticky)/gi, 'position:static');
  return s;
}

let hooked = false;
let current: { o: SanitizeOptions; count: { remote: number; cidMissing: number } } | null = null;

function srcAllowed(el: Element, attr: string): void {
  const c = current!;
  const v = el.getAttribute(attr);
  if (v === null) return;
  const url = v.trim();
  if (url.toLowerCase().startsWith('cid:')) {
    const id = decodeURIComponent(url.slice(4)).replace(/^<|>$/g, '');
    const d = c.o.cid?.[id];
    if (d) el.setAttribute(attr, d);
    else { el.removeAttribute(attr); c.count.cidMissing++; }
    return;
  }
  if (/^data:image\/(png|gif|jpe?g|webp|bmp)[;,]/i.test(url)) {
    if (url.length > (c.o.maxDataUrl ?? 2_000_000)) el.removeAttribute(attr);
    return;
  }
  if (REMOTE.test(url)) {
    if (c.o.allowRemote && /^\s*https?:/i.test(url)) return;
    if (c.o.allowRemote && /^\s*\/\//.test(url)) { el.setAttribute(attr, 'https:' + url); return; }
    el.removeAttribute(attr);
    c.count.remote++;
    return;
  }
  el.removeAttribute(attr);
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    const c = current;
    if (!c || !(node instanceof Element)) return;
    const el = node as Element;
    const tag = el.tagName.toLowerCase();
    if (el.hasAttribute('href')) {
      const h = (el.getAttribute('href') ?? '').trim();
      if (/^(https?:|mailto:)/i.test(h)) {
        el.setAttribute('target', '_blank');
        el.setAttribute('rel', 'noopener noreferrer');
      } else if (h.startsWith('#')) {
        el.removeAttribute('target');
      } else {
        el.removeAttribute('href');
      }
    }
    for (const a of ['src', 'background', 'poster']) if (el.hasAttribute(a)) srcAllowed(el, a);
    if (el.hasAttribute('srcset')) { el.removeAttribute('srcset'); if (!c.o.allowRemote) c.count.remote++; }
    if (el.hasAttribute('style')) el.setAttribute('style', cleanCss(el.getAttribute('style') ?? '', c.o, c.count));
    if (tag === 'style') el.textContent = cleanCss(el.textContent ?? '', c.o, c.count);
    if (tag === 'img' && !el.hasAttribute('src')) el.setAttribute('alt', el.getAttribute('alt') || '');
  });
  DOMPurify.addHook('uponSanitizeElement', (node, data) => {
    // <style> inside the body is kept (mail needs it) but cleaned above
    if (data.tagName === 'style' && node instanceof Element) node.setAttribute('data-loft', '1');
  });
}

const FORBID_TAGS = ['form', 'input', 'button', 'textarea', 'select', 'option', 'meta', 'base', 'link',
  'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'script', 'noscript', 'template',
  'portal', 'math', 'svg', 'audio', 'video', 'source', 'track', 'dialog', 'canvas'];
const FORBID_ATTR = ['action', 'formaction', 'ping', 'srcdoc', 'xlink:href', 'autofocus', 'contenteditable', 'draggable'];

const BASE_CSS = `html{color-scheme:light}body{margin:0;padding:16px;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#fff;overflow-wrap:anywhere;word-break:break-word}img{max-width:100%;height:auto}table{max-width:100%}pre{white-space:pre-wrap}a{color:#1d4fc4}blockquote{margin:0 0 0 .5em;padding-left:.8em;border-left:3px solid #c8ccd2;color:#444}`;

export function sanitizeHtml(html: string, o: SanitizeOptions): Sanitized {
  installHooks();
  current = { o, count: { remote: 0, cidMissing: 0 } };
  try {
    const body = DOMPurify.sanitize(html, {
      FORBID_TAGS, FORBID_ATTR, ALLOW_DATA_ATTR: false, ADD_ATTR: ['target'],
      ADD_TAGS: ['style'], FORCE_BODY: true, WHOLE_DOCUMENT: false,
      ALLOW_UNKNOWN_PROTOCOLS: false, SANITIZE_DOM: true, SANITIZE_NAMED_PROPS: true,
    }) as unknown as string;
    const doc = `<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><style>${BASE_CSS}</style></head><body>${body}</body></html>`;
    return { html: doc, remoteBlocked: current.count.remote, cidMissing: current.count.cidMissing };
  } finally {
    current = null;
  }
}

/** Plain text with clickable links, as safe DOM-free pieces. */
export type TextPiece = { text: string; href?: string };
const LINK = /\b(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]|mailto:[^\s<>"']+@[^\s<>"'.,;:!?)]+|www\.[^\s<>"']+[^\s<>"'.,;:!?)\]}])/gi;

export function linkify(text: string): TextPiece[] {
  const out: TextPiece[] = [];
  let last = 0;
  for (const m of text.matchAll(LINK)) {
    const i = m.index ?? 0;
    if (i > last) out.push({ text: text.slice(last, i) });
    const t = m[0];
    out.push({ text: t, href: t.toLowerCase().startsWith('www.') ? 'https://' + t : t });
    last = i + t.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** A file name safe to show and to save: bidi controls, path separators
 * and control characters neutralised. */
export function safeFileName(name: string): string {
  let s = (name || 'attachment').normalize('NFC');
  s = s.replace(/[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g, '');
  s = s.replace(/[\u0000-\u001f\u007f/\\:*?"<>|]/g, '_');
  s = s.replace(/^\.+/, '_').trim();
  return s.slice(0, 200) || 'attachment';
}
