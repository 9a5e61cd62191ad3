// The filter editor's rule builder: a rule the user picks from menus
// ("when the subject contains X, move to Y") as Sieve text (RFC 5228,
// fileinto, imap4flags RFC 5232) appended to a script, with the script's
// require line merged so it names every extension the rules use.

export type Field = 'subject' | 'from' | 'to' | 'any';
export type Action = 'fileinto' | 'seen' | 'flag' | 'discard';
export interface Rule { field: Field; text: string; action: Action; folder?: string; stop: boolean }

/** A Sieve quoted string: backslash and double quote escaped. */
export function quote(s: string): string {
  return '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

const NEEDS: Record<Action, string | null> = { fileinto: 'fileinto', seen: 'imap4flags', flag: 'imap4flags', discard: null };

export function ruleText(r: Rule): string {
  const t = quote(r.text);
  const test = r.field === 'subject' ? `header :contains "subject" ${t}`
    : r.field === 'from' ? `address :contains "from" ${t}`
    : r.field === 'to' ? `address :contains ["to", "cc"] ${t}`
    : `anyof (header :contains "subject" ${t}, address :contains ["from", "to", "cc"] ${t})`;
  const act = r.action === 'fileinto' ? `fileinto ${quote(r.folder ?? 'INBOX')};`
    : r.action === 'seen' ? 'addflag "\\\\Seen";'
    : r.action === 'flag' ? 'addflag "\\\\Flagged";'
    : 'discard;';
  return `if ${test} {\n  ${act}${r.stop ? '\n  stop;' : ''}\n}\n`;
}

/** The extensions a script's first require names (none: []). */
export function requires(script: string): string[] {
  const m = /^\s*(?:#[^\n]*\n\s*)*require\s+(\[[^\]]*\]|"[^"]*")\s*;/.exec(script);
  if (!m) return [];
  return [...m[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]);
}

/** script with rule appended and its require line naming what it needs. */
export function addRule(script: string, r: Rule): string {
  if (!r.text.trim()) throw new Error('Say what the rule looks for.');
  if (r.action === 'fileinto' && !r.folder) throw new Error('Choose the folder to move to.');
  const need = NEEDS[r.action];
  let s = script.replace(/\s*$/, '');
  const have = requires(s);
  if (need && !have.includes(need)) {
    const list = [...have, need].map(quote).join(', ');
    const line = `require [${list}];`;
    const re = /^(\s*(?:#[^\n]*\n\s*)*)require\s+(\[[^\]]*\]|"[^"]*")\s*;/;
    s = re.test(s) ? s.replace(re, (_all, lead: string) => `${lead}${line}`) : `${line}\n${s}`;
  }
  return `${s.replace(/\s*$/, '')}${s.trim() ? '\n\n' : ''}${ruleText(r)}`;
}
