/*
 * Message bodies of the PostgreSQL backend, by their SHA-256: the two
 * drivers ([store] blobs = file: blob_dir/<xx>/<sha256> on a directory
 * every node sees; blobs = s3: one object per body in [s3] bucket) and
 * the collector of bodies no row names.
 *
 * Every body has a row in blob_object (sha256, refs, orphan_since). A
 * body is named by the blob rows with its sha256 (found through the hash
 * index blob_sha: not counted, so that the copies of one delivery, each
 * in its own transaction, never update one shared row) and by the rows
 * refs counts (jupload, the queue's msgs: trigger loft_blob_ref). Then:
 *   - before its bytes are written, the row is made or refreshed
 *     (orphan_since = now() unless refs > 0: an upload whose commit never
 *     comes is an orphan from the start);
 *   - the transaction that adds a row naming it claims it first
 *     (pg_blob_claim: the row locked FOR KEY SHARE, which any number of
 *     transactions hold at once and which keeps out only a DELETE or a
 *     FOR UPDATE; refused when nothing names the body and it has been
 *     unnamed for longer than the grace period: the collector may be
 *     removing it);
 *   - a transaction that removes blob rows sets orphan_since of their
 *     bodies (statement trigger blob_gone), as loft_blob_ref does when
 *     refs falls to 0: orphan_since NULL means named;
 *   - the collector (one node at a time, under a lease that expires in
 *     the database's time) looks at rows whose orphan_since is past the
 *     grace period: those still named get orphan_since NULL (unless a
 *     removal set it meanwhile); the others it locks FOR UPDATE SKIP
 *     LOCKED, looks again in a statement of its own (a claim that
 *     committed before the lock is seen by then, one that comes after
 *     waits for it), removes the bytes, then the rows, in one
 *     transaction: a claim waits on the row lock and then finds the row
 *     gone (refused, the client retries), an upload waits and then makes
 *     the row again before writing the bytes anew.
 * The grace period (1 h) is longer than any command, so a read that
 * found a body's name just before its last row went still finds its
 * bytes.
 */
#include "pg-private.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blobcache.h"
#include "log.h"
#include "s3.h"

/* Step 10 -> 11: blob rows name their bodies without a count (see the
 * top): the hash index finds the rows naming a body (equality only, 4
 * bytes a row), the count trigger goes (refs keeps the other tables'
 * rows: jupload, the queue's msgs), and a statement that removes blob
 * rows sets orphan_since of their bodies once. */
const char pg_blob_names_sql[] =
	"CREATE INDEX blob_sha ON blob USING hash (sha256);"
	"DROP TRIGGER blob_ref ON blob;"
	"UPDATE blob_object o SET refs = o.refs - n.n FROM (SELECT sha256,"
	" count(*) n FROM blob GROUP BY sha256) n WHERE o.sha256 = n.sha256;"
	"CREATE FUNCTION loft_blob_gone() RETURNS trigger LANGUAGE plpgsql"
	" AS $f$ BEGIN"
	" UPDATE blob_object SET orphan_since = now() WHERE sha256 IN"
	" (SELECT sha256 FROM gone) AND refs = 0;"
	" RETURN NULL; END $f$;"
	"CREATE TRIGGER blob_gone AFTER DELETE ON blob REFERENCING OLD TABLE"
	" AS gone FOR EACH STATEMENT EXECUTE FUNCTION loft_blob_gone();";

/* The collector's lease and pace in loftd. */
#define LEASE_NAME "blob_collector"
#define LEASE_SECONDS 300
#define COLLECT_INTERVAL 600
#define COLLECT_BATCH 64

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

static char *read_secret(const char *path, char **error_r)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		*error_r = xasprintf("[s3] secret_key_file %s: %s", path,
				     strerror(errno));
		return NULL;
	}
	char line[512];
	char *ok = fgets(line, sizeof(line), f);
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (ok == NULL || line[0] == '\0') {
		*error_r = xasprintf("[s3] secret_key_file %s is empty", path);
		return NULL;
	}
	char *s = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return s;
}

