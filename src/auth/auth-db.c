/*
 * The accounts: domains, users (argon2id hash and SCRAM-SHA-256 keys),
 * aliases and per-account policy overrides, in data_dir/accounts.db or,
 * with `[auth] postgres`, in PostgreSQL where every node sees the same
 * (auth-sql.h). Every lookup queries the database through statements
 * prepared once per connection: a point query costs microseconds, and a
 * change committed by loftctl is seen by the next lookup without any
 * signal between the processes (or the nodes).
 *
 * Connections live in a small pool; a thread takes one for the duration of
 * one call, so lookups of different threads never wait on each other.
 */
#include "auth-private.h"

#include "buf.h"
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define USER_COLS                                                          \
	"id, address, disabled, password_hash, scram_salt, "                \
	"scram_iterations, scram_stored_key, scram_server_key"

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_USER_BY_ADDRESS] = "SELECT " USER_COLS " FROM users WHERE address = ?",
	[STMT_USER_BY_ID] = "SELECT " USER_COLS " FROM users WHERE id = ?",
	[STMT_ALIAS_TARGET] = "SELECT " USER_COLS " FROM users WHERE id = "
			      "(SELECT user_id FROM aliases WHERE address = ?)",
	[STMT_DOMAIN_EXISTS] = "SELECT 1 FROM domains WHERE name = ?",
	[STMT_USER_SETTINGS] = "SELECT key, value FROM user_settings "
			       "WHERE user_id = ? ORDER BY key",
	[STMT_REHASH] = "UPDATE users SET password_hash = ?, scram_salt = ?, "
			"scram_iterations = ?, scram_stored_key = ?, "
			"scram_server_key = ? WHERE id = ? AND password_hash = ?",
	/* the domain's first account: postmaster@ without its own */
	[STMT_POSTMASTER] = "SELECT " USER_COLS " FROM users WHERE domain_id = "
			    "(SELECT id FROM domains WHERE name = ?) AND "
			    "disabled = 0 ORDER BY id LIMIT 1",
};

/* ---- addresses ------------------------------------------------------- */

static bool valid_local_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

static int valid_domain(const char *d)
{
	size_t label = 0;
	if (*d == '\0' || strlen(d) > 253)
		return 0;
	for (const char *p = d; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)*p) ||
			   (*p == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && d[strlen(d) - 1] != '-';
}

static void lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

int auth_address_canon(const char *in, char *out, size_t out_size,
		       char **error_r)
{
	const char *at = strrchr(in, '@');
	size_t n = strlen(in);
	if (n > AUTH_ADDRESS_MAX || n >= out_size) {
		*error_r = xstrdup("address too long");
		return -1;
	}
	memcpy(out, in, n + 1);
	lower(out);
	if (at == NULL || at == in) {
		*error_r = xasprintf("'%s' is not an address (local@domain)", in);
		return -1;
	}
	/* Local parts are kept to a plain set: '+' is the detail separator
	 * (user+folder@domain) and must stay unambiguous. */
	for (const char *p = in; p < at; p++) {
		if (!valid_local_char(*p) ||
		    (*p == '.' && (p == in || p + 1 == at || p[1] == '.'))) {
			*error_r = xasprintf("'%s': local part may hold letters, "
					     "digits and . - _ only", in);
			return -1;
		}
	}
	if (!valid_domain(out + (at - in) + 1)) {
		*error_r = xasprintf("'%s': bad domain", in);
		return -1;
	}
	return 0;
}

static int domain_canon(const char *in, char *out, size_t out_size,
			char **error_r)
{
	if (strlen(in) >= out_size || !valid_domain(in)) {
		*error_r = xasprintf("'%s' is not a valid domain name", in);
		return -1;
	}
	strcpy(out, in);
	lower(out);
	return 0;
}

/* ---- connections ----------------------------------------------------- */

static void conn_free(struct auth_conn *c)
{
	for (int i = 0; i < STMT_COUNT; i++)
		asql_finalize(c->stmts[i]);
	asql_close(c->db);
	free(c);
}

/* A connection to where the accounts are. */
static int db_open(struct auth *auth, struct asql_conn **c_r, char **error_r)
{
	if (auth->pg_conninfo != NULL)
		return asql_pg_open(auth->pg_conninfo,
				    auth->set.postgres_timeout_secs, c_r,
				    error_r);
	return asql_sqlite_open(auth->db_path, c_r, error_r);
}

static struct auth_conn *conn_open(struct auth *auth, char **error_r)
{
	struct auth_conn *c = xcalloc(1, sizeof(*c));
	if (db_open(auth, &c->db, error_r) < 0) {
		free(c);
		return NULL;
	}
	for (int i = 0; i < STMT_COUNT; i++) {
		c->stmts[i] = c->db->drv->prepare(c->db, stmt_sql[i], true);
		if (c->stmts[i] == NULL) {
			*error_r = xasprintf("%s: %s", c->db->drv->name,
					     asql_errmsg(c->db));
			conn_free(c);
			return NULL;
		}
	}
	return c;
}

