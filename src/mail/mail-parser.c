/*
 * The MIME structure parser: one pass over the message, line by line,
 * building the part tree (RFC 2045/2046) with the byte ranges, line counts
 * and Content-* fields of every part. It follows Dovecot's reading of
 * broken mail, since clients are tuned to it:
 *  - a boundary line is "--" + boundary as a prefix of the line (RFC 2046
 *    5.1.1 allows only trailing whitespace; Dovecot and most MUAs accept
 *    more); the longest matching open boundary wins, so an outer boundary
 *    closes the inner parts too;
 *  - the [CR]LF before a boundary line belongs to the boundary;
 *  - Content-* fields count only when the part is MIME: a MIME-Version
 *    field, a Content-Type field, or a part of a multipart;
 *  - no (usable) Content-Type: text/plain, or message/rfc822 inside a
 *    multipart/digest (RFC 2046 5.1.5);
 *  - a multipart without boundary or past the nesting/part limits is a
 *    leaf, its body opaque text.
 * Memory is O(parts): nothing is copied from the message.
 */
#include "mail-private.h"

#include <string.h>
#include <strings.h>

struct boundary {
	uint32_t part;
	char *str;
	size_t len;
};

struct pstate {
	struct mparse *mp;
	const char *data;
	size_t len;
	size_t pos;               /* current line start */
	uint64_t lf_before;       /* LFs before pos */
	uint64_t bare_before;     /* bare LFs before pos */
	struct boundary *bnd;
	size_t bnd_count, bnd_cap;
	uint32_t cur;             /* the part whose body we are in */
	bool fresh;               /* pos is just after a boundary line */
};

static uint32_t part_new(struct pstate *st, uint32_t parent, size_t off)
{
	struct mparse *mp = st->mp;
	if (mp->count == mp->cap) {
		mp->cap = mp->cap ? mp->cap * 2 : 8;
		mp->parts = xrealloc(mp->parts, mp->cap * sizeof(*mp->parts));
	}
	uint32_t idx = mp->count++;
	struct mpart *p = &mp->parts[idx];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->first_child = p->last_child = p->next = MAIL_NONE;
	p->hdr_off = off;
	if (parent != MAIL_NONE) {
		struct mpart *pp = &mp->parts[parent];
		p->depth = pp->depth + 1;
		if (pp->last_child == MAIL_NONE)
			pp->first_child = idx;
		else
			mp->parts[pp->last_child].next = idx;
		pp->last_child = idx;
		pp->child_count++;
	}
	return idx;
}

/* Advances past the line at st->pos, counting its line end. Returns the
 * offset just after the line. */
static size_t next_line(struct pstate *st)
{
	const char *p = st->data + st->pos;
	const char *lf = memchr(p, '\n', st->len - st->pos);
	if (lf == NULL) {
		st->pos = st->len;
		return st->pos;
	}
	st->lf_before++;
	if (lf == st->data || lf[-1] != '\r')
		st->bare_before++;
	st->pos = (size_t)(lf - st->data) + 1;
	return st->pos;
}

/* Is the line at pos a boundary line of an open multipart? Returns its
 * index in the stack or -1; *close_r tells "--boundary--". */
static long boundary_at(const struct pstate *st, size_t pos, bool *close_r)
{
	if (st->bnd_count == 0 || st->len - pos < 2 || st->data[pos] != '-' ||
	    st->data[pos + 1] != '-')
		return -1;
	const char *s = st->data + pos + 2;
	size_t avail = st->len - pos - 2;
	long best = -1;
	for (size_t i = st->bnd_count; i-- > 0;) {
		const struct boundary *b = &st->bnd[i];
		if (b->len <= avail && memcmp(s, b->str, b->len) == 0 &&
		    (best < 0 || st->bnd[best].len < b->len))
			best = (long)i;
	}
	if (best >= 0) {
		size_t bl = st->bnd[best].len;
		*close_r = avail >= bl + 2 && s[bl] == '-' && s[bl + 1] == '-';
	}
	return best;
}

/* RFC 2045 5.1 token characters (8-bit accepted, as Dovecot does). */
static bool ct_token_char(char c)
{
	unsigned char u = (unsigned char)c;
	if (u <= 0x20 || u == 0x7F)
		return false;
	switch (c) {
	case '(': case ')': case '<': case '>': case '@': case ',': case ';':
	case ':': case '\\': case '"': case '/': case '[': case ']': case '?':
	case '=':
		return false;
	default:
		return true;
	}
}

/* Skips whitespace and comments; returns the new position, or NULL
 * when a comment does not end. */