int pg_blobs_open(struct store *store, struct store_error *err)
{
	const struct store_settings *set = &store->set;
	struct pg_store *s = PGS(store);
	s->grace = 3600;
	if (set->blob_dir != NULL)
		s->spool_dir = xasprintf("%s/tmp", set->blob_dir);
	else
		s->spool_dir = xasprintf("%s/spool", set->data_dir);
	if (mkdir(s->spool_dir, 0700) < 0 && errno != EEXIST)
		return store_set_error(err, STORE_ERR_TEMP, "Cannot make %s: %s",
				       s->spool_dir, strerror(errno));
	if (set->blobs != STORE_BLOBS_S3)
		return 0;
	char *error = NULL;
	char *secret = read_secret(set->s3_secret_key_file, &error);
	if (secret == NULL) {
		store_set_error(err, STORE_ERR_INVALID, "%s", error);
		free(error);
		return -1;
	}
	struct s3_settings s3set = {
		.endpoint = set->s3_endpoint,
		.bucket = set->s3_bucket,
		.region = set->s3_region,
		.access_key = set->s3_access_key,
		.secret_key = secret,
		.virtual_host = set->s3_virtual,
		.timeout = set->s3_timeout,
	};
	int ret = s3_open(&s3set, &s->s3, &error);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	if (ret < 0) {
		log_error("store", NULL, "%s", error);
		store_set_error(err, STORE_ERR_TEMP, "%s", error);
		free(error);
		return -1;
	}
	if (set->blob_cache > 0) {
		/* without it the node still serves, from the object store */
		char *dir = xasprintf("%s/blobcache", set->data_dir);
		s->cache = blob_cache_open(dir, set->blob_cache, &error);
		if (s->cache == NULL) {
			log_error("store", NULL, "%s", error);
			free(error);
		}
		free(dir);
	}
	return 0;
}

void pg_blobs_close(struct store *store)
{
	struct pg_store *s = PGS(store);
	s3_close(&s->s3);
	blob_cache_close(&s->cache);
	free(s->spool_dir);
	s->spool_dir = NULL;
}

static char *file_path(const struct pg_store *s, const char *sha)
{
	return xasprintf("%s/%.2s/%s", s->blob_dir, sha, sha);
}

/* The row first (refreshed: a fresh grace period for this upload). */
static int blob_register(struct store *store, const char *sha, uint64_t size,
			 struct store_error *err)
{
	struct pg_conn *c = pg_conn_get(store, err);
	if (c == NULL)
		return -1;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_str(&p, sha);
	pg_p_int(&p, (int64_t)size);
	/* a body blob rows name keeps a fresh orphan_since too: the
	 * collector finds them named, and clears it */
	int ret = pg_run(c, "INSERT INTO blob_object AS o (sha256, size,"
			 " orphan_since) VALUES ($1, $2, now())"
			 " ON CONFLICT (sha256) DO UPDATE SET orphan_since ="
			 " CASE WHEN o.refs = 0 THEN now() END", &p, err);
	pg_conn_put(store, c);
	return ret;
}

int pg_blobs_put(struct store *store, int fd, const char *tmp_path,
		 const char *sha, const unsigned char md5[16], uint64_t size,
		 struct store_error *err)
{
	struct pg_store *s = PGS(store);
	if (blob_register(store, sha, size, err) < 0)
		return -1;
	if (s->s3 != NULL) {
		char *error = NULL;
		if (s3_put_fd(s->s3, sha, fd, size, md5, &error) != S3_OK) {
			log_error("store", NULL, "s3: %s", error);
			free(error);
			return store_set_error(err, STORE_ERR_TEMP,
					       "Cannot store the message now");
		}
		/* new mail is read soon, most often through this node */
		blob_cache_put_file(s->cache, sha, tmp_path, fd, size);
		return 0;
	}
	char *dir = xasprintf("%s/%.2s", s->blob_dir, sha);
	char *path = file_path(s, sha);
	int ret = 0;
	if (mkdir(dir, 0700) == 0 && s->fsync)
		fsync_dir(s->blob_dir);
	/* the same bytes stored before: that file serves (never changes) */
	if (link(tmp_path, path) < 0 && errno != EEXIST) {
		int e = errno;
		log_error("store", NULL, "link %s: %s", path, strerror(e));
		ret = e == ENOSPC || e == EDQUOT
			      ? store_set_full(err)
			      : store_set_error(err, STORE_ERR_TEMP,
						"Cannot store the message now");
	} else if (s->fsync && fsync_dir(dir) < 0) {
		int e = errno;
		log_error("store", NULL, "fsync %s: %s", dir, strerror(e));
		ret = e == ENOSPC || e == EDQUOT
			      ? store_set_full(err)
			      : store_set_error(err, STORE_ERR_TEMP,
						"Cannot store the message now");
	}
	free(path);
	free(dir);
	return ret;
}

