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
 * date) with new UIDs. Resume marks make a killed restore finish on the
 * next run.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define BACKUP_FORMAT "loft-backup-1"

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char d[32];
	unsigned dl = 0;
	EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
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
	json_error_t je;
	json_t *doc = json_loadb(b.data, b.len, 0, &je);
	buf_free(&b);
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
	if (fmt == NULL || strcmp(fmt, BACKUP_FORMAT) != 0) {
		snprintf(why, why_size, "not a %s file", BACKUP_FORMAT);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static char *blob_path(const char *dest, const char *sha)
{
	return xasprintf("%s/blobs/%.2s/%s", dest, sha, sha);
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

/* The account's manifest; bodies copied into DEST/blobs as met. */
static json_t *backup_account(struct migrate *m, const char *dest,
			      const char *address, struct store_user *user,
			      json_t *record, uint64_t *modseq_r)
{
	struct store_export *e;
	struct store_error err;
	if (store_export_begin(user, &e, &err) < 0) {
		migrate_error(m, address, NULL, "%s", err.msg);
		return NULL;
	}
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
			struct store_blob b;
			if (store_export_body(e, msg->email, &b, &err) < 0) {
				migrate_error(m, address, mb->name, "UID %u: %s",
					      msg->uid, err.msg);
				failed = true;
				break;
			}
			char sha[65];
			sha256_hex(b.data, b.len, sha);
			char *path = blob_path(dest, sha);
			struct stat st;
			if (stat(path, &st) != 0 || (uint64_t)st.st_size != b.len) {
				char *dir = xasprintf("%s/blobs/%.2s", dest, sha);
				mkdir(dir, 0700);
				free(dir);
				if (durable_write(path, b.data, b.len) < 0) {
					migrate_error(m, address, mb->name,
						      "UID %u: %s: %s", msg->uid,
						      path, strerror(errno));
					failed = true;
				} else {
					m->bytes += b.len;
				}
			}
			free(path);
			store_blob_close(&b);
			if (failed)
				break;
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
			json_array_append_new(msgs, jmsg);
			m->imported++;
			migrate_count(m, 0, false);
		}
		if (r < 0) {
			migrate_error(m, address, mb->name, "%s", err.msg);
			failed = true;
		}
		json_object_set_new(jm, "messages", msgs);
		json_array_append_new(mbs, jm);
	}
	json_object_set_new(doc, "mailboxes", mbs);
	store_export_end(&e);
	if (failed) {
		json_decref(doc);
		return NULL;
	}
	return doc;
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
			if (pad != NULL && strcmp(pad, a) == 0 &&
			    (uint64_t)json_integer_value(json_object_get(pa, "modseq")) ==
				    modseq &&
			    strcmp(psum != NULL ? psum : "", rsum) == 0)
				old = pa;
		}
		if (old != NULL) {
			json_array_append(accounts, old);
			json_decref(record);
			json_decref(scripts);
			migrate_folder_end(m);
			continue;
		}
		json_t *doc = backup_account(m, dest, a, users[i], record,
					     &modseq);
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
		if (json_write_sealed(path, doc, sum) < 0) {
			migrate_error(m, a, NULL, "%s: %s", path, strerror(errno));
			ret = 1;
		} else {
			char *file = xasprintf("%s/%s.json", name, a);
			json_t *entry = json_pack(
				"{s:s, s:s, s:s, s:I}", "address", a, "file", file,
				"sha256", sum, "modseq", (json_int_t)modseq);
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
	json_decref(prev);
	names_free(done, ndone);
	free(dir);
	free(blobs);
	free(snaps);
	migrate_finish(m, "backup");
	return ret;
}

/* ---- verify, list, prune ------------------------------------------ */

