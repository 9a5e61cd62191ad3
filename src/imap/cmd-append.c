/*
 * APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS APPENDUID
 * (RFC 4315), APPENDLIMIT (RFC 7889), literal8 (BINARY, RFC 3516) and
 * "UTF8 (~{n})" (RFC 6855 4).
 *
 * The message bytes never sit in memory: imap-client.c streams each
 * message literal into a store blob writer as it arrives (one writer per
 * literal, indexed by imap_arg.stream_index). Here the command line is
 * complete; the writers are committed together, in one group commit of
 * the store. MULTIAPPEND is all or nothing: if one message fails, those
 * stored are expunged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <time.h>

#include "imap-commands.h"
#include "imap-server.h"
#include "imap-url.h"
#include "imap-urlauth.h"
#include "log.h"

struct append_msg {
	unsigned flags;
	const char **keywords;
	size_t keyword_count;
	time_t internaldate;
	uint32_t stream_index;
	/* RFC 4469: CATENATE (TEXT literal / URL url ...), NULL if streamed */
	const struct imap_arg *catenate;
};

static int parse_2(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d" or "d"). */
static int parse_date_time(const char *s, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[32];
	size_t len = strlen(s);
	if (len == 25) {          /* one-digit day without the space */
		buf[0] = '0';
		memcpy(buf + 1, s, len + 1);
	} else if (len == 26) {
		memcpy(buf, s, len + 1);
		if (buf[0] == ' ')
			buf[0] = '0';
	} else {
		return -1;
	}
	struct tm tm = {0};
	int day = parse_2(buf), hh = parse_2(buf + 12), mm = parse_2(buf + 15),
	    ss = parse_2(buf + 18), zh = parse_2(buf + 22), zm = parse_2(buf + 24);
	int y1 = parse_2(buf + 7), y2 = parse_2(buf + 9);
	if (day < 1 || day > 31 || buf[2] != '-' || buf[6] != '-' || y1 < 0 ||
	    y2 < 0 || buf[11] != ' ' || hh < 0 || hh > 23 || buf[14] != ':' ||
	    mm < 0 || mm > 59 || buf[17] != ':' || ss < 0 || ss > 60 ||
	    buf[20] != ' ' || (buf[21] != '+' && buf[21] != '-') || zh < 0 ||
	    zm < 0 || zm > 59)
		return -1;
	const char *m = NULL;
	for (int i = 0; i < 12 && m == NULL; i++) {
		if (strncasecmp(buf + 3, months + i * 3, 3) == 0)
			m = months + i * 3;
	}
	if (m == NULL)
		return -1;
	tm.tm_mday = day;
	tm.tm_mon = (int)(m - months) / 3;
	tm.tm_year = y1 * 100 + y2 - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	time_t t = timegm(&tm);
	long off = (zh * 60L + zm) * 60L;
	*t_r = buf[21] == '+' ? t - off : t + off;
	return 0;
}

static void free_msgs(struct append_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(msgs[i].keywords);
	free(msgs);
}

/* CATENATE's parts (RFC 4469 5): TEXT literal or URL astring, at least
 * one. */
static const char *check_catenate(const struct imap_arg *list, size_t count)
{
	if (count == 0 || count % 2 != 0)
		return "CATENATE needs TEXT and URL parts";
	for (size_t i = 0; i < count; i += 2) {
		if (imap_arg_atom_eq(&list[i], "TEXT")) {
			if (list[i + 1].type != IMAP_ARG_LITERAL)
				return "TEXT needs a literal";
		} else if (imap_arg_atom_eq(&list[i], "URL")) {
			if (!imap_arg_is_astring(&list[i + 1]) ||
			    imap_arg_has_nul(&list[i + 1]))
				return "URL needs a string";
		} else {
			return "CATENATE parts are TEXT or URL";
		}
	}
	return NULL;
}

/* Walks [flags] [date] (literal | UTF8 (literal8) | CATENATE (...))
 * repeated. */
static const char *parse_messages(const struct imap_arg *a,
				  struct append_msg **msgs_r, size_t *count_r)
{
	struct append_msg *msgs = NULL;
	size_t n = 0;
	const char *error = NULL;
	while (a->type != IMAP_ARG_EOL) {
		msgs = xrealloc(msgs, (n + 1) * sizeof(*msgs));
		struct append_msg *m = &msgs[n];
		memset(m, 0, sizeof(*m));
		n++;
		if (a->type == IMAP_ARG_LIST) {
			if (imap_parse_flags(a, &m->flags, &m->keywords,
					     &m->keyword_count, &error) < 0)
				goto fail;
			a++;
		}
		if (a->type == IMAP_ARG_QUOTED) {
			if (parse_date_time(a->str.ptr, &m->internaldate) < 0) {
				error = "Invalid date-time";
				goto fail;
			}
			a++;
		}
		if (imap_arg_atom_eq(a, "CATENATE") && a[1].type == IMAP_ARG_LIST) {
			if ((error = check_catenate(a[1].list, a[1].list_count)) != NULL)
				goto fail;
			m->catenate = a[1].list;
			a += 2;
			continue;
		}
		const struct imap_arg *lit = a;
		if (imap_arg_atom_eq(a, "UTF8") && a[1].type == IMAP_ARG_LIST &&
		    a[1].list_count == 1) {
			lit = &a[1].list[0];
			a++;
		}
		if (lit->type != IMAP_ARG_LITERAL || !lit->streamed) {
			error = "Expected a message literal";
			goto fail;
		}
		m->stream_index = lit->stream_index;
		a++;
	}
	if (n == 0) {
		error = "APPEND needs a message";
		goto fail;
	}
	*msgs_r = msgs;
	*count_r = n;
	return NULL;
fail:
	free_msgs(msgs, n);
	return error;
}

static const char *append_error_code(const struct store_error *err)
{
	if (err->kind == STORE_ERR_LIMIT)
		return "TOOBIG";
	if (err->kind == STORE_ERR_NOTFOUND)
		return "TRYCREATE";
	return imap_store_error_code(err->kind);
}

/* Undoes the messages committed so far (MULTIAPPEND atomicity). */
static void undo(struct imap_client *c, struct store_user *user,
		 const char *mailbox, const uint32_t *uids, size_t n)
{
	if (n == 0)
		return;
	struct store_uid_range *r = xmalloc(n * sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i].lo = r[i].hi = uids[i];
	size_t rn = imap_uid_ranges_normalize(r, n);
	uint32_t *gone = NULL;
	size_t gn = 0;
	struct store_error err = {0};
	if (store_expunge(user, mailbox, r, rn, true, &gone, &gn, &err) < 0)
		log_error("imap", c->sid, "APPEND: could not undo %zu messages: %s",
			  n, err.msg);
	free(gone);
	free(r);
}

/* Why a CATENATE URL cannot be used: RFC 4469 5's BADURL. */
struct url_failure {
	const char *url;
	size_t url_len;
	char why[300];
};

/* The octets of a CATENATE URL of this user (RFC 4469 5: relative to the
 * server, or naming the logged-in user). */
static int catenate_url(struct imap_client *c, const struct imap_arg *arg,
			char **data_r, size_t *len_r, struct url_failure *bad)
{
	struct imap_url u;
	const char *error;
	bad->url = arg->str.ptr;
	bad->url_len = arg->str.len;
	if (imap_url_parse(arg->str.ptr, false, &u, &error) < 0) {
		snprintf(bad->why, sizeof(bad->why), "%s", error);
		return -1;
	}
	int ret = -1;
	char *mailbox = NULL;
	struct store_error err = {0};
	if (u.access != NULL) {
		ret = imap_urlauth_fetch_for(c, &u, arg->str.ptr, data_r, len_r,
					     bad->why, sizeof(bad->why));
		imap_url_free(&u);
		return ret;
	}
	struct store_user *box = NULL;
	if (u.user != NULL && strcasecmp(u.user, c->user.address) != 0) {
		snprintf(bad->why, sizeof(bad->why),
			 "The URL names another user's mailbox");
	} else if (imap_url_box(c->server->store, c->server->auth, &c->user,
				c->store_user, u.mailbox, &box, &mailbox,
				bad->why, sizeof(bad->why)) < 0) {
		/* why given */
	} else if (imap_url_fetch(box, mailbox, &u, data_r, len_r, &err) < 0) {
		snprintf(bad->why, sizeof(bad->why), "%s",
			 err.kind == STORE_ERR_INTERNAL ? "Cannot read the message"
							 : err.msg);
		if (err.kind == STORE_ERR_INTERNAL)
			log_error("imap", c->sid, "CATENATE URL: %s", err.msg);
	} else {
		ret = 0;
	}
	if (box != NULL)
		store_user_unref(&box);
	free(mailbox);
	imap_url_free(&u);
	return ret;
}

/* Puts a CATENATE message together in a new blob writer. */
static int catenate(struct imap_client *c, const struct imap_arg *parts,
		    struct store_blob_writer **w_r, struct store_error *err,
		    struct url_failure *bad)
{
	if (store_blob_writer_create(c->store_user, w_r, err) < 0)
		return -1;
	for (const struct imap_arg *p = parts; p->type != IMAP_ARG_EOL; p += 2) {
		int r;
		if (imap_arg_atom_eq(p, "TEXT")) {
			r = store_blob_writer_write(*w_r, p[1].str.ptr,
						    p[1].str.len, err);
		} else {
			char *data;
			size_t len;
			if (catenate_url(c, &p[1], &data, &len, bad) < 0) {
				store_blob_writer_abort(w_r);
				return -1;
			}
			r = store_blob_writer_write(*w_r, data, len, err);
			free(data);
		}
		if (r < 0) {
			store_blob_writer_abort(w_r);
			return -1;
		}
	}
	return 0;
}

/* Stores messages into mailbox, all or nothing, in one group commit of
 * the store (one WAL sync for a whole MULTIAPPEND of small messages).
 * Returns the number stored (n), or -1 having replied NO. uids (n of
 * them) and uidvalidity are filled. */
static int commit_all(struct imap_cmd *cmd, struct store_user *user,
		      const char *mailbox, struct append_msg *msgs, size_t n,
		      uint32_t *uids, uint32_t *uidvalidity)
{
	struct imap_client *c = cmd->client;
	struct store_error err = {0};
	struct url_failure bad = {0};
	struct store_blob_writer **ws = xcalloc(n, sizeof(*ws));
	struct store_append_params *p = xcalloc(n, sizeof(*p));
	size_t ready = 0;
	for (; ready < n; ready++) {
		struct append_msg *m = &msgs[ready];
		struct store_blob_writer **w;
		if (m->catenate != NULL) {
			if (catenate(c, m->catenate, &ws[ready], &err,
				     &bad) < 0)
				break;
			w = &ws[ready];
		} else {
			w = m->stream_index < c->writer_count
				    ? &c->writers[m->stream_index] : NULL;
		}
		if ((w == NULL || *w == NULL) || store_blob_writer_size(*w) == 0) {
			if (w != NULL)
				store_blob_writer_abort(w);
			err.kind = STORE_ERR_INVALID;
			snprintf(err.msg, sizeof(err.msg), "Empty message");
			break;
		}
		if (w != &ws[ready]) {
			/* the streamed literal's writer: ours now */
			ws[ready] = *w;
			*w = NULL;
		}
		p[ready] = (struct store_append_params){
			.flags = m->flags,
			.keywords = m->keywords,
			.keyword_count = m->keyword_count,
			.internaldate = m->internaldate,
		};
	}
	int ret = -1;
	if (ready == n) {
		ret = store_blob_writers_commit_to(ws, n, user, mailbox, p,
						   uids, uidvalidity, &err);
		if (ret < 0) {
			/* MULTIAPPEND is all or nothing (RFC 3502): those
			 * stored go again */
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (uids[i] != 0)
					uids[k++] = uids[i];
			undo(c, user, mailbox, uids, k);
		}
	} else {
		for (size_t i = 0; i < ready; i++)
			store_blob_writer_abort(&ws[i]);
	}
	free(p);
	free(ws);
	if (ret == 0)
		return (int)n;
	if (bad.url != NULL)
		imap_cmd_no(cmd, "[BADURL \"%.*s\"] %s",
			    (int)(bad.url_len < 400 ? bad.url_len : 400), bad.url,
			    bad.why);
	else if (err.kind == STORE_ERR_INTERNAL)
		imap_cmd_store_error(cmd, &err);
	else
		imap_cmd_no(cmd, "[%s] %s", append_error_code(&err), err.msg);
	return -1;
}

/* Whether messages may go into ref's mailbox; replies NO if not. */
static bool target_ok(struct imap_cmd *cmd, const struct imap_mbref *ref)
{
	struct imap_client *c = cmd->client;
	struct store_mailbox_info info;
	struct store_error err = {0};
	if (c->stream_failed) {
		imap_cmd_no(cmd, "[%s] %s", append_error_code(&c->stream_err),
			    c->stream_err.msg);
		return false;
	}
	/* another account's: i is enough (a drop box); the store checks it
	 * at the commit, hidden mailboxes failing as missing ones */
	if (ref->shared)
		return true;
	if (store_mailbox_status(ref->user, ref->name, &info, &err) < 0) {
		/* RFC 9051 6.3.12: the client may CREATE and retry */
		if (err.kind == STORE_ERR_NOTFOUND)
			imap_cmd_no(cmd, "[TRYCREATE] No such mailbox");
		else
			imap_cmd_store_error(cmd, &err);
		return false;
	}
	bool noselect = info.noselect;
	store_mailbox_info_free(&info);
	if (noselect) {
		imap_cmd_no(cmd, "[TRYCREATE] Mailbox cannot hold messages");
		return false;
	}
	return true;
}

void cmd_append(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args;
	struct append_msg *msgs = NULL;
	size_t n = 0;
	if (a[0].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] APPEND needs a mailbox and a message");
		return;
	}
	const char *error = parse_messages(a + 1, &msgs, &n);
	if (error != NULL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] %s", error);
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[0], false, &ref) < 0) {
		free_msgs(msgs, n);
		return;
	}
	uint32_t *uids = xcalloc(n, sizeof(*uids));
	uint32_t uidvalidity = 0;
	if (target_ok(cmd, &ref) &&
	    commit_all(cmd, ref.user, ref.name, msgs, n, uids,
		       &uidvalidity) >= 0) {
		struct buf set;
		buf_init(&set, 0);
		imap_uids_append_set(&set, uids, n);
		imap_cmd_ok(cmd, "[APPENDUID %u %s] APPEND completed", uidvalidity,
			    set.data);
		buf_free(&set);
	}
	free(uids);
	imap_mbref_free(&ref);
	free_msgs(msgs, n);
}

