/*
 * The IMAP client's response parser (RFC 9051 7 and 9, the server's side
 * of the grammar a migration needs): one whole response (its line and
 * the literals it announced, as the client reads them) into a flat tree
 * of atoms, strings, NIL, lists and [sections]. Status responses (OK,
 * NO, BAD, BYE, PREAUTH) keep their [code] as a section and the rest as
 * text; continuation requests ("+") are text. Bounded: at most
 * IMAP_RESP_ITEMS items and IMAP_RESP_DEPTH levels; every length is
 * checked against the buffer, so a server that lies about a literal's
 * size gets an error, never a read past the end.
 */
#include "migrate-parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "store.h"

struct rp {
	const char *s;
	size_t len, pos;
	struct imap_resp *r;
	int depth;
};

static struct imap_item *item_new(struct rp *p, enum imap_item_type type)
{
	if (p->r->count == IMAP_RESP_ITEMS)
		return NULL;
	struct imap_item *it = &p->r->items[p->r->count++];
	memset(it, 0, sizeof(*it));
	it->type = type;
	return it;
}

static bool atom_char(unsigned char c, bool in_section)
{
	if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' ||
	    c == '"')
		return false;
	return !in_section || (c != ']' && c != '[');
}

static int parse_items(struct rp *p, int parent, char close, bool section,
		       int *prev);

static int parse_item(struct rp *p, bool in_section, int *idx_r)
{
	if (p->pos >= p->len)
		return -1;
	char c = p->s[p->pos];
	struct imap_item *it;
	if (c == '(' || c == '[') {
		if (++p->depth > IMAP_RESP_DEPTH)
			return -1;
		it = item_new(p, c == '(' ? IMAP_LIST : IMAP_SECTION);
		if (it == NULL)
			return -1;
		int idx = (int)(it - p->r->items);
		*idx_r = idx;
		p->pos++;
		int prev = -1;
		int r = parse_items(p, idx, c == '(' ? ')' : ']', c == '[',
				    &prev);
		p->depth--;
		return r;
	}
	if (c == '"') {
		it = item_new(p, IMAP_STRING);
		if (it == NULL)
			return -1;
		*idx_r = (int)(it - p->r->items);
		struct buf *b = &p->r->strings;
		it->off = b->len;
		it->in_strings = true;
		p->pos++;
		while (p->pos < p->len && p->s[p->pos] != '"') {
			char ch = p->s[p->pos];
			if (ch == '\r' || ch == '\n' || ch == '\0')
				return -1;
			if (ch == '\\') {
				if (++p->pos >= p->len)
					return -1;
				ch = p->s[p->pos];
				if (ch != '"' && ch != '\\')
					return -1;
			}
			buf_append_char(b, ch);
			p->pos++;
		}
		if (p->pos >= p->len)
			return -1;
		p->pos++;
		it->len = b->len - it->off;
		return 0;
	}
	if (c == '{' || (c == '~' && p->pos + 1 < p->len &&
			 p->s[p->pos + 1] == '{')) {
		p->pos += c == '~' ? 2 : 1;
		uint64_t n = 0;
		size_t digits = 0;
		while (p->pos < p->len && p->s[p->pos] >= '0' &&
		       p->s[p->pos] <= '9') {
			if (++digits > 19)
				return -1;
			n = n * 10 + (uint64_t)(p->s[p->pos] - '0');
			p->pos++;
		}
		if (digits == 0 || p->pos + 3 > p->len ||
		    p->s[p->pos] != '}' || p->s[p->pos + 1] != '\r' ||
		    p->s[p->pos + 2] != '\n')
			return -1;
		p->pos += 3;
		if (n > p->len - p->pos)
			return -1;
		it = item_new(p, IMAP_STRING);
		if (it == NULL)
			return -1;
		*idx_r = (int)(it - p->r->items);
		it->off = p->pos;
		it->len = (size_t)n;
		p->pos += (size_t)n;
		return 0;
	}
	size_t start = p->pos;
	while (p->pos < p->len &&
	       atom_char((unsigned char)p->s[p->pos], in_section) &&
	       p->s[p->pos] != '[')
		p->pos++;
	if (p->pos == start)
		return -1;
	size_t alen = p->pos - start;
	it = item_new(p, alen == 3 && strncasecmp(p->s + start, "NIL", 3) == 0
				 ? IMAP_NIL : IMAP_ATOM);
	if (it == NULL)
		return -1;
	int idx = (int)(it - p->r->items);
	*idx_r = idx;
	it->off = start;
	it->len = alen;
	/* BODY[...]<origin>: the section is the atom's child */
	if (p->pos < p->len && p->s[p->pos] == '[') {
		int child;
		if (parse_item(p, true, &child) < 0)
			return -1;
		p->r->items[idx].first = (unsigned)child + 1;
		p->r->items[idx].children = 1;
		if (p->pos < p->len && p->s[p->pos] == '<') {
			while (p->pos < p->len && p->s[p->pos] != '>')
				p->pos++;
			if (p->pos >= p->len)
				return -1;
			p->pos++;
		}
	}
	return 0;
}

