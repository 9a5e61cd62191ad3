/*
 * FETCH: attribute parsing and the one-pass writer.
 *
 * Output is gathered per message in a buffer that is handed to the
 * connection once it holds FLUSH_AT bytes, so FETCH 1:* (FLAGS) over a
 * large mailbox costs one store pass and few writes. A section literal
 * larger than INLINE_MAX goes to the connection straight from the mapped
 * blob in pieces (net_conn_write applies back-pressure), so a 50 MB
 * attachment is never copied whole.
 */
#include "imap-fetch.h"

#include "buf.h"
#include "imap-client.h"
#include "imap-parser.h"
#include "imap-search.h"
#include "imap-seqset.h"
#include "log.h"
#include "mail.h"
#include "store.h"
#include "u32.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FLUSH_AT (64 * 1024)
#define INLINE_MAX (16 * 1024)
#define CHUNK (64 * 1024)
#define MAX_ITEMS 256

enum fi_type {
	FI_UID,
	FI_FLAGS,
	FI_INTERNALDATE,
	FI_RFC822_SIZE,
	FI_ENVELOPE,
	FI_BODY,            /* BODY without a section: structure, no ext */
	FI_BODYSTRUCTURE,
	FI_SECTION,         /* BODY[...], BODY.PEEK[...], RFC822(.HEADER/.TEXT) */
	FI_BINARY,          /* BINARY[...], BINARY.PEEK[...] */
	FI_BINARY_SIZE,
	FI_MODSEQ,
	FI_EMAILID,
	FI_THREADID,
	FI_SAVEDATE,
	FI_PREVIEW,         /* RFC 8970, from the cached preview */
};

struct fetch_item {
	enum fi_type type;
	char *name;         /* response name of sections, e.g. "BODY[1.2]" */
	struct mail_section_spec spec;
	bool has_spec;
	bool partial;
	uint64_t origin, octets;
};

struct imap_fetch_plan {
	struct fetch_item items[MAX_ITEMS];
	size_t count;
	unsigned fields;          /* STORE_FETCH_* */
	bool need_blob;
	bool head_only;           /* only the message's header is sent */
	bool set_seen;            /* a non-PEEK body attribute */
	bool has_flags, has_modseq, has_uid;
	uint64_t changedsince;    /* 0: not given */
	bool vanished;
	bool has_partial;         /* RFC 9394 PARTIAL modifier */
	struct imap_partial partial;
};

/* ---- parsing ------------------------------------------------------- */

static struct fetch_item *add_item(struct imap_fetch_plan *plan,
				   enum fi_type type)
{
	for (size_t i = 0; i < plan->count; i++)
		if (plan->items[i].type == type && type != FI_SECTION &&
		    type != FI_BINARY && type != FI_BINARY_SIZE)
			return &plan->items[i];   /* "FLAGS FLAGS" once */
	if (plan->count == MAX_ITEMS)
		return NULL;
	struct fetch_item *it = &plan->items[plan->count++];
	memset(it, 0, sizeof(*it));
	it->type = type;
	switch (type) {
	case FI_UID:
		plan->has_uid = true;
		break;
	case FI_FLAGS:
		plan->has_flags = true;
		plan->fields |= STORE_FETCH_FLAGS;
		break;
	case FI_MODSEQ:
		plan->has_modseq = true;
		plan->fields |= STORE_FETCH_FLAGS;
		break;
	case FI_INTERNALDATE:
	case FI_RFC822_SIZE:
	case FI_SAVEDATE:
		plan->fields |= STORE_FETCH_SIZE;
		break;
	case FI_ENVELOPE:
		plan->fields |= STORE_FETCH_ENVELOPE;
		break;
	case FI_BODY:
	case FI_BODYSTRUCTURE:
		plan->fields |= STORE_FETCH_STRUCTURE;
		break;
	case FI_THREADID:
		plan->fields |= STORE_FETCH_OBJECTID;
		break;
	case FI_PREVIEW:
		plan->fields |= STORE_FETCH_PREVIEW;
		break;
	case FI_SECTION:
	case FI_BINARY:
	case FI_BINARY_SIZE:
		plan->fields |= STORE_FETCH_PARTS | STORE_FETCH_SIZE;
		plan->need_blob = true;
		break;
	default:
		break;
	}
	return it;
}

static bool parse_num64(const char **p, const char *end, uint64_t *v_r)
{
	uint64_t v = 0;
	const char *s = *p;
	while (*p < end && **p >= '0' && **p <= '9') {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(**p - '0'), &v))
			return false;
		(*p)++;
	}
	*v_r = v;
	return *p > s && *p - s <= 20;
}

/* "<origin.octets>" (RFC 9051 9: partial; octets is nz-number64). */
static bool parse_partial(const char *p, const char *end, struct fetch_item *it)
{
	if (p == end)
		return true;
	if (*p++ != '<' || !parse_num64(&p, end, &it->origin) || p == end ||
	    *p++ != '.' || !parse_num64(&p, end, &it->octets) ||
	    it->octets == 0 || p == end || *p++ != '>' || p != end)
		return false;
	it->partial = true;
	return true;
}

