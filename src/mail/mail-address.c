/*
 * Address lists (RFC 5322 3.4, obsolete syntax 4.4, RFC 6532 UTF-8) into
 * IMAP's flat form: a group is a start marker (mailbox = group name, host
 * NULL), its members, and an end marker (both NULL), as RFC 3501 7.4.2
 * ENVELOPE wants.
 *
 * A recursive-descent parser over the RFC 5322 grammar that recovers from
 * broken input the way Dovecot does, so that ENVELOPE of damaged mail is
 * the same byte for byte: a missing local part or domain becomes
 * MISSING_MAILBOX / MISSING_DOMAIN, an angle address that does not parse
 * gets the domain SYNTAX_ERROR, a bad source route INVALID_ROUTE, a
 * comment stands in for a missing display name, and parsing stops at the
 * first thing that is not a "," between addresses.
 *
 * Parsing functions return 1 (more input follows), 0 (input ended
 * cleanly) or -1 (syntax error).
 */
#include "mail-private.h"

#include <string.h>

struct lexer {
	const char *p, *end;
	struct buf comment;   /* text of the last complete comment */
};

struct parser {
	struct lexer lx;
	struct buf str;
	struct mail_address cur;   /* the address being built */
	struct mail_address *v;
	size_t n, cap;
};

/* RFC 5322 atext, plus 8-bit bytes (RFC 6532). */
static bool is_atext(char c)
{
	unsigned char u = (unsigned char)c;
	if (u >= 0x80)
		return true;
	if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
	    (u >= '0' && u <= '9'))
		return true;
	return u != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool at_end(const struct lexer *lx)
{
	return lx->p >= lx->end;
}

static char peek(const struct lexer *lx)
{
	return at_end(lx) ? '\0' : *lx->p;
}

/* A comment, nested; its text (quoted-pairs unescaped) is kept as the
 * last comment once it closes. */
static int skip_comment(struct lexer *lx)
{
	int depth = 1;
	buf_reset(&lx->comment);
	const char *start = ++lx->p;
	struct buf text;
	buf_init(&text, 0);
	for (; lx->p < lx->end; lx->p++) {
		char c = *lx->p;
		if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0) {
				mail_buf_put(&text, start, (size_t)(lx->p - start));
				mail_buf_put(&lx->comment, text.data, text.len);
				buf_free(&text);
				lx->p++;
				return at_end(lx) ? 0 : 1;
			}
		} else if (c == '\\') {
			mail_buf_put(&text, start, (size_t)(lx->p - start));
			start = lx->p + 1;
			if (++lx->p >= lx->end)
				break;
		}
	}
	buf_free(&text);
	return -1;   /* no closing ')' */
}

/* CFWS: whitespace (line ends included) and comments. */
static int skip_cfws(struct lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->p++;
		} else if (c == '(') {
			if (skip_comment(lx) < 0)
				return -1;
		} else {
			break;
		}
	}
	return at_end(lx) ? 0 : 1;
}

static int parse_atom(struct lexer *lx, struct buf *out)
{
	if (at_end(lx) || !is_atext(*lx->p))
		return -1;
	const char *s = lx->p;
	while (lx->p < lx->end && is_atext(*lx->p))
		lx->p++;
	mail_buf_put(out, s, (size_t)(lx->p - s));
	return skip_cfws(lx);
}

/* dot-atom; whitespace around the dots is allowed (RFC 822). */
static int parse_dot_atom(struct lexer *lx, struct buf *out)
{
	int ret = parse_atom(lx, out);
	while (ret > 0 && *lx->p == '.') {
		lx->p++;
		mail_buf_putc(out, '.');
		if ((ret = skip_cfws(lx)) <= 0)
			return ret;
		const char *s = lx->p;
		while (lx->p < lx->end && is_atext(*lx->p))
			lx->p++;
		mail_buf_put(out, s, (size_t)(lx->p - s));
		ret = skip_cfws(lx);
	}
	return ret;
}

