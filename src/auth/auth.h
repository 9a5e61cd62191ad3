/*
 * Accounts and authentication: domains, users, aliases, password hashes,
 * quotas and per-account policies in data_dir/accounts.db (SQLite, WAL),
 * password verification (argon2id; {SHA512-CRYPT}, {BLF-CRYPT}, {ARGON2ID}
 * imported from Dovecot, re-hashed to argon2id at the first successful
 * PLAIN/LOGIN), SASL server mechanisms (PLAIN, LOGIN, SCRAM-SHA-256), and
 * the login gate every front-end goes through: throttling of failed
 * logins per address, account and pair on timers, bans, a bounded pool
 * for password hashes (auth_login_*, "logins" below).
 *
 * Thread-safe: one struct auth serves every thread. Lookups read the
 * database each time (cheaply: cached while PRAGMA data_version is
 * unchanged), so loftctl changes take effect in a running loftd at once.
 */
#ifndef LOFT_AUTH_H
#define LOFT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct auth;
struct auth_sasl;
struct buf;
struct config;

/* What a POP3 DELE does at QUIT (DESIGN.md "POP3 policies"). AUTO: HIDE
 * while a syncing client (IMAP, JMAP, webmail) logged in within 30 days
 * (store_last_sync_login), else TRASH. */
enum auth_pop3_delete { AUTH_POP3_EXPUNGE, AUTH_POP3_HIDE, AUTH_POP3_TRASH,
			AUTH_POP3_AUTO };

/* Per-account policies; the server defaults come from [policy] and each
 * account may override any of them (loftctl user set ADDRESS KEY=VALUE).
 * 0 means "no limit" / "off". */
struct auth_policy {
	uint64_t quota_bytes;
	uint64_t quota_messages;
	enum auth_pop3_delete pop3_delete;       /* default auto */
	uint32_t pop3_retention_days;            /* default 0 (off) */
	uint32_t trash_retention_days;           /* default 30 */
	uint32_t junk_retention_days;            /* default 30 */
	bool over_quota_tempfail;                /* LMTP 452 4.2.2 vs 552 5.2.2 */
	bool send_as_any;     /* send_as = any: any sender address (own: the
				 account's addresses, auth_may_send_as) */
	bool sent_copy;       /* sent_copy = yes: SMTP submissions are kept in
				 Sent (default no: clients save their own) */
	/* Sieve (ManageSieve, JMAP): scripts per account (default 32) and
	 * their bytes in all (default 4M) */
	uint32_t sieve_max_scripts;
	uint64_t sieve_max_storage;
	/* undelete: removed messages kept this many days (default 14, 0:
	 * not kept), counted in the quota or not (default no) */
	uint32_t deleted_retention_days;
	bool deleted_in_quota;
	/* not a policy: where the account's mail lives while the store has
	 * both backends (accounts.db users.mail_store; enum store_backend),
	 * changed only by loftctl migrate-store (auth_user_mail_store_set) */
	int mail_store;
};

#define AUTH_PASSWORD_MIN_LENGTH 12

struct auth_settings {
	const char *data_dir;
	struct auth_policy defaults;
	bool allow_cleartext_remote;  /* plaintext auth without TLS from
					 non-loopback; default false */
	uint32_t argon2_t_cost;       /* 0: defaults (t=3, m=64 MiB, p=1) */
	uint32_t argon2_m_cost_kib;
	uint32_t argon2_parallelism;
	uint32_t scram_iterations;    /* 0: default 4096 (RFC 7677 minimum) */
	uint32_t cache_ttl_secs;      /* successful verifications remembered;
					 default 60 (set by _from_config) */
	bool cache_disabled;          /* cache_ttl = 0 in the config */
	uint32_t password_min_length; /* characters after SASLprep; default
					 12 (AUTH_PASSWORD_MIN_LENGTH) */
	uint32_t throttle_max_delay_ms; /* cap of one delay; 0: default 3000 */
	bool throttle_disabled;       /* never in production; tests only */
	uint32_t ban_after;           /* failures that ban an address; 0:
					 never (default 10) */
	uint32_t ban_time_secs;       /* first ban; doubles (default 900) */
	uint32_t hash_threads;        /* password hashes at once; 0: half the
					 cores, at least 1 */
	bool throttle_daemon;         /* loftd: keeps throttle.db current */
	/* [auth] postgres (default: [store] postgres when [store] backend
	 * = postgres): the accounts live there, shared by every node, not
	 * in data_dir/accounts.db. NULL: accounts.db. */
	const char *postgres;
	uint32_t postgres_timeout_secs;  /* [store] postgres_timeout, 10 */
};