struct auth_conn *auth_conn_get(struct auth *auth, char **error_r)
{
	if (auth->client != NULL) {
		/* The mail process: accounts.db is the auth process's. */
		if (error_r != NULL)
			*error_r = xstrdup("accounts.db is not open in this "
					   "process");
		return NULL;
	}
	struct auth_conn *c;
	for (;;) {
		pthread_mutex_lock(&auth->pool_lock);
		c = auth->free_conns;
		if (c != NULL)
			auth->free_conns = c->next;
		pthread_mutex_unlock(&auth->pool_lock);
		/* the server ended it while it was idle (restart,
		 * failover): so it did the others of the pool */
		if (c == NULL || !c->db->drv->broken(c->db))
			break;
		conn_free(c);
	}
	if (c == NULL) {
		char *err = NULL;
		c = conn_open(auth, &err);
		/* PostgreSQL restarting or failing over: tried again for
		 * postgres_timeout, then the caller's temporary error */
		unsigned wait_ms = 50;
		int64_t left = auth->pg_conninfo == NULL ? 0
			: (int64_t)(auth->set.postgres_timeout_secs
				    ? auth->set.postgres_timeout_secs : 10) * 1000;
		while (c == NULL && left > 0) {
			struct timespec ts = {0, (long)wait_ms * 1000000L};
			nanosleep(&ts, NULL);
			left -= wait_ms;
			wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
			free(err);
			err = NULL;
			c = conn_open(auth, &err);
		}
		if (c == NULL) {
			if (error_r != NULL)
				*error_r = err;
			else {
				log_error("auth", NULL, "%s", err);
				free(err);
			}
		}
	}
	return c;
}

void auth_conn_put(struct auth *auth, struct auth_conn *c)
{
	if (c->db->drv->broken(c->db)) {
		conn_free(c);
		return;
	}
	for (int i = 0; i < STMT_COUNT; i++)
		asql_reset(c->stmts[i]);
	pthread_mutex_lock(&auth->pool_lock);
	c->next = auth->free_conns;
	auth->free_conns = c;
	pthread_mutex_unlock(&auth->pool_lock);
}

static int mkdir_p(const char *path, char **error_r)
{
	char *p = xstrdup(path);
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char save = *s;
			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				*error_r = xasprintf("mkdir %s: %s", p,
						     strerror(errno));
				free(p);
				return -1;
			}
			*s = save;
			if (save == '\0')
				break;
		}
	}
	free(p);
	return 0;
}

int auth_open(const struct auth_settings *set, struct auth **auth_r,
	      char **error_r)
{
	if (set->data_dir == NULL || *set->data_dir == '\0') {
		*error_r = xstrdup("data_dir is not set");
		return -1;
	}
	if (mkdir_p(set->data_dir, error_r) < 0)
		return -1;
	struct auth *auth = xcalloc(1, sizeof(*auth));
	auth->set = *set;
	auth->data_dir = xstrdup(set->data_dir);
	auth->set.data_dir = auth->data_dir;
	if (auth->set.cache_ttl_secs == 0 && !auth->set.cache_disabled)
		auth->set.cache_ttl_secs = 60;
	auth->defaults = set->defaults;
	atomic_store(&auth->cleartext_remote, set->allow_cleartext_remote);
	auth->db_path = xasprintf("%s/accounts.db", set->data_dir);
	if (set->postgres != NULL)
		auth->pg_conninfo = xstrdup(set->postgres);
	auth->set.postgres = auth->pg_conninfo;
	pthread_mutex_init(&auth->pool_lock, NULL);
	auth_map_init(&auth->cache, 10000);
	auth->gate = auth_gate_create(auth);
	if (RAND_bytes(auth->secret, sizeof(auth->secret)) != 1) {
		*error_r = xstrdup("no randomness for the auth secret");
		auth_close(&auth);
		return -1;
	}
	/* The schema before the first pooled connection prepares against
	 * it. */
	struct asql_conn *db = NULL;
	int rc = db_open(auth, &db, error_r);
	if (rc == 0)
		rc = asql_schema(db, error_r);
	asql_close(db);
	struct auth_conn *c;
	/* Password hashes: readable by the owner only (SQLite gives the
	 * -wal and -shm files the database file's mode). */
	if (rc == 0 && auth->pg_conninfo == NULL &&
	    chmod(auth->db_path, 0600) < 0)
		log_warn("auth", NULL, "chmod %s: %s", auth->db_path,
			 strerror(errno));
	if (rc == 0) {
		c = auth_conn_get(auth, error_r);
		if (c == NULL)
			rc = -1;
		else
			auth_conn_put(auth, c);
	}
	if (rc == 0 && auth_throttle_open(auth, &auth->set, auth->data_dir,
					  set->throttle_daemon, &auth->throttle,
					  error_r) < 0)
		rc = -1;
	/* counting here, with the accounts in PostgreSQL: shared */
	if (rc == 0 && set->throttle_daemon && auth->pg_conninfo != NULL)
		auth_throttle_share(auth->throttle, auth_throttle_direct_sync,
				    auth);
	if (rc < 0) {
		auth_close(&auth);
		return -1;
	}
	*auth_r = auth;
	return 0;
}