static int read_file(const char *path, char *out, uint64_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	uint64_t off = 0;
	while (off < size) {
		ssize_t n = pread(fd, out + off, size - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			errno = n == 0 ? EIO : errno;
			return -1;
		}
		off += (uint64_t)n;
	}
	/* longer than the index says: damaged too */
	char extra;
	ssize_t more = pread(fd, &extra, 1, (off_t)size);
	close(fd);
	if (more > 0) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* 0 read, -1 missing, -2 could not read (or the size differs). */
static int blob_read(struct store *store, const char *sha, char *out,
		     uint64_t size, int64_t user_id)
{
	struct pg_store *s = PGS(store);
	if (s->s3 != NULL) {
		char *error = NULL;
		enum s3_result r = s3_get(s->s3, sha, out, size, &error);
		if (r != S3_OK)
			log_error("store", NULL, "user %lld: s3: %s",
				  (long long)user_id, error);
		free(error);
		return r == S3_OK ? 0 : r == S3_NOTFOUND ? -1 : -2;
	}
	char *path = file_path(s, sha);
	int ret = 0;
	if (read_file(path, out, size) < 0) {
		int e = errno;
		log_error("store", NULL, "user %lld: read %s: %s",
			  (long long)user_id, path, strerror(e));
		ret = e == ENOENT ? -1 : -2;
	}
	free(path);
	return ret;
}

static bool sha_matches(const char *data, uint64_t size, const char *sha)
{
	unsigned char md[32];
	unsigned mdlen = 0;
	EVP_Digest(data, size, md, &mdlen, EVP_sha256(), NULL);
	char hex[65];
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return strlen(sha) == 64 && memcmp(hex, sha, 64) == 0;
}

int pg_blobs_read(struct store *store, int64_t user_id, const char *sha,
		  char *out, uint64_t size, struct store_error *err)
{
	struct pg_store *s = PGS(store);
	if (blob_cache_get(s->cache, sha, out, size) == 0) {
		if (sha_matches(out, size, sha))
			return 0;
		log_warn("store", NULL, "user %lld: the node's cached copy of"
			 " body %s is damaged: dropped, read again",
			 (long long)user_id, sha);
		blob_cache_drop(s->cache, sha);
	}
	if (blob_read(store, sha, out, size, user_id) < 0)
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message cannot be read now");
	if (!sha_matches(out, size, sha)) {
		log_error("store", NULL, "user %lld: body %s is damaged (its"
			  " SHA-256 does not match)", (long long)user_id, sha);
		store_set_error(err, STORE_ERR_TEMP, "The message is damaged");
		if (err != NULL)
			err->damaged = true;
		return -1;
	}
	blob_cache_put(s->cache, sha, out, size);
	return 0;
}

int pg_blobs_verify(struct store *store, const char *sha, uint64_t size)
{
	char *data = xmalloc(size + 1);
	int r = blob_read(store, sha, data, size, 0);
	if (r == 0 && !sha_matches(data, size, sha))
		r = -2;
	free(data);
	return r;
}

char *pg_blobs_name(struct store *store, const char *sha)
{
	struct pg_store *s = PGS(store);
	if (s->s3 != NULL)
		return xasprintf("s3 object %s", sha);
	return file_path(s, sha);
}

/* SQL: a row names blob_object o's body (with o.refs > 0 for the rows
 * refs counts). */
#define NAMED_BY_BLOB " EXISTS (SELECT 1 FROM blob b WHERE b.sha256 = o.sha256)"
/* SQL: o is past the grace period ($1 seconds) with no row refs counts. */
#define STALE " o.refs = 0 AND o.orphan_since <= now() -" \
	" make_interval(secs => $1::bigint)"

int pg_blob_claim(struct pg_tx *tx, const char *sha, int64_t *id_r,
		  const char *msgids, char **threads_r,
		  struct store_error *err)
{
	if (threads_r != NULL)
		*threads_r = NULL;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, PGS(tx->user->store)->grace);
	pg_p_str(&p, sha);
	if (msgids != NULL) {
		pg_p_int(&p, tx->user->id);
		pg_p_str(&p, msgids);
	}
	/* KEY SHARE: every recipient's copy of one body at once; only the
	 * collector's FOR UPDATE and DELETE wait for it (and it for them).
	 * Named or fresh first: the blob rows are looked at only for a body
	 * unnamed past the grace period as far as the row knows. */
#define CLAIM_SQL(what) "SELECT " what " FROM blob_object o WHERE"	\
	" o.sha256 = $2 AND (o.refs > 0 OR o.orphan_since IS NULL OR"	\
	" o.orphan_since > now() - make_interval(secs => $1::bigint) OR" \
	NAMED_BY_BLOB ") FOR KEY SHARE OF o"
	/* in the same round trip: the new blob row's id, and the threads
	 * of the account that its Message-IDs ($4) are in, the biggest
	 * first (pg-message.c thread_pick) */
	PGresult *r = pg_exec(tx->c, msgids != NULL
			      ? CLAIM_SQL("nextval('blob_id'), (SELECT"
					  " string_agg(t.thread::text, ','"
					  " ORDER BY (SELECT count(*) FROM"
					  " blob b WHERE b.user_id = $3 AND"
					  " b.thread = t.thread) DESC,"
					  " t.thread) FROM"
					  " (SELECT DISTINCT thread FROM"
					  " thread_ref WHERE user_id = $3 AND"
					  " msgid = ANY ($4::text[])) t)")
			      : id_r != NULL ? CLAIM_SQL("nextval('blob_id')")
			      : CLAIM_SQL("1"), &p, err);
#undef CLAIM_SQL
	if (r == NULL)
		return -1;
	int n = PQntuples(r);
	if (n > 0 && id_r != NULL)
		*id_r = pg_int(r, 0, 0);
	if (n > 0 && threads_r != NULL && msgids != NULL &&
	    !PQgetisnull(r, 0, 1))
		*threads_r = pg_strdup(r, 0, 1);
	PQclear(r);
	if (n == 0) {
		log_warn("store", NULL, "user %lld: body %s was unnamed past"
			 " the grace period (collected): the append is refused",
			 (long long)tx->user->id, sha);
		return store_set_error(err, STORE_ERR_TEMP,
				       "The message was not stored, try again");
	}
	return 0;
}

