// The webmail's shell: sign-in, the three panes (folders, list, message)
// side by side from 1024 px and as separate screens below, the action
// toolbar, keyboard shortcuts, the live channel (EventSource, then
// /changes; catching up after sleep or being offline), sending with an
// undo window, and the session expiring without losing the open draft.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Jmap, whoAmI, signIn, signOut, describe, CAP, pick, type Args } from './jmap';
import { Model, describeErr, addrText, type Email, type Mailbox } from './model';
import { MessageList } from './list';
import { Reader, FULL_PROPS, type FullEmail } from './reader';
import { Compose, draftFrom, emptyDraft, DRAFT_STORE, htmlToText, addrsText, type Draft, type Identity } from './compose';
import { Settings, loadQuotas, QuotaBar, type QuotaInfo } from './settings';
import { Icon } from './icons';
import { RecoverDialog } from './recover';
import { step } from './listwindow';
import DOMPurify from 'dompurify';

// ---- sign-in ---------------------------------------------------------------

function SignIn({ onDone, expired }: { onDone: (csrf: string, user: string) => void; expired?: string }) {
  const [user, setUser] = useState(expired ?? '');
  const [pw, setPw] = useState('');
  const [remember, setRemember] = useState(false);
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    performance.mark('loft-signin');
    setBusy(true); setErr('');
    try {
      const r = await signIn(user.trim(), pw, remember);
      setPw('');
      onDone(r.csrf, r.username);
    } catch (x) { setErr(describe(x)); } finally { setBusy(false); }
  };
  return (
    <main class="signin">
      <form class="signin-box" onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">{expired ? 'Your session has ended' : 'Loft Mail'}</h1>
        {expired && <p>Sign in again to go on; your open draft is kept.</p>}
        <label class="field"><span>Email</span>
          <input type="email" autocomplete="username" required value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} /></label>
        <label class="field"><span>Password</span>
          <input type="password" autocomplete="current-password" required value={pw} onInput={(e) => setPw((e.target as HTMLInputElement).value)} /></label>
        <label class="check"><input type="checkbox" checked={remember} onChange={(e) => setRemember((e.target as HTMLInputElement).checked)} /> Remember me for 30 days</label>
        <button type="submit" class="primary" disabled={busy}>Sign in</button>
        <p class="error" role="alert">{err}</p>
      </form>
    </main>
  );
}

// ---- the app ---------------------------------------------------------------

export function App() {
  const [phase, setPhase] = useState<'boot' | 'signin' | 'app'>('boot');
  const [csrf, setCsrf] = useState('');
  const [user, setUser] = useState('');
  const [bootErr, setBootErr] = useState('');
  useEffect(() => {
    whoAmI().then((w) => { if (w) { setCsrf(w.csrf); setUser(w.username); setPhase('app'); } else setPhase('signin'); })
      .catch((e) => { setBootErr(describe(e)); setPhase('signin'); });
  }, []);
  if (phase === 'boot') return <p class="muted center">Loading…</p>;
  if (phase === 'signin') return <>{bootErr && <p class="error" role="alert">{bootErr}</p>}
    <SignIn onDone={(c, u) => { setCsrf(c); setUser(u); setPhase('app'); }} /></>;
  return <Mail csrf={csrf} username={user} onSignedOut={() => { setPhase('signin'); }} />;
}

interface SendJob { draft: Draft; emailId: string; timer: number; until: number }
interface SharedAccount { id: string; name: string; readOnly: boolean; model: Model; off: () => void }

