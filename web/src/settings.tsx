// Settings: general options (kept on the server, LoftSettings), identities
// and signatures, vacation reply (once the server offers it), folders,
// storage (JMAP Quota), password, app passwords, "Set up a device" (from
// the real listeners) and the senders whose remote content loads.
import { useEffect, useState } from 'preact/hooks';
import type { Model, Settings as S } from './model';
import { describeErr } from './model';
import { CAP, errorText, type Args } from './jmap';
import type { Identity } from './compose';
import { sizeText } from './reader';
import { ShareDialog } from './share';
import { Filters } from './filters';

interface Props { model: Model; notify: (t: string) => void; onClose: () => void; identities: Identity[]; reloadIdentities: () => void; startTab?: string }

const TABS: Array<[string, string]> = [
  ['general', 'General'], ['identities', 'Identities'], ['vacation', 'Vacation reply'], ['filters', 'Filters'], ['folders', 'Folders'],
  ['storage', 'Storage'], ['password', 'Password'], ['apps', 'App passwords'], ['device', 'Set up a device'],
  ['remote', 'Remote content'],
];

export function Settings(p: Props) {
  const [tab, setTab] = useState(p.startTab ?? 'general');
  const tabs = TABS.filter(([k]) => (k !== 'vacation' || p.model.j.has(CAP.vacation)) && (k !== 'filters' || p.model.j.has(CAP.sieve)));
  return (
    <div class="settings" role="region" aria-label="Settings">
      <div class="settings-head"><h2>Settings</h2><button type="button" onClick={p.onClose}>Close settings</button></div>
      <div class="settings-body">
        <nav aria-label="Settings sections" class="settings-nav">
          <ul>{tabs.map(([k, l]) => <li key={k}><a href={`#settings/${k}`} aria-current={tab === k ? 'page' : undefined}
            onClick={(e) => { e.preventDefault(); setTab(k); }}>{l}</a></li>)}</ul>
        </nav>
        <div class="settings-page">
          {tab === 'general' && <General {...p} />}
          {tab === 'identities' && <Identities {...p} />}
          {tab === 'vacation' && <Vacation {...p} />}
          {tab === 'filters' && <Filters model={p.model} notify={p.notify} />}
          {tab === 'folders' && <Folders {...p} />}
          {tab === 'storage' && <Storage {...p} />}
          {tab === 'password' && <Password {...p} />}
          {tab === 'apps' && <Apps {...p} />}
          {tab === 'device' && <Device {...p} />}
          {tab === 'remote' && <Remote {...p} />}
        </div>
      </div>
    </div>
  );
}

function General({ model, notify }: Props) {
  const s = model.settings;
  const set = (patch: Partial<S>) => model.saveSettings(patch).catch((e) => notify(describeErr(e)));
  return (
    <form class="form" onSubmit={(e) => e.preventDefault()}>
      <h3>General</h3>
      <label class="field"><span>Theme</span>
        <select value={s.theme} onChange={(e) => set({ theme: (e.target as HTMLSelectElement).value as S['theme'] })}>
          <option value="auto">Follow the system</option><option value="light">Light</option><option value="dark">Dark</option>
        </select></label>
      <label class="check"><input type="checkbox" checked={s.threads} onChange={(e) => set({ threads: (e.target as HTMLInputElement).checked })} /> Group messages into conversations</label>
      <label class="field"><span>Sort by</span>
        <select value={s.sort} onChange={(e) => set({ sort: (e.target as HTMLSelectElement).value })}>
          <option value="receivedAt">Date</option><option value="from">Sender</option><option value="subject">Subject</option><option value="size">Size</option>
        </select></label>
      <label class="check"><input type="checkbox" checked={s.sortAscending} onChange={(e) => set({ sortAscending: (e.target as HTMLInputElement).checked })} /> Oldest (or smallest, A to Z) first</label>
      <label class="field"><span>Write messages in</span>
        <select value={s.compose} onChange={(e) => set({ compose: (e.target as HTMLSelectElement).value as S['compose'] })}>
          <option value="html">Rich text</option><option value="plain">Plain text</option>
        </select></label>
      <label class="field"><span>Undo send window (seconds)</span>
        <input type="number" min={0} max={10} value={s.undoSendSeconds}
          onChange={(e) => set({ undoSendSeconds: Math.max(0, Math.min(10, Number((e.target as HTMLInputElement).value) || 0)) })} /></label>
      <label class="check"><input type="checkbox" checked={s.notifications} onChange={async (e) => {
        const on = (e.target as HTMLInputElement).checked;
        if (on && 'Notification' in window && Notification.permission !== 'granted') {
          const r = await Notification.requestPermission();
          if (r !== 'granted') { notify('The browser does not allow notifications for this page.'); return; }
        }
        void set({ notifications: on });
      }} /> Show a notification when new mail arrives</label>
    </form>
  );
}