/* REPLACE n mailbox message / UID REPLACE uid mailbox message (RFC 8508):
 * the new message is appended, then the old one expunged; if the append
 * fails nothing is expunged. APPENDUID goes in an untagged OK (RFC 8508
 * 3.3); the EXPUNGE (or VANISHED) and EXISTS follow before the tagged OK. */
void cmd_replace(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *a = cmd->args;
	struct append_msg *msgs = NULL;
	size_t n = 0;
	uint32_t num = 0;
	const char *p;
	if (a[0].type != IMAP_ARG_ATOM || a[1].type == IMAP_ARG_EOL ||
	    (p = a[0].str.ptr, num = (uint32_t)strtoul(p, NULL, 10)) == 0 ||
	    strspn(p, "0123456789") != a[0].str.len || a[0].str.len > 10) {
		imap_cmd_bad(cmd, "[CLIENTBUG] REPLACE needs a message number, a mailbox and a message");
		return;
	}
	const char *error = parse_messages(a + 2, &msgs, &n);
	if (error == NULL && n != 1)
		error = "REPLACE takes one message";
	if (error != NULL) {
		free_msgs(msgs, n);
		imap_cmd_bad(cmd, "[CLIENTBUG] %s", error);
		return;
	}
	imap_cmd_sync_uid(cmd, num);
	uint32_t old_uid = cmd->uid ? (store_view_seq(c->view, num) ? num : 0)
				    : store_view_uid(c->view, num);
	if (!cmd->uid && old_uid == 0) {
		free_msgs(msgs, n);
		imap_cmd_bad(cmd, "[CLIENTBUG] No message %u", num);
		return;
	}
	if (c->readonly) {
		free_msgs(msgs, n);
		imap_cmd_no(cmd, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	if (old_uid == 0) {
		free_msgs(msgs, n);
		imap_cmd_no(cmd, "[NONEXISTENT] No message with UID %u", num);
		return;
	}
	struct imap_mbref ref;
	if (imap_cmd_mailbox_ref(cmd, &a[1], false, &ref) < 0) {
		free_msgs(msgs, n);
		return;
	}
	uint32_t uid = 0, uidvalidity = 0;
	if (target_ok(cmd, &ref) &&
	    commit_all(cmd, ref.user, ref.name, msgs, n, &uid,
		       &uidvalidity) >= 0) {
		struct store_uid_range r = {old_uid, old_uid};
		struct store_error err = {0};
		uint32_t *gone = NULL;
		size_t ngone = 0;
		if (store_expunge(imap_client_sel_user(c), c->mailbox, &r, 1,
				  true, &gone, &ngone, &err) < 0) {
			/* the old one stays: so must not the new one */
			undo(c, ref.user, ref.name, &uid, 1);
			imap_cmd_store_error(cmd, &err);
		} else {
			imap_client_untagged(c, "OK [APPENDUID %u %u] Replacement stored",
					     uidvalidity, uid);
			imap_cmd_ok(cmd, "%sREPLACE completed", cmd->uid ? "UID " : "");
		}
		free(gone);
	}
	imap_mbref_free(&ref);
	free_msgs(msgs, n);
}
