/*
 * Address lists (RFC 5322 3.4, obsolete syntax 4.4, RFC 6532 UTF-8) into
 * IMAP's flat form: groups become a start marker (mailbox = group name,
 * host NULL) and an end marker (both NULL), as RFC 3501 7.4.2 ENVELOPE
 * wants. Lenient like Dovecot: a missing local part or domain is filled in
 * with MISSING_MAILBOX / MISSING_DOMAIN, a comment stands in for a missing
 * display name, junk between addresses is skipped.
 */
#include "mail-private.h"

#include <string.h>

enum tok_kind { T_WORD, T_QUOTED, T_LITERAL, T_SPECIAL, T_COMMENT };

struct tok {
	enum tok_kind kind;
	char c;              /* T_SPECIAL */
	char *text;          /* T_WORD/T_QUOTED(unquoted)/T_LITERAL/T_COMMENT */
	bool space_before;
};

struct toks {
	struct tok *v;
	size_t n, cap;
};

static void tok_push(struct toks *t, enum tok_kind k, char c, char *text,
		     bool sp)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = (struct tok){k, c, text, sp};
}

static bool is_special(char c)
{
	switch (c) {
	case '(': case ')': case '<': case '>': case '[': case ']': case ':':
	case ';': case '@': case '\\': case ',': case '"':
		return true;
	default:
		return false;
	}
}

static void tokenize(const char *s, size_t len, struct toks *t)
{
	size_t i = 0;
	bool sp = false;
	while (i < len) {
		char c = s[i];
		if (mail_is_lwsp(c)) {
			sp = true;
			i++;
			continue;
		}
		if (c == '"') {
			struct buf b;
			buf_init(&b, 0);
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				if (s[i] == '\r' || s[i] == '\n')
					continue;
				mail_buf_putc(&b, s[i]);
			}
			i++;
			tok_push(t, T_QUOTED, 0, mail_buf_take(&b), sp);
		} else if (c == '(') {
			struct buf b;
			int depth = 0;
			buf_init(&b, 0);
			for (; i < len; i++) {
				if (s[i] == '\\' && i + 1 < len) {
					i++;
				} else if (s[i] == '(') {
					if (depth++ == 0)
						continue;
				} else if (s[i] == ')') {
					if (--depth == 0) {
						i++;
						break;
					}
				}
				if (s[i] != '\r' && s[i] != '\n')
					mail_buf_putc(&b, s[i]);
			}
			tok_push(t, T_COMMENT, 0, mail_buf_take(&b), sp);
			continue;   /* a comment does not reset the space flag */
		} else if (c == '[') {
			size_t st = i;
			while (i < len && s[i] != ']')
				i++;
			if (i < len)
				i++;
			struct buf b;
			buf_init(&b, 0);
			for (size_t k = st; k < i; k++)
				if (s[k] != '\r' && s[k] != '\n')
					mail_buf_putc(&b, s[k]);
			tok_push(t, T_LITERAL, 0, mail_buf_take(&b), sp);
		} else if (is_special(c)) {
			tok_push(t, T_SPECIAL, c, NULL, sp);
			i++;
		} else {
			size_t st = i;
			while (i < len && !mail_is_lwsp(s[i]) && !is_special(s[i]))
				i++;
			tok_push(t, T_WORD, 0, xstrndup(s + st, i - st), sp);
		}
		sp = false;
	}
}

static void toks_free(struct toks *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].text);
	free(t->v);
}

struct alist {
	struct mail_address *v;
	size_t n, cap;
};

static struct mail_address *alist_add(struct alist *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	struct mail_address *a = &l->v[l->n++];
	memset(a, 0, sizeof(*a));
	return a;
}

/* Phrase: words joined by one space (RFC 5322 3.2.5), comments out. */
static char *join_phrase(const struct tok *v, size_t n)
{
	struct buf b;
	buf_init(&b, 0);
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == T_COMMENT)
			continue;
		if (v[i].kind == T_SPECIAL) {
			/* obsolete phrases have "." ; keep any stray special */
			if (any && v[i].space_before)
				mail_buf_putc(&b, ' ');
			mail_buf_putc(&b, v[i].c);
			any = true;
			continue;
		}
		if (any && (v[i].space_before || v[i].kind == T_QUOTED ||
			    (i > 0 && v[i - 1].kind == T_QUOTED)))
			mail_buf_putc(&b, ' ');
		mail_buf_puts(&b, v[i].text);
		any = true;
	}
	return any ? mail_buf_take(&b) : (buf_free(&b), NULL);
}

/* Text of tokens as an addr-spec piece: no spaces, comments dropped. */
static char *join_tight(const struct tok *v, size_t n, bool quote)
{
	struct buf b;
	buf_init(&b, 0);
	bool any = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind == T_COMMENT)
			continue;
		any = true;
		if (v[i].kind == T_SPECIAL) {
			mail_buf_putc(&b, v[i].c);
		} else if (v[i].kind == T_QUOTED && quote) {
			mail_buf_putc(&b, '"');
			for (const char *c = v[i].text; *c; c++) {
				if (*c == '"' || *c == '\\')
					mail_buf_putc(&b, '\\');
				mail_buf_putc(&b, *c);
			}
			mail_buf_putc(&b, '"');
		} else {
			mail_buf_puts(&b, v[i].text);
		}
	}
	return any ? mail_buf_take(&b) : (buf_free(&b), NULL);
}

