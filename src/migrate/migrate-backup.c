/*
 * Online backup and restore of accounts (docs/backup.md), over the
 * store's export stream and import calls; the format does not depend on
 * the backend or the index schema.
 *
 *   DEST/blobs/<2 hex>/<sha256>      a message's bytes, stored once for
 *                                    every account and run
 *   DEST/snapshots/<UTC time>/<address>.json   one account, read from one
 *                                    snapshot: folders and messages with
 *                                    every attribute, bodies by SHA-256
 *   DEST/snapshots/<UTC time>/SNAPSHOT         written last, after every
 *                                    file it names is fsynced: without it
 *                                    the run is not a snapshot
 *
 * Each JSON file carries its own checksum ("sha256" of the file with
 * that member empty). An account whose change counter has not moved
 * since DEST's newest snapshot is referenced from there, not rewritten.
 * A restore reads the newest complete snapshot, checks every file it
 * uses, and adds through store_import_*: folders that never held mail
 * get their UIDVALIDITY, UIDs, MAILBOXID, EMAILIDs, THREADIDs and modseqs
 * back; a folder with mail gets what it lacks (content hash and internal
 * date) with new UIDs, also on the rerun of a killed restore (what it
 * stored is there by content); a message the user removed after a
 * restore comes back with the next one, as it is missing.
 */
#include "migrate.h"
#include "migrate-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "testpause.h"
#include "migrate-parse.h"

/* Written: 2 (each folder's expunge log, docs/backup.md). Read: 1 too
 * (a folder without a log restores as before). */
#define BACKUP_FORMAT "loft-backup-2"
#define BACKUP_FORMAT_1 "loft-backup-1"

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char d[32];
	unsigned dl = 0;
	EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* What a folder holds now, as "INTERNALDATE:SHA-256" of each message
 * (sorted; used[i] once a backup message matched it): a restore into a
 * folder with mail adds only what it lacks. -1 after reporting. */
struct held {
	char **v;
	bool *used;
	size_t n;
};

static int folder_held(struct migrate *m, const char *name, struct held *h)
{
	memset(h, 0, sizeof(*h));
	struct store_export *e;
	struct store_error err;
	if (store_export_begin(m->user, &e, &err) < 0) {
		migrate_error(m, name, NULL, "%s", err.msg);
		return -1;
	}
	const struct store_export_info *info = store_export_info(e);
	int r = 0;
	size_t cap = 0;
	for (size_t i = 0; i < info->mailbox_count; i++) {
		if (strcmp(info->mailboxes[i].name, name) != 0)
			continue;
		r = store_export_messages(e, info->mailboxes[i].id, &err);
		const struct store_export_msg *msg;
		while (r == 0 && (r = store_export_next(e, &msg, &err)) == 1) {
			struct store_blob b;
			if ((r = store_export_body(e, msg->email, &b, &err)) < 0)
				break;
			char sha[65];
			sha256_hex(b.data, b.len, sha);
			store_blob_close(&b);
			if (h->n == cap) {
				cap = cap ? cap * 2 : 64;
				h->v = xrealloc(h->v, cap * sizeof(char *));
			}
			h->v[h->n++] = xasprintf("%lld:%s",
						 (long long)msg->internaldate,
						 sha);
			r = 0;
		}
		break;
	}
	store_export_end(&e);
	if (r < 0) {
		migrate_error(m, name, NULL, "%s", err.msg);
		store_names_free(h->v, h->n);
		memset(h, 0, sizeof(*h));
		return -1;
	}
	if (h->n > 1)
		qsort(h->v, h->n, sizeof(char *), migrate_strp_cmp);
	h->used = xcalloc(h->n ? h->n : 1, sizeof(bool));
	return 0;
}

/* Whether the folder holds a message with this date and body not yet
 * matched (then it is matched now). */
static bool held_take(struct held *h, time_t date, const char *sha)
{
	if (h->n == 0 || sha == NULL)
		return false;
	char *key = xasprintf("%lld:%s", (long long)date, sha);
	char **hit = bsearch(&key, h->v, h->n, sizeof(char *),
			     migrate_strp_cmp);
	free(key);
	if (hit == NULL)
		return false;
	size_t i = (size_t)(hit - h->v);
	while (i > 0 && strcmp(h->v[i - 1], *hit) == 0)
		i--;
	for (; i < h->n && strcmp(h->v[i], *hit) == 0; i++) {
		if (!h->used[i]) {
			h->used[i] = true;
			return true;
		}
	}
	return false;
}

static void held_free(struct held *h)
{
	store_names_free(h->v, h->n);
	free(h->used);
	memset(h, 0, sizeof(*h));
}