/* Fills set_r from the top-level data_dir, [policy] (the keys of
 * auth_policy_keys, as `loftctl user set` takes them) and [auth]. Strings
 * in set_r point into cfg, which must outlive them. Unknown or malformed
 * keys in [policy] and [auth] are appended to errors as
 * "FILE:LINE: message\n"; returns -1 if there was any. */
int auth_settings_from_config(const struct config *cfg,
			      struct auth_settings *set_r, struct buf *errors);
/* Defaults only (no config): data_dir NULL, policy defaults, etc. */
void auth_settings_defaults(struct auth_settings *set_r);

struct auth_user {
	int64_t id;
	char address[320];            /* canonical login name, lowercase */
	bool disabled;
};

/* Opens (creating data_dir and accounts.db when missing) the account
 * database. *error_r (caller frees) says why it failed. */
int auth_open(const struct auth_settings *set, struct auth **auth_r,
	      char **error_r);
void auth_close(struct auth **auth);
/* Policy keys known to [policy] and `loftctl user set` (NULL-terminated). */
extern const char *const auth_policy_keys[];
/* Parses KEY=VALUE into policy; -1 with a message if unknown/invalid. */
int auth_policy_set(struct auth_policy *policy, const char *key,
		    const char *value, char **error_r);
/* The policy defaults when [policy] says nothing. */
void auth_policy_defaults(struct auth_policy *policy_r);
/* "auto", "trash", "hide", "expunge". */
const char *auth_pop3_delete_name(enum auth_pop3_delete d);

/* ---- lookups ------------------------------------------------------- */

/* Resolves an address (or alias) to its user. Case-insensitive.
 * 1 found, 0 no such user, -1 error. A detail part "user+folder@domain"
 * is NOT stripped here; the caller splits it. */
int auth_lookup(struct auth *auth, const char *address,
		struct auth_user *user_r);
int auth_lookup_id(struct auth *auth, int64_t id, struct auth_user *user_r);
/* The account that gets mail for postmaster@domain (RFC 5321 4.5.1:
 * always accepted) when the address is neither an account nor an alias:
 * the domain's first enabled account. 1/0/-1 as auth_lookup. */
int auth_lookup_postmaster(struct auth *auth, const char *domain,
			   struct auth_user *user_r);
/* The account's policy: defaults overridden by the account's settings. */
int auth_user_policy(struct auth *auth, int64_t user_id,
		     struct auth_policy *policy_r);
/* Whether a domain is local. */
bool auth_domain_exists(struct auth *auth, const char *domain);

/* ---- verification -------------------------------------------------- */

enum auth_result {
	AUTH_OK,
	AUTH_FAILED,       /* wrong user or password (never say which) */
	AUTH_DISABLED,
	AUTH_TEMPFAIL,     /* database trouble */
};

/* Checks a login name and password at once, argon2id included (slow),
 * with no throttling: for loftctl user verify and tests. A front-end
 * uses auth_login_password (below) instead. */
enum auth_result auth_verify(struct auth *auth, const char *login,
			     const char *password, const char *remote,
			     struct auth_user *user_r);

/* SASL: mechanisms offered; PLAIN and LOGIN only when cleartext_ok
 * (TLS, loopback, or allow_cleartext_remote). Space-separated. */
const char *auth_mechanisms(struct auth *auth, bool cleartext_ok);
bool auth_cleartext_allowed(struct auth *auth, bool tls, bool local);

/* A SASL exchange: begin fails (-1) for an unknown mechanism; the steps
 * go through auth_login_sasl; free it when the exchange is over (or the
 * session ends). SCRAM-SHA-256 sends its server-final message (v=...) as
 * a last CONTINUE challenge and ends with OK when the client answers it
 * with an empty response, so no protocol needs success-with-data.
 * AUTH_SASL_CHECK is internal to src/auth: a front-end never sees it. */
