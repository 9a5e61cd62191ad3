/*
 * loftctl import: Maildir trees and mbox files into an account, through
 * the store's import calls (store.h "moving mail in and out").
 *
 * Walking the source: every directory and file is opened relative to
 * the one above it with O_NOFOLLOW, so a symlink anywhere (or "..") never
 * leads outside SOURCE; a symlink is reported and skipped. Nothing in the
 * source is written.
 *
 * Each folder: the source's UIDVALIDITY and UIDNEXT go to
 * store_import_mailbox (kept if the Loft folder never held mail), then
 * every message in UID order, with its resume mark. A message already
 * marked is skipped without reading it (Maildir) or after hashing it
 * (mbox: the mark is its SHA-256). Over quota the import stops: the next
 * run resumes at that message.
 */
#include "migrate.h"
#include "migrate-parse.h"
#include "migrate-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "testpause.h"
#include "utf7.h"

#define READ_CHUNK (256 * 1024)
#define META_FILE_MAX (64u * 1024 * 1024)   /* dovecot-uidlist */
#define HEADER_MAX (1024 * 1024)            /* mbox header block */
#define DEPTH_MAX 64

/* ---- folders ------------------------------------------------------ */

/* Makes the folder ready; *keep_r: the source's UIDs can be kept. -1
 * after reporting. */
int migrate_folder_prepare(struct migrate *m, const char *name,
			   uint32_t uidvalidity, uint32_t uidnext,
			   unsigned role, bool subscribe, bool *keep_r)
{
	*keep_r = false;
	struct store_error err;
	if (role == 0)
		role = migrate_role_of(name);
	if (m->dry_run) {
		struct store_mailbox_info info;
		if (store_mailbox_status(m->user, name, &info, &err) == 0) {
			*keep_r = uidvalidity != 0 &&
				  (info.uidnext == 1 ||
				   info.uidvalidity == uidvalidity);
			store_mailbox_info_free(&info);
		} else {
			*keep_r = uidvalidity != 0;
		}
		return 0;
	}
	/* a source role takes over Loft's empty folder of that role */
	if (role != 0) {
		char *have = store_mailbox_find_special(m->user, role);
		struct store_mailbox_info a, b;
		if (have != NULL && strcmp(have, name) != 0 &&
		    store_mailbox_status(m->user, name, &a, &err) < 0 &&
		    err.kind == STORE_ERR_NOTFOUND &&
		    store_mailbox_status(m->user, have, &b, &err) == 0) {
			bool unused = b.uidnext == 1 && b.messages == 0;
			store_mailbox_info_free(&b);
			if (unused &&
			    store_mailbox_rename(m->user, have, name, &err) < 0)
				migrate_error(m, name, NULL, "cannot take over"
					      " %s: %s", have, err.msg);
		}
		free(have);
	}
	/* UIDNEXT is raised after the messages (folder_done): before, it
	 * would put the source's UIDs below it */
	(void)uidnext;
	struct store_import_mailbox spec = {
		.name = name,
		.uidvalidity = uidvalidity,
		.special_use = role,
		.subscribe = subscribe,
	};
	struct store_mailbox_info info;
	if (store_import_mailbox(m->user, &spec, &info, &err) < 0) {
		migrate_error(m, name, NULL, "%s", err.msg);
		return -1;
	}
	*keep_r = uidvalidity != 0 && info.uidvalidity == uidvalidity;
	store_mailbox_info_free(&info);
	return 0;
}

/* After a folder's messages: UIDs below the source's UIDNEXT stay
 * unused, as at the source (a client that saw them expunged there must
 * not see them come back). */
void migrate_folder_done(struct migrate *m, const char *name,
			uint32_t uidvalidity, uint32_t uidnext, bool keep)
{
	if (m->dry_run || !keep || uidnext == 0)
		return;
	struct store_import_mailbox spec = {
		.name = name,
		.uidvalidity = uidvalidity,
		.uidnext = uidnext,
	};
	struct store_error err;
	if (store_import_mailbox(m->user, &spec, NULL, &err) < 0)
		migrate_error(m, name, NULL, "UIDNEXT not kept: %s", err.msg);
}

/* ---- one message -------------------------------------------------- */

/* The UIDL Dovecot's POP3 gives by default (pop3_uidl_format
 * %08Xu%08Xv: Dovecot's %X writes lowercase hex), kept with a message
 * that comes with its source UID, so a POP3 client moved over downloads
 * nothing again, whatever UID it gets here. */
const char *migrate_dovecot_uidl(char out[20], uint32_t uid,
				 uint32_t uidvalidity)
{
	snprintf(out, 20, "%08x%08x", uid, uidvalidity);
	return out;
}


/* ---- Maildir ------------------------------------------------------ */

struct md_entry {
	char *name;            /* file name in cur/ or new/ */
	const char *sub;       /* "cur" or "new" */
	struct maildir_name mn;
	bool name_ok;
	const struct maildir_uidrec *rec;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;
	uint32_t ux = x->rec ? x->rec->uid : UINT32_MAX;
	uint32_t uy = y->rec ? y->rec->uid : UINT32_MAX;
	if (ux != uy)
		return ux < uy ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int rec_base_cmp(const void *key, const void *elem)
{
	const struct md_entry *e = key;
	const struct maildir_uidrec *const *r = elem;
	size_t n = strlen((*r)->base);
	int c = strncmp(e->name, (*r)->base, e->mn.base_len < n
						     ? e->mn.base_len : n);
	if (c != 0)
		return c;
	return e->mn.base_len < n ? -1 : e->mn.base_len > n ? 1 : 0;
}

static int recp_cmp(const void *a, const void *b)
{
	const struct maildir_uidrec *const *x = a, *const *y = b;
	return strcmp((*x)->base, (*y)->base);
}

int migrate_strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort and bsearch of string arrays that may be empty (NULL). */
static void strs_sort(char **v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(char *), migrate_strp_cmp);
}