static bool hex64(const char *s)
{
	if (s == NULL || strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* An address as a file name: what accounts are made of, nothing else
 * (no "/", no leading "."). */
static bool address_ok(const char *a)
{
	if (a == NULL || a[0] == '\0' || a[0] == '.' || strlen(a) > 320)
		return false;
	for (const char *p = a; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      strchr("@._+-", *p) != NULL))
			return false;
	return true;
}

/* A snapshot's name: YYYY-MM-DDTHHMMSSZ. */
/* "YYYY-MM-DDTHHMMSSZ", or with "-NNN" for a later run in the same
 * second (or after the clock went back): names sort in run order. */
static bool snapname_ok(const char *s)
{
	size_t len = strlen(s);
	if ((len != 18 && len != 22) || s[4] != '-' || s[7] != '-' ||
	    s[10] != 'T' || s[17] != 'Z' || (len == 22 && s[18] != '-'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (i != 4 && i != 7 && i != 10 && i != 17 && i != 18 &&
		    (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* path via path.tmp: written, fsynced, renamed, directory fsynced. */
static int durable_write(const char *path, const void *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	int ret = fd < 0 ? -1 : 0;
	const char *p = data;
	while (ret == 0 && len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			ret = -1;
		else {
			p += w;
			len -= (size_t)w;
		}
	}
	int e = errno;
	if (ret == 0 && fsync(fd) < 0) {
		ret = -1;
		e = errno;
	}
	if (fd >= 0)
		close(fd);
	if (ret == 0 && rename(tmp, path) < 0) {
		ret = -1;
		e = errno;
	}
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	if (ret == 0) {
		char *dir = xstrdup(path);
		char *slash = strrchr(dir, '/');
		if (slash != NULL) {
			*slash = '\0';
			fsync_dir(dir);
		}
		free(dir);
	}
	errno = e;
	return ret;
}

static int read_file(const char *path, struct buf *out, size_t max)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	char tmp[65536];
	ssize_t n;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(out, tmp, (size_t)n);
	close(fd);
	return n < 0 ? -1 : 0;
}

/* The checksum of a JSON document: its compact form with "sha256" "". */
static void json_checksum(json_t *doc, char out[65])
{
	json_object_set_new(doc, "sha256", json_string(""));
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	sha256_hex(s, strlen(s), out);
	free(s);
}

static int json_write_sealed(const char *path, json_t *doc, char sum[65])
{
	json_checksum(doc, sum);
	json_object_set_new(doc, "sha256", json_string(sum));
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	int r = durable_write(path, s, strlen(s));
	free(s);
	return r;
}

/* A sealed JSON document from bytes; NULL with why set (damaged). */
static json_t *json_parse_sealed(const char *data, size_t len, char *why,
				 size_t why_size)
{
	json_error_t je;
	json_t *doc = json_loadb(data, len, 0, &je);
	if (doc == NULL || !json_is_object(doc)) {
		snprintf(why, why_size, "not JSON (damaged)");
		json_decref(doc);
		return NULL;
	}
	const char *have = json_string_value(json_object_get(doc, "sha256"));
	char *copy = have ? xstrdup(have) : NULL;
	char sum[65];
	json_checksum(doc, sum);
	bool ok = copy != NULL && strcmp(copy, sum) == 0;
	free(copy);
	json_object_set_new(doc, "sha256", json_string(sum));
	if (!ok) {
		snprintf(why, why_size, "checksum does not match (damaged)");
		json_decref(doc);
		return NULL;
	}
	const char *fmt = json_string_value(json_object_get(doc, "format"));
	if (fmt == NULL || (strcmp(fmt, BACKUP_FORMAT) != 0 &&
			    strcmp(fmt, BACKUP_FORMAT_1) != 0)) {
		snprintf(why, why_size, "not a %s or %s file", BACKUP_FORMAT,
			 BACKUP_FORMAT_1);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* Reads a sealed JSON file; NULL with why set (damaged, missing). */
static json_t *json_read_sealed(const char *path, char *why, size_t why_size)
{
	struct buf b;
	buf_init(&b, 0);
	if (read_file(path, &b, 1u << 30) < 0) {
		snprintf(why, why_size, "%s", strerror(errno));
		buf_free(&b);
		return NULL;
	}
	json_t *doc = json_parse_sealed(b.data ? b.data : "", b.len, why,
					why_size);
	buf_free(&b);
	return doc;
}

static char *blob_path(const char *dest, const char *sha)
{
	return xasprintf("%s/blobs/%.2s/%s", dest, sha, sha);
}

/* New blobs are made durable in groups. Each is written as
 * blobs/<aa>/<sha>.tmp with no sync of its own; before anything names
 * it (an account's manifest, the server record), blobs_settle makes
 * every pending one durable at once (syncfs of DEST's file system),
 * renames them into place and makes the renames durable (syncfs again).
 * A name in blobs/ is thus always a whole blob; a run killed before
 * leaves .tmp files, which the next run writes again and prune removes.
 * Two fsyncs per blob (the file, its directory) were most of a first
 * backup's time: 100,000 small messages took more than 13 minutes. One
 * backup at a time per process (loftctl). */
#define PENDING_MAX 8192     /* then settled early: memory, dirty pages */
static struct {
	char **tmp;
	size_t n, cap;
} pending;

/* Every pending blob durable under its name: 0, or -1 with errno (the
 * run fails; what is left are .tmp files). */
static int blobs_settle(const char *dest)
{
	if (pending.n == 0)
		return 0;
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = fd < 0 || syncfs(fd) < 0 ? -1 : 0;
	int e = errno;
	for (size_t i = 0; i < pending.n; i++) {
		char *tmp = pending.tmp[i];
		if (ret == 0) {
			char *final = xstrndup(tmp, strlen(tmp) - 4);
			struct stat st;
			/* the same blob twice in one group: renamed once */
			if (rename(tmp, final) < 0 &&
			    !(errno == ENOENT && stat(final, &st) == 0)) {
				ret = -1;
				e = errno;
			}
			free(final);
		}
		free(tmp);
	}
	pending.n = 0;
	if (ret == 0 && syncfs(fd) < 0) {
		ret = -1;
		e = errno;
	}
	if (fd >= 0)
		close(fd);
	errno = e;
	return ret;
}

/* path.tmp written (not synced) and queued for blobs_settle. */
static int pending_write(const char *dest, const char *path, const void *data,
			 size_t len)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	int ret = fd < 0 ? -1 : 0;
	const char *p = data;
	while (ret == 0 && len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = -1;
		} else {
			p += w;
			len -= (size_t)w;
		}
	}
	int e = errno;
	if (fd >= 0 && close(fd) < 0 && ret == 0) {
		ret = -1;
		e = errno;
	}
	if (ret < 0) {
		unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	if (pending.n == pending.cap) {
		pending.cap = pending.cap ? pending.cap * 2 : 256;
		pending.tmp = xrealloc(pending.tmp,
				       pending.cap * sizeof(char *));
	}
	pending.tmp[pending.n++] = tmp;
	return pending.n >= PENDING_MAX ? blobs_settle(dest) : 0;
}

/* Keeps data as blobs/<aa>/<sha> unless it is there: 1 written, 0 it
 * was there, -1 with errno. Durable at the next blobs_settle. */
static int blob_store(const char *dest, const char *sha, const void *data,
		      size_t len)
{
	char *path = blob_path(dest, sha);
	struct stat st;
	int ret = 0;
	if (stat(path, &st) != 0 || (uint64_t)st.st_size != len) {
		char *dir = xasprintf("%s/blobs/%.2s", dest, sha);
		mkdir(dir, 0700);
		free(dir);
		ret = pending_write(dest, path, data, len) < 0 ? -1 : 1;
	}
	free(path);
	return ret;
}

int migrate_backup_blob_put(const char *dest, const void *data, size_t len,
			    char sha_r[65])
{
	sha256_hex(data, len, sha_r);
	return blob_store(dest, sha_r, data, len) < 0 ? -1 : 0;
}

int migrate_backup_blob_get(const char *dest, const char *sha,
			    struct buf *out, char *why, size_t why_size)
{
	if (!hex64(sha)) {
		snprintf(why, why_size, "not a blob name");
		return -1;
	}
	char *path = blob_path(dest, sha);
	size_t at = out->len;
	int r = read_file(path, out, (size_t)1 << 31);
	char got[65] = "";
	if (r == 0)
		sha256_hex(out->data + at, out->len - at, got);
	if (strcmp(got, sha) != 0)
		snprintf(why, why_size, "%s: %s", path, r < 0 ? "missing"
			 : "damaged (content does not match its name)");
	free(path);
	return strcmp(got, sha) == 0 ? 0 : -1;
}

/* Every blob a manifest names (an account's messages, the server's
 * queued messages), appended to *v (caller frees each); false when one
 * is not a SHA-256. */
static bool sha_push(json_t *item, char ***v, size_t *n, size_t *cap)
{
	const char *sha = json_string_value(json_object_get(item, "sha256"));
	if (!hex64(sha))
		return false;
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 1024;
		*v = xrealloc(*v, *cap * sizeof(char *));
	}
	(*v)[(*n)++] = xstrdup(sha);
	return true;
}

static bool doc_shas(json_t *doc, char ***v, size_t *n, size_t *cap)
{
	bool ok = true;
	size_t i, j;
	json_t *mb, *msg;
	json_array_foreach(json_object_get(doc, "mailboxes"), i, mb)
		json_array_foreach(json_object_get(mb, "messages"), j, msg)
			ok &= sha_push(msg, v, n, cap);
	json_array_foreach(json_object_get(doc, "queue"), j, msg)
		ok &= sha_push(msg, v, n, cap);
	json_array_foreach(json_object_get(doc, "kept"), j, msg)
		ok &= sha_push(msg, v, n, cap);
	return ok;
}

/* Complete snapshots of DEST, oldest first (caller frees). */
static size_t snapshots(const char *dest, char ***names_r, bool complete)
{
	char *dir = xasprintf("%s/snapshots", dest);
	DIR *d = opendir(dir);
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (!snapname_ok(de->d_name))
			continue;
		char *mark = xasprintf("%s/%s/SNAPSHOT", dir, de->d_name);
		struct stat st;
		bool done = stat(mark, &st) == 0;
		free(mark);
		if (done != complete)
			continue;
		v = xrealloc(v, (n + 1) * sizeof(char *));
		v[n++] = xstrdup(de->d_name);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*names_r = v;
	return n;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- backup ------------------------------------------------------- */

static json_t *flags_json(unsigned flags, const char *const *kw, size_t n)
{
	json_t *a = json_array();
	static const struct {
		unsigned bit;
		const char *name;
	} f[] = {{STORE_FLAG_SEEN, "\\Seen"}, {STORE_FLAG_ANSWERED, "\\Answered"},
		 {STORE_FLAG_FLAGGED, "\\Flagged"}, {STORE_FLAG_DELETED, "\\Deleted"},
		 {STORE_FLAG_DRAFT, "\\Draft"}};
	for (size_t i = 0; i < 5; i++)
		if (flags & f[i].bit)
			json_array_append_new(a, json_string(f[i].name));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(kw[i]));
	return a;
}

/* The account's Sieve scripts: [{name, active, source}] (NULL: cannot
 * be read, said on err). */
static json_t *sieve_scripts(struct migrate *m, const char *address,
			     struct store_user *user)
{
	struct store_sieve_script *list = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_sieve_list(user, &list, &n, &err) < 0) {
		migrate_error(m, address, NULL, "Sieve scripts: %s", err.msg);
		return NULL;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char *src = NULL;
		size_t len = 0;
		bool active = false;
		if (store_sieve_get(user, list[i].name, &src, &len, NULL, NULL,
				    &active, &err) < 0) {
			migrate_error(m, address, list[i].name, "Sieve script:"
				      " %s", err.msg);
			json_decref(a);
			a = NULL;
			break;
		}
		json_t *js = json_stringn(src, len);
		if (js == NULL) {
			migrate_error(m, address, list[i].name, "Sieve script"
				      " is not UTF-8: not backed up");
		} else {
			json_array_append_new(a, json_pack("{s:s, s:b, s:o}",
				"name", list[i].name, "active", active,
				"source", js));
		}
		free(src);
	}
	store_sieve_list_free(list, n);
	return a;
}

/* The account's ACL entries: [{"mailbox", "identifier", "rights"}]
 * (identifiers as text: ids differ between servers); NULL after
 * reporting. */
static json_t *acl_json(struct migrate *m, struct store_user *user,
			const char *address)
{
	struct store_acl_row *rows = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_acl_all(user, &rows, &n, &err) < 0) {
		migrate_error(m, address, NULL, "ACL: %s", err.msg);
		return NULL;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char *id = m->acl_ident(m->account_ctx, &rows[i].entry, address);
		if (id == NULL)
			continue;
		char rights[16];
		store_rights_format(rows[i].entry.rights, rights);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "mailbox",
						   rows[i].mailbox, "identifier",
						   id, "rights", rights));
		free(id);
	}
	store_acl_all_free(rows, n);
	return a;
}

/* The SHA-256 of the Emails (blob ids, never reused) one account's
 * backup has read: a run that starts the account again from a newer
 * snapshot reads only bodies it has not seen. */
struct sha_cache {
	int64_t *key;
	char (*sha)[65];
	size_t cap, n;
};

static const char *sha_cache_get(const struct sha_cache *c, int64_t email)
{
	if (c->cap == 0 || email <= 0)
		return NULL;
	for (size_t i = (size_t)email & (c->cap - 1); c->key[i] != 0;
	     i = (i + 1) & (c->cap - 1))
		if (c->key[i] == email)
			return c->sha[i];
	return NULL;
}

static void sha_cache_put(struct sha_cache *c, int64_t email, const char *sha)
{
	if (email <= 0 || sha_cache_get(c, email) != NULL)
		return;
	if ((c->n + 1) * 2 > c->cap) {
		struct sha_cache big = {0};
		big.cap = c->cap ? c->cap * 2 : 1024;
		big.key = xcalloc(big.cap, sizeof(int64_t));
		big.sha = xcalloc(big.cap, sizeof(*big.sha));
		for (size_t i = 0; i < c->cap; i++)
			if (c->key[i] != 0)
				sha_cache_put(&big, c->key[i], c->sha[i]);
		free(c->key);
		free(c->sha);
		*c = big;
	}
	size_t i = (size_t)email & (c->cap - 1);
	while (c->key[i] != 0)
		i = (i + 1) & (c->cap - 1);
	c->key[i] = email;
	memcpy(c->sha[i], sha, 65);
	c->n++;
}

static void sha_cache_free(struct sha_cache *c)
{
	free(c->key);
	free(c->sha);
	memset(c, 0, sizeof(*c));
}

/* "1:5,7" from ascending UIDs. */
static char *uid_set(const uint32_t *uids, size_t n)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		buf_printf(&b, "%s%u", b.len ? "," : "", uids[i]);
		if (j > i)
			buf_printf(&b, ":%u", uids[j]);
		i = j + 1;
	}
	return buf_steal(&b, NULL);
}

/* The expunge log of a mailbox in the snapshot: [{"uids": "UID set",
 * "modseq", "at"}], one entry per expunge (modseq and time); NULL on
 * error, after reporting. *horizon_r: the log's horizon. */
static json_t *expunged_json(struct migrate *m, struct store_export *e,
			     const struct store_mailbox_info *mb,
			     const char *address, uint64_t *horizon_r)
{
	struct store_expunged_range *r = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_export_expunged(e, mb->id, &r, &n, horizon_r, &err) < 0) {
		migrate_error(m, address, mb->name, "expunge log: %s", err.msg);
		return NULL;
	}
	json_t *a = json_array();
	/* ranges come ordered by modseq, time and UID */
	for (size_t i = 0; i < n;) {
		struct buf b;
		buf_init(&b, 0);
		size_t j = i;
		for (; j < n && r[j].modseq == r[i].modseq && r[j].at == r[i].at;
		     j++) {
			buf_printf(&b, "%s%u", b.len ? "," : "", r[j].first);
			if (r[j].last > r[j].first)
				buf_printf(&b, ":%u", r[j].last);
		}
		char *set = buf_steal(&b, NULL);
		json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "uids", set,
						   "modseq",
						   (json_int_t)r[i].modseq,
						   "at", (json_int_t)r[i].at));
		free(set);
		i = j;
	}
	free(r);
	return a;
}

/* Readers' own \Seen of a mailbox in the snapshot: {"reader address":
 * "uid set"}; NULL when there is none (or no way to name readers). */
static json_t *seen_json(struct migrate *m, struct store_export *e,
			 const struct store_mailbox_info *mb,
			 const char *address, bool *failed)
{
	struct store_export_seen *rows = NULL;
	size_t n = 0;
	struct store_error err;
	if (m->user_address == NULL)
		return NULL;
	if (store_export_seen(e, mb->id, &rows, &n, &err) < 0) {
		migrate_error(m, address, mb->name, "readers' \\Seen: %s",
			      err.msg);
		*failed = true;
		return NULL;
	}
	json_t *o = NULL;
	uint32_t *uids = xmalloc((n ? n : 1) * sizeof(uint32_t));
	for (size_t i = 0; i < n;) {
		size_t j = i, k = 0;
		while (j < n && rows[j].viewer == rows[i].viewer)
			uids[k++] = rows[j++].uid;
		char *who = m->user_address(m->account_ctx, rows[i].viewer);
		if (who != NULL) {
			if (o == NULL)
				o = json_object();
			char *set = uid_set(uids, k);
			json_object_set_new(o, who, json_string(set));
			free(set);
			free(who);
		}
		i = j;
	}
	free(uids);
	free(rows);
	return o;
}

/* What the account has beside its mail (store_export_extra) as the
 * manifest's "metadata", "urlauth_keys", "sieve_records" and
 * "jmap_objects" (docs/backup.md); a reader's own entries name the
 * reader by address (left out when it has none). With doc NULL, only
 * *x_r is filled (the unchanged test's checksum). 0 or -1. */