/* section-binary: "[" [section-part] "]": part numbers only. */
static bool parse_binary_path(const char *s, size_t len,
			      struct mail_section_spec *spec)
{
	const char *p = s, *end = s + len;
	memset(spec, 0, sizeof(*spec));
	spec->kind = MAIL_SECTION_ALL;
	while (p < end) {
		uint64_t v;
		if (!parse_num64(&p, end, &v) || v == 0 || v > UINT32_MAX ||
		    spec->path_len == MAIL_SECTION_MAX_PATH)
			return false;
		spec->path[spec->path_len++] = (uint32_t)v;
		if (p < end && *p++ != '.')
			return false;
		if (p == end && p[-1] == '.')
			return false;
	}
	return true;
}

/* BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...],
 * BINARY.SIZE[...], each with an optional partial (not .SIZE). */
static int parse_section_item(struct imap_fetch_plan *plan, struct slice a,
			      const char **error_r)
{
	const char *open = memchr(a.ptr, '[', a.len);
	const char *end = a.ptr + a.len;
	struct slice prefix = slice_make(a.ptr, (size_t)(open - a.ptr));
	const char *close = NULL;
	for (const char *q = end; q > open; q--)
		if (q[-1] == ']') {
			close = q - 1;
			break;
		}
	*error_r = "Invalid fetch attribute section";
	if (close == NULL || close <= open)
		return -1;
	const char *text = open + 1;
	size_t text_len = (size_t)(close - text);
	bool binary = false, size = false, peek = false;
	if (slice_eq_ci(prefix, "BODY")) {
	} else if (slice_eq_ci(prefix, "BODY.PEEK")) {
		peek = true;
	} else if (slice_eq_ci(prefix, "BINARY")) {
		binary = true;
	} else if (slice_eq_ci(prefix, "BINARY.PEEK")) {
		binary = peek = true;
	} else if (slice_eq_ci(prefix, "BINARY.SIZE")) {
		binary = size = true;
	} else {
		*error_r = "Unknown fetch attribute";
		return -1;
	}
	struct fetch_item *it = add_item(plan, size ? FI_BINARY_SIZE :
					 binary ? FI_BINARY : FI_SECTION);
	if (it == NULL) {
		*error_r = "Too many fetch attributes";
		return -1;
	}
	it->has_spec = true;
	if (binary) {
		if (!parse_binary_path(text, text_len, &it->spec))
			return -1;
	} else if (text_len == 0) {
		it->spec.kind = MAIL_SECTION_ALL;
	} else if (mail_section_parse(text, text_len, &it->spec) < 0) {
		return -1;
	}
	if (!parse_partial(close + 1, end, it) || (size && it->partial)) {
		*error_r = "Invalid partial in fetch attribute";
		return -1;
	}
	/* the response names the section in upper case, as Dovecot does:
	 * BODY[HEADER.FIELDS (FROM TO)] */
	it->name = xasprintf("%s[%.*s]", size ? "BINARY.SIZE" :
			     binary ? "BINARY" : "BODY", (int)text_len, text);
	for (char *q = it->name; *q != '\0'; q++)
		if (*q >= 'a' && *q <= 'z')
			*q = (char)(*q - 'a' + 'A');
	if (!peek && !size)
		plan->set_seen = true;
	return 0;
}

static int add_rfc822(struct imap_fetch_plan *plan, const char *name,
		      enum mail_section_kind kind, bool seen)
{
	struct fetch_item *it = add_item(plan, FI_SECTION);
	if (it == NULL)
		return -1;
	it->has_spec = true;
	it->spec.kind = kind;
	it->name = xstrdup(name);
	plan->set_seen |= seen;
	return 0;
}

static const struct {
	const char *name;
	enum fi_type type;
} simple_items[] = {
	{"UID", FI_UID},
	{"FLAGS", FI_FLAGS},
	{"INTERNALDATE", FI_INTERNALDATE},
	{"RFC822.SIZE", FI_RFC822_SIZE},
	{"ENVELOPE", FI_ENVELOPE},
	{"BODY", FI_BODY},
	{"BODYSTRUCTURE", FI_BODYSTRUCTURE},
	{"MODSEQ", FI_MODSEQ},
	{"EMAILID", FI_EMAILID},
	{"THREADID", FI_THREADID},
	{"SAVEDATE", FI_SAVEDATE},
	{"PREVIEW", FI_PREVIEW},
};

static int parse_item(struct imap_fetch_plan *plan, const struct imap_arg *a,
		      const char **error_r)
{
	if (a->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid fetch attribute";
		return -1;
	}
	struct slice s = a->str;
	if (memchr(s.ptr, '[', s.len) != NULL)
		return parse_section_item(plan, s, error_r);
	*error_r = "Too many fetch attributes";
	if (slice_eq_ci(s, "RFC822"))
		return add_rfc822(plan, "RFC822", MAIL_SECTION_ALL, true);
	if (slice_eq_ci(s, "RFC822.HEADER"))   /* = BODY.PEEK[HEADER] */
		return add_rfc822(plan, "RFC822.HEADER", MAIL_SECTION_HEADER, false);
	if (slice_eq_ci(s, "RFC822.TEXT"))
		return add_rfc822(plan, "RFC822.TEXT", MAIL_SECTION_TEXT, true);
	for (size_t i = 0; i < sizeof(simple_items) / sizeof(simple_items[0]); i++)
		if (slice_eq_ci(s, simple_items[i].name))
			return add_item(plan, simple_items[i].type) ? 0 : -1;
	*error_r = "Unknown fetch attribute";
	return -1;
}

