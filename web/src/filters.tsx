// Settings > Filters: the account's Sieve scripts over JMAP for Sieve
// (RFC 9661: SieveScript/get, /set with onSuccessActivateScript, /validate;
// a script's text is a blob, uploaded and downloaded like any other). The
// same scripts ManageSieve clients and `loftctl sieve` see. The text is
// edited as Sieve; "Add rule" writes common rules from menus
// (sievebuild.ts), and "Check" asks the server's compiler before saving.
import { useEffect, useState } from 'preact/hooks';
import type { Model } from './model';
import { describeErr } from './model';
import { CAP, pick } from './jmap';
import { addRule, type Rule, type Field, type Action } from './sievebuild';

interface Script { id: string; name: string; isActive: boolean; blobId: string }
interface Props { model: Model; notify: (t: string) => void }

const NEW = '';

export function Filters({ model, notify }: Props) {
  const j = model.j;
  const acc = j.accountId;
  const [scripts, setScripts] = useState<Script[] | null>(null);
  const [sel, setSel] = useState<string>(NEW);
  const [name, setName] = useState('My filters');
  const [text, setText] = useState('');
  const [activate, setActivate] = useState(true);
  const [check, setCheck] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [rule, setRule] = useState<Rule>({ field: 'subject', text: '', action: 'fileinto', folder: '', stop: true });

  const call = async (name: string, args: Record<string, unknown>) => {
    const rs = await j.call([[name, { accountId: acc, ...args }, '0']]);
    return pick(rs, '0', name);
  };
  const load = async (pickId?: string) => {
    const r = await call('SieveScript/get', { ids: null });
    const list = (r.list as Script[]).slice().sort((a, b) => a.name.localeCompare(b.name));
    setScripts(list);
    const cur = list.find((s) => s.id === (pickId ?? sel)) ?? list.find((s) => s.isActive) ?? list[0];
    if (cur) await open(cur); else { setSel(NEW); setText(''); }
  };
  const open = async (s: Script) => {
    const r = await j.fetch(j.downloadUrl(s.blobId, `${s.name}.sieve`, 'application/sieve', false));
    if (!r.ok) throw new Error(`The filter could not be read (${r.status}).`);
    setSel(s.id); setName(s.name); setText(await r.text()); setActivate(s.isActive); setCheck(null);
  };
  useEffect(() => { load().catch((e) => { notify(describeErr(e)); setScripts([]); }); }, []);

  const upload = async () => (await j.upload(new Blob([text.replace(/\r?\n/g, '\r\n')], { type: 'application/sieve' }), () => {})).blobId;
  const run = async (what: () => Promise<void>) => {
    setBusy(true);
    try { await what(); } catch (e) { setCheck({ ok: false, text: describeErr(e) }); } finally { setBusy(false); }
  };
  const doCheck = () => run(async () => {
    const r = await call('SieveScript/validate', { blobId: await upload() });
    const err = r.error as { description?: string } | null;
    setCheck(err ? { ok: false, text: err.description ?? 'The filter has an error.' } : { ok: true, text: 'No errors found.' });
  });
  const save = () => run(async () => {
    if (!name.trim()) throw new Error('Give the filter set a name.');
    const blobId = await upload();
    const args: Record<string, unknown> = sel === NEW
      ? { create: { n: { name: name.trim(), blobId } } }
      : { update: { [sel]: { name: name.trim(), blobId } } };
    if (activate) args.onSuccessActivateScript = sel === NEW ? '#n' : sel;
    else if (scripts?.find((s) => s.id === sel)?.isActive) args.onSuccessDeactivateScript = true;
    const r = await call('SieveScript/set', args);
    const bad = ((r.notCreated ?? r.notUpdated) as Record<string, { description?: string; type?: string }> | null);
    const b = bad && Object.values(bad)[0];
    if (b) throw new Error(b.description || `The server refused the filter (${b.type}).`);
    const id = sel === NEW ? ((r.created as Record<string, { id: string }>).n.id) : sel;
    // read back first: opening the saved set clears the message
    await load(id);
    setCheck({ ok: true, text: activate ? 'Saved. New mail is filtered with it.' : 'Saved (not in use).' });
    notify('Filters saved.');
  });
  const remove = () => run(async () => {
    const s = scripts?.find((x) => x.id === sel);
    if (!s || !confirm(`Delete the filter set ${s.name}?`)) return;
    // the active set cannot be destroyed (sieveIsActive): off first
    if (s.isActive) await call('SieveScript/set', { onSuccessDeactivateScript: true });
    const r = await call('SieveScript/set', { destroy: [s.id] });
    const nd = r.notDestroyed as Record<string, { description?: string }> | null;
    if (nd && nd[s.id]) throw new Error(nd[s.id].description || 'The server refused.');
    notify('Filter set deleted.');
    setSel(NEW);
    await load(NEW);
  });
  const add = () => {
    try { setText(addRule(text, rule)); setRule({ ...rule, text: '' }); setCheck(null); } catch (e) { setCheck({ ok: false, text: describeErr(e) }); }
  };
  const folders = model.tree().map(({ m }) => ({ id: m.id, path: m.role === 'inbox' ? 'INBOX' : model.path(m.id), label: model.path(m.id) }));

  if (!j.has(CAP.sieve)) return <div class="form"><h3>Filters</h3><p>This server does not offer filters.</p></div>;
  return (
    <div class="form"><h3>Filters</h3>
      <p class="muted">Filters sort new mail as it arrives, on the server: they work whichever app you read with.</p>
      {scripts === null ? <p class="muted">Loading…</p> : <>
        <div class="row-form">
          <label class="field"><span>Filter set</span>
            <select value={sel} onChange={(e) => {
              const id = (e.target as HTMLSelectElement).value;
              const s = scripts.find((x) => x.id === id);
              if (s) void open(s).catch((x) => notify(describeErr(x)));
              else { setSel(NEW); setName('New filters'); setText(''); setActivate(scripts.length === 0); setCheck(null); }
            }}>
              {scripts.map((s) => <option key={s.id} value={s.id}>{s.name}{s.isActive ? ' (in use)' : ''}</option>)}
              <option value={NEW}>New filter set…</option>
            </select></label>
          <label class="field"><span>Name</span><input type="text" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
        </div>
        <fieldset class="rule">
          <legend>Add a rule</legend>
          <label class="field"><span>When</span>
            <select value={rule.field} onChange={(e) => setRule({ ...rule, field: (e.target as HTMLSelectElement).value as Field })}>
              <option value="subject">the subject</option><option value="from">the sender</option>
              <option value="to">a recipient (To or Cc)</option><option value="any">the subject or an address</option>
            </select></label>
          <label class="field"><span>contains</span><input type="text" value={rule.text} onInput={(e) => setRule({ ...rule, text: (e.target as HTMLInputElement).value })} /></label>
          <label class="field"><span>then</span>
            <select value={rule.action} onChange={(e) => setRule({ ...rule, action: (e.target as HTMLSelectElement).value as Action })}>
              <option value="fileinto">move it to</option><option value="seen">mark it as read</option>
              <option value="flag">flag it</option><option value="discard">delete it</option>
            </select></label>
          {rule.action === 'fileinto' && <label class="field"><span>Folder</span>
            <select value={rule.folder} onChange={(e) => setRule({ ...rule, folder: (e.target as HTMLSelectElement).value })}>
              <option value="">Choose…</option>
              {folders.map((f) => <option key={f.id} value={f.path}>{f.label}</option>)}
            </select></label>}
          <label class="check"><input type="checkbox" checked={rule.stop} onChange={(e) => setRule({ ...rule, stop: (e.target as HTMLInputElement).checked })} /> Stop here (later rules do not apply)</label>
          <button type="button" onClick={add}>Add rule</button>
        </fieldset>
        <label class="field"><span>Sieve script</span>
          <textarea class="sieve" spellcheck={false} value={text} onInput={(e) => { setText((e.target as HTMLTextAreaElement).value); setCheck(null); }} /></label>
        <label class="check"><input type="checkbox" checked={activate} onChange={(e) => setActivate((e.target as HTMLInputElement).checked)} /> Use this filter set for new mail</label>
        {check && <p class={check.ok ? 'ok' : 'error'} role={check.ok ? 'status' : 'alert'}>{check.text}</p>}
        <div class="row-buttons">
          <button type="button" disabled={busy} onClick={() => void doCheck()}>Check</button>
          <button type="button" class="primary" disabled={busy} onClick={() => void save()}>Save filters</button>
          {sel !== NEW && <button type="button" disabled={busy} onClick={() => void remove()}>Delete filter set</button>}
        </div>
      </>}
    </div>);
}
