/*
 * loftctl export: an account, read from one snapshot (the store's export
 * stream), as
 *   - a Maildir++ tree Dovecot reads: INBOX at the top, ".A.B" folders
 *     (modified UTF-7), files "<date>.M<uid>L.loft,S=<size>,W=<vsize>:2,
 *     <flags>" with LF line ends and the internal date as mtime,
 *     dovecot-uidlist (version 3: the same UIDVALIDITY, UIDNEXT and UIDs,
 *     P with a kept POP3 UIDL), dovecot-keywords, subscriptions;
 *   - mboxrd files: INBOX, "A" and "A.sbd/B" (Thunderbird's way to give
 *     a folder both mail and children), each message after a From_ line
 *     with the internal date, with Status, X-Status, X-Keywords, X-UID
 *     and, in the first, X-IMAPbase (as Dovecot and UW-IMAP write them).
 * Files go to tmp/ (or "<file>.tmp") and are renamed into place once
 * whole and fsynced; DEST must be new or empty.
 */
#include "migrate.h"
#include "migrate-parse.h"
#include "migrate-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* CRLF -> LF (the store keeps CRLF; Maildir and mbox files use LF). */
static void to_lf(const char *p, size_t n, struct buf *out)
{
	buf_reset(out);
	size_t start = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] == '\r' && p[i + 1] == '\n') {
			buf_append(out, p + start, i - start);
			start = i + 1;
		}
	}
	buf_append(out, p + start, n - start);
}

/* Makes dir (mode 0700) with its parents. */
static int mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int ret = 0;
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			ret = -1;
		*s = c;
		if (c == '\0' || ret < 0)
			break;
	}
	free(p);
	return ret;
}

/* Writes path via path.tmp, fsynced, renamed. */
static int write_file(const char *path, const char *data, size_t len,
		      time_t mtime)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	int ret = fd < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	if (ret == 0 && mtime != 0) {
		struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
		utimensat(AT_FDCWD, tmp, ts, 0);
	}
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -1;
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	return ret;
}

