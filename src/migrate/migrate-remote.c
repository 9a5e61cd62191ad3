/*
 * IMAP and POP3 import: `loftctl import ADDRESS imap://USER@HOST[:PORT]`
 * (imaps://, pop3://, pop3s://). An in-tree client over migrate-net.c
 * and the fuzzed response parser (imap-resp.c): a migration needs a
 * dozen commands, not a general client library, and libetpan's IMAP
 * parser would be a second, unfuzzed one beside ours for the same
 * grammar (see /work/notes/migrate.md).
 *
 * IMAP (RFC 9051 and 3501): STARTTLS when offered (plain text only to
 * loopback), AUTHENTICATE PLAIN (authzid for an admin login, RFC 4616)
 * or LOGIN, ENABLE UTF8=ACCEPT when offered (RFC 6855; else names are
 * modified UTF-7), LIST with SPECIAL-USE and SUBSCRIBED (else LSUB and
 * well-known names), EXAMINE only, UID FETCH of FLAGS/INTERNALDATE/
 * RFC822.SIZE, then BODY.PEEK[] of what Loft lacks, in batches. A second
 * run copies new messages and flag changes (the source's flags replace
 * Loft's for messages whose UIDs were kept), never deletes, and says
 * how many vanished at the source. The change counter goes above the
 * source's HIGHESTMODSEQ.
 *
 * POP3 (RFC 1939, STLS RFC 2595): INBOX only, UIDLs kept, never DELE.
 */
#include "migrate.h"
#include "migrate-net.h"
#include "migrate-parse.h"
#include "migrate-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "buf.h"
#include "utf7.h"
#include "u32.h"

#define LINE_MAX_BYTES (1024 * 1024)
#define LITERAL_MAX ((uint64_t)1 << 30)
#define FETCH_BATCH 64

struct imapc {
	struct migrate *m;
	struct mnet net;
	struct buf resp;
	struct imap_resp *r;
	unsigned tag;
	char caps[4096];
	bool utf8;
	bool qresync;        /* ENABLE QRESYNC answered OK (RFC 7162) */
	char url[600];
};

/* ---- reading ------------------------------------------------------ */

/* One whole response: its line and every literal it announces. */
static int read_response(struct imapc *c)
{
	buf_reset(&c->resp);
	for (;;) {
		size_t start = c->resp.len;
		if (mnet_read_line(&c->net, &c->resp, LINE_MAX_BYTES) < 0)
			return -1;
		const char *l = c->resp.data + start;
		size_t n = c->resp.len - start;
		/* "{N}\r\n" or "{N+}\r\n" at the end: a literal follows */
		if (n < 4 || l[n - 2] != '\r' || l[n - 3] != '}')
			return 0;
		size_t i = n - 3;
		if (i > 0 && l[i - 1] == '+')
			i--;
		size_t d = i;
		while (d > 0 && l[d - 1] >= '0' && l[d - 1] <= '9')
			d--;
		if (d == i || d == 0 || l[d - 1] != '{')
			return 0;
		uint64_t len = 0;
		for (size_t k = d; k < i; k++) {
			if (len > LITERAL_MAX)
				break;
			len = len * 10 + (uint64_t)(l[k] - '0');
		}
		if (len > LITERAL_MAX) {
			snprintf(c->net.error, sizeof(c->net.error), "%s"
				 " announces a literal of %.*s bytes: refused",
				 c->net.host, (int)(i - d), l + d);
			return -1;
		}
		if (mnet_read_n(&c->net, (size_t)len, &c->resp) < 0)
			return -1;
	}
}

static int parse(struct imapc *c)
{
	if (imap_resp_parse(c->resp.data, c->resp.len, c->r) < 0) {
		snprintf(c->net.error, sizeof(c->net.error), "%s sent a"
			 " response that is not IMAP: %.60s", c->net.host,
			 c->resp.data);
		return -1;
	}
	return 0;
}

static const struct imap_item *top(struct imapc *c, unsigned n)
{
	return imap_resp_child(c->r, &c->r->items[0], n);
}

typedef int response_fn(struct imapc *c, void *ctx);

static void caps_from(struct imapc *c, const struct imap_item *first)
{
	struct buf b;
	buf_init(&b, 0);
	buf_append_char(&b, ' ');
	for (const struct imap_item *it = first; it != NULL;
	     it = imap_resp_next(c->r, it)) {
		if (it->type != IMAP_ATOM)
			continue;
		buf_append(&b, imap_item_data(c->r, it), it->len);
		buf_append_char(&b, ' ');
	}
	buf_append_char(&b, '\0');
	snprintf(c->caps, sizeof(c->caps), "%s", b.data);
	buf_free(&b);
}

static bool has_cap(struct imapc *c, const char *cap)
{
	char want[80];
	snprintf(want, sizeof(want), " %s ", cap);
	return strcasestr(c->caps, want) != NULL;
}

/* A [CAPABILITY ...] code in a status response. */
static void status_caps(struct imapc *c)
{
	const struct imap_item *code = top(c, 2);
	if (code != NULL && code->type == IMAP_SECTION) {
		const struct imap_item *w = imap_resp_child(c->r, code, 0);
		if (imap_item_is(c->r, w, "CAPABILITY"))
			caps_from(c, imap_resp_next(c->r, w));
	}
}

/* A command sent whose tagged reply has not been read yet. */
struct pending {
	char tag[16];
	char what[40];
	bool done;           /* its tagged reply came (while waiting for
				another's) */
	bool ok;
	char error[sizeof(((struct mnet *)0)->error)];
};

/* Sends a command (fmt without tag and CRLF). -1 (error set) if it
 * could not be written. */
static int command_vsend(struct imapc *c, struct pending *p, const char *fmt,
			 va_list ap)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->tag, sizeof(p->tag), "L%u", ++c->tag);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s ", p->tag);
	buf_vprintf(&b, fmt, ap);
	buf_append_str(&b, "\r\n");
	int r = mnet_write(&c->net, b.data, b.len);
	const char *verb = b.data + strlen(p->tag) + 1;
	snprintf(p->what, sizeof(p->what), "%.*s", (int)strcspn(verb, " \r"),
		 verb);
	buf_free(&b);
	return r < 0 ? -1 : 0;
}