function Identities({ model, notify, identities, reloadIdentities }: Props) {
  const [edit, setEdit] = useState<Record<string, Partial<Identity>>>({});
  const [newEmail, setNewEmail] = useState('');
  const save = async (id: string) => {
    try {
      const r = await model.j.one('Identity/set', { update: { [id]: edit[id] } });
      const bad = (r.notUpdated as Record<string, Args> | null)?.[id];
      if (bad) throw new Error(errorText(bad));
      notify('Identity saved.'); setEdit((e) => ({ ...e, [id]: {} })); reloadIdentities();
    } catch (e) { notify(describeErr(e)); }
  };
  const add = async () => {
    try {
      const r = await model.j.one('Identity/set', { create: { n: { email: newEmail.trim(), name: '' } } });
      const bad = (r.notCreated as Record<string, Args> | null)?.n;
      if (bad) throw new Error(errorText(bad));
      setNewEmail(''); reloadIdentities();
    } catch (e) { notify(describeErr(e)); }
  };
  const del = async (id: string) => {
    try {
      const r = await model.j.one('Identity/set', { destroy: [id] });
      const bad = (r.notDestroyed as Record<string, Args> | null)?.[id];
      if (bad) throw new Error(errorText(bad));
      reloadIdentities();
    } catch (e) { notify(describeErr(e)); }
  };
  return (
    <div class="form">
      <h3>Identities and signatures</h3>
      {identities.map((i) => {
        const e = { ...i, ...edit[i.id] };
        return (
          <fieldset key={i.id}><legend>{i.email}</legend>
            <label class="field"><span>Name</span><input type="text" value={e.name}
              onInput={(x) => setEdit((d) => ({ ...d, [i.id]: { ...d[i.id], name: (x.target as HTMLInputElement).value } }))} /></label>
            <label class="field"><span>Signature</span><textarea value={e.textSignature}
              onInput={(x) => setEdit((d) => ({ ...d, [i.id]: { ...d[i.id], textSignature: (x.target as HTMLTextAreaElement).value } }))} /></label>
            <button type="button" onClick={() => void save(i.id)}>Save identity</button>
            {identities.length > 1 && <button type="button" onClick={() => void del(i.id)}>Remove identity</button>}
          </fieldset>);
      })}
      <label class="field"><span>Send also as (an alias of yours)</span>
        <input type="email" value={newEmail} onInput={(e) => setNewEmail((e.target as HTMLInputElement).value)} /></label>
      <button type="button" onClick={() => void add()} disabled={!newEmail.includes('@')}>Add identity</button>
    </div>
  );
}

function Vacation({ model, notify }: Props) {
  const [v, setV] = useState<Args | null>(null);
  useEffect(() => {
    model.j.one('VacationResponse/get', { ids: null }).then((r) => setV((r.list as Args[])[0] ?? {})).catch((e) => notify(describeErr(e)));
  }, []);
  if (!v) return <p class="muted">Loading…</p>;
  const save = async () => {
    try {
      const { id: _id, ...rest } = v;
      const r = await model.j.one('VacationResponse/set', { update: { singleton: rest } });
      const bad = (r.notUpdated as Record<string, Args> | null)?.singleton;
      if (bad) throw new Error(errorText(bad));
      notify('Vacation reply saved.');
    } catch (e) { notify(describeErr(e)); }
  };
  return (
    <div class="form"><h3>Vacation reply</h3>
      <label class="check"><input type="checkbox" checked={!!v.isEnabled} onChange={(e) => setV({ ...v, isEnabled: (e.target as HTMLInputElement).checked })} /> Reply automatically</label>
      <label class="field"><span>Subject</span><input type="text" value={String(v.subject ?? '')} onInput={(e) => setV({ ...v, subject: (e.target as HTMLInputElement).value || null })} /></label>
      <label class="field"><span>Reply</span><textarea value={String(v.textBody ?? '')} onInput={(e) => setV({ ...v, textBody: (e.target as HTMLTextAreaElement).value || null })} /></label>
      <button type="button" onClick={() => void save()}>Save vacation reply</button>
    </div>);
}