/* The account manifest an index entry names, checked; NULL with why. */
static json_t *account_doc(const char *dest, json_t *entry, char *why,
			   size_t why_size, char **path_r)
{
	const char *file = json_string_value(json_object_get(entry, "file"));
	const char *sum = json_string_value(json_object_get(entry, "sha256"));
	*path_r = NULL;
	/* "<snapshot>/<address>.json" and nothing else: no "..", no "/"
	 * in the address, no absolute path */
	if (file == NULL || strlen(file) < 25) {
		snprintf(why, why_size, "names a file outside the backup: %.80s",
			 file ? file : "(none)");
		return NULL;
	}
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
	if (!good) {
		snprintf(why, why_size, "names a file outside the backup: %.80s",
			 file);
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

/* Checks every blob the account names: content and name agree. */
static size_t verify_blobs(struct migrate *m, const char *dest, json_t *doc,
			   const char *what)
{
	size_t bad = 0, i, j;
	json_t *mb, *msg;
	json_array_foreach(json_object_get(doc, "mailboxes"), i, mb) {
		json_array_foreach(json_object_get(mb, "messages"), j, msg) {
			const char *sha = json_string_value(
				json_object_get(msg, "sha256"));
			if (!hex64(sha)) {
				migrate_error(m, what, NULL, "a message without"
					      " a valid sha256");
				bad++;
				continue;
			}
			char *path = blob_path(dest, sha);
			struct buf b;
			buf_init(&b, 0);
			char got[65] = "";
			if (read_file(path, &b, (size_t)1 << 31) == 0)
				sha256_hex(b.data, b.len, got);
			if (strcmp(got, sha) != 0) {
				migrate_error(m, what, path, "%s",
					      got[0] ? "damaged (content does"
						       " not match its name)"
						     : "missing");
				bad++;
			}
			buf_free(&b);
			free(path);
		}
	}
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
		if (!m->json)
			fprintf(m->out, "%s: %zu accounts checked\n", v[i],
				json_array_size(json_object_get(idx, "accounts")));
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
	json_array_foreach(json_object_get(doc, "mailboxes"), i, mb) {
		const char *name = json_string_value(json_object_get(mb, "name"));
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
		store_mailbox_info_free(&info);
		m->cur->uids_kept = keep;
		char **marks = NULL;
		size_t nmarks = 0;
		char *msource = xasprintf("%s/%s", source, name);
		store_import_marks(m->user, msource, &marks, &nmarks, &err);
		size_t j;
		json_t *msg;
		json_array_foreach(json_object_get(mb, "messages"), j, msg) {
			time_t date = (time_t)jint(msg, "internaldate");
			if (since != 0 && date < since)
				continue;
			char id[24];
			snprintf(id, sizeof(id), "%lld", (long long)jint(msg, "uid"));
			bool have = false;
			for (size_t q = 0; q < nmarks && !have; q++)
				have = strcmp(marks[q], id) == 0;
			if (have) {
				m->skipped++;
				m->cur->skipped++;
				continue;
			}
			const char *kws[64];
			size_t nkw;
			unsigned flags = flags_of(json_object_get(msg, "flags"),
						  kws, &nkw);
			const char *sha = json_string_value(json_object_get(msg, "sha256"));
			char *bp = blob_path(dest, sha);
			struct buf data;
			buf_init(&data, 0);
			char label[40];
			snprintf(label, sizeof(label), "UID %s", id);
			struct store_body *body = NULL;
			int r = read_file(bp, &data, (size_t)1 << 31);
			if (r < 0 || store_body_create(m->store, &body, &err) < 0 ||
			    store_body_write(body, data.data, data.len, &err) < 0 ||
			    store_body_finish(body, &err) < 0) {
				migrate_error(m, name, label, "%s",
					      r < 0 ? strerror(errno) : err.msg);
				m->failed++;
				ret = 1;
			} else {
				struct store_import_params ip;
				memset(&ip, 0, sizeof(ip));
				ip.append.flags = flags;
				ip.append.keywords = kws;
				ip.append.keyword_count = nkw;
				ip.append.internaldate = date;
				ip.uid = keep ? (uint32_t)jint(msg, "uid") : 0;
				ip.modseq = keep ? (uint64_t)jint(msg, "modseq") : 0;
				ip.savedate = (time_t)jint(msg, "savedate");
				ip.pop3_uidl = json_string_value(
					json_object_get(msg, "pop3_uidl"));
				ip.mark_source = msource;
				ip.mark_id = id;
				/* the ids back only into an account that
				 * does not have them (a fresh one) */
				ip.email = keep && ids_ok
						   ? (int64_t)jint(msg, "email") : 0;
				ip.thread = keep && ids_ok
						    ? (int64_t)jint(msg, "thread") : 0;
				uint32_t uid;
				int rr = store_import_append(m->user, name, body,
							     &ip, &uid, &err);
				if (rr < 0 && err.kind != STORE_ERR_QUOTA &&
				    (ip.email != 0 || ip.uid != 0) &&
				    strncmp(err.msg, "Already", 7) != 0) {
					/* ids taken: added with new ones */
					ip.email = ip.thread = 0;
					ip.uid = 0;
					ip.modseq = 0;
					rr = store_import_append(m->user, name,
								 body, &ip, &uid,
								 &err);
				}
				if (rr == 0) {
					migrate_count(m, data.len, true);
				} else if (err.kind == STORE_ERR_EXISTS) {
					m->skipped++;
					m->cur->skipped++;
				} else {
					migrate_error(m, name, label, "%s",
						      err.msg);
					m->failed++;
					ret = 1;
				}
			}
			store_body_unref(&body);
			buf_free(&data);
			free(bp);
		}
		store_names_free(marks, nmarks);
		if (keep) {
			struct store_import_mailbox after = {
				.name = name, .uidvalidity = uv,
				.uidnext = (uint32_t)jint(mb, "uidnext")};
			store_import_mailbox(m->user, &after, NULL, &err);
		}
		free(msource);
		migrate_folder_end(m);
	}
	struct store_error err;
	store_modseq_raise(m->user, (uint64_t)jint(doc, "modseq"), &err);
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