static void link_child(struct imap_resp *r, int parent, int *prev, int child)
{
	if (*prev < 0)
		r->items[parent].first = (unsigned)child + 1;
	else
		r->items[*prev].next = (unsigned)child + 1;
	r->items[parent].children++;
	*prev = child;
}

/* Items up to close (0: the end of the response), after *prev. */
static int parse_items(struct rp *p, int parent, char close, bool section,
		       int *prev)
{
	for (;;) {
		while (p->pos < p->len && p->s[p->pos] == ' ')
			p->pos++;
		if (p->pos >= p->len)
			return close == 0 ? 0 : -1;
		if (close != 0 && p->s[p->pos] == close) {
			p->pos++;
			return 0;
		}
		int child;
		if (parse_item(p, section, &child) < 0)
			return -1;
		link_child(p->r, parent, prev, child);
		if (p->pos < p->len && p->s[p->pos] != ' ' &&
		    p->s[p->pos] != close)
			return -1;
	}
}

static bool word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

int imap_resp_parse(const char *s, size_t len, struct imap_resp *r)
{
	r->count = 0;
	r->data = s;
	buf_reset(&r->strings);
	r->text = "";
	r->text_len = 0;
	struct rp p = {s, len, 0, r, 0};
	if (len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n')
		p.len = len - 2;
	else if (len >= 1 && s[len - 1] == '\n')
		p.len = len - 1;
	item_new(&p, IMAP_LIST);   /* items[0]: the response */
	int prev = -1, child;
	/* the tag, "*" or "+" */
	size_t start = 0;
	while (p.pos < p.len && p.s[p.pos] != ' ')
		p.pos++;
	if (p.pos == 0)
		return -1;
	struct imap_item *tag = item_new(&p, IMAP_ATOM);
	tag->off = start;
	tag->len = p.pos;
	link_child(r, 0, &prev, 1);
	if (p.pos < p.len)
		p.pos++;
	if (tag->len == 1 && s[0] == '+') {
		r->text = s + p.pos;
		r->text_len = p.len - p.pos;
		return 0;
	}
	/* the word: a status, a number (EXISTS, FETCH) or a data kind */
	if (parse_item(&p, false, &child) < 0 || r->items[child].type != IMAP_ATOM)
		return -1;
	link_child(r, 0, &prev, child);
	const struct imap_item *w = &r->items[child];
	if (word_is(s + w->off, w->len, "OK") ||
	    word_is(s + w->off, w->len, "NO") ||
	    word_is(s + w->off, w->len, "BAD") ||
	    word_is(s + w->off, w->len, "BYE") ||
	    word_is(s + w->off, w->len, "PREAUTH")) {
		while (p.pos < p.len && p.s[p.pos] == ' ')
			p.pos++;
		size_t save = p.pos;
		unsigned save_count = r->count;
		if (p.pos < p.len && p.s[p.pos] == '[') {
			if (parse_item(&p, true, &child) == 0) {
				link_child(r, 0, &prev, child);
			} else {
				p.pos = save;
				r->count = save_count;
			}
		}
		while (p.pos < p.len && p.s[p.pos] == ' ')
			p.pos++;
		r->text = s + p.pos;
		r->text_len = p.len - p.pos;
		return 0;
	}
	return parse_items(&p, 0, 0, false, &prev) == 0 ? 0 : -1;
}

const struct imap_item *imap_resp_child(const struct imap_resp *r,
					const struct imap_item *it, unsigned n)
{
	unsigned i = it->first;
	while (i != 0 && n-- > 0)
		i = r->items[i - 1].next;
	return i != 0 ? &r->items[i - 1] : NULL;
}

const struct imap_item *imap_resp_next(const struct imap_resp *r,
				       const struct imap_item *it)
{
	return it->next != 0 ? &r->items[it->next - 1] : NULL;
}

const char *imap_item_data(const struct imap_resp *r,
			   const struct imap_item *it)
{
	return it->in_strings ? r->strings.data + it->off : r->data + it->off;
}

bool imap_item_is(const struct imap_resp *r, const struct imap_item *it,
		  const char *word)
{
	return it != NULL && (it->type == IMAP_ATOM || it->type == IMAP_STRING) &&
	       word_is(imap_item_data(r, it), it->len, word);
}

bool imap_item_u64(const struct imap_resp *r, const struct imap_item *it,
		   uint64_t *v_r)
{
	if (it == NULL || it->type != IMAP_ATOM || it->len == 0 || it->len > 19)
		return false;
	const char *s = imap_item_data(r, it);
	uint64_t v = 0;
	for (size_t i = 0; i < it->len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return true;
}

bool pop3_uidl_line(const char *line, size_t len, unsigned *num_r,
		    char uidl[71])
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	size_t i = 0;
	uint64_t n = 0;
	while (i < len && line[i] >= '0' && line[i] <= '9' && i < 10)
		n = n * 10 + (uint64_t)(line[i++] - '0');
	if (i == 0 || n == 0 || n > UINT32_MAX || i >= len || line[i] != ' ')
		return false;
	size_t start = ++i;
	while (i < len && (unsigned char)line[i] >= 0x21 &&
	       (unsigned char)line[i] <= 0x7e)
		i++;
	if (i != len || i == start || i - start > 70)
		return false;
	memcpy(uidl, line + start, i - start);
	uidl[i - start] = '\0';
	*num_r = (unsigned)n;
	return true;
}

/* One number of a UID set: 1 to 4294967295. */
static bool uid_num(const char *s, size_t len, size_t *i, uint32_t *v_r)
{
	uint64_t v = 0;
	size_t start = *i;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < 10)
		v = v * 10 + (uint64_t)(s[(*i)++] - '0');
	if (*i == start || v == 0 || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

int imap_uid_set_parse(const char *s, size_t len, struct store_uid_range **r_r,
		       size_t *count_r)
{
	struct store_uid_range *v = NULL;
	size_t n = 0, cap = 0, i = 0;
	*r_r = NULL;
	*count_r = 0;
	while (i < len) {
		uint32_t a, b;
		if (!uid_num(s, len, &i, &a))
			goto bad;
		b = a;
		if (i < len && s[i] == ':') {
			i++;
			if (!uid_num(s, len, &i, &b))
				goto bad;
		}
		if (i < len && (s[i] != ',' || i + 1 == len))
			goto bad;
		if (i < len)
			i++;
		if (n == IMAP_UID_SET_MAX)
			goto bad;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n].lo = a < b ? a : b;
		v[n].hi = a < b ? b : a;
		n++;
	}
	if (n == 0)
		goto bad;
	*r_r = v;
	*count_r = n;
	return 0;
bad:
	free(v);
	return -1;
}

bool imap_uid_set_has(const struct store_uid_range *r, size_t n, uint32_t uid)
{
	for (size_t i = 0; i < n; i++)
		if (uid >= r[i].lo && uid <= r[i].hi)
			return true;
	return false;
}