function Folders({ model, notify }: Props) {
  const [name, setName] = useState('');
  const [parent, setParent] = useState('');
  const [renames, setRenames] = useState<Record<string, string>>({});
  const [sharing, setSharing] = useState<string | null>(null);
  const [, force] = useState(0);
  const canShare = model.j.has(CAP.principals);
  const tree = model.tree();
  const act = async (args: Args, what: string) => {
    try { await model.mailboxSet(args, what); force((x) => x + 1); } catch (e) { notify(describeErr(e)); }
  };
  return (
    <div class="form"><h3>Folders</h3>
      <div class="row-form">
        <label class="field"><span>New folder name</span><input type="text" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        <label class="field"><span>Inside</span><select value={parent} onChange={(e) => setParent((e.target as HTMLSelectElement).value)}>
          <option value="">(top level)</option>{tree.map(({ m }) => <option key={m.id} value={m.id}>{model.path(m.id)}</option>)}</select></label>
        <button type="button" disabled={!name.trim()} onClick={() => { void act({ create: { n: { name: name.trim(), parentId: parent || null, isSubscribed: true } } }, 'Create folder'); setName(''); }}>Create folder</button>
      </div>
      <table class="folders-table"><thead><tr><th>Folder</th><th>Rename</th><th>Move into</th><th>Subscribed</th>{canShare && <th>Share</th>}<th>Delete</th></tr></thead>
        <tbody>{tree.map(({ m, depth }) => (
          <tr key={m.id}>
            <td style={{ paddingLeft: `${depth}em` }}>{m.name}{m.role ? ` (${m.role})` : ''}</td>
            <td>{!m.role && <><input type="text" aria-label={`New name for ${m.name}`} value={renames[m.id] ?? m.name}
              onInput={(e) => setRenames((r) => ({ ...r, [m.id]: (e.target as HTMLInputElement).value }))} />
              <button type="button" aria-label={`Rename ${m.name}`} onClick={() => void act({ update: { [m.id]: { name: (renames[m.id] ?? m.name).trim() } } }, 'Rename')}>Rename</button></>}</td>
            <td>{!m.role && <select aria-label={`Move ${m.name} into`} value={m.parentId ?? ''} onChange={(e) => void act({ update: { [m.id]: { parentId: (e.target as HTMLSelectElement).value || null } } }, 'Move folder')}>
              <option value="">(top level)</option>{tree.filter((t) => t.m.id !== m.id).map((t) => <option key={t.m.id} value={t.m.id}>{model.path(t.m.id)}</option>)}</select>}</td>
            <td><input type="checkbox" aria-label={`Subscribed to ${m.name}`} checked={m.isSubscribed}
              onChange={(e) => void act({ update: { [m.id]: { isSubscribed: (e.target as HTMLInputElement).checked } } }, 'Subscribe')} /></td>
            {canShare && <td>{m.myRights?.mayShare && <button type="button" aria-label={`Share ${m.name}`} onClick={() => setSharing(m.id)}>Share…</button>}</td>}
            <td>{!m.role && <button type="button" aria-label={`Remove folder ${m.name}`} onClick={() => {
              if (confirm(`Delete the folder ${m.name} and the ${m.totalEmails} messages in it?`)) void act({ destroy: [m.id], onDestroyRemoveEmails: true }, 'Delete folder');
            }}>Remove</button>}</td>
          </tr>))}</tbody></table>
      {sharing && model.mailboxes.get(sharing) && <ShareDialog model={model} mailbox={model.mailboxes.get(sharing)!} notify={notify} onClose={() => setSharing(null)} />}
    </div>);
}

export interface QuotaInfo { used: number; limit: number; name: string; resourceType: string }
export async function loadQuotas(model: Model): Promise<QuotaInfo[]> {
  if (!model.j.has(CAP.quota)) return [];
  const r = await model.j.one('Quota/get', { ids: null });
  return (r.list as Array<Args>).map((q) => ({ used: Number(q.used), limit: Number(q.hardLimit), name: String(q.name ?? ''), resourceType: String(q.resourceType) }));
}

export function QuotaBar({ q }: { q: QuotaInfo }) {
  const pct = q.limit > 0 ? Math.min(100, Math.round((q.used / q.limit) * 100)) : 0;
  const what = q.resourceType === 'octets' ? `${sizeText(q.used)} of ${sizeText(q.limit)}` : `${q.used.toLocaleString()} of ${q.limit.toLocaleString()} messages`;
  return (
    <div class={`quota${pct >= 90 ? ' warn' : ''}`}>
      <meter min={0} max={100} value={pct} low={75} high={90} optimum={0} aria-label={`Storage used: ${pct}%`} />
      <span>{what} used ({pct}%){pct >= 90 ? ': nearly full. Delete old mail or empty Trash.' : ''}</span>
    </div>);
}