static json_t *extra_doc(struct migrate *m, const struct store_account_extra *x)
{
	json_t *o = json_object();
	json_t *md = json_array(), *keys = json_array(), *recs = json_array(),
	       *objs = json_array();
	for (size_t i = 0; i < x->annotation_count; i++) {
		const struct store_extra_annotation *a = &x->annotations[i];
		char *who = NULL;
		if (a->viewer != 0 && (m->user_address == NULL ||
		    (who = m->user_address(m->account_ctx, a->viewer)) == NULL))
			continue;
		char *v = base64_encode(a->value, a->value_len);
		json_t *j = json_pack("{s:s, s:s}", "name", a->name,
				      "value_base64", v);
		if (a->mailbox != NULL)
			json_object_set_new(j, "mailbox", json_string(a->mailbox));
		if (who != NULL)
			json_object_set_new(j, "reader", json_string(who));
		json_array_append_new(md, j);
		free(v);
		free(who);
	}
	for (size_t i = 0; i < x->key_count; i++) {
		const struct store_extra_key *k = &x->keys[i];
		char *who = NULL;
		if (k->viewer != 0 && (m->user_address == NULL ||
		    (who = m->user_address(m->account_ctx, k->viewer)) == NULL))
			continue;
		char hex[2 * STORE_URLAUTH_KEY_LEN + 1];
		for (size_t b = 0; b < STORE_URLAUTH_KEY_LEN; b++)
			snprintf(hex + 2 * b, 3, "%02x", k->key[b]);
		json_t *j = json_pack("{s:s, s:s}", "mailbox", k->mailbox,
				      "key", hex);
		if (who != NULL)
			json_object_set_new(j, "reader", json_string(who));
		json_array_append_new(keys, j);
		free(who);
	}
	for (size_t i = 0; i < x->record_count; i++)
		json_array_append_new(recs, json_pack(
			"{s:s, s:I}", "key", x->records[i].key, "expires",
			(json_int_t)x->records[i].expires));
	for (size_t i = 0; i < x->object_count; i++) {
		const struct store_extra_object *ob = &x->objects[i];
		const char *type = ob->kind == STORE_JMAP_IDENTITY ? "Identity"
			: ob->kind == STORE_JMAP_VACATION ? "VacationResponse"
			: ob->kind == STORE_JMAP_SUBMISSION ? "EmailSubmission"
			: ob->kind == STORE_JMAP_PUSH ? "PushSubscription"
			: "settings";
		json_array_append_new(objs, json_pack(
			"{s:s, s:I, s:s}", "type", type, "id",
			(json_int_t)ob->id, "data", ob->data));
	}
	json_object_set_new(o, "metadata", md);
	json_object_set_new(o, "urlauth_keys", keys);
	json_object_set_new(o, "sieve_records", recs);
	json_object_set_new(o, "jmap_objects", objs);
	return o;
}

static int extra_json(struct migrate *m, struct store_export *e,
		      const char *address, json_t *doc)
{
	struct store_account_extra x;
	struct store_error err;
	if (store_export_extra(e, &x, &err) < 0) {
		migrate_error(m, address, NULL, "METADATA, URLAUTH keys, Sieve"
			      " records, JMAP objects: %s", err.msg);
		return -1;
	}
	json_t *o = extra_doc(m, &x);
	json_object_update(doc, o);
	json_decref(o);
	store_account_extra_free(&x);
	return 0;
}

/* The SHA-256 (hex) of the body email names, its bytes stored in
 * DEST/blobs unless this run met that body already (cache). -1 on error,
 * reported as "<what>UID n: ..." in mailbox; *retry_r when the body was
 * removed meanwhile (as backup_account's). */
static int body_sha(struct migrate *m, const char *dest,
		    struct store_export *e, struct sha_cache *cache,
		    int64_t email, const char *address, const char *mailbox,
		    const char *what, uint32_t uid, char sha[65], bool *retry_r)
{
	const char *known = sha_cache_get(cache, email);
	if (known != NULL) {
		memcpy(sha, known, 65);
		return 0;
	}
	struct store_error err;
	struct store_blob b = {0};
	if (store_export_body(e, email, &b, &err) < 0) {
		if (err.kind == STORE_ERR_NOTFOUND)
			*retry_r = true;
		else
			migrate_error(m, address, mailbox, "%sUID %u: %s", what,
				      uid, err.msg);
		return -1;
	}
	sha256_hex(b.data, b.len, sha);
	int w = blob_store(dest, sha, b.data, b.len);
	if (w < 0)
		migrate_error(m, address, mailbox, "%sUID %u: blobs/%.2s/%s: %s",
			      what, uid, sha, sha, strerror(errno));
	else if (w == 1)
		m->bytes += b.len;
	store_blob_close(&b);
	if (w < 0)
		return -1;
	sha_cache_put(cache, email, sha);
	return 0;
}

/* Undelete's kept messages as the manifest's "kept" (docs/backup.md):
 * [{mailbox, uid, flags, internaldate, savedate, deleted_at, size, email,
 * thread, sha256}], oldest removal first; their bodies stored in
 * DEST/blobs as any message's. NULL on error (*retry_r: as
 * backup_account's). */
static json_t *kept_json(struct migrate *m, const char *dest,
			 struct store_export *e, const char *address,
			 struct sha_cache *cache, bool *retry_r)
{
	struct store_export_kept *v = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_export_kept(e, &v, &n, &err) < 0) {
		migrate_error(m, address, NULL, "undelete's kept messages: %s",
			      err.msg);
		return NULL;
	}
	json_t *arr = json_array();
	bool failed = false;
	for (size_t i = 0; i < n && !failed; i++) {
		const struct store_export_kept *k = &v[i];
		char sha[65];
		if (body_sha(m, dest, e, cache, k->email, address, k->mailbox,
			     "kept ", k->uid, sha, retry_r) < 0) {
			failed = true;
			break;
		}
		char *kwcopy = xstrdup(k->keywords);
		const char *kws[64];
		size_t nkw = 0;
		for (char *t = kwcopy, *save = NULL, *w;
		     nkw < 64 && (w = strtok_r(t, " ", &save)) != NULL; t = NULL)
			kws[nkw++] = w;
		json_array_append_new(arr, json_pack(
			"{s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
			"mailbox", k->mailbox, "uid", (json_int_t)k->uid,
			"flags", flags_json(k->flags, kws, nkw),
			"internaldate", (json_int_t)k->internaldate,
			"savedate", (json_int_t)k->savedate,
			"deleted_at", (json_int_t)k->deleted_at,
			"size", (json_int_t)k->size,
			"email", (json_int_t)k->email,
			"thread", (json_int_t)k->thread, "sha256", sha));
		free(kwcopy);
	}
	store_export_kept_free(v, n);
	if (failed) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* The account's manifest; bodies copied into DEST/blobs as met. *retry_r:
 * a body the snapshot names was removed meanwhile by another process
 * (loftd expunged it): NULL, and the account is to be read again from a
 * newer snapshot (cache keeps the bodies already read). */
static json_t *backup_account(struct migrate *m, const char *dest,
			      const char *address, struct store_user *user,
			      json_t *record, uint64_t *modseq_r,
			      struct sha_cache *cache, bool first,
			      bool *retry_r)
{
	struct store_export *e;
	struct store_error err;
	*retry_r = false;
	if (store_export_begin(user, &e, &err) < 0) {
		migrate_error(m, address, NULL, "%s", err.msg);
		return NULL;
	}
	/* tests (test_migrate_server): an expunge under the first snapshot */
	if (first)
		test_pause("LOFT_TEST_BACKUP_PAUSE");
	const struct store_export_info *info = store_export_info(e);
	*modseq_r = info->modseq;
	json_t *doc = json_object();
	json_object_set_new(doc, "format", json_string(BACKUP_FORMAT));
	json_object_set_new(doc, "address", json_string(address));
	json_object_set_new(doc, "modseq", json_integer((json_int_t)info->modseq));
	json_t *subs = json_array();
	for (size_t i = 0; i < info->subscription_count; i++)
		json_array_append_new(subs, json_string(info->subscriptions[i]));
	json_object_set_new(doc, "subscriptions", subs);
	if (record != NULL)
		json_object_set(doc, "account", record);
	json_t *mbs = json_array();
	bool failed = false;
	for (size_t i = 0; i < info->mailbox_count && !failed; i++) {
		const struct store_mailbox_info *mb = &info->mailboxes[i];
		json_t *jm = json_pack("{s:s, s:I, s:I, s:I, s:s, s:I, s:b}",
				       "name", mb->name,
				       "uidvalidity", (json_int_t)mb->uidvalidity,
				       "uidnext", (json_int_t)mb->uidnext,
				       "highestmodseq", (json_int_t)mb->highestmodseq,
				       "mailboxid", mb->objectid,
				       "special_use", (json_int_t)mb->special_use,
				       "noselect", mb->noselect);
		json_t *msgs = json_array();
		const struct store_export_msg *msg;
		int r = mb->noselect ? 0 : store_export_messages(e, mb->id, &err);
		/* every message: next gives 1 per message, 0 at the end */
		bool more = r == 0 && !mb->noselect;
		while (more && (r = store_export_next(e, &msg, &err)) == 1) {
			char sha[65];
			if (body_sha(m, dest, e, cache, msg->email, address,
				     mb->name, "", msg->uid, sha, retry_r) < 0) {
				failed = true;
				break;
			}
			json_t *jmsg = json_pack(
				"{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:s}",
				"uid", (json_int_t)msg->uid,
				"modseq", (json_int_t)msg->modseq,
				"flags", flags_json(msg->flags, msg->keywords,
						    msg->keyword_count),
				"internaldate", (json_int_t)msg->internaldate,
				"savedate", (json_int_t)msg->savedate,
				"size", (json_int_t)msg->size,
				"email", (json_int_t)msg->email,
				"thread", (json_int_t)msg->thread,
				"sha256", sha);
			if (msg->pop3_uidl != NULL)
				json_object_set_new(jmsg, "pop3_uidl",
						    json_string(msg->pop3_uidl));
			if (msg->pop3_hidden)
				json_object_set_new(jmsg, "pop3_hidden",
						    json_true());
			if (msg->pop3_first_retr != 0)
				json_object_set_new(jmsg, "pop3_first_retr",
					json_integer((json_int_t)
						     msg->pop3_first_retr));
			json_array_append_new(msgs, jmsg);
			migrate_count(m, 0, true);
		}
		if (r < 0) {
			migrate_error(m, address, mb->name, "%s", err.msg);
			failed = true;
		}
		json_object_set_new(jm, "messages", msgs);
		uint64_t horizon = 0;
		json_t *gone = failed || mb->noselect
			? NULL : expunged_json(m, e, mb, address, &horizon);
		if (gone != NULL) {
			json_object_set_new(jm, "expunged", gone);
			json_object_set_new(jm, "expunge_horizon",
					    json_integer((json_int_t)horizon));
		} else if (!mb->noselect) {
			failed = true;
		}
		json_t *seen = failed || mb->noselect
			? NULL : seen_json(m, e, mb, address, &failed);
		if (seen != NULL)
			json_object_set_new(jm, "seen_by", seen);
		enum store_seen_mode mode;
		if (!failed && !mb->noselect &&
		    store_mailbox_seen_mode(user, mb->name, &mode, &err) == 0 &&
		    mode != STORE_SEEN_DEFAULT)
			json_object_set_new(jm, "seen_mode", json_string(
				mode == STORE_SEEN_SHARED ? "shared"
							  : "per-user"));
		json_array_append_new(mbs, jm);
	}
	json_object_set_new(doc, "mailboxes", mbs);
	if (!failed && extra_json(m, e, address, doc) < 0)
		failed = true;
	if (!failed) {
		json_t *kept = kept_json(m, dest, e, address, cache, retry_r);
		if (kept == NULL)
			failed = true;
		else
			json_object_set_new(doc, "kept", kept);
	}
	if (!failed && m->acl_ident != NULL) {
		json_t *acl = acl_json(m, user, address);
		if (acl == NULL)
			failed = true;
		else if (json_array_size(acl) > 0)
			json_object_set_new(doc, "acl", acl);
		else
			json_decref(acl);
	}
	store_export_end(&e);
	if (failed) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* What the manifest carries that moves no change counter, for the
 * unchanged test: POP3's marks (summed: one aggregate, no per-message
 * list, so the unchanged run of a 100,000-message account stays cheap)
 * and undelete's kept messages (a retention purge drops some without a
 * modseq; their rows only, no bodies). NULL when unread: the account is
 * written again. */
static json_t *unchanged_marks(struct store_export *e)
{
	struct store_pop3_sum ps;
	struct store_export_kept *v = NULL;
	size_t n = 0;
	struct store_error err;
	if (store_export_pop3_sum(e, &ps, &err) < 0 ||
	    store_export_kept(e, &v, &n, &err) < 0)
		return NULL;
	json_t *kept = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(kept, json_pack(
			"[s, I, I, I, I, I, s]", v[i].mailbox,
			(json_int_t)v[i].uid, (json_int_t)v[i].deleted_at,
			(json_int_t)v[i].internaldate, (json_int_t)v[i].email,
			(json_int_t)v[i].flags, v[i].keywords));
	store_export_kept_free(v, n);
	return json_pack("{s:[I, I, I, I], s:o}", "pop3",
			 (json_int_t)ps.hidden, (json_int_t)ps.hidden_uids,
			 (json_int_t)ps.retrieved, (json_int_t)ps.first_retr,
			 "kept", kept);
}

