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
      if (now - last > 40_000) { void model.sync(); reopenChannel(); }   // the machine slept
      last = now;
    }, 10_000);
    const goOnline = () => { setOnline(true); void model.sync(); reopenChannel(); };
    const goOffline = () => setOnline(false);
    const visible = () => { if (!document.hidden) void model.sync(); };
    window.addEventListener('online', goOnline);
    window.addEventListener('offline', goOffline);
    document.addEventListener('visibilitychange', visible);
    return () => {
      off(); window.clearInterval(tick); es.current?.close();
      window.removeEventListener('online', goOnline); window.removeEventListener('offline', goOffline);
      document.removeEventListener('visibilitychange', visible);
    };
  }, []);

  const openChannel = () => {
    es.current?.close();
    es.current = j.eventSource((changed) => {
      if (changed.Identity) void loadIdentities();
      if (changed.Email || changed.Mailbox || changed.Thread || changed.LoftSettings) void model.sync();
      if (changed.Email) loadQuotas(model).then(setQuota).catch(() => {});
    }, () => { setOnline(true); void model.sync(); }, () => {
      if (es.current && es.current.readyState === EventSource.CLOSED) {
        // refused (401: the session ended) or the server went away: ask
        // who we are, which brings the sign-in back if needed
        window.setTimeout(() => { j.connect().then(openChannel).catch(() => window.setTimeout(reopenChannel, 5000)); }, 1000);
      }
    });
  };
  const reopenChannel = () => { if (!es.current || es.current.readyState !== EventSource.OPEN) openChannel(); };

  const loadIdentities = async () => {
    try {
      const r = await j.one('Identity/get', { ids: null });
      setIdentities(r.list as Identity[]);
    } catch { /* compose shows none */ }
  };

  // ---- the document title: unread in Inbox ---------------------------------
  const inbox = model.byRole('inbox');
  const current = model.mailboxes.get(model.mailboxId);
  useEffect(() => {
    const n = inbox?.unreadEmails ?? 0;
    const where = model.search ? 'Search' : current ? model.displayName(current) : 'Mail';
    document.title = `${n > 0 ? `(${n}) ` : ''}${where} - Loft Mail`;
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
    const id = c >= 0 ? model.ids[c] : undefined;
    return id ? [id] : [];
  };
  const openRow = (i: number) => {
    const id = model.ids[i];
    if (!id) return;
    setCursor(i); anchor.current = i;
    setSelected(new Set([id]));
    const e = model.emails.get(id);
    if (e && (e.keywords.$draft || (model.byRole('drafts') && e.mailboxIds[model.byRole('drafts')!.id]))) {
      void openDraft(id);
      return;
    }
    setOpenId(id); setScreen('message');
    if (e && !e.keywords.$seen) model.setKeyword([id], '$seen', true, 'Marked as read', false).catch((x) => fail(describeErr(x)));
  };
  const selectRow = (i: number, m: { shift: boolean; ctrl: boolean }) => {
    const id = model.ids[i];
    if (!id) return;
    const s = new Set(m.ctrl ? selected : []);
    if (m.shift && anchor.current >= 0) {
      const [a, b] = [Math.min(anchor.current, i), Math.max(anchor.current, i)];
      for (let k = a; k <= b; k++) { const x = model.ids[k]; if (x) s.add(x); }
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
  const act = {
    read: (on: boolean) => after(model.setKeyword(rowIds(), '$seen', on, on ? 'Marked as read' : 'Marked as unread'), on ? 'Marked as read.' : 'Marked as unread.'),
    flag: (on: boolean) => after(model.setKeyword(rowIds(), '$flagged', on, on ? 'Flagged' : 'Unflagged'), on ? 'Flagged.' : 'Flag removed.'),
    move: (target: string, label: string) => { const ids = rowIds(); if (!ids.length) return; closeIfGone(); void after(model.move(ids, target, label), `${label}.`); },
    archive: () => { const a = model.byRole('archive'); if (a) act.move(a.id, 'Archived'); else fail('There is no Archive folder.'); },
    junk: (on: boolean) => {
      const target = on ? model.byRole('junk') : model.byRole('inbox');
      if (!target) { fail('There is no Junk folder.'); return; }
      const ids = rowIds();
      void after(model.setKeyword(ids, on ? '$junk' : '$notjunk', true, 'Junk').then(() => model.setKeyword(ids, on ? '$notjunk' : '$junk', false, 'Junk')).catch(() => {}));
      act.move(target.id, on ? 'Moved to Junk' : 'Moved to Inbox');
    },
    remove: () => {
      const ids = rowIds();
      if (!ids.length) return;
      const inTrash = model.byRole('trash')?.id === model.mailboxId;
      if (inTrash && !confirm(`Delete ${ids.length === 1 ? 'this message' : `${ids.length} messages`} for good?${canRecover ? ' (Recover deleted messages, in Trash, brings deleted messages back for a while.)' : ''}`)) return;
      closeIfGone();
      model.remove(ids).then((how) => notify(how === 'trash' ? 'Moved to Trash.' : 'Deleted.')).catch((x) => fail(describeErr(x)));
    },
    undo: () => { model.undo().then((l) => l && notify(`Undone: ${l}.`)).catch((x) => fail(describeErr(x))); },
  };
  const emptyFolder = async (mb: Mailbox) => {
    if (!confirm(`Delete all ${mb.totalEmails} messages in ${mb.name} for good?${canRecover ? ' (Recover deleted messages, in Trash, brings deleted messages back for a while.)' : ''}`)) return;
    try { const n = await model.emptyFolder(mb.id); notify(`${mb.name} emptied (${n} messages deleted).`); closeIfGone(); } catch (x) { fail(describeErr(x)); }
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
    setCompose(draftFrom(mode, e, myAddresses(), ident, model.settings.compose === 'html', quote));
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
    if (d.replyToId) calls.push(['Email/set', { accountId: j.accountId, update: { [d.replyToId]: { 'keywords/$answered': true } } }, 'a']);
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
      void model.openList(model.mailboxId, q);
    }, 250);
  };
  const openFolder = (id: string) => {
    setSearchText(''); setCursor(-1); setSelected(new Set()); setOpenId(null); setOpenEmail(null);
    setScreen('list'); setDrawer(false); setSettingsOpen(null);
    void model.openList(id, '');
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
          case 'j': case 'ArrowDown': { const n = step(cursorRef.current, 1, model.total); if (openId) openRow(n); else setCursor(n); return true; }
          case 'k': case 'ArrowUp': { const n = step(cursorRef.current, -1, model.total); if (openId) openRow(n); else setCursor(n); return true; }
          case 'o': case 'Enter': if (cursorRef.current >= 0) openRow(cursorRef.current); return true;
          case 'u': case 'Escape': if (help) setHelp(false); else closeIfGone(); return true;
          case 'r': startReply('reply'); return true;
          case 'a': startReply('replyall'); return true;
          case 'f': startReply('forward'); return true;
          case 'c': newMessage(); return true;
          case '#': case 'Delete': act.remove(); return true;
          case 'e': act.archive(); return true;
          case 's': { const id = rowIds()[0]; const em = id ? model.emails.get(id) : undefined; if (em) void act.flag(!em.keywords.$flagged); return true; }
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
  const open = openId ? model.emails.get(openId) : undefined;
  const firstSel = rowIds()[0];
  const subject = firstSel ? model.emails.get(firstSel) : undefined;
  const hasSelection = !!firstSel;
  const role = current?.role;
  const sel = rowIds().map((id) => model.emails.get(id)).filter(Boolean) as Email[];
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
          <ul>
            {model.tree().map(({ m, depth }) => (
              <li key={m.id} style={{ paddingLeft: `${depth * 14}px` }}>
                <a href={`#folder/${m.id}`} aria-current={m.id === model.mailboxId && !model.search ? 'page' : undefined}
                  class={`${m.myRights && m.myRights.mayAddItems === false ? 'readonly' : ''}${m.isSubscribed || m.role ? '' : ' unsub'}`}
                  title={m.isSubscribed || m.role ? undefined : 'Not subscribed: IMAP clients may not show it'}
                  onClick={(e) => { e.preventDefault(); openFolder(m.id); }}
                  onDragOver={(e) => { if (e.dataTransfer?.types.includes('application/x-loft-emails')) { e.preventDefault(); (e.currentTarget as HTMLElement).classList.add('drop'); } }}
                  onDragLeave={(e) => (e.currentTarget as HTMLElement).classList.remove('drop')}
                  onDrop={(e) => {
                    e.preventDefault(); (e.currentTarget as HTMLElement).classList.remove('drop');
                    try {
                      const ids = JSON.parse(e.dataTransfer?.getData('application/x-loft-emails') || '[]') as string[];
                      if (ids.length) { closeIfGone(); void after(model.move(ids, m.id, `Moved to ${m.name}`), `Moved to ${m.name}.`); }
                    } catch { /* not ours */ }
                  }}>
                  <Icon name={m.role ?? 'folder'} /><span class="fname">{model.displayName(m)}</span>
                  {m.unreadEmails > 0 && <>{' '}<span class="badge">{m.unreadEmails}<span class="sr-only"> unread</span></span></>}
                </a>
              </li>))}
          </ul>
          {quota.map((q, i) => <QuotaBar key={i} q={q} />)}
        </nav>
        <section class="listpane">
          <div class="list-head">
            <h1 class="folder-title">{model.search ? 'Search results' : current ? model.displayName(current) : ''}</h1>
            {model.searchNote && <span class="error">{model.searchNote}</span>}
            <span class="muted">{model.total.toLocaleString()} {model.settings.threads ? 'conversations' : 'messages'}</span>
            {(role === 'trash' || role === 'junk') && !model.search && current && current.totalEmails > 0 &&
              <button type="button" onClick={() => void emptyFolder(current)}>Empty {current.name}</button>}
            {role === 'trash' && !model.search && canRecover &&
              <button type="button" onClick={() => setRecoverOpen(true)}>Recover deleted messages</button>}
            <label class="sort"><span class="sr-only">Sort by</span>
              <select aria-label="Sort by" value={model.settings.sort} onChange={(e) => {
                void model.saveSettings({ sort: (e.target as HTMLSelectElement).value }).then(() => model.reloadList());
              }}><option value="receivedAt">Date</option><option value="from">Sender</option><option value="subject">Subject</option><option value="size">Size</option></select></label>
            <label class="check small"><input type="checkbox" checked={model.settings.threads} onChange={(e) => {
              void model.saveSettings({ threads: (e.target as HTMLInputElement).checked }).then(() => model.reloadList());
            }} /> Conversations</label>
          </div>
          {ready ? <MessageList model={model} cursor={cursor} selected={selected} openId={openId} onOpen={openRow}
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
              <button type="button" onClick={act.archive}><Icon name="archive" /><span>Archive</span></button>
              <button type="button" onClick={act.remove}><Icon name="trash" /><span>Delete</span></button>
              <button type="button" aria-haspopup="true" aria-expanded={moveMenu} onClick={() => setMoveMenu(!moveMenu)}><Icon name="move" /><span>Move to</span></button>
              <button type="button" onClick={() => void act.read(!allRead)}><Icon name="read" /><span>{allRead ? 'Mark as unread' : 'Mark as read'}</span></button>
              <button type="button" onClick={() => void act.flag(!anyFlag)}><Icon name="flag" /><span>{anyFlag ? 'Unflag' : 'Flag'}</span></button>
              {role === 'junk' ? <button type="button" onClick={() => act.junk(false)}><span>Not junk</span></button>
                : <button type="button" onClick={() => act.junk(true)}><Icon name="junk" /><span>Junk</span></button>}
              {selected.size > 1 && <span class="muted">{selected.size} selected</span>}
              {moveMenu && (
                <div class="menu-pop" role="group" aria-label="Move to folder">
                  {model.tree().filter(({ m }) => m.id !== model.mailboxId).map(({ m }) => (
                    <button type="button" key={m.id} onClick={() => { setMoveMenu(false); act.move(m.id, `Moved to ${m.name}`); }}>{model.path(m.id)}</button>))}
                </div>)}
            </div>)}
          {model.lastAction && <div class="undo-bar"><span>{model.lastAction.label}.</span><button type="button" onClick={act.undo}>Undo</button></div>}
          {open || openId ? <Reader model={model} emailId={openId!} onLoaded={setOpenEmail} onForwardAttachment={() => startReply('forwardatt')} onOpenId={(id) => { setOpenId(id); setSelected(new Set([id])); }}
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