function Storage({ model, notify }: Props) {
  const [qs, setQs] = useState<QuotaInfo[] | null>(null);
  useEffect(() => { loadQuotas(model).then(setQs).catch((e) => notify(describeErr(e))); }, []);
  return (<div class="form"><h3>Storage</h3>
    {qs === null ? <p class="muted">Loading…</p> : qs.length === 0 ? <p>There is no storage limit on this account.</p>
      : qs.map((q, i) => <QuotaBar key={i} q={q} />)}</div>);
}

function Password({ model, notify }: Props) {
  const [o, setO] = useState(''); const [n, setN] = useState(''); const [r, setR] = useState('');
  const [msg, setMsg] = useState('');
  const go = async (e: Event) => {
    e.preventDefault();
    if (n !== r) { setMsg('The new passwords differ.'); return; }
    try {
      await model.j.one('LoftAccount/changePassword', { oldPassword: o, newPassword: n });
      setO(''); setN(''); setR(''); setMsg('Your password has been changed.'); notify('Password changed.');
    } catch (x) { setMsg(describeErr(x)); }
  };
  return (
    <form class="form" onSubmit={go}><h3>Change password</h3>
      <label class="field"><span>Current password</span><input type="password" autocomplete="current-password" value={o} onInput={(e) => setO((e.target as HTMLInputElement).value)} /></label>
      <label class="field"><span>New password</span><input type="password" autocomplete="new-password" value={n} onInput={(e) => setN((e.target as HTMLInputElement).value)} /></label>
      <label class="field"><span>Repeat new password</span><input type="password" autocomplete="new-password" value={r} onInput={(e) => setR((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" disabled={!o || !n}>Change password</button>
      <p aria-live="polite">{msg}</p>
    </form>);
}

function Apps({ model, notify }: Props) {
  const [list, setList] = useState<Args[] | null>(null);
  const [name, setName] = useState('');
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const load = () => model.j.one('AppPassword/get', { ids: null }).then((r) => setList(r.list as Args[])).catch((e) => notify(describeErr(e)));
  useEffect(() => { void load(); }, []);
  const add = async () => {
    try {
      const r = await model.j.one('AppPassword/set', { create: { n: { name: name.trim() } } });
      const bad = (r.notCreated as Record<string, Args> | null)?.n;
      if (bad) throw new Error(errorText(bad));
      const c = (r.created as Record<string, Args>).n;
      setSecret({ name: String(c.name), secret: String(c.secret) }); setName(''); void load();
    } catch (e) { notify(describeErr(e)); }
  };
  const del = async (id: string, n: string) => {
    try { await model.j.one('AppPassword/set', { destroy: [id] }); notify(`${n} can no longer sign in.`); void load(); } catch (e) { notify(describeErr(e)); }
  };
  return (
    <div class="form"><h3>App passwords</h3>
      <p>An app password lets one device or program (a phone's mail app, a backup tool) sign in without your password. Remove it to lock that device out.</p>
      <div class="row-form">
        <label class="field"><span>Device name</span><input type="text" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        <button type="button" disabled={!name.trim()} onClick={() => void add()}>Create app password</button>
      </div>
      {secret && <div class="banner" role="note"><span>Password for {secret.name} (shown once): <code class="secret">{secret.secret}</code></span>
        <button type="button" onClick={() => setSecret(null)}>Done</button></div>}
      {list === null ? <p class="muted">Loading…</p> : list.length === 0 ? <p>No app passwords yet.</p> : (
        <table><thead><tr><th>Device</th><th>Created</th><th>Last used</th><th></th></tr></thead>
          <tbody>{list.map((t) => <tr key={String(t.id)}><td>{String(t.name)}</td><td>{new Date(String(t.created)).toLocaleDateString()}</td>
            <td>{t.lastUsed ? new Date(String(t.lastUsed)).toLocaleString() : 'never'}</td>
            <td><button type="button" aria-label={`Remove app password ${String(t.name)}`} onClick={() => void del(String(t.id), String(t.name))}>Remove</button></td></tr>)}</tbody></table>)}
    </div>);
}

export function pop3Words(policy: Args): string {
  const d = String(policy.pop3Delete ?? 'auto');
  const trashDays = Number(policy.trashRetentionDays ?? 30);
  const keep = Number(policy.pop3RetentionDays ?? 0);
  const trash = trashDays > 0 ? `moves to Trash, where it is deleted after ${trashDays} days` : 'moves to Trash';
  let s: string;
  switch (d) {
    case 'expunge': s = 'Mail your POP3 device deletes is deleted from the server for good: it disappears from your other devices and the webmail too.'; break;
    case 'hide': s = 'Mail your POP3 device deletes stays here, hidden from that device only: you still see it in the webmail and on your other devices, and it counts against your storage.'; break;
    case 'trash': s = `Mail your POP3 device deletes ${trash}.`; break;
    default: s = `Mail your POP3 device deletes stays here, hidden from that device, while you also read mail in the webmail or over IMAP (it counts against your storage); otherwise it ${trash}.`;
  }
  if (keep > 0) s += ` Mail a POP3 device has downloaded is removed from the server ${keep} days later.`;
  return s;
}

function Device({ model, notify }: Props) {
  const [svc, setSvc] = useState<{ hostname: string; services: Array<{ protocol: string; port: number; security: string }>; autoconfig: string; mobileconfig: string } | null>(null);
  const [pol, setPol] = useState<Args | null>(null);
  useEffect(() => {
    model.j.fetch('/setup/services.json').then((r) => r.json()).then(setSvc).catch((e) => notify(describeErr(e)));
    if (model.j.has(CAP.loft)) model.j.one('LoftAccount/get', { ids: null }).then((r) => setPol((r.list as Args[])[0] ?? null)).catch(() => setPol(null));
  }, []);
  const me = model.j.session.username;
  const names: Record<string, string> = { imap: 'IMAP (incoming mail, synchronised)', pop3: 'POP3 (incoming mail, downloaded)', submission: 'SMTP (outgoing mail)', smtp: 'SMTP (outgoing mail)', jmap: 'JMAP' };
  const host = location.hostname;
  return (
    <div class="form"><h3>Set up a device</h3>
      <p>Most mail apps set themselves up from your address and password (or an app password). If yours asks, use these settings. User name: <strong>{me}</strong>.</p>
      {svc === null ? <p class="muted">Loading…</p> : (
        <table><thead><tr><th>Service</th><th>Server</th><th>Port</th><th>Security</th></tr></thead>
          <tbody>{svc.services.filter((s) => s.protocol !== 'lmtp').map((s, i) => <tr key={i}><td>{names[s.protocol] ?? s.protocol}</td>
            <td>{svc.hostname || host}</td><td>{s.port}</td><td>{s.security === 'tls' ? 'SSL/TLS' : 'STARTTLS'}</td></tr>)}</tbody></table>)}
      {svc && <ul>
        <li><a href={`${svc.autoconfig}?emailaddress=${encodeURIComponent(me)}`}>Automatic set-up file (Thunderbird and others)</a></li>
        <li><a href={`${svc.mobileconfig}?emailaddress=${encodeURIComponent(me)}`}>Profile for iPhone, iPad and Mac</a></li>
      </ul>}
      <h4>POP3</h4>
      <p>{pol ? pop3Words(pol) : 'The server decides what happens to mail a POP3 device deletes.'}</p>
    </div>);
}

function Remote({ model, notify }: Props) {
  const list = model.settings.remoteContentSenders;
  const [add, setAdd] = useState('');
  const save = (l: string[]) => model.saveSettings({ remoteContentSenders: l }).catch((e) => notify(describeErr(e)));
  return (
    <div class="form"><h3>Remote content</h3>
      <p>Pictures and styles from other servers can tell the sender when and where you read a message. They load by themselves only for these senders ("@example.com" for a whole domain).</p>
      {list.length === 0 ? <p>No senders yet.</p> : <ul>{list.map((s) => <li key={s}>{s} <button type="button" aria-label={`Stop loading remote content from ${s}`} onClick={() => void save(list.filter((x) => x !== s))}>Remove</button></li>)}</ul>}
      <div class="row-form"><label class="field"><span>Sender or @domain</span><input type="text" value={add} onInput={(e) => setAdd((e.target as HTMLInputElement).value)} /></label>
        <button type="button" disabled={!add.includes('@')} onClick={() => { void save([...list, add.trim().toLowerCase()]); setAdd(''); }}>Add sender</button></div>
    </div>);
}