static bool dir_empty_or_new(const char *dest)
{
	DIR *d = opendir(dest);
	if (d == NULL)
		return errno == ENOENT;
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* ---- one folder --------------------------------------------------- */

struct kwmap {
	char *names[MAILDIR_KEYWORDS];
	size_t count;
};

/* The letter index of a keyword (added if there is room), -1 if none. */
static int kw_index(struct kwmap *k, const char *name)
{
	for (size_t i = 0; i < k->count; i++)
		if (strcmp(k->names[i], name) == 0)
			return (int)i;
	if (k->count == MAILDIR_KEYWORDS)
		return -1;
	k->names[k->count] = xstrdup(name);
	return (int)k->count++;
}

static int export_maildir_folder(struct migrate *m, struct store_export *e,
				 const char *dest,
				 const struct store_mailbox_info *mb)
{
	struct buf dir, path, lf, uidlist, name;
	buf_init(&dir, 0);
	buf_init(&path, 0);
	buf_init(&lf, 0);
	buf_init(&uidlist, 0);
	buf_init(&name, 0);
	int ret = 0;
	buf_append_str(&dir, dest);
	if (strcmp(mb->name, "INBOX") != 0) {
		buf_append_char(&dir, '/');
		if (maildir_folder_dir(mb->name, &dir) < 0) {
			migrate_error(m, mb->name, NULL, "a Maildir++ folder"
				      " name cannot hold \".\": not exported");
			ret = -1;
			goto out;
		}
	}
	buf_append_char(&dir, '\0');
	static const char *const subs[] = {"cur", "new", "tmp"};
	for (int i = 0; i < 3; i++) {
		buf_reset(&path);
		buf_printf(&path, "%s/%s", dir.data, subs[i]);
		if (mkdirs(path.data) < 0) {
			migrate_error(m, mb->name, NULL, "mkdir %s: %s",
				      path.data, strerror(errno));
			ret = -1;
			goto out;
		}
	}
	if (strcmp(mb->name, "INBOX") != 0) {
		buf_reset(&path);
		buf_printf(&path, "%s/maildirfolder", dir.data);
		write_file(path.data, "", 0, 0);
	}
	struct kwmap kw;
	memset(&kw, 0, sizeof(kw));
	char guid[33];
	snprintf(guid, sizeof(guid), "%08x%08x%016llx", mb->uidvalidity,
		 mb->id, (unsigned long long)time(NULL));
	buf_printf(&uidlist, "3 V%u N%u G%s\n", mb->uidvalidity, mb->uidnext,
		   guid);
	struct store_error err;
	if (store_export_messages(e, mb->id, &err) < 0) {
		migrate_error(m, mb->name, NULL, "%s", err.msg);
		ret = -1;
		goto out;
	}
	const struct store_export_msg *msg;
	int r;
	while ((r = store_export_next(e, &msg, &err)) == 1) {
		char label[32];
		snprintf(label, sizeof(label), "UID %u", msg->uid);
		struct store_blob b;
		if (store_export_body(e, msg->email, &b, &err) < 0) {
			migrate_error(m, mb->name, label, "%s", err.msg);
			m->failed++;
			continue;
		}
		to_lf(b.data, b.len, &lf);
		uint32_t letters = 0;
		/* $Forwarded as a keyword, as Dovecot keeps it (its P
		 * letter is not read back as $Forwarded) */
		for (size_t i = 0; i < msg->keyword_count; i++) {
			int k = kw_index(&kw, msg->keywords[i]);
			if (k < 0)
				migrate_error(m, mb->name, label, "keyword %s:"
					      " Maildir holds 26 per folder,"
					      " not kept", msg->keywords[i]);
			else
				letters |= 1u << k;
		}
		buf_reset(&name);
		buf_printf(&name, "%lld.M%uL.loft,S=%zu,W=%zu",
			   (long long)msg->internaldate, msg->uid, lf.len,
			   b.len);
		size_t base_len = name.len;
		maildir_info_format(msg->flags, false, letters, &name);
		buf_append_char(&name, '\0');
		buf_reset(&path);
		buf_printf(&path, "%s/cur/%s", dir.data, name.data);
		if (write_file(path.data, lf.data, lf.len, msg->internaldate) < 0) {
			migrate_error(m, mb->name, label, "write %s: %s",
				      path.data, strerror(errno));
			m->failed++;
			store_blob_close(&b);
			ret = -1;
			if (errno == ENOSPC)
				break;
			continue;
		}
		buf_printf(&uidlist, "%u ", msg->uid);
		if (msg->pop3_uidl != NULL)
			buf_printf(&uidlist, "P%s ", msg->pop3_uidl);
		buf_printf(&uidlist, ":%.*s\n", (int)base_len, name.data);
		migrate_count(m, b.len, true);
		store_blob_close(&b);
	}
	if (r < 0) {
		migrate_error(m, mb->name, NULL, "%s", err.msg);
		ret = -1;
	}
	buf_reset(&path);
	buf_printf(&path, "%s/dovecot-uidlist", dir.data);
	if (write_file(path.data, uidlist.data, uidlist.len, 0) < 0) {
		migrate_error(m, mb->name, "dovecot-uidlist", "%s",
			      strerror(errno));
		ret = -1;
	}
	if (kw.count > 0) {
		struct buf k;
		buf_init(&k, 0);
		for (size_t i = 0; i < kw.count; i++)
			buf_printf(&k, "%zu %s\n", i, kw.names[i]);
		buf_reset(&path);
		buf_printf(&path, "%s/dovecot-keywords", dir.data);
		if (write_file(path.data, k.data, k.len, 0) < 0) {
			migrate_error(m, mb->name, "dovecot-keywords", "%s",
				      strerror(errno));
			ret = -1;
		}
		buf_free(&k);
	}
	for (size_t i = 0; i < kw.count; i++)
		free(kw.names[i]);
out:
	buf_free(&dir);
	buf_free(&path);
	buf_free(&lf);
	buf_free(&uidlist);
	buf_free(&name);
	return ret;
}

/* "A/B" -> DEST/A.sbd/B */
static char *mbox_path(const char *dest, const char *name)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, dest);
	const char *s = name;
	while (*s != '\0') {
		size_t n = strcspn(s, "/");
		buf_append_char(&b, '/');
		buf_append(&b, s, n);
		s += n;
		if (*s == '/') {
			buf_append_str(&b, ".sbd");
			s++;
		}
	}
	buf_append_char(&b, '\0');
	return buf_steal(&b, NULL);
}

/* Appends the message's header block with the mbox fields added, then
 * its body with From_ lines quoted (mboxrd). lf has LF line ends. */