/* fetch-modifier list (RFC 7162 3.1.4, 3.2.6): CHANGEDSINCE n [VANISHED]. */
static int parse_modifiers(struct imap_fetch_plan *plan,
			   const struct imap_arg *list,
			   const struct imap_fetch_params *params,
			   const char **error_r)
{
	for (; list->type != IMAP_ARG_EOL; list++) {
		if (list->type == IMAP_ARG_ATOM &&
		    slice_eq_ci(list->str, "CHANGEDSINCE") &&
		    list[1].type == IMAP_ARG_ATOM) {
			const char *p = list[1].str.ptr;
			if (!parse_num64(&p, p + list[1].str.len,
					 &plan->changedsince) ||
			    p != list[1].str.ptr + list[1].str.len ||
			    plan->changedsince > INT64_MAX) {
				*error_r = "Invalid CHANGEDSINCE value";
				return -1;
			}
			list++;
		} else if (list->type == IMAP_ARG_ATOM &&
			   slice_eq_ci(list->str, "VANISHED") && !plan->vanished) {
			plan->vanished = true;
		} else if (list->type == IMAP_ARG_ATOM &&
			   slice_eq_ci(list->str, "PARTIAL") && !plan->has_partial) {
			/* RFC 9394 3.3: a page of the messages the set and
			 * CHANGEDSINCE select */
			list++;
			if (list->type != IMAP_ARG_ATOM ||
			    imap_partial_parse(list->str, &plan->partial) < 0) {
				*error_r = "PARTIAL needs a range such as 1:100 or -1:-100";
				return -1;
			}
			plan->has_partial = true;
		} else {
			*error_r = "Unknown FETCH modifier";
			return -1;
		}
	}
	/* RFC 7162 3.2.6: VANISHED needs UID FETCH, QRESYNC and
	 * CHANGEDSINCE. CHANGEDSINCE 0 is allowed (everything changed). */
	if (plan->vanished && (!params->uid || !params->qresync)) {
		*error_r = "VANISHED needs UID FETCH with QRESYNC enabled";
		return -1;
	}
	return 0;
}

/* RFC 8970 3.1: PREVIEW [(LAZY)]. The preview is computed when the
 * message is stored, so LAZY never has to wait: it is accepted and the
 * preview returned all the same. */
static int parse_preview_mods(const struct imap_arg *list, const char **error_r)
{
	if (list->type == IMAP_ARG_EOL) {
		*error_r = "Empty PREVIEW modifier list";
		return -1;
	}
	for (; list->type != IMAP_ARG_EOL; list++) {
		if (!imap_arg_atom_eq(list, "LAZY")) {
			*error_r = "Unknown PREVIEW modifier";
			return -1;
		}
	}
	return 0;
}

static int parse_attrs(struct imap_fetch_plan *plan, const struct imap_arg *a,
		       const char **error_r)
{
	if (a->type == IMAP_ARG_LIST) {
		if (a->list_count == 0) {
			*error_r = "Empty fetch attribute list";
			return -1;
		}
		for (const struct imap_arg *x = a->list; x->type != IMAP_ARG_EOL; x++) {
			if (parse_item(plan, x, error_r) < 0)
				return -1;
			if (imap_arg_atom_eq(x, "PREVIEW") &&
			    x[1].type == IMAP_ARG_LIST) {
				x++;
				if (parse_preview_mods(x->list, error_r) < 0)
					return -1;
			}
		}
		return 0;
	}
	/* macros, RFC 9051 6.4.5 */
	if (a->type == IMAP_ARG_ATOM) {
		bool all = slice_eq_ci(a->str, "ALL"), full = slice_eq_ci(a->str, "FULL");
		if (all || full || slice_eq_ci(a->str, "FAST")) {
			add_item(plan, FI_FLAGS);
			add_item(plan, FI_INTERNALDATE);
			add_item(plan, FI_RFC822_SIZE);
			if (all || full)
				add_item(plan, FI_ENVELOPE);
			if (full)
				add_item(plan, FI_BODY);
			return 0;
		}
	}
	return parse_item(plan, a, error_r);
}

int imap_fetch_parse(const struct imap_arg *attrs,
		     const struct imap_arg *modifiers,
		     const struct imap_fetch_params *params,
		     struct imap_fetch_plan **plan_r, const char **error_r)
{
	struct imap_fetch_plan *plan = xcalloc(1, sizeof(*plan));
	bool changedsince = false;

