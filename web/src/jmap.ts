// The webmail's only way to the server: JMAP (RFC 8620/8621, Quota
// RFC 9425) and its EventSource, the same API third-party clients use,
// plus the HTTP server's cookie sign-in (/auth/login|session|logout).
// Every POST carries the session's CSRF token (X-Loft-CSRF). A 401
// (expired session, sign-out elsewhere) pauses every call until the user
// signs in again (onSignedOut), then the call is retried, so nothing the
// user was doing - an open draft above all - is lost.

export const CAP = {
  core: 'urn:ietf:params:jmap:core',
  mail: 'urn:ietf:params:jmap:mail',
  submission: 'urn:ietf:params:jmap:submission',
  quota: 'urn:ietf:params:jmap:quota',
  vacation: 'urn:ietf:params:jmap:vacationresponse',
  loft: 'https://loft.example/jmap/webmail',
  principals: 'urn:ietf:params:jmap:principals',
  sieve: 'urn:ietf:params:jmap:sieve',
};

/** Timings of the live path for bench/webmail.mjs: off unless the page's
 * localStorage holds "loft-trace"; then [what, epoch ms] pairs go to a
 * bounded window.__loftTrace. */
export const trace: (what: string) => void = (() => {
  let on = false;
  try { on = !!localStorage.getItem('loft-trace'); } catch { /* no storage */ }
  if (!on) return () => {};
  const buf: Array<[string, number]> = [];
  (window as unknown as { __loftTrace: typeof buf }).__loftTrace = buf;
  return (what: string) => {
    if (buf.length > 10000) buf.splice(0, 5000);
    buf.push([what, performance.timeOrigin + performance.now()]);
  };
})();

export type Args = Record<string, unknown>;
export type Invocation = [string, Args, string];

export class JmapError extends Error {
  constructor(public type: string, message: string, public status = 0) { super(message); }
}

export interface WhoAmI { username: string; csrf: string }

async function readJson(r: Response): Promise<unknown> {
  const t = await r.text();
  try { return JSON.parse(t); } catch { return { detail: t }; }
}

/** Plain words for a failure the user may see. */
export function describe(e: unknown): string {
  if (e instanceof JmapError) return e.message;
  if (e instanceof TypeError) return 'The server cannot be reached. Check your connection.';
  return e instanceof Error ? e.message : String(e);
}

export async function whoAmI(): Promise<WhoAmI | null> {
  const r = await fetch('/auth/session', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) return null;
  if (!r.ok) throw new JmapError('http', `The server answered ${r.status}.`, r.status);
  return (await r.json()) as WhoAmI;
}

export async function signIn(username: string, password: string, remember: boolean): Promise<WhoAmI> {
  const r = await fetch('/auth/login', {
    method: 'POST', credentials: 'same-origin', cache: 'no-store',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password, remember }),
  });
  if (r.ok) return (await r.json()) as WhoAmI;
  const body = (await readJson(r)) as { detail?: string };
  if (r.status === 401 || r.status === 403) throw new JmapError('auth', 'Wrong email or password.', r.status);
  if (r.status === 429) throw new JmapError('auth', 'Too many attempts. Wait a moment and try again.', r.status);
  throw new JmapError('auth', body.detail ? String(body.detail) : `Sign-in failed (${r.status}).`, r.status);
}

export async function signOut(csrf: string): Promise<void> {
  await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Loft-CSRF': csrf } });
}

export interface Session {
  capabilities: Record<string, Record<string, unknown>>;
  accounts: Record<string, { name: string; isPersonal?: boolean; isReadOnly?: boolean;
    accountCapabilities: Record<string, Record<string, unknown>> }>;
  primaryAccounts: Record<string, string>;
  username: string;
  apiUrl: string; downloadUrl: string; uploadUrl: string; eventSourceUrl: string;
  state: string;
}

export class Jmap {
  session!: Session;
  accountId = '';
  csrf: string;
  /** called on 401; resolves once signed in again (new CSRF) */
  onSignedOut: () => Promise<string> = () => Promise.reject(new JmapError('auth', 'Signed out.'));
  private reauth: Promise<string> | null = null;

  constructor(csrf: string) { this.csrf = csrf; }