/* quoted-string: folding removed, quoted-pairs unescaped. */
static int parse_quoted(struct lexer *lx, struct buf *out)
{
	const char *s = ++lx->p;
	for (; lx->p < lx->end; lx->p++) {
		char c = *lx->p;
		if (c == '"') {
			mail_buf_put(out, s, (size_t)(lx->p - s));
			lx->p++;
			return skip_cfws(lx);
		}
		if (c == '\n') {
			size_t n = (size_t)(lx->p - s);
			if (n > 0 && s[n - 1] == '\r')
				n--;
			mail_buf_put(out, s, n);
			s = lx->p + 1;
		} else if (c == '\\') {
			if (++lx->p >= lx->end)
				return -1;
			mail_buf_put(out, s, (size_t)(lx->p - 1 - s));
			s = lx->p;
		}
	}
	return -1;   /* no closing quote */
}

/* An atom that may contain dots (obs-phrase), without skipping the
 * whitespace inside it. */
static int parse_atom_or_dot(struct lexer *lx, struct buf *out)
{
	const char *s = lx->p;
	while (lx->p < lx->end && (is_atext(*lx->p) || *lx->p == '.'))
		lx->p++;
	mail_buf_put(out, s, (size_t)(lx->p - s));
	return skip_cfws(lx);
}

/* phrase = 1*word / obs-phrase; words joined by one space. */
static int parse_phrase(struct lexer *lx, struct buf *out)
{
	if (at_end(lx))
		return 0;
	if (*lx->p == '.')
		return -1;
	for (;;) {
		int ret = *lx->p == '"' ? parse_quoted(lx, out)
					: parse_atom_or_dot(lx, out);
		if (ret <= 0)
			return ret;
		char c = *lx->p;
		if (!is_atext(c) && c != '"' && c != '.')
			break;
		mail_buf_putc(out, ' ');
	}
	return skip_cfws(lx);
}

static int parse_domain_literal(struct lexer *lx, struct buf *out)
{
	const char *s = lx->p;
	for (; lx->p < lx->end; lx->p++) {
		if (*lx->p == '\\') {
			if (++lx->p >= lx->end)
				break;
		} else if (*lx->p == ']') {
			lx->p++;
			mail_buf_put(out, s, (size_t)(lx->p - s));
			return skip_cfws(lx);
		}
	}
	return -1;
}

/* "@" domain, into out (appending). */
static int parse_domain_into(struct lexer *lx, struct buf *out)
{
	lx->p++;   /* the '@' */
	if (skip_cfws(lx) <= 0)
		return -1;
	if (*lx->p == '[')
		return parse_domain_literal(lx, out);
	size_t before = out->len;
	int ret = parse_dot_atom(lx, out);
	/* "example." is no domain (Dovecot: MISSING_DOMAIN), though a
	 * local part may end in a dot */
	if (ret >= 0 && out->len > before && out->data[out->len - 1] == '.')
		return -1;
	return ret;
}

static void take_str(struct parser *ps, char **dst)
{
	free(*dst);
	*dst = xstrndup(ps->str.data ? ps->str.data : "", ps->str.len);
}

static int parse_local_part(struct parser *ps)
{
	int ret;
	buf_reset(&ps->str);
	if (*ps->lx.p == '"')
		ret = parse_quoted(&ps->lx, &ps->str);
	else
		ret = parse_dot_atom(&ps->lx, &ps->str);
	if (ret < 0)
		return -1;
	take_str(ps, &ps->cur.mailbox);
	return ret;
}

static int parse_domain(struct parser *ps)
{
	buf_reset(&ps->str);
	int ret = parse_domain_into(&ps->lx, &ps->str);
	if (ret < 0)
		return -1;
	take_str(ps, &ps->cur.host);
	return ret;
}