int migrate_backup(struct migrate *m, const char *dest, const char **addresses,
		   struct store_user **users, size_t count)
{
	migrate_start(m);
	m->exporting = true;
	if (mkdir(dest, 0700) < 0 && errno != EEXIST) {
		migrate_error(m, NULL, dest, "%s", strerror(errno));
		return 2;
	}
	chmod(dest, 0700);
	/* one run at a time, and no prune meanwhile (its blobs are not
	 * named by any snapshot until the end) */
	char *lockp = xasprintf("%s/.lock", dest);
	int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	free(lockp);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
		migrate_error(m, NULL, dest, ".lock: %s", strerror(errno));
		if (lockfd >= 0)
			close(lockfd);
		return 2;
	}
	char *blobs = xasprintf("%s/blobs", dest);
	char *snaps = xasprintf("%s/snapshots", dest);
	mkdir(blobs, 0700);
	mkdir(snaps, 0700);
	/* the newest complete snapshot: unchanged accounts point there */
	char **done;
	size_t ndone = snapshots(dest, &done, true);
	json_t *prev = NULL;
	char why[160];
	if (ndone > 0) {
		char *p = xasprintf("%s/%s/SNAPSHOT", snaps, done[ndone - 1]);
		prev = json_read_sealed(p, why, sizeof(why));
		free(p);
	}
	char name[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(name, sizeof(name), "%Y-%m-%dT%H%M%SZ", &tm);
	int ret = 0;
	char *dir = NULL;
	if (ndone > 0 && strcmp(name, done[ndone - 1]) <= 0) {
		/* a second run in one second (or the clock went back): the
		 * newest's time with the next "-NNN", so the name still grows
		 * and never reuses the newest snapshot's directory */
		const char *last = done[ndone - 1];
		unsigned n = strlen(last) == 22 ? (unsigned)atoi(last + 19) + 1 : 1;
		if (n > 999) {
			migrate_error(m, NULL, snaps, "more than 999 runs named %.18s",
				      last);
			ret = 2;
			goto out;
		}
		snprintf(name, sizeof(name), "%.18s-%03u", last, n);
	}
	dir = xasprintf("%s/%s", snaps, name);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		migrate_error(m, NULL, dir, "%s", strerror(errno));
		ret = 2;
		goto out;
	}
	json_t *index = json_object();
	json_object_set_new(index, "format", json_string(BACKUP_FORMAT));
	json_object_set_new(index, "time", json_integer((json_int_t)now));
	json_t *accounts = json_array();
	for (size_t i = 0; i < count; i++) {
		const char *a = addresses[i];
		migrate_folder_begin(m, a);
		m->cur->uids_kept = true;
		if (!address_ok(a)) {
			migrate_error(m, a, NULL, "address cannot name a file");
			migrate_folder_end(m);
			ret = 1;
			continue;
		}
		/* unchanged since the newest snapshot (mail and account
		 * record): referenced */
		json_t *record = m->account_record != NULL
			? m->account_record(m->account_ctx, a) : NULL;
		json_t *scripts = sieve_scripts(m, a, users[i]);
		if (scripts == NULL) {
			json_decref(record);
			migrate_folder_end(m);
			ret = 1;
			continue;
		}
		/* what is not mail (no change counter): by its checksum */
		char rsum[65] = "";
		{
			json_t *both = json_pack("{s:O?, s:O}", "account", record,
						 "sieve", scripts);
			json_checksum(both, rsum);
			json_decref(both);
		}
		struct store_export *e;
		struct store_error err;
		uint64_t modseq = 0;
		if (store_export_begin(users[i], &e, &err) == 0) {
			modseq = store_export_info(e)->modseq;
			/* what moves no change counter (a new URLAUTH key, a
			 * Sieve record) makes a new manifest too */
			json_t *x = json_object();
			json_t *marks = unchanged_marks(e);
			if (marks != NULL && extra_json(m, e, a, x) == 0) {
				json_object_set_new(x, "marks", marks);
				json_t *all = json_pack("{s:s, s:o}", "sum",
							rsum, "extra", x);
				json_checksum(all, rsum);
				json_decref(all);
			} else {
				/* unread: the account is written again */
				json_decref(x);
				json_decref(marks);
				rsum[0] = '\0';
			}
			store_export_end(&e);
		}
		json_t *old = NULL;
		size_t k;
		json_t *pa;
		json_array_foreach(prev ? json_object_get(prev, "accounts") : NULL,
				   k, pa) {
			const char *pad = json_string_value(json_object_get(pa, "address"));
			const char *psum = json_string_value(
				json_object_get(pa, "account_sha256"));
			const char *pfmt = json_string_value(
				json_object_get(pa, "format"));
			/* a manifest of format 1 has no expunge log: written
			 * again once */
			if (pad != NULL && strcmp(pad, a) == 0 &&
			    pfmt != NULL && strcmp(pfmt, BACKUP_FORMAT) == 0 &&
			    (uint64_t)json_integer_value(json_object_get(pa, "modseq")) ==
				    modseq &&
			    strcmp(psum != NULL ? psum : "", rsum) == 0)
				old = pa;
		}
		if (old != NULL) {
			m->cur->referenced = true;
			json_array_append(accounts, old);
			json_decref(record);
			json_decref(scripts);
			migrate_folder_end(m);
			continue;
		}
		/* a body loftd removed under the snapshot (an expunge): the
		 * account again from a newer one, bodies read once */
		struct sha_cache cache = {0};
		json_t *doc = NULL;
		for (int attempt = 0; doc == NULL; attempt++) {
			bool retry;
			uint64_t counted = m->imported;
			uint64_t counted_here = m->cur->imported;
			doc = backup_account(m, dest, a, users[i], record,
					     &modseq, &cache, attempt == 0,
					     &retry);
			if (doc != NULL || !retry)
				break;
			/* the account is read again from a newer snapshot */
			m->imported = counted;
			m->cur->imported = counted_here;
			if (attempt == 20) {
				migrate_error(m, a, NULL, "messages kept being"
					      " removed while they were read"
					      " (21 snapshots): the next run"
					      " tries again");
				break;
			}
		}
		sha_cache_free(&cache);
		if (doc != NULL)
			json_object_set(doc, "sieve", scripts);
		json_decref(record);
		json_decref(scripts);
		if (doc == NULL) {
			migrate_folder_end(m);
			ret = 1;
			continue;
		}
		char *path = xasprintf("%s/%s.json", dir, a);
		char sum[65];
		/* the blobs it names first */
		char *bpath = NULL;
		if (blobs_settle(dest) < 0)
			bpath = xasprintf("%s/blobs", dest);
		if (bpath != NULL || json_write_sealed(path, doc, sum) < 0) {
			migrate_error(m, a, NULL, "%s: %s",
				      bpath != NULL ? bpath : path,
				      strerror(errno));
			free(bpath);
			ret = 1;
		} else {
			char *file = xasprintf("%s/%s.json", name, a);
			json_t *entry = json_pack(
				"{s:s, s:s, s:s, s:I, s:s}", "address", a,
				"file", file, "sha256", sum, "modseq",
				(json_int_t)modseq, "format", BACKUP_FORMAT);
			if (rsum[0] != '\0')
				json_object_set_new(entry, "account_sha256",
						    json_string(rsum));
			json_array_append_new(accounts, entry);
			free(file);
		}
		free(path);
		json_decref(doc);
		migrate_folder_end(m);
	}
	json_object_set_new(index, "accounts", accounts);
	/* the whole server: what is in no one account */
	if (ret == 0 && m->server_record != NULL) {
		json_t *srv = m->server_record(m->account_ctx, m, dest);
		char *path = xasprintf("%s/server.json", dir);
		char sum[65];
		if (srv == NULL) {
			ret = 1;
		} else {
			json_object_set_new(srv, "format",
					    json_string(BACKUP_FORMAT));
			if (blobs_settle(dest) < 0 ||
			    json_write_sealed(path, srv, sum) < 0) {
				migrate_error(m, NULL, path, "%s",
					      strerror(errno));
				ret = 1;
			} else {
				char *file = xasprintf("%s/server.json", name);
				json_object_set_new(index, "server", json_pack(
					"{s:s, s:s}", "file", file, "sha256",
					sum));
				free(file);
			}
		}
		json_decref(srv);
		free(path);
	}
	if (ret == 0) {
		/* last: after every file it names is durable */
		char *mark = xasprintf("%s/SNAPSHOT", dir);
		char sum[65];
		if (json_write_sealed(mark, index, sum) < 0) {
			migrate_error(m, NULL, mark, "%s", strerror(errno));
			ret = 1;
		}
		free(mark);
	} else {
		migrate_error(m, NULL, dir, "not a snapshot (something failed);"
			      " the next run makes a whole one");
	}
	json_decref(index);
	if (ret == 0)
		fprintf(m->out, "snapshot %s\n", name);
out:
	/* blobs of a failed run kept whole (the next run need not copy
	 * them again); nothing names them yet */
	blobs_settle(dest);
	free(pending.tmp);
	memset(&pending, 0, sizeof(pending));
	json_decref(prev);
	names_free(done, ndone);
	free(dir);
	free(blobs);
	free(snaps);
	close(lockfd);
	migrate_finish(m, "backup");
	return ret;
}

/* ---- verify, list, prune ------------------------------------------ */

/* "<snapshot>/<address>.json" and nothing else: no "..", no "/" in
 * the address, no absolute path. */
static bool entry_file_ok(const char *file)
{
	if (file == NULL || strlen(file) < 25)
		return false;
	const char *slash = strchr(file, '/');
	size_t snaplen = slash != NULL ? (size_t)(slash - file) : 0;
	char snap[23] = "";
	if (snaplen < sizeof(snap)) {
		memcpy(snap, file, snaplen);
		snap[snaplen] = '\0';
	}
	const char *addr = slash != NULL ? slash + 1 : "";
	char *a = xstrndup(addr, strlen(addr) > 5 ? strlen(addr) - 5 : 0);
	bool good = slash != NULL && snapname_ok(snap) && address_ok(a) &&
		    strcmp(addr + strlen(a), ".json") == 0;
	free(a);
	return good;
}