void auth_close(struct auth **authp)
{
	struct auth *auth = *authp;
	if (auth == NULL)
		return;
	/* The gate's hashes may be requests to the auth process. */
	auth_gate_destroy(&auth->gate);
	/* a shared throttle's last changes go through the auth process
	 * (auth-client.c) or the pool: before either closes */
	auth_throttle_close(&auth->throttle);
	while (auth->free_conns != NULL) {
		struct auth_conn *c = auth->free_conns;
		auth->free_conns = c->next;
		conn_free(c);
	}
	auth_client_close(auth);
	auth_map_deinit(&auth->cache);
	pthread_mutex_destroy(&auth->pool_lock);
	OPENSSL_cleanse(auth->secret, sizeof(auth->secret));
	free(auth->db_path);
	free(auth->pg_conninfo);
	free(auth->data_dir);
	free(auth);
	*authp = NULL;
}

void auth_reload(struct auth *auth, const struct auth_settings *set)
{
	atomic_store(&auth->cleartext_remote, set->allow_cleartext_remote);
	auth_throttle_reload(auth->throttle, set);
	if (auth->client != NULL)
		return;
	const char *data_dir = auth->set.data_dir;
	auth->set = *set;
	auth->set.data_dir = data_dir;
	/* where the accounts are needs a restart */
	auth->set.postgres = auth->pg_conninfo;
	if (auth->set.cache_ttl_secs == 0 && !auth->set.cache_disabled)
		auth->set.cache_ttl_secs = 60;
	auth->defaults = set->defaults;
}

/* ---- lookups --------------------------------------------------------- */

static void blob_copy(struct asql_stmt *st, int col, uint8_t *dst, size_t size,
		      size_t *len_r)
{
	size_t n;
	const void *p = asql_blob(st, col, &n);
	if (n > size || p == NULL)
		n = 0;
	if (n > 0)
		memcpy(dst, p, n);
	*len_r = n;
}

static void row_fill(struct asql_stmt *st, struct auth_user_row *row)
{
	memset(row, 0, sizeof(*row));
	row->user.id = asql_int64(st, 0);
	snprintf(row->user.address, sizeof(row->user.address), "%s",
		 asql_text(st, 1));
	row->user.disabled = (int)asql_int64(st, 2) != 0;
	snprintf(row->hash, sizeof(row->hash), "%s",
		 asql_text(st, 3));
	size_t sk, svk;
	blob_copy(st, 4, row->scram_salt, sizeof(row->scram_salt),
		  &row->scram_salt_len);
	row->scram_iterations = (uint32_t)asql_int64(st, 5);
	blob_copy(st, 6, row->stored_key, sizeof(row->stored_key), &sk);
	blob_copy(st, 7, row->server_key, sizeof(row->server_key), &svk);
	row->has_scram = row->scram_salt_len > 0 && row->scram_iterations > 0 &&
			 sk == AUTH_SCRAM_KEY_LEN && svk == AUTH_SCRAM_KEY_LEN;
}

/* Runs a prepared user statement bound to text or id. */
static int user_query(struct auth *auth, enum auth_stmt which,
		      const char *text, int64_t id, struct auth_user_row *row_r)
{
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = c->stmts[which];
	int rc;
	for (int attempt = 0;; attempt++) {
		st = c->stmts[which];
		if (text != NULL)
			asql_bind_text(st, 1, text);
		else
			asql_bind_int64(st, 1, id);
		rc = asql_step(st);
		/* the connection died under the lookup: once more on a
		 * fresh one (a read changes nothing) */
		if (rc >= 0 || attempt > 0 || !c->db->drv->broken(c->db))
			break;
		auth_conn_put(auth, c);
		if ((c = auth_conn_get(auth, NULL)) == NULL)
			return -1;
	}
	int ret;
	if (rc == ASQL_ROW) {
		row_fill(st, row_r);
		ret = 1;
	} else if (rc == ASQL_DONE) {
		ret = 0;
	} else {
		log_error("auth", NULL, "accounts.db lookup: %s",
			  asql_errmsg(c->db));
		ret = -1;
	}
	asql_reset(st);
	auth_conn_put(auth, c);
	return ret;
}