/* obs-route: "@" domain *("," ["@" domain]) before ":" */
static int parse_route(struct parser *ps)
{
	buf_reset(&ps->str);
	for (;;) {
		if (at_end(&ps->lx))
			return 0;
		if (*ps->lx.p != '@')
			break;
		if (ps->str.len > 0)
			mail_buf_putc(&ps->str, ',');
		mail_buf_putc(&ps->str, '@');
		int ret = parse_domain_into(&ps->lx, &ps->str);
		if (ret <= 0)
			return ret;
		while (skip_cfws(&ps->lx) > 0 && *ps->lx.p == ',')
			ps->lx.p++;
	}
	take_str(ps, &ps->cur.route);
	return 1;
}

static void set_literal(char **dst, const char *s)
{
	free(*dst);
	*dst = xstrdup(s);
}

/* "<" [route ":"] [local-part ["@" domain]] ">" */
static int parse_angle_addr(struct parser *ps)
{
	ps->lx.p++;   /* the '<' */
	if (skip_cfws(&ps->lx) <= 0)
		return -1;
	if (*ps->lx.p == '@') {
		if (parse_route(ps) > 0 && peek(&ps->lx) == ':') {
			ps->lx.p++;
		} else {
			set_literal(&ps->cur.route, "INVALID_ROUTE");
			if (at_end(&ps->lx))
				return -1;
		}
		if (skip_cfws(&ps->lx) <= 0)
			return -1;
	}
	if (*ps->lx.p != '>') {
		if (parse_local_part(ps) <= 0)
			return -1;
		if (*ps->lx.p == '@' && parse_domain(ps) <= 0)
			return -1;
	}
	if (*ps->lx.p != '>')
		return -1;
	ps->lx.p++;
	return skip_cfws(&ps->lx);
}

static int parse_name_addr(struct parser *ps)
{
	buf_reset(&ps->str);
	if (parse_phrase(&ps->lx, &ps->str) <= 0 || *ps->lx.p != '<')
		return -1;
	if (ps->str.len > 0)
		take_str(ps, &ps->cur.name);
	if (parse_angle_addr(ps) < 0) {
		set_literal(&ps->cur.host, "SYNTAX_ERROR");
		ps->cur.invalid = true;
	}
	return at_end(&ps->lx) ? 0 : 1;
}

static int parse_addr_spec(struct parser *ps)
{
	int ret, ret2 = -2;
	buf_reset(&ps->lx.comment);
	bool quoted = *ps->lx.p == '"';
	ret = parse_local_part(ps);
	if (ret <= 0)
		ps->cur.invalid = true;
	if (ret != 0 && !at_end(&ps->lx) && *ps->lx.p == '@') {
		ret2 = parse_domain(ps);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (ps->lx.comment.len > 0) {
		free(ps->cur.name);
		ps->cur.name = xstrndup(ps->lx.comment.data, ps->lx.comment.len);
	} else if (ret2 == -2) {
		/* a word without "@domain": alone it is a mailbox, but if
		 * more words follow, they all were a display name */
		mail_buf_putc(&ps->str, ' ');
		size_t before = ps->str.len;
		(void)parse_phrase(&ps->lx, &ps->str);
		if (ps->str.len != before) {
			free(ps->cur.mailbox);
			ps->cur.mailbox = NULL;
			take_str(ps, &ps->cur.name);
		} else if (!quoted) {
			set_literal(&ps->cur.host, "");
		}
		ps->cur.invalid = true;
		ret = -1;
	}
	return ret;
}

static void push(struct parser *ps)
{
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 4;
		ps->v = xrealloc(ps->v, ps->cap * sizeof(*ps->v));
	}
	struct mail_address *a = &ps->v[ps->n++];
	*a = ps->cur;
	memset(&ps->cur, 0, sizeof(ps->cur));
	if (a->name != NULL) {
		struct buf b;
		buf_init(&b, 0);
		mail_decode_2047(&b, a->name, strlen(a->name));
		a->name_utf8 = mail_buf_take(&b);
	}
}