/* The account manifest an index entry names, checked; NULL with why. */
static json_t *account_doc(const char *dest, json_t *entry, char *why,
			   size_t why_size, char **path_r)
{
	const char *file = json_string_value(json_object_get(entry, "file"));
	const char *sum = json_string_value(json_object_get(entry, "sha256"));
	*path_r = NULL;
	if (!entry_file_ok(file)) {
		snprintf(why, why_size, "names a file outside the backup: %.80s",
			 file ? file : "(none)");
		return NULL;
	}
	*path_r = xasprintf("%s/snapshots/%s", dest, file);
	json_t *doc = json_read_sealed(*path_r, why, why_size);
	if (doc != NULL && (sum == NULL ||
	    strcmp(sum, json_string_value(json_object_get(doc, "sha256"))) != 0)) {
		snprintf(why, why_size, "is not the file the snapshot names"
			 " (checksum)");
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* Checks every blob a manifest names: content and name agree. */
static size_t verify_blobs(struct migrate *m, const char *dest, json_t *doc,
			   const char *what)
{
	char **v = NULL;
	size_t n = 0, cap = 0, bad = 0;
	if (!doc_shas(doc, &v, &n, &cap)) {
		migrate_error(m, what, NULL, "a message without a valid sha256");
		bad++;
	}
	for (size_t i = 0; i < n; i++) {
		struct buf b;
		buf_init(&b, 0);
		char why[1024];
		if (migrate_backup_blob_get(dest, v[i], &b, why, sizeof(why)) < 0) {
			migrate_error(m, what, NULL, "%s", why);
			bad++;
		}
		buf_free(&b);
	}
	names_free(v, n);
	return bad;
}

int migrate_backup_verify(struct migrate *m, const char *dest)
{
	migrate_start(m);
	char **v;
	size_t n = snapshots(dest, &v, true);
	size_t bad = 0;
	char why[200];
	if (n == 0)
		migrate_error(m, NULL, dest, "no complete snapshot");
	for (size_t i = 0; i < n; i++) {
		char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[i]);
		json_t *idx = json_read_sealed(p, why, sizeof(why));
		if (idx == NULL) {
			migrate_error(m, v[i], p, "%s", why);
			bad++;
			free(p);
			continue;
		}
		size_t k;
		json_t *entry;
		json_array_foreach(json_object_get(idx, "accounts"), k, entry) {
			char *path;
			json_t *doc = account_doc(dest, entry, why, sizeof(why),
						  &path);
			if (doc == NULL) {
				migrate_error(m, v[i], path ? path : "SNAPSHOT",
					      "%s", why);
				bad++;
			} else {
				bad += verify_blobs(m, dest, doc, v[i]);
				json_decref(doc);
			}
			free(path);
		}
		json_t *se = json_object_get(idx, "server");
		if (se != NULL) {
			char *path;
			json_t *doc = account_doc(dest, se, why, sizeof(why),
						  &path);
			if (doc == NULL) {
				migrate_error(m, v[i], path ? path : "SNAPSHOT",
					      "%s", why);
				bad++;
			} else {
				bad += verify_blobs(m, dest, doc, v[i]);
				json_decref(doc);
			}
			free(path);
		}
		if (!m->json)
			fprintf(m->out, "%s: %zu accounts%s checked\n", v[i],
				json_array_size(json_object_get(idx, "accounts")),
				se != NULL ? " and the server record" : "");
		json_decref(idx);
		free(p);
	}
	names_free(v, n);
	migrate_finish(m, "verify");
	return bad > 0 || n == 0 ? 1 : 0;
}

int migrate_backup_list(struct migrate *m, const char *dest)
{
	migrate_start(m);
	char **v;
	size_t n = snapshots(dest, &v, true);
	char why[200];
	for (size_t i = 0; i < n; i++) {
		char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[i]);
		json_t *idx = json_read_sealed(p, why, sizeof(why));
		fprintf(m->out, "%s  %zu accounts%s\n", v[i],
			idx ? json_array_size(json_object_get(idx, "accounts")) : 0,
			idx ? "" : "  (damaged: run backup verify)");
		json_decref(idx);
		free(p);
	}
	char **inc;
	size_t ninc = snapshots(dest, &inc, false);
	for (size_t i = 0; i < ninc; i++)
		fprintf(m->out, "%s  incomplete (not a snapshot)\n", inc[i]);
	names_free(v, n);
	names_free(inc, ninc);
	return 0;
}

/* Removes every file of snapshots/NAME and the directory (SNAPSHOT
 * first: from then on it is no snapshot). */
static int remove_snapshot_dir(const char *dest, const char *name)
{
	char *dir = xasprintf("%s/snapshots/%s", dest, name);
	char *mark = xasprintf("%s/SNAPSHOT", dir);
	int ret = 0;
	if (unlink(mark) < 0 && errno != ENOENT)
		ret = -1;
	free(mark);
	fsync_dir(dir);
	DIR *d = ret == 0 ? opendir(dir) : NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *f = xasprintf("%s/%s", dir, de->d_name);
		if (unlink(f) < 0)
			ret = -1;
		free(f);
	}
	if (d != NULL)
		closedir(d);
	if (ret == 0 && rmdir(dir) < 0)
		ret = -1;
	free(dir);
	return ret;
}

/* The snapshot directory a SNAPSHOT entry's file is in ("" if none). */
static void entry_snap(json_t *entry, char out[23])
{
	const char *file = json_string_value(json_object_get(entry, "file"));
	const char *slash = file != NULL ? strchr(file, '/') : NULL;
	out[0] = '\0';
	if (slash != NULL && (size_t)(slash - file) < 23) {
		memcpy(out, file, (size_t)(slash - file));
		out[slash - file] = '\0';
	}
}

int migrate_backup_prune(struct migrate *m, const char *dest, long keep,
			 time_t before, bool dry_run)
{
	migrate_start(m);
	int ret = 0;
	char why[200];
	char *lockp = xasprintf("%s/.lock", dest);
	int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		migrate_error(m, NULL, dest, "%s", lockfd < 0 ? strerror(errno)
			      : "a backup or prune is running on it: not"
				" pruned");
		if (lockfd >= 0)
			close(lockfd);
		free(lockp);
		return 2;
	}
	free(lockp);
	char **v, **inc;
	size_t n = snapshots(dest, &v, true);
	size_t ninc = snapshots(dest, &inc, false);
	json_t **idx = xcalloc(n ? n : 1, sizeof(*idx));
	bool *drop = xcalloc(n ? n : 1, sizeof(bool));
	size_t dropped = 0, blobs_removed = 0;
	uint64_t bytes_freed = 0;
	if (n == 0) {
		migrate_error(m, NULL, dest, "no complete snapshot: nothing"
			      " pruned");
		ret = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[i]);
		idx[i] = json_read_sealed(p, why, sizeof(why));
		if (idx[i] == NULL) {
			migrate_error(m, v[i], p, "%s: nothing pruned (backup"
				      " verify names what is damaged)", why);
			ret = 1;
		}
		free(p);
	}
	if (ret != 0)
		goto out;
	/* never the newest complete one */
	for (size_t i = 0; i + 1 < n; i++) {
		time_t t = (time_t)json_integer_value(json_object_get(idx[i],
								      "time"));
		drop[i] = (keep < 0 || i + (size_t)keep < n) &&
			  (before == 0 || t < before);
		dropped += drop[i];
	}
	/* A kept snapshot may name an account file of a dropped one (an
	 * unchanged account is referenced, not rewritten): the file is
	 * copied into the oldest kept snapshot naming it, and every kept
	 * SNAPSHOT naming it is rewritten, before anything goes. */
	for (size_t k = 0; k < n && !dry_run; k++) {
		if (drop[k])
			continue;
		bool dirty = false;
		size_t e;
		json_t *entry;
		json_array_foreach(json_object_get(idx[k], "accounts"), e, entry) {
			char snap[23];
			entry_snap(entry, snap);
			size_t at = 0;
			while (at < n && strcmp(v[at], snap) != 0)
				at++;
			if (at == n || !drop[at])
				continue;
			const char *file = json_string_value(
				json_object_get(entry, "file"));
			const char *base = strchr(file, '/') + 1;
			char *from = xasprintf("%s/snapshots/%s", dest, file);
			char *nfile = xasprintf("%s/%s", v[k], base);
			char *to = xasprintf("%s/snapshots/%s", dest, nfile);
			struct stat st;
			struct buf data;
			buf_init(&data, 0);
			int r = 0;
			if (stat(to, &st) != 0)
				r = read_file(from, &data, 1u << 30) < 0 ||
				    durable_write(to, data.data, data.len) < 0
					    ? -1 : 0;
			if (r < 0) {
				migrate_error(m, v[k], to, "%s: nothing pruned",
					      strerror(errno));
				ret = 1;
			} else {
				json_object_set_new(entry, "file",
						    json_string(nfile));
				dirty = true;
				/* later kept ones naming it: the copy */
				for (size_t l = k + 1; l < n; l++) {
					size_t e2;
					json_t *en2;
					json_array_foreach(json_object_get(
						idx[l], "accounts"), e2, en2) {
						const char *f2 = json_string_value(
							json_object_get(en2, "file"));
						if (f2 != NULL && strcmp(f2, file) == 0 &&
						    !drop[l]) {
							json_object_set_new(en2, "file",
								json_string(nfile));
							json_object_set_new(idx[l],
								"_dirty", json_true());
						}
					}
				}
			}
			buf_free(&data);
			free(from);
			free(nfile);
			free(to);
			if (ret != 0)
				goto out;
		}
		if (dirty || json_object_get(idx[k], "_dirty") != NULL) {
			json_object_del(idx[k], "_dirty");
			char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[k]);
			char sum[65];
			if (json_write_sealed(p, idx[k], sum) < 0) {
				migrate_error(m, v[k], p, "%s: nothing more"
					      " pruned", strerror(errno));
				ret = 1;
			}
			free(p);
			if (ret != 0)
				goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!drop[i])
			continue;
		if (dry_run) {
			fprintf(m->out, "would prune %s\n", v[i]);
		} else if (remove_snapshot_dir(dest, v[i]) < 0) {
			migrate_error(m, v[i], NULL, "%s", strerror(errno));
			ret = 1;
		} else {
			fprintf(m->out, "pruned %s\n", v[i]);
		}
	}
	/* runs that never finished (killed; the lock says none runs now) */
	for (size_t i = 0; i < ninc; i++) {
		if (dry_run) {
			fprintf(m->out, "would remove incomplete %s\n", inc[i]);
		} else if (remove_snapshot_dir(dest, inc[i]) < 0) {
			migrate_error(m, inc[i], NULL, "%s", strerror(errno));
			ret = 1;
		} else {
			fprintf(m->out, "removed incomplete %s\n", inc[i]);
		}
	}
	/* blobs no kept snapshot names */
	char **keep_sha = NULL;
	size_t nsha = 0, cap = 0;
	bool all_read = true;
	for (size_t k = 0; k < n && all_read; k++) {
		if (drop[k])
			continue;
		size_t e;
		json_t *entry;
		json_array_foreach(json_object_get(idx[k], "accounts"), e, entry) {
			char *path;
			json_t *doc = account_doc(dest, entry, why, sizeof(why),
						  &path);
			if (doc == NULL) {
				migrate_error(m, v[k], path ? path : "SNAPSHOT",
					      "%s: no blob removed", why);
				free(path);
				all_read = false;
				ret = 1;
				break;
			}
			free(path);
			doc_shas(doc, &keep_sha, &nsha, &cap);
			json_decref(doc);
		}
		/* the server record's queued messages */
		json_t *se = json_object_get(idx[k], "server");
		if (se != NULL && all_read) {
			char *path;
			json_t *doc = account_doc(dest, se, why, sizeof(why),
						  &path);
			if (doc == NULL) {
				migrate_error(m, v[k], path ? path : "SNAPSHOT",
					      "%s: no blob removed", why);
				all_read = false;
				ret = 1;
			} else {
				doc_shas(doc, &keep_sha, &nsha, &cap);
			}
			json_decref(doc);
			free(path);
		}
	}
	if (nsha > 1)
		qsort(keep_sha, nsha, sizeof(char *), migrate_strp_cmp);
	char *bdir = xasprintf("%s/blobs", dest);
	DIR *d = all_read ? opendir(bdir) : NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		char *sub = xasprintf("%s/%s", bdir, de->d_name);
		DIR *sd = opendir(sub);
		struct dirent *fe;
		while (sd != NULL && (fe = readdir(sd)) != NULL) {
			const char *nm = fe->d_name;
			size_t len = strlen(nm);
			bool tmp = len > 4 && strcmp(nm + len - 4, ".tmp") == 0;
			if (!hex64(nm) && !tmp)
				continue;
			if (!tmp && nsha > 0 &&
			    bsearch(&nm, keep_sha, nsha, sizeof(char *),
				    migrate_strp_cmp) != NULL)
				continue;
			char *f = xasprintf("%s/%s", sub, nm);
			struct stat st;
			if (lstat(f, &st) == 0 && S_ISREG(st.st_mode)) {
				if (dry_run || unlink(f) == 0) {
					blobs_removed++;
					bytes_freed += (uint64_t)st.st_size;
				}
			}
			free(f);
		}
		if (sd != NULL)
			closedir(sd);
		if (!dry_run)
			rmdir(sub);   /* only if now empty */
		free(sub);
	}
	if (d != NULL)
		closedir(d);
	free(bdir);
	names_free(keep_sha, nsha);
	fprintf(m->out, "%s%zu snapshots pruned, %zu kept; %zu blobs removed"
		" (%.1f MB)\n", dry_run ? "dry run: " : "", dropped,
		n - dropped, blobs_removed, (double)bytes_freed / 1048576.0);