enum auth_sasl_status { AUTH_SASL_CONTINUE, AUTH_SASL_OK, AUTH_SASL_FAIL,
			AUTH_SASL_TEMPFAIL, AUTH_SASL_CHECK };
int auth_sasl_begin(struct auth *auth, const char *mech, const char *remote,
		    struct auth_sasl **sasl_r);
void auth_sasl_free(struct auth_sasl **sasl);

/* ---- logins: the one way a front-end checks credentials ------------ *
 *
 * IMAP LOGIN / AUTHENTICATE, POP3 PASS / AUTH, SMTP AUTH, HTTP Basic and
 * Bearer, ManageSieve AUTHENTICATE: the front-end hands the attempt to
 * the gate and returns; done(session, conn, result) runs later as a task
 * of the connection, on a worker, exactly once, unless:
 *  - the connection closes first (the client hung up, a timeout, the
 *    server stopping): done never runs and nothing is checked for it;
 *  - the client's address is banned: the protocol's banned_reply (net.h)
 *    is written and the connection closed, done never runs.
 * Until done runs the connection reads no commands (net.h "waiting
 * without a thread"); no thread sleeps meanwhile:
 *  - one address's attempts are checked one at a time, in order;
 *  - a throttled attempt waits on a timer: the back-off of its address,
 *    account and pair (only the pair's when the address logged into the
 *    account in the last 30 days);
 *  - a password found in the cache of recent logins is answered on the
 *    worker at once; any other goes to a pool of [auth] hash_threads
 *    threads that hash one password each at a time, the owners' logins
 *    (known pairs, then addresses without failures) first.
 * Call it from a task of conn (a worker: it may read the account
 * database). remote: the client's address, NULL for net_conn_peer(conn)
 * (HTTP behind a trusted proxy passes the forwarded one). */
struct net_conn;

struct auth_login_result {
	enum auth_result result;      /* AUTH_OK, _FAILED, _DISABLED, _TEMPFAIL */
	struct auth_user user;        /* AUTH_OK */
	/* auth_login_sasl: the status of the step (never AUTH_SASL_CHECK)
	 * and the challenge to send for CONTINUE (decoded, valid during
	 * done; the front-end base64-encodes it). */
	enum auth_sasl_status sasl;
	const char *out;
	size_t out_len;
};
typedef void auth_login_fn(void *session, struct net_conn *conn,
			   const struct auth_login_result *res);

void auth_login_password(struct auth *auth, struct net_conn *conn,
			 const char *remote, const char *login,
			 const char *password, auth_login_fn *done);
/* One step of a SASL exchange with the client's decoded response
 * (NULL/0 for "no initial response"; an empty response, IMAP "=" or an
 * empty line, is non-NULL with length 0). */
void auth_login_sasl(struct auth_sasl *sasl, struct net_conn *conn,
		     const void *in, size_t in_len, auth_login_fn *done);
/* An HTTP Bearer token (an app password): throttled per address. */
void auth_login_token(struct auth *auth, struct net_conn *conn,
		      const char *remote, const char *token,
		      auth_login_fn *done);

/* For net_set_admit (ctx: the struct auth): false for an address banned
 * for failed logins that has logged into no account in the last 30 days
 * (an owner's devices behind it keep connecting, and only their own
 * accounts let them in). */
bool auth_may_connect(void *auth, const char *ip);
/* loftd is stopping (after net_run, before net_destroy): the hash pool
 * finishes the hashes it runs and drops what waits. */
void auth_shutdown(struct auth *auth);

/* ---- who is held back (loftctl ban) -------------------------------- */

/* One address, account or pair with failures or a ban. */
struct auth_held {
	const char *kind;             /* "address", "account" or "pair" */
	const char *address;          /* NULL for an account; IPv6 as /64 */
	const char *account;          /* NULL for an address */
	uint32_t failures;            /* counted, not yet forgotten */
	uint32_t delay_ms;            /* its next attempt waits this long */
	int64_t banned_secs;          /* address: ban left, 0: none */
	int64_t forget_secs;          /* the failures are forgotten in */
	bool known;                   /* pair: logged in within 30 days */
};
typedef void auth_held_fn(void *ctx, const struct auth_held *held);
/* Addresses, then accounts, then pairs, each sorted. In loftd: what it
 * holds now; elsewhere: data_dir/throttle/throttle.db, as loftd last stored it
 * (at most a second old). */