static const char *last_comment(const struct tok *v, size_t n)
{
	const char *c = NULL;
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == T_COMMENT && v[i].text[0] != '\0')
			c = v[i].text;
	return c;
}

static void set_addr_spec(struct mail_address *a, const struct tok *v,
			  size_t n)
{
	size_t at = n;
	for (size_t i = n; i-- > 0;) {
		if (v[i].kind == T_SPECIAL && v[i].c == '@') {
			at = i;
			break;
		}
	}
	if (at == n) {
		a->mailbox = join_tight(v, n, true);
		a->host = NULL;
	} else {
		a->mailbox = join_tight(v, at, true);
		a->host = join_tight(v + at + 1, n - at - 1, false);
	}
	if (a->mailbox == NULL || a->mailbox[0] == '\0') {
		free(a->mailbox);
		a->mailbox = xstrdup("MISSING_MAILBOX");
		a->invalid = true;
	}
	if (a->host == NULL || a->host[0] == '\0') {
		free(a->host);
		a->host = xstrdup("MISSING_DOMAIN");
		a->invalid = true;
	}
}

static void set_name(struct mail_address *a, char *name)
{
	a->name = name;
	if (name != NULL) {
		struct buf b;
		buf_init(&b, 0);
		mail_decode_2047(&b, name, strlen(name));
		a->name_utf8 = mail_buf_take(&b);
	}
}

/* One mailbox from tokens v[0..n) (no top-level ',' inside). */
static void parse_mailbox(struct alist *l, const struct tok *v, size_t n)
{
	size_t lt = n, gt = n;
	bool only_comments = true;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != T_COMMENT)
			only_comments = false;
		if (v[i].kind == T_SPECIAL && v[i].c == '<' && lt == n)
			lt = i;
		else if (v[i].kind == T_SPECIAL && v[i].c == '>' && lt != n &&
			 gt == n)
			gt = i;
	}
	if (n == 0 || only_comments)
		return;
	struct mail_address *a = alist_add(l);
	if (lt == n) {
		set_addr_spec(a, v, n);
		const char *c = last_comment(v, n);
		if (c != NULL)
			set_name(a, xstrdup(c));
		return;
	}
	set_name(a, join_phrase(v, lt));
	if (a->name == NULL) {
		const char *c = last_comment(v, n);
		if (c != NULL)
			set_name(a, xstrdup(c));
	}
	size_t s = lt + 1, e = gt;
	/* obsolete route: "@a,@b:" before the addr-spec (RFC 5322 4.4) */
	size_t colon = e;
	if (s < e && v[s].kind == T_SPECIAL && v[s].c == '@') {
		for (size_t i = s; i < e; i++) {
			if (v[i].kind == T_SPECIAL && v[i].c == ':') {
				colon = i;
				break;
			}
		}
		if (colon != e) {
			a->route = join_tight(v + s, colon - s, false);
			s = colon + 1;
		}
	}
	if (s == e) {
		/* "<>": Dovecot gives an empty mailbox and domain */
		a->mailbox = xstrdup("");
		a->host = xstrdup("");
		if (a->name == NULL) {
			a->mailbox = (free(a->mailbox), xstrdup("MISSING_MAILBOX"));
			a->host = (free(a->host), xstrdup("MISSING_DOMAIN"));
		}
		a->invalid = true;
		return;
	}
	set_addr_spec(a, v + s, e - s);
}

static void parse_list(struct alist *l, const struct tok *v, size_t n,
		       bool in_group)
{
	size_t i = 0;
	while (i < n) {
		/* find the extent of one address: up to a top-level ',' (or
		 * ';' inside a group); a ':' before any '<' or '@' makes it
		 * a group */
		size_t j = i;
		bool angle = false, group = false;
		while (j < n) {
			const struct tok *t = &v[j];
			if (t->kind == T_SPECIAL) {
				if (t->c == '<')
					angle = true;
				else if (t->c == '>')
					angle = false;
				else if (!angle && t->c == ',')
					break;
				else if (!angle && t->c == ';' && in_group)
					break;
				else if (!angle && t->c == ':' && !in_group) {
					group = true;
					break;
				}
			}
			j++;
		}
		if (group) {
			struct mail_address *g = alist_add(l);
			g->mailbox = join_phrase(v + i, j - i);
			if (g->mailbox == NULL)
				g->mailbox = xstrdup("");
			size_t k = j + 1, depth_angle = 0;
			while (k < n) {
				if (v[k].kind == T_SPECIAL) {
					if (v[k].c == '<')
						depth_angle = 1;
					else if (v[k].c == '>')
						depth_angle = 0;
					else if (v[k].c == ';' && !depth_angle)
						break;
				}
				k++;
			}
			parse_list(l, v + j + 1, k - j - 1, true);
			alist_add(l);   /* end of group */
			i = k + 1;
			/* like Dovecot, stop unless a ',' follows the group */
			while (i < n && v[i].kind == T_COMMENT)
				i++;
			if (i < n && !(v[i].kind == T_SPECIAL && v[i].c == ','))
				break;
			i++;
			continue;
		}
		parse_mailbox(l, v + i, j - i);
		i = j + 1;
	}
}

size_t mail_address_parse(const char *s, size_t len,
			  struct mail_address **list_r)
{
	struct toks t = {0};
	struct alist l = {0};
	tokenize(s, len, &t);
	parse_list(&l, t.v, t.n, false);
	toks_free(&t);
	*list_r = l.v;
	return l.n;
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