out:
	for (size_t i = 0; i < n; i++)
		json_decref(idx[i]);
	free(idx);
	free(drop);
	names_free(v, n);
	names_free(inc, ninc);
	close(lockfd);
	return ret;
}

/* ---- restore ------------------------------------------------------ */

static unsigned flags_of(json_t *a, const char **kws, size_t *nkw)
{
	unsigned f = 0;
	size_t i;
	json_t *x;
	*nkw = 0;
	json_array_foreach(a, i, x) {
		const char *s = json_string_value(x);
		if (s == NULL)
			continue;
		if (strcmp(s, "\\Seen") == 0)
			f |= STORE_FLAG_SEEN;
		else if (strcmp(s, "\\Answered") == 0)
			f |= STORE_FLAG_ANSWERED;
		else if (strcmp(s, "\\Flagged") == 0)
			f |= STORE_FLAG_FLAGGED;
		else if (strcmp(s, "\\Deleted") == 0)
			f |= STORE_FLAG_DELETED;
		else if (strcmp(s, "\\Draft") == 0)
			f |= STORE_FLAG_DRAFT;
		else if (*nkw < 64)
			kws[(*nkw)++] = s;
	}
	return f;
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

int migrate_manifest_check(const char *data, size_t len, char *why,
			   size_t why_size)
{
	json_t *doc = json_parse_sealed(data, len, why, why_size);
	if (doc == NULL)
		return -1;
	int ret = 0;
	size_t i, j;
	json_t *x, *y;
	/* a SNAPSHOT: every file it names inside the backup */
	json_array_foreach(json_object_get(doc, "accounts"), i, x) {
		const char *file = json_string_value(json_object_get(x, "file"));
		if (!entry_file_ok(file) ||
		    !address_ok(json_string_value(json_object_get(x,
								  "address")))) {
			snprintf(why, why_size, "names a file outside the"
				 " backup: %.80s", file ? file : "(none)");
			ret = -1;
		}
	}
	json_t *se = json_object_get(doc, "server");
	if (se != NULL && !entry_file_ok(json_string_value(
				  json_object_get(se, "file")))) {
		snprintf(why, why_size, "names a server record outside the"
			 " backup");
		ret = -1;
	}
	/* an account: what restore reads of each message */
	json_array_foreach(json_object_get(doc, "mailboxes"), i, x) {
		json_array_foreach(json_object_get(x, "messages"), j, y) {
			const char *kws[64];
			size_t nkw;
			flags_of(json_object_get(y, "flags"), kws, &nkw);
			if (jint(y, "uid") < 0 || jint(y, "uid") > UINT32_MAX) {
				snprintf(why, why_size, "a message with an"
					 " invalid uid");
				ret = -1;
			}
			if (!hex64(json_string_value(json_object_get(y,
								"sha256")))) {
				snprintf(why, why_size, "a message without a"
					 " valid sha256");
				ret = -1;
			}
		}
	}
	/* undelete's kept messages (restore_kept) */
	json_array_foreach(json_object_get(doc, "kept"), i, y) {
		const char *kws[64];
		size_t nkw;
		flags_of(json_object_get(y, "flags"), kws, &nkw);
		if (jint(y, "uid") < 0 || jint(y, "uid") > UINT32_MAX ||
		    !json_is_string(json_object_get(y, "mailbox")) ||
		    !hex64(json_string_value(json_object_get(y, "sha256")))) {
			snprintf(why, why_size, "a kept message without a"
				 " valid mailbox, uid or sha256");
			ret = -1;
		}
	}
	json_decref(doc);
	return ret;
}

json_t *migrate_backup_account(const char *dest, const char *address,
				char *why, size_t why_size)
{
	char **v;
	size_t n = snapshots(dest, &v, true);
	json_t *rec = NULL;
	if (n == 0) {
		snprintf(why, why_size, "no complete snapshot in %s", dest);
		names_free(v, n);
		return NULL;
	}
	char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[n - 1]);
	json_t *idx = json_read_sealed(p, why, why_size);
	size_t k;
	json_t *entry, *found = NULL;
	json_array_foreach(idx != NULL ? json_object_get(idx, "accounts") : NULL,
			   k, entry) {
		const char *a = json_string_value(json_object_get(entry, "address"));
		if (a != NULL && strcmp(a, address) == 0)
			found = entry;
	}
	char *path = NULL;
	json_t *doc = found != NULL
		? account_doc(dest, found, why, why_size, &path) : NULL;
	if (idx != NULL && found == NULL)
		snprintf(why, why_size, "%s is not in snapshot %s", address,
			 v[n - 1]);
	rec = doc != NULL ? json_object_get(doc, "account") : NULL;
	if (doc != NULL && rec == NULL)
		snprintf(why, why_size, "snapshot %s has no account record for"
			 " %s (made without accounts.db)", v[n - 1], address);
	json_incref(rec);
	json_decref(doc);
	json_decref(idx);
	free(path);
	free(p);
	names_free(v, n);
	return rec;
}

json_t *migrate_backup_server(const char *dest, char *why, size_t why_size)
{
	char **v;
	size_t n = snapshots(dest, &v, true);
	if (n == 0) {
		snprintf(why, why_size, "no complete snapshot in %s", dest);
		names_free(v, n);
		return NULL;
	}
	char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[n - 1]);
	json_t *idx = json_read_sealed(p, why, why_size);
	json_t *se = idx != NULL ? json_object_get(idx, "server") : NULL;
	char *path = NULL;
	json_t *doc = se != NULL ? account_doc(dest, se, why, why_size, &path)
				 : NULL;
	if (idx != NULL && se == NULL)
		snprintf(why, why_size, "snapshot %s has no server record"
			 " (made for some accounts only)", v[n - 1]);
	char **shas = NULL;
	size_t ns = 0, cap = 0;
	if (doc != NULL && !doc_shas(doc, &shas, &ns, &cap)) {
		snprintf(why, why_size, "server.json names a message without"
			 " a valid sha256");
		json_decref(doc);
		doc = NULL;
	}
	for (size_t i = 0; doc != NULL && i < ns; i++) {
		struct buf b;
		buf_init(&b, 0);
		if (migrate_backup_blob_get(dest, shas[i], &b, why,
					    why_size) < 0) {
			json_decref(doc);
			doc = NULL;
		}
		buf_free(&b);
	}
	names_free(shas, ns);
	json_decref(idx);
	free(path);
	free(p);
	names_free(v, n);
	return doc;
}

int migrate_backup_addresses(const char *dest, char ***addresses_r,
			     size_t *count_r, char *why, size_t why_size)
{
	char **v;
	size_t n = snapshots(dest, &v, true);
	*addresses_r = NULL;
	*count_r = 0;
	if (n == 0) {
		snprintf(why, why_size, "no complete snapshot in %s", dest);
		names_free(v, n);
		return -1;
	}
	char *p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[n - 1]);
	json_t *idx = json_read_sealed(p, why, why_size);
	free(p);
	names_free(v, n);
	if (idx == NULL)
		return -1;
	size_t k;
	json_t *entry;
	char **out = NULL;
	size_t cnt = 0;
	json_array_foreach(json_object_get(idx, "accounts"), k, entry) {
		const char *a = json_string_value(json_object_get(entry, "address"));
		if (a == NULL || !address_ok(a))
			continue;
		out = xrealloc(out, (cnt + 1) * sizeof(char *));
		out[cnt++] = xstrdup(a);
	}
	json_decref(idx);
	*addresses_r = out;
	*count_r = cnt;
	return 0;
}

/* A folder's \Seen setting (unless it has its own here) and, into a
 * folder that kept the backup's UIDs, its readers' own \Seen. */
static void restore_seen(struct migrate *m, json_t *mb, const char *name,
			 bool uids_kept)
{
	struct store_error err;
	const char *mode = json_string_value(json_object_get(mb, "seen_mode"));
	enum store_seen_mode cur;
	if (mode != NULL &&
	    store_mailbox_seen_mode(m->user, name, &cur, &err) == 0 &&
	    cur == STORE_SEEN_DEFAULT &&
	    store_mailbox_set_seen_mode(m->user, name, strcmp(mode, "shared") == 0
					? STORE_SEEN_SHARED : STORE_SEEN_PER_USER,
					&err) < 0)
		migrate_error(m, name, NULL, "\\Seen setting not restored: %s",
			      err.msg);
	json_t *readers = json_object_get(mb, "seen_by");
	if (readers != NULL && !uids_kept) {
		migrate_error(m, name, NULL, "readers' own \\Seen not restored:"
			      " the folder has other UIDs here");
		return;
	}
	const char *who;
	json_t *set;
	json_object_foreach(readers, who, set) {
		int64_t id = m->user_id != NULL ? m->user_id(m->account_ctx, who)
						: 0;
		const char *t = json_string_value(set);
		struct store_uid_range *r = NULL;
		size_t nr = 0;
		if (id <= 0)
			migrate_error(m, name, who, "reader's own \\Seen not"
				      " restored: no such account here");
		else if (t == NULL || imap_uid_set_parse(t, strlen(t), &r, &nr) < 0)
			migrate_error(m, name, who, "reader's own \\Seen not"
				      " restored: damaged UID set");
		else if (store_import_seen(m->user, name, id, r, nr, &err) < 0)
			migrate_error(m, name, who, "reader's own \\Seen not"
				      " restored: %s", err.msg);
		free(r);
	}
}

/* A reader named in the manifest as this server knows it: 0 the owner
 * (no reader named), -1 none here. */
static int64_t extra_reader(struct migrate *m, json_t *j)
{
	const char *who = json_string_value(json_object_get(j, "reader"));
	if (who == NULL)
		return 0;
	int64_t id = m->user_id != NULL ? m->user_id(m->account_ctx, who) : 0;
	return id > 0 ? id : -1;
}

static bool hex_key(const char *s, unsigned char out[STORE_URLAUTH_KEY_LEN])
{
	if (s == NULL || strlen(s) != 2 * STORE_URLAUTH_KEY_LEN)
		return false;
	for (size_t i = 0; i < STORE_URLAUTH_KEY_LEN; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (unsigned char)v;
	}
	return true;
}

/* The manifest's METADATA entries, URLAUTH keys, Sieve records and JMAP
 * objects back (format 2 files from before they existed have none).
 * What the account has already stays as it is (as with Sieve scripts and
 * ACL entries): restoring an account into itself never brings back an
 * URLAUTH key reset since. A reader without an account here, or a folder
 * the account does not have, is reported and left out. */