/* ---- the collector ------------------------------------------------------ */

static int blob_remove(struct pg_store *s, const char *sha)
{
	if (s->s3 != NULL) {
		blob_cache_drop(s->cache, sha);
		char *error = NULL;
		enum s3_result r = s3_delete(s->s3, sha, &error);
		if (r != S3_OK)
			log_error("store", NULL, "collector: s3: %s", error);
		free(error);
		return r == S3_OK ? 0 : -1;
	}
	char *path = file_path(s, sha);
	int ret = unlink(path) == 0 || errno == ENOENT ? 0 : -1;
	if (ret < 0)
		log_error("store", NULL, "collector: unlink %s: %s", path,
			  strerror(errno));
	free(path);
	return ret;
}

static int lease_take(struct pg_store *s, struct pg_conn *c, bool *got_r,
		      struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_str(&p, LEASE_NAME);
	pg_p_int(&p, (int64_t)s->node_id);
	pg_p_int(&p, LEASE_SECONDS);
	/* the database's clock: node clocks do not matter */
	PGresult *r = pg_exec(c, "INSERT INTO loft_lease AS l VALUES ($1, $2,"
			      " now() + make_interval(secs => $3::bigint))"
			      " ON CONFLICT (name) DO UPDATE SET holder ="
			      " excluded.holder, expires = excluded.expires"
			      " WHERE l.expires < now() OR l.holder = excluded.holder"
			      " RETURNING 1", &p, err);
	if (r == NULL)
		return -1;
	*got_r = PQntuples(r) == 1;
	PQclear(r);
	return 0;
}