  private async relogin(): Promise<void> {
    if (!this.reauth) this.reauth = this.onSignedOut().finally(() => { this.reauth = null; });
    this.csrf = await this.reauth;
  }

  /** fetch with the cookie and CSRF; one retry after signing in again */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(init.headers);
      headers.set('X-Loft-CSRF', this.csrf);
      const r = await fetch(url, { ...init, headers, credentials: 'same-origin', cache: 'no-store' });
      if (r.status !== 401 || attempt > 0) return r;
      await this.relogin();
    }
  }

  async connect(): Promise<void> {
    const r = await this.fetch('/jmap/session');
    if (!r.ok) throw new JmapError('http', `The mail service answered ${r.status}.`, r.status);
    this.session = (await r.json()) as Session;
    this.accountId = this.session.primaryAccounts[CAP.mail];
  }

  /** Other users' accounts that share folders with this user (RFC 8620
   * 1.6.2: isPersonal false, with mail), by name. */
  sharedAccounts(): Array<{ id: string; name: string; readOnly: boolean }> {
    const out: Array<{ id: string; name: string; readOnly: boolean }> = [];
    for (const [id, a] of Object.entries(this.session?.accounts ?? {})) {
      if (id === this.accountId || a.isPersonal !== false || !a.accountCapabilities?.[CAP.mail]) continue;
      out.push({ id, name: a.name || id, readOnly: !!a.isReadOnly });
    }
    return out.sort((x, y) => x.name.localeCompare(y.name));
  }

  has(cap: string): boolean { return cap in (this.session?.capabilities ?? {}); }

  using(): string[] {
    // before the session is known (a fast start from the last visit's
    // ids), the capabilities this server always has
    if (!this.session) return [CAP.core, CAP.mail, CAP.submission, CAP.quota, CAP.loft];
    return Object.values(CAP).filter((c) => this.has(c));
  }

  // Requests in flight, at most the server's maxConcurrentRequests (RFC
  // 8620 2): past it the server refuses the request with a limit error,
  // and a refused Email/set would roll back a change the page already
  // shows. The browser may open 6 connections; the server allows 4.
  private inFlight = 0;
  private waiting: Array<() => void> = [];
  private maxInFlight(): number {
    const n = Number(this.session?.capabilities[CAP.core]?.maxConcurrentRequests);
    return Number.isInteger(n) && n > 0 ? n : 4;
  }
  private async slot(): Promise<void> {
    while (this.inFlight >= this.maxInFlight()) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
  }
  private unslot(): void {
    this.inFlight--;
    this.waiting.shift()?.();
  }

  /** One request; returns methodResponses. Throws on request-level errors.
   * Another client of the same account (a second tab, a phone) may hold
   * the account's slots: a maxConcurrentRequests refusal is retried. */
  async call(calls: Invocation[]): Promise<Invocation[]> {
    let r: Response;
    for (let attempt = 0; ; attempt++) {
      await this.slot();
      try {
        r = await this.fetch(this.session ? new URL(this.session.apiUrl).pathname : '/jmap/api', {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ using: this.using(), methodCalls: calls }),
        });
      } finally { this.unslot(); }
      if (r.ok) break;
      const p = (await readJson(r)) as { type?: string; detail?: string; limit?: string };
      if (p.limit === 'maxConcurrentRequests' && attempt < 20) {
        await new Promise((res) => setTimeout(res, 50 * Math.min(attempt + 1, 10)));
        continue;
      }
      throw new JmapError(p.type ?? 'http', p.detail ?? `The server answered ${r.status}.`, r.status);
    }
    const body = (await r.json()) as { methodResponses: Invocation[]; sessionState?: string };
    if (body.sessionState && this.session?.state && body.sessionState !== this.session.state) {
      this.session.state = body.sessionState;
      this.onSessionChange?.();
    }
    return body.methodResponses;
  }
  onSessionChange?: () => void;

  /** One method; throws its error as JmapError. */
  async one(name: string, args: Args): Promise<Args> {
    const rs = await this.call([[name, { accountId: this.accountId, ...args }, '0']]);
    return pick(rs, '0', name);
  }

  downloadUrl(blobId: string, name: string, type: string, attachment = true, accountId = this.accountId): string {
    const u = new URL(this.session.downloadUrl
      .replace('{accountId}', encodeURIComponent(accountId))
      .replace('{blobId}', encodeURIComponent(blobId))
      .replace('{name}', encodeURIComponent(name || 'download'))
      .replace('{type}', encodeURIComponent(type || 'application/octet-stream')));
    if (attachment) u.searchParams.set('disposition', 'attachment');
    return u.pathname + u.search;
  }

  /** Upload with progress (XHR: fetch has no upload progress). */
  upload(file: Blob, onProgress: (done: number, total: number) => void,
    signal?: AbortSignal): Promise<{ blobId: string; type: string; size: number }> {
    const url = new URL(this.session.uploadUrl.replace('{accountId}', encodeURIComponent(this.accountId))).pathname;
    const send = () => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open('POST', url);
      x.setRequestHeader('X-Loft-CSRF', this.csrf);
      x.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      x.upload.onprogress = (e) => onProgress(e.loaded, e.total || file.size);
      x.onload = () => resolve({ status: x.status, body: x.responseText });
      x.onerror = () => reject(new TypeError('network'));
      x.onabort = () => reject(new JmapError('abort', 'Upload cancelled.'));
      signal?.addEventListener('abort', () => x.abort());
      x.send(file);
    });
    return (async () => {
      let r = await send();
      if (r.status === 401) { await this.relogin(); r = await send(); }
      if (r.status === 413) throw new JmapError('tooLarge', 'The file is larger than the server accepts.', 413);
      if (r.status < 200 || r.status > 299) throw new JmapError('http', `Upload failed (${r.status}).`, r.status);
      return JSON.parse(r.body);
    })();
  }

  /** The push channel; onState gets each StateChange's changed map
   * (accountId -> type -> state: the user's own account and the accounts
   * that share folders with them). */
  eventSource(onState: (changed: Record<string, Record<string, string>>) => void, onOpen: () => void,
    onError: () => void): EventSource {
    const u = new URL(this.session.eventSourceUrl
      .replace('{types}', '*').replace('{closeafter}', 'no').replace('{ping}', '30'));
    const es = new EventSource(u.pathname + u.search, { withCredentials: true });
    es.addEventListener('state', (ev) => {
      try {
        const d = JSON.parse((ev as MessageEvent).data) as { changed?: Record<string, Record<string, string>> };
        trace('push');
        if (d.changed && typeof d.changed === 'object') onState(d.changed);
      } catch { /* a malformed event changes nothing */ }
    });
    es.onopen = onOpen;
    es.onerror = onError;
    return es;
  }
}