static bool strs_have(char *const *v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(char *), migrate_strp_cmp) != NULL;
}

/* Reads a small regular file at dfd/name (no symlink) into out. 1 read,
 * 0 absent, -1 error (reason in why). */
static int read_small(int dfd, const char *name, size_t max, struct buf *out,
		      const char **why)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*why = errno == ELOOP ? "a symlink, not followed"
				      : strerror(errno);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		close(fd);
		*why = "not a regular file of a sane size";
		return -1;
	}
	char tmp[65536];
	ssize_t n;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(out, tmp, (size_t)n);
	int e = errno;
	close(fd);
	if (n < 0) {
		*why = strerror(e);
		return -1;
	}
	return 1;
}

/* Lists regular files of dfd/sub (hidden ones skipped; symlinks
 * reported). */
static void list_sub(struct migrate *m, int dfd, const char *sub,
		     const char *folder, struct md_entry **v, size_t *n,
		     size_t *cap)
{
	int fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					  O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			migrate_error(m, folder, sub, "cannot read: %s",
				      strerror(errno));
		return;
	}
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;     /* gone meanwhile: nothing to import */
		if (S_ISLNK(st.st_mode)) {
			char *label = xasprintf("%s/%s", sub, de->d_name);
			migrate_error(m, folder, label, "a symlink, not"
				      " followed");
			free(label);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		struct md_entry *e = &(*v)[(*n)++];
		memset(e, 0, sizeof(*e));
		e->name = xstrdup(de->d_name);
		e->sub = sub;
		char why[128];
		e->name_ok = maildir_name_parse(e->name, strlen(e->name),
						&e->mn, why, sizeof(why)) == 0;
		if (!e->name_ok) {
			char *label = xasprintf("%s/%s", sub, e->name);
			migrate_error(m, folder, label, "broken file name (%s):"
				      " imported without flags", why);
			free(label);
			e->mn.base_len = strcspn(e->name, ":");
		}
	}
	closedir(d);
}

/* Opens a message file; it may have moved from new/ to cur/ or been
 * renamed for a flag change meanwhile: looked for by its base name. */
static int open_entry(int dfd, struct md_entry *e)
{
	char *path = xasprintf("%s/%s", e->sub, e->name);
	int fd = openat(dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	static const char *const subs[] = {"cur", "new"};
	for (int i = 0; i < 2; i++) {
		int sfd = openat(dfd, subs[i], O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		DIR *d = fdopendir(sfd);
		if (d == NULL) {
			close(sfd);
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, e->name, e->mn.base_len) == 0 &&
			    (de->d_name[e->mn.base_len] == '\0' ||
			     de->d_name[e->mn.base_len] == ':')) {
				fd = openat(sfd, de->d_name, O_RDONLY |
						O_NOFOLLOW | O_CLOEXEC);
				/* the flags are those of the name it has
				 * now (a client read or flagged it) */
				struct maildir_name mn;
				char why[128];
				if (fd >= 0 &&
				    maildir_name_parse(de->d_name,
						       strlen(de->d_name), &mn,
						       why, sizeof(why)) == 0 &&
				    mn.base_len == e->mn.base_len) {
					free(e->name);
					e->name = xstrdup(de->d_name);
					e->sub = subs[i];
					e->mn = mn;
					e->name_ok = true;
				}
				break;
			}
		}
		closedir(d);
		if (fd >= 0)
			return fd;
	}
	errno = ENOENT;
	return -1;
}

struct md_folder {
	char *rel;       /* directory relative to the root ("." for INBOX) */
	char *name;      /* Loft name */
};