int auth_db_user_row(struct auth *auth, const char *address,
		     struct auth_user_row *row_r)
{
	char canon[AUTH_ADDRESS_MAX + 1];
	size_t n = strlen(address);
	if (n > AUTH_ADDRESS_MAX)
		return 0;
	memcpy(canon, address, n + 1);
	lower(canon);
	return user_query(auth, STMT_USER_BY_ADDRESS, canon, 0, row_r);
}

int auth_lookup(struct auth *auth, const char *address,
		struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_lookup(auth, address, user_r);
	struct auth_user_row row;
	char canon[AUTH_ADDRESS_MAX + 1];
	size_t n = strlen(address);
	if (n > AUTH_ADDRESS_MAX)
		return 0;
	memcpy(canon, address, n + 1);
	lower(canon);
	int rc = user_query(auth, STMT_USER_BY_ADDRESS, canon, 0, &row);
	if (rc == 0)
		rc = user_query(auth, STMT_ALIAS_TARGET, canon, 0, &row);
	if (rc == 1)
		*user_r = row.user;
	OPENSSL_cleanse(&row, sizeof(row));
	return rc;
}

int auth_lookup_postmaster(struct auth *auth, const char *domain,
			   struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_lookup_postmaster(auth, domain, user_r);
	struct auth_user_row row;
	char canon[256];
	size_t n = strlen(domain);
	if (n >= sizeof(canon))
		return 0;
	memcpy(canon, domain, n + 1);
	lower(canon);
	int rc = user_query(auth, STMT_POSTMASTER, canon, 0, &row);
	if (rc == 1)
		*user_r = row.user;
	OPENSSL_cleanse(&row, sizeof(row));
	return rc;
}

int auth_lookup_id(struct auth *auth, int64_t id, struct auth_user *user_r)
{
	if (auth->client != NULL)
		return auth_client_lookup_id(auth, id, user_r);
	struct auth_user_row row;
	int rc = user_query(auth, STMT_USER_BY_ID, NULL, id, &row);
	if (rc == 1)
		*user_r = row.user;
	OPENSSL_cleanse(&row, sizeof(row));
	return rc;
}

bool auth_domain_exists(struct auth *auth, const char *domain)
{
	if (auth->client != NULL)
		return auth_client_domain_exists(auth, domain);
	char canon[256];
	if (strlen(domain) >= sizeof(canon))
		return false;
	strcpy(canon, domain);
	lower(canon);
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return false;
	struct asql_stmt *st = c->stmts[STMT_DOMAIN_EXISTS];
	asql_bind_text(st, 1, canon);
	bool found = asql_step(st) == ASQL_ROW;
	asql_reset(st);
	auth_conn_put(auth, c);
	return found;
}

int auth_user_policy(struct auth *auth, int64_t user_id,
		     struct auth_policy *policy_r)
{
	if (auth->client != NULL)
		return auth_client_policy(auth, user_id, policy_r);
	*policy_r = auth->defaults;
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = c->stmts[STMT_USER_SETTINGS];
	asql_bind_int64(st, 1, user_id);
	int rc = asql_step(st);
	if (rc < 0 && c->db->drv->broken(c->db)) {
		/* the connection died under the lookup: once more */
		auth_conn_put(auth, c);
		if ((c = auth_conn_get(auth, NULL)) == NULL)
			return -1;
		st = c->stmts[STMT_USER_SETTINGS];
		asql_bind_int64(st, 1, user_id);
		rc = asql_step(st);
	}
	for (; rc == ASQL_ROW; rc = asql_step(st)) {
		const char *key = asql_text(st, 0);
		const char *value = asql_text(st, 1);
		char *error = NULL;
		/* Values were checked when set; a key this version does not
		 * know (written by a newer loftctl) is skipped, not fatal. */
		if (auth_policy_set(policy_r, key, value, &error) < 0) {
			log_warn("auth", NULL, "user %lld: %s",
				 (long long)user_id, error);
			free(error);
		}
	}
	int ret = rc == ASQL_DONE ? 0 : -1;
	if (ret < 0)
		log_error("auth", NULL, "accounts.db policy: %s",
			  asql_errmsg(c->db));
	asql_reset(st);
	/* accounts.db only: with accounts in PostgreSQL the store has one
	 * backend, postgres */
	int64_t where = 0;
	if (ret == 0 && auth->set.postgres == NULL &&
	    asql_int(c->db, &where, "SELECT mail_store FROM users WHERE id = ?",
		     "i", user_id) < 0) {
		log_error("auth", NULL, "accounts.db mail_store: %s",
			  asql_errmsg(c->db));
		ret = -1;
	}
	policy_r->mail_store = (int)where;
	auth_conn_put(auth, c);
	return ret;
}

/* ---- writes ---------------------------------------------------------- */