/* UW-IMAP's first message, which Dovecot reads too: the folder's
 * UIDVALIDITY and UIDNEXT, also for an empty folder. */
static void mbox_pseudo(const struct store_mailbox_info *mb, struct buf *out)
{
	time_t now = time(NULL);
	mbox_from_format(now, out);
	char date[64];
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(out, "Date: %s\n"
		   "From: Mail System Internal Data <MAILER-DAEMON@loft>\n"
		   "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
		   "Message-ID: <%lld@loft>\n"
		   "X-IMAP: %u %u\n"
		   "Status: RO\n\n"
		   "This text is part of the internal format of your mail"
		   " folder, and is not\na real message.  It is created"
		   " automatically by the mail system software.\nIf deleted,"
		   " important folder data will be lost, and it will be"
		   " re-created\nwith the data reset to initial values.\n\n",
		   date, (long long)now, mb->uidvalidity, mb->uidnext);
}

/* The envelope sender for the From_ line, as Dovecot writes it: the
 * address of the first Return-Path field of the header block (the one
 * delivery put on top), else MAILER-DAEMON (also for <>, and for
 * anything that is not one plain word). */
static void mbox_sender(const char *lf, size_t hend, char *out,
			size_t size)
{
	snprintf(out, size, "MAILER-DAEMON");
	for (size_t i = 0; i < hend; i++) {
		if (i > 0 && lf[i - 1] != '\n')
			continue;
		if (hend - i < 12 || strncasecmp(lf + i, "Return-Path:", 12) != 0)
			continue;
		const char *p = lf + i + 12, *end = lf + hend;
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (lt == NULL || (nl != NULL && lt > nl))
			return;
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL || (nl != NULL && gt > nl))
			return;
		size_t n = (size_t)(gt - lt - 1);
		if (n == 0 || n >= size)
			return;
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)lt[1 + k] <= ' ' || lt[1 + k] == 0x7f)
				return;
		memcpy(out, lt + 1, n);
		out[n] = '\0';
		return;
	}
}

static void mbox_message(const char *lf, size_t len,
			 const struct store_export_msg *msg, struct buf *out)
{
	/* the header block: up to the first empty line */
	size_t hend = len;
	if (len > 0 && lf[0] == '\n')
		hend = 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (lf[i] == '\n' && lf[i + 1] == '\n') {
			hend = i + 1;
			break;
		}
	}
	char sender[256];
	mbox_sender(lf, hend, sender, sizeof(sender));
	mbox_from_format_sender(sender, msg->internaldate, out);
	buf_append(out, lf, hend);
	if (hend > 0 && lf[hend - 1] != '\n')
		buf_append_char(out, '\n');
	buf_printf(out, "Status: %sO\n", msg->flags & STORE_FLAG_SEEN ? "R" : "");
	unsigned f = msg->flags;
	if (f & (STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT |
		 STORE_FLAG_DELETED))
		buf_printf(out, "X-Status: %s%s%s%s\n",
			   f & STORE_FLAG_ANSWERED ? "A" : "",
			   f & STORE_FLAG_FLAGGED ? "F" : "",
			   f & STORE_FLAG_DRAFT ? "T" : "",
			   f & STORE_FLAG_DELETED ? "D" : "");
	if (msg->keyword_count > 0) {
		buf_append_str(out, "X-Keywords:");
		for (size_t i = 0; i < msg->keyword_count; i++)
			buf_printf(out, " %s", msg->keywords[i]);
		buf_append_char(out, '\n');
	}
	buf_printf(out, "X-UID: %u\n", msg->uid);
	/* the empty line and the body, quoted */
	size_t i = hend;
	if (i < len && lf[i] == '\n') {
		buf_append_char(out, '\n');
		i++;
	} else {
		buf_append_char(out, '\n');
	}
	while (i < len) {
		const char *nl = memchr(lf + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (lf + i)) + 1 : len - i;
		size_t q = 0;
		while (q < n && lf[i + q] == '>')
			q++;
		if (n - q >= 5 && memcmp(lf + i + q, "From ", 5) == 0)
			buf_append_char(out, '>');
		buf_append(out, lf + i, n);
		i += n;
	}
	if (len > 0 && lf[len - 1] != '\n')
		buf_append_char(out, '\n');
	buf_append_char(out, '\n');
}

