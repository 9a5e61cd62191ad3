// The Share dialog: who else may use one of the user's folders (RFC 9670
// sharing: Principal/query and /get for the people of the user's domain,
// Mailbox.shareWith read with Mailbox/get and written with Mailbox/set,
// one person per patch "shareWith/<principalId>"). Three levels cover
// what people ask for; the folder's IMAP ACL underneath is the same one
// IMAP clients (SETACL) and `loftctl acl` see.
import { useEffect, useState } from 'preact/hooks';
import type { Model, Mailbox } from './model';
import { describeErr } from './model';
import { CAP, pick } from './jmap';

type Rights = Record<string, boolean>;
interface Principal { id: string; name: string; email: string }

export const LEVELS: Array<{ key: string; label: string; rights: Rights }> = [
  { key: 'read', label: 'Can read', rights: { mayReadItems: true, maySetSeen: true } },
  { key: 'write', label: 'Can read and change', rights: {
    mayReadItems: true, maySetSeen: true, maySetKeywords: true, mayAddItems: true, mayRemoveItems: true, mayCreateChild: true } },
  { key: 'full', label: 'Full access (can share too)', rights: {
    mayReadItems: true, maySetSeen: true, maySetKeywords: true, mayAddItems: true, mayRemoveItems: true, mayCreateChild: true,
    mayRename: true, mayDelete: true, mayShare: true } },
];

/** The level a rights object amounts to: the highest whose rights it all has. */
export function levelOf(r: Rights): string {
  let best = 'custom';
  for (const l of LEVELS) if (Object.entries(l.rights).every(([k, v]) => !v || r[k])) best = l.key;
  return r.mayReadItems ? best : 'custom';
}

interface Props { model: Model; mailbox: Mailbox; onClose: () => void; notify: (t: string) => void }

export function ShareDialog({ model, mailbox, onClose, notify }: Props) {
  const [people, setPeople] = useState<Principal[] | null>(null);
  const [share, setShare] = useState<Record<string, Rights>>({});
  const [me, setMe] = useState('');
  const [who, setWho] = useState('');
  const [level, setLevel] = useState('read');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');
  const acc = model.j.accountId;

  const load = async () => {
    try {
      const rs = await model.j.call([
        ['Principal/get', { accountId: acc, ids: null, properties: ['name', 'email'] }, 'p'],
        ['Mailbox/get', { accountId: acc, ids: [mailbox.id], properties: ['shareWith'] }, 'm'],
      ]);
      setPeople((pick(rs, 'p', 'Principal/get').list as Principal[]).slice().sort((a, b) => a.email.localeCompare(b.email)));
      const m = (pick(rs, 'm', 'Mailbox/get').list as Array<{ shareWith: Record<string, Rights> | null }>)[0];
      setShare(m?.shareWith ?? {});
      const caps = model.j.session.accounts[acc]?.accountCapabilities[CAP.principals] as { currentUserPrincipalId?: string } | undefined;
      setMe(caps?.currentUserPrincipalId ?? '');
    } catch (x) { setErr(describeErr(x)); setPeople([]); }
  };
  useEffect(() => { void load(); }, []);

  const set = async (pid: string, rights: Rights | null, done: string) => {
    setBusy(true); setErr('');
    try {
      const r = await model.j.one('Mailbox/set', { update: { [mailbox.id]: { [`shareWith/${pid}`]: rights } } });
      const bad = (r.notUpdated as Record<string, { description?: string; type?: string }> | null)?.[mailbox.id];
      if (bad) throw new Error(bad.description || `The server refused: ${bad.type}.`);
      notify(done);
      await load();
    } catch (x) { setErr(describeErr(x)); } finally { setBusy(false); }
  };
  const byId = new Map((people ?? []).map((p) => [p.id, p]));
  const label = (pid: string) => byId.get(pid)?.email ?? pid;
  const others = (people ?? []).filter((p) => p.id !== me && !share[p.id]);
  const rightsOf = (key: string) => LEVELS.find((l) => l.key === key)!.rights;

  return (
    <div class="modal-back" onClick={onClose}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={`Share ${mailbox.name}`} onClick={(e) => e.stopPropagation()}>
        <div class="modal-head"><h2>Share {mailbox.name}</h2><button type="button" onClick={onClose}>Close</button></div>
        {err && <p class="error" role="alert">{err}</p>}
        {people === null ? <p class="muted">Loading…</p> : <>
          <h3>Shared with</h3>
          {Object.keys(share).length === 0 ? <p class="muted">Nobody else can see this folder.</p> : (
            <ul class="share-list" aria-label="Shared with">
              {Object.entries(share).map(([pid, r]) => (
                <li key={pid}>
                  <span class="who">{label(pid)}</span>
                  <select aria-label={`Access for ${label(pid)}`} disabled={busy} value={levelOf(r)}
                    onChange={(e) => { const k = (e.target as HTMLSelectElement).value; void set(pid, rightsOf(k), `${label(pid)}: ${LEVELS.find((l) => l.key === k)!.label.toLowerCase()}.`); }}>
                    {levelOf(r) === 'custom' && <option value="custom">Custom (set elsewhere)</option>}
                    {LEVELS.map((l) => <option key={l.key} value={l.key}>{l.label}</option>)}
                  </select>
                  <button type="button" disabled={busy} aria-label={`Stop sharing with ${label(pid)}`}
                    onClick={() => void set(pid, null, `${mailbox.name} is no longer shared with ${label(pid)}.`)}>Stop sharing</button>
                </li>))}
            </ul>)}
          <h3>Add a person</h3>
          {others.length === 0 ? <p class="muted">There is nobody else in your domain to share with.</p> : (
            <div class="row-form">
              <label class="field"><span>Person</span>
                <select value={who} onChange={(e) => setWho((e.target as HTMLSelectElement).value)}>
                  <option value="">Choose…</option>
                  {others.map((p) => <option key={p.id} value={p.id}>{p.name && p.name !== p.email ? `${p.name} <${p.email}>` : p.email}</option>)}
                </select></label>
              <label class="field"><span>Access</span>
                <select value={level} onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}>
                  {LEVELS.map((l) => <option key={l.key} value={l.key}>{l.label}</option>)}
                </select></label>
              <button type="button" class="primary" disabled={busy || !who}
                onClick={() => { const w = who; setWho(''); void set(w, rightsOf(level), `${mailbox.name} shared with ${label(w)}.`); }}>Share</button>
            </div>)}
        </>}
      </div>
    </div>
  );
}
