// The search box's syntax, turned into a JMAP Email/query filter
// (RFC 8621 4.4.1). One box takes free text plus:
//   from:  to:  cc:  subject:  has:attachment  is:unread  is:read
//   is:flagged  is:unflagged  before:YYYY-MM-DD  after:YYYY-MM-DD
//   in:folder (a folder name, "in:Inbox", in:"Old mail")
// A term may be quoted ("exact phrase", from:"Ann Lee"); a leading '-'
// negates it. Anything that does not parse as an operator is free text,
// so no input is an error (a user typing "ratio 1:2" searches for it).
// Pure: no DOM, no network (tests/web unit tests run it under node).

export type Filter = Record<string, unknown>;

export interface ParsedSearch {
  /** JMAP FilterCondition or FilterOperator; null when the box is empty */
  filter: Filter | null;
  /** the free-text words, for highlighting */
  words: string[];
  /** in:folder names that named no folder (shown to the user) */
  unknownFolders: string[];
}

interface Token { neg: boolean; key: string | null; value: string }

/** Splits the box into tokens: [-][key:]value, value maybe "quoted". */
export function tokenize(input: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const s = input;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i])) i++;
    if (i >= s.length) break;
    let neg = false;
    if (s[i] === '-' && i + 1 < s.length && !/\s/.test(s[i + 1])) { neg = true; i++; }
    let key: string | null = null;
    const m = /^([A-Za-z]+):(?=\S)/.exec(s.slice(i));
    if (m) { key = m[1].toLowerCase(); i += m[0].length; }
    let value = '';
    if (s[i] === '"') {
      const end = s.indexOf('"', i + 1);
      value = end < 0 ? s.slice(i + 1) : s.slice(i + 1, end);
      i = end < 0 ? s.length : end + 1;
    } else {
      const start = i;
      while (i < s.length && !/\s/.test(s[i])) i++;
      value = s.slice(start, i);
    }
    out.push({ neg, key, value });
  }
  return out;
}

const DATE = /^(\d{4})-(\d{1,2})-(\d{1,2})$/;

/** "2024-03-01" -> "2024-03-01T00:00:00Z" (UTCDate), or null. */
export function parseDate(v: string): string | null {
  const m = DATE.exec(v.replace(/\//g, '-'));
  if (!m) return null;
  const y = +m[1], mo = +m[2], d = +m[3];
  const t = Date.UTC(y, mo - 1, d);
  const dt = new Date(t);
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d) return null;
  return dt.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Parses the box. folderId maps a folder name (case-insensitive; the
 * caller decides how paths match) to its Mailbox id, or null.
 */
export function parseSearch(input: string, folderId: (name: string) => string | null): ParsedSearch {
  const conds: Filter[] = [];
  const words: string[] = [];
  const unknownFolders: string[] = [];
  for (const t of tokenize(input)) {
    let c: Filter | null = null;
    const v = t.value;
    switch (t.key) {
      case 'from': case 'to': case 'cc': case 'bcc': case 'subject': case 'body':
        if (v) c = { [t.key]: v };
        if (v && t.key !== 'body' && !t.neg) words.push(v);
        break;
      case 'has':
        if (v.toLowerCase() === 'attachment' || v.toLowerCase() === 'attachments') c = { hasAttachment: true };
        break;
      case 'is': {
        const w = v.toLowerCase();
        if (w === 'unread') c = { notKeyword: '$seen' };
        else if (w === 'read' || w === 'seen') c = { hasKeyword: '$seen' };
        else if (w === 'flagged' || w === 'starred') c = { hasKeyword: '$flagged' };
        else if (w === 'unflagged') c = { notKeyword: '$flagged' };
        else if (w === 'answered' || w === 'replied') c = { hasKeyword: '$answered' };
        else if (w === 'draft') c = { hasKeyword: '$draft' };
        break;
      }
      case 'before': { const d = parseDate(v); if (d) c = { before: d }; break; }
      case 'after': { const d = parseDate(v); if (d) c = { after: d }; break; }
      case 'in': {
        const id = folderId(v);
        if (id) c = { inMailbox: id };
        else { unknownFolders.push(v); c = { inMailbox: '-unknown-folder-' }; }
        break;
      }
      default:
        break;
    }
    if (c === null) {
      // not an operator: free text, the token as typed
      const text = t.key !== null ? `${t.key}:${v}` : v;
      if (!text) continue;
      c = { text };
      if (!t.neg) words.push(text);
    }
    conds.push(t.neg ? { operator: 'NOT', conditions: [c] } : c);
  }
  let filter: Filter | null = null;
  if (conds.length === 1) filter = conds[0];
  else if (conds.length > 1) filter = { operator: 'AND', conditions: conds };
  return { filter, words, unknownFolders };
}

/** Whether a parsed filter names a folder itself (then the list is not
 * limited to the folder being shown). */
export function namesFolder(f: Filter | null): boolean {
  if (!f) return false;
  if ('inMailbox' in f) return true;
  const cs = (f as { conditions?: Filter[] }).conditions;
  return Array.isArray(cs) && cs.some((c) => namesFolder(c));
}