function Mail({ csrf, username, onSignedOut }: { csrf: string; username: string; onSignedOut: () => void }) {
  const j = useMemo(() => new Jmap(csrf), []);
  const model = useMemo(() => new Model(j), []);
  const [, rerender] = useState(0);
  const [ready, setReady] = useState(false);
  const [fatal, setFatal] = useState('');
  const [reauth, setReauth] = useState<null | { resolve: (c: string) => void }>(null);
  const [cursor, setCursorState] = useState(-1);
  // the latest cursor, for keys typed faster than a render ("j#")
  const cursorRef = useRef(-1);
  const setCursor = (n: number) => { cursorRef.current = n; setCursorState(n); };
  const [selected, setSelected] = useState<Set<string>>(new Set());
  // "Shared with me": other users' accounts sharing folders with this
  // user, each its own Model (accountId = the owner's); the list shows
  // one account at a time ('' = the user's own)
  const [shared, setShared] = useState<SharedAccount[]>([]);
  const sharedRef = useRef<SharedAccount[]>([]);
  const [listAcc, setListAccState] = useState('');
  const listAccRef = useRef('');
  const setListAcc = (a: string) => { listAccRef.current = a; setListAccState(a); };
  const cur = (listAcc && shared.find((s) => s.id === listAcc)?.model) || model;
  const anchor = useRef(-1);
  const [openId, setOpenId] = useState<string | null>(null);
  const selRef = useRef<Set<string>>(new Set());
  const openRef = useRef<string | null>(null);
  selRef.current = selected;
  openRef.current = openId;
  const [openEmail, setOpenEmail] = useState<FullEmail | null>(null);
  const [screen, setScreen] = useState<'list' | 'message'>('list');
  const [drawer, setDrawer] = useState(false);
  const [compose, setCompose] = useState<Draft | null>(null);
  const [recoverOpen, setRecoverOpen] = useState(false);
  // the server keeps messages deleted for good a while (LoftDeleted/*)
  const canRecover = !!(j.session?.accounts[j.accountId]?.accountCapabilities[CAP.loft] as { undelete?: boolean } | undefined)?.undelete;
  const [identities, setIdentities] = useState<Identity[]>([]);
  const [settingsOpen, setSettingsOpen] = useState<string | null>(null);
  const [help, setHelp] = useState(false);
  const [moveMenu, setMoveMenu] = useState(false);
  const [announce, setAnnounce] = useState('');
  const [alertText, setAlertText] = useState('');
  const [searchText, setSearchText] = useState('');
  const [sending, setSending] = useState<SendJob | null>(null);
  const [quota, setQuota] = useState<QuotaInfo[]>([]);
  const [online, setOnline] = useState(true);
  const searchRef = useRef<HTMLInputElement>(null);
  const gPending = useRef(0);
  const es = useRef<EventSource | null>(null);
  const suggestions = useRef(new Set<string>());

  const notify = (t: string) => { setAnnounce(''); setTimeout(() => setAnnounce(t), 30); };
  const fail = (t: string) => { setAlertText(t); window.setTimeout(() => setAlertText((x) => (x === t ? '' : x)), 8000); };

  // ---- start, live channel, catching up ---------------------------------
  useEffect(() => {
    const off = model.subscribe(() => rerender((x) => x + 1));
    model.onError = fail;
    model.pinned = () => new Set([...selRef.current, ...(openRef.current ? [openRef.current] : [])]);
    model.onNewMail = (list: Email[]) => {
      const first = list[0];
      const t = list.length === 1 ? `New mail from ${addrText(first.from, 1) || 'unknown sender'}: ${first.subject || '(no subject)'}`
        : `${list.length} new messages`;
      notify(t);
      if (model.settings.notifications && 'Notification' in window && Notification.permission === 'granted' && document.hidden) {
        try { new Notification('New mail', { body: t, tag: 'loft-new-mail' }); } catch { /* not allowed here */ }
      }
    };
    j.onSignedOut = () => new Promise<string>((resolve) => setReauth({ resolve }));
    j.onSessionChange = () => void refreshShared(true);
    (async () => {
      const boot = Model.loadBoot(username);
      let fast = false;
      if (boot && boot.accountId && boot.inboxId) {
        // the last visit's ids: the first screen in one request, beside
        // the session fetch
        const [, idents] = await Promise.all([j.connect(), model.fastStart(boot).catch(() => null)]);
        if (idents) { setIdentities(idents as Identity[]); fast = true; }
      } else {
        await j.connect();
      }
      if (!fast) {
        await Promise.all([model.loadMailboxes(), model.loadSettings(), loadIdentities()]);
        const inbox = model.byRole('inbox') ?? model.tree()[0]?.m;
        await model.openList(inbox?.id ?? '');
      }
      setReady(true);
      model.saveBoot(j.session.username);
      void refreshShared(false);
      openChannel();
      loadQuotas(model).then(setQuota).catch(() => {});
      // a draft left open when the page went away (reload, expiry)
      try {
        const saved = sessionStorage.getItem(DRAFT_STORE);
        if (saved) setCompose(JSON.parse(saved) as Draft);
      } catch { /* none */ }
    })().catch((e) => setFatal(describeErr(e)));
    let last = Date.now();
    const tick = window.setInterval(() => {
      const now = Date.now();
      if (now - last > 40_000) { syncAll(); reopenChannel(); }   // the machine slept
      last = now;
    }, 10_000);
    const goOnline = () => { setOnline(true); syncAll(); reopenChannel(); };
    const goOffline = () => setOnline(false);
    const visible = () => { if (!document.hidden) syncAll(); };
    window.addEventListener('online', goOnline);
    window.addEventListener('offline', goOffline);
    document.addEventListener('visibilitychange', visible);
    return () => {
      off(); window.clearInterval(tick); es.current?.close();
      for (const s of sharedRef.current) s.off();
      window.removeEventListener('online', goOnline); window.removeEventListener('offline', goOffline);
      document.removeEventListener('visibilitychange', visible);
    };
  }, []);

  const syncAll = () => { void model.sync(); for (const s of sharedRef.current) void s.model.sync(); };
  const openChannel = () => {
    es.current?.close();
    es.current = j.eventSource((all) => {
      for (const [acc, changed] of Object.entries(all)) {
        if (acc === j.accountId) {
          if (changed.Identity) void loadIdentities();
          if (changed.Email || changed.Mailbox || changed.Thread || changed.LoftSettings) void model.sync(Object.keys(changed));
          // usage moves only when mail comes or goes, which moves a Mailbox count
          if (changed.Mailbox) loadQuotas(model).then(setQuota).catch(() => {});
          continue;
        }
        const s = sharedRef.current.find((x) => x.id === acc);
        if (!s) void refreshShared(true);   // an account shared with us just now
        else if (changed.Email || changed.Mailbox || changed.Thread) void s.model.sync(Object.keys(changed));
      }
    }, () => { setOnline(true); syncAll(); }, () => {
      if (es.current && es.current.readyState === EventSource.CLOSED) {
        // refused (401: the session ended) or the server went away: ask
        // who we are, which brings the sign-in back if needed
        window.setTimeout(() => { j.connect().then(openChannel).catch(() => window.setTimeout(reopenChannel, 5000)); }, 1000);
      }
    });
  };
  const reopenChannel = () => { if (!es.current || es.current.readyState !== EventSource.OPEN) openChannel(); };

  // ---- Shared with me ---------------------------------------------------
  // The session's accounts with isPersonal false: one Model each, kept in
  // step by the same EventSource (StateChange keyed by the owner's
  // accountId). Read again when the session changes (a response's
  // sessionState moved, or a push named an account we do not know): a
  // folder shared or unshared shows or goes without a reload.
  const refreshing = useRef<Promise<void> | null>(null);
  const refreshAgain = useRef(false);
  const refreshShared = (fetchSession: boolean): Promise<void> => {
    if (refreshing.current) { refreshAgain.current ||= fetchSession; return refreshing.current; }
    refreshing.current = (async () => {
      let fetch = fetchSession;
      do {
        refreshAgain.current = false;
        if (fetch) await j.connect();
        fetch = true;
        const old = new Map(sharedRef.current.map((s) => [s.id, s]));
        const next: SharedAccount[] = [];
        for (const a of j.sharedAccounts()) {
          const have = old.get(a.id);
          if (have) { old.delete(a.id); next.push({ ...have, name: a.name, readOnly: a.readOnly }); continue; }
          const m = new Model(j, a.id);
          m.settingsFrom = model;
          m.pinned = model.pinned;
          try { await m.loadMailboxes(); } catch { continue; }
          const off = m.subscribe(() => rerender((x) => x + 1));
          m.onError = (t) => { void refreshShared(true).then(() => { if (sharedRef.current.some((x) => x.model === m)) fail(t); }); };
          next.push({ ...a, model: m, off });
        }
        for (const gone of old.values()) gone.off();
        sharedRef.current = next;
        setShared(next);
        // the shown folder's account is no longer shared with us
        if (listAccRef.current && !next.some((x) => x.id === listAccRef.current)) {
          const ib = model.byRole('inbox');
          if (ib) openFolder(ib.id);
          notify('A folder you were reading is no longer shared with you.');
        }
      } while (refreshAgain.current);
    })().catch(() => { /* the session comes back with the next change */ }).finally(() => { refreshing.current = null; });
    return refreshing.current;
  };

  const loadIdentities = async () => {
    try {
      const r = await j.one('Identity/get', { ids: null });
      setIdentities(r.list as Identity[]);
    } catch { /* compose shows none */ }
  };

  // ---- the document title: unread in Inbox ---------------------------------
  const inbox = model.byRole('inbox');
  const current = cur.mailboxes.get(cur.mailboxId);
  // what the rights on the shown folder allow (RFC 8621 myRights; the
  // user's own folders allow everything): actions they forbid are hidden
  const may = (right: string) => !cur.shared || !current || current.myRights?.[right] === true;
  useEffect(() => {
    const n = inbox?.unreadEmails ?? 0;
    const where = cur.search ? 'Search' : current ? cur.displayName(current) : 'Mail';
    document.title = `${n > 0 ? `(${n}) ` : ''}${where} - Loft Mail`;
  });
  // the shown folder went away (deleted on another device, or no longer
  // shared with us): back to the Inbox
  useEffect(() => {
    if (!ready || cur.search || !cur.mailboxId || cur.mailboxes.has(cur.mailboxId)) return;
    const ib = model.byRole('inbox');
    if (ib && !(cur === model && ib.id === cur.mailboxId)) {
      openFolder(ib.id);
      notify(cur.shared ? 'That folder is no longer shared with you.' : 'That folder was deleted.');
    }
  });
  // theme
  useEffect(() => {
    const t = model.settings.theme;
    if (t === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', t);
  }, [model.settings.theme]);
  const isDark = model.settings.theme === 'dark' ||
    (model.settings.theme === 'auto' && window.matchMedia?.('(prefers-color-scheme: dark)').matches);

  // ---- selection --------------------------------------------------------
  const rowIds = (): string[] => {
    if (selected.size) return [...selected];
    if (openId) return [openId];
    const c = cursorRef.current;
    const id = c >= 0 ? cur.ids[c] : undefined;
    return id ? [id] : [];
  };
  const openRow = (i: number) => {
    const id = cur.ids[i];
    if (!id) return;
    setCursor(i); anchor.current = i;
    setSelected(new Set([id]));
    const e = cur.emails.get(id);
    if (!cur.shared && e && (e.keywords.$draft || (model.byRole('drafts') && e.mailboxIds[model.byRole('drafts')!.id]))) {
      void openDraft(id);
      return;
    }
    setOpenId(id); setScreen('message');
    if (e && !e.keywords.$seen && may('maySetSeen')) cur.setKeyword([id], '$seen', true, 'Marked as read', false).catch((x) => fail(describeErr(x)));
  };
  const selectRow = (i: number, m: { shift: boolean; ctrl: boolean }) => {
    const id = cur.ids[i];
    if (!id) return;
    const s = new Set(m.ctrl ? selected : []);
    if (m.shift && anchor.current >= 0) {
      const [a, b] = [Math.min(anchor.current, i), Math.max(anchor.current, i)];
      for (let k = a; k <= b; k++) { const x = cur.ids[k]; if (x) s.add(x); }
    } else if (m.ctrl && s.has(id)) s.delete(id);
    else s.add(id);
    if (!m.shift) anchor.current = i;
    setCursor(i); setSelected(s);
  };
  const dragIds = (id: string) => (selected.has(id) ? [...selected] : [id]);

  const openDraft = async (id: string) => {
    try {
      const r = await j.one('Email/get', { ids: [id], properties: FULL_PROPS, fetchAllBodyValues: true });
      const e = (r.list as FullEmail[])[0];
      if (!e) { fail('This draft no longer exists.'); return; }
      const hp = e.htmlBody.find((p) => p.type === 'text/html');
      const tp = e.textBody.find((p) => p.type === 'text/plain');
      const html = !!hp;
      const ident = identities.find((i) => e.from?.[0] && i.email.toLowerCase() === e.from[0].email.toLowerCase()) ?? identities[0];
      let body = hp?.partId ? e.bodyValues[hp.partId]?.value ?? '' : tp?.partId ? e.bodyValues[tp.partId]?.value ?? '' : '';
      if (html) body = DOMPurify.sanitize(body.replace(/^[\s\S]*<body[^>]*>|<\/body>[\s\S]*$/gi, ''));
      setCompose({ key: `d${id}`, draftId: id, identityId: ident?.id ?? '', to: addrsText(e.to), cc: addrsText(e.cc), bcc: addrsText(e.bcc),
        subject: e.subject ?? '', html, body, attachments: e.attachments.filter((a) => a.blobId).map((a) => ({ name: a.name || 'attachment', type: a.type, size: a.size, blobId: a.blobId! })),
        inReplyTo: e.inReplyTo, references: e.references, replyToId: null });
    } catch (x) { fail(describeErr(x)); }
  };

  // ---- actions ------------------------------------------------------------
  const after = (p: Promise<unknown>, done?: string) => p.then(() => { if (done) notify(done); }).catch((x) => fail(describeErr(x)));
  const closeIfGone = () => { setSelected(new Set()); setOpenId(null); setOpenEmail(null); setScreen('list'); };
  const forbidden = (right: string, what: string) => {
    if (may(right)) return false;
    fail(`You cannot ${what} in this shared folder: its owner did not allow it.`);
    return true;
  };
  const act = {
    read: (on: boolean) => { if (forbidden('maySetSeen', 'mark messages read')) return Promise.resolve(); return after(cur.setKeyword(rowIds(), '$seen', on, on ? 'Marked as read' : 'Marked as unread'), on ? 'Marked as read.' : 'Marked as unread.'); },
    flag: (on: boolean) => { if (forbidden('maySetKeywords', 'flag messages')) return Promise.resolve(); return after(cur.setKeyword(rowIds(), '$flagged', on, on ? 'Flagged' : 'Unflagged'), on ? 'Flagged.' : 'Flag removed.'); },
    move: (target: string, label: string) => {
      const ids = rowIds(); if (!ids.length) return;
      if (forbidden('mayRemoveItems', 'move messages')) return;
      closeIfGone(); void after(cur.move(ids, target, label), `${label}.`);
    },
    archive: () => { const a = cur.byRole('archive'); if (a) act.move(a.id, 'Archived'); else fail('There is no Archive folder.'); },
    junk: (on: boolean) => {
      if (cur.shared) { fail('Junk is for your own mail.'); return; }
      const target = on ? model.byRole('junk') : model.byRole('inbox');
      if (!target) { fail('There is no Junk folder.'); return; }
      const ids = rowIds();
      void after(model.setKeyword(ids, on ? '$junk' : '$notjunk', true, 'Junk').then(() => model.setKeyword(ids, on ? '$notjunk' : '$junk', false, 'Junk')).catch(() => {}));
      act.move(target.id, on ? 'Moved to Junk' : 'Moved to Inbox');
    },
    remove: () => {
      const ids = rowIds();
      if (!ids.length) return;
      if (forbidden('mayRemoveItems', 'delete messages')) return;
      // a shared folder without the owner's Trash: deleted for good
      const inTrash = !cur.byRole('trash') || cur.byRole('trash')?.id === cur.mailboxId;
      if (inTrash && !confirm(`Delete ${ids.length === 1 ? 'this message' : `${ids.length} messages`} for good?${canRecover ? ' (Recover deleted messages, in Trash, brings deleted messages back for a while.)' : ''}`)) return;
      closeIfGone();
      cur.remove(ids).then((how) => notify(how === 'trash' ? 'Moved to Trash.' : 'Deleted.')).catch((x) => fail(describeErr(x)));
    },
    undo: () => { cur.undo().then((l) => l && notify(`Undone: ${l}.`)).catch((x) => fail(describeErr(x))); },
  };
  const emptyFolder = async (mb: Mailbox) => {
    if (!confirm(`Delete all ${mb.totalEmails} messages in ${mb.name} for good?${canRecover ? ' (Recover deleted messages, in Trash, brings deleted messages back for a while.)' : ''}`)) return;
    try { const n = await cur.emptyFolder(mb.id); notify(`${mb.name} emptied (${n} messages deleted).`); closeIfGone(); } catch (x) { fail(describeErr(x)); }
  };

  const myAddresses = () => [j.session.username, ...identities.map((i) => i.email)].map((s) => s.toLowerCase());
  const startReply = (mode: 'reply' | 'replyall' | 'forward' | 'forwardatt') => {
    const e = openEmail;
    if (!e) return;
    const tp = e.textBody.find((p) => p.type === 'text/plain');
    const hp = e.htmlBody.find((p) => p.type === 'text/html');
    const quote = tp?.partId && e.bodyValues[tp.partId] ? e.bodyValues[tp.partId].value
      : hp?.partId && e.bodyValues[hp.partId] ? htmlToText(e.bodyValues[hp.partId].value) : e.preview;
    const ident = identities.find((i) => [...(e.to ?? []), ...(e.cc ?? [])].some((a) => a.email.toLowerCase() === i.email.toLowerCase())) ?? identities[0];
    const d = draftFrom(mode, e, myAddresses(), ident, model.settings.compose === 'html', quote);
    if (!cur.shared) { setCompose(d); return; }
    // a message of a shared folder: \Answered goes to its owner's account
    // (if the rights allow), and what it forwards is copied into the
    // user's own account first (Blob/copy), where the draft is made
    if (d.replyToId) { if (may('maySetKeywords')) d.replyAccountId = cur.acc; else d.replyToId = null; }
    if (!d.attachments.length) { setCompose(d); return; }
    const from = cur.acc;
    j.one('Blob/copy', { fromAccountId: from, blobIds: d.attachments.map((a) => a.blobId) }).then((r) => {
      const copied = (r.copied ?? {}) as Record<string, string>;
      const kept = d.attachments.filter((a) => copied[a.blobId]).map((a) => ({ ...a, blobId: copied[a.blobId] }));
      if (kept.length < d.attachments.length) fail('Some attachments could not be copied from the shared folder.');
      setCompose({ ...d, attachments: kept });
    }).catch((x) => { fail(describeErr(x)); setCompose({ ...d, attachments: [] }); });
  };
  const newMessage = () => setCompose(emptyDraft(identities[0], model.settings.compose === 'html'));

  const collectSuggestions = () => {
    for (const e of model.emails.values()) for (const a of [...(e.from ?? []), ...(e.to ?? [])]) {
      if (suggestions.current.size > 5000) break;
      suggestions.current.add(a.name ? `${a.name.replace(/[<>",]/g, '')} <${a.email}>` : a.email);
    }
    return [...suggestions.current].slice(0, 2000);
  };

  // ---- sending, with an undo window -------------------------------------
  const submit = async (d: Draft, emailId: string) => {
    setSending(null);
    const drafts = model.byRole('drafts')?.id, sent = model.byRole('sent')?.id;
    const upd: Args = { 'keywords/$draft': null };
    if (drafts) upd[`mailboxIds/${drafts}`] = null;
    if (sent) upd[`mailboxIds/${sent}`] = true;
    const ident = identities.find((i) => i.id === d.identityId) ?? identities[0];
    const calls: Array<[string, Args, string]> = [['EmailSubmission/set', {
      accountId: j.accountId, create: { s: { identityId: ident?.id, emailId } },
      onSuccessUpdateEmail: { '#s': upd },
    }, 's']];
    if (d.replyToId) calls.push(['Email/set', { accountId: d.replyAccountId ?? j.accountId, update: { [d.replyToId]: { 'keywords/$answered': true } } }, 'a']);
    try {
      const rs = await j.call(calls);
      const r = pick(rs, 's', 'EmailSubmission/set');
      const nc = (r.notCreated ?? {}) as Record<string, Args>;
      if (nc.s) throw new Error(`Not sent: ${String(nc.s.description ?? nc.s.type)}`);
      notify('Message sent.');
      void model.sync();
    } catch (x) {
      fail(`${describeErr(x)} The message is kept in Drafts.`);
      setCompose({ ...d, draftId: emailId });
    }
  };
  const onSend = (d: Draft, emailId: string) => {
    setCompose(null);
    const secs = Math.max(0, Math.min(10, model.settings.undoSendSeconds));
    if (secs === 0) { void submit(d, emailId); return; }
    const timer = window.setTimeout(() => void submit(d, emailId), secs * 1000);
    setSending({ draft: d, emailId, timer, until: Date.now() + secs * 1000 });
  };
  const undoSend = () => {
    if (!sending) return;
    window.clearTimeout(sending.timer);
    setCompose({ ...sending.draft, draftId: sending.emailId });
    setSending(null);
    notify('Sending undone: the message is open again.');
  };

  // ---- search -------------------------------------------------------------
  const searchTimer = useRef(0);
  const runSearch = (q: string) => {
    setSearchText(q);
    window.clearTimeout(searchTimer.current);
    searchTimer.current = window.setTimeout(() => {
      setCursor(-1); setSelected(new Set());
      const m = listModel();
      void m.openList(m.mailboxId, q);
    }, 250);
  };
  /** The model the list shows (the latest, also from older closures). */
  const listModel = () => (listAccRef.current && sharedRef.current.find((s) => s.id === listAccRef.current)?.model) || model;
  /** Opens a folder of the user's own account (acc '') or of a shared one. */
  const openFolder = (id: string, acc = '') => {
    setSearchText(''); setCursor(-1); setSelected(new Set()); setOpenId(null); setOpenEmail(null);
    setScreen('list'); setDrawer(false); setSettingsOpen(null);
    setListAcc(acc);
    void listModel().openList(id, '');
  };

  // ---- keyboard -----------------------------------------------------------
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
      if (t.closest('input, textarea, select, [contenteditable="true"], .compose, [role="dialog"]')) {
        if (e.key === 'Escape' && t === searchRef.current) { searchRef.current?.blur(); }
        return;
      }
      const k = e.key;
      const now = Date.now();
      if (gPending.current && now - gPending.current < 1500) {
        gPending.current = 0;
        if (k === 'i') { const ib = model.byRole('inbox'); if (ib) openFolder(ib.id); e.preventDefault(); return; }
        if (k === 's') { const s = model.byRole('sent'); if (s) openFolder(s.id); e.preventDefault(); return; }
        if (k === 'd') { const s = model.byRole('drafts'); if (s) openFolder(s.id); e.preventDefault(); return; }
      }
      const handled = (() => {
        switch (k) {
          case 'j': case 'ArrowDown': { const n = step(cursorRef.current, 1, cur.total); if (openId) openRow(n); else setCursor(n); return true; }
          case 'k': case 'ArrowUp': { const n = step(cursorRef.current, -1, cur.total); if (openId) openRow(n); else setCursor(n); return true; }
          case 'o': case 'Enter': if (cursorRef.current >= 0) openRow(cursorRef.current); return true;
          case 'u': case 'Escape': if (help) setHelp(false); else closeIfGone(); return true;
          case 'r': startReply('reply'); return true;
          case 'a': startReply('replyall'); return true;
          case 'f': startReply('forward'); return true;
          case 'c': newMessage(); return true;
          case '#': case 'Delete': act.remove(); return true;
          case 'e': act.archive(); return true;
          case 's': { const id = rowIds()[0]; const em = id ? cur.emails.get(id) : undefined; if (em) void act.flag(!em.keywords.$flagged); return true; }
          case 'I': void act.read(true); return true;
          case 'U': void act.read(false); return true;
          case 'z': act.undo(); return true;
          case 'x': { if (cursorRef.current >= 0) selectRow(cursorRef.current, { shift: false, ctrl: true }); return true; }
          case '/': searchRef.current?.focus(); return true;
          case 'g': gPending.current = now; return true;
          case '?': setHelp(true); return true;
          default: return false;
        }
      })();
      if (handled) e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  });

  // ---- render ---------------------------------------------------------------
  if (fatal) return <main class="center"><p class="error" role="alert">{fatal}</p><button type="button" onClick={() => location.reload()}>Try again</button></main>;
  const open = openId ? cur.emails.get(openId) : undefined;
  const firstSel = rowIds()[0];
  const subject = firstSel ? cur.emails.get(firstSel) : undefined;
  const hasSelection = !!firstSel;
  const role = current?.role;
  const sel = rowIds().map((id) => cur.emails.get(id)).filter(Boolean) as Email[];
  // where rows may be moved: the shown account's folders that take mail
  const targets = cur.tree().filter(({ m }) => m.id !== cur.mailboxId && m.myRights?.mayAddItems !== false);
  const folderLink = (fm: Model, acc: string, m: Mailbox, depth: number) => (
    <li key={m.id} style={{ paddingLeft: `${depth * 14}px` }}>
      <a href={`#folder/${m.id}`} aria-current={m.id === cur.mailboxId && fm === cur && !cur.search ? 'page' : undefined}
        class={`${m.myRights && m.myRights.mayAddItems === false ? 'readonly' : ''}${m.isSubscribed || m.role ? '' : ' unsub'}`}
        title={m.isSubscribed || m.role ? undefined : 'Not subscribed: IMAP clients may not show it'}
        onClick={(e) => { e.preventDefault(); openFolder(m.id, acc); }}
        onDragOver={(e) => {
          // rows move within one account, into a folder that takes mail
          if (fm === cur && m.myRights?.mayAddItems !== false && e.dataTransfer?.types.includes('application/x-loft-emails')) {
            e.preventDefault(); (e.currentTarget as HTMLElement).classList.add('drop');
          }
        }}
        onDragLeave={(e) => (e.currentTarget as HTMLElement).classList.remove('drop')}
        onDrop={(e) => {
          e.preventDefault(); (e.currentTarget as HTMLElement).classList.remove('drop');
          if (fm !== cur) return;
          try {
            const ids = JSON.parse(e.dataTransfer?.getData('application/x-loft-emails') || '[]') as string[];
            if (ids.length && !forbidden('mayRemoveItems', 'move messages')) { closeIfGone(); void after(cur.move(ids, m.id, `Moved to ${m.name}`), `Moved to ${m.name}.`); }
          } catch { /* not ours */ }
        }}>
        <Icon name={m.role ?? 'folder'} /><span class="fname">{fm.displayName(m)}</span>
        {m.unreadEmails > 0 && <>{' '}<span class="badge">{m.unreadEmails}<span class="sr-only"> unread</span></span></>}
      </a>
    </li>);
  const allRead = sel.length > 0 && sel.every((e) => e.keywords.$seen);
  const anyFlag = sel.some((e) => e.keywords.$flagged);

  return (
    <div class={`app screen-${screen}${drawer ? ' drawer-open' : ''}${settingsOpen ? ' settings-open' : ''}`}>
      <header class="topbar">
        <button type="button" class="icon-btn menu" aria-label="Show folders" aria-expanded={drawer} onClick={() => setDrawer(!drawer)}><Icon name="menu" /></button>
        <span class="brand">Loft Mail</span>
        <form class="search" role="search" onSubmit={(e) => { e.preventDefault(); runSearch(searchText); }}>
          <Icon name="search" />
          <input ref={searchRef} type="search" aria-label="Search mail" placeholder="Search mail"
            value={searchText} onInput={(e) => runSearch((e.target as HTMLInputElement).value)} />
        </form>
        <button type="button" class="primary compose-btn" onClick={newMessage}><Icon name="compose" /><span>Compose</span></button>
        <button type="button" class="icon-btn" aria-label={isDark ? 'Light mode' : 'Dark mode'}
          onClick={() => model.saveSettings({ theme: isDark ? 'light' : 'dark' }).catch((x) => fail(describeErr(x)))}><Icon name={isDark ? 'sun' : 'moon'} /></button>
        <button type="button" class="icon-btn" aria-label="Settings" onClick={() => setSettingsOpen(settingsOpen ? null : 'general')}><Icon name="gear" /></button>
        <button type="button" class="icon-btn" aria-label="Sign out" onClick={async () => { es.current?.close(); await signOut(j.csrf).catch(() => {}); onSignedOut(); }}><Icon name="signout" /></button>
      </header>
      {!online && <div class="offline" role="note">You are offline; changes show again when the connection is back.</div>}
      <div class="panes">
        <nav class="folders" aria-label="Folders">
          <ul>{model.tree().map(({ m, depth }) => folderLink(model, '', m, depth))}</ul>
          {shared.length > 0 && (
            <div class="shared" role="group" aria-labelledby="shared-head">
              <h2 id="shared-head" class="folders-head">Shared with me</h2>
              {shared.map((s) => (
                <div role="group" aria-label={s.name} key={s.id}>
                  <h3 class="owner" aria-hidden="true">{s.name}</h3>
                  <ul>{s.model.tree().map(({ m, depth }) => folderLink(s.model, s.id, m, depth))}</ul>
                </div>))}
            </div>)}
          {quota.map((q, i) => <QuotaBar key={i} q={q} />)}
        </nav>
        <section class="listpane">
          <div class="list-head">
            <h1 class="folder-title">{cur.search ? 'Search results' : current ? cur.displayName(current) : ''}
              {cur.shared && <span class="muted owner-of">{' '}({shared.find((s) => s.model === cur)?.name})</span>}</h1>
            {cur.searchNote && <span class="error">{cur.searchNote}</span>}
            <span class="muted">{cur.total.toLocaleString()} {model.settings.threads ? 'conversations' : 'messages'}</span>
            {!cur.shared && (role === 'trash' || role === 'junk') && !cur.search && current && (current.totalEmails > 0 || cur.total > 0) &&
              <button type="button" onClick={() => void emptyFolder(current)}>Empty {current.name}</button>}
            {!cur.shared && role === 'trash' && !cur.search && canRecover &&
              <button type="button" onClick={() => setRecoverOpen(true)}>Recover deleted messages</button>}
            <label class="sort"><span class="sr-only">Sort by</span>
              <select aria-label="Sort by" value={model.settings.sort} onChange={(e) => {
                void model.saveSettings({ sort: (e.target as HTMLSelectElement).value }).then(() => cur.reloadList());
              }}><option value="receivedAt">Date</option><option value="from">Sender</option><option value="subject">Subject</option><option value="size">Size</option></select></label>
            <label class="check small"><input type="checkbox" checked={model.settings.threads} onChange={(e) => {
              void model.saveSettings({ threads: (e.target as HTMLInputElement).checked }).then(() => cur.reloadList());
            }} /> Conversations</label>
          </div>
          {ready ? <MessageList model={cur} cursor={cursor} selected={selected} openId={openId} onOpen={openRow}
            onSelect={selectRow} onDragIds={dragIds} /> : <p class="muted">Loading…</p>}
        </section>
        <div class="readpane">
          {hasSelection && (
            <div class="toolbar" role="toolbar" aria-label="Message actions">
              {openId && <>
                <button type="button" onClick={() => startReply('reply')} disabled={!openEmail}><Icon name="reply" /><span>Reply</span></button>
                <button type="button" onClick={() => startReply('replyall')} disabled={!openEmail}><Icon name="replyall" /><span>Reply all</span></button>
                <button type="button" onClick={() => startReply('forward')} disabled={!openEmail}><Icon name="forward" /><span>Forward</span></button>
              </>}
              {may('mayRemoveItems') && cur.byRole('archive') && cur.byRole('archive')!.myRights?.mayAddItems !== false &&
                <button type="button" onClick={act.archive}><Icon name="archive" /><span>Archive</span></button>}
              {may('mayRemoveItems') && <button type="button" onClick={act.remove}><Icon name="trash" /><span>Delete</span></button>}
              {may('mayRemoveItems') && targets.length > 0 &&
                <button type="button" aria-haspopup="true" aria-expanded={moveMenu} onClick={() => setMoveMenu(!moveMenu)}><Icon name="move" /><span>Move to</span></button>}
              {may('maySetSeen') && <button type="button" onClick={() => void act.read(!allRead)}><Icon name="read" /><span>{allRead ? 'Mark as unread' : 'Mark as read'}</span></button>}
              {may('maySetKeywords') && <button type="button" onClick={() => void act.flag(!anyFlag)}><Icon name="flag" /><span>{anyFlag ? 'Unflag' : 'Flag'}</span></button>}
              {!cur.shared && (role === 'junk' ? <button type="button" onClick={() => act.junk(false)}><span>Not junk</span></button>
                : <button type="button" onClick={() => act.junk(true)}><Icon name="junk" /><span>Junk</span></button>)}
              {selected.size > 1 && <span class="muted">{selected.size} selected</span>}
              {moveMenu && (
                <div class="menu-pop" role="group" aria-label="Move to folder">
                  {targets.map(({ m }) => (
                    <button type="button" key={m.id} onClick={() => { setMoveMenu(false); act.move(m.id, `Moved to ${m.name}`); }}>{cur.path(m.id)}</button>))}
                </div>)}
            </div>)}
          {cur.lastAction && <div class="undo-bar"><span>{cur.lastAction.label}.</span><button type="button" onClick={act.undo}>Undo</button></div>}
          {open || openId ? <Reader model={cur} emailId={openId!} onLoaded={setOpenEmail} onForwardAttachment={() => startReply('forwardatt')} onOpenId={(id) => { setOpenId(id); setSelected(new Set([id])); }}
            onBack={closeIfGone} notify={notify} />
            : <div class="reader empty-reader"><p class="muted">{subject ? `${selected.size} selected` : 'No message open.'}</p></div>}
        </div>
      </div>
      {recoverOpen && <RecoverDialog model={model} notify={notify} onClose={() => setRecoverOpen(false)} />}
      {settingsOpen && <div class="overlay"><Settings model={model} notify={notify} onClose={() => setSettingsOpen(null)} identities={identities}
        reloadIdentities={() => void loadIdentities()} startTab={settingsOpen} /></div>}
      {compose && <Compose key={compose.key + (compose.draftId ?? '')} model={model} initial={compose} identities={identities}
        suggestions={collectSuggestions()} notify={notify}
        onClose={(saved) => { setCompose(null); if (saved) notify('Draft saved.'); }} onSend={onSend} />}
      {sending && <div class="undo-bar sending" role="group" aria-label="Sending"><span>Sending…</span>
        <button type="button" onClick={undoSend}>Undo send</button></div>}
      {help && (
        <div class="modal-back" onClick={() => setHelp(false)}>
          <div class="modal" role="dialog" aria-modal="true" aria-label="Keyboard shortcuts" onClick={(e) => e.stopPropagation()}>
            <div class="modal-head"><h2>Keyboard shortcuts</h2><button type="button" onClick={() => setHelp(false)}>Close</button></div>
            <table class="keys"><tbody>
              {[['j / k', 'Next / previous message'], ['o or Enter', 'Open'], ['u or Esc', 'Back to the list'], ['r', 'Reply'], ['a', 'Reply all'],
                ['f', 'Forward'], ['c', 'Compose'], ['#', 'Delete'], ['e', 'Archive'], ['s', 'Flag or unflag'], ['Shift+I / Shift+U', 'Mark as read / unread'],
                ['x', 'Select'], ['z', 'Undo'], ['/', 'Search'], ['g then i', 'Go to Inbox'], ['g then s', 'Go to Sent'], ['?', 'This help'],
                ['Ctrl+Enter', 'Send (in compose)']].map(([k, d]) => <tr key={k}><th scope="row"><kbd>{k}</kbd></th><td>{d}</td></tr>)}
            </tbody></table>
          </div>
        </div>)}
      {reauth && (
        <div class="overlay reauth" role="dialog" aria-modal="true" aria-label="Sign in again">
          <SignIn expired={j.session?.username ?? ''} onDone={(c) => { j.csrf = c; const r = reauth; setReauth(null); r.resolve(c); openChannel(); }} />
        </div>)}
      <div class="sr-only" role="status" aria-live="polite" aria-label="Announcements">{announce}</div>
      {alertText && <div class="toast error" role="alert">{alertText}<button type="button" aria-label="Dismiss" onClick={() => setAlertText('')}>×</button></div>}
      {announce && <div class="toast" aria-hidden="true">{announce}</div>}
    </div>
  );
}
void CAP;