	if (attrs->type == IMAP_ARG_EOL) {
		*error_r = "Missing fetch attributes";
		goto fail;
	}
	if (parse_attrs(plan, attrs, error_r) < 0)
		goto fail;
	if (modifiers->type == IMAP_ARG_LIST) {
		if (parse_modifiers(plan, modifiers->list, params, error_r) < 0)
			goto fail;
		for (const struct imap_arg *m = modifiers->list;
		     m->type != IMAP_ARG_EOL; m++)
			if (m->type == IMAP_ARG_ATOM &&
			    slice_eq_ci(m->str, "CHANGEDSINCE"))
				changedsince = true;
		if (plan->vanished && !changedsince) {
			*error_r = "VANISHED needs CHANGEDSINCE";
			goto fail;
		}
		modifiers++;
	}
	if (modifiers->type != IMAP_ARG_EOL) {
		*error_r = "Unexpected arguments after FETCH attributes";
		goto fail;
	}
	/* UID FETCH always returns UID (RFC 9051 6.4.9); CHANGEDSINCE
	 * implies MODSEQ (RFC 7162 3.1.4.1). */
	if (params->uid && !plan->has_uid) {
		if (add_item(plan, FI_UID) == NULL)
			goto fail;
		/* first, where clients and Dovecot have it */
		struct fetch_item uid = plan->items[plan->count - 1];
		memmove(&plan->items[1], &plan->items[0],
			(plan->count - 1) * sizeof(plan->items[0]));
		plan->items[0] = uid;
	}
	if (changedsince && !plan->has_modseq &&
	    add_item(plan, FI_MODSEQ) == NULL)
		goto fail;
	if (changedsince)
		plan->fields |= STORE_FETCH_FLAGS;
	/* BODY[HEADER], BODY[HEADER.FIELDS (...)], RFC822.HEADER: the
	 * header alone is read (store_blob_open_head) */
	plan->head_only = plan->need_blob;
	for (size_t i = 0; i < plan->count; i++) {
		const struct fetch_item *it = &plan->items[i];
		if (it->type == FI_BINARY || it->type == FI_BINARY_SIZE ||
		    (it->type == FI_SECTION &&
		     (it->spec.path_len > 0 ||
		      (it->spec.kind != MAIL_SECTION_HEADER &&
		       it->spec.kind != MAIL_SECTION_HEADER_FIELDS &&
		       it->spec.kind != MAIL_SECTION_HEADER_FIELDS_NOT))))
			plan->head_only = false;
	}
	*plan_r = plan;
	return 0;
fail:
	imap_fetch_plan_free(&plan);
	return -1;
}

void imap_fetch_plan_free(struct imap_fetch_plan **plan)
{
	if (*plan == NULL)
		return;
	for (size_t i = 0; i < (*plan)->count; i++) {
		free((*plan)->items[i].name);
		if ((*plan)->items[i].type == FI_SECTION)
			mail_section_spec_free(&(*plan)->items[i].spec);
	}
	free(*plan);
	*plan = NULL;
}

bool imap_fetch_plan_sets_seen(const struct imap_fetch_plan *plan)
{
	return plan->set_seen;
}

bool imap_fetch_plan_condstore(const struct imap_fetch_plan *plan)
{
	return plan->has_modseq || plan->changedsince > 0;
}

/* RFC 9394 3.3: keeps, of the view's messages in ranges (and changed
 * since CHANGEDSINCE), those whose place the PARTIAL range names. */
static int narrow_partial(struct imap_fetch_plan *plan,
			  struct imap_client *c,
			  struct store_uid_range **ranges, size_t *count,
			  struct store_error *err)
{
	struct store_fetch *f;
	const struct store_msg *m;
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0, first, last;
	int ret;
	if (*count == 0)
		return 0;
	if (store_fetch_begin(imap_client_sel_user(c), c->mailbox, *ranges, *count,
			      STORE_FETCH_FLAGS, &f, err) < 0)
		return -1;
	while ((ret = store_fetch_next(f, &m, err)) == 1) {
		if (store_view_seq(c->view, m->uid) == 0 ||
		    (plan->changedsince > 0 && m->modseq <= plan->changedsince))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			uids = xrealloc(uids, cap * sizeof(*uids));
		}
		uids[n++] = m->uid;
	}
	store_fetch_end(&f);
	if (ret < 0) {
		free(uids);
		return -1;
	}
	size_t k = 0;
	free(*ranges);
	*ranges = NULL;
	if (imap_partial_select(&plan->partial, n, &first, &last)) {
		*ranges = xmalloc((last - first + 1) * sizeof(**ranges));
		for (size_t i = first; i <= last; i++) {
			if (k > 0 && (*ranges)[k - 1].hi + 1 == uids[i])
				(*ranges)[k - 1].hi = uids[i];
			else
				(*ranges)[k++] = (struct store_uid_range){uids[i], uids[i]};
		}
	}
	*count = k;
	free(uids);
	return 0;
}

/* ---- the pass ------------------------------------------------------ */

struct fetch_run {
	struct imap_fetch_plan *plan;
	struct imap_client *client;
	struct buf out;
	bool broken;
	/* the current message */
	const struct store_msg *msg;
	uint32_t seq;
	struct store_blob blob;
	bool blob_open;
	const void *parts;           /* m->parts, or a fresh analysis */
	size_t parts_len;
	struct mail_result reparsed;
	bool have_reparsed;
	uint32_t served;             /* messages of the view answered */
	bool gone;                   /* a message's body went meanwhile */
};

static int flush_out(struct fetch_run *r)
{
	if (r->out.len > 0 && !r->broken &&
	    imap_client_write(r->client, r->out.data, r->out.len) < 0)
		r->broken = true;
	buf_reset(&r->out);
	return r->broken ? -1 : 0;
}