static int md_folder_cmp(const void *a, const void *b)
{
	const struct md_folder *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool has_cur(int dfd, const char *rel)
{
	char *p = xasprintf("%s/cur", rel);
	struct stat st;
	bool r = fstatat(dfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 S_ISDIR(st.st_mode);
	free(p);
	return r;
}

/* Imports one folder. -2: stop everything (quota). */
static int md_import_folder(struct migrate *m, int rootfd, const char *root,
			    const struct md_folder *f, char **subs,
			    size_t sub_count)
{
	int ret = 0;
	migrate_folder_begin(m, f->name);
	int dfd = openat(rootfd, f->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
	if (dfd < 0) {
		migrate_error(m, f->name, NULL, "cannot open %s: %s", f->rel,
			      strerror(errno));
		migrate_folder_end(m);
		return -1;
	}
	struct buf data;
	const char *why = NULL;
	struct maildir_keywords kw;
	struct maildir_uidlist ul;
	memset(&kw, 0, sizeof(kw));
	memset(&ul, 0, sizeof(ul));
	char perr[160];
	buf_init(&data, 0);
	int r = read_small(dfd, "dovecot-keywords", META_FILE_MAX, &data, &why);
	if (r < 0 || (r > 0 && maildir_keywords_parse(data.data, data.len, &kw,
						       perr, sizeof(perr)) < 0)) {
		migrate_error(m, f->name, "dovecot-keywords", "%s; folder not"
			      " imported", r < 0 ? why : perr);
		buf_free(&data);
		close(dfd);
		migrate_folder_end(m);
		return -1;
	}
	buf_reset(&data);
	r = read_small(dfd, "dovecot-uidlist", META_FILE_MAX, &data, &why);
	if (r < 0 || (r > 0 && maildir_uidlist_parse(data.data, data.len, &ul,
						      perr, sizeof(perr)) < 0)) {
		migrate_error(m, f->name, "dovecot-uidlist", "%s; folder not"
			      " imported", r < 0 ? why : perr);
		buf_free(&data);
		maildir_keywords_free(&kw);
		close(dfd);
		migrate_folder_end(m);
		return -1;
	}
	buf_free(&data);

	struct md_entry *v = NULL;
	size_t n = 0, cap = 0;
	list_sub(m, dfd, "cur", f->name, &v, &n, &cap);
	list_sub(m, dfd, "new", f->name, &v, &n, &cap);
	/* UIDs by base name */
	struct maildir_uidrec **by = NULL;
	if (ul.count > 0) {
		by = xmalloc(ul.count * sizeof(*by));
		for (size_t i = 0; i < ul.count; i++)
			by[i] = &ul.recs[i];
		qsort(by, ul.count, sizeof(*by), recp_cmp);
		for (size_t i = 0; i < n; i++) {
			struct maildir_uidrec **hit = bsearch(&v[i], by, ul.count,
							      sizeof(*by),
							      rec_base_cmp);
			v[i].rec = hit != NULL ? *hit : NULL;
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), entry_cmp);
	/* tests (test_import_restore_vanish): files removed or renamed
	 * once listed */
	test_pause("LOFT_TEST_IMPORT_PAUSE");

	bool subscribed = strs_have(subs, sub_count, f->name);
	bool keep = false;
	char *source = xasprintf("maildir:%s/%s", root, f->rel);
	char **marks = NULL;
	size_t mark_count = 0;
	struct store_error err;
	if (migrate_folder_prepare(m, f->name, ul.uidvalidity, ul.uidnext, 0,
				   subscribed, &keep) < 0) {
		ret = -1;
		goto out;
	}
	m->cur->uids_kept = keep;
	if (store_import_marks(m->user, source, &marks, &mark_count, &err) < 0) {
		migrate_error(m, f->name, NULL, "%s", err.msg);
		ret = -1;
		goto out;
	}
	strs_sort(marks, mark_count);

	char *buf = xmalloc(READ_CHUNK);
	for (size_t i = 0; i < n && ret != -2; i++) {
		struct md_entry *e = &v[i];
		/* the same message in new/ and cur/ (moved meanwhile) */
		if (i > 0 && v[i - 1].mn.base_len == e->mn.base_len &&
		    strncmp(v[i - 1].name, e->name, e->mn.base_len) == 0)
			continue;
		char *base = xstrndup(e->name, e->mn.base_len);
		char *label = xasprintf("%s/%s", e->sub, e->name);
		if (strs_have(marks, mark_count, base)) {
			m->skipped++;
			m->cur->skipped++;
			migrate_count(m, 0, false);   /* a resumed run's progress */
			free(base);
			free(label);
			continue;
		}
		int fd = open_entry(dfd, e);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			migrate_error(m, f->name, label, "%s",
				      fd < 0 && errno == ENOENT
					      ? "vanished during the import"
				      : fd < 0 && errno == ELOOP
					      ? "a symlink, not followed"
					      : "cannot be read");
			if (fd >= 0)
				close(fd);
			m->failed++;
			m->cur->failed++;
			free(base);
			free(label);
			continue;
		}
		/* keywords by letter (of the name it was opened by) */
		const char *kws[MAILDIR_KEYWORDS + 1];
		size_t nkw = 0;
		if (e->mn.forwarded)
			kws[nkw++] = "$Forwarded";
		for (int k = 0; k < MAILDIR_KEYWORDS; k++) {
			if (!(e->mn.keywords & (1u << k)))
				continue;
			if (kw.names[k] == NULL) {
				migrate_error(m, f->name, label, "keyword letter"
					      " '%c' has no name in"
					      " dovecot-keywords: not kept",
					      'a' + k);
				continue;
			}
			kws[nkw++] = kw.names[k];
		}
		char uidl[20];
		const char *pop3_uidl = NULL;
		if (e->rec != NULL && e->rec->pop3_uidl != NULL)
			pop3_uidl = e->rec->pop3_uidl;
		else if (e->rec != NULL)
			pop3_uidl = migrate_dovecot_uidl(uidl, e->rec->uid,
							 ul.uidvalidity);
		struct migrate_msg in = {
			.folder = f->name,
			.label = label,
			.uid = e->rec != NULL ? e->rec->uid : 0,
			.flags = e->mn.flags,
			.keywords = kws,
			.keyword_count = nkw,
			.date = st.st_mtime,
			.pop3_uidl = pop3_uidl,
			.mark_source = source,
			.mark_id = base,
			.size = (uint64_t)st.st_size,
		};
		if (m->dry_run) {
			close(fd);
			migrate_count(m, in.size, true);
			free(base);
			free(label);
			continue;
		}
		struct store_body *body = NULL;
		int rr = store_body_create(m->store, &body, &err);
		ssize_t got = 0;
		while (rr == 0 && (got = read(fd, buf, READ_CHUNK)) > 0)
			rr = store_body_write(body, buf, (size_t)got, &err);
		if (rr == 0 && got < 0) {
			snprintf(err.msg, sizeof(err.msg), "read: %s",
				 strerror(errno));
			rr = -1;
		}
		close(fd);
		/* the batch finishes it (migrate_msg_commit) */
		if (rr < 0) {
			migrate_error(m, f->name, label, "%s", err.msg);
			m->failed++;
			m->cur->failed++;
		} else if (migrate_msg_commit(m, &body, &in, keep) == -2) {
			ret = -2;
		}
		store_body_unref(&body);
		free(base);
		free(label);
	}
	free(buf);
	if (ret != -2 && migrate_msg_flush(m) == -2)
		ret = -2;
	if (ret != -2)
		migrate_folder_done(m, f->name, ul.uidvalidity, ul.uidnext, keep);
out:
	store_names_free(marks, mark_count);
	free(source);
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	free(by);
	maildir_uidlist_free(&ul);
	maildir_keywords_free(&kw);
	close(dfd);
	migrate_folder_end(m);
	return ret;
}

/* LAYOUT=fs: every directory below the root but cur/new/tmp. */
static void fs_walk(struct migrate *m, int rootfd, const char *rel,
		    int depth, struct md_folder **v, size_t *n, size_t *cap)
{
	if (depth > DEPTH_MAX)
		return;
	int fd = openat(rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		if (nm[0] == '.' || (depth == 0 && (strcmp(nm, "cur") == 0 ||
						    strcmp(nm, "new") == 0 ||
						    strcmp(nm, "tmp") == 0)))
			continue;
		if (depth > 0 && (strcmp(nm, "cur") == 0 ||
				  strcmp(nm, "new") == 0 ||
				  strcmp(nm, "tmp") == 0))
			continue;
		struct stat st;
		if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		char *sub = strcmp(rel, ".") == 0 ? xstrdup(nm)
						  : xasprintf("%s/%s", rel, nm);
		if (S_ISLNK(st.st_mode)) {
			migrate_error(m, sub, NULL, "a symlink, not followed");
			free(sub);
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			free(sub);
			continue;
		}
		struct buf name;
		buf_init(&name, 0);
		if (maildir_folder_name(sub, strlen(sub), true, &name) < 0 ||
		    strcasecmp(sub, "INBOX") == 0) {
			if (strcasecmp(sub, "INBOX") != 0)
				migrate_error(m, sub, NULL, "folder name is"
					      " neither modified UTF-7 nor"
					      " UTF-8: not imported");
		} else if (has_cur(rootfd, sub)) {
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 16;
				*v = xrealloc(*v, *cap * sizeof(**v));
			}
			(*v)[*n].rel = xstrdup(sub);
			buf_append_char(&name, '\0');
			(*v)[(*n)++].name = buf_steal(&name, NULL);
		}
		buf_free(&name);
		fs_walk(m, rootfd, sub, depth + 1, v, n, cap);
		free(sub);
	}
	closedir(d);
}

/* Dovecot's subscriptions file: "V\t2" then names with TAB between
 * levels; older files: one name a line with the layout's separator. */
static void read_subscriptions(int rootfd, bool fs_layout, char ***subs_r,
			       size_t *count_r)
{
	struct buf data;
	const char *why;
	buf_init(&data, 0);
	*subs_r = NULL;
	*count_r = 0;
	if (read_small(rootfd, "subscriptions", META_FILE_MAX, &data, &why) <= 0) {
		buf_free(&data);
		return;
	}
	buf_append_char(&data, '\0');
	bool v2 = strncmp(data.data, "V\t2", 3) == 0;
	size_t n = 0;
	char **v = NULL;
	char *save = NULL;
	for (char *line = strtok_r(data.data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = strcspn(line, "\r");
		if (len == 0 || (v2 && strncmp(line, "V\t", 2) == 0))
			continue;
		for (size_t i = 0; i < len; i++)
			if (line[i] == (v2 ? '\t' : fs_layout ? '/' : '.'))
				line[i] = '/';
		struct buf name;
		buf_init(&name, 0);
		if (maildir_folder_name(line, len, true, &name) == 0) {
			buf_append_char(&name, '\0');
			v = xrealloc(v, (n + 1) * sizeof(char *));
			v[n++] = buf_steal(&name, NULL);
		}
		buf_free(&name);
	}
	buf_free(&data);
	strs_sort(v, n);
	*subs_r = v;
	*count_r = n;
}

/* Pigeonhole's scripts in a Dovecot home (or a Maildir root used as
 * one): sieve/NAME.sieve, and the active one named by the symlink
 * .dovecot.sieve (its target read, never followed) or a plain
 * .dovecot.sieve file of its own (then named "dovecot"). A script the
 * account has by that name stays as it is; the source's active script
 * becomes active only in an account with none active. */
#define SIEVE_FILE_MAX (1024 * 1024)

static void import_sieve(struct migrate *m, int homefd, const char *path)
{
	if (m->folder != NULL)
		return;
	int sfd = openat(homefd, "sieve", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						  O_CLOEXEC);
	struct stat st;
	bool plain = fstatat(homefd, ".dovecot.sieve", &st,
			     AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	if (sfd < 0 && !plain)
		return;
	char active[NAME_MAX + 1] = "";
	char target[PATH_MAX];
	ssize_t tl = readlinkat(homefd, ".dovecot.sieve", target,
				sizeof(target) - 1);
	if (tl > 0) {
		target[tl] = '\0';
		const char *base = strrchr(target, '/');
		base = base != NULL ? base + 1 : target;
		size_t bl = strlen(base);
		if (bl > 6 && strcmp(base + bl - 6, ".sieve") == 0 &&
		    bl - 6 < sizeof(active))
			snprintf(active, sizeof(active), "%.*s", (int)(bl - 6),
				 base);
	}
	/* the scripts: (name, file) pairs, read below */
	char **names = NULL;
	size_t n = 0;
	DIR *d = sfd >= 0 ? fdopendir(dup(sfd)) : NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 6 ||
		    strcmp(de->d_name + len - 6, ".sieve") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(char *));
		names[n++] = xstrdup(de->d_name);
	}
	if (d != NULL)
		closedir(d);
	strs_sort(names, n);
	struct store_sieve_script *have = NULL;
	size_t nhave = 0;
	struct store_error err;
	bool have_active = false;
	if (!m->dry_run && store_sieve_list(m->user, &have, &nhave, &err) < 0) {
		migrate_error(m, "sieve", NULL, "%s", err.msg);
		goto out;
	}
	for (size_t i = 0; i < nhave; i++)
		have_active |= have[i].active;
	size_t done = 0, kept = 0;
	for (size_t i = 0; i <= n; i++) {
		/* n: the plain .dovecot.sieve, if there is one */
		if (i == n && !plain)
			break;
		int dfd = i < n ? sfd : homefd;
		const char *file = i < n ? names[i] : ".dovecot.sieve";
		char *name = i < n ? xstrndup(file, strlen(file) - 6)
				   : xstrdup("dovecot");
		bool is_active = i == n || strcmp(name, active) == 0;
		char *label = i < n ? xasprintf("sieve/%s", file)
				    : xstrdup(file);
		bool there = false;
		for (size_t h = 0; h < nhave; h++)
			there |= strcmp(have[h].name, name) == 0;
		struct buf src;
		buf_init(&src, 0);
		const char *why = NULL;
		int r = read_small(dfd, file, SIEVE_FILE_MAX, &src, &why);
		char w[200] = "";
		if (r <= 0) {
			migrate_error(m, "sieve", label, "%s", r == 0
				      ? "vanished during the import" : why);
		} else if (there) {
			kept++;
		} else if (m->dry_run) {
			done++;
		} else if (m->sieve_restore == NULL) {
			migrate_error(m, "sieve", label, "not imported: this"
				      " loftctl has no Sieve");
		} else if (m->sieve_restore(m->account_ctx, m->user, name,
					    src.data, src.len,
					    is_active && !have_active, w,
					    sizeof(w)) < 0) {
			migrate_error(m, "sieve", label, "not imported: %s", w);
		} else {
			done++;
			have_active |= is_active;
		}
		buf_free(&src);
		free(label);
		free(name);
	}
	if (m->json) {
		fprintf(m->out, "{\"type\":\"sieve\",\"imported\":%zu,"
			"\"already_there\":%zu}\n", done, kept);
	} else if (done + kept > 0) {
		fprintf(m->out, "sieve: %zu scripts %s, %zu already there%s%s\n",
			done, m->dry_run ? "to import" : "imported", kept,
			active[0] || plain ? "; active: " : "",
			plain && !active[0] ? "dovecot" : active);
	}
	(void)path;
out:
	store_sieve_list_free(have, nhave);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (sfd >= 0)
		close(sfd);
}

/* The files in a folder's cur/ and new/ (not followed, not stat'ed). */
static uint64_t md_count(int rootfd, const char *rel)
{
	uint64_t count = 0;
	static const char *const subs[] = {"cur", "new"};
	for (size_t s = 0; s < 2; s++) {
		char *p = xasprintf("%s/%s", rel, subs[s]);
		int fd = openat(rootfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
		free(p);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		if (d == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				count++;
		closedir(d);
	}
	return count;
}

static int import_maildir(struct migrate *m, const char *path)
{
	char root[PATH_MAX];
	if (realpath(path, root) == NULL) {
		migrate_error(m, NULL, path, "%s", strerror(errno));
		return 2;
	}
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		migrate_error(m, NULL, path, "%s", strerror(errno));
		return 2;
	}
	/* a Dovecot home: the mail in Maildir/, the scripts beside it */
	int homefd = -1;
	if (!has_cur(rootfd, ".") && has_cur(rootfd, "Maildir")) {
		homefd = rootfd;
		rootfd = openat(homefd, "Maildir", O_RDONLY | O_DIRECTORY |
						   O_NOFOLLOW | O_CLOEXEC);
		if (rootfd < 0) {
			migrate_error(m, NULL, path, "Maildir: %s",
				      strerror(errno));
			close(homefd);
			return 2;
		}
		size_t rl = strlen(root);
		snprintf(root + rl, sizeof(root) - rl, "/Maildir");
	}
	/* Maildir++ when any ".Name" folder exists, else LAYOUT=fs */
	struct md_folder *v = NULL;
	size_t n = 0, cap = 0;
	bool plusplus = false;
	DIR *d = fdopendir(dup(rootfd));
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		if (nm[0] != '.' || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(rootfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			migrate_error(m, nm, NULL, "a symlink, not followed");
			continue;
		}
		if (!S_ISDIR(st.st_mode) || !has_cur(rootfd, nm))
			continue;
		plusplus = true;
		struct buf name;
		buf_init(&name, 0);
		if (maildir_folder_name(nm, strlen(nm), false, &name) < 0) {
			migrate_error(m, nm, NULL, "folder name is neither"
				      " modified UTF-7 nor UTF-8: not imported");
			m->failed++;
		} else if (name.len == 5 && strncasecmp(name.data, "INBOX", 5) == 0) {
			migrate_error(m, nm, NULL, "a second INBOX: not imported");
			m->failed++;
		} else {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n].rel = xstrdup(nm);
			buf_append_char(&name, '\0');
			v[n++].name = buf_steal(&name, NULL);
		}
		buf_free(&name);
	}
	if (d != NULL)
		closedir(d);
	if (!plusplus)
		fs_walk(m, rootfd, ".", 0, &v, &n, &cap);
	if (has_cur(rootfd, ".")) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].rel = xstrdup(".");
		v[n++].name = xstrdup("INBOX");
	}
	if (n == 0) {
		migrate_error(m, NULL, path, "not a Maildir (no cur/ folder)");
		close(rootfd);
		if (homefd >= 0)
			close(homefd);
		free(v);
		return 2;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), md_folder_cmp);
	/* how many messages, for the progress line's ETA (names only) */
	if (m->progress)
		for (size_t i = 0; i < n; i++)
			if (m->folder == NULL || strcmp(m->folder, v[i].name) == 0)
				m->total_msgs += md_count(rootfd, v[i].rel);
	char **subs;
	size_t sub_count;
	read_subscriptions(rootfd, !plusplus, &subs, &sub_count);
	int stop = 0;
	bool matched = false;
	for (size_t i = 0; i < n && stop != -2; i++) {
		if (m->folder != NULL && strcmp(m->folder, v[i].name) != 0)
			continue;
		matched = true;
		stop = md_import_folder(m, rootfd, root, &v[i], subs, sub_count);
	}
	if (m->folder != NULL && !matched)
		migrate_error(m, m->folder, NULL, "no such folder in %s", path);
	for (size_t i = 0; i < n; i++) {
		free(v[i].rel);
		free(v[i].name);
	}
	free(v);
	store_names_free(subs, sub_count);
	if (stop != -2)
		import_sieve(m, homefd >= 0 ? homefd : rootfd, path);
	close(rootfd);
	if (homefd >= 0)
		close(homefd);
	return 0;
}