static int command_send(struct imapc *c, struct pending *p, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
static int command_send(struct imapc *c, struct pending *p, const char *fmt,
			...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = command_vsend(c, p, fmt, ap);
	va_end(ap);
	return r;
}

static int tagged_result(struct imapc *c, struct pending *p)
{
	if (imap_item_is(c->r, top(c, 1), "OK")) {
		status_caps(c);
		return 0;
	}
	snprintf(c->net.error, sizeof(c->net.error), "%s: %s %.*s",
		 c->net.host, p->what, (int)c->r->text_len, c->r->text);
	return -1;
}

/* Reads up to p's tagged reply; untagged ones go to fn. A tagged reply
 * of other (a command pipelined after p; may be NULL) that comes first
 * is kept in it. 0 on OK, -1 otherwise (error set). */
static int command_wait(struct imapc *c, struct pending *p,
			struct pending *other, response_fn *fn, void *ctx)
{
	if (p->done) {
		if (p->ok)
			return 0;
		memcpy(c->net.error, p->error, sizeof(c->net.error));
		return -1;
	}
	for (;;) {
		if (read_response(c) < 0 || parse(c) < 0)
			return -1;
		const struct imap_item *t = top(c, 0);
		const struct imap_item *w = top(c, 1);
		if (t->len == 1 && imap_item_data(c->r, t)[0] == '*') {
			if (imap_item_is(c->r, w, "BYE")) {
				snprintf(c->net.error, sizeof(c->net.error),
					 "%s said BYE: %.*s", c->net.host,
					 (int)c->r->text_len, c->r->text);
				return -1;
			}
			if (imap_item_is(c->r, w, "CAPABILITY"))
				caps_from(c, top(c, 2));
			if (fn != NULL && fn(c, ctx) < 0)
				return -1;
			continue;
		}
		if (t->len == 1 && imap_item_data(c->r, t)[0] == '+') {
			snprintf(c->net.error, sizeof(c->net.error), "%s asks"
				 " for more in %s", c->net.host, p->what);
			return -1;
		}
		if (other != NULL && !other->done &&
		    t->len == strlen(other->tag) &&
		    memcmp(imap_item_data(c->r, t), other->tag, t->len) == 0) {
			other->done = true;
			other->ok = tagged_result(c, other) == 0;
			memcpy(other->error, c->net.error,
			       sizeof(other->error));
			continue;
		}
		if (t->len != strlen(p->tag) ||
		    memcmp(imap_item_data(c->r, t), p->tag, t->len) != 0)
			continue;     /* another tag: not ours */
		return tagged_result(c, p);
	}
}

/* Sends a command (fmt without tag and CRLF) and reads up to its tagged
 * reply; untagged ones go to fn. 0 on OK, -1 otherwise (error set). */
static int command(struct imapc *c, response_fn *fn, void *ctx,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int command(struct imapc *c, response_fn *fn, void *ctx,
		   const char *fmt, ...)
{
	struct pending p;
	va_list ap;
	va_start(ap, fmt);
	int r = command_vsend(c, &p, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	return command_wait(c, &p, NULL, fn, ctx);
}

/* A quoted string (or a literal for what quoting cannot carry). */
static void quote(struct buf *b, const char *s)
{
	bool literal = false;
	for (const char *p = s; *p; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80)
			literal = true;
	if (literal) {
		buf_printf(b, "{%zu+}\r\n%s", strlen(s), s);
		return;
	}
	buf_append_char(b, '"');
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, *p);
	}
	buf_append_char(b, '"');
}

/* ---- login -------------------------------------------------------- */

static int imap_login(struct imapc *c, const struct migrate_url *u)
{
	struct migrate *m = c->m;
	if (read_response(c) < 0 || parse(c) < 0)
		return -1;
	const struct imap_item *w = top(c, 1);
	if (!imap_item_is(c->r, w, "OK") && !imap_item_is(c->r, w, "PREAUTH")) {
		snprintf(c->net.error, sizeof(c->net.error), "%s greets with"
			 " %.60s", c->net.host, c->resp.data);
		return -1;
	}
	status_caps(c);
	if (c->caps[0] == '\0' && command(c, NULL, NULL, "CAPABILITY") < 0)
		return -1;
	if (!c->net.tls) {
		if (has_cap(c, "STARTTLS")) {
			if (command(c, NULL, NULL, "STARTTLS") < 0 ||
			    mnet_starttls(&c->net) < 0)
				return -1;
			c->caps[0] = '\0';
			if (command(c, NULL, NULL, "CAPABILITY") < 0)
				return -1;
		} else if (!c->net.loopback) {
			snprintf(c->net.error, sizeof(c->net.error), "%s offers"
				 " no STARTTLS: the password goes in plain"
				 " text only to a loopback address (use"
				 " imaps://)", c->net.host);
			return -1;
		}
	}
	struct buf b;
	buf_init(&b, 0);
	int r;
	if (has_cap(c, "AUTH=PLAIN") || m->authzid != NULL) {
		struct buf plain;
		buf_init(&plain, 0);
		buf_append_str(&plain, m->authzid ? m->authzid : "");
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, u->user);
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, m->password);
		char *b64 = base64_encode(plain.data, plain.len);
		buf_free(&plain);
		if (has_cap(c, "SASL-IR")) {
			r = command(c, NULL, NULL, "AUTHENTICATE PLAIN %s", b64);
		} else {
			char tag[16];
			snprintf(tag, sizeof(tag), "L%u", ++c->tag);
			r = mnet_printf(&c->net, "%s AUTHENTICATE PLAIN\r\n", tag);
			if (r == 0 && (read_response(c) < 0 || parse(c) < 0))
				r = -1;
			c->tag--;
			if (r == 0)
				r = mnet_printf(&c->net, "%s\r\n", b64);
			/* the tagged reply comes like any command's */
			if (r == 0)
				r = command(c, NULL, NULL, "NOOP");
		}
		free(b64);
	} else {
		buf_append_str(&b, "LOGIN ");
		quote(&b, u->user);
		buf_append_char(&b, ' ');
		quote(&b, m->password);
		buf_append_char(&b, '\0');
		r = command(c, NULL, NULL, "%s", b.data);
	}
	buf_free(&b);
	if (r < 0)
		return -1;
	c->caps[0] = '\0';
	if (command(c, NULL, NULL, "CAPABILITY") < 0)
		return -1;
	if (has_cap(c, "UTF8=ACCEPT") && has_cap(c, "ENABLE") &&
	    command(c, NULL, NULL, "ENABLE UTF8=ACCEPT") == 0)
		c->utf8 = true;
	/* EXAMINE then says HIGHESTMODSEQ (RFC 7162 3.1.2.1); QRESYNC
	 * (which implies CONDSTORE) gives a later run VANISHED */
	if (has_cap(c, "QRESYNC") && has_cap(c, "ENABLE") &&
	    command(c, NULL, NULL, "ENABLE QRESYNC") == 0)
		c->qresync = true;
	else if (has_cap(c, "CONDSTORE") && has_cap(c, "ENABLE"))
		command(c, NULL, NULL, "ENABLE CONDSTORE");
	return 0;
}