/* Appends len bytes of literal data, NULs as 0x80 unless raw. */
static void append_data(struct buf *out, const char *p, size_t len, bool raw)
{
	if (raw || memchr(p, '\0', len) == NULL) {
		buf_append(out, p, len);
		return;
	}
	size_t start = out->len;
	buf_append(out, p, len);
	for (size_t i = start; i < out->len; i++)
		if (out->data[i] == '\0')
			out->data[i] = (char)0x80;
}

/* Writes one literal: inline if small, else from the mapped bytes in
 * pieces, so the output buffer never holds a whole large part. */
static void write_literal(struct fetch_run *r, const char *p, size_t len,
			  bool binary)
{
	bool literal8 = binary && memchr(p, '\0', len) != NULL;
	buf_printf(&r->out, "%s{%zu}\r\n", literal8 ? "~" : "", len);
	if (len <= INLINE_MAX) {
		append_data(&r->out, p, len, binary);
		return;
	}
	for (size_t off = 0; off < len && !r->broken; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;
		if (binary || memchr(p + off, '\0', n) == NULL) {
			if (flush_out(r) < 0)
				break;
			if (imap_client_write(r->client, p + off, n) < 0)
				r->broken = true;
		} else {
			append_data(&r->out, p + off, n, false);
			flush_out(r);
		}
	}
}

static void append_date(struct buf *out, time_t t)
{
	static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May",
					    "Jun", "Jul", "Aug", "Sep", "Oct",
					    "Nov", "Dec"};
	struct tm tm;
	gmtime_r(&t, &tm);
	buf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		   mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		   tm.tm_sec);
}

/* The part map of the current message. When the cached one does not
 * match the blob (it should always), the message is analysed again
 * rather than failing the FETCH. */
static void reparse(struct fetch_run *r)
{
	if (r->have_reparsed)
		return;
	struct mail_analyze_options opt = {.want_text = false};
	log_warn("imap", r->client->sid,
		 "uid %u: cached part map unusable, analysing again",
		 r->msg->uid);
	mail_analyze(r->blob.data, r->blob.len, &opt, &r->reparsed);
	r->have_reparsed = true;
	r->parts = r->reparsed.parts;
	r->parts_len = r->reparsed.parts_len;
}

static int get_section(struct fetch_run *r, const struct fetch_item *it,
		       struct mail_section *sec, bool *unknown_cte)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int ret;
		*unknown_cte = false;
		if (it->type == FI_SECTION)
			ret = mail_section_get(r->blob.data, r->blob.len, r->parts,
					       r->parts_len, &it->spec, sec);
		else
			ret = mail_binary_get(r->blob.data, r->blob.len, r->parts,
					      r->parts_len, it->spec.path,
					      it->spec.path_len, sec,
					      unknown_cte);
		if (ret == 0)
			return 0;
		mail_section_free(sec);
		if (*unknown_cte)
			return -1;
		reparse(r);
	}
	return -1;
}

static enum imap_fetch_status render_body_item(struct fetch_run *r,
					       const struct fetch_item *it)
{
	struct mail_section sec;
	bool unknown_cte;

	memset(&sec, 0, sizeof(sec));
	if (it->type == FI_BINARY_SIZE) {
		uint64_t size = 0;
		int ret = mail_binary_size(r->blob.data, r->blob.len, r->parts,
					   r->parts_len, it->spec.path,
					   it->spec.path_len, &size, &unknown_cte);
		if (ret < 0 && !unknown_cte) {
			reparse(r);
			ret = mail_binary_size(r->blob.data, r->blob.len, r->parts,
					       r->parts_len, it->spec.path,
					       it->spec.path_len, &size,
					       &unknown_cte);
		}
		if (ret < 0) {
			buf_printf(&r->out, "%s NIL", it->name);
			return IMAP_FETCH_OK;
		}
		buf_printf(&r->out, "%s %llu", it->name, (unsigned long long)size);
		return IMAP_FETCH_OK;
	}
	if (get_section(r, it, &sec, &unknown_cte) < 0) {
		/* checked before anything of the message was written
		 * (check_binary), so this is a part map gone bad twice */
		buf_printf(&r->out, "%s NIL", it->name);
		return IMAP_FETCH_OK;
	}
	if (it->partial)
		mail_section_partial(&sec, it->origin, it->octets);
	buf_append_str(&r->out, it->name);
	if (it->partial)
		buf_printf(&r->out, "<%llu>", (unsigned long long)it->origin);
	buf_append_char(&r->out, ' ');
	write_literal(r, sec.ptr != NULL ? sec.ptr : "", sec.len,
		      it->type == FI_BINARY);
	mail_section_free(&sec);
	return IMAP_FETCH_OK;
}