int auth_ban_list(struct auth *auth, auth_held_fn *fn, void *ctx,
		  char **error_r);
/* Clears the failures and bans of an address (IPv6: its /64) or an
 * account, and of its pairs: 1 done, 0 nothing was held back, -1 with
 * *error_r (not an address nor an account, database trouble). Outside
 * loftd it also leaves a note that a running loftd applies within a
 * second. */
int auth_ban_del(struct auth *auth, const char *who, char **error_r);
/* One line for a held entry, as `loftctl ban list` prints it, e.g.
 * "address 192.0.2.7 banned 840s failures 10" or
 * "pair 192.0.2.1 alice@example.test delay 200ms failures 4
 * forgotten-in 590s known". */
void auth_held_format(const struct auth_held *held, char *out, size_t size);

/* ---- administration (loftctl) ------------------------------------- */

/* Whether password may become the password of address. It is prepared
 * with SASLprep (RFC 4013, as a stored string: unassigned code points and
 * control characters refused) and must then have at least
 * password_min_length characters and not contain the local part of the
 * address (any case; local parts of 3 characters or more). -1 with the
 * reason, fit for the admin (caller frees), in error_r. auth_user_add and
 * auth_user_passwd apply it to every password that is not an imported
 * hash; a webmail or JMAP password change must call them, never bypass. */
int auth_password_check(const struct auth_settings *set, const char *address,
			const char *password, char **error_r);

int auth_domain_add(struct auth *auth, const char *domain, char **error_r);
int auth_domain_del(struct auth *auth, const char *domain, char **error_r);
int auth_user_add(struct auth *auth, const char *address,
		  const char *password, bool is_hash, struct auth_user *user_r,
		  char **error_r);
int auth_user_passwd(struct auth *auth, const char *address,
		     const char *password, bool is_hash, char **error_r);
int auth_user_del(struct auth *auth, const char *address, char **error_r);
/* An account's own password change (the webmail, JMAP): the current
 * password must be right (an app password is not enough) and the new one
 * passes auth_password_check. In loftd both happen in the auth process,
 * so the mail process can never set a password without knowing the old
 * one. *error_r (caller frees) says why for AUTH_PASSWD_REFUSED. */
enum auth_passwd_change {
	AUTH_PASSWD_CHANGED,
	AUTH_PASSWD_WRONG,      /* the current password is not right */
	AUTH_PASSWD_REFUSED,    /* the new one is weak, or cannot be stored */
	AUTH_PASSWD_TEMPFAIL,   /* accounts.db or the auth process away */
};
enum auth_passwd_change auth_user_passwd_change(struct auth *auth,
						const char *address,
						const char *old_password,
						const char *new_password,
						char **error_r);
int auth_user_set(struct auth *auth, const char *address, const char *key,
		  const char *value, char **error_r);
int auth_alias_add(struct auth *auth, const char *alias, const char *target,
		   char **error_r);
int auth_alias_del(struct auth *auth, const char *alias, char **error_r);

/* Listings, sorted by name; fn is called once per row. For domains,
 * extra is NULL; for users, extra is "disabled" or NULL; for aliases,
 * extra is the target address. */
typedef void auth_list_fn(void *ctx, const char *name, const char *extra);
int auth_domain_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		     char **error_r);
int auth_user_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		   char **error_r);
int auth_alias_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		    char **error_r);
/* Backup and restore (auth-backup.c): an account's secret as stored
 * (hash and SCRAM keys, one line; caller frees), and an existing
 * account given such a secret. */
int auth_user_secret(struct auth *auth, int64_t user_id, char **secret_r,
		     char **error_r);
int auth_user_secret_set(struct auth *auth, const char *address,
			 const char *secret, char **error_r);