static const char *ct_skip(const char *s, const char *e)
{
	while (s < e) {
		if (mail_is_lwsp(*s)) {
			s++;
		} else if (*s == '(') {
			int depth = 0;
			while (s < e) {
				char c = *s++;
				if (c == '\\' && s < e)
					s++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
			if (depth > 0)
				return NULL;   /* unterminated comment */
		} else {
			break;
		}
	}
	return s;
}

bool mpart_ctype(const struct mpart *p, struct slice *type_r,
		 struct slice *subtype_r, bool *valid_r)
{
	*type_r = *subtype_r = slice_make("", 0);
	*valid_r = false;
	if (p->ctype.ptr == NULL || !(p->flags & MP_IS_MIME))
		return false;
	/* Dovecot's reading of a broken value, so BODYSTRUCTURE agrees:
	 * "text" alone is type "text" with an empty subtype; anything but
	 * "/" after the type makes both empty; parameters are read only
	 * when type "/" subtype parsed. */
	const char *s = p->ctype.ptr, *e = s + p->ctype.len;
	if ((s = ct_skip(s, e)) == NULL)
		return true;
	const char *t = s;
	while (s < e && ct_token_char(*s))
		s++;
	if (s == t)
		return true;
	struct slice type = slice_make(t, (size_t)(s - t));
	if ((s = ct_skip(s, e)) == NULL)
		return true;
	if (s >= e) {
		*type_r = type;
		return true;
	}
	if (*s != '/' || (s = ct_skip(s + 1, e)) == NULL)
		return true;
	t = s;
	while (s < e && ct_token_char(*s))
		s++;
	if (s == t)
		return true;   /* "type/" alone: both empty */
	struct slice sub = slice_make(t, (size_t)(s - t));
	/* after the subtype: the end, or ";" and parameters */
	if ((s = ct_skip(s, e)) == NULL || (s < e && *s != ';'))
		return true;
	*type_r = type;
	*subtype_r = sub;
	*valid_r = true;
	return true;
}

static bool cte_token(struct slice v, struct slice *cte_r)
{
	*cte_r = slice_make("", 0);
	if (v.ptr == NULL)
		return false;
	/* one token, nothing else (Dovecot ignores anything more) */
	const char *s = v.ptr, *e = s + v.len;
	if ((s = ct_skip(s, e)) == NULL)
		return false;   /* an unterminated comment */
	const char *t = s;
	while (s < e && ct_token_char(*s))
		s++;
	struct slice tok = slice_make(t, (size_t)(s - t));
	if (tok.len == 0 || ct_skip(s, e) != e)
		return false;
	*cte_r = tok;
	return true;
}

bool mpart_cte(const struct mpart *p, struct slice *cte_r)
{
	return cte_token(p->cte, cte_r);
}

struct slice mpart_binary_cte(const struct mpart *p)
{
	struct slice tok;
	if (p->cte_last.ptr == NULL)
		return slice_make("", 0);
	if (!cte_token(p->cte_last, &tok))
		return slice_make("x-invalid", 9);
	return tok;
}

bool mpart_content_type(const struct mparse *mp, const struct mpart *p,
			struct slice *type_r, struct slice *subtype_r)
{
	bool valid;
	(void)mp;
	return mpart_ctype(p, type_r, subtype_r, &valid);
}

static void record_field(struct mpart *p, struct slice name, struct slice v)
{
	if (mail_slice_eq_ci(name, "MIME-Version")) {
		p->flags |= MP_IS_MIME;
		return;
	}
	if (name.len < 8 || strncasecmp(name.ptr, "Content-", 8) != 0)
		return;
	struct slice n = slice_make(name.ptr + 8, name.len - 8);
	struct slice *dst = NULL;
	if (mail_slice_eq_ci(n, "Type")) {
		p->flags |= MP_IS_MIME;
		dst = &p->ctype;
	} else if (mail_slice_eq_ci(n, "Transfer-Encoding")) {
		/* BODYSTRUCTURE shows the first one that is a single token
		 * (Dovecot skips broken ones); BINARY goes by the last */
		struct slice tok;
		p->cte_last = v;
		if (p->cte.ptr == NULL && cte_token(v, &tok))
			p->cte = v;
		return;
	} else if (mail_slice_eq_ci(n, "ID")) {
		dst = &p->cid;
	} else if (mail_slice_eq_ci(n, "Description")) {
		dst = &p->cdesc;
	} else if (mail_slice_eq_ci(n, "MD5")) {
		dst = &p->cmd5;
	} else if (mail_slice_eq_ci(n, "Language")) {
		dst = &p->clang;
	} else if (mail_slice_eq_ci(n, "Location")) {
		dst = &p->cloc;
	} else if (mail_slice_eq_ci(n, "Disposition")) {
		/* Dovecot replaces a disposition that had no parameters */
		if (p->cdisp.ptr == NULL || !p->cdisp_params_seen) {
			struct buf value;
			struct mail_param *list;
			size_t count;
			buf_init(&value, 0);
			mail_params_raw(v.ptr, v.len, &value, &list, &count);
			p->cdisp = v;
			p->cdisp_params_seen = count > 0;
			for (size_t i = 0; i < count; i++) {
				free(list[i].name);
				free(list[i].value);
			}
			free(list);
			buf_free(&value);
		}
		return;
	}
	if (dst != NULL && dst->ptr == NULL)
		*dst = v;
}

enum hdr_end {
	HDR_EOF,     /* the message ended inside the header */
	HDR_BLANK,   /* the blank line ended it */
	HDR_CUT,     /* a boundary line cut it short: the body is empty */
};

/* Parses the header of part idx starting at st->pos. */
static enum hdr_end parse_header(struct pstate *st, uint32_t idx)
{
	struct mpart *p = &st->mp->parts[idx];
	size_t start = st->pos;
	uint64_t lf0 = st->lf_before, bare0 = st->bare_before;
	size_t field_start = (size_t)-1;
	size_t fields = 0;
	bool cut = false, blank = false;
	for (;;) {
		size_t ls = st->pos;
		if (ls >= st->len)
			break;
		bool close;
		if (boundary_at(st, ls, &close) >= 0) {
			cut = true;
			break;
		}
		char c = st->data[ls];
		bool cont = (c == ' ' || c == '\t');
		if (!cont && field_start != (size_t)-1) {
			/* the previous field is complete */
			if (fields++ < st->mp->limits.max_header_fields) {
				struct mail_header_iter it;
				struct slice n, v;
				mail_header_iter_init(&it, st->data + field_start,
						      ls - field_start);
				if (mail_header_iter_next(&it, &n, &v) > 0)
					record_field(p, n, v);
			}
			field_start = (size_t)-1;
		}
		if (c == '\n' || (c == '\r' && ls + 1 < st->len &&
				  st->data[ls + 1] == '\n')) {
			next_line(st);   /* the blank line ends the header */
			blank = true;
			break;
		}
		if (!cont)
			field_start = ls;
		next_line(st);
	}
	size_t hend = st->pos;
	if (field_start != (size_t)-1 &&
	    fields < st->mp->limits.max_header_fields) {
		struct mail_header_iter it;
		struct slice n, v;
		/* a field cut by a boundary or EOF, without its line end */
		mail_header_iter_init(&it, st->data + field_start,
				      hend - field_start);
		if (mail_header_iter_next(&it, &n, &v) > 0)
			record_field(p, n, v);
	}
	uint64_t lf = st->lf_before - lf0, bare = st->bare_before - bare0;
	if (cut && hend > start) {
		/* the [CR]LF before a boundary line belongs to the boundary */
		hend--;
		lf--;
		if (hend > start && st->data[hend - 1] == '\r')
			hend--;
		else
			bare--;
	}
	p->hdr_size = hend - start;
	p->hdr_lines = lf;
	p->hdr_bare_lf = bare;
	p->body_off = hend;
	return cut ? HDR_CUT : blank ? HDR_BLANK : HDR_EOF;
}

/* Extracts the boundary parameter of a multipart Content-Type. */
static char *find_boundary(const struct mpart *p)
{
	struct slice t, st;
	bool valid;
	if (!mpart_ctype(p, &t, &st, &valid) || !valid)
		return NULL;
	struct mail_params params;
	mail_params_parse(p->ctype.ptr, p->ctype.len, &params);
	const char *b = mail_params_get(&params, "boundary");
	char *r = b != NULL ? xstrdup(b) : NULL;
	mail_params_free(&params);
	return r;
}

static void classify(struct pstate *st, uint32_t idx)
{
	struct mparse *mp = st->mp;
	struct mpart *p = &mp->parts[idx];
	struct slice type, sub;
	bool valid;
	p->flags &= ~(unsigned)(MP_MULTIPART | MP_MESSAGE | MP_TEXT | MP_DIGEST);
	if (!(p->flags & MP_IS_MIME)) {
		/* RFC 2045 4: without MIME-Version the Content-* fields of
		 * the message are not MIME fields */
		p->ctype = p->cid = p->cdesc = p->cdisp = (struct slice){0};
		p->cmd5 = p->clang = p->cloc = (struct slice){0};
		/* cte is kept for BINARY, which Dovecot decodes anyway; the
		 * BODYSTRUCTURE writer ignores it for non-MIME parts */
	}
	if (!mpart_ctype(p, &type, &sub, &valid)) {
		uint32_t par = p->parent;
		if (par != MAIL_NONE && (mp->parts[par].flags & MP_DIGEST))
			p->flags |= MP_MESSAGE;
		else
			p->flags |= MP_TEXT;
		return;
	}
	/* a Content-Type that says something else (or nothing usable) is
	 * neither text nor a container */
	if (mail_slice_eq_ci(type, "message") &&
	    (mail_slice_eq_ci(sub, "rfc822") || mail_slice_eq_ci(sub, "global")))
		p->flags |= MP_MESSAGE;
	else if (mail_slice_eq_ci(type, "text"))
		p->flags |= MP_TEXT;
	else if (mail_slice_eq_ci(type, "multipart") && valid) {
		p->flags |= MP_MULTIPART;
		if (mail_slice_eq_ci(sub, "digest"))
			p->flags |= MP_DIGEST;
	}
}

static bool over_limits(const struct pstate *st, const struct mpart *p)
{
	return p->depth >= st->mp->limits.max_depth ||
	       st->mp->count >= st->mp->limits.max_parts;
}

static void push_boundary(struct pstate *st, uint32_t idx, char *b)
{
	if (st->bnd_count == st->bnd_cap) {
		st->bnd_cap = st->bnd_cap ? st->bnd_cap * 2 : 8;
		st->bnd = xrealloc(st->bnd, st->bnd_cap * sizeof(*st->bnd));
	}
	st->bnd[st->bnd_count++] = (struct boundary){idx, b, strlen(b)};
}

static void pop_boundaries(struct pstate *st, size_t keep)
{
	while (st->bnd_count > keep)
		free(st->bnd[--st->bnd_count].str);
}

/* Closes part idx and its ancestors up to (not including) stop at offset
 * end, with the LF counts as of end. */
static void close_parts(struct pstate *st, uint32_t idx, uint32_t stop,
			size_t end, uint64_t lf, uint64_t bare)
{
	struct mparse *mp = st->mp;
	while (idx != stop && idx != MAIL_NONE) {
		struct mpart *p = &mp->parts[idx];
		p->body_end = end;
		/* lines of the body = LFs in [body_off, end); the counts at
		 * body_off are kept in body_lines/bare temporarily */
		p->body_lines = lf - p->body_lines;
		p->body_bare_lf = bare - p->body_bare_lf;
		idx = p->parent;
	}
}

/* The header of part idx ended with its blank line and a boundary line
 * of an enclosing multipart follows at once: as Dovecot has it, the blank
 * line's line end is then the boundary's, and the body is empty. */
static void cut_blank_line(struct pstate *st, struct mpart *p)
{
	size_t nl = (st->pos >= 2 && st->data[st->pos - 2] == '\r') ? 2 : 1;
	p->hdr_size -= nl;
	p->body_off -= nl;
	p->hdr_lines--;
	if (nl == 1)
		p->hdr_bare_lf--;
}

/* Starts a part at st->pos: header, then decides how its body is read. */
static void begin_part(struct pstate *st, uint32_t idx)
{
	struct mparse *mp = st->mp;
	enum hdr_end end = parse_header(st, idx);
	bool cut = end == HDR_CUT;
	st->fresh = false;
	classify(st, idx);
	struct mpart *p = &mp->parts[idx];
	char *own = NULL;
	if ((p->flags & MP_MULTIPART) && !cut) {
		/* without a boundary (or past a limit) it stays a multipart
		 * with no parts, its body opaque text, as in Dovecot */
		own = over_limits(st, p) ? NULL : find_boundary(p);
		if (own != NULL)
			push_boundary(st, idx, own);
		else
			p->flags |= MP_OPAQUE;
	}
	if (end == HDR_BLANK) {
		bool close;
		long bi = boundary_at(st, st->pos, &close);
		if (bi >= 0 && st->bnd[bi].part != idx) {
			cut_blank_line(st, p);
			cut = true;
		}
	}
	/* remember the counts at body start; close_parts turns them into
	 * the body's own */
	p->body_lines = st->lf_before;
	p->body_bare_lf = st->bare_before;
	if (cut) {
		/* body_off.. is empty; pos is at the boundary line, and the
		 * line end before it (counted already) is the boundary's */
		uint64_t nl = (p->body_off < st->pos) ? 1 : 0;
		p->body_lines -= nl;
		if (nl && !(st->pos >= 2 && st->data[st->pos - 2] == '\r'))
			p->body_bare_lf -= 1;
	}
	if (cut)
		p->flags |= MP_CUT;
	st->cur = idx;
	if (p->flags & MP_MULTIPART)
		return;
	if (p->flags & MP_MESSAGE) {
		if (over_limits(st, p)) {
			p->flags &= ~(unsigned)MP_MESSAGE;
			p->flags |= MP_OPAQUE;
			return;
		}
		if (cut) {
			/* the message it holds is empty, there and then */
			size_t at = p->body_off;
			/* part_new may move the array: p is stale after it */
			uint32_t child = part_new(st, idx, at);
			struct mpart *c = &mp->parts[child];
			c->body_off = c->body_end = at;
			c->flags |= MP_TEXT;
			return;
		}
		uint32_t child = part_new(st, idx, st->pos);
		begin_part(st, child);
	}
}

/* At a boundary line (stack index bi) at st->pos: closes the parts it
 * ends and starts the next one (or the epilogue). */
static void at_boundary(struct pstate *st, size_t bi, bool close,
			bool first_line)
{
	struct mparse *mp = st->mp;
	uint32_t owner = st->bnd[bi].part;
	size_t end = st->pos;
	uint64_t lf = st->lf_before, bare = st->bare_before;
	if (!first_line && end > 0) {
		/* the [CR]LF before the boundary line is the boundary's */
		end--;
		lf--;
		if (end > 0 && st->data[end - 1] == '\r')
			end--;
		else
			bare--;
	}
	if (end < st->pos && st->cur != owner &&
	    (mp->parts[st->cur].flags & MP_CUT)) {
		/* a header cut short gives that line end to its parent, which
		 * then ends after it (Dovecot) */
		uint32_t cut = st->cur;
		close_parts(st, cut, mp->parts[cut].parent, end, lf, bare);
		close_parts(st, mp->parts[cut].parent, owner, st->pos,
			    st->lf_before, st->bare_before);
	} else {
		close_parts(st, st->cur, owner, end, lf, bare);
	}
	if (close)
		pop_boundaries(st, bi);
	else
		pop_boundaries(st, bi + 1);
	next_line(st);   /* the rest of the boundary line */
	st->cur = owner;
	st->fresh = true;
	/* after "--b--" the epilogue; after "--b" the next part, even an
	 * empty one at the end, unless the line did not even end */
	if (close || st->data[st->pos - 1] != '\n')
		return;
	if (mp->count >= mp->limits.max_parts) {
		/* the rest of this multipart is opaque text */
		pop_boundaries(st, bi);
		return;
	}
	uint32_t child = part_new(st, owner, st->pos);
	mp->parts[child].flags |= MP_IS_MIME;
	begin_part(st, child);
}

void mail_parse_structure(struct mparse *mp, const char *data, size_t len,
			  const struct mail_limits *limits)
{
	struct pstate st = {0};
	memset(mp, 0, sizeof(*mp));
	mp->data = data;
	mp->len = len;
	if (limits != NULL)
		mp->limits = *limits;
	else
		mail_limits_default(&mp->limits);
	if (mp->limits.max_depth == 0)
		mp->limits.max_depth = 1;
	if (mp->limits.max_parts == 0)
		mp->limits.max_parts = 1;
	st.mp = mp;
	st.data = data;
	st.len = len;
	uint32_t root = part_new(&st, MAIL_NONE, 0);
	begin_part(&st, root);
	/* body lines: a part's body begins at a line start; every later line
	 * start is checked for a boundary */
	while (st.pos < st.len) {
		bool close;
		long bi = boundary_at(&st, st.pos, &close);
		if (bi >= 0) {
			/* on the first line of a body (or right after a
			 * boundary line) there is no line end to take */
			bool first = st.fresh ||
				     st.pos == mp->parts[st.cur].body_off;
			st.fresh = false;
			at_boundary(&st, (size_t)bi, close, first);
			continue;
		}
		st.fresh = false;
		next_line(&st);
	}
	close_parts(&st, st.cur, MAIL_NONE, st.len, st.lf_before,
		    st.bare_before);
	pop_boundaries(&st, 0);
	free(st.bnd);
	for (uint32_t i = 0; i < mp->count; i++) {
		struct mpart *p = &mp->parts[i];
		if (memchr(data + p->hdr_off, '\0', p->body_end - p->hdr_off))
			p->flags |= MP_HAS_NUL;
	}
}

void mail_parse_free(struct mparse *mp)
{
	free(mp->parts);
	mp->parts = NULL;
	mp->count = mp->cap = 0;
}