struct scram_cols {
	uint8_t salt[AUTH_SCRAM_SALT_LEN];
	uint32_t iterations;
	uint8_t stored_key[AUTH_SCRAM_KEY_LEN];
	uint8_t server_key[AUTH_SCRAM_KEY_LEN];
};

/* The hash and SCRAM keys for a new password (or an imported hash,
 * which has no SCRAM keys until the first PLAIN/LOGIN). */
static int make_secret(struct auth *auth, const char *address,
		       const char *password, bool is_hash, char *hash,
		       size_t hash_size, struct scram_cols *scram,
		       bool *has_scram_r, char **error_r)
{
	*has_scram_r = false;
	if (is_hash) {
		if (auth_hash_validate(password, error_r) < 0)
			return -1;
		snprintf(hash, hash_size, "%s", password);
		return 0;
	}
	size_t n = strlen(password);
	if (n == 0) {
		*error_r = xstrdup("empty password");
		return -1;
	}
	if (n > AUTH_PASSWORD_MAX) {
		*error_r = xasprintf("password longer than %d bytes",
				     AUTH_PASSWORD_MAX);
		return -1;
	}
	/* Hash and SCRAM keys are of the SASLprep form (RFC 4013), which is
	 * what SCRAM clients derive their proof from (RFC 5802 2.2). */
	char *prepped;
	if (auth_password_stored(&auth->set, address, password, &prepped,
				 error_r) < 0)
		return -1;
	scram->iterations = auth_scram_iterations(&auth->set);
	int rc = 0;
	if (auth_hash_password(&auth->set, prepped, hash, hash_size) < 0 ||
	    RAND_bytes(scram->salt, sizeof(scram->salt)) != 1 ||
	    auth_scram_keys(prepped, scram->salt, sizeof(scram->salt),
			    scram->iterations, scram->stored_key,
			    scram->server_key) < 0) {
		*error_r = xstrdup("password hashing failed");
		rc = -1;
	}
	OPENSSL_cleanse(prepped, strlen(prepped));
	free(prepped);
	*has_scram_r = rc == 0;
	return rc;
}

static void bind_scram(struct asql_stmt *st, int first, bool has,
		       const struct scram_cols *s)
{
	if (!has) {
		for (int i = 0; i < 4; i++)
			asql_bind_null(st, first + i);
		return;
	}
	asql_bind_blob(st, first, s->salt, sizeof(s->salt));
	asql_bind_int64(st, first + 1, s->iterations);
	asql_bind_blob(st, first + 2, s->stored_key, sizeof(s->stored_key));
	asql_bind_blob(st, first + 3, s->server_key, sizeof(s->server_key));
}

int auth_db_rehash(struct auth *auth, int64_t user_id, const char *old_hash,
		   const char *password)
{
	char hash[512];
	struct scram_cols scram;
	bool has_scram;
	char *error = NULL;
	if (make_secret(auth, NULL, password, false, hash, sizeof(hash),
			&scram, &has_scram, &error) < 0) {
		log_error("auth", NULL, "rehash of user %lld: %s",
			  (long long)user_id, error);
		free(error);
		return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, NULL);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = c->stmts[STMT_REHASH];
	asql_bind_text(st, 1, hash);
	bind_scram(st, 2, true, &scram);
	asql_bind_int64(st, 6, user_id);
	asql_bind_text(st, 7, old_hash);
	int rc = asql_step(st);
	if (rc != ASQL_DONE)
		log_error("auth", NULL, "rehash of user %lld: %s",
			  (long long)user_id, asql_errmsg(c->db));
	else if (asql_changes(c->db) > 0)
		log_info("auth", NULL, "user %lld: password re-hashed to argon2id",
			 (long long)user_id);
	asql_reset(st);
	auth_conn_put(auth, c);
	OPENSSL_cleanse(&scram, sizeof(scram));
	return rc == ASQL_DONE ? 0 : -1;
}

/* One admin statement (asql_run): the number of rows changed, or < 0. */
#define admin_exec(c, ...) asql_run((c)->db, __VA_ARGS__)

static int db_error(struct auth_conn *c, char **error_r)
{
	*error_r = xasprintf("%s: %s", c->db->drv->name, asql_errmsg(c->db));
	return -1;
}

static int64_t now_secs(void)
{
	return (int64_t)time(NULL);
}