static enum imap_fetch_status render_item(struct fetch_run *r,
					  const struct fetch_item *it)
{
	const struct store_msg *m = r->msg;
	struct buf *out = &r->out;

	switch (it->type) {
	case FI_UID:
		buf_printf(out, "UID %u", m->uid);
		break;
	case FI_FLAGS:
		buf_append_str(out, "FLAGS ");
		imap_append_flags(out, m->flags, m->keywords, m->keyword_count,
				  imap_client_recent(r->client, r->seq));
		break;
	case FI_INTERNALDATE:
		buf_append_str(out, "INTERNALDATE ");
		append_date(out, m->internaldate);
		break;
	case FI_SAVEDATE:
		buf_append_str(out, "SAVEDATE ");
		if (m->savedate != 0)
			append_date(out, m->savedate);
		else
			buf_append_str(out, "NIL");
		break;
	case FI_RFC822_SIZE:
		buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)m->size);
		break;
	case FI_ENVELOPE:
		buf_printf(out, "ENVELOPE %s", m->envelope ? m->envelope : "NIL");
		break;
	case FI_BODY:
		buf_printf(out, "BODY %s", m->body ? m->body : "NIL");
		break;
	case FI_BODYSTRUCTURE:
		buf_printf(out, "BODYSTRUCTURE %s",
			   m->bodystructure ? m->bodystructure : "NIL");
		break;
	case FI_MODSEQ:
		buf_printf(out, "MODSEQ (%llu)", (unsigned long long)m->modseq);
		break;
	case FI_EMAILID:
		buf_printf(out, "EMAILID (%s)", m->emailid);
		break;
	case FI_THREADID:
		if (m->threadid[0] != '\0')
			buf_printf(out, "THREADID (%s)", m->threadid);
		else
			buf_append_str(out, "THREADID NIL");
		break;
	case FI_PREVIEW:
		/* RFC 8970 3.2: the text a user reads first, at most 256
		 * characters (the cache keeps 200); "" for a message with
		 * no text */
		buf_append_str(out, "PREVIEW ");
		imap_append_string(out, m->preview ? m->preview : "",
				   m->preview ? strlen(m->preview) : 0,
				   imap_client_utf8(r->client));
		break;
	case FI_SECTION:
	case FI_BINARY:
	case FI_BINARY_SIZE:
		return render_body_item(r, it);
	}
	return IMAP_FETCH_OK;
}

static void close_message(struct fetch_run *r)
{
	if (r->blob_open)
		store_blob_close(&r->blob);
	r->blob_open = false;
	if (r->have_reparsed)
		mail_result_free(&r->reparsed);
	r->have_reparsed = false;
}

static bool uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* RFC 3516 4.2: an encoding Loft cannot undo fails the command with
 * NO [UNKNOWN-CTE]; found before the message's response begins, so the
 * output never holds half a response. */
static int check_binary(struct fetch_run *r)
{
	for (size_t i = 0; i < r->plan->count; i++) {
		const struct fetch_item *it = &r->plan->items[i];
		uint64_t size;
		bool unknown = false;
		if (it->type != FI_BINARY && it->type != FI_BINARY_SIZE)
			continue;
		if (mail_binary_size(r->blob.data, r->blob.len, r->parts,
				     r->parts_len, it->spec.path,
				     it->spec.path_len, &size, &unknown) < 0 &&
		    !unknown) {
			reparse(r);
			mail_binary_size(r->blob.data, r->blob.len, r->parts,
					 r->parts_len, it->spec.path,
					 it->spec.path_len, &size, &unknown);
		}
		if (unknown)
			return -1;
	}
	return 0;
}

/* One message: "* seq FETCH (...)". add_flags: \Seen was just set by
 * this FETCH and FLAGS was not asked for (RFC 9051 6.4.5: the change is
 * reported in this response). */
static enum imap_fetch_status fetch_message(struct fetch_run *r,
					    bool add_flags,
					    struct store_error *err)
{
	struct imap_fetch_plan *plan = r->plan;
	enum imap_fetch_status st = IMAP_FETCH_OK;

	if (plan->need_blob) {
		struct store_error e;
		struct store_user *u = imap_client_sel_user(r->client);
		int ret = plan->head_only
			? store_blob_open_head(u, r->client->mailbox,
					       r->msg->uid, &r->blob, &e)
			: store_blob_open(u, r->client->mailbox, r->msg->uid,
					  &r->blob, &e);
		struct mail_part_info top;
		if (ret == 0 && plan->head_only &&
		    (!mail_part_lookup(r->msg->parts, r->msg->parts_len,
				       NULL, 0, &top) ||
		     top.header_offset + top.header_size > r->blob.len)) {
			/* the part map's header is not all in what was
			 * read: the whole message */
			store_blob_close(&r->blob);
			ret = store_blob_open(u, r->client->mailbox,
					      r->msg->uid, &r->blob, &e);
		}
		if (ret < 0) {
			if (e.kind == STORE_ERR_NOTFOUND) {
				r->gone = true;   /* expunged meanwhile */
				return IMAP_FETCH_OK;
			}
			if (err != NULL)
				*err = e;
			return IMAP_FETCH_STORE_ERROR;
		}
		r->blob_open = true;
		r->parts = r->msg->parts;
		r->parts_len = r->msg->parts_len;
	}
	if (check_binary(r) < 0) {
		close_message(r);
		return IMAP_FETCH_UNKNOWN_CTE;
	}
	bool shows_flags = plan->has_flags || add_flags;
	/* RFC 9051 7.3.5: a keyword the client has not seen in FLAGS yet
	 * is announced first */
	if (shows_flags)
		imap_client_announce_keywords(r->client, r->msg->keywords,
					      r->msg->keyword_count, &r->out);
	imap_client_fetch_head(r->client, r->seq, r->msg->uid, &r->out);
	for (size_t i = 0; i < plan->count && st == IMAP_FETCH_OK; i++) {
		if (i > 0)
			buf_append_char(&r->out, ' ');
		st = render_item(r, &plan->items[i]);
	}
	if (add_flags && st == IMAP_FETCH_OK) {
		struct fetch_item flags = {.type = FI_FLAGS};
		buf_append_char(&r->out, ' ');
		render_item(r, &flags);
		/* RFC 7162 3.1.4.1: a flag change reported under CONDSTORE
		 * carries the message's new MODSEQ */
		if ((r->client->enabled & IMAP_ENABLED_CONDSTORE) &&
		    !plan->has_modseq) {
			struct fetch_item ms = {.type = FI_MODSEQ};
			buf_append_char(&r->out, ' ');
			render_item(r, &ms);
		}
	}
	buf_append_str(&r->out, ")\r\n");
	if (shows_flags && st == IMAP_FETCH_OK)
		imap_client_told(r->client, r->msg->uid, r->msg->modseq);
	close_message(r);
	if (r->out.len >= FLUSH_AT)
		flush_out(r);
	return r->broken ? IMAP_FETCH_DISCONNECTED : st;
}