/* ---- folders ------------------------------------------------------ */

struct rfolder {
	char *wire;          /* the name as the server spells it */
	char *name;          /* Loft's: UTF-8, "/" */
	unsigned role;
	bool subscribed;
};

struct list_ctx {
	struct rfolder *v;
	size_t n;
	bool lsub;
};

static unsigned role_attr(const char *a, size_t n)
{
	static const struct {
		const char *attr;
		unsigned role;
	} roles[] = {
		{"\\Sent", STORE_SPECIAL_SENT}, {"\\Drafts", STORE_SPECIAL_DRAFTS},
		{"\\Trash", STORE_SPECIAL_TRASH}, {"\\Junk", STORE_SPECIAL_JUNK},
		{"\\Archive", STORE_SPECIAL_ARCHIVE},
	};
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strlen(roles[i].attr) == n &&
		    strncasecmp(a, roles[i].attr, n) == 0)
			return roles[i].role;
	return 0;
}

static int list_cb(struct imapc *c, void *ctx)
{
	struct list_ctx *l = ctx;
	const struct imap_item *w = top(c, 1);
	if (!imap_item_is(c->r, w, l->lsub ? "LSUB" : "LIST"))
		return 0;
	const struct imap_item *attrs = top(c, 2), *sep = top(c, 3),
			       *nm = top(c, 4);
	if (attrs == NULL || attrs->type != IMAP_LIST || sep == NULL ||
	    nm == NULL || (nm->type != IMAP_ATOM && nm->type != IMAP_STRING))
		return 0;
	char *wire = xstrndup(imap_item_data(c->r, nm), nm->len);
	if (l->lsub) {
		for (size_t i = 0; i < l->n; i++)
			if (strcmp(l->v[i].wire, wire) == 0)
				l->v[i].subscribed = true;
		free(wire);
		return 0;
	}
	bool skip = false, sub = false;
	unsigned role = 0;
	for (const struct imap_item *a = imap_resp_child(c->r, attrs, 0);
	     a != NULL; a = imap_resp_next(c->r, a)) {
		const char *s = imap_item_data(c->r, a);
		if (imap_item_is(c->r, a, "\\Noselect") ||
		    imap_item_is(c->r, a, "\\NonExistent"))
			skip = true;
		if (imap_item_is(c->r, a, "\\Subscribed"))
			sub = true;
		role |= role_attr(s, a->len);
	}
	/* Loft's name: decoded, the separator made "/" */
	char sepc = sep->type == IMAP_STRING && sep->len == 1
			    ? imap_item_data(c->r, sep)[0] : '/';
	struct buf name;
	buf_init(&name, 0);
	bool bad = false;
	if (c->utf8) {
		buf_append_str(&name, wire);
		bad = !utf8_valid(wire, strlen(wire));
	} else {
		bad = utf7_decode(wire, strlen(wire), &name) < 0;
	}
	buf_append_char(&name, '\0');
	for (char *p = name.data; !bad && *p; p++) {
		if (*p == sepc)
			*p = '/';
		else if (*p == '/' && sepc != '/')
			bad = true;
	}
	if (bad) {
		c->m->failed++;
		migrate_error(c->m, wire, NULL, "folder name is not valid"
			      " modified UTF-7 or UTF-8: not imported");
	}
	if (bad || skip) {
		free(wire);
		buf_free(&name);
		return 0;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	struct rfolder *f = &l->v[l->n++];
	f->wire = wire;
	f->name = buf_steal(&name, NULL);
	if (strcasecmp(f->name, "INBOX") == 0) {
		free(f->name);
		f->name = xstrdup("INBOX");
	}
	f->role = role;
	f->subscribed = sub;
	return 0;
}

static int rfolder_cmp(const void *a, const void *b)
{
	const struct rfolder *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* ---- one folder --------------------------------------------------- */

struct rmsg {
	uint32_t uid;
	unsigned flags;
	char *keywords;      /* space-separated */
	time_t date;
	uint64_t size;
	bool have;           /* imported before (a mark) */
};

struct fold_ctx {
	struct rmsg *v;
	size_t n;
	uint32_t min_uid;    /* list_msgs_cb: UIDs below are not listed */
	uint32_t max_uid;    /* ... nor above (0: no bound): a QRESYNC
				EXAMINE's server may report a new message's
				FETCH beside the known UIDs, and the fetch of
				the new ones lists it again */
	uint32_t *exist;     /* exist_cb: the UIDs the source has */
	size_t nexist;
	struct store_uid_range *vanished;   /* QRESYNC: VANISHED (EARLIER) */
	size_t nvanished;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	/* while fetching bodies */
	const struct rfolder *f;
	const char *source;
	bool keep;
	int stop;
};

static int examine_cb(struct imapc *c, void *ctx)
{
	struct fold_ctx *fc = ctx;
	const struct imap_item *w = top(c, 1), *code = top(c, 2);
	if (!imap_item_is(c->r, w, "OK") || code == NULL ||
	    code->type != IMAP_SECTION)
		return 0;
	const struct imap_item *k = imap_resp_child(c->r, code, 0);
	const struct imap_item *v = k ? imap_resp_next(c->r, k) : NULL;
	uint64_t n;
	if (!imap_item_u64(c->r, v, &n))
		return 0;
	if (imap_item_is(c->r, k, "UIDVALIDITY") && n <= UINT32_MAX)
		fc->uidvalidity = (uint32_t)n;
	else if (imap_item_is(c->r, k, "UIDNEXT") && n <= UINT32_MAX)
		fc->uidnext = (uint32_t)n;
	else if (imap_item_is(c->r, k, "HIGHESTMODSEQ"))
		fc->highestmodseq = n;
	return 0;
}

static time_t parse_internaldate(const char *s, size_t n)
{
	char tmp[64];
	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = tmp;
	while (*p == ' ')
		p++;
	char *e = strptime(p, "%d-%b-%Y %H:%M:%S", &tm);
	if (e == NULL)
		return 0;
	while (*e == ' ')
		e++;
	long off = 0;
	if ((*e == '+' || *e == '-') && strlen(e) >= 5) {
		int v = atoi(e + 1);
		off = (long)((v / 100) * 3600 + (v % 100) * 60) *
		      (*e == '-' ? -1 : 1);
	}
	return timegm(&tm) - off;
}

/* The message attributes of a "* n FETCH (...)"; 1 if it is one. */
static int fetch_attrs(struct imapc *c, uint32_t *uid_r, unsigned *flags_r,
		       struct buf *kw, time_t *date_r, uint64_t *size_r,
		       const struct imap_item **body_r)
{
	const struct imap_item *w = top(c, 2), *list = top(c, 3);
	if (!imap_item_is(c->r, w, "FETCH") || list == NULL ||
	    list->type != IMAP_LIST)
		return 0;
	*uid_r = 0;
	if (body_r != NULL)
		*body_r = NULL;
	for (const struct imap_item *k = imap_resp_child(c->r, list, 0);
	     k != NULL; k = imap_resp_next(c->r, k)) {
		const struct imap_item *v = imap_resp_next(c->r, k);
		if (v == NULL)
			break;
		uint64_t n;
		if (imap_item_is(c->r, k, "UID") && imap_item_u64(c->r, v, &n) &&
		    n > 0 && n <= UINT32_MAX) {
			*uid_r = (uint32_t)n;
		} else if (imap_item_is(c->r, k, "FLAGS") && flags_r != NULL &&
			   v->type == IMAP_LIST) {
			*flags_r = 0;
			buf_reset(kw);
			for (const struct imap_item *fl = imap_resp_child(c->r, v, 0);
			     fl != NULL; fl = imap_resp_next(c->r, fl)) {
				const char *s = imap_item_data(c->r, fl);
				if (imap_item_is(c->r, fl, "\\Seen"))
					*flags_r |= STORE_FLAG_SEEN;
				else if (imap_item_is(c->r, fl, "\\Answered"))
					*flags_r |= STORE_FLAG_ANSWERED;
				else if (imap_item_is(c->r, fl, "\\Flagged"))
					*flags_r |= STORE_FLAG_FLAGGED;
				else if (imap_item_is(c->r, fl, "\\Deleted"))
					*flags_r |= STORE_FLAG_DELETED;
				else if (imap_item_is(c->r, fl, "\\Draft"))
					*flags_r |= STORE_FLAG_DRAFT;
				else if (fl->type == IMAP_ATOM &&
					 migrate_keyword_valid(s, fl->len)) {
					if (kw->len > 0)
						buf_append_char(kw, ' ');
					buf_append(kw, s, fl->len);
				}
			}
		} else if (imap_item_is(c->r, k, "INTERNALDATE") &&
			   date_r != NULL && v->type == IMAP_STRING) {
			*date_r = parse_internaldate(imap_item_data(c->r, v),
						     v->len);
		} else if (imap_item_is(c->r, k, "RFC822.SIZE") &&
			   size_r != NULL && imap_item_u64(c->r, v, &n)) {
			*size_r = n;
		} else if (imap_item_is(c->r, k, "BODY") && body_r != NULL &&
			   (v->type == IMAP_STRING || v->type == IMAP_NIL)) {
			*body_r = v;
		}
		k = v;
	}
	return *uid_r != 0;
}

static int list_msgs_cb(struct imapc *c, void *ctx)
{
	struct fold_ctx *fc = ctx;
	uint32_t uid;
	unsigned flags = 0;
	struct buf kw;
	buf_init(&kw, 0);
	time_t date = 0;
	uint64_t size = 0;
	/* "n:*" gives the last message even when its UID is below n */
	if (fetch_attrs(c, &uid, &flags, &kw, &date, &size, NULL) == 1 &&
	    uid >= fc->min_uid && (fc->max_uid == 0 || uid <= fc->max_uid)) {
		fc->v = xrealloc(fc->v, (fc->n + 1) * sizeof(*fc->v));
		struct rmsg *r = &fc->v[fc->n++];
		memset(r, 0, sizeof(*r));
		r->uid = uid;
		r->flags = flags;
		buf_append_char(&kw, '\0');
		r->keywords = buf_steal(&kw, NULL);
		r->date = date;
		r->size = size;
	}
	buf_free(&kw);
	return 0;
}

/* "* n FETCH (UID u)": the UIDs there are. */
static int exist_cb(struct imapc *c, void *ctx)
{
	struct fold_ctx *fc = ctx;
	uint32_t uid;
	unsigned flags = 0;
	struct buf kw;
	buf_init(&kw, 0);
	if (fetch_attrs(c, &uid, &flags, &kw, NULL, NULL, NULL) == 1) {
		fc->exist = xrealloc(fc->exist,
				     (fc->nexist + 1) * sizeof(*fc->exist));
		fc->exist[fc->nexist++] = uid;
	}
	buf_free(&kw);
	return 0;
}

/* EXAMINE (QRESYNC ...): "* VANISHED (EARLIER) set" and the FETCH of
 * every message changed since (UID FLAGS MODSEQ). */
static int qresync_cb(struct imapc *c, void *ctx)
{
	struct fold_ctx *fc = ctx;
	const struct imap_item *w = top(c, 1);
	if (!imap_item_is(c->r, w, "VANISHED"))
		return list_msgs_cb(c, ctx);
	const struct imap_item *set = top(c, 2);
	if (set != NULL && set->type == IMAP_LIST)
		set = top(c, 3);
	struct store_uid_range *r;
	size_t n;
	if (set == NULL || set->type != IMAP_ATOM ||
	    imap_uid_set_parse(imap_item_data(c->r, set), set->len, &r,
			       &n) < 0 ||
	    fc->nvanished + n > IMAP_UID_SET_MAX)
		return 0;
	fc->vanished = xrealloc(fc->vanished, (fc->nvanished + n) *
						      sizeof(*fc->vanished));
	memcpy(fc->vanished + fc->nvanished, r, n * sizeof(*r));
	fc->nvanished += n;
	free(r);
	return 0;
}

static int rmsg_cmp(const void *a, const void *b)
{
	const struct rmsg *x = a, *y = b;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static struct rmsg *rmsg_find(struct fold_ctx *fc, uint32_t uid)
{
	struct rmsg key = {.uid = uid};
	return fc->n > 0 ? bsearch(&key, fc->v, fc->n, sizeof(*fc->v), rmsg_cmp)
			 : NULL;
}

/* Splits a space-separated keyword list into argv form (in place). */
static size_t kw_split(char *s, const char **out, size_t max)
{
	size_t n = 0;
	for (char *save = NULL, *t = strtok_r(s, " ", &save);
	     t != NULL && n < max; t = strtok_r(NULL, " ", &save))
		out[n++] = t;
	return n;
}

static int body_cb(struct imapc *c, void *ctx)
{
	struct fold_ctx *fc = ctx;
	struct migrate *m = c->m;
	uint32_t uid;
	const struct imap_item *body;
	if (fc->stop == -2 ||
	    fetch_attrs(c, &uid, NULL, NULL, NULL, NULL, &body) != 1)
		return 0;
	struct rmsg *r = rmsg_find(fc, uid);
	if (r == NULL || r->have || body == NULL)
		return 0;
	r->have = true;
	char label[32];
	snprintf(label, sizeof(label), "UID %u", uid);
	if (body->type == IMAP_NIL) {
		migrate_error(m, fc->f->name, label, "the server sent no body");
		m->failed++;
		m->cur->failed++;
		return 0;
	}
	if (r->size != 0 && r->size != body->len)
		migrate_error(m, fc->f->name, label, "RFC822.SIZE said %llu"
			      " bytes, the body has %zu: imported as sent",
			      (unsigned long long)r->size, body->len);
	if (m->dry_run) {
		migrate_count(m, body->len, true);
		return 0;
	}
	struct store_error err;
	struct store_body *b = NULL;
	if (store_body_create(m->store, &b, &err) < 0 ||
	    store_body_write(b, imap_item_data(c->r, body), body->len, &err) < 0) {
		migrate_error(m, fc->f->name, label, "%s", err.msg);
		m->failed++;
		m->cur->failed++;
		store_body_unref(&b);
		return 0;
	}
	char *kwcopy = xstrdup(r->keywords);
	const char *kws[64];
	size_t nkw = kw_split(kwcopy, kws, 64);
	char id[16], idr[16];
	snprintf(id, sizeof(id), "%u", uid);
	snprintf(idr, sizeof(idr), "%u+", uid);
	struct migrate_msg in = {
		.folder = fc->f->name,
		.label = label,
		.uid = uid,
		.flags = r->flags,
		.keywords = kws,
		.keyword_count = nkw,
		.date = r->date,
		.mark_source = fc->source,
		.mark_id = id,
		.mark_renumbered = idr,
		.size = body->len,
	};
	if (migrate_msg_commit(m, &b, &in, fc->keep) == -2)
		fc->stop = -2;
	free(kwcopy);
	return 0;
}

/* Flags of messages imported before, made the source's (UIDs kept). */
static void sync_flags(struct imapc *c, struct fold_ctx *fc)
{
	struct migrate *m = c->m;
	struct store_fetch *f;
	struct store_error err;
	if (m->dry_run ||
	    store_fetch_begin(m->user, fc->f->name, NULL, 0, STORE_FETCH_FLAGS,
			      &f, &err) < 0)
		return;
	struct { uint32_t uid; } *todo = NULL;
	size_t nt = 0;
	const struct store_msg *msg;
	struct buf kw;
	buf_init(&kw, 0);
	while (store_fetch_next(f, &msg, &err) == 1) {
		struct rmsg *r = rmsg_find(fc, msg->uid);
		if (r == NULL || !r->have)
			continue;
		buf_reset(&kw);
		for (size_t i = 0; i < msg->keyword_count; i++) {
			if (i > 0)
				buf_append_char(&kw, ' ');
			buf_append_str(&kw, msg->keywords[i]);
		}
		buf_append_char(&kw, '\0');
		if ((msg->flags & 0x1f) == r->flags &&
		    strcmp(kw.data, r->keywords) == 0)
			continue;
		todo = xrealloc(todo, (nt + 1) * sizeof(*todo));
		todo[nt++].uid = msg->uid;
	}
	store_fetch_end(&f);
	buf_free(&kw);
	for (size_t i = 0; i < nt; i++) {
		struct rmsg *r = rmsg_find(fc, todo[i].uid);
		char *kwcopy = xstrdup(r->keywords);
		const char *kws[64];
		size_t nkw = kw_split(kwcopy, kws, 64);
		struct store_uid_range one = {r->uid, r->uid};
		struct store_flag_change ch = {STORE_FLAGS_REPLACE, r->flags, kws,
					       nkw, 0, NULL};
		if (store_flags_update(m->user, fc->f->name, &one, 1, &ch, NULL,
				       NULL, NULL, NULL, &err) < 0) {
			char label[32];
			snprintf(label, sizeof(label), "UID %u", r->uid);
			migrate_error(m, fc->f->name, label, "flags: %s",
				      err.msg);
		} else {
			m->cur->flags_updated++;
		}
		free(kwcopy);
	}
	free(todo);
}

static int import_folder(struct imapc *c, const struct rfolder *f,
			 uint64_t *max_modseq)
{
	struct migrate *m = c->m;
	migrate_folder_begin(m, f->name);
	struct fold_ctx fc;
	memset(&fc, 0, sizeof(fc));
	fc.f = f;
	struct buf cmd;
	buf_init(&cmd, 0);
	buf_append_str(&cmd, "EXAMINE ");
	quote(&cmd, f->wire);
	buf_append_char(&cmd, '\0');
	int ret = 0;
	char **marks = NULL;
	size_t mark_count = 0;
	if (command(c, examine_cb, &fc, "%s", cmd.data) < 0) {
		migrate_error(m, f->name, NULL, "%s", c->net.error);
		ret = -1;
		goto out;
	}
	/* every change from here on (the messages, the folder) goes above
	 * the source's HIGHESTMODSEQ: a client that cached it, or a
	 * QRESYNC state, never sees Loft's below it */
	if (fc.highestmodseq > *max_modseq) {
		*max_modseq = fc.highestmodseq;
		struct store_error e;
		if (!m->dry_run &&
		    store_modseq_raise(m->user, fc.highestmodseq, &e) < 0)
			migrate_error(m, f->name, NULL, "change counter: %s",
				      e.msg);
	}
	if (migrate_folder_prepare(m, f->name, fc.uidvalidity, fc.uidnext,
				   f->role, f->subscribed, &fc.keep) < 0) {
		ret = -1;
		goto out;
	}
	m->cur->uids_kept = fc.keep;
	char *source = xasprintf("%s/%s/%u", c->url, f->name, fc.uidvalidity);
	fc.source = source;
	struct store_error err;
	if (store_import_marks(m->user, source, &marks, &mark_count, &err) < 0) {
		migrate_error(m, f->name, NULL, "%s", err.msg);
		free(source);
		ret = -1;
		goto out;
	}
	/* A later run (RFC 7162 3.1.4): where the last one ended at the
	 * source (its HIGHESTMODSEQ, a mark of its own) and the highest UID
	 * it imported. With both, only the messages above that UID and the
	 * flags changed since are asked for, plus the bare UID list (what
	 * vanished); else every message's attributes. */
	char *modseq_source = xasprintf("%s#modseq", source);
	uint64_t since = 0;
	uint32_t last_uid = 0;
	if (fc.keep && fc.highestmodseq > 0 && has_cap(c, "CONDSTORE")) {
		char **sm = NULL;
		size_t sn = 0;
		if (store_import_marks(m->user, modseq_source, &sm, &sn,
				       &err) == 0) {
			for (size_t i = 0; i < sn; i++) {
				uint64_t v = strtoull(sm[i], NULL, 10);
				if (v > since)
					since = v;
			}
			store_names_free(sm, sn);
		}
		for (size_t i = 0; i < mark_count; i++) {
			unsigned long u = strtoul(marks[i], NULL, 10);
			if (u > last_uid && u <= UINT32_MAX)
				last_uid = (uint32_t)u;
		}
	}
	int fr;
	bool qresync = false;
	if (since > 0 && last_uid > 0 && c->qresync && fc.uidvalidity > 0) {
		/* RFC 7162 3.2.5: what vanished up to last_uid and the
		 * flags changed since, in one EXAMINE; then the new ones */
		qresync = true;
		m->cur->changedsince = since;
		buf_reset(&cmd);
		buf_append_str(&cmd, "EXAMINE ");
		quote(&cmd, f->wire);
		buf_append_char(&cmd, '\0');
		fc.max_uid = last_uid;
		fr = command(c, qresync_cb, &fc, "%s (QRESYNC (%u %llu 1:%u))",
			     cmd.data, fc.uidvalidity,
			     (unsigned long long)since, last_uid);
		fc.max_uid = 0;
		fc.min_uid = last_uid + 1;
		if (fr == 0)
			fr = command(c, list_msgs_cb, &fc, "UID FETCH %u:* (UID"
				     " FLAGS INTERNALDATE RFC822.SIZE)",
				     last_uid + 1);
		fc.min_uid = 0;
	} else if (since > 0 && last_uid > 0) {
		m->cur->changedsince = since;
		fc.min_uid = last_uid + 1;
		fr = command(c, list_msgs_cb, &fc, "UID FETCH %u:* (UID FLAGS"
			     " INTERNALDATE RFC822.SIZE)", last_uid + 1);
		fc.min_uid = 0;
		fc.max_uid = last_uid;
		if (fr == 0 && since < fc.highestmodseq)
			fr = command(c, list_msgs_cb, &fc, "UID FETCH 1:%u (UID"
				     " FLAGS INTERNALDATE RFC822.SIZE)"
				     " (CHANGEDSINCE %llu)", last_uid,
				     (unsigned long long)since);
		fc.max_uid = 0;
		if (fr == 0)
			fr = command(c, exist_cb, &fc, "UID FETCH 1:%u (UID)",
				     last_uid);
	} else {
		fr = command(c, list_msgs_cb, &fc, "UID FETCH 1:* (UID FLAGS"
			     " INTERNALDATE RFC822.SIZE)");
	}
	if (fr < 0) {
		migrate_error(m, f->name, NULL, "%s", c->net.error);
		free(source);
		free(modseq_source);
		ret = -1;
		goto out;
	}
	if (fc.n > 1)
		qsort(fc.v, fc.n, sizeof(*fc.v), rmsg_cmp);
	if (fc.nexist > 1)
		qsort(fc.exist, fc.nexist, sizeof(*fc.exist), u32_cmp);
	/* What vanished at the source: marks "N" (the message has UID N
	 * here too, when the UIDs were kept) and "N+" (another UID here).
	 * One this folder no longer has is not told again; with
	 * --expunge the others go here too (kept for undelete). */
	size_t other_uid = 0;
	struct store_uid_range *gone = NULL;
	size_t ngone = 0;
	for (size_t i = 0; i < mark_count; i++) {
		char *e;
		unsigned long u = strtoul(marks[i], &e, 10);
		uint32_t uid = (uint32_t)u;
		bool renumbered = e[0] == '+' && e[1] == '\0';
		bool num = *e == '\0' || renumbered;
		struct rmsg *r = num ? rmsg_find(&fc, uid) : NULL;
		bool there = r != NULL ||
			     (qresync && num &&
			      !imap_uid_set_has(fc.vanished, fc.nvanished,
						uid)) ||
			     (!qresync && m->cur->changedsince > 0 && num &&
			      bsearch(&uid, fc.exist, fc.nexist,
				      sizeof(*fc.exist), u32_cmp) != NULL);
		if (r != NULL)
			r->have = true;
		if (there) {
			m->skipped++;
			m->cur->skipped++;
		} else if (num && !renumbered && fc.keep) {
			gone = xrealloc(gone, (ngone + 1) * sizeof(*gone));
			gone[ngone].lo = gone[ngone].hi = uid;
			ngone++;
		} else {
			other_uid++;
		}
	}
	/* of those with their UID here, the ones still here */
	size_t still = 0;
	struct store_uid_range *here = NULL;
	struct store_fetch *sf;
	if (ngone > 0 &&
	    store_fetch_begin(m->user, f->name, gone, ngone, STORE_FETCH_FLAGS,
			      &sf, &err) == 0) {
		here = xcalloc(ngone, sizeof(*here));
		const struct store_msg *sm;
		while (still < ngone && store_fetch_next(sf, &sm, &err) == 1) {
			here[still].lo = here[still].hi = sm->uid;
			still++;
		}
		store_fetch_end(&sf);
	}
	/* told but kept: the next run must hear of them again (QRESYNC
	 * tells only what vanished since the mark) */
	size_t unresolved = other_uid;
	if (still > 0 && m->expunge_vanished && !m->dry_run) {
		uint32_t *done = NULL;
		size_t ndone = 0;
		if (store_expunge(m->user, f->name, here, still, true, &done,
				  &ndone, &err) < 0)
			migrate_error(m, f->name, NULL, "expunging what vanished"
				      " at the source: %s", err.msg);
		m->cur->expunged = ndone;
		unresolved += still - (ndone < still ? ndone : still);
		free(done);
	} else if (still > 0) {
		unresolved += still;
		migrate_error(m, f->name, NULL, "%zu messages imported earlier"
			      " vanished at the source (kept in Loft;"
			      " --expunge removes them)", still);
	}
	if (other_uid > 0)
		migrate_error(m, f->name, NULL, "%zu messages imported earlier"
			      " vanished at the source (kept in Loft: they"
			      " have other UIDs here)", other_uid);
	free(here);
	free(gone);
	if (fc.keep)
		sync_flags(c, &fc);
	/* the bodies Loft lacks, in batches, in UID order: the next
	 * batch's UID FETCH is sent before the last one's reply is read
	 * (pipelined, RFC 9051 5.5), so the source prepares it while
	 * Loft reads and analyses, and a round trip per batch is not
	 * waited for; a second one at most is in flight (memory: what
	 * the socket buffers hold) */
	struct pending cur, next;
	bool have_cur = false;
	for (size_t i = 0; fc.stop != -2 || have_cur;) {
		bool have_next = false;
		for (int s = have_cur ? 1 : 0; s < 2 && fc.stop != -2; s++) {
			buf_reset(&cmd);
			size_t k = 0;
			for (; i < fc.n && k < FETCH_BATCH; i++) {
				if (fc.v[i].have)
					continue;
				buf_printf(&cmd, "%s%u", k ? "," : "",
					   fc.v[i].uid);
				k++;
			}
			if (k == 0)
				break;
			buf_append_char(&cmd, '\0');
			struct pending *p = have_cur ? &next : &cur;
			if (command_send(c, p, "UID FETCH %s (UID BODY.PEEK[])",
					 cmd.data) < 0) {
				migrate_error(m, f->name, NULL, "%s",
					      c->net.error);
				ret = -1;
				break;
			}
			if (have_cur)
				have_next = true;
			have_cur = true;
		}
		if (!have_cur || ret < 0)
			break;
		if (command_wait(c, &cur, have_next ? &next : NULL, body_cb,
				 &fc) < 0) {
			migrate_error(m, f->name, NULL, "%s", c->net.error);
			ret = -1;
			/* what the pipelined one brings is still taken;
			 * its failure is the same one */
			if (have_next)
				(void)command_wait(c, &next, NULL, body_cb,
						   &fc);
			break;
		}
		if (!have_next)
			break;
		cur = next;
		if (fc.stop == -2) {
			/* over quota: the one in flight is read and left */
			(void)command_wait(c, &cur, NULL, body_cb, &fc);
			break;
		}
	}
	/* a message not imported is a failure of its folder (after a
	 * lost or refused FETCH, the error above says why) */
	for (size_t i = 0; i < fc.n && fc.stop != -2; i++) {
		if (fc.v[i].have)
			continue;
		m->failed++;
		m->cur->failed++;
		if (ret == 0) {
			char label[32];
			snprintf(label, sizeof(label), "UID %u", fc.v[i].uid);
			migrate_error(m, f->name, label, "the server sent no"
				      " body (expunged meanwhile?)");
		}
	}
	if (migrate_msg_flush(m) == -2)
		fc.stop = -2;
	if (ret == 0 && fc.stop != -2)
		migrate_folder_done(m, f->name, fc.uidvalidity, fc.uidnext,
				    fc.keep);
	/* every change up to the EXAMINE's HIGHESTMODSEQ is in Loft now:
	 * the next run asks only for what came after */
	bool whole = ret == 0 && fc.stop != -2 && m->cur->failed == 0 &&
		     unresolved == 0;
	if (whole && !m->dry_run && fc.keep && fc.highestmodseq > 0 &&
	    has_cap(c, "CONDSTORE")) {
		char v[24];
		snprintf(v, sizeof(v), "%llu",
			 (unsigned long long)fc.highestmodseq);
		if (store_import_mark_add(m->user, modseq_source, v, &err) < 0)
			migrate_error(m, f->name, NULL, "%s", err.msg);
	}
	if (fc.stop == -2)
		ret = -2;
	free(source);
	free(modseq_source);
out:
	store_names_free(marks, mark_count);
	for (size_t i = 0; i < fc.n; i++)
		free(fc.v[i].keywords);
	free(fc.v);
	free(fc.exist);
	free(fc.vanished);
	buf_free(&cmd);
	migrate_folder_end(m);
	return ret;
}

static int import_imap(struct migrate *m, const struct migrate_url *u)
{
	struct imapc c;
	memset(&c, 0, sizeof(c));
	c.m = m;
	c.r = xcalloc(1, sizeof(*c.r));
	buf_init(&c.r->strings, 0);
	buf_init(&c.resp, 0);
	snprintf(c.url, sizeof(c.url), "imap:%s@%s:%s", u->user, u->host,
		 u->port);
	int ret = 0;
	struct list_ctx l = {0};
	if (mnet_connect(&c.net, u->host, u->port, u->tls) < 0 ||
	    imap_login(&c, u) < 0) {
		migrate_error(m, NULL, NULL, "%s", c.net.error);
		ret = 2;
		goto out;
	}
	int r;
	if (has_cap(&c, "LIST-EXTENDED") && has_cap(&c, "SPECIAL-USE"))
		r = command(&c, list_cb, &l, "LIST \"\" \"*\" RETURN"
			    " (SUBSCRIBED SPECIAL-USE)");
	else
		r = command(&c, list_cb, &l, "LIST \"\" \"*\"");
	if (r == 0 && !(has_cap(&c, "LIST-EXTENDED") &&
			has_cap(&c, "SPECIAL-USE"))) {
		l.lsub = true;
		r = command(&c, list_cb, &l, "LSUB \"\" \"*\"");
	}
	if (r < 0) {
		migrate_error(m, NULL, NULL, "%s", c.net.error);
		ret = 2;
		goto out;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), rfolder_cmp);
	uint64_t max_modseq = 0;
	bool matched = false;
	for (size_t i = 0; i < l.n; i++) {
		if (m->folder != NULL && strcmp(m->folder, l.v[i].name) != 0)
			continue;
		matched = true;
		if (import_folder(&c, &l.v[i], &max_modseq) == -2)
			break;
		if (c.net.fd < 0)
			break;
	}
	if (m->folder != NULL && !matched)
		migrate_error(m, m->folder, NULL, "no such folder at the source");
	/* a client that cached the source's HIGHESTMODSEQ misses nothing */
	struct store_error err;
	if (!m->dry_run && max_modseq > 0 &&
	    store_modseq_raise(m->user, max_modseq + 1, &err) < 0)
		migrate_error(m, NULL, NULL, "change counter: %s", err.msg);
	command(&c, NULL, NULL, "LOGOUT");
out:
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i].wire);
		free(l.v[i].name);
	}
	free(l.v);
	mnet_close(&c.net);
	buf_free(&c.resp);
	buf_free(&c.r->strings);
	free(c.r);
	return ret;
}

