// The webmail's data: mailboxes, the message list as a sparse window over
// Email/query, the Email cache, and keeping all of it in step with the
// server. Every change from anywhere (IMAP, POP3, LMTP, another browser)
// arrives as a StateChange on the EventSource, then Mailbox/changes,
// Email/changes and Email/queryChanges bring exactly what moved; only
// cannotCalculateChanges reloads. User actions are applied locally first
// and rolled back when the server refuses.
import { Jmap, JmapError, pick, errorText, trace, type Args, type Invocation } from './jmap';
import { pagesToFetch } from './listwindow';
import { parseSearch, namesFolder, type Filter } from './search';

export interface Mailbox {
  id: string; name: string; parentId: string | null; role: string | null;
  sortOrder: number; totalEmails: number; unreadEmails: number;
  totalThreads: number; unreadThreads: number; isSubscribed: boolean;
  myRights: Record<string, boolean>;
}
export interface Addr { name: string | null; email: string }
export interface Email {
  id: string; threadId: string; mailboxIds: Record<string, boolean>;
  keywords: Record<string, boolean>; from: Addr[] | null; to: Addr[] | null;
  cc?: Addr[] | null; subject: string | null; receivedAt: string; size: number;
  hasAttachment: boolean; preview: string;
}
export interface Settings {
  theme: 'auto' | 'light' | 'dark'; threads: boolean; sort: string; sortAscending: boolean;
  compose: 'html' | 'plain'; undoSendSeconds: number; notifications: boolean;
  remoteContentSenders: string[];
}
export const DEFAULT_SETTINGS: Settings = {
  theme: 'auto', threads: true, sort: 'receivedAt', sortAscending: false, compose: 'html',
  undoSendSeconds: 5, notifications: false, remoteContentSenders: [],
};

export const LIST_PROPS = ['threadId', 'mailboxIds', 'keywords', 'from', 'to', 'subject',
  'receivedAt', 'size', 'hasAttachment', 'preview'];
const PAGE = 100;
const CACHE_MAX = 4000;
export const ROLE_ORDER = ['inbox', 'drafts', 'sent', 'junk', 'trash', 'archive'];

type Listener = () => void;

export class Model {
  j: Jmap;
  mailboxes = new Map<string, Mailbox>();
  emails = new Map<string, Email>();
  threadSize = new Map<string, number>();
  // the webmail's settings are the user's (LoftSettings of their own
  // account): a shared account's model reads them from the user's model
  private ownSettings: Settings = { ...DEFAULT_SETTINGS };
  settingsFrom: Model | null = null;
  get settings(): Settings { return this.settingsFrom ? this.settingsFrom.settings : this.ownSettings; }
  set settings(s: Settings) { this.ownSettings = s; }
  states: Record<string, string> = {};
  // the list
  mailboxId = '';
  search = '';
  searchWords: string[] = [];
  searchNote = '';
  ids: (string | undefined)[] = [];
  total = 0;
  queryState = '';
  listError = '';
  snippets = new Map<string, { subject: string | null; preview: string | null }>();
  private listGen = 0;
  private fetching = new Set<number>();
  private want: [number, number] = [0, 60];
  private listeners = new Set<Listener>();
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  // what the next sync asks for: everything, or the types a push named
  // (a flag change need not ask for Mailboxes or settings)
  private syncAll = false;
  private syncKinds = new Set<string>();
  /** set when an Inbox message arrives that was not there before */
  onNewMail?: (emails: Email[]) => void;
  onError?: (text: string) => void;
  lastAction: { label: string; undo: () => Promise<void> } | null = null;

  /** The account shown: the user's own (acc not given), or another
   * user's that shares folders with them ("Shared with me": the owner's
   * accountId, RFC 8620 1.6.2 isPersonal false). */
  private sharedAcc: string | null;
  get acc(): string { return this.sharedAcc ?? this.j.accountId; }
  get shared(): boolean { return this.sharedAcc !== null; }
  constructor(j: Jmap, acc?: string) { this.j = j; this.sharedAcc = acc ?? null; }

  /** One method on this model's account. */
  one(name: string, args: Args): Promise<Args> { return this.j.one(name, { accountId: this.acc, ...args }); }

  subscribe(f: Listener): () => void { this.listeners.add(f); return () => this.listeners.delete(f); }
  emit(): void { for (const f of this.listeners) f(); }