static void lease_drop(struct pg_store *s, struct pg_conn *c)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_str(&p, LEASE_NAME);
	pg_p_int(&p, (int64_t)s->node_id);
	pg_run(c, "UPDATE loft_lease SET expires = now() WHERE name = $1"
	       " AND holder = $2", &p, NULL);
}

/* The rows of bodies still named among the oldest past the grace
 * period: orphan_since NULL (named), in a transaction of its own. Not
 * when a removal set orphan_since meanwhile (the row's newer version is
 * looked at again after waiting for its lock). *cleared_r: how many. */
static int collect_named(struct pg_conn *c, unsigned grace,
			 uint64_t *cleared_r, struct store_error *err)
{
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, grace);
	pg_p_int(&p, COLLECT_BATCH);
	PGresult *r = pg_exec(c, "UPDATE blob_object o SET orphan_since = NULL"
			      " WHERE o.sha256 IN (SELECT sha256 FROM"
			      " blob_object o WHERE" STALE " ORDER BY"
			      " orphan_since LIMIT $2) AND" STALE " AND"
			      NAMED_BY_BLOB, &p, err);
	if (r == NULL)
		return -1;
	*cleared_r = strtoull(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* One batch: 1 removed or cleared some, 0 none left, -1 error. */
static int collect_batch(struct pg_store *s, struct pg_conn *c, unsigned grace,
			 struct store_collect_report *rep,
			 struct store_error *err)
{
	uint64_t cleared = 0;
	if (collect_named(c, grace, &cleared, err) < 0)
		return -1;
	if (pg_cmd(c, "BEGIN", err) < 0)
		return -1;
	c->in_tx = true;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_int(&p, grace);
	pg_p_int(&p, COLLECT_BATCH);
	PGresult *r = pg_exec(c, "SELECT sha256 FROM blob_object o WHERE"
			      STALE " AND NOT" NAMED_BY_BLOB
			      " ORDER BY orphan_since LIMIT $2"
			      " FOR UPDATE OF o SKIP LOCKED", &p, err);
	if (r == NULL)
		return -1;
	struct buf arr;
	buf_init(&arr, 0);
	buf_append_char(&arr, '{');
	for (int i = 0; i < PQntuples(r); i++) {
		if (i > 0)
			buf_append_char(&arr, ',');
		buf_append_str(&arr, PQgetvalue(r, i, 0));
	}
	buf_append_char(&arr, '}');
	PQclear(r);
	/* Again, under the locks, in a statement of its own (its snapshot
	 * taken now): a claim that held the row while the statement above
	 * ran has committed by the time the lock was had, and its blob row
	 * shows here; one that comes later waits for this transaction. */
	pg_p_init(&p);
	pg_p_int(&p, grace);
	pg_p_str(&p, arr.data);
	r = pg_exec(c, "SELECT sha256, size FROM blob_object o WHERE"
		    " o.sha256 = ANY ($2::text[]) AND" STALE " AND NOT"
		    NAMED_BY_BLOB, &p, err);
	buf_free(&arr);
	if (r == NULL)
		return -1;
	int n = PQntuples(r), ret = n > 0 || cleared > 0 ? 1 : 0;
	buf_init(&arr, 0);
	buf_append_char(&arr, '{');
	uint64_t bytes = 0, removed = 0;
	for (int i = 0; i < n; i++) {
		const char *sha = PQgetvalue(r, i, 0);
		/* the bytes first, under the row's lock: a crash between
		 * leaves a row without bytes (collected again), never bytes
		 * no row knows */
		if (blob_remove(s, sha) < 0) {
			ret = store_set_error(err, STORE_ERR_TEMP, "The blob"
					      " store is not available now");
			break;
		}
		if (removed > 0)
			buf_append_char(&arr, ',');
		buf_append_str(&arr, sha);
		removed++;
		bytes += (uint64_t)pg_int(r, i, 1);
	}
	buf_append_char(&arr, '}');
	PQclear(r);
	if (removed > 0) {
		struct pg_params q;
		pg_p_init(&q);
		pg_p_str(&q, arr.data);
		if (pg_run(c, "DELETE FROM blob_object WHERE sha256 ="
			   " ANY ($1::text[]) AND refs = 0", &q, err) < 0)
			ret = -1;
	}
	buf_free(&arr);
	if (ret >= 0 || removed > 0) {
		if (pg_cmd(c, "COMMIT", err) < 0)
			ret = -1;
		else {
			rep->removed += removed;
			rep->bytes += bytes;
		}
		c->in_tx = false;
	}
	return ret;
}

int pg_blobs_collect(struct store *store, unsigned grace,
		     struct store_collect_report *rep, struct store_error *err)
{
	struct pg_store *s = PGS(store);
	struct pg_conn *c = pg_conn_get(store, err);
	if (c == NULL)
		return -1;
	bool got = false;
	int ret = lease_take(s, c, &got, err);
	if (ret == 0 && !got)
		rep->busy = true;
	while (ret == 0 && got) {
		int b = collect_batch(s, c, grace, rep, err);
		if (b < 0)
			ret = -1;
		if (b <= 0)
			break;
		/* still ours: renewed for the next batch */
		if (lease_take(s, c, &got, err) < 0)
			ret = -1;
	}
	if (ret == 0 && !rep->busy) {
		/* unnamed, in their grace period or past it */
		PGresult *r = pg_exec(c, "SELECT count(*) FROM blob_object o"
				      " WHERE o.refs = 0 AND o.orphan_since IS"
				      " NOT NULL AND NOT" NAMED_BY_BLOB, NULL,
				      err);
		if (r == NULL)
			ret = -1;
		else
			rep->waiting = (uint64_t)pg_int(r, 0, 0);
		PQclear(r);
	}
	if (got && !c->broken)
		lease_drop(s, c);
	pg_conn_put(store, c);
	if (ret == 0 && rep->removed > 0)
		log_info("store", NULL, "collector: %llu bodies no row names"
			 " removed (%llu bytes)", (unsigned long long)rep->removed,
			 (unsigned long long)rep->bytes);
	return ret;
}

/* loftd: a pass every COLLECT_INTERVAL seconds, the first soon after
 * the start. */
static void *collector_main(void *arg)
{
	struct store *store = arg;
	struct pg_store *s = PGS(store);
	unsigned wait = 60;
	pthread_mutex_lock(&s->collector_mu);
	while (!s->collector_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait;
		while (!s->collector_stop &&
		       pthread_cond_timedwait(&s->collector_cond,
					      &s->collector_mu, &until) == 0)
			;
		if (s->collector_stop)
			break;
		pthread_mutex_unlock(&s->collector_mu);
		struct store_collect_report rep = {0};
		struct store_error err;
		if (pg_blobs_collect(store, s->grace, &rep, &err) < 0)
			log_warn("store", NULL, "collector: %s", err.msg);
		pthread_mutex_lock(&s->collector_mu);
		wait = COLLECT_INTERVAL;
	}
	pthread_mutex_unlock(&s->collector_mu);
	return NULL;
}

void pg_collector_start(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (s->collector_running)
		return;
	pthread_mutex_init(&s->collector_mu, NULL);
	pthread_cond_init(&s->collector_cond, NULL);
	s->collector_stop = false;
	if (pthread_create(&s->collector, NULL, collector_main, store) != 0) {
		log_error("store", NULL, "collector: cannot start a thread");
		return;
	}
	s->collector_running = true;
}

void pg_collector_stop(struct store *store)
{
	struct pg_store *s = PGS(store);
	if (!s->collector_running)
		return;
	pthread_mutex_lock(&s->collector_mu);
	s->collector_stop = true;
	pthread_cond_broadcast(&s->collector_cond);
	pthread_mutex_unlock(&s->collector_mu);
	pthread_join(s->collector, NULL);
	s->collector_running = false;
	pthread_mutex_destroy(&s->collector_mu);
	pthread_cond_destroy(&s->collector_cond);
}

/* ---- bytes of another module's rows (store_object_*, the queue) --------- */

bool pg_objects(struct store *store, unsigned *grace_r)
{
	struct pg_store *s = PGS(store);
	if (grace_r != NULL)
		*grace_r = s->grace;
	return s->s3 != NULL;
}

int pg_object_put(struct store *store, int fd, const char *path,
		  uint64_t size, char sha_r[65], struct store_error *err)
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new(), *md5 = EVP_MD_CTX_new();
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	EVP_DigestInit_ex(md5, EVP_md5(), NULL);
	char chunk[65536];
	uint64_t off = 0;
	int ret = 0;
	while (off < size) {
		size_t want = size - off < sizeof(chunk) ? (size_t)(size - off)
							 : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("store", NULL, "read %s: %s", path,
				  n == 0 ? "short file" : strerror(errno));
			ret = store_set_error(err, STORE_ERR_TEMP,
					      "Cannot store the message now");
			break;
		}
		EVP_DigestUpdate(sha, chunk, (size_t)n);
		EVP_DigestUpdate(md5, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	unsigned char md[32], m5[16];
	unsigned len = 0;
	EVP_DigestFinal_ex(sha, md, &len);
	EVP_DigestFinal_ex(md5, m5, &len);
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(md5);
	for (unsigned i = 0; i < 32; i++)
		snprintf(sha_r + 2 * i, 3, "%02x", md[i]);
	if (ret < 0)
		return -1;
	return pg_blobs_put(store, fd, path, sha_r, m5, size, err);
}

int pg_object_read(struct store *store, const char *sha, char *out,
		   uint64_t size, struct store_error *err)
{
	return pg_blobs_read(store, 0, sha, out, size, err);
}

/* The collector's step for one body, at once: its row locked (skipped
 * when another holds it), the bytes removed, then the row, in one
 * transaction; nothing when a row names it. */
void pg_object_release(struct store *store, const char *sha)
{
	struct pg_store *s = PGS(store);
	struct store_error err;
	struct pg_conn *c = pg_conn_get(store, &err);
	if (c == NULL)
		return;
	if (pg_cmd(c, "BEGIN", &err) < 0) {
		pg_conn_put(store, c);
		return;
	}
	c->in_tx = true;
	struct pg_params p;
	pg_p_init(&p);
	pg_p_str(&p, sha);
	PGresult *r = pg_exec(c, "SELECT 1 FROM blob_object WHERE sha256 = $1"
			      " AND refs = 0 FOR UPDATE SKIP LOCKED", &p, &err);
	bool gone = false;
	if (r != NULL && PQntuples(r) == 1) {
		/* the same bytes a message's blob row names (a queued
		 * message delivered here): kept. Looked at under the lock,
		 * as the collector does. */
		PQclear(r);
		r = pg_exec(c, "SELECT 1 FROM blob_object o WHERE o.sha256 = $1"
			    " AND NOT" NAMED_BY_BLOB, &p, &err);
		if (r != NULL && PQntuples(r) == 1 && blob_remove(s, sha) == 0)
			gone = pg_run(c, "DELETE FROM blob_object WHERE"
				      " sha256 = $1 AND refs = 0", &p,
				      &err) == 0;
	}
	PQclear(r);
	/* not removed: the row stays, and the collector takes it */
	if (pg_cmd(c, gone ? "COMMIT" : "ROLLBACK", &err) < 0)
		gone = false;
	c->in_tx = false;
	pg_conn_put(store, c);
	if (gone)
		log_info("store", NULL, "object %s removed (no row names it)",
			 sha);
}