/* Its app passwords as stored (name = token name, extra = "HASH_HEX
 * CREATED EXPIRES", 0 never), and one added back from such a record: 1
 * added, 0 the account has that name or hash already, -1 error. */
int auth_token_hashes(struct auth *auth, int64_t user_id, auth_list_fn *fn,
		      void *ctx, char **error_r);
int auth_token_hash_add(struct auth *auth, const char *address,
			const char *name, const char *hash_hex, time_t created,
			time_t expires, char **error_r);
/* The account's own overrides (name = key, extra = value as stored). */
int auth_user_overrides(struct auth *auth, int64_t user_id, auth_list_fn *fn,
			void *ctx, char **error_r);
/* Which password scheme the account's hash uses ("ARGON2ID",
 * "SHA512-CRYPT", ...) and whether it has SCRAM-SHA-256 keys. */
int auth_user_scheme(struct auth *auth, int64_t user_id, char *scheme,
		     size_t scheme_size, bool *has_scram_r);

/* ---- DKIM keys shared by the nodes (auth-dkim.c) -------------------- */
/* With the accounts in PostgreSQL the DKIM private keys are rows every
 * node reads (docs/scale-out.md "Accounts"); each node's signer reads
 * copies in data_dir/dkim that dkim_keys_mirror (mailauth.h) keeps like
 * the rows. Whether they are shared (accounts in PostgreSQL): */
bool auth_dkim_shared(const struct auth *auth);
struct auth_dkim_key {
	char *domain, *selector;
	char *pem;                    /* NULL: deleted (the copies go) */
	time_t created;
};
/* Every row, deleted ones too; free with auth_dkim_keys_free. */
int auth_dkim_keys(struct auth *auth, struct auth_dkim_key **keys_r,
		   size_t *count_r, char **error_r);
void auth_dkim_keys_free(struct auth_dkim_key *keys, size_t count);
/* A key added (a deleted selector used again): 1, or 0 when the domain
 * has that selector already; -1 with *error_r. */
int auth_dkim_key_add(struct auth *auth, const char *domain,
		      const char *selector, const char *pem, time_t created,
		      char **error_r);
/* A key deleted: 1, or 0 when there is no such key; -1 with *error_r. */
int auth_dkim_key_del(struct auth *auth, const char *domain,
		      const char *selector, char **error_r);

/* ---- sending (auth-send.c) ------------------------------------------ */

/* Whether the account may use address as its envelope sender or From:
 * (SMTP submission, JMAP EmailSubmission, the webmail): its own address,
 * its aliases (also with a +detail), or anything under send_as = any.
 * 1 yes, 0 no, -1 lookup error. */
int auth_may_send_as(struct auth *auth, int64_t user_id, const char *address);
/* The addresses the account sends as (JMAP Identity): its own first
 * (extra NULL), then its aliases (extra "alias"), sorted. */
int auth_send_addresses(struct auth *auth, int64_t user_id, auth_list_fn *fn,
			void *ctx, char **error_r);

/* ---- app passwords (tokens) and web sessions (auth-token.c) -------- */

/* Tokens: "loft_" and 43 base64url characters, kept only as a SHA-256
 * hash. One works as an HTTP Bearer token (RFC 6750) and as the password
 * of an IMAP/POP3 (later SMTP) login of its account: an app password per
 * device. */
struct auth_token_info {
	char name[72];
	time_t created;
	time_t expires;               /* 0: never */
	time_t last_used;             /* 0: never (to the hour) */
};
typedef void auth_token_list_fn(void *ctx, const struct auth_token_info *info);
/* Creates a token for address (name NULL: "device-N"); expires 0: never.
 * *token_r is the secret, to be shown once (caller frees); *name_r (may
 * be NULL) the name given. -1 with a message for an unknown address or a
 * name already taken. */
int auth_token_add(struct auth *auth, const char *address, const char *name,
		   time_t expires, char **token_r, char **name_r,
		   char **error_r);
int auth_token_list(struct auth *auth, const char *address,
		    auth_token_list_fn *fn, void *ctx, char **error_r);
int auth_token_del(struct auth *auth, const char *address, const char *name,
		   char **error_r);
/* A Bearer token, checked at once (no throttling: front-ends use
 * auth_login_token). */