static int export_mbox_folder(struct migrate *m, struct store_export *e,
			      const char *dest,
			      const struct store_mailbox_info *mb)
{
	char *path = mbox_path(dest, mb->name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	int ret = 0;
	if (mkdirs(path) < 0) {
		migrate_error(m, mb->name, NULL, "mkdir %s: %s", path,
			      strerror(errno));
		free(path);
		return -1;
	}
	*slash = '/';
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (fd < 0) {
		migrate_error(m, mb->name, NULL, "%s: %s", tmp, strerror(errno));
		free(tmp);
		free(path);
		return -1;
	}
	struct buf lf, out;
	buf_init(&lf, 0);
	buf_init(&out, 0);
	struct store_error err;
	const struct store_export_msg *msg;
	int r = store_export_messages(e, mb->id, &err);
	if (r == 0)
		mbox_pseudo(mb, &out);
	if (r == 0 && write_all(fd, out.data, out.len) < 0)
		r = -1;
	while (r >= 0 && (r = store_export_next(e, &msg, &err)) == 1) {
		char label[32];
		snprintf(label, sizeof(label), "UID %u", msg->uid);
		struct store_blob b;
		if (store_export_body(e, msg->email, &b, &err) < 0) {
			migrate_error(m, mb->name, label, "%s", err.msg);
			m->failed++;
			continue;
		}
		to_lf(b.data, b.len, &lf);
		buf_reset(&out);
		mbox_message(lf.data, lf.len, msg, &out);
		if (write_all(fd, out.data, out.len) < 0) {
			migrate_error(m, mb->name, label, "write: %s",
				      strerror(errno));
			store_blob_close(&b);
			ret = -1;
			break;
		}
		migrate_count(m, b.len, true);
		store_blob_close(&b);
	}
	if (r < 0) {
		migrate_error(m, mb->name, NULL, "%s", err.msg);
		ret = -1;
	}
	if (ret == 0 && fsync(fd) < 0)
		ret = -1;
	close(fd);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -1;
	if (ret < 0)
		unlink(tmp);
	buf_free(&lf);
	buf_free(&out);
	free(tmp);
	free(path);
	return ret;
}

int migrate_export(struct migrate *m, const char *dest,
		   enum migrate_format format)
{
	migrate_start(m);
	m->exporting = true;
	if (!dir_empty_or_new(dest)) {
		migrate_error(m, NULL, dest, "exists and is not empty");
		migrate_finish(m, "export");
		return 2;
	}
	if (mkdirs(dest) < 0 || chmod(dest, 0700) < 0) {
		migrate_error(m, NULL, dest, "%s", strerror(errno));
		migrate_finish(m, "export");
		return 2;
	}
	struct store_export *e;
	struct store_error err;
	if (store_export_begin(m->user, &e, &err) < 0) {
		migrate_error(m, NULL, NULL, "%s", err.msg);
		migrate_finish(m, "export");
		return 2;
	}
	const struct store_export_info *info = store_export_info(e);
	bool matched = false;
	for (size_t i = 0; i < info->mailbox_count; i++) {
		const struct store_mailbox_info *mb = &info->mailboxes[i];
		if (mb->noselect ||
		    (m->folder != NULL && strcmp(m->folder, mb->name) != 0))
			continue;
		matched = true;
		migrate_folder_begin(m, mb->name);
		if (format == MIGRATE_MAILDIR)
			export_maildir_folder(m, e, dest, mb);
		else
			export_mbox_folder(m, e, dest, mb);
		m->cur->uids_kept = true;
		migrate_folder_end(m);
	}
	if (m->folder != NULL && !matched)
		migrate_error(m, m->folder, NULL, "no such folder");
	if (format == MIGRATE_MAILDIR && info->subscription_count > 0) {
		struct buf s;
		buf_init(&s, 0);
		buf_append_str(&s, "V\t2\n\n");
		for (size_t i = 0; i < info->subscription_count; i++) {
			for (const char *p = info->subscriptions[i]; *p; p++)
				buf_append_char(&s, *p == '/' ? '\t' : *p);
			buf_append_char(&s, '\n');
		}
		char *path = xasprintf("%s/subscriptions", dest);
		if (write_file(path, s.data, s.len, 0) < 0)
			migrate_error(m, NULL, "subscriptions", "%s",
				      strerror(errno));
		free(path);
		buf_free(&s);
	}
	store_export_end(&e);
	migrate_finish(m, "export");
	return m->failed > 0 || m->problems > 0 ? 1 : 0;
}
