/*
 * Accounts and authentication: domains, users, aliases, password hashes,
 * quotas and per-account policies in data_dir/accounts.db (SQLite, WAL),
 * password verification (argon2id; {SHA512-CRYPT}, {BLF-CRYPT}, {ARGON2ID}
 * imported from Dovecot, re-hashed to argon2id at the first successful
 * PLAIN/LOGIN), SASL server mechanisms (PLAIN, LOGIN, SCRAM-SHA-256) and
 * throttling of failed logins per address and per account.
 *
 * Thread-safe: one struct auth serves every thread. Lookups read the
 * database each time (cheaply: cached while PRAGMA data_version is
 * unchanged), so loftctl changes take effect in a running loftd at once.
 * Verification is slow on purpose (argon2id): call it on a worker.
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

/* Checks a login name and password. remote: the client's IP address
 * without port (IPv6 counts per /64), for throttling. Failed attempts, from an address or against an account,
 * make later attempts slower (the call sleeps on the worker; 30 wrong
 * passwords in a row cost seconds). Uses a short-lived cache of
 * successful verifications so reconnecting clients stay cheap. */
enum auth_result auth_verify(struct auth *auth, const char *login,
			     const char *password, const char *remote,
			     struct auth_user *user_r);

/* Throttling without holding a worker asleep: a front-end that can wait
 * on a timer (on its I/O thread) asks for the delay before it hands the
 * login to a worker, waits that long, and passes what it waited to
 * auth_verify_waited / auth_sasl_set_waited, which then sleep only for
 * the rest (the account's share may have grown meanwhile). login NULL
 * (not known yet, e.g. before a SASL exchange): the address's share.
 * auth_verify is auth_verify_waited with waited_ms 0. */
uint32_t auth_throttle_delay_ms(struct auth *auth, const char *login,
				const char *remote);
enum auth_result auth_verify_waited(struct auth *auth, const char *login,
				    const char *password, const char *remote,
				    uint32_t waited_ms,
				    struct auth_user *user_r);

/* SASL: mechanisms offered; PLAIN and LOGIN only when cleartext_ok
 * (TLS, loopback, or allow_cleartext_remote). Space-separated. */
const char *auth_mechanisms(struct auth *auth, bool cleartext_ok);
bool auth_cleartext_allowed(struct auth *auth, bool tls, bool local);

/* A SASL exchange. begin fails (-1) for an unknown mechanism. step takes
 * the client's decoded response (NULL/0 for "no initial response"; an
 * empty response, IMAP "=" or an empty line, is non-NULL with length 0)
 * and gives the server's challenge to send (decoded; caller base64-encodes
 * and frees *out_r, which is NULL on FAIL/TEMPFAIL).
 * Returns AUTH_SASL_CONTINUE, AUTH_SASL_OK (user_r filled; *out is empty),
 * AUTH_SASL_FAIL or AUTH_SASL_TEMPFAIL (database trouble).
 * SCRAM-SHA-256 sends its server-final message (v=...) as a last
 * CONTINUE challenge and returns OK when the client answers it with an
 * empty response, so no protocol needs success-with-data. step sleeps on
 * the worker when the client is throttled, as auth_verify does. */
enum auth_sasl_status { AUTH_SASL_CONTINUE, AUTH_SASL_OK, AUTH_SASL_FAIL,
			AUTH_SASL_TEMPFAIL };
int auth_sasl_begin(struct auth *auth, const char *mech, const char *remote,
		    struct auth_sasl **sasl_r);
enum auth_sasl_status auth_sasl_step(struct auth_sasl *sasl, const void *in,
				     size_t in_len, char **out_r,
				     size_t *out_len_r, struct auth_user *user_r);
void auth_sasl_free(struct auth_sasl **sasl);
/* The front-end already waited waited_ms of the throttle delay (above). */
void auth_sasl_set_waited(struct auth_sasl *sasl, uint32_t waited_ms);

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
/* The account's own overrides (name = key, extra = value as stored). */
int auth_user_overrides(struct auth *auth, int64_t user_id, auth_list_fn *fn,
			void *ctx, char **error_r);
/* Which password scheme the account's hash uses ("ARGON2ID",
 * "SHA512-CRYPT", ...) and whether it has SCRAM-SHA-256 keys. */
int auth_user_scheme(struct auth *auth, int64_t user_id, char *scheme,
		     size_t scheme_size, bool *has_scram_r);

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
/* A Bearer token: throttled per address like a password. */
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

/* ---- what the store asks of the accounts (auth-store.c) ----------- */

struct store_account_limits;
struct store_retention_policy;
struct store_retention_source;
/* A store_limits_fn: ctx is the struct auth. */
int auth_store_limits(void *ctx, int64_t user_id,
		      struct store_account_limits *limits_r);
void auth_policy_to_retention(const struct auth_policy *policy,
			      struct store_retention_policy *retention_r);
/* Every account and its retention policy, for store_retention_start and
 * store_retention_run_accounts. */
struct store_retention_source auth_retention_source(struct auth *auth);

/* auth_user_set also takes the key "disabled" (yes/no), and the value
 * "default" for any policy key, which removes the account's override.
 * `loftctl user quota ADDRESS none` is auth_user_set(.., "quota_bytes",
 * "none"): an explicit "no limit" that overrides [policy]. */

#endif