/** The response of call id with name, or throws its error. */
export function pick(rs: Invocation[], id: string, name: string): Args {
  for (const [n, a, cid] of rs) {
    if (cid !== id) continue;
    if (n === 'error') throw new JmapError(String(a.type), errorText(a), 0);
    if (n === name) return a;
  }
  throw new JmapError('serverFail', `No answer to ${name}.`);
}

export function errorText(e: Args): string {
  const t = String(e.type ?? 'error');
  const words: Record<string, string> = {
    overQuota: 'Your mailbox is full.',
    tooLarge: 'The message is too large.',
    forbidden: 'You are not allowed to do that.',
    notFound: 'It no longer exists (deleted on another device?).',
    mailboxHasChild: 'The folder has subfolders: delete or move them first.',
    mailboxHasEmail: 'The folder is not empty.',
    alreadyExists: 'A folder of that name already exists.',
    invalidProperties: 'The server refused a value.',
    serverUnavailable: 'The server is busy. Try again in a moment.',
    serverFail: 'The server failed to do it.',
    cannotCalculateChanges: 'The view is out of date.',
    forbiddenFrom: 'You may not send from that address.',
    forbiddenToSend: 'You may not send mail.',
    invalidEmail: 'The message could not be sent as written.',
    tooManyRecipients: 'Too many recipients.',
    noRecipients: 'Add at least one recipient.',
    invalidRecipients: 'A recipient address is not valid.',
    rateLimit: 'Too many messages sent; wait a moment.',
  };
  const desc = e.description ? ` (${String(e.description)})` : '';
  return (words[t] ?? `The server refused: ${t}.`) + desc;
}