enum auth_result auth_token_verify(struct auth *auth, const char *token,
				   const char *remote, struct auth_user *user_r);
/* Whether s has a token's form (before any lookup). */
bool auth_token_syntax(const char *s);

/* Web sessions (the webmail's cookie): the id and a CSRF token are random
 * base64url strings; only the id's hash is stored. A session ends at
 * lifetime_secs after sign-in, or idle_secs after its last use (0: no
 * idle limit), or when deleted (sign-out). bind_address: a session that
 * works only from this client address (NULL: any). */
#define AUTH_SESSION_ID_SIZE 64
struct auth_session_params {
	unsigned lifetime_secs;
	unsigned idle_secs;
	const char *bind_address;
};
int auth_session_create(struct auth *auth, int64_t user_id,
			const struct auth_session_params *params,
			char id_r[AUTH_SESSION_ID_SIZE],
			char csrf_r[AUTH_SESSION_ID_SIZE], char **error_r);
/* AUTH_OK with the user and the session's CSRF token (csrf_r may be
 * NULL); AUTH_FAILED for an unknown, expired or foreign-address one. */
enum auth_result auth_session_check(struct auth *auth, const char *id,
				    const char *remote,
				    struct auth_user *user_r,
				    char csrf_r[AUTH_SESSION_ID_SIZE]);
int auth_session_delete(struct auth *auth, const char *id);
/* Ends every web session of the account (loftctl kick: its webmail is
 * signed out, the next request gets 401). How many ended, -1 on error.
 * Only where accounts.db is opened directly (loftctl), not through the
 * auth process. */
int auth_sessions_end(struct auth *auth, int64_t user_id);

/* ---- what the store asks of the accounts (auth-store.c) ----------- */

struct store_account_limits;
struct store_retention_policy;
struct store_retention_source;
/* loftctl migrate-store: the account's mail is served from backend
 * (enum store_backend) from now on. accounts.db only. */
int auth_user_mail_store_set(struct auth *auth, int64_t user_id,
			     int backend, char **error_r);
/* A store_limits_fn: ctx is the struct auth. */
int auth_store_limits(void *ctx, int64_t user_id,
		      struct store_account_limits *limits_r);
void auth_policy_to_retention(const struct auth_policy *policy,
			      struct store_retention_policy *retention_r);
/* Every account and its retention policy, for store_retention_start and
 * store_retention_run_accounts. */
struct store_retention_source auth_retention_source(struct auth *auth);

/* ---- shared mailboxes (auth-acl.c) --------------------------------- */

/* The groups user_id is a member of (ids, ascending; caller frees). */
int auth_user_groups(struct auth *auth, int64_t user_id, int64_t **ids_r,
		     size_t *count_r);
/* Owners who granted user_id (or a group of theirs, or anyone /
 * authenticated) something on some mailbox, from the reverse index: a
 * superset (stale hints), ascending; caller frees. */
int auth_acl_owners(struct auth *auth, int64_t user_id, int64_t **ids_r,
		    size_t *count_r);
/* A store_acl_hint_fn (ctx: the struct auth): records the grant. */
int auth_acl_hint(void *ctx, int64_t owner_id, int kind, int64_t id);
/* A group by name in a domain: 1 found (*id_r), 0 not, -1 error. */
int auth_group_lookup(struct auth *auth, const char *name,
		      const char *domain, int64_t *id_r);
/* "name@domain" of a group id into out: 1, 0 no such group, -1. */
int auth_group_name(struct auth *auth, int64_t id, char *out, size_t size);
/* An ACL identifier (RFC 4314 3, already SASLprep'd) of a mailbox of
 * owner_address: "anyone", "authenticated", "$group" (of the owner's
 * domain), an address; a leading "-" makes it negative. 0 with *kind_r
 * (enum store_acl_kind), *id_r; -1 with *error_r, a static "[CODE] text":
 * no such account or group (NONEXISTENT), the owner or another domain
 * without cross_domain (CANNOT). */
int auth_acl_identifier(struct auth *auth, const char *text,
			const char *owner_address, bool cross_domain,
			int *kind_r, int64_t *id_r, bool *negative_r,
			const char **error_r);