/* ---- mbox --------------------------------------------------------- */

struct digest_seen {
	unsigned char d[32];
	uint32_t count;
	struct digest_seen *next;
};

struct mbox_state {
	struct migrate *m;
	const char *folder;
	const char *source;       /* mark source */
	bool prepared, keep, stop;
	uint32_t uidvalidity, uidnext;   /* the first message's X-IMAPbase */
	/* the message being read */
	uint64_t ordinal;
	time_t date;
	struct buf hdr;
	bool in_body, too_big, broken;
	struct store_body *body;
	struct store_error err;
	uint64_t size;
	EVP_MD_CTX *sha;
	struct mbox_meta meta;     /* the message's header fields */
	char **marks;              /* of earlier runs, sorted */
	size_t mark_count;
	struct digest_seen *seen[4096];
};

static void mb_write(struct mbox_state *s, const char *data, size_t len)
{
	if (s->too_big || s->broken || len == 0)
		return;
	s->size += len;
	if (s->body == NULL)
		return;
	if (store_body_write(s->body, data, len, &s->err) < 0) {
		if (s->err.kind == STORE_ERR_LIMIT)
			s->too_big = true;
		else
			s->broken = true;
		store_body_unref(&s->body);
	}
}

static void mb_begin(void *ctx, const char *from, size_t len, time_t date)
{
	(void)from;
	(void)len;
	struct mbox_state *s = ctx;
	s->ordinal++;
	s->date = date;
	buf_reset(&s->hdr);
	s->in_body = s->too_big = s->broken = false;
	s->size = 0;
	EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL);
	if (!s->m->dry_run && !s->stop &&
	    store_body_create(s->m->store, &s->body, &s->err) < 0)
		s->broken = true;
}