static int restore_extra(struct migrate *m, json_t *doc, const char *address,
			 bool ids_ok)
{
	struct store_account_extra x = {0};
	json_t *md = json_object_get(doc, "metadata"),
	       *keys = json_object_get(doc, "urlauth_keys"),
	       *recs = json_object_get(doc, "sieve_records"),
	       *objs = json_object_get(doc, "jmap_objects");
	size_t i, lost = 0;
	json_t *j;
	x.annotations = xcalloc(json_array_size(md) + 1, sizeof(*x.annotations));
	json_array_foreach(md, i, j) {
		const char *name = json_string_value(json_object_get(j, "name"));
		const char *v = json_string_value(json_object_get(j,
							"value_base64"));
		const char *mb = json_string_value(json_object_get(j, "mailbox"));
		int64_t who = extra_reader(m, j);
		struct buf val;
		buf_init(&val, 0);
		if (name == NULL || v == NULL || who < 0 ||
		    base64_decode(v, strlen(v), BASE64_STRICT, &val) < 0) {
			buf_free(&val);
			lost++;
			continue;
		}
		struct store_extra_annotation *a =
			&x.annotations[x.annotation_count++];
		a->mailbox = mb ? xstrdup(mb) : NULL;
		a->viewer = who;
		a->name = xstrdup(name);
		a->value_len = val.len;
		buf_append_char(&val, '\0');
		a->value = buf_steal(&val, NULL);
	}
	x.keys = xcalloc(json_array_size(keys) + 1, sizeof(*x.keys));
	json_array_foreach(keys, i, j) {
		const char *mb = json_string_value(json_object_get(j, "mailbox"));
		struct store_extra_key *k = &x.keys[x.key_count];
		int64_t who = extra_reader(m, j);
		if (mb == NULL || who < 0 ||
		    !hex_key(json_string_value(json_object_get(j, "key")),
			     k->key)) {
			lost++;
			continue;
		}
		k->mailbox = xstrdup(mb);
		k->viewer = who;
		x.key_count++;
	}
	x.records = xcalloc(json_array_size(recs) + 1, sizeof(*x.records));
	json_array_foreach(recs, i, j) {
		const char *key = json_string_value(json_object_get(j, "key"));
		if (key == NULL) {
			lost++;
			continue;
		}
		x.records[x.record_count].key = xstrdup(key);
		x.records[x.record_count++].expires =
			(time_t)jint(j, "expires");
	}
	x.objects = xcalloc(json_array_size(objs) + 1, sizeof(*x.objects));
	json_array_foreach(objs, i, j) {
		const char *type = json_string_value(json_object_get(j, "type"));
		const char *data = json_string_value(json_object_get(j, "data"));
		int kind = type == NULL ? -1
			: strcmp(type, "Identity") == 0 ? STORE_JMAP_IDENTITY
			: strcmp(type, "VacationResponse") == 0
				? STORE_JMAP_VACATION
			: strcmp(type, "settings") == 0 ? STORE_JMAP_SETTINGS
			: strcmp(type, "EmailSubmission") == 0
				? STORE_JMAP_SUBMISSION
			: strcmp(type, "PushSubscription") == 0
				? STORE_JMAP_PUSH : -1;
		if (kind < 0 || data == NULL || jint(j, "id") <= 0) {
			lost++;
			continue;
		}
		/* an EmailSubmission names its Email by id: only into an
		 * account whose Emails kept the backup's ids (a fresh one) */
		if (kind == STORE_JMAP_SUBMISSION && !ids_ok)
			continue;
		struct store_extra_object *o = &x.objects[x.object_count++];
		o->kind = kind;
		o->id = (int64_t)jint(j, "id");
		o->data = xstrdup(data);
	}
	struct store_error err;
	size_t skipped = 0;
	int ret = 0;
	if (lost > 0)
		migrate_error(m, address, NULL, "%zu METADATA entries, URLAUTH"
			      " keys, Sieve records or JMAP objects not"
			      " restored: damaged, or a reader without an"
			      " account here", lost);
	if (store_import_extra(m->user, &x, &skipped, &err) < 0) {
		migrate_error(m, address, NULL, "METADATA, URLAUTH keys, Sieve"
			      " records and JMAP objects not restored: %s",
			      err.msg);
		ret = -1;
	} else if (skipped > 0) {
		migrate_error(m, address, NULL, "%zu METADATA entries or"
			      " URLAUTH keys not restored: their folder is not"
			      " here", skipped);
	}
	store_account_extra_free(&x);
	return ret;
}

/* A folder a restore makes exact (store_import_exact). */
struct exact_folder {
	bool on;
	struct store_import_exact_msg *msgs;
	size_t n;
	/* the source's UIDs this run did not store (--since, a failure,
	 * another UID given): expunged now, to a client that cached them */
	struct store_uid_range *left;
	size_t nleft;
};

static int got_cmp(const void *a, const void *b)
{
	const struct migrate_got *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* After a folder's last commit: each message this run (or a killed
 * earlier one, by its marks under gsource) stored with its UID, with the
 * modseq it got and the source's, and those of the backup not stored. */
static void exact_collect(struct migrate *m, json_t *mb, const char *gsource,
			  struct exact_folder *x)
{
	json_t *msgs = json_object_get(mb, "messages");
	/* what earlier runs of this restore stored (a killed one): their
	 * marks say the modseq each got */
	char **ids = NULL;
	size_t nid = 0;
	struct store_error e;
	if (store_import_marks(m->user, gsource, &ids, &nid, &e) == 0) {
		for (size_t i = 0; i < nid; i++) {
			for (char *s = ids[i]; *s != '\0';) {
				char *end;
				unsigned long uid = strtoul(s, &end, 10);
				if (*end != '=')
					break;
				unsigned long long ms = strtoull(end + 1, &end,
								 10);
				if (m->got_n == m->got_cap) {
					m->got_cap = m->got_cap ? m->got_cap * 2
								: 256;
					m->got = xrealloc(m->got, m->got_cap *
								  sizeof(*m->got));
				}
				m->got[m->got_n++] = (struct migrate_got){
					(uint32_t)uid, (uint64_t)ms};
				if (*end != ',')
					break;
				s = end + 1;
			}
		}
		store_names_free(ids, nid);
	}
	/* this run's and earlier runs' (a UID stored once: the same) */
	if (m->got_n > 1)
		qsort(m->got, m->got_n, sizeof(*m->got), got_cmp);
	x->on = true;
	x->msgs = xcalloc(m->got_n ? m->got_n : 1, sizeof(*x->msgs));
	x->n = 0;
	x->left = xcalloc(json_array_size(msgs) + 1, sizeof(*x->left));
	x->nleft = 0;
	size_t g = 0, j;
	json_t *msg;
	json_array_foreach(msgs, j, msg) {
		uint32_t uid = (uint32_t)jint(msg, "uid");
		while (g < m->got_n && m->got[g].uid < uid)
			g++;
		uint64_t modseq = (uint64_t)jint(msg, "modseq");
		if (g < m->got_n && m->got[g].uid == uid) {
			if (modseq > 0)
				x->msgs[x->n++] = (struct store_import_exact_msg){
					uid, m->got[g].modseq, modseq};
		} else if (uid > 0) {
			/* (one the folder holds, from an earlier run, the
			 * store leaves out of the log) */
			if (x->nleft > 0 && x->left[x->nleft - 1].hi + 1 == uid)
				x->left[x->nleft - 1].hi = uid;
			else
				x->left[x->nleft++] = (struct store_uid_range){
					uid, uid};
		}
	}
	m->got_n = 0;
}

/* The folder's source modseqs, expunge log and HIGHESTMODSEQ. A backup
 * of format 1 has no log: its horizon is then the folder's
 * HIGHESTMODSEQ, so a resync from an older modseq is not taken for
 * incremental (RFC 7162 3.2.5.2: every UID the client names that is not
 * here is reported VANISHED). -1 after reporting. */
static int exact_finish(struct migrate *m, json_t *mb, struct exact_folder *f,
			uint64_t account_modseq)
{
	const char *name = json_string_value(json_object_get(mb, "name"));
	json_t *log = json_object_get(mb, "expunged");
	struct store_import_exact x = {
		.name = name,
		.uidvalidity = (uint32_t)jint(mb, "uidvalidity"),
		.highestmodseq = (uint64_t)jint(mb, "highestmodseq"),
		.expunge_horizon = json_is_array(log)
			? (uint64_t)jint(mb, "expunge_horizon")
			: (uint64_t)jint(mb, "highestmodseq"),
		.jmap_horizon = account_modseq,
		.msgs = f->msgs,
		.msg_count = f->n,
	};
	struct store_expunged_range *r = NULL;
	size_t n = 0, cap = 0, k;
	json_t *e;
	int ret = 0;
	json_array_foreach(log, k, e) {
		const char *set = json_string_value(json_object_get(e, "uids"));
		struct store_uid_range *u = NULL;
		size_t nu = 0;
		json_int_t modseq = jint(e, "modseq");
		if (set == NULL || modseq <= 0 ||
		    imap_uid_set_parse(set, strlen(set), &u, &nu) < 0) {
			migrate_error(m, name, NULL, "expunge log: a damaged"
				      " entry left out");
			ret = -1;
			continue;
		}
		for (size_t i = 0; i < nu; i++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				r = xrealloc(r, cap * sizeof(*r));
			}
			r[n++] = (struct store_expunged_range){
				u[i].lo, u[i].hi, (uint64_t)modseq,
				(time_t)jint(e, "at")};
		}
		free(u);
	}
	/* what this run left out: expunged now (a new modseq) */
	for (size_t i = 0; i < f->nleft; i++) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			r = xrealloc(r, cap * sizeof(*r));
		}
		r[n++] = (struct store_expunged_range){
			f->left[i].lo, f->left[i].hi, 0, time(NULL)};
	}
	x.expunged = r;
	x.expunged_count = n;
	struct store_error err;
	if (store_import_exact(m->user, &x, &err) < 0) {
		migrate_error(m, name, NULL, "modseqs and expunge log not"
			      " restored: %s", err.msg);
		ret = -1;
	}
	free(r);
	return ret;
}

/* Undelete's kept messages of the manifest ("kept"; none in an older
 * backup) the account lacks, each with its removal time, so `loftctl
 * undelete` brings back what it would have at the source and the
 * retention period runs on. One the account keeps already (same folder,
 * UID, removal time and internal date) is left as it is. --folder and
 * --since narrow them as they narrow the mail. */
static int restore_kept(struct migrate *m, const char *dest, json_t *doc,
			const char *address, bool ids_ok, time_t since)
{
	int ret = 0;
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(doc, "kept"), i, k) {
		const char *name = json_string_value(json_object_get(k, "mailbox"));
		const char *sha = json_string_value(json_object_get(k, "sha256"));
		time_t date = (time_t)jint(k, "internaldate");
		if (name == NULL || !hex64(sha) ||
		    (m->folder != NULL && strcmp(m->folder, name) != 0) ||
		    (since != 0 && date < since))
			continue;
		const char *kws[64];
		size_t nkw;
		unsigned flags = flags_of(json_object_get(k, "flags"), kws, &nkw);
		struct buf kw;
		buf_init(&kw, 0);
		for (size_t w = 0; w < nkw; w++)
			buf_printf(&kw, "%s%s", w ? " " : "", kws[w]);
		struct store_import_kept ik = {
			.mailbox = name,
			.uid = (uint32_t)jint(k, "uid"),
			.flags = flags,
			.keywords = kw.len > 0 ? kw.data : NULL,
			.internaldate = date,
			.savedate = (time_t)jint(k, "savedate"),
			.deleted_at = (time_t)jint(k, "deleted_at"),
		};
		/* the ids back only into an account that does not have
		 * them (a fresh one): elsewhere n could name another Email */
		if (ids_ok) {
			ik.email = (int64_t)jint(k, "email");
			ik.thread = (int64_t)jint(k, "thread");
		}
		char label[40];
		snprintf(label, sizeof(label), "kept UID %u", ik.uid);
		char *bp = blob_path(dest, sha);
		struct buf data;
		buf_init(&data, 0);
		struct store_body *body = NULL;
		struct store_error err;
		int r = read_file(bp, &data, (size_t)1 << 31);
		if (r < 0 || store_body_create(m->store, &body, &err) < 0 ||
		    store_body_write(body, data.data, data.len, &err) < 0 ||
		    store_body_finish(body, &err) < 0) {
			migrate_error(m, name, label, "%s",
				      r < 0 ? strerror(errno) : err.msg);
			ret = -1;
		} else if (store_import_kept(m->user, &ik, body, &err) < 0) {
			if (err.kind != STORE_ERR_EXISTS) {
				migrate_error(m, name, label, "%s", err.msg);
				ret = -1;
			}
		}
		store_body_unref(&body);
		buf_free(&data);
		buf_free(&kw);
		free(bp);
	}
	(void)address;
	return ret;
}