int auth_domain_add(struct auth *auth, const char *domain, char **error_r)
{
	char canon[256];
	if (domain_canon(domain, canon, sizeof(canon), error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int rc = admin_exec(c, "INSERT INTO domains(name, created) "
			       "VALUES (?, ?) ON CONFLICT DO NOTHING", "si", canon, now_secs());
	if (rc < 0)
		db_error(c, error_r);
	else if (rc == 0)
		*error_r = xasprintf("domain %s already exists", canon);
	auth_conn_put(auth, c);
	return rc > 0 ? 0 : -1;
}

/* The first column of the first row (0 without one); 0, or -1. */
static int count_query(struct auth_conn *c, const char *sql, const char *arg,
		       int64_t *count_r)
{
	return asql_int(c->db, count_r, sql, "s", arg) < 0 ? -1 : 0;
}

int auth_domain_del(struct auth *auth, const char *domain, char **error_r)
{
	char canon[256];
	if (domain_canon(domain, canon, sizeof(canon), error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int64_t users = 0, aliases = 0;
	int ret = -1;
	if (asql_begin(c->db) < 0) {
		db_error(c, error_r);
		goto out;
	}
	if (count_query(c, "SELECT count(*) FROM users WHERE domain_id = "
			   "(SELECT id FROM domains WHERE name = ?)",
			canon, &users) < 0 ||
	    count_query(c, "SELECT count(*) FROM aliases WHERE address "
			   "LIKE '%@' || ?", canon, &aliases) < 0) {
		db_error(c, error_r);
	} else if (users > 0 || aliases > 0) {
		*error_r = xasprintf("domain %s still has %lld users and %lld "
				     "aliases; delete them first", canon,
				     (long long)users, (long long)aliases);
	} else {
		int rc = admin_exec(c, "DELETE FROM domains WHERE name = ?", "s",
				    canon);
		if (rc < 0)
			db_error(c, error_r);
		else if (rc == 0)
			*error_r = xasprintf("no domain %s", canon);
		else
			ret = 0;
	}
	if (asql_end(c->db, ret == 0) < 0 && ret == 0)
		ret = db_error(c, error_r);
out:
	auth_conn_put(auth, c);
	return ret;
}

static int64_t domain_id(struct auth_conn *c, const char *domain)
{
	int64_t id = 0;
	if (count_query(c, "SELECT id FROM domains WHERE name = ?", domain,
			&id) < 0)
		return -1;
	return id;
}

int auth_user_add(struct auth *auth, const char *address,
		  const char *password, bool is_hash, struct auth_user *user_r,
		  char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1], hash[512];
	struct scram_cols scram;
	bool has_scram;
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	/* Hash before taking the write lock: argon2 takes a while. */
	if (make_secret(auth, canon, password, is_hash, hash, sizeof(hash),
			&scram, &has_scram, error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int ret = -1;
	int64_t dom, alias = 0;
	if (asql_begin(c->db) < 0) {
		db_error(c, error_r);
		goto out;
	}
	dom = domain_id(c, strrchr(canon, '@') + 1);
	if (dom < 0 || count_query(c, "SELECT count(*) FROM aliases WHERE "
				      "address = ?", canon, &alias) < 0) {
		db_error(c, error_r);
	} else if (dom == 0) {
		*error_r = xasprintf("no domain %s (loftctl domain add %s)",
				     strrchr(canon, '@') + 1,
				     strrchr(canon, '@') + 1);
	} else if (alias > 0) {
		*error_r = xasprintf("%s is an alias", canon);
	} else {
		struct asql_stmt *st = asql_prepare(c->db,
			"INSERT INTO users(address, domain_id, "
			"password_hash, scram_salt, scram_iterations, "
			"scram_stored_key, scram_server_key, created) "
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
			"ON CONFLICT DO NOTHING RETURNING id");
		if (st == NULL) {
			db_error(c, error_r);
			goto rollback;
		}
		asql_bind_text(st, 1, canon);
		asql_bind_int64(st, 2, dom);
		asql_bind_text(st, 3, hash);
		bind_scram(st, 4, has_scram, &scram);
		asql_bind_int64(st, 8, now_secs());
		int rc = asql_step(st);
		int64_t id = rc == ASQL_ROW ? asql_int64(st, 0) : 0;
		while (rc == ASQL_ROW)
			rc = asql_step(st);
		asql_finalize(st);
		if (rc != ASQL_DONE)
			db_error(c, error_r);
		else if (id == 0)
			*error_r = xasprintf("user %s already exists", canon);
		else
			ret = 0;
		if (ret == 0 && user_r != NULL) {
			memset(user_r, 0, sizeof(*user_r));
			user_r->id = id;
			snprintf(user_r->address, sizeof(user_r->address),
				 "%s", canon);
		}
	}
rollback:
	if (asql_end(c->db, ret == 0) < 0 && ret == 0)
		ret = db_error(c, error_r);
out:
	auth_conn_put(auth, c);
	OPENSSL_cleanse(&scram, sizeof(scram));
	return ret;
}

int auth_user_passwd(struct auth *auth, const char *address,
		     const char *password, bool is_hash, char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1], hash[512];
	struct scram_cols scram;
	bool has_scram;
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	if (make_secret(auth, canon, password, is_hash, hash, sizeof(hash),
			&scram, &has_scram, error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int ret = -1;
	struct asql_stmt *st;
	if ((st = asql_prepare(c->db, "UPDATE users SET password_hash = ?, "
		"scram_salt = ?, scram_iterations = ?, scram_stored_key = ?, "
		"scram_server_key = ? WHERE address = ?")) == NULL) {
		db_error(c, error_r);
	} else {
		asql_bind_text(st, 1, hash);
		bind_scram(st, 2, has_scram, &scram);
		asql_bind_text(st, 6, canon);
		int rc = asql_step(st);
		asql_finalize(st);
		if (rc != ASQL_DONE)
			db_error(c, error_r);
		else if (asql_changes(c->db) == 0)
			*error_r = xasprintf("no user %s", canon);
		else
			ret = 0;
	}
	auth_conn_put(auth, c);
	OPENSSL_cleanse(&scram, sizeof(scram));
	return ret;
}

/* Deletes the row of address with sql ("DELETE ... WHERE address = ?");
 * what names the row in the "no such" error. */
static int delete_address(struct auth *auth, const char *sql,
			  const char *what, const char *address,
			  char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1];
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int rc = admin_exec(c, sql, "s", canon);
	if (rc < 0)
		db_error(c, error_r);
	else if (rc == 0)
		*error_r = xasprintf("no %s %s", what, canon);
	auth_conn_put(auth, c);
	return rc > 0 ? 0 : -1;
}

int auth_user_del(struct auth *auth, const char *address, char **error_r)
{
	/* Aliases and settings go with the user (ON DELETE CASCADE). */
	return delete_address(auth, "DELETE FROM users WHERE address = ?",
			      "user", address, error_r);
}

static bool known_policy_key(const char *key)
{
	for (int i = 0; auth_policy_keys[i] != NULL; i++) {
		if (strcmp(auth_policy_keys[i], key) == 0)
			return true;
	}
	return false;
}

int auth_user_set(struct auth *auth, const char *address, const char *key,
		  const char *value, char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1];
	if (auth_address_canon(address, canon, sizeof(canon), error_r) < 0)
		return -1;
	bool disabled = false;
	if (strcmp(key, "disabled") == 0) {
		if (config_parse_bool(value, &disabled) < 0) {
			*error_r = xstrdup("disabled: expected yes or no");
			return -1;
		}
	} else if (strcmp(key, "shared_admin") == 0) {
		/* issue 15: l and a on the domain's shared addresses */
		if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0 &&
		    strcmp(value, "default") != 0) {
			*error_r = xstrdup("shared_admin: expected yes or no");
			return -1;
		}
	} else if (!known_policy_key(key)) {
		*error_r = xasprintf("unknown key '%s'", key);
		return -1;
	} else if (strcmp(value, "default") != 0) {
		struct auth_policy p;
		auth_policy_defaults(&p);
		if (auth_policy_set(&p, key, value, error_r) < 0)
			return -1;
	}
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int rc;
	if (strcmp(key, "disabled") == 0) {
		rc = admin_exec(c, "UPDATE users SET disabled = ? WHERE "
				   "address = ?", "is", (int64_t)disabled, canon);
	} else if (strcmp(value, "default") == 0) {
		rc = admin_exec(c, "DELETE FROM user_settings WHERE key = ? AND "
				   "user_id = (SELECT id FROM users WHERE "
				   "address = ?)", "ss", key, canon);
		/* Removing an override that was not there is not an error,
		 * but the user must exist. */
		if (rc == 0)
			rc = admin_exec(c, "UPDATE users SET address = address "
					   "WHERE address = ?", "s", canon);
	} else {
		rc = admin_exec(c, "INSERT INTO user_settings(user_id, key, "
				   "value) SELECT id, ?, ? FROM users WHERE "
				   "address = ? ON CONFLICT (user_id, key) DO "
				   "UPDATE SET value = excluded.value", "sss",
				key, value, canon);
	}
	if (rc < 0)
		db_error(c, error_r);
	else if (rc == 0)
		*error_r = xasprintf("no user %s", canon);
	auth_conn_put(auth, c);
	return rc > 0 ? 0 : -1;
}

int auth_alias_add(struct auth *auth, const char *alias, const char *target,
		   char **error_r)
{
	char canon[AUTH_ADDRESS_MAX + 1], tcanon[AUTH_ADDRESS_MAX + 1];
	if (auth_address_canon(alias, canon, sizeof(canon), error_r) < 0 ||
	    auth_address_canon(target, tcanon, sizeof(tcanon), error_r) < 0)
		return -1;
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	int ret = -1;
	int64_t dom, is_user = 0, target_id = 0;
	if (asql_begin(c->db) < 0) {
		db_error(c, error_r);
		goto out;
	}
	dom = domain_id(c, strrchr(canon, '@') + 1);
	if (dom < 0 ||
	    count_query(c, "SELECT count(*) FROM users WHERE address = ?",
			canon, &is_user) < 0 ||
	    count_query(c, "SELECT id FROM users WHERE address = ?", tcanon,
			&target_id) < 0) {
		db_error(c, error_r);
	} else if (dom == 0) {
		*error_r = xasprintf("no domain %s", strrchr(canon, '@') + 1);
	} else if (is_user > 0) {
		*error_r = xasprintf("%s is a user", canon);
	} else if (target_id == 0) {
		*error_r = xasprintf("no user %s", tcanon);
	} else {
		int rc = admin_exec(c, "INSERT INTO aliases(address, user_id) "
				       "VALUES (?, ?) ON CONFLICT DO NOTHING",
				    "si", canon, target_id);
		if (rc < 0)
			db_error(c, error_r);
		else if (rc == 0)
			*error_r = xasprintf("alias %s already exists", canon);
		else
			ret = 0;
	}
	if (asql_end(c->db, ret == 0) < 0 && ret == 0)
		ret = db_error(c, error_r);
out:
	auth_conn_put(auth, c);
	return ret;
}

int auth_alias_del(struct auth *auth, const char *alias, char **error_r)
{
	return delete_address(auth, "DELETE FROM aliases WHERE address = ?",
			      "alias", alias, error_r);
}

/* ---- listings -------------------------------------------------------- */

int auth_db_list(struct auth *auth, const char *sql, bool bind_id,
		 int64_t id, const char *text, auth_list_fn *fn, void *ctx,
		 char **error_r)
{
	struct auth_conn *c = auth_conn_get(auth, error_r);
	if (c == NULL)
		return -1;
	struct asql_stmt *st = asql_prepare(c->db, sql);
	int rc;
	if (st == NULL) {
		db_error(c, error_r);
		auth_conn_put(auth, c);
		return -1;
	}
	if (bind_id)
		asql_bind_int64(st, 1, id);
	else if (text != NULL)
		asql_bind_text(st, 1, text);
	while ((rc = asql_step(st)) == ASQL_ROW) {
		fn(ctx, asql_text(st, 0), asql_text(st, 1));
	}
	int ret = rc == ASQL_DONE ? 0 : db_error(c, error_r);
	asql_finalize(st);
	auth_conn_put(auth, c);
	return ret;
}

static int list_query(struct auth *auth, const char *sql, bool bind_id,
		      int64_t id, auth_list_fn *fn, void *ctx, char **error_r)
{
	return auth_db_list(auth, sql, bind_id, id, NULL, fn, ctx, error_r);
}

int auth_domain_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		     char **error_r)
{
	return list_query(auth, "SELECT name, NULL FROM domains ORDER BY name",
			  false, 0, fn, ctx, error_r);
}

int auth_user_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		   char **error_r)
{
	if (auth->client != NULL)
		return auth_client_user_list(auth, fn, ctx, error_r);
	return list_query(auth, "SELECT address, CASE WHEN disabled <> 0 THEN "
				"'disabled' END FROM users ORDER BY address",
			  false, 0, fn, ctx, error_r);
}

int auth_alias_list(struct auth *auth, auth_list_fn *fn, void *ctx,
		    char **error_r)
{
	return list_query(auth, "SELECT a.address, u.address FROM aliases a "
				"JOIN users u ON u.id = a.user_id "
				"ORDER BY a.address",
			  false, 0, fn, ctx, error_r);
}

int auth_send_addresses(struct auth *auth, int64_t user_id, auth_list_fn *fn,
			void *ctx, char **error_r)
{
	if (auth->client != NULL)
		return auth_client_send_addresses(auth, user_id, fn, ctx,
						  error_r);
	return list_query(auth, "SELECT address, NULL FROM users WHERE id = ?1 "
				"UNION ALL SELECT * FROM (SELECT address, "
				"'alias' FROM aliases WHERE user_id = ?1 "
				"ORDER BY address) AS a",
			  true, user_id, fn, ctx, error_r);
}

int auth_user_overrides(struct auth *auth, int64_t user_id, auth_list_fn *fn,
			void *ctx, char **error_r)
{
	return list_query(auth, "SELECT key, value FROM user_settings WHERE "
				"user_id = ? ORDER BY key",
			  true, user_id, fn, ctx, error_r);
}

int auth_user_scheme(struct auth *auth, int64_t user_id, char *scheme,
		     size_t scheme_size, bool *has_scram_r)
{
	struct auth_user_row row;
	int rc = user_query(auth, STMT_USER_BY_ID, NULL, user_id, &row);
	if (rc == 1) {
		auth_hash_scheme(row.hash, scheme, scheme_size);
		*has_scram_r = row.has_scram;
	}
	OPENSSL_cleanse(&row, sizeof(row));
	return rc == 1 ? 0 : -1;
}