/* ---- POP3 --------------------------------------------------------- */

static int pop3_cmd(struct mnet *n, struct buf *line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pop3_cmd(struct mnet *n, struct buf *line, const char *fmt, ...)
{
	if (fmt != NULL) {
		struct buf b;
		buf_init(&b, 0);
		va_list ap;
		va_start(ap, fmt);
		buf_vprintf(&b, fmt, ap);
		va_end(ap);
		buf_append_str(&b, "\r\n");
		int r = mnet_write(n, b.data, b.len);
		buf_free(&b);
		if (r < 0)
			return -1;
	}
	buf_reset(line);
	if (mnet_read_line(n, line, 4096) < 0)
		return -1;
	if (line->len < 3 || strncmp(line->data, "+OK", 3) != 0) {
		snprintf(n->error, sizeof(n->error), "%s: %.*s", n->host,
			 (int)strcspn(line->data, "\r\n"), line->data);
		return -1;
	}
	return 0;
}

/* A multi-line answer, dot-unstuffed, into out. */
static int pop3_multi(struct mnet *n, struct buf *out)
{
	struct buf line;
	buf_init(&line, 0);
	for (;;) {
		buf_reset(&line);
		if (mnet_read_line(n, &line, LINE_MAX_BYTES) < 0) {
			buf_free(&line);
			return -1;
		}
		if (line.len >= 2 && line.data[0] == '.' &&
		    (line.data[1] == '\r' || line.data[1] == '\n'))
			break;
		const char *p = line.data;
		size_t len = line.len;
		if (p[0] == '.') {
			p++;
			len--;
		}
		buf_append(out, p, len);
		if (out->len > LITERAL_MAX) {
			snprintf(n->error, sizeof(n->error), "%s: an answer"
				 " over 1 GiB: refused", n->host);
			buf_free(&line);
			return -1;
		}
	}
	buf_free(&line);
	return 0;
}

static int import_pop3(struct migrate *m, const struct migrate_url *u)
{
	struct mnet n;
	struct buf line, data;
	buf_init(&line, 0);
	buf_init(&data, 0);
	char **marks = NULL;
	size_t mark_count = 0;
	int ret = 0;
	char *source = xasprintf("pop3:%s@%s:%s", u->user, u->host, u->port);
	migrate_folder_begin(m, "INBOX");
	if (mnet_connect(&n, u->host, u->port, u->tls) < 0 ||
	    pop3_cmd(&n, &line, NULL) < 0)
		goto neterr;
	if (!n.tls) {
		bool stls = false;
		if (pop3_cmd(&n, &line, "CAPA") == 0) {
			buf_reset(&data);
			if (pop3_multi(&n, &data) < 0)
				goto neterr;
			buf_append_char(&data, '\0');
			stls = strstr(data.data, "STLS") != NULL;
		}
		if (stls) {
			if (pop3_cmd(&n, &line, "STLS") < 0 ||
			    mnet_starttls(&n) < 0)
				goto neterr;
		} else if (!n.loopback) {
			snprintf(n.error, sizeof(n.error), "%s offers no STLS:"
				 " the password goes in plain text only to a"
				 " loopback address (use pop3s://)", n.host);
			goto neterr;
		}
	}
	if (m->authzid != NULL) {
		struct buf plain;
		buf_init(&plain, 0);
		buf_append_str(&plain, m->authzid);
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, u->user);
		buf_append_char(&plain, '\0');
		buf_append_str(&plain, m->password);
		char *b64 = base64_encode(plain.data, plain.len);
		buf_free(&plain);
		int r = pop3_cmd(&n, &line, "AUTH PLAIN %s", b64);
		free(b64);
		if (r < 0)
			goto neterr;
	} else if (pop3_cmd(&n, &line, "USER %s", u->user) < 0 ||
		   pop3_cmd(&n, &line, "PASS %s", m->password) < 0) {
		goto neterr;
	}
	buf_reset(&data);
	if (pop3_cmd(&n, &line, "UIDL") < 0 || pop3_multi(&n, &data) < 0)
		goto neterr;
	buf_append_char(&data, '\0');
	bool keep;
	if (migrate_folder_prepare(m, "INBOX", 0, 0, 0, false, &keep) < 0) {
		ret = 1;
		goto out;
	}
	struct store_error err;
	if (store_import_marks(m->user, source, &marks, &mark_count, &err) < 0) {
		migrate_error(m, "INBOX", NULL, "%s", err.msg);
		ret = 1;
		goto out;
	}
	char *list = xstrdup(data.data);
	for (char *save = NULL, *l = strtok_r(list, "\r\n", &save);
	     l != NULL; l = strtok_r(NULL, "\r\n", &save)) {
		unsigned num;
		char uidl[71];
		if (!pop3_uidl_line(l, strlen(l), &num, uidl)) {
			migrate_error(m, "INBOX", NULL, "UIDL line \"%.80s\""
				      " is not \"n uidl\": that message is"
				      " not imported", l);
			m->failed++;
			continue;
		}
		bool have = false;
		for (size_t i = 0; i < mark_count && !have; i++)
			have = strcmp(marks[i], uidl) == 0;
		if (have) {
			m->skipped++;
			m->cur->skipped++;
			continue;
		}
		char label[100];
		snprintf(label, sizeof(label), "message %u (UIDL %s)", num, uidl);
		buf_reset(&data);
		if (pop3_cmd(&n, &line, "RETR %u", num) < 0 ||
		    pop3_multi(&n, &data) < 0) {
			migrate_error(m, "INBOX", label, "%s", n.error);
			m->failed++;
			m->cur->failed++;
			if (n.fd < 0)
				break;
			continue;
		}
		if (m->dry_run) {
			migrate_count(m, data.len, true);
			continue;
		}
		struct store_body *b = NULL;
		if (store_body_create(m->store, &b, &err) < 0 ||
		    store_body_write(b, data.data, data.len, &err) < 0) {
			migrate_error(m, "INBOX", label, "%s", err.msg);
			m->failed++;
			m->cur->failed++;
			store_body_unref(&b);
			continue;
		}
		struct migrate_msg in = {
			.folder = "INBOX",
			.label = label,
			.pop3_uidl = uidl,
			.mark_source = source,
			.mark_id = uidl,
			.size = data.len,
		};
		if (migrate_msg_commit(m, &b, &in, false) == -2)
			break;
	}
	free(list);
	pop3_cmd(&n, &line, "QUIT");
	goto out;
neterr:
	migrate_error(m, "INBOX", NULL, "%s", n.error);
	ret = 2;
out:
	mnet_close(&n);
	migrate_folder_end(m);
	store_names_free(marks, mark_count);
	buf_free(&line);
	buf_free(&data);
	free(source);
	return ret;
}

int migrate_import_remote(struct migrate *m, const char *url)
{
	struct migrate_url u;
	if (migrate_url_parse(url, &u) < 0) {
		migrate_error(m, NULL, url, "not imap[s]://USER@HOST[:PORT] or"
			      " pop3[s]://USER@HOST[:PORT] (USER"
			      " percent-encoded: %%40 for @)");
		return 2;
	}
	if (m->password == NULL) {
		migrate_error(m, NULL, url, "no password (one line on standard"
			      " input, or --password-file FILE)");
		return 2;
	}
	return u.imap ? import_imap(m, &u) : import_pop3(m, &u);
}