  // ---- mailboxes ----------------------------------------------------

  byRole(role: string): Mailbox | undefined {
    for (const m of this.mailboxes.values()) if (m.role === role) return m;
    return undefined;
  }

  /** Folders in tree order: roles first (Inbox, Drafts, Sent, Junk,
   * Trash, Archive), then by sortOrder and name; depth for indent. */
  tree(): Array<{ m: Mailbox; depth: number }> {
    const kids = new Map<string | null, Mailbox[]>();
    for (const m of this.mailboxes.values()) {
      const p = m.parentId && this.mailboxes.has(m.parentId) ? m.parentId : null;
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p)!.push(m);
    }
    const rank = (m: Mailbox) => { const i = m.role ? ROLE_ORDER.indexOf(m.role) : -1; return i < 0 ? 99 : i; };
    const out: Array<{ m: Mailbox; depth: number }> = [];
    const walk = (p: string | null, depth: number) => {
      const list = (kids.get(p) ?? []).sort((a, b) => (depth === 0 ? rank(a) - rank(b) : 0)
        || a.sortOrder - b.sortOrder || a.name.localeCompare(b.name));
      for (const m of list) { out.push({ m, depth }); walk(m.id, depth + 1); }
    };
    walk(null, 0);
    return out;
  }

  /** The name to show: "Inbox" for the INBOX. */
  displayName(m: Mailbox): string {
    return m.role === 'inbox' && m.name.toUpperCase() === 'INBOX' ? 'Inbox' : m.name;
  }

  path(id: string): string {
    const parts: string[] = [];
    let m = this.mailboxes.get(id);
    for (let i = 0; m && i < 50; i++) { parts.unshift(m.name); m = m.parentId ? this.mailboxes.get(m.parentId) : undefined; }
    return parts.join('/');
  }

  folderByName(name: string): string | null {
    const n = name.toLowerCase();
    for (const m of this.mailboxes.values()) if (m.role === n) return m.id;
    for (const m of this.mailboxes.values()) if (this.path(m.id).toLowerCase() === n || m.name.toLowerCase() === n) return m.id;
    return null;
  }

  /** What a fast start needs from the last visit (no secrets: ids and
   * settings), per user, in localStorage. */
  static bootKey(user: string): string { return `loft-boot:${user.toLowerCase()}`; }
  saveBoot(user: string): void {
    try {
      localStorage.setItem(Model.bootKey(user), JSON.stringify({ accountId: this.acc,
        inboxId: this.byRole('inbox')?.id ?? '', settings: this.settings }));
    } catch { /* private mode */ }
  }
  static loadBoot(user: string): { accountId: string; inboxId: string; settings: Settings } | null {
    try { return JSON.parse(localStorage.getItem(Model.bootKey(user)) ?? 'null'); } catch { return null; }
  }

  /**
   * The first screen in one request: mailboxes, settings, identities and
   * the Inbox's first rows (with thread sizes), using the account and
   * Inbox ids of the last visit, beside the session fetch. Returns the
   * identities, or null when the guess did not hold (then the caller
   * starts the slow way).
   */
  async fastStart(boot: { accountId: string; inboxId: string; settings: Settings }): Promise<unknown[] | null> {
    const acc = boot.accountId;
    this.j.accountId = acc;  // (the primary model only)
    this.settings = { ...DEFAULT_SETTINGS, ...boot.settings };
    this.mailboxId = boot.inboxId;
    const q = { accountId: acc, ...this.queryArgs(), position: 0, limit: PAGE, calculateTotal: true };
    const rs = await this.j.call([
      ['Mailbox/get', { accountId: acc, ids: null }, 'm'],
      ['LoftSettings/get', { accountId: acc, ids: null }, 's'],
      ['Identity/get', { accountId: acc, ids: null }, 'i'],
      ['Email/query', q, 'q'],
      ['Email/get', { accountId: acc, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPS }, 'g'],
      ['Thread/get', { accountId: acc, '#ids': { resultOf: 'g', name: 'Email/get', path: '/list/*/threadId' } }, 't'],
    ]);
    const m = pick(rs, 'm', 'Mailbox/get');
    this.mailboxes.clear();
    for (const mb of m.list as Mailbox[]) this.mailboxes.set(mb.id, mb);
    this.states.Mailbox = String(m.state);
    const st = pick(rs, 's', 'LoftSettings/get');
    const fresh = (st.list as Settings[])[0];
    this.states.LoftSettings = String(st.state);
    const before = JSON.stringify(this.queryArgs());
    if (fresh) this.settings = { ...DEFAULT_SETTINGS, ...fresh };
    const idents = pick(rs, 'i', 'Identity/get').list as unknown[];
    if (this.byRole('inbox')?.id !== boot.inboxId || JSON.stringify(this.queryArgs()) !== before) {
      this.mailboxId = this.byRole('inbox')?.id ?? '';
      await this.reloadList();
      return idents;
    }
    const qr = pick(rs, 'q', 'Email/query'), g = pick(rs, 'g', 'Email/get');
    this.total = Number(qr.total ?? 0);
    this.queryState = String(qr.queryState);
    this.ids = new Array(this.total);
    (qr.ids as string[]).forEach((id, i) => { this.ids[i] = id; });
    for (const e of g.list as Email[]) this.emails.set(e.id, e);
    this.states.Email = String(g.state);
    try {
      for (const t of pick(rs, 't', 'Thread/get').list as Array<{ id: string; emailIds: string[] }>) this.threadSize.set(t.id, t.emailIds.length);
    } catch { /* counts are decoration */ }
    this.emit();
    return idents;
  }

  async loadMailboxes(): Promise<void> {
    const r = await this.one('Mailbox/get', { ids: null });
    this.mailboxes.clear();
    for (const m of r.list as Mailbox[]) this.mailboxes.set(m.id, m);
    this.states.Mailbox = String(r.state);
  }

  async loadSettings(): Promise<void> {
    if (!this.j.has('https://loft.example/jmap/webmail')) return;
    const r = await this.one('LoftSettings/get', { ids: null });
    const s = (r.list as Settings[])[0];
    if (s) this.settings = { ...DEFAULT_SETTINGS, ...s };
    this.states.LoftSettings = String(r.state);
  }

  async saveSettings(patch: Partial<Settings>): Promise<void> {
    const before = this.settings;
    this.settings = { ...this.settings, ...patch };
    this.emit();
    try {
      const r = await this.one('LoftSettings/set', { update: { singleton: patch } });
      const nu = r.notUpdated as Record<string, Args> | null;
      if (nu && nu.singleton) throw new JmapError('set', errorText(nu.singleton));
    } catch (e) {
      this.settings = before;
      this.emit();
      throw e;
    }
  }

  // ---- the list -------------------------------------------------------

  sortArg(): Args[] {
    const prop = this.settings.sort || 'receivedAt';
    const asc = this.settings.sortAscending;
    const s: Args[] = [{ property: prop, isAscending: asc }];
    if (prop !== 'receivedAt') s.push({ property: 'receivedAt', isAscending: false });
    return s;
  }

  filter(): Filter | null {
    if (this.search.trim()) {
      const p = parseSearch(this.search, (n) => this.folderByName(n));
      this.searchWords = p.words;
      this.searchNote = p.unknownFolders.length ? `No folder named ${p.unknownFolders.join(', ')}.` : '';
      if (!p.filter) return { inMailbox: this.mailboxId };
      if (namesFolder(p.filter)) return p.filter;
      const other = ['trash', 'junk'].map((r) => this.byRole(r)?.id).filter(Boolean);
      return { operator: 'AND', conditions: [p.filter, { inMailboxOtherThan: other }] };
    }
    this.searchWords = [];
    this.searchNote = '';
    return { inMailbox: this.mailboxId };
  }

  queryArgs(): Args {
    return { filter: this.filter(), sort: this.sortArg(), collapseThreads: this.settings.threads };
  }

  /** Opens a folder (or the search results): a new list from row 0. */
  async openList(mailboxId: string, search = ''): Promise<void> {
    this.mailboxId = mailboxId;
    this.search = search;
    await this.reloadList();
  }

  async reloadList(): Promise<void> {
    const gen = ++this.listGen;
    this.fetching.clear();
    this.listError = '';
    this.snippets.clear();
    const [lo, hi] = this.want;
    const position = Math.max(0, Math.floor(lo / PAGE) * PAGE);
    const limit = Math.max(PAGE, Math.ceil((hi - position) / PAGE) * PAGE);
    let rs: Invocation[];
    try {
      rs = await this.j.call([
        ['Email/query', { accountId: this.acc, ...this.queryArgs(), position, limit, calculateTotal: true }, 'q'],
        ['Email/get', { accountId: this.acc, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPS }, 'g'],
      ]);
    } catch (e) {
      if (gen === this.listGen) { this.listError = describeErr(e); this.ids = []; this.total = 0; this.emit(); }
      return;
    }
    if (gen !== this.listGen) return;
    let q: Args;
    try { q = pick(rs, 'q', 'Email/query'); } catch (e) {
      this.listError = describeErr(e); this.ids = []; this.total = 0; this.emit(); return;
    }
    const g = pick(rs, 'g', 'Email/get');
    this.total = Number(q.total ?? 0);
    this.queryState = String(q.queryState);
    this.ids = new Array(this.total);
    (q.ids as string[]).forEach((id, i) => { this.ids[Number(q.position) + i] = id; });
    for (const e of g.list as Email[]) this.emails.set(e.id, e);
    this.states.Email = String(g.state);
    await this.loadThreads(q.ids as string[]);
    await this.loadSnippets(q.ids as string[]);
    this.emit();
  }

  /** Keeps the Email cache bounded while scrolling a huge folder: rows
   * far from the window are dropped (their ids stay; they are fetched
   * again if scrolled back to). */
  private trim(lo: number, hi: number, keep: Set<string> = new Set()): void {
    if (this.emails.size <= CACHE_MAX) return;
    const near = new Set(keep);
    for (let i = Math.max(0, lo - CACHE_MAX / 4); i < Math.min(this.total, hi + CACHE_MAX / 4); i++) {
      const id = this.ids[i];
      if (id) near.add(id);
    }
    for (const id of this.emails.keys()) if (!near.has(id)) this.emails.delete(id);
    if (this.threadSize.size > CACHE_MAX) this.threadSize.clear();
    for (const id of this.snippets.keys()) if (!near.has(id)) this.snippets.delete(id);
  }
  /** ids the page holds on to (open or selected rows) */
  pinned: () => Set<string> = () => new Set();

  /** The view shows rows [lo, hi): fetch what is missing. */
  async ensure(lo: number, hi: number): Promise<void> {
    this.want = [lo, hi];
    this.trim(lo, hi, this.pinned());
    const gen = this.listGen;
    const pages = pagesToFetch(lo, hi, PAGE, this.total, (i) => { const id = this.ids[i]; return id !== undefined && this.emails.has(id); })
      .filter((p) => !this.fetching.has(p.position));
    for (const p of pages) {
      this.fetching.add(p.position);
      this.j.call([
        ['Email/query', { accountId: this.acc, ...this.queryArgs(), position: p.position, limit: p.limit }, 'q'],
        ['Email/get', { accountId: this.acc, '#ids': { resultOf: 'q', name: 'Email/query', path: '/ids' }, properties: LIST_PROPS }, 'g'],
      ]).then(async (rs) => {
        this.fetching.delete(p.position);
        if (gen !== this.listGen) return;
        const q = pick(rs, 'q', 'Email/query');
        if (String(q.queryState) !== this.queryState) { void this.sync(); return; }
        const g = pick(rs, 'g', 'Email/get');
        for (const e of g.list as Email[]) this.emails.set(e.id, e);
        (q.ids as string[]).forEach((id, i) => { this.ids[p.position + i] = id; });
        await this.loadThreads(q.ids as string[]);
        await this.loadSnippets(q.ids as string[]);
        this.emit();
      }).catch((e) => { this.fetching.delete(p.position); this.onError?.(describeErr(e)); });
    }
  }

  private async loadThreads(ids: string[]): Promise<void> {
    if (!this.settings.threads) return;
    const tids = [...new Set(ids.map((id) => this.emails.get(id)?.threadId).filter((t): t is string => !!t))]
      .filter((t) => !this.threadSize.has(t));
    if (!tids.length) return;
    try {
      const r = await this.one('Thread/get', { ids: tids });
      for (const t of r.list as Array<{ id: string; emailIds: string[] }>) this.threadSize.set(t.id, t.emailIds.length);
    } catch { /* counts are decoration */ }
  }

  private async loadSnippets(ids: string[]): Promise<void> {
    if (!this.search.trim() || !ids.length) return;
    try {
      const r = await this.one('SearchSnippet/get', { filter: this.filter(), emailIds: ids });
      for (const s of r.list as Array<{ emailId: string; subject: string | null; preview: string | null }>) {
        this.snippets.set(s.emailId, { subject: s.subject, preview: s.preview });
      }
    } catch { /* snippets are decoration */ }
  }

  // ---- keeping up -----------------------------------------------------

  /** Brings the page up to the server's state, one sync at a time: kinds
   * are the types a StateChange named (Email, Mailbox, Thread,
   * LoftSettings); without them, everything. */
  sync(kinds?: string[]): Promise<void> {
    if (kinds) for (const k of kinds) this.syncKinds.add(k); else this.syncAll = true;
    if (this.syncing) { this.syncAgain = true; return this.syncing; }
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false;
          const all = this.syncAll, kinds = new Set(this.syncKinds);
          this.syncAll = false;
          this.syncKinds.clear();
          await this.syncOnce(all || kinds.has('Mailbox'), all || kinds.has('LoftSettings'));
        } while (this.syncAgain);
      } catch (e) {
        this.syncAll = true;   // the next one asks for everything
        this.onError?.(describeErr(e));
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  private async syncOnce(boxes: boolean, settings: boolean): Promise<void> {
    const acc = this.acc;
    // One request: the changes and, by result references, the changed
    // objects themselves (and their threads' sizes), so a change from
    // another device costs one round trip before the page shows it.
    const ref = (resultOf: string, name: string, path: string) => ({ resultOf, name, path });
    const calls: Invocation[] = boxes ? [
      ['Mailbox/changes', { accountId: acc, sinceState: this.states.Mailbox, maxChanges: 500 }, 'm'],
      ['Mailbox/get', { accountId: acc, '#ids': ref('m', 'Mailbox/changes', '/created') }, 'mc'],
      ['Mailbox/get', { accountId: acc, '#ids': ref('m', 'Mailbox/changes', '/updated') }, 'mu'],
    ] : [];
    calls.push(
      ['Email/changes', { accountId: acc, sinceState: this.states.Email, maxChanges: 500 }, 'e'],
      ['Email/get', { accountId: acc, '#ids': ref('e', 'Email/changes', '/created'), properties: LIST_PROPS }, 'ec'],
      ['Email/get', { accountId: acc, '#ids': ref('e', 'Email/changes', '/updated'), properties: LIST_PROPS }, 'eu'],
      ['Email/queryChanges', { accountId: acc, ...this.queryArgs(), sinceQueryState: this.queryState, calculateTotal: true, maxChanges: 500 }, 'qc'],
    );
    const threads = this.settings.threads;
    if (threads) {
      calls.push(['Thread/get', { accountId: acc, '#ids': ref('ec', 'Email/get', '/list/*/threadId') }, 'tc'],
        ['Thread/get', { accountId: acc, '#ids': ref('eu', 'Email/get', '/list/*/threadId') }, 'tu']);
    }
    if (settings && this.states.LoftSettings) calls.push(['LoftSettings/get', { accountId: acc, ids: null }, 's']);
    trace('sync-send');
    const rs = await this.j.call(calls);
    trace('sync-answer');
    // mailboxes
    let reloadBoxes = false;
    if (boxes) try {
      const m = pick(rs, 'm', 'Mailbox/changes');
      for (const id of m.destroyed as string[]) this.mailboxes.delete(id);
      for (const c of ['mc', 'mu']) for (const mb of pick(rs, c, 'Mailbox/get').list as Mailbox[]) this.mailboxes.set(mb.id, mb);
      this.states.Mailbox = String(m.newState);
      if (m.hasMoreChanges) { this.syncAgain = true; this.syncKinds.add('Mailbox'); }
    } catch (e) {
      if (e instanceof JmapError && e.type === 'cannotCalculateChanges') reloadBoxes = true; else throw e;
    }
    if (reloadBoxes) await this.loadMailboxes();
    // emails
    let reloadAll = false;
    try {
      const e = pick(rs, 'e', 'Email/changes');
      const created = new Set(e.created as string[]);
      for (const id of e.destroyed as string[]) this.emails.delete(id);
      const inbox = this.byRole('inbox')?.id;
      const fresh: Email[] = [];
      for (const c of ['ec', 'eu']) {
        for (const em of pick(rs, c, 'Email/get').list as Email[]) {
          if (created.has(em.id) && inbox && em.mailboxIds[inbox] && !em.keywords.$seen) fresh.push(em);
          this.emails.set(em.id, em);
          this.threadSize.delete(em.threadId);
        }
      }
      if (threads) {
        try {
          for (const c of ['tc', 'tu']) {
            for (const t of pick(rs, c, 'Thread/get').list as Array<{ id: string; emailIds: string[] }>) this.threadSize.set(t.id, t.emailIds.length);
          }
        } catch { /* counts are decoration */ }
      }
      if (fresh.length) this.onNewMail?.(fresh);
      this.states.Email = String(e.newState);
      if (e.hasMoreChanges) this.syncAgain = true;
    } catch (err) {
      if (err instanceof JmapError && err.type === 'cannotCalculateChanges') reloadAll = true; else throw err;
    }
    try {
      const s = pick(rs, 's', 'LoftSettings/get');
      const st = (s.list as Settings[])[0];
      if (st && String(s.state) !== this.states.LoftSettings) this.settings = { ...DEFAULT_SETTINGS, ...st };
      this.states.LoftSettings = String(s.state);
    } catch { /* no settings */ }
    if (reloadAll) { this.emails.clear(); this.threadSize.clear(); await this.reloadList(); return; }
    // the list
    let qc: Args | null = null;
    try { qc = pick(rs, 'qc', 'Email/queryChanges'); } catch { qc = null; }
    if (!qc) { await this.reloadList(); return; }
    this.applyQueryChanges(qc);
    const [lo, hi] = this.want;
    const missing = this.ids.slice(lo, hi).filter((id) => id && !this.emails.has(id)) as string[];
    if (missing.length) {
      const g = await this.one('Email/get', { ids: missing, properties: LIST_PROPS });
      for (const em of g.list as Email[]) this.emails.set(em.id, em);
    }
    const visible = this.ids.slice(lo, hi).filter(Boolean) as string[];
    await this.loadThreads(visible);
    await this.loadSnippets(visible.filter((id) => !this.snippets.has(id)));
    trace('sync-emit');
    this.emit();
    void this.ensure(lo, hi);
  }

  /** Applies Email/queryChanges to the sparse id array; when a removed
   * id was not loaded its place is unknown, so the unloaded rows are
   * forgotten and fetched again. */
  applyQueryChanges(qc: Args): void {
    // nothing moved (a flag changed, say): the ids stay as they are, so a
    // 100,000-row list is not walked and the window is not fetched again
    if (!(qc.removed as string[]).length && !(qc.added as unknown[]).length &&
        (qc.total === undefined || Number(qc.total) === this.total)) {
      this.queryState = String(qc.newQueryState);
      return;
    }
    const removed = new Set(qc.removed as string[]);
    const added = (qc.added as Array<{ id: string; index: number }>).slice().sort((a, b) => a.index - b.index);
    let unknown = 0;
    const kept: (string | undefined)[] = [];
    let seen = 0;
    for (let i = 0; i < this.ids.length; i++) {
      const id = this.ids[i];
      if (id !== undefined && removed.has(id)) { seen++; continue; }
      kept.push(id);
    }
    unknown = removed.size - seen;
    for (const a of added) {
      if (a.index <= kept.length) kept.splice(a.index, 0, a.id);
      else kept[a.index] = a.id;
    }
    const total = qc.total !== undefined ? Number(qc.total) : kept.length - unknown;
    if (unknown > 0 || kept.length !== total) {
      // positions past a removal we could not place are unreliable
      const known = new Set(added.map((a) => a.id));
      this.ids = new Array(total);
      for (let i = 0; i < Math.min(kept.length, total); i++) if (unknown === 0 || known.has(kept[i]!)) this.ids[i] = kept[i];
      if (unknown > 0) this.ids = new Array(total);
    } else {
      this.ids = kept;
    }
    this.total = total;
    this.queryState = String(qc.newQueryState);
  }

  // ---- actions --------------------------------------------------------

  /** Emails a row stands for (a whole thread when threads are on). */
  async expand(ids: string[]): Promise<Email[]> {
    if (!this.settings.threads) return ids.map((id) => this.emails.get(id)).filter(Boolean) as Email[];
    const tids = [...new Set(ids.map((id) => this.emails.get(id)?.threadId).filter(Boolean))] as string[];
    const rs = await this.j.call([
      ['Thread/get', { accountId: this.acc, ids: tids }, 't'],
      ['Email/get', { accountId: this.acc, '#ids': { resultOf: 't', name: 'Thread/get', path: '/list/*/emailIds' }, properties: LIST_PROPS }, 'g'],
    ]);
    const g = pick(rs, 'g', 'Email/get');
    const list = g.list as Email[];
    for (const e of list) this.emails.set(e.id, e);
    // in a folder, act on the thread's messages in that folder (a thread
    // row in Inbox does not move the replies in Sent)
    const here = this.search ? null : this.mailboxId;
    return here ? list.filter((e) => e.mailboxIds[here]) : list;
  }

  /** Email/set update with local first, rollback on refusal. */
  async update(label: string, changes: Record<string, Args>, undoable = true): Promise<void> {
    const before = new Map<string, Email>();
    const idsBefore = this.ids.slice();
    const totalBefore = this.total;
    const undo: Record<string, Args> = {};
    for (const [id, patch] of Object.entries(changes)) {
      const e = this.emails.get(id);
      if (!e) continue;
      before.set(id, e);
      const n: Email = { ...e, keywords: { ...e.keywords }, mailboxIds: { ...e.mailboxIds } };
      const u: Args = {};
      for (const [k, v] of Object.entries(patch)) {
        if (k.startsWith('keywords/')) {
          const kw = k.slice(9);
          u[k] = e.keywords[kw] ? true : null;
          if (v) n.keywords[kw] = true; else delete n.keywords[kw];
        } else if (k.startsWith('mailboxIds/')) {
          const mb = k.slice(11);
          u[k] = e.mailboxIds[mb] ? true : null;
          if (v) n.mailboxIds[mb] = true; else delete n.mailboxIds[mb];
        } else if (k === 'mailboxIds') {
          u[k] = e.mailboxIds;
          n.mailboxIds = { ...(v as Record<string, boolean>) };
        } else if (k === 'keywords') {
          u[k] = e.keywords;
          n.keywords = { ...(v as Record<string, boolean>) };
        }
      }
      undo[id] = u;
      this.emails.set(id, n);
    }
    this.dropLeaving();
    this.adjustCounts(before);
    this.emit();
    try {
      const r = await this.one('Email/set', { update: changes });
      const nu = (r.notUpdated ?? {}) as Record<string, Args>;
      const bad = Object.keys(nu);
      if (bad.length) {
        for (const id of bad) { const e = before.get(id); if (e) this.emails.set(id, e); }
        this.ids = idsBefore; this.total = totalBefore;
        this.emit();
        throw new JmapError('set', errorText(nu[bad[0]]));
      }
      if (undoable) this.lastAction = { label, undo: () => this.update('Undo', undo, false) };
    } catch (e) {
      for (const [id, em] of before) this.emails.set(id, em);
      this.ids = idsBefore; this.total = totalBefore;
      this.restoreCounts(before);
      this.emit();
      throw e;
    } finally {
      void this.sync();
    }
  }

  /** Rows whose email left the shown folder disappear at once. */
  private dropLeaving(): void {
    if (this.search) return;
    const mb = this.mailboxId;
    const keep: (string | undefined)[] = [];
    let dropped = 0;
    for (const id of this.ids) {
      const e = id ? this.emails.get(id) : undefined;
      if (e && !e.mailboxIds[mb]) { dropped++; continue; }
      keep.push(id);
    }
    if (dropped) { this.ids = keep; this.total -= dropped; }
  }

  private countSnapshot: Map<string, Mailbox> | null = null;
  private adjustCounts(before: Map<string, Email>): void {
    this.countSnapshot = new Map([...this.mailboxes].map(([k, v]) => [k, { ...v }]));
    for (const [id, old] of before) {
      const now = this.emails.get(id)!;
      const wasUnread = !old.keywords.$seen, isUnread = !now.keywords.$seen;
      for (const mb of new Set([...Object.keys(old.mailboxIds), ...Object.keys(now.mailboxIds)])) {
        const m = this.mailboxes.get(mb);
        if (!m) continue;
        const a = !!old.mailboxIds[mb], b = !!now.mailboxIds[mb];
        const du = (b && isUnread ? 1 : 0) - (a && wasUnread ? 1 : 0);
        const dt = (b ? 1 : 0) - (a ? 1 : 0);
        this.mailboxes.set(mb, { ...m, unreadEmails: Math.max(0, m.unreadEmails + du), totalEmails: Math.max(0, m.totalEmails + dt) });
      }
    }
  }
  private restoreCounts(_before: Map<string, Email>): void {
    if (this.countSnapshot) this.mailboxes = this.countSnapshot;
    this.countSnapshot = null;
  }

  async setKeyword(ids: string[], kw: string, on: boolean, label: string, undoable = true): Promise<void> {
    const emails = await this.expand(ids);
    const ch: Record<string, Args> = {};
    for (const e of emails) if (!!e.keywords[kw] !== on) ch[e.id] = { [`keywords/${kw}`]: on ? true : null };
    if (Object.keys(ch).length) await this.update(label, ch, undoable);
  }

  /** Moves out of the shown folder (or out of every folder when searching)
   * into target. */
  async move(ids: string[], target: string, label: string): Promise<void> {
    const emails = await this.expand(ids);
    const ch: Record<string, Args> = {};
    for (const e of emails) {
      if (e.mailboxIds[target] && Object.keys(e.mailboxIds).length === 1) continue;
      if (this.search || !this.mailboxId || !e.mailboxIds[this.mailboxId]) ch[e.id] = { mailboxIds: { [target]: true } };
      else ch[e.id] = { [`mailboxIds/${this.mailboxId}`]: null, [`mailboxIds/${target}`]: true };
    }
    if (Object.keys(ch).length) await this.update(label, ch);
  }

  /** Delete: to Trash; in Trash (or Junk emptied), destroyed for good. */
  async remove(ids: string[]): Promise<'trash' | 'destroyed'> {
    const trash = this.byRole('trash');
    if (trash && this.mailboxId !== trash.id) {
      await this.move(ids, trash.id, 'Moved to Trash');
      return 'trash';
    }
    const emails = await this.expand(ids);
    await this.destroy(emails.map((e) => e.id));
    return 'destroyed';
  }

  async destroy(ids: string[]): Promise<void> {
    const idsBefore = this.ids.slice(), totalBefore = this.total;
    const gone = new Set(ids);
    this.ids = this.ids.filter((id) => !id || !gone.has(id));
    this.total -= idsBefore.length - this.ids.length;
    this.emit();
    try {
      for (let i = 0; i < ids.length; i += 500) {
        const r = await this.one('Email/set', { destroy: ids.slice(i, i + 500) });
        const nd = (r.notDestroyed ?? {}) as Record<string, Args>;
        const bad = Object.keys(nd);
        if (bad.length) throw new JmapError('set', errorText(nd[bad[0]]));
      }
      this.lastAction = null;
    } catch (e) {
      this.ids = idsBefore; this.total = totalBefore; this.emit();
      throw e;
    } finally {
      void this.sync();
    }
  }

  /** Empties Trash or Junk: every message in it, destroyed. */
  async emptyFolder(mailboxId: string): Promise<number> {
    let n = 0;
    for (;;) {
      const q = await this.one('Email/query', { filter: { inMailbox: mailboxId }, limit: 500 });
      const ids = q.ids as string[];
      if (!ids.length) break;
      const r = await this.one('Email/set', { destroy: ids });
      const nd = Object.keys((r.notDestroyed ?? {}) as object);
      n += ids.length - nd.length;
      if (nd.length) throw new JmapError('set', 'Some messages could not be deleted.');
    }
    void this.sync();
    return n;
  }

  async undo(): Promise<string | null> {
    const a = this.lastAction;
    if (!a) return null;
    this.lastAction = null;
    await a.undo();
    return a.label;
  }

  // ---- folders --------------------------------------------------------

  async mailboxSet(args: Args, what: string): Promise<Args> {
    const r = await this.one('Mailbox/set', args);
    for (const k of ['notCreated', 'notUpdated', 'notDestroyed']) {
      const bad = (r[k] ?? {}) as Record<string, Args>;
      const first = Object.values(bad)[0];
      if (first) throw new JmapError('set', `${what}: ${errorText(first)}`);
    }
    await this.sync();
    return r;
  }
}

export function describeErr(e: unknown): string {
  if (e instanceof JmapError) return e.message;
  if (e instanceof TypeError) return 'The server cannot be reached. Check your connection.';
  return e instanceof Error ? e.message : String(e);
}

export function addrText(a: Addr[] | null | undefined, max = 3): string {
  if (!a || !a.length) return '';
  const names = a.slice(0, max).map((x) => x.name || x.email);
  return names.join(', ') + (a.length > max ? ` and ${a.length - max} more` : '');
}