/* RFC 7162 3.2.6: UIDs of the client's set expunged since CHANGEDSINCE,
 * before the FETCH responses. */
static int send_vanished(struct fetch_run *r,
			 const struct store_uid_range *ranges, size_t count,
			 struct store_error *err)
{
	uint32_t *uids = NULL;
	size_t n = 0;
	bool complete;
	if (store_expunged_since(imap_client_sel_user(r->client), r->client->mailbox,
				 r->plan->changedsince, ranges, count, &uids,
				 &n, &complete, err) < 0)
		return -1;
	if (n > 0) {
		qsort(uids, n, sizeof(*uids), u32_cmp);
		buf_append_str(&r->out, "* VANISHED (EARLIER) ");
		imap_uids_append_set(&r->out, uids, n);
		buf_append_str(&r->out, "\r\n");
	}
	free(uids);
	return 0;
}

/* RFC 9051 6.4.5: a non-PEEK body fetch sets \Seen (not in a read-only
 * mailbox). Returns the UIDs that changed, sorted. */
static int set_seen(struct fetch_run *r, const struct store_uid_range *ranges,
		    size_t count, uint32_t **changed_r, size_t *changed_count_r,
		    struct store_error *err)
{
	struct store_flag_change change = {
		.mode = STORE_FLAGS_ADD, .flags = STORE_FLAG_SEEN,
	};
	*changed_r = NULL;
	*changed_count_r = 0;
	if (store_flags_update(imap_client_sel_user(r->client), r->client->mailbox,
			       ranges, count, &change, changed_r,
			       changed_count_r, NULL, NULL, err) < 0) {
		/* another account's mailbox without s: the FETCH goes on,
		 * \Seen stays as it is (RFC 4314 4) */
		if (err->kind == STORE_ERR_NOPERM) {
			err->kind = STORE_ERR_NONE;
			err->msg[0] = '\0';
			return 0;
		}
		return -1;
	}
	if (*changed_count_r > 1)
		qsort(*changed_r, *changed_count_r, sizeof(**changed_r), u32_cmp);
	return 0;
}

/* The FETCH did not answer for some messages whose \Seen it set (a
 * damaged body, or it stopped at an error): they go back to unseen, as
 * if this FETCH had not touched them. sent: the UIDs of seen that were
 * answered, sorted. Best effort: an error here leaves \Seen set, and
 * the tagged NO already tells the client the FETCH failed. */
static void unset_seen(struct fetch_run *r, uint32_t *seen, size_t *seen_count,
		       const uint32_t *sent, size_t sent_count)
{
	uint32_t *undo = xmalloc((*seen_count > 0 ? *seen_count : 1) *
				 sizeof(*undo));
	size_t n = 0, kept = 0;
	for (size_t i = 0; i < *seen_count; i++) {
		if (uid_in(sent, sent_count, seen[i]))
			seen[kept++] = seen[i];
		else
			undo[n++] = seen[i];
	}
	*seen_count = kept;
	if (n > 0) {
		struct store_flag_change change = {
			.mode = STORE_FLAGS_REMOVE, .flags = STORE_FLAG_SEEN,
		};
		struct store_error e = {0};
		size_t range_count;
		struct store_uid_range *ranges = store_uid_ranges(undo, n,
								&range_count);
		if (store_flags_update(imap_client_sel_user(r->client),
				       r->client->mailbox, ranges, range_count,
				       &change, NULL, NULL, NULL, NULL, &e) < 0)
			log_warn("imap", r->client->sid, "FETCH: \\Seen stays"
				 " on %zu messages not sent: %s", n, e.msg);
		free(ranges);
	}
	free(undo);
}

/* How many of the view's messages fall in ranges (UIDs, normalized):
 * the ones the session holds and may expect an answer for. */
static uint32_t view_count_in(const struct store_view *view,
			      const struct store_uid_range *ranges,
			      size_t range_count)
{
	uint32_t n = 0;

	for (size_t i = 0; i < range_count; i++) {
		uint32_t lo = store_view_seq_ceil(view, ranges[i].lo);
		uint32_t hi = ranges[i].hi == UINT32_MAX ?
			      store_view_count(view) + 1 :
			      store_view_seq_ceil(view, ranges[i].hi + 1);
		if (hi > lo)
			n += hi - lo;
	}
	return n;
}