int migrate_restore(struct migrate *m, const char *dest, const char *address,
		    time_t since)
{
	migrate_start(m);
	char **v;
	size_t n = snapshots(dest, &v, true);
	char why[200];
	int ret = 0;
	json_t *idx = NULL, *doc = NULL;
	char *path = NULL, *p = NULL;
	if (n == 0) {
		migrate_error(m, NULL, dest, "no complete snapshot to restore");
		ret = 2;
		goto out;
	}
	p = xasprintf("%s/snapshots/%s/SNAPSHOT", dest, v[n - 1]);
	idx = json_read_sealed(p, why, sizeof(why));
	if (idx == NULL) {
		migrate_error(m, v[n - 1], p, "%s: restore refused", why);
		ret = 2;
		goto out;
	}
	size_t k;
	json_t *entry, *found = NULL;
	json_array_foreach(json_object_get(idx, "accounts"), k, entry) {
		const char *a = json_string_value(json_object_get(entry, "address"));
		if (a != NULL && strcmp(a, address) == 0)
			found = entry;
	}
	if (found == NULL) {
		migrate_error(m, address, NULL, "not in snapshot %s", v[n - 1]);
		ret = 2;
		goto out;
	}
	doc = account_doc(dest, found, why, sizeof(why), &path);
	if (doc == NULL) {
		migrate_error(m, address, path, "%s: restore refused", why);
		ret = 2;
		goto out;
	}
	/* every body first: a damaged backup restores nothing */
	if (verify_blobs(m, dest, doc, address) > 0) {
		migrate_error(m, address, NULL, "the backup is damaged: restore"
			      " refused (backup verify names the files)");
		ret = 2;
		goto out;
	}
	char *source = xasprintf("restore:%s", json_string_value(
					json_object_get(found, "file")));
	size_t i;
	json_t *mb;
	/* EMAILIDs and THREADIDs come back only into an account whose every
	 * message came from this restore (a new one, or one this restore
	 * was killed in): elsewhere an id could name another Email */
	bool ids_ok = false;
	{
		struct store_usage use;
		struct store_error e;
		uint64_t marked = 0;
		json_array_foreach(json_object_get(doc, "mailboxes"), i, mb) {
			const char *nm = json_string_value(json_object_get(mb, "name"));
			if (nm == NULL)
				continue;
			char *ms = xasprintf("%s/%s", source, nm);
			char **ids = NULL;
			size_t nid = 0;
			if (store_import_marks(m->user, ms, &ids, &nid, &e) == 0)
				marked += nid;
			store_names_free(ids, nid);
			free(ms);
		}
		ids_ok = store_user_usage(m->user, &use, &e) == 0 &&
			 use.messages == marked;
	}
	bool stop = false;   /* over quota: the next run resumes */
	/* the folders whose UIDs were kept: UIDNEXT and HIGHESTMODSEQ set
	 * after the last message of every folder (below) */
	json_t *mbs = json_object_get(doc, "mailboxes");
	size_t *kept = xcalloc(json_array_size(mbs) + 1, sizeof(size_t));
	size_t nkept = 0;
	/* of each kept folder restored exactly (one that never held mail,
	 * or held only what restores of this backup stored): the modseq
	 * each message got, to become the source's (store_import_exact) */
	struct exact_folder *exact = xcalloc(json_array_size(mbs) + 1,
					     sizeof(*exact));
	json_array_foreach(mbs, i, mb) {
		const char *name = json_string_value(json_object_get(mb, "name"));
		if (stop)
			break;
		if (name == NULL || json_is_true(json_object_get(mb, "noselect")))
			continue;
		if (m->folder != NULL && strcmp(m->folder, name) != 0)
			continue;
		migrate_folder_begin(m, name);
		bool subscribed = false;
		size_t s;
		json_t *sub;
		json_array_foreach(json_object_get(doc, "subscriptions"), s, sub)
			if (json_string_value(sub) != NULL &&
			    strcmp(json_string_value(sub), name) == 0)
				subscribed = true;
		uint32_t uv = (uint32_t)jint(mb, "uidvalidity");
		struct store_import_mailbox spec = {
			.name = name,
			.uidvalidity = uv,
			.objectid = json_string_value(json_object_get(mb, "mailboxid")),
			.special_use = (unsigned)jint(mb, "special_use"),
			.subscribe = subscribed,
		};
		struct store_mailbox_info info;
		struct store_error err;
		if (store_import_mailbox(m->user, &spec, &info, &err) < 0) {
			migrate_error(m, name, NULL, "%s", err.msg);
			ret = 1;
			migrate_folder_end(m);
			continue;
		}
		bool keep = info.uidvalidity == uv;
		/* a folder with mail gets only what it lacks, by content
		 * and internal date */
		struct held held = {0};
		bool with_mail = info.messages > 0;
		uint64_t holds = info.messages;
		store_mailbox_info_free(&info);
		char *msource = xasprintf("%s/%s", source, name);
		bool exact_ok = keep && !with_mail;
		if (keep && with_mail) {
			/* a rerun of a restore killed in this folder */
			char **ids = NULL;
			size_t nid = 0;
			struct store_error e;
			exact_ok = store_import_marks(m->user, msource, &ids,
						      &nid, &e) == 0 &&
				   nid == holds;
			store_names_free(ids, nid);
		}
		if (with_mail && folder_held(m, name, &held) < 0) {
			ret = 1;
			free(msource);
			migrate_folder_end(m);
			continue;
		}
		m->cur->uids_kept = keep;
		m->got_record = exact_ok;
		m->got_n = 0;
		char *gsource = xasprintf("%s/%s", source, name);
		gsource[0] = 'R';     /* "Restore:...": the modseqs marks */
		m->got_mark_source = exact_ok ? gsource : NULL;
		/* marks only tell ids_ok and exact_ok above (a killed
		 * restore's rerun finds what it stored by content, as
		 * anything else) */
		size_t j;
		json_t *msg;
		json_array_foreach(json_object_get(mb, "messages"), j, msg) {
			if (stop)
				break;
			time_t date = (time_t)jint(msg, "internaldate");
			if (since != 0 && date < since)
				continue;
			char id[24], mark[48];
			snprintf(id, sizeof(id), "%lld", (long long)jint(msg, "uid"));
			/* this run's own mark: one from an earlier restore
			 * must not stop a message removed since */
			snprintf(mark, sizeof(mark), "%s.%llu", id,
				 (unsigned long long)m->started_ns);
			const char *sha = json_string_value(json_object_get(msg, "sha256"));
			if (held_take(&held, date, sha)) {
				m->skipped++;
				m->cur->skipped++;
				continue;
			}
			const char *kws[64];
			size_t nkw;
			unsigned flags = flags_of(json_object_get(msg, "flags"),
						  kws, &nkw);
			char *bp = blob_path(dest, sha);
			struct buf data;
			buf_init(&data, 0);
			char label[40];
			snprintf(label, sizeof(label), "UID %s", id);
			struct store_body *body = NULL;
			int r = read_file(bp, &data, (size_t)1 << 31);
			if (r < 0 || store_body_create(m->store, &body, &err) < 0 ||
			    store_body_write(body, data.data, data.len, &err) < 0) {
				migrate_error(m, name, label, "%s",
					      r < 0 ? strerror(errno) : err.msg);
				m->failed++;
				ret = 1;
			} else {
				struct migrate_msg in = {
					.folder = name,
					.label = label,
					.uid = (uint32_t)jint(msg, "uid"),
					.flags = flags,
					.keywords = kws,
					.keyword_count = nkw,
					.date = date,
					.pop3_uidl = json_string_value(
						json_object_get(msg, "pop3_uidl")),
					.mark_source = msource,
					.mark_id = mark,
					.size = data.len,
					.modseq = (uint64_t)jint(msg, "modseq"),
					.savedate = (time_t)jint(msg, "savedate"),
					.pop3_hidden = json_is_true(
						json_object_get(msg,
								"pop3_hidden")),
					.pop3_first_retr = (time_t)jint(
						msg, "pop3_first_retr"),
				};
				/* the ids back only into an account that
				 * does not have them (a fresh one) */
				if (keep && ids_ok) {
					in.email = (int64_t)jint(msg, "email");
					in.thread = (int64_t)jint(msg, "thread");
				}
				if (migrate_msg_commit(m, &body, &in, keep) == -2)
					stop = true;
			}
			store_body_unref(&body);
			buf_free(&data);
			free(bp);
		}
		held_free(&held);
		if (migrate_msg_flush(m) == -2)
			stop = true;
		if (keep && !stop && exact_ok)
			exact_collect(m, mb, gsource, &exact[nkept]);
		m->got_record = false;
		m->got_mark_source = NULL;
		free(gsource);
		if (keep && !stop)
			kept[nkept++] = i;
		restore_seen(m, mb, name, keep && !stop);
		free(msource);
		migrate_folder_end(m);
	}
	/* ACL entries a mailbox lacks (one it has stays as it is) */
	json_t *ae;
	json_array_foreach(json_object_get(doc, "acl"), i, ae) {
		const char *mbn = json_string_value(json_object_get(ae, "mailbox"));
		const char *id = json_string_value(json_object_get(ae, "identifier"));
		const char *rights = json_string_value(json_object_get(ae, "rights"));
		if (mbn == NULL || id == NULL || rights == NULL ||
		    (m->folder != NULL && strcmp(m->folder, mbn) != 0))
			continue;
		char w[200] = "";
		if (m->acl_restore == NULL ||
		    m->acl_restore(m->account_ctx, m->user, mbn, id, rights, w,
				   sizeof(w)) < 0)
			migrate_error(m, mbn, id, "ACL entry not restored: %s",
				      m->acl_restore ? w : "this loftctl"
				      " keeps no ACLs");
	}
	struct store_error err;
	store_modseq_raise(m->user, (uint64_t)jint(doc, "modseq"), &err);
	/* each kept folder's UIDNEXT as at the source, and its
	 * HIGHESTMODSEQ above the counter just raised, so never below the
	 * source's (a client that cached that would miss later changes);
	 * done after every folder's messages, so that no folder's mailbox
	 * change takes the counter past a later folder's modseqs */
	for (size_t kn = 0; kn < nkept; kn++) {
		json_t *km = json_array_get(mbs, kept[kn]);
		struct store_import_mailbox after = {
			.name = json_string_value(json_object_get(km, "name")),
			.uidvalidity = (uint32_t)jint(km, "uidvalidity"),
			.uidnext = (uint32_t)jint(km, "uidnext")};
		store_import_mailbox(m->user, &after, NULL, &err);
		if (exact[kn].on &&
		    exact_finish(m, km, &exact[kn], (uint64_t)jint(doc,
							"modseq")) < 0)
			ret = 1;
	}
	for (size_t kn = 0; kn < nkept; kn++) {
		free(exact[kn].msgs);
		free(exact[kn].left);
	}
	free(exact);
	free(kept);
	free(source);
	/* Sieve scripts the account does not have (one it has stays) */
	if (m->folder == NULL && json_array_size(json_object_get(doc, "sieve"))) {
		struct store_sieve_script *have = NULL;
		size_t nhave = 0;
		if (store_sieve_list(m->user, &have, &nhave, &err) < 0)
			migrate_error(m, address, NULL, "Sieve scripts: %s",
				      err.msg);
		json_t *sc;
		json_array_foreach(json_object_get(doc, "sieve"), i, sc) {
			const char *nm = json_string_value(json_object_get(sc, "name"));
			json_t *src = json_object_get(sc, "source");
			bool there = false;
			for (size_t h = 0; h < nhave && nm != NULL; h++)
				there |= strcmp(have[h].name, nm) == 0;
			if (nm == NULL || !json_is_string(src) || there)
				continue;
			char w[200] = "";
			if (m->sieve_restore == NULL ||
			    m->sieve_restore(m->account_ctx, m->user, nm,
					     json_string_value(src),
					     json_string_length(src),
					     json_is_true(json_object_get(sc,
								"active")),
					     w, sizeof(w)) < 0)
				migrate_error(m, address, nm, "Sieve script not"
					      " restored: %s", m->sieve_restore
					      ? w : "this loftctl has no Sieve");
		}
		store_sieve_list_free(have, nhave);
	}
	if (m->folder == NULL && restore_extra(m, doc, address, ids_ok) < 0)
		ret = 1;
	if (restore_kept(m, dest, doc, address, ids_ok, since) < 0)
		ret = 1;
out:
	json_decref(doc);
	json_decref(idx);
	free(path);
	free(p);
	names_free(v, n);
	migrate_finish(m, "restore");
	if (ret == 2)
		return 2;
	return ret != 0 || m->problems > 0 ? 1 : 0;
}
