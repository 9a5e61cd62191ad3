// "Recover deleted messages": the server keeps what was deleted for good
// (deleted from Trash, expunged by another client, removed by retention)
// for a number of days (LoftDeleted/get, LoftDeleted/recover in Loft's
// vendor capability, docs/jmap.md). Recovered messages go back to the
// folder they were deleted from (made again if it is gone) and arrive as
// new mail through the EventSource like any other change.
import { useEffect, useState } from 'preact/hooks';
import type { Model } from './model';
import { describeErr } from './model';
import { sizeText } from './reader';

export interface Deleted {
  id: string; mailbox: string; mailboxId: string | null; subject: string; from: string;
  preview: string; receivedAt: string; deletedAt: string; size: number;
}

interface Props { model: Model; onClose: () => void; notify: (t: string) => void }

const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function RecoverDialog({ model, onClose, notify }: Props) {
  const [days, setDays] = useState<number | null>(null);
  const [list, setList] = useState<Deleted[] | null>(null);
  const [more, setMore] = useState(false);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState('');

  const load = async () => {
    try {
      const r = await model.j.one('LoftDeleted/get', { limit: 500 });
      setList(r.list as Deleted[]);
      setMore(!!r.hasMore);
      setPicked(new Set());
    } catch (x) { setErr(describeErr(x)); setList([]); }
  };
  useEffect(() => {
    void load();
    model.j.one('LoftAccount/get', { ids: null })
      .then((r) => setDays(Number((r.list as Array<{ deletedRetentionDays?: number }>)[0]?.deletedRetentionDays) || null))
      .catch(() => setDays(null));
  }, []);

  const recover = async (args: Record<string, unknown>) => {
    setBusy(true); setErr('');
    try {
      const r = await model.j.one('LoftDeleted/recover', args);
      const n = Number(r.recovered);
      notify(n === 0 ? 'Nothing to recover.' : `${n === 1 ? '1 message' : `${n} messages`} recovered.`);
      await load();
    } catch (x) { setErr(describeErr(x)); } finally { setBusy(false); }
  };
  const toggle = (id: string, on: boolean) => {
    const s = new Set(picked);
    if (on) s.add(id); else s.delete(id);
    setPicked(s);
  };

  return (
    <div class="modal-back" onClick={onClose}>
      <div class="modal wide" role="dialog" aria-modal="true" aria-label="Recover deleted messages" onClick={(e) => e.stopPropagation()}>
        <div class="modal-head"><h2>Recover deleted messages</h2><button type="button" onClick={onClose}>Close</button></div>
        <p class="muted">{days ? `Messages deleted for good in the last ${days} days` : 'Messages deleted for good'} can be brought
          back to the folder they were deleted from.</p>
        {err && <p class="error" role="alert">{err}</p>}
        {list === null ? <p class="muted">Loading…</p> : list.length === 0 ? <p>There are no deleted messages to recover.</p> : <>
          <ul class="recover-list" aria-label="Deleted messages">
            {list.map((d) => (
              <li key={d.id}>
                <label class="check">
                  <input type="checkbox" checked={picked.has(d.id)} onChange={(e) => toggle(d.id, (e.target as HTMLInputElement).checked)} />
                  <span><b>{d.subject || '(no subject)'}</b> <span class="muted">from {d.from || 'unknown sender'}, {sizeText(d.size)}</span><br />
                    <span class="muted">deleted {when(d.deletedAt)} from {d.mailbox}{d.mailboxId ? '' : ' (folder deleted: it is made again)'}</span></span>
                </label>
              </li>))}
          </ul>
          {more && <p class="muted">Only the {list.length} most recently deleted are shown; “Recover all” brings back every one.</p>}
          <div class="row-buttons">
            <button type="button" class="primary" disabled={busy || picked.size === 0} onClick={() => void recover({ ids: [...picked] })}>Recover selected</button>
            <button type="button" disabled={busy} onClick={() => void recover({ all: true })}>Recover all</button>
          </div>
        </>}
      </div>
    </div>
  );
}