enum imap_fetch_status imap_fetch_run(struct imap_fetch_plan *plan,
				      struct imap_client *client,
				      const struct store_uid_range *ranges,
				      size_t range_count,
				      const struct store_uid_range *client_ranges,
				      size_t client_range_count,
				      uint32_t **seen_r, size_t *seen_count_r,
				      struct store_error *err)
{
	struct fetch_run r;
	uint32_t *seen = NULL;
	size_t seen_count = 0;
	enum imap_fetch_status st = IMAP_FETCH_OK;
	struct store_fetch *f = NULL;
	struct store_uid_range *narrowed = NULL;
	const struct store_msg *m;
	/* of seen, the UIDs answered; damaged bodies skipped */
	uint32_t *sent = NULL;
	size_t sent_count = 0;
	unsigned damaged = 0;
	uint32_t first_damaged = 0;
	int ret;

	memset(&r, 0, sizeof(r));
	r.plan = plan;
	r.client = client;
	buf_init(&r.out, 0);

	if (plan->vanished &&
	    send_vanished(&r, client_ranges, client_range_count, err) < 0) {
		st = IMAP_FETCH_STORE_ERROR;
		goto out;
	}
	if (plan->has_partial && range_count > 0) {
		narrowed = xmalloc(range_count * sizeof(*narrowed));
		memcpy(narrowed, ranges, range_count * sizeof(*narrowed));
		if (narrow_partial(plan, client, &narrowed, &range_count, err) < 0) {
			st = IMAP_FETCH_STORE_ERROR;
			goto out;
		}
		ranges = narrowed;
	}
	if (range_count == 0)
		goto out;
	if (plan->set_seen && !client->readonly &&
	    set_seen(&r, ranges, range_count, &seen, &seen_count, err) < 0) {
		st = IMAP_FETCH_STORE_ERROR;
		goto out;
	}
	/* only a FETCH that set \Seen needs to know what it answered */
	if (seen_count > 0)
		sent = xmalloc(seen_count * sizeof(*sent));
	/* CHANGEDSINCE: the store finds the changed messages through its
	 * modseq index (RFC 7162 3.1.4), not by reading every row */
	if (store_fetch_begin_since(imap_client_sel_user(client), client->mailbox,
				    ranges, range_count,
				    plan->fields | STORE_FETCH_FLAGS,
				    plan->changedsince, &f, err) < 0) {
		st = IMAP_FETCH_STORE_ERROR;
		goto out;
	}
	while ((ret = store_fetch_next(f, &m, err)) == 1) {
		uint32_t seq = store_view_seq(client->view, m->uid);
		if (seq == 0)
			continue;   /* not announced to this session yet */
		if (plan->changedsince > 0 && m->modseq <= plan->changedsince)
			continue;
		r.msg = m;
		r.seq = seq;
		bool set_now = uid_in(seen, seen_count, m->uid);
		r.served++;
		st = fetch_message(&r, set_now && !plan->has_flags, err);
		if (st == IMAP_FETCH_STORE_ERROR && err->damaged) {
			/* one message's bytes are damaged: nothing of it
			 * was sent; the others still are (a client that
			 * fetches a range must not be stuck behind it) and
			 * the tagged NO says so */
			if (damaged++ == 0)
				first_damaged = m->uid;
			st = IMAP_FETCH_OK;
			continue;
		}
		if (st != IMAP_FETCH_OK)
			break;
		if (set_now)
			sent[sent_count++] = m->uid;
	}
	if (ret < 0 && st == IMAP_FETCH_OK)
		st = IMAP_FETCH_STORE_ERROR;
	if (st == IMAP_FETCH_OK && damaged > 0) {
		st = IMAP_FETCH_STORE_ERROR;
		err->kind = STORE_ERR_TEMP;
		err->damaged = true;
		if (damaged == 1)
			snprintf(err->msg, sizeof(err->msg), "UID %u is damaged"
				 " and cannot be read; the other messages were"
				 " sent", first_damaged);
		else
			snprintf(err->msg, sizeof(err->msg), "%u messages (the"
				 " first UID %u) are damaged and cannot be read;"
				 " the others were sent", damaged, first_damaged);
	}
	if (st == IMAP_FETCH_OK &&
	    (r.gone || (plan->changedsince == 0 &&
			r.served < view_count_in(client->view, ranges,
						 range_count))))
		st = IMAP_FETCH_EXPUNGED;
out:
	free(narrowed);
	store_fetch_end(&f);
	if (st == IMAP_FETCH_STORE_ERROR && seen_count > 0) {
		if (sent_count > 1)
			qsort(sent, sent_count, sizeof(*sent), u32_cmp);
		unset_seen(&r, seen, &seen_count, sent, sent_count);
	}
	free(sent);
	if (st != IMAP_FETCH_DISCONNECTED && flush_out(&r) < 0)
		st = IMAP_FETCH_DISCONNECTED;
	buf_free(&r.out);
	*seen_r = seen;
	*seen_count_r = seen_count;
	return st;
}