/* The text of an entry's identifier (caller frees); NULL for an account
 * or group that no longer exists (its entry is ignored). */
char *auth_acl_identifier_text(struct auth *auth, int kind, int64_t id,
			       bool negative, const char *owner_address);
/* Shared addresses (loftctl shared add|del|list): an account with no
 * password (no login ever succeeds) whose mail others reach through
 * ACLs, shown under the shared namespace. add makes the account; the
 * caller makes its mail. */
int auth_shared_add(struct auth *auth, const char *address,
		    struct auth_user *user_r, char **error_r);
/* 1 the account has shared_admin=yes (loftctl user set): l and a on
 * every shared address of its domain; 0 not, -1 error. */
int auth_user_shared_admin(struct auth *auth, int64_t user_id);
/* 1 a shared address, 0 not, -1 error. */
int auth_user_is_shared(struct auth *auth, int64_t user_id);
/* name = address; domain NULL: all. */
int auth_shared_list(struct auth *auth, const char *domain, auth_list_fn *fn,
		     void *ctx, char **error_r);
/* loftctl group add|del|list|members: groups are NAME@DOMAIN. */
int auth_group_add(struct auth *auth, const char *group, char **error_r);
/* A new group with its members (addresses, count), all or nothing: an
 * unknown address or an existing group changes nothing. */
int auth_group_add_members(struct auth *auth, const char *group,
			   char *const *addresses, size_t count,
			   char **error_r);
int auth_group_del(struct auth *auth, const char *group, char **error_r);
int auth_group_member(struct auth *auth, const char *group,
		      const char *address, bool add, char **error_r);
/* name = "name@domain", extra = "N members". */
int auth_group_list(struct auth *auth, const char *domain, auth_list_fn *fn,
		    void *ctx, char **error_r);
int auth_group_members(struct auth *auth, const char *group, auth_list_fn *fn,
		       void *ctx, char **error_r);

/* ---- a viewer on another account's mail (auth-share.c) ------------- */
struct store;
struct store_user;
struct store_error;
/* store_user_open_as for viewer_id (0: nobody logged in, a delivery)
 * on owner_id's mail, with the viewer's groups, domain and shared_admin
 * from accounts.db; cross_domain: [sharing] cross_domain. The owner's
 * own id gives an ordinary handle. */
int auth_viewer_open(struct auth *auth, struct store *store,
		     int64_t viewer_id, const char *viewer_address,
		     int64_t owner_id, const char *owner_address,
		     bool cross_domain, struct store_user **user_r,
		     struct store_error *err);
/* The same in two steps, for a caller opening many owners' mail for one
 * viewer (a LIST of the other users' namespaces): the viewer's part of
 * accounts.db read once (groups, shared_admin), then each owner's handle.
 * address is not copied: it must outlive v. */
struct auth_viewer {
	int64_t id;
	const char *address;
	int64_t *groups;
	size_t group_count;
	bool shared_admin;
	bool cross_domain;
};
int auth_viewer_load(struct auth *auth, int64_t viewer_id,
		     const char *viewer_address, bool cross_domain,
		     struct auth_viewer *v, struct store_error *err);
int auth_viewer_open_loaded(struct auth *auth, struct store *store,
			    const struct auth_viewer *v, int64_t owner_id,
			    const char *owner_address,
			    struct store_user **user_r, struct store_error *err);
void auth_viewer_free(struct auth_viewer *v);
/* loftctl check: the reverse index of owner_id made equal to what its
 * ACL rows (store_acl_all) grant, in one transaction; *added_r and
 * *removed_r say how many hints changed. 0, or -1 with *error_r. */
struct store_acl_row;
int auth_acl_hints_rebuild(struct auth *auth, int64_t owner_id,
			   const struct store_acl_row *rows, size_t count,
			   unsigned *added_r, unsigned *removed_r,
			   char **error_r);

/* auth_user_set also takes the key "disabled" (yes/no), and the value
 * "default" for any policy key, which removes the account's override.
 * `loftctl user quota ADDRESS none` is auth_user_set(.., "quota_bytes",
 * "none"): an explicit "no limit" that overrides [policy]. */

#endif