/* Header block end: "\n\n" or "\n\r\n" in hdr; its length or 0. */
static size_t header_end(const struct buf *h)
{
	for (size_t i = 0; i + 1 < h->len; i++) {
		if (h->data[i] != '\n')
			continue;
		if (h->data[i + 1] == '\n')
			return i + 2;
		if (i + 2 < h->len && h->data[i + 1] == '\r' &&
		    h->data[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void mb_header_done(struct mbox_state *s, size_t hlen)
{
	struct buf out;
	buf_init(&out, 0);
	mbox_meta_free(&s->meta);
	mbox_header_filter(s->hdr.data, hlen, &out, &s->meta);
	mb_write(s, out.data, out.len);
	buf_free(&out);
	mb_write(s, s->hdr.data + hlen, s->hdr.len - hlen);
	buf_reset(&s->hdr);
	s->in_body = true;
}

static void mb_data(void *ctx, const char *data, size_t len)
{
	struct mbox_state *s = ctx;
	EVP_DigestUpdate(s->sha, data, len);
	if (s->in_body) {
		mb_write(s, data, len);
		return;
	}
	size_t from = s->hdr.len > 2 ? s->hdr.len - 2 : 0;
	buf_append(&s->hdr, data, len);
	size_t end = 0;
	for (size_t i = from; i + 1 < s->hdr.len && end == 0; i++) {
		if (s->hdr.data[i] != '\n')
			continue;
		if (s->hdr.data[i + 1] == '\n')
			end = i + 2;
		else if (i + 2 < s->hdr.len && s->hdr.data[i + 1] == '\r' &&
			 s->hdr.data[i + 2] == '\n')
			end = i + 3;
	}
	if (end > 0) {
		mb_header_done(s, end);
	} else if (s->hdr.len > HEADER_MAX) {
		/* no header block end in sight: all of it as it is */
		mbox_meta_free(&s->meta);
		memset(&s->meta, 0, sizeof(s->meta));
		mb_write(s, s->hdr.data, s->hdr.len);
		buf_reset(&s->hdr);
		s->in_body = true;
	}
}

static void mb_end(void *ctx)
{
	struct mbox_state *s = ctx;
	struct migrate *m = s->m;
	if (!s->in_body)
		mb_header_done(s, header_end(&s->hdr) ? header_end(&s->hdr)
						      : s->hdr.len);
	unsigned char d[32];
	unsigned dl = 0;
	EVP_DigestFinal_ex(s->sha, d, &dl);
	/* the n-th copy of the same bytes in this file */
	size_t h = ((size_t)d[0] << 4 | d[1] >> 4) % 4096;
	struct digest_seen *ds;
	for (ds = s->seen[h]; ds != NULL && memcmp(ds->d, d, 32) != 0;
	     ds = ds->next)
		;
	if (ds == NULL) {
		ds = xcalloc(1, sizeof(*ds));
		memcpy(ds->d, d, 32);
		ds->next = s->seen[h];
		s->seen[h] = ds;
	}
	ds->count++;
	char mark[80];
	for (int i = 0; i < 32; i++)
		snprintf(mark + 2 * i, 3, "%02x", d[i]);
	if (ds->count > 1)
		snprintf(mark + 64, sizeof(mark) - 64, "#%u", ds->count);
	char label[48];
	snprintf(label, sizeof(label), "message %llu",
		 (unsigned long long)s->ordinal);
	if (s->meta.pseudo && s->ordinal == 1) {
		/* UW-IMAP's folder data, not mail */
		store_body_unref(&s->body);
		if (!s->prepared && !s->stop) {
			s->prepared = true;
			s->uidvalidity = s->meta.uidvalidity;
			s->uidnext = s->meta.uidnext;
			if (migrate_folder_prepare(m, s->folder, s->meta.uidvalidity,
						   s->meta.uidnext, 0, false,
						   &s->keep) < 0)
				s->stop = true;
			m->cur->uids_kept = s->keep;
		}
		return;
	}
	if (!s->prepared && !s->stop) {
		s->prepared = true;
		s->uidvalidity = s->meta.uidvalidity;
		s->uidnext = s->meta.uidnext;
		if (migrate_folder_prepare(m, s->folder, s->meta.uidvalidity,
					   s->meta.uidnext, 0, false,
					   &s->keep) < 0)
			s->stop = true;
		m->cur->uids_kept = s->keep;
	}
	if (s->stop) {
		store_body_unref(&s->body);
		m->failed++;
		m->cur->failed++;
		return;
	}
	if (s->too_big || s->broken) {
		migrate_error(m, s->folder, label, "%s%s", s->err.msg,
			      s->too_big ? " (the rest is imported)" : "");
		m->failed++;
		m->cur->failed++;
		store_body_unref(&s->body);
		return;
	}
	char uidl[20];
	struct migrate_msg in = {
		.folder = s->folder,
		.label = label,
		.pop3_uidl = s->meta.uid != 0 && s->uidvalidity != 0
				     ? migrate_dovecot_uidl(uidl, s->meta.uid,
							    s->uidvalidity)
				     : NULL,
		.uid = s->meta.uid,
		.flags = s->meta.flags,
		.keywords = (const char *const *)s->meta.keywords,
		.keyword_count = s->meta.keyword_count,
		.date = s->date,
		.mark_source = s->source,
		.mark_id = mark,
		.size = s->size,
	};
	/* imported by an earlier run: not analysed again (and a dry run
	 * says so: it counted every message as to import) */
	if (strs_have(s->marks, s->mark_count, mark)) {
		m->skipped++;
		m->cur->skipped++;
		migrate_count(m, 0, false);   /* a resumed run's progress */
		store_body_unref(&s->body);
		return;
	}
	if (m->dry_run) {
		migrate_count(m, s->size, true);
		return;
	}
	/* the batch finishes the body (migrate_msg_commit) */
	if (migrate_msg_commit(m, &s->body, &in, s->keep) == -2)
		s->stop = true;
	store_body_unref(&s->body);
}

/* Imports one mbox file (fd) as folder. -2: stop everything. */
static int mbox_import_file(struct migrate *m, int fd, const char *realpath_,
			    const char *folder, const char *label)
{
	migrate_folder_begin(m, folder);
	struct mbox_state s;
	memset(&s, 0, sizeof(s));
	s.m = m;
	s.folder = folder;
	char *source = xasprintf("mbox:%s", realpath_);
	s.source = source;
	buf_init(&s.hdr, 0);
	s.sha = EVP_MD_CTX_new();
	struct store_error err;
	if (store_import_marks(m->user, source, &s.marks, &s.mark_count,
			       &err) < 0) {
		migrate_error(m, folder, label, "%s", err.msg);
		s.stop = true;
	}
	strs_sort(s.marks, s.mark_count);
	struct mbox_callbacks cb = {mb_begin, mb_data, mb_end, &s};
	struct mbox_parser *p = mbox_parser_create(MBOX_RD, &cb);
	char *buf = xmalloc(READ_CHUNK);
	ssize_t n = 0;
	while (!s.stop && (n = read(fd, buf, READ_CHUNK)) > 0)
		mbox_parser_feed(p, buf, (size_t)n);
	int read_errno = n < 0 ? errno : 0;
	if (!s.stop)
		mbox_parser_finish(p);
	if (!s.stop && migrate_msg_flush(m) == -2)
		s.stop = true;
	if (!s.stop)
		migrate_folder_done(m, folder, s.uidvalidity, s.uidnext, s.keep);
	uint64_t junk = mbox_parser_junk(p);
	if (s.ordinal == 0 && junk > 0)
		migrate_error(m, folder, label, "not an mbox: no \"From \" line"
			      " starts a message");
	else if (junk > 0)
		migrate_error(m, folder, label, "%llu bytes before the first"
			      " \"From \" line: not a message, not imported",
			      (unsigned long long)junk);
	if (read_errno != 0)
		migrate_error(m, folder, label, "read: %s", strerror(read_errno));
	if (s.ordinal == 0 && junk == 0 && !m->dry_run) {
		/* an empty mbox is an empty folder */
		bool keep;
		migrate_folder_prepare(m, folder, 0, 0, 0, false, &keep);
	}
	free(buf);
	mbox_parser_destroy(&p);
	store_body_unref(&s.body);
	mbox_meta_free(&s.meta);
	store_names_free(s.marks, s.mark_count);
	buf_free(&s.hdr);
	EVP_MD_CTX_free(s.sha);
	for (size_t i = 0; i < 4096; i++)
		for (struct digest_seen *d = s.seen[i], *nx; d != NULL; d = nx) {
			nx = d->next;
			free(d);
		}
	free(source);
	migrate_folder_end(m);
	return s.stop ? -2 : 0;
}

/* An mbox file's folder name: the path below the root, ".mbox" and
 * Thunderbird's ".sbd" left out; "mbox" / "inbox" at the top is INBOX. */
static char *mbox_folder_name(const char *rel)
{
	struct buf b;
	buf_init(&b, 0);
	const char *s = rel;
	while (*s != '\0') {
		size_t n = strcspn(s, "/");
		size_t keep = n;
		if (n > 4 && strncmp(s + n - 4, ".sbd", 4) == 0)
			keep = n - 4;
		else if (s[n] == '\0' && n > 5 &&
			 strncmp(s + n - 5, ".mbox", 5) == 0)
			keep = n - 5;
		if (b.len > 0)
			buf_append_char(&b, '/');
		buf_append(&b, s, keep);
		s += n;
		if (*s == '/')
			s++;
	}
	buf_append_char(&b, '\0');
	char *name = buf_steal(&b, NULL);
	if (strcasecmp(name, "inbox") == 0 || strcasecmp(name, "mbox") == 0) {
		free(name);
		name = xstrdup("INBOX");
	}
	return name;
}

static int mbox_walk(struct migrate *m, int dirfd, const char *root,
		     const char *rel, int depth)
{
	if (depth > DEPTH_MAX)
		return 0;
	int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
	if (fd < 0) {
		migrate_error(m, NULL, rel, "%s", strerror(errno));
		return 0;
	}
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return 0;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(char *));
		names[n++] = xstrdup(de->d_name);
	}
	strs_sort(names, n);
	int ret = 0;
	for (size_t i = 0; i < n && ret != -2; i++) {
		const char *nm = names[i];
		size_t len = strlen(nm);
		char *sub = strcmp(rel, ".") == 0 ? xstrdup(nm)
						  : xasprintf("%s/%s", rel, nm);
		struct stat st;
		if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			free(sub);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			migrate_error(m, NULL, sub, "a symlink, not followed");
			m->failed++;
		} else if (S_ISDIR(st.st_mode)) {
			ret = mbox_walk(m, dirfd, root, sub, depth + 1);
		} else if (S_ISREG(st.st_mode) &&
			   !(len > 4 && (strcmp(nm + len - 4, ".msf") == 0 ||
					 strcmp(nm + len - 4, ".dat") == 0)) &&
			   !(len > 5 && strcmp(nm + len - 5, ".lock") == 0)) {
			char *folder = mbox_folder_name(sub);
			struct buf check;
			buf_init(&check, 0);
			if (!utf8_valid(folder, strlen(folder))) {
				migrate_error(m, NULL, sub, "file name is not"
					      " UTF-8: not imported");
				m->failed++;
			} else if (m->folder == NULL ||
				   strcmp(m->folder, folder) == 0) {
				int ffd = openat(fd, nm, O_RDONLY | O_NOFOLLOW |
								 O_CLOEXEC);
				char *rp = xasprintf("%s/%s", root, sub);
				if (ffd < 0) {
					migrate_error(m, folder, sub, "%s",
						      strerror(errno));
					m->failed++;
				} else {
					ret = mbox_import_file(m, ffd, rp,
							       folder, sub);
					close(ffd);
				}
				free(rp);
			}
			buf_free(&check);
			free(folder);
		}
		free(sub);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

static int import_mbox(struct migrate *m, const char *path)
{
	char root[PATH_MAX];
	if (realpath(path, root) == NULL) {
		migrate_error(m, NULL, path, "%s", strerror(errno));
		return 2;
	}
	struct stat st;
	if (lstat(path, &st) < 0) {
		migrate_error(m, NULL, path, "%s", strerror(errno));
		return 2;
	}
	if (S_ISDIR(st.st_mode)) {
		int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			migrate_error(m, NULL, path, "%s", strerror(errno));
			return 2;
		}
		mbox_walk(m, dfd, root, ".", 0);
		close(dfd);
		return 0;
	}
	int fd = open(root, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		migrate_error(m, NULL, path, "%s", strerror(errno));
		return 2;
	}
	/* one file, one folder: --folder names it, else its name does */
	const char *base = strrchr(root, '/');
	base = base != NULL ? base + 1 : root;
	char *folder = m->folder != NULL ? xstrdup(m->folder)
					 : mbox_folder_name(base);
	const char *only = m->folder;
	m->folder = NULL;
	mbox_import_file(m, fd, root, folder, base);
	m->folder = only;
	free(folder);
	close(fd);
	return 0;
}

/* ---- the source --------------------------------------------------- */

static bool is_maildir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool yes = has_cur(fd, ".");
	DIR *d = yes ? NULL : fdopendir(dup(fd));
	struct dirent *de;
	while (d != NULL && !yes && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		yes = has_cur(fd, de->d_name);
	}
	if (d != NULL)
		closedir(d);
	close(fd);
	return yes;
}

int migrate_import(struct migrate *m, const char *source)
{
	migrate_start(m);
	int r;
	if (strncmp(source, "maildir:", 8) == 0) {
		r = import_maildir(m, source + 8);
	} else if (strncmp(source, "mbox:", 5) == 0) {
		r = import_mbox(m, source + 5);
	} else if (strstr(source, "://") != NULL) {
		r = migrate_import_remote(m, source);
	} else {
		struct stat st;
		if (stat(source, &st) < 0) {
			migrate_error(m, NULL, source, "%s", strerror(errno));
			r = 2;
		} else if (S_ISDIR(st.st_mode) && is_maildir(source)) {
			r = import_maildir(m, source);
		} else {
			r = import_mbox(m, source);
		}
	}
	migrate_finish(m, "import");
	if (r == 2)
		return 2;
	return m->failed > 0 || m->problems > 0 ? 1 : 0;
}