/* An address, with MISSING_* filled in where a part is absent. */
static void push_fixed(struct parser *ps)
{
	if (ps->cur.mailbox == NULL) {
		ps->cur.mailbox = xstrdup("MISSING_MAILBOX");
		ps->cur.invalid = true;
	}
	if (ps->cur.host == NULL || ps->cur.host[0] == '\0') {
		set_literal(&ps->cur.host, "MISSING_DOMAIN");
		ps->cur.invalid = true;
	}
	push(ps);
}

static int parse_mailbox(struct parser *ps)
{
	const char *start = ps->lx.p;
	int ret = parse_name_addr(ps);
	if (ret < 0) {
		/* not name-addr: an addr-spec then */
		ps->lx.p = start;
		free(ps->cur.name);
		free(ps->cur.route);
		free(ps->cur.mailbox);
		free(ps->cur.host);
		memset(&ps->cur, 0, sizeof(ps->cur));
		ret = parse_addr_spec(ps);
		if (ps->cur.invalid && ps->cur.name == NULL &&
		    ps->cur.mailbox != NULL && ps->cur.host == NULL) {
			ps->cur.name = ps->cur.mailbox;
			ps->cur.mailbox = NULL;
		}
	}
	if (ret < 0)
		ps->cur.invalid = true;
	push_fixed(ps);
	return ret;
}

static int parse_group(struct parser *ps)
{
	int ret;
	buf_reset(&ps->str);
	if (parse_phrase(&ps->lx, &ps->str) <= 0 || *ps->lx.p != ':')
		return -1;
	/* a group from here on, whatever follows */
	ps->lx.p++;
	if ((ret = skip_cfws(&ps->lx)) <= 0)
		ps->cur.invalid = true;
	take_str(ps, &ps->cur.mailbox);
	push(ps);
	if (ret > 0 && *ps->lx.p != ';') {
		for (;;) {
			(void)parse_mailbox(ps);   /* broken: go on anyway */
			if (at_end(&ps->lx) || *ps->lx.p != ',')
				break;
			ps->lx.p++;
			if (skip_cfws(&ps->lx) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (at_end(&ps->lx) || *ps->lx.p != ';') {
			ret = -1;
		} else {
			ps->lx.p++;
			ret = skip_cfws(&ps->lx);
		}
	}
	push(ps);   /* end of group */
	return ret == 0 ? 0 : 1;
}

static int parse_address(struct parser *ps)
{
	const char *start = ps->lx.p;
	int ret = parse_group(ps);
	if (ret < 0) {
		ps->lx.p = start;
		free(ps->cur.mailbox);
		memset(&ps->cur, 0, sizeof(ps->cur));
		ret = parse_mailbox(ps);
	}
	return ret;
}

size_t mail_address_parse(const char *s, size_t len,
			  struct mail_address **list_r)
{
	struct parser ps;
	memset(&ps, 0, sizeof(ps));
	ps.lx.p = s;
	ps.lx.end = s + len;
	buf_init(&ps.lx.comment, 0);
	buf_init(&ps.str, 0);
	if (skip_cfws(&ps.lx) > 0) {
		/* address-list = address *("," address); stop at anything
		 * else */
		for (;;) {
			if (parse_address(&ps) == 0)
				break;
			if (at_end(&ps.lx) || *ps.lx.p != ',')
				break;
			ps.lx.p++;
			int ret = skip_cfws(&ps.lx);
			if (ret <= 0) {
				if (ret < 0)
					push_fixed(&ps);   /* ends in garbage */
				break;
			}
		}
	}
	free(ps.cur.name);
	free(ps.cur.route);
	free(ps.cur.mailbox);
	free(ps.cur.host);
	buf_free(&ps.lx.comment);
	buf_free(&ps.str);
	*list_r = ps.v;
	return ps.n;
}

void mail_address_list_free(struct mail_address *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(list[i].name);
		free(list[i].name_utf8);
		free(list[i].route);
		free(list[i].mailbox);
		free(list[i].host);
	}
	free(list);
}
