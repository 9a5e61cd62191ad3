/*
 * SEARCH: parsing search keys into a tree and evaluating it.
 *
 * Evaluation makes one pass over the view's messages through the store
 * iterator. Keys that need more than the iterator gives are prepared or
 * loaded lazily: BODY/TEXT are answered by the store's text index once per
 * key before the pass (a sorted UID array, then a binary search per
 * message); header keys and SENT* open the blob only when the cheaper keys
 * of the same AND/OR have not decided already (children are ordered by
 * cost when the program is parsed).
 *
 * Dates: RFC 3501 6.4.4 compares dates "disregarding time and timezone".
 * INTERNALDATE and SAVEDATE are kept as UTC instants, so their day is the
 * UTC day; the Date: header keeps its own zone, so SENT* use the day as
 * the sender wrote it (what Dovecot does too).
 */
#include "imap-search.h"

#include "buf.h"
#include "imap-parser.h"
#include "mail.h"
#include "store.h"
#include "u32.h"

#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum sk_type {
	SK_ALL,
	SK_AND,
	SK_OR,
	SK_NOT,
	SK_FLAGS_SET,     /* all of u.flags set */
	SK_FLAGS_UNSET,   /* none of u.flags set */
	SK_KEYWORD,
	SK_UNKEYWORD,
	SK_NEW,
	SK_OLD,
	SK_RECENT,
	SK_SEQSET,
	SK_UIDSET,
	SK_SAVED,         /* $ */
	SK_LARGER,
	SK_SMALLER,
	SK_BEFORE,
	SK_ON,
	SK_SINCE,
	SK_SENTBEFORE,
	SK_SENTON,
	SK_SENTSINCE,
	SK_SAVEDBEFORE,
	SK_SAVEDON,
	SK_SAVEDSINCE,
	SK_OLDER,
	SK_YOUNGER,
	SK_HEADER,        /* HEADER field string: the raw header */
	SK_ENV,           /* FROM, TO, CC, BCC, SUBJECT: the envelope */
	SK_BODY,
	SK_TEXT,
	SK_MODSEQ,
	SK_EMAILID,
	SK_THREADID,
};

/* A sequence or UID set as parsed; 0 stands for "*" until resolved. */
struct sk_set {
	struct store_uid_range *r;
	size_t n;
	struct store_uid_range *resolved;   /* sorted, merged, per run */
	size_t resolved_n;
};

struct imap_search_key {
	enum sk_type type;
	struct imap_search_key *child, *next;  /* AND / OR / NOT operands */
	union {
		unsigned flags;
		uint64_t num;
		time_t day;
		char *str;                     /* keyword, text, object id */
		struct {
			char *field;
			char *value;
			int env;   /* an envelope field that holds it, or -1 */
		} header;
		struct {
			enum imap_env_field field;
			char *value;
		} env;
		struct sk_set set;
	} u;
	/* BODY/TEXT: the store's answer; HEADER: the candidates the store's
	 * header text gives (sorted, filled before the pass) */
	uint32_t *uids;
	size_t uid_count;
	bool have_uids;
};

/* ---- parsing ------------------------------------------------------- */

struct parser {
	struct imap_search_program *prog;
	char *charset;          /* SEARCH CHARSET other than UTF-8/US-ASCII */
	unsigned depth;
	const char *error;
	enum imap_search_parse_error kind;
};

static bool arg_astring(const struct imap_arg *a, struct slice *s_r)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED &&
	    a->type != IMAP_ARG_LITERAL && a->type != IMAP_ARG_NIL)
		return false;
	if (a->streamed)
		return false;
	*s_r = a->str;
	return true;
}

static bool arg_atom_is(const struct imap_arg *a, const char *lit)
{
	return (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL) &&
	       slice_eq_ci(a->str, lit);
}

static int fail(struct parser *p, enum imap_search_parse_error kind,
		const char *msg)
{
	if (p->error == NULL) {
		p->error = msg;
		p->kind = kind;
	}
	return -1;
}

static struct imap_search_key *key_new(struct parser *p, enum sk_type type)
{
	struct imap_search_key *k = xcalloc(1, sizeof(*k));
	k->type = type;
	p->prog->key_count++;
	return k;
}

static bool parse_u64(struct slice s, uint64_t *v_r)
{
	uint64_t v = 0;
	if (s.len == 0 || s.len > 20)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.ptr[i] < '0' || s.ptr[i] > '9')
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s.ptr[i] - '0'), &v))
			return false;
	}
	*v_r = v;
	return true;
}

static bool parse_seqnum(const char **p, const char *end, uint32_t *v_r)
{
	if (*p < end && **p == '*') {
		(*p)++;
		*v_r = 0;
		return true;
	}
	uint64_t v = 0;
	const char *s = *p;
	while (*p < end && **p >= '0' && **p <= '9') {
		v = v * 10 + (uint64_t)(**p - '0');
		if (v > UINT32_MAX)
			return false;
		(*p)++;
	}
	if (*p == s || v == 0)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* sequence-set (RFC 9051 9): "1:3,7,9:*". Ranges are kept as written
 * (lo may exceed hi; "*" is 0) until the view is known. */
static bool parse_set(struct slice s, struct sk_set *set)
{
	const char *p = s.ptr, *end = s.ptr + s.len;
	size_t cap = 4;
	set->r = xmalloc(cap * sizeof(*set->r));
	set->n = 0;
	for (;;) {
		uint32_t lo, hi;
		if (!parse_seqnum(&p, end, &lo))
			return false;
		hi = lo;
		if (p < end && *p == ':') {
			p++;
			if (!parse_seqnum(&p, end, &hi))
				return false;
		}
		if (set->n == cap) {
			if (cap >= 65536)
				return false;
			cap *= 2;
			set->r = xrealloc(set->r, cap * sizeof(*set->r));
		}
		set->r[set->n++] = (struct store_uid_range){lo, hi};
		if (p == end)
			return true;
		if (*p++ != ',')
			return false;
	}
}

static bool looks_like_set(struct slice s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!((s.ptr[i] >= '0' && s.ptr[i] <= '9') || s.ptr[i] == '*' ||
		      s.ptr[i] == ':' || s.ptr[i] == ','))
			return false;
	return true;
}

static const char *month_names[12] = {"Jan", "Feb", "Mar", "Apr",
				      "May", "Jun", "Jul", "Aug",
				      "Sep", "Oct", "Nov", "Dec"};

int imap_search_parse_date(const char *s, size_t len, time_t *day_r)
{
	/* date-day "-" date-month "-" date-year; day is 1 or 2 digits */
	size_t i = 0;
	int day = 0, year = 0, month = -1;
	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		day = day * 10 + (s[i++] - '0');
	if (i == 0 || i >= len || s[i++] != '-' || day < 1 || day > 31)
		return -1;
	if (len - i < 4)
		return -1;
	for (int m = 0; m < 12; m++)
		if (strncasecmp(s + i, month_names[m], 3) == 0)
			month = m;
	if (month < 0 || s[i + 3] != '-')
		return -1;
	i += 4;
	if (len - i != 4)
		return -1;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		year = year * 10 + (s[i] - '0');
	}
	struct tm tm = {.tm_mday = day, .tm_mon = month, .tm_year = year - 1900};
	*day_r = timegm(&tm);
	return 0;
}

static char *dup_string(struct parser *p, struct slice s)
{
	if (memchr(s.ptr, '\0', s.len) != NULL) {
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "NUL in search string");
		return NULL;
	}
	if (p->charset == NULL)
		return xstrndup(s.ptr, s.len);
	/* Everything is matched as UTF-8: convert from the client's
	 * CHARSET (RFC 3501 6.4.4), as Dovecot does for any iconv knows. */
	struct buf b;
	buf_init(&b, 0);
	mail_charset_to_utf8(&b, p->charset, s.ptr, s.len);
	buf_append_char(&b, '\0');
	return buf_steal(&b, NULL);
}

static struct imap_search_key *parse_key(struct parser *p,
					 const struct imap_arg **ap);

/* Keys up to EOL as an AND (a parenthesised list, or the whole program). */
static struct imap_search_key *parse_and(struct parser *p,
					 const struct imap_arg *a)
{
	if (a->type == IMAP_ARG_EOL) {
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "Missing search key");
		return NULL;
	}
	struct imap_search_key *k = key_new(p, SK_AND), **link = &k->child;
	while (a->type != IMAP_ARG_EOL) {
		*link = parse_key(p, &a);
		if (*link == NULL)
			break;
		link = &(*link)->next;
	}
	return k;
}

struct key_def {
	const char *name;
	enum sk_type type;
	enum { A_NONE, A_STRING, A_DATE, A_NUMBER, A_HEADER, A_SEARCHKEY,
	       A_TWO_KEYS, A_FLAG } arg;
	unsigned flags;      /* SK_FLAGS_*, or the envelope field of SK_ENV */
	const char *header;
};

static const struct key_def key_defs[] = {
	{"ALL", SK_ALL, A_NONE, 0, NULL},
	{"ANSWERED", SK_FLAGS_SET, A_FLAG, STORE_FLAG_ANSWERED, NULL},
	{"DELETED", SK_FLAGS_SET, A_FLAG, STORE_FLAG_DELETED, NULL},
	{"DRAFT", SK_FLAGS_SET, A_FLAG, STORE_FLAG_DRAFT, NULL},
	{"FLAGGED", SK_FLAGS_SET, A_FLAG, STORE_FLAG_FLAGGED, NULL},
	{"SEEN", SK_FLAGS_SET, A_FLAG, STORE_FLAG_SEEN, NULL},
	{"UNANSWERED", SK_FLAGS_UNSET, A_FLAG, STORE_FLAG_ANSWERED, NULL},
	{"UNDELETED", SK_FLAGS_UNSET, A_FLAG, STORE_FLAG_DELETED, NULL},
	{"UNDRAFT", SK_FLAGS_UNSET, A_FLAG, STORE_FLAG_DRAFT, NULL},
	{"UNFLAGGED", SK_FLAGS_UNSET, A_FLAG, STORE_FLAG_FLAGGED, NULL},
	{"UNSEEN", SK_FLAGS_UNSET, A_FLAG, STORE_FLAG_SEEN, NULL},
	{"NEW", SK_NEW, A_NONE, 0, NULL},
	{"OLD", SK_OLD, A_NONE, 0, NULL},
	{"RECENT", SK_RECENT, A_NONE, 0, NULL},
	{"KEYWORD", SK_KEYWORD, A_STRING, 0, NULL},
	{"UNKEYWORD", SK_UNKEYWORD, A_STRING, 0, NULL},
	{"BCC", SK_ENV, A_STRING, IMAP_ENV_BCC, NULL},
	{"CC", SK_ENV, A_STRING, IMAP_ENV_CC, NULL},
	{"FROM", SK_ENV, A_STRING, IMAP_ENV_FROM, NULL},
	{"SUBJECT", SK_ENV, A_STRING, IMAP_ENV_SUBJECT, NULL},
	{"TO", SK_ENV, A_STRING, IMAP_ENV_TO, NULL},
	{"HEADER", SK_HEADER, A_HEADER, 0, NULL},
	{"BODY", SK_BODY, A_STRING, 0, NULL},
	{"TEXT", SK_TEXT, A_STRING, 0, NULL},
	{"BEFORE", SK_BEFORE, A_DATE, 0, NULL},
	{"ON", SK_ON, A_DATE, 0, NULL},
	{"SINCE", SK_SINCE, A_DATE, 0, NULL},
	{"SENTBEFORE", SK_SENTBEFORE, A_DATE, 0, NULL},
	{"SENTON", SK_SENTON, A_DATE, 0, NULL},
	{"SENTSINCE", SK_SENTSINCE, A_DATE, 0, NULL},
	{"SAVEDBEFORE", SK_SAVEDBEFORE, A_DATE, 0, NULL},
	{"SAVEDON", SK_SAVEDON, A_DATE, 0, NULL},
	{"SAVEDSINCE", SK_SAVEDSINCE, A_DATE, 0, NULL},
	/* RFC 8514 4.2: every Loft mailbox keeps save dates */
	{"SAVEDATESUPPORTED", SK_ALL, A_NONE, 0, NULL},
	{"LARGER", SK_LARGER, A_NUMBER, 0, NULL},
	{"SMALLER", SK_SMALLER, A_NUMBER, 0, NULL},
	{"OLDER", SK_OLDER, A_NUMBER, 0, NULL},
	{"YOUNGER", SK_YOUNGER, A_NUMBER, 0, NULL},
	{"NOT", SK_NOT, A_SEARCHKEY, 0, NULL},
	{"OR", SK_OR, A_TWO_KEYS, 0, NULL},
	{"UID", SK_UIDSET, A_NONE, 0, NULL},
	{"MODSEQ", SK_MODSEQ, A_NONE, 0, NULL},
	{"EMAILID", SK_EMAILID, A_STRING, 0, NULL},
	{"THREADID", SK_THREADID, A_STRING, 0, NULL},
};

static const struct key_def *find_key(struct slice name)
{
	for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++)
		if (slice_eq_ci(name, key_defs[i].name))
			return &key_defs[i];
	return NULL;
}

/* A sequence set, UID set or $ in atom a. */
static struct imap_search_key *parse_set_key(struct parser *p,
					     const struct imap_arg *a, bool uid)
{
	if (a->type != IMAP_ARG_ATOM) {
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "Invalid sequence set");
		return NULL;
	}
	if (a->str.len == 1 && a->str.ptr[0] == '$') {
		p->prog->uses_saved = true;
		return key_new(p, SK_SAVED);
	}
	struct imap_search_key *k = key_new(p, uid ? SK_UIDSET : SK_SEQSET);
	if (!uid)
		p->prog->uses_seqset = true;
	if (!parse_set(a->str, &k->u.set))
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "Invalid sequence set");
	return k;
}

/* RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer.
 * The per-flag entries are accepted; Loft keeps one modseq per message,
 * which is always >= any flag's, as the RFC allows. */
static struct imap_search_key *parse_modseq(struct parser *p,
					    const struct imap_arg **ap)
{
	const struct imap_arg *a = *ap;
	struct slice s;
	if (a[0].type == IMAP_ARG_QUOTED && a[1].type == IMAP_ARG_ATOM) {
		if (!slice_eq_ci(a[1].str, "priv") &&
		    !slice_eq_ci(a[1].str, "shared") &&
		    !slice_eq_ci(a[1].str, "all")) {
			fail(p, IMAP_SEARCH_ERR_SYNTAX, "Invalid MODSEQ entry type");
			return NULL;
		}
		a += 2;
	}
	struct imap_search_key *k = key_new(p, SK_MODSEQ);
	if (a->type != IMAP_ARG_ATOM || !arg_astring(a, &s) ||
	    !parse_u64(s, &k->u.num) || k->u.num > INT64_MAX)
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "Invalid MODSEQ value");
	else
		a++;
	p->prog->has_modseq = true;
	*ap = a;
	return k;
}

static struct imap_search_key *parse_with_arg(struct parser *p,
					      const struct key_def *d,
					      const struct imap_arg **ap)
{
	const struct imap_arg *a = *ap;
	struct slice s, v;
	struct imap_search_key *k = key_new(p, d->type);

	switch (d->arg) {
	case A_STRING:
		if (!arg_astring(a, &s))
			break;
		*ap = a + 1;
		if (d->type == SK_ENV) {
			k->u.env.field = (enum imap_env_field)d->flags;
			k->u.env.value = dup_string(p, s);
		} else {
			k->u.str = dup_string(p, s);
		}
		return k;
	case A_HEADER:
		if (!arg_astring(a, &s) || !arg_astring(a + 1, &v))
			break;
		*ap = a + 2;
		k->u.header.field = dup_string(p, s);
		k->u.header.value = dup_string(p, v);
		/* Message-ID and In-Reply-To are kept whole in the cached
		 * ENVELOPE (RFC 9051 7.5.2: the field's text): no blob read
		 * for the searches clients make to find a message by id */
		k->u.header.env = -1;
		if (slice_eq_ci(s, "Message-ID"))
			k->u.header.env = IMAP_ENV_MESSAGE_ID;
		else if (slice_eq_ci(s, "In-Reply-To"))
			k->u.header.env = IMAP_ENV_IN_REPLY_TO;
		return k;
	case A_DATE:
		if (!arg_astring(a, &s) ||
		    imap_search_parse_date(s.ptr, s.len, &k->u.day) < 0)
			break;
		*ap = a + 1;
		return k;
	case A_NUMBER:
		if (a->type != IMAP_ARG_ATOM || !parse_u64(a->str, &k->u.num))
			break;
		*ap = a + 1;
		return k;
	default:
		break;
	}
	fail(p, IMAP_SEARCH_ERR_SYNTAX, "Missing or invalid search key argument");
	return k;
}

static struct imap_search_key *parse_key(struct parser *p,
					 const struct imap_arg **ap)
{
	const struct imap_arg *a = *ap;
	struct imap_search_key *k = NULL;

	if (p->error != NULL)
		return NULL;
	if (++p->depth > IMAP_SEARCH_MAX_DEPTH ||
	    p->prog->key_count >= IMAP_SEARCH_MAX_KEYS) {
		fail(p, IMAP_SEARCH_ERR_LIMIT, "Search program too complex");
		return NULL;
	}
	if (a->type == IMAP_ARG_LIST) {
		*ap = a + 1;
		k = parse_and(p, a->list);
	} else if (a->type != IMAP_ARG_ATOM) {
		fail(p, IMAP_SEARCH_ERR_SYNTAX, "Invalid search key");
	} else if (looks_like_set(a->str) || slice_eq(a->str, "$")) {
		*ap = a + 1;
		k = parse_set_key(p, a, false);
	} else {
		const struct key_def *d = find_key(a->str);
		a++;
		if (d == NULL) {
			fail(p, IMAP_SEARCH_ERR_SYNTAX, "Unknown search key");
		} else if (d->type == SK_UIDSET) {
			k = parse_set_key(p, a, true);
			if (a->type != IMAP_ARG_EOL)
				a++;
		} else if (d->type == SK_MODSEQ) {
			k = parse_modseq(p, &a);
		} else if (d->arg == A_SEARCHKEY) {
			k = key_new(p, SK_NOT);
			k->child = parse_key(p, &a);
		} else if (d->arg == A_TWO_KEYS) {
			k = key_new(p, SK_OR);
			k->child = parse_key(p, &a);
			if (k->child != NULL)
				k->child->next = parse_key(p, &a);
		} else if (d->arg == A_NONE || d->arg == A_FLAG) {
			k = key_new(p, d->type);
			k->u.flags = d->flags;
		} else {
			k = parse_with_arg(p, d, &a);
		}
		*ap = a;
	}
	p->depth--;
	return k;
}

/* Cost class of a key, to evaluate cheap ones first. */
static int key_cost(const struct imap_search_key *k)
{
	switch (k->type) {
	case SK_HEADER:
		return k->u.header.env >= 0 ? 1 : 2;
	case SK_ENV:
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		return 1;
	case SK_AND:
	case SK_OR:
	case SK_NOT: {
		int c = 0;
		for (const struct imap_search_key *x = k->child; x; x = x->next) {
			int xc = key_cost(x);
			if (xc > c)
				c = xc;
		}
		return c;
	}
	default:
		return 0;
	}
}

/* Stable reorder of an AND/OR operand list by cost class. AND and OR are
 * commutative, and short-circuiting then saves the blob reads. */
static void order_by_cost(struct imap_search_key *k)
{
	if (k->type != SK_AND && k->type != SK_OR && k->type != SK_NOT)
		return;
	struct imap_search_key *buckets[3] = {NULL, NULL, NULL};
	struct imap_search_key **tails[3] = {&buckets[0], &buckets[1], &buckets[2]};
	for (struct imap_search_key *x = k->child, *next; x != NULL; x = next) {
		next = x->next;
		order_by_cost(x);
		int c = key_cost(x);
		x->next = NULL;
		*tails[c] = x;
		tails[c] = &x->next;
	}
	*tails[0] = buckets[1] != NULL ? buckets[1] : buckets[2];
	*tails[1] = buckets[2];
	k->child = buckets[0] != NULL ? buckets[0] :
		   buckets[1] != NULL ? buckets[1] : buckets[2];
}

static void key_free(struct imap_search_key *k)
{
	while (k != NULL) {
		struct imap_search_key *next = k->next;
		key_free(k->child);
		switch (k->type) {
		case SK_KEYWORD:
		case SK_UNKEYWORD:
		case SK_BODY:
		case SK_TEXT:
		case SK_EMAILID:
		case SK_THREADID:
			free(k->u.str);
			break;
		case SK_HEADER:
			free(k->u.header.field);
			free(k->u.header.value);
			break;
		case SK_ENV:
			free(k->u.env.value);
			break;
		case SK_SEQSET:
		case SK_UIDSET:
			free(k->u.set.r);
			free(k->u.set.resolved);
			break;
		default:
			break;
		}
		free(k->uids);
		free(k);
		k = next;
	}
}

void imap_search_program_free(struct imap_search_program **prog)
{
	if (*prog == NULL)
		return;
	key_free((*prog)->root);
	free(*prog);
	*prog = NULL;
}

static bool parse_nz32(const char *p, const char *end, uint32_t *v_r)
{
	uint64_t v = 0;
	if (p == end || *p == '0')
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*v_r = (uint32_t)v;
	return true;
}

int imap_partial_parse(struct slice s, struct imap_partial *p_r)
{
	const char *colon = memchr(s.ptr, ':', s.len);
	if (colon == NULL)
		return -1;
	const char *a = s.ptr, *b = colon + 1, *end = s.ptr + s.len;
	bool neg_a = a < colon && *a == '-', neg_b = b < end && *b == '-';
	uint32_t x, y;
	if (neg_a != neg_b || !parse_nz32(a + neg_a, colon, &x) ||
	    !parse_nz32(b + neg_b, end, &y))
		return -1;
	p_r->lo = x < y ? x : y;
	p_r->hi = x < y ? y : x;
	p_r->last = neg_a;
	return 0;
}

bool imap_partial_select(const struct imap_partial *p, size_t count,
			 size_t *first_r, size_t *last_r)
{
	if (count == 0 || p->lo > count)
		return false;
	size_t lo = p->lo - 1;
	size_t hi = p->hi - 1 < count ? p->hi - 1 : count - 1;
	if (p->last) {
		/* -1 is the last element */
		*first_r = count - 1 - hi;
		*last_r = count - 1 - lo;
	} else {
		*first_r = lo;
		*last_r = hi;
	}
	return true;
}

int imap_search_parse_return(const struct imap_arg *list,
			     struct imap_search_program *prog,
			     const char **error_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} opts[] = {
		{"MIN", IMAP_SEARCH_RETURN_MIN},
		{"MAX", IMAP_SEARCH_RETURN_MAX},
		{"ALL", IMAP_SEARCH_RETURN_ALL},
		{"COUNT", IMAP_SEARCH_RETURN_COUNT},
		{"SAVE", IMAP_SEARCH_RETURN_SAVE},
		{"UPDATE", IMAP_SEARCH_RETURN_UPDATE},
		{"CONTEXT", IMAP_SEARCH_RETURN_CONTEXT},
		{"PARTIAL", IMAP_SEARCH_RETURN_PARTIAL},
	};
	prog->esearch = true;
	for (; list->type != IMAP_ARG_EOL; list++) {
		size_t i;
		for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
			if (arg_atom_is(list, opts[i].name))
				break;
		if (i == sizeof(opts) / sizeof(opts[0])) {
			*error_r = "Unknown RETURN option";
			return -1;
		}
		unsigned bit = opts[i].bit;
		/* RFC 9394 3.1, RFC 5267 4: one PARTIAL (or ALL), one
		 * UPDATE */
		if ((prog->return_opts & bit) &&
		    (bit & (IMAP_SEARCH_RETURN_PARTIAL | IMAP_SEARCH_RETURN_ALL |
			    IMAP_SEARCH_RETURN_UPDATE))) {
			*error_r = "RETURN option given twice";
			return -1;
		}
		if (bit == IMAP_SEARCH_RETURN_PARTIAL) {
			list++;
			if (list->type != IMAP_ARG_ATOM ||
			    imap_partial_parse(list->str, &prog->partial) < 0) {
				*error_r = "PARTIAL needs a range such as 1:100 or -1:-100";
				return -1;
			}
		}
		prog->return_opts |= bit;
	}
	if ((prog->return_opts & IMAP_SEARCH_RETURN_PARTIAL) &&
	    (prog->return_opts & IMAP_SEARCH_RETURN_ALL)) {
		*error_r = "PARTIAL and ALL cannot be used together";
		return -1;
	}
	/* RFC 4731 3.1: "RETURN ()" means ALL */
	if (prog->return_opts == 0)
		prog->return_opts = IMAP_SEARCH_RETURN_ALL;
	return 0;
}

/* RETURN (opts): RFC 4731 3.1, RFC 5267, RFC 9394. */
static int parse_return(struct parser *p, const struct imap_arg *list)
{
	const char *error;
	if (imap_search_parse_return(list, p->prog, &error) < 0)
		return fail(p, IMAP_SEARCH_ERR_SYNTAX, error);
	return 0;
}

static int check_charset(struct parser *p, const struct imap_arg *a)
{
	struct slice cs;
	if (!arg_astring(a, &cs))
		return fail(p, IMAP_SEARCH_ERR_SYNTAX, "Missing charset");
	if (slice_eq_ci(cs, "UTF-8") || slice_eq_ci(cs, "US-ASCII"))
		return 0;
	char *name = xstrndup(cs.ptr, cs.len);
	iconv_t cd = memchr(cs.ptr, '\0', cs.len) != NULL ? (iconv_t)-1 :
		     iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1) {
		free(name);
		return fail(p, IMAP_SEARCH_ERR_BADCHARSET,
			    "Unsupported charset");
	}
	iconv_close(cd);
	p->charset = name;
	return 0;
}

int imap_search_parse(const struct imap_arg *args,
		      const struct imap_search_parse_params *params,
		      struct imap_search_program **prog_r,
		      enum imap_search_parse_error *kind_r,
		      const char **error_r)
{
	struct parser p;
	memset(&p, 0, sizeof(p));
	p.prog = xcalloc(1, sizeof(*p.prog));

	if (params->allow_return && arg_atom_is(args, "RETURN")) {
		if (args[1].type != IMAP_ARG_LIST)
			fail(&p, IMAP_SEARCH_ERR_SYNTAX, "RETURN needs a list");
		else
			parse_return(&p, args[1].list);
		args += 2;
	}
	if (p.error == NULL && params->charset_required) {
		/* SORT/THREAD: charset and at least one key */
		if (args[0].type == IMAP_ARG_EOL || args[1].type == IMAP_ARG_EOL)
			fail(&p, IMAP_SEARCH_ERR_SYNTAX,
			     "Missing charset or search criteria");
		else if (check_charset(&p, args) == 0)
			args++;
	} else if (p.error == NULL && arg_atom_is(args, "CHARSET")) {
		if (check_charset(&p, args + 1) == 0)
			args += 2;
	}
	if (p.error == NULL)
		p.prog->root = parse_and(&p, args);
	free(p.charset);
	if (p.error != NULL) {
		*kind_r = p.kind;
		*error_r = p.error;
		imap_search_program_free(&p.prog);
		return -1;
	}
	order_by_cost(p.prog->root);
	*prog_r = p.prog;
	return 0;
}

/* ---- the cached ENVELOPE ------------------------------------------ */

bool imap_envelope_value(const char **p, struct buf *out, bool *nil_r)
{
	const char *s = *p;
	*nil_r = false;
	while (*s == ' ')
		s++;
	if (strncasecmp(s, "NIL", 3) == 0) {
		*nil_r = true;
		*p = s + 3;
		return true;
	}
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (out != NULL)
				buf_append_char(out, *s);
		}
		if (*s != '"')
			return false;
		*p = s + 1;
		return true;
	}
	if (*s == '{') {
		char *end;
		unsigned long n = strtoul(s + 1, &end, 10);
		if (*end != '}' || end[1] != '\r' || end[2] != '\n' ||
		    strnlen(end + 3, n) < n)
			return false;
		if (out != NULL)
			buf_append(out, end + 3, n);
		*p = end + 3 + n;
		return true;
	}
	if (*s == '(') {
		s++;
		for (;;) {
			bool nil;
			while (*s == ' ')
				s++;
			if (*s == ')') {
				*p = s + 1;
				return true;
			}
			if (*s == '\0' || !imap_envelope_value(&s, NULL, &nil))
				return false;
		}
	}
	return false;
}

const char *imap_envelope_find(const char *env, enum imap_env_field field)
{
	const char *p = env;
	bool nil;
	if (p == NULL || *p++ != '(')
		return NULL;
	for (int i = 0; i < (int)field; i++)
		if (!imap_envelope_value(&p, NULL, &nil))
			return NULL;
	while (*p == ' ')
		p++;
	return p;
}

int imap_envelope_next_address(const char **p, bool *in_list,
			       struct imap_envelope_address *a)
{
	const char *s = *p;
	bool nil;
	while (*s == ' ')
		s++;
	if (!*in_list) {
		if (strncasecmp(s, "NIL", 3) == 0)
			return 0;
		if (*s++ != '(')
			return -1;
		*in_list = true;
		while (*s == ' ')
			s++;
	}
	if (*s == ')') {
		*p = s + 1;
		return 0;
	}
	if (*s++ != '(')
		return -1;
	buf_reset(&a->name);
	buf_reset(&a->adl);
	buf_reset(&a->mailbox);
	buf_reset(&a->host);
	if (!imap_envelope_value(&s, &a->name, &a->name_nil) ||
	    !imap_envelope_value(&s, &a->adl, &nil) ||
	    !imap_envelope_value(&s, &a->mailbox, &a->mailbox_nil) ||
	    !imap_envelope_value(&s, &a->host, &a->host_nil))
		return -1;
	while (*s == ' ')
		s++;
	if (*s++ != ')')
		return -1;
	*p = s;
	return 1;
}

static const char *bstr(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

/* Renders as Dovecot does for its address searches, so that e.g. FROM
 * "rg <jo" finds "Jörg <jorg@example.com>" on both. */
void imap_envelope_addresses_text(const char *env, enum imap_env_field field,
				  struct buf *out)
{
	const char *p = imap_envelope_find(env, field);
	struct imap_envelope_address a;
	struct buf raw;
	bool in_list = false, first = true, in_group = false;
	int ret;

	if (p == NULL)
		return;
	memset(&a, 0, sizeof(a));
	buf_init(&raw, 0);
	while ((ret = imap_envelope_next_address(&p, &in_list, &a)) == 1) {
		if (a.host_nil && a.mailbox_nil) {   /* end of group */
			buf_append_char(&raw, ';');
			in_group = false;
			first = false;
			continue;
		}
		if (!first && !(in_group && raw.len > 0 &&
				raw.data[raw.len - 1] == ' '))
			buf_append_str(&raw, ", ");
		first = false;
		if (a.host_nil) {                    /* start of group */
			buf_printf(&raw, "%s: ", bstr(&a.mailbox));
			in_group = true;
			continue;
		}
		if (!a.name_nil && a.name.len > 0)
			buf_printf(&raw, "%s <%s@%s>", bstr(&a.name),
				   bstr(&a.mailbox), bstr(&a.host));
		else
			buf_printf(&raw, "%s@%s", bstr(&a.mailbox), bstr(&a.host));
	}
	mail_header_decode(out, slice_make(bstr(&raw), raw.len));
	buf_free(&raw);
	buf_free(&a.name);
	buf_free(&a.adl);
	buf_free(&a.mailbox);
	buf_free(&a.host);
}

/* ---- evaluation ---------------------------------------------------- */

struct eval_ctx {
	const struct imap_search_env *env;
	const struct store_msg *msg;
	uint32_t seq;
	uint32_t last_seq, last_uid;   /* what "*" means */
	/* envelope fields as text, made on first need for this message */
	struct buf env_text[IMAP_ENV_MESSAGE_ID + 1];
	bool env_done[IMAP_ENV_MESSAGE_ID + 1];
	bool env_nil[IMAP_ENV_MESSAGE_ID + 1];
	/* the message's header (store_blob_open_head), loaded on first
	 * need for this message */
	bool header_tried;
	struct store_blob blob;
	bool blob_open;
	const char *hdr;
	size_t hdr_len;
	struct buf tmp;
};

static int cmp_range(const void *a, const void *b)
{
	const struct store_uid_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Turns a parsed set into sorted disjoint ranges, "*" being star. An
 * empty mailbox has no "*": ranges naming it match nothing there. */
static void resolve_set(struct sk_set *set, uint32_t star)
{
	free(set->resolved);
	set->resolved = xmalloc((set->n ? set->n : 1) * sizeof(*set->resolved));
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo ? set->r[i].lo : star;
		uint32_t hi = set->r[i].hi ? set->r[i].hi : star;
		if (lo == 0 || hi == 0)
			continue;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		set->resolved[n++] = (struct store_uid_range){lo, hi};
	}
	qsort(set->resolved, n, sizeof(*set->resolved), cmp_range);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && set->resolved[i].lo <= set->resolved[m - 1].hi + 1 &&
		    set->resolved[m - 1].hi != UINT32_MAX) {
			if (set->resolved[i].hi > set->resolved[m - 1].hi)
				set->resolved[m - 1].hi = set->resolved[i].hi;
		} else {
			set->resolved[m++] = set->resolved[i];
		}
	}
	set->resolved_n = m;
}

static bool in_set(const struct sk_set *set, uint32_t v)
{
	size_t lo = 0, hi = set->resolved_n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v < set->resolved[mid].lo)
			hi = mid;
		else if (v > set->resolved[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static bool in_uids(const uint32_t *uids, size_t n, uint32_t uid)
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

static bool load_header(struct eval_ctx *c)
{
	if (!c->header_tried) {
		c->header_tried = true;
		/* A message expunged by another session since the pass began
		 * has no blob any more: it simply does not match. */
		if (store_blob_open_head(c->env->user, c->env->mailbox,
					 c->msg->uid, &c->blob, NULL) == 0) {
			c->blob_open = true;
			c->hdr = c->blob.data;
			c->hdr_len = mail_header_size(c->blob.data, c->blob.len);
		}
	}
	return c->blob_open;
}

static void unload_header(struct eval_ctx *c)
{
	if (c->blob_open)
		store_blob_close(&c->blob);
	c->blob_open = false;
	c->header_tried = false;
	c->hdr = NULL;
	c->hdr_len = 0;
}

/* HEADER field string (RFC 9051 6.4.4): some field of that name whose
 * decoded value contains string; "" matches any field of that name. */
static const struct buf *env_field(struct eval_ctx *c, enum imap_env_field f);

static bool match_header(struct eval_ctx *c, const struct imap_search_key *k)
{
	if (k->u.header.env >= 0) {
		enum imap_env_field f = (enum imap_env_field)k->u.header.env;
		const struct buf *b = env_field(c, f);
		size_t n = strlen(k->u.header.value);
		return !c->env_nil[f] &&
		       (n == 0 || mail_text_contains(b->data ? b->data : "",
						     b->len, k->u.header.value, n));
	}
	/* only a candidate of the index can match: the others are never
	 * read (the index proposes, the message decides) */
	if (k->have_uids && !in_uids(k->uids, k->uid_count, c->msg->uid))
		return false;
	if (!load_header(c))
		return false;
	struct mail_header_iter it;
	struct slice name, value;
	size_t nlen = strlen(k->u.header.value);
	mail_header_iter_init(&it, c->hdr, c->hdr_len);
	while (mail_header_iter_next(&it, &name, &value) == 1) {
		if (!slice_eq_ci(name, k->u.header.field))
			continue;
		if (nlen == 0)
			return true;
		buf_reset(&c->tmp);
		mail_header_decode(&c->tmp, value);
		if (mail_text_contains(c->tmp.data ? c->tmp.data : "", c->tmp.len,
				       k->u.header.value, nlen))
			return true;
	}
	return false;
}

/* The text of an envelope field of the current message: subject and
 * date decoded / as is, address lists rendered (imap_envelope_addresses_
 * text). */
static const struct buf *env_field(struct eval_ctx *c, enum imap_env_field f)
{
	struct buf *b = &c->env_text[f];
	if (c->env_done[f])
		return b;
	c->env_done[f] = true;
	buf_reset(b);
	c->env_nil[f] = true;
	if (f == IMAP_ENV_SUBJECT || f == IMAP_ENV_DATE ||
	    f == IMAP_ENV_MESSAGE_ID || f == IMAP_ENV_IN_REPLY_TO) {
		const char *p = imap_envelope_find(c->msg->envelope, f);
		struct buf raw;
		bool nil = true;
		buf_init(&raw, 0);
		if (p != NULL && imap_envelope_value(&p, &raw, &nil) && !nil) {
			c->env_nil[f] = false;
			if (f == IMAP_ENV_SUBJECT)
				mail_header_decode(b, slice_make(raw.data ? raw.data : "",
								 raw.len));
			else
				buf_append(b, raw.data ? raw.data : "", raw.len);
		}
		buf_free(&raw);
	} else {
		imap_envelope_addresses_text(c->msg->envelope, f, b);
		c->env_nil[f] = b->len == 0;
	}
	return b;
}

/* FROM/TO/CC/BCC/SUBJECT (RFC 9051 6.4.4): "the envelope structure's
 * ... field" contains the string; "" matches when the field is there. */
static bool match_env(struct eval_ctx *c, const struct imap_search_key *k)
{
	const struct buf *b = env_field(c, k->u.env.field);
	size_t nlen = strlen(k->u.env.value);
	if (c->env_nil[k->u.env.field])
		return false;
	return nlen == 0 ||
	       mail_text_contains(b->data ? b->data : "", b->len,
				  k->u.env.value, nlen);
}

/* The day of the Date: header as written, in seconds since the epoch at
 * that day's UTC midnight. Without a usable Date: the sent date is the
 * epoch, as Dovecot has it (RFC 3501 does not say; SORT's fallback to
 * INTERNALDATE in RFC 5256 is for sorting only), so such messages match
 * SENTBEFORE and never SENTSINCE. */
static time_t sent_day(struct eval_ctx *c)
{
	time_t t = 0, dt;
	int tz;
	const struct buf *d = env_field(c, IMAP_ENV_DATE);
	if (d->len > 0 && mail_date_parse(d->data, d->len, &dt, &tz))
		t = dt + (time_t)tz * 60;
	return t - (((t % 86400) + 86400) % 86400);
}

static time_t utc_day(time_t t)
{
	return t - (((t % 86400) + 86400) % 86400);
}

static bool has_keyword(const struct store_msg *m, const char *kw)
{
	for (size_t i = 0; i < m->keyword_count; i++)
		if (strcasecmp(m->keywords[i], kw) == 0)
			return true;
	return false;
}

static bool eval_key(struct eval_ctx *c, const struct imap_search_key *k);

static bool eval_date(enum sk_type type, time_t day, time_t key_day)
{
	switch (type) {
	case SK_BEFORE:
	case SK_SENTBEFORE:
	case SK_SAVEDBEFORE:
		return day < key_day;
	case SK_ON:
	case SK_SENTON:
	case SK_SAVEDON:
		return day == key_day;
	default:
		return day >= key_day;
	}
}

static bool eval_key(struct eval_ctx *c, const struct imap_search_key *k)
{
	const struct store_msg *m = c->msg;
	const struct imap_search_key *x;
	const struct imap_search_env *env = c->env;

	switch (k->type) {
	case SK_ALL:
		return true;
	case SK_AND:
		for (x = k->child; x != NULL; x = x->next)
			if (!eval_key(c, x))
				return false;
		return true;
	case SK_OR:
		for (x = k->child; x != NULL; x = x->next)
			if (eval_key(c, x))
				return true;
		return false;
	case SK_NOT:
		return !eval_key(c, k->child);
	case SK_FLAGS_SET:
		return (m->flags & k->u.flags) == k->u.flags;
	case SK_FLAGS_UNSET:
		return (m->flags & k->u.flags) == 0;
	case SK_KEYWORD:
		return has_keyword(m, k->u.str);
	case SK_UNKEYWORD:
		return !has_keyword(m, k->u.str);
	case SK_RECENT:
		return store_view_is_recent(env->view, c->seq);
	case SK_NEW:
		return store_view_is_recent(env->view, c->seq) &&
		       (m->flags & STORE_FLAG_SEEN) == 0;
	case SK_OLD:
		return !store_view_is_recent(env->view, c->seq);
	case SK_SEQSET:
		return in_set(&k->u.set, c->seq);
	case SK_UIDSET:
		return in_set(&k->u.set, m->uid);
	case SK_SAVED:
		return in_uids(env->saved_uids, env->saved_count, m->uid);
	case SK_LARGER:
		return m->size > k->u.num;
	case SK_SMALLER:
		return m->size < k->u.num;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
		return eval_date(k->type, utc_day(m->internaldate), k->u.day);
	case SK_SAVEDBEFORE:
	case SK_SAVEDON:
	case SK_SAVEDSINCE:
		return eval_date(k->type, utc_day(m->savedate), k->u.day);
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		return eval_date(k->type, sent_day(c), k->u.day);
	case SK_OLDER:   /* RFC 5032: age in seconds, by INTERNALDATE */
		return (uint64_t)(env->now - m->internaldate) > k->u.num &&
		       env->now >= m->internaldate;
	case SK_YOUNGER:
		return env->now < m->internaldate ||
		       (uint64_t)(env->now - m->internaldate) <= k->u.num;
	case SK_HEADER:
		return match_header(c, k);
	case SK_ENV:
		return match_env(c, k);
	case SK_BODY:
	case SK_TEXT:
		if (k->u.str[0] == '\0')
			return true;
		return in_uids(k->uids, k->uid_count, m->uid);
	case SK_MODSEQ:
		return m->modseq >= k->u.num;
	case SK_EMAILID:
		return strcmp(m->emailid, k->u.str) == 0;
	case SK_THREADID:
		return m->threadid[0] != '\0' && strcmp(m->threadid, k->u.str) == 0;
	}
	return false;
}

/* Sorted UIDs of a and b both, into a. */
static void uids_intersect(uint32_t *a, size_t *na, const uint32_t *b,
			   size_t nb)
{
	size_t w = 0, j = 0;
	for (size_t i = 0; i < *na; i++) {
		while (j < nb && b[j] < a[i])
			j++;
		if (j < nb && b[j] == a[i])
			a[w++] = a[i];
	}
	*na = w;
}

/* HEADER field value: the messages whose indexed header text has
 * "field: " and value (a superset of the matches, RFC 9051 6.4.4);
 * match_header confirms each against the message. An empty value (any
 * field of that name) is not asked: the index leaves empty fields out. */
static int header_candidates(struct imap_search_key *k,
			     const struct eval_ctx *c,
			     const struct store_uid_range *range,
			     struct store_error *err)
{
	free(k->uids);
	k->uids = NULL;
	k->uid_count = 0;
	k->have_uids = false;
	if (k->u.header.value[0] == '\0' || range == NULL)
		return 0;
	char *name = xasprintf("%s: ", k->u.header.field);
	uint32_t *named = NULL;
	size_t nnamed = 0;
	int r = store_search_text(c->env->user, c->env->mailbox,
				  STORE_TEXT_HEADER, k->u.header.value, range,
				  1, &k->uids, &k->uid_count, err);
	if (r == 0)
		r = store_search_text(c->env->user, c->env->mailbox,
				      STORE_TEXT_HEADER, name, range, 1,
				      &named, &nnamed, err);
	free(name);
	if (r < 0) {
		free(named);
		return -1;
	}
	if (k->uid_count > 1)
		qsort(k->uids, k->uid_count, sizeof(*k->uids), u32_cmp);
	if (nnamed > 1)
		qsort(named, nnamed, sizeof(*named), u32_cmp);
	uids_intersect(k->uids, &k->uid_count, named, nnamed);
	free(named);
	k->have_uids = true;
	return 0;
}

/* Resolves sets and asks the text index, for every key of the tree.
 * Collects which store fields the pass needs. */
static int prepare(struct imap_search_key *k, const struct eval_ctx *c,
		   const struct store_uid_range *range, unsigned *fields,
		   struct store_error *err)
{
	for (; k != NULL; k = k->next) {
		switch (k->type) {
		case SK_SEQSET:
			resolve_set(&k->u.set, c->last_seq);
			break;
		case SK_UIDSET:
			resolve_set(&k->u.set, c->last_uid);
			break;
		case SK_BODY:
		case SK_TEXT:
			free(k->uids);
			k->uids = NULL;
			k->uid_count = 0;
			if (k->u.str[0] == '\0' || range == NULL)
				break;
			if (store_search_text(c->env->user, c->env->mailbox,
					      k->type == SK_BODY ? STORE_TEXT_BODY
								 : STORE_TEXT_ALL,
					      k->u.str, range, 1, &k->uids,
					      &k->uid_count, err) < 0)
				return -1;
			if (k->uid_count > 1)
				qsort(k->uids, k->uid_count, sizeof(*k->uids),
				      u32_cmp);
			break;
		case SK_THREADID:
			*fields |= STORE_FETCH_OBJECTID;
			break;
		case SK_HEADER:
			if (k->u.header.env >= 0)
				*fields |= STORE_FETCH_ENVELOPE;
			else if (header_candidates(k, c, range, err) < 0)
				return -1;
			break;
		case SK_ENV:
		case SK_SENTBEFORE:
		case SK_SENTON:
		case SK_SENTSINCE:
			*fields |= STORE_FETCH_ENVELOPE;
			break;
		case SK_LARGER:
		case SK_SMALLER:
		case SK_BEFORE:
		case SK_ON:
		case SK_SINCE:
		case SK_SAVEDBEFORE:
		case SK_SAVEDON:
		case SK_SAVEDSINCE:
		case SK_OLDER:
		case SK_YOUNGER:
			*fields |= STORE_FETCH_SIZE;
			break;
		default:
			break;
		}
		if (prepare(k->child, c, range, fields, err) < 0)
			return -1;
	}
	return 0;
}

static void result_add(struct imap_search_result *r, size_t *cap,
		       uint32_t seq, uint32_t uid, uint64_t modseq)
{
	if (r->count == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		r->seqs = xrealloc(r->seqs, *cap * sizeof(*r->seqs));
		r->uids = xrealloc(r->uids, *cap * sizeof(*r->uids));
		r->modseqs = xrealloc(r->modseqs, *cap * sizeof(*r->modseqs));
	}
	r->seqs[r->count] = seq;
	r->uids[r->count] = uid;
	r->modseqs[r->count] = modseq;
	r->count++;
	if (modseq > r->highest_modseq)
		r->highest_modseq = modseq;
}

int imap_search_run(struct imap_search_program *prog,
		    const struct imap_search_env *env,
		    struct imap_search_result *result_r,
		    struct store_error *err)
{
	struct eval_ctx c;
	memset(&c, 0, sizeof(c));
	memset(result_r, 0, sizeof(*result_r));
	c.env = env;
	c.last_seq = store_view_count(env->view);
	c.last_uid = c.last_seq ? store_view_uid(env->view, c.last_seq) : 0;
	buf_init(&c.tmp, 0);

	/* Only what the view knows: messages that arrived after the last
	 * sync have no sequence number the client could be told yet. */
	struct store_uid_range range = {0, 0};
	if (c.last_seq > 0)
		range = (struct store_uid_range){store_view_uid(env->view, 1),
						 c.last_uid};
	unsigned fields = STORE_FETCH_FLAGS;
	if (prepare(prog->root, &c, c.last_seq ? &range : NULL, &fields, err) < 0)
		return -1;
	if (c.last_seq == 0)
		return 0;

	struct store_fetch *f;
	const struct store_msg *m;
	size_t cap = 0;
	int ret;
	if (store_fetch_begin(env->user, env->mailbox, &range, 1, fields, &f,
			      err) < 0)
		return -1;
	while ((ret = store_fetch_next(f, &m, err)) == 1) {
		/* UIDs come in order; so do sequence numbers */
		uint32_t seq = store_view_seq(env->view, m->uid);
		if (seq == 0)
			continue;
		c.msg = m;
		c.seq = seq;
		memset(c.env_done, 0, sizeof(c.env_done));
		bool match = eval_key(&c, prog->root);
		unload_header(&c);
		if (match)
			result_add(result_r, &cap, seq, m->uid, m->modseq);
	}
	store_fetch_end(&f);
	buf_free(&c.tmp);
	for (size_t i = 0; i <= IMAP_ENV_MESSAGE_ID; i++)
		buf_free(&c.env_text[i]);
	if (ret < 0) {
		imap_search_result_free(result_r);
		return -1;
	}
	return 0;
}

void imap_search_result_free(struct imap_search_result *r)
{
	free(r->seqs);
	free(r->uids);
	free(r->modseqs);
	memset(r, 0, sizeof(*r));
}

/* ---- replies ------------------------------------------------------- */

int imap_search_append_set(struct buf *out, const uint32_t *nums, size_t count)
{
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0;) {
		size_t j = i;
		while (j + 1 < count && nums[j + 1] == nums[j] + 1)
			j++;
		if (i > 0)
			ret |= buf_append_char(out, ',');
		if (j == i)
			ret |= buf_printf(out, "%u", nums[i]);
		else
			ret |= buf_printf(out, "%u:%u", nums[i], nums[j]);
		i = j + 1;
	}
	return ret;
}

static int append_quoted_tag(struct buf *out, const char *tag, size_t len)
{
	/* a tag is an atom without '+', so it never needs escaping */
	int ret = buf_append_str(out, " (TAG \"");
	ret |= buf_append(out, tag, len);
	return ret | buf_append_str(out, "\")");
}

bool *imap_search_returned(const struct imap_search_program *prog,
			   size_t count)
{
	unsigned opts = prog->return_opts;
	bool *sel = xcalloc(count ? count : 1, sizeof(bool));
	bool all = (opts & (IMAP_SEARCH_RETURN_ALL | IMAP_SEARCH_RETURN_COUNT)) ||
		   !(opts & (IMAP_SEARCH_RETURN_MIN | IMAP_SEARCH_RETURN_MAX |
			     IMAP_SEARCH_RETURN_PARTIAL));
	size_t first, last;
	if (count == 0)
		return sel;
	if (all) {
		for (size_t i = 0; i < count; i++)
			sel[i] = true;
		return sel;
	}
	if (opts & IMAP_SEARCH_RETURN_MIN)
		sel[0] = true;
	if (opts & IMAP_SEARCH_RETURN_MAX)
		sel[count - 1] = true;
	if ((opts & IMAP_SEARCH_RETURN_PARTIAL) &&
	    imap_partial_select(&prog->partial, count, &first, &last))
		for (size_t i = first; i <= last; i++)
			sel[i] = true;
	return sel;
}

/* A set in result order: ascending runs become ranges ("5,3:4,2"); for
 * a SEARCH result, which ascends, it is the usual compact set. */
static int append_ordered_set(struct buf *out, const uint32_t *nums,
			      size_t count)
{
	int ret = 0;
	for (size_t i = 0; i < count && ret == 0;) {
		size_t j = i;
		while (j + 1 < count && nums[j + 1] == nums[j] + 1)
			j++;
		if (i > 0)
			ret |= buf_append_char(out, ',');
		if (j == i)
			ret |= buf_printf(out, "%u", nums[i]);
		else
			ret |= buf_printf(out, "%u:%u", nums[i], nums[j]);
		i = j + 1;
	}
	return ret;
}

int imap_esearch_reply(const struct imap_search_program *prog,
		       const struct imap_esearch *e, struct buf *out)
{
	unsigned opts = prog->esearch ? prog->return_opts : IMAP_SEARCH_RETURN_ALL;
	const uint32_t *nums = e->nums;
	size_t n = e->count;
	int ret = 0;

	/* RFC 5182 2.1: SAVE alone gives no ESEARCH response; nor does an
	 * UPDATE context that asked for no data (RFC 5267 4.3) */
	if (prog->esearch && !(opts & IMAP_SEARCH_RETURN_DATA) &&
	    (opts & IMAP_SEARCH_RETURN_SAVE))
		return 0;
	ret |= buf_append_str(out, "* ESEARCH");
	ret |= append_quoted_tag(out, e->tag, e->tag_len);
	if (e->uid)
		ret |= buf_append_str(out, " UID");
	if (n > 0 && (opts & IMAP_SEARCH_RETURN_MIN))
		ret |= buf_printf(out, " MIN %u", nums[0]);
	if (n > 0 && (opts & IMAP_SEARCH_RETURN_MAX))
		ret |= buf_printf(out, " MAX %u", nums[n - 1]);
	if (n > 0 && (opts & IMAP_SEARCH_RETURN_ALL)) {
		ret |= buf_append_str(out, " ALL ");
		ret |= append_ordered_set(out, nums, n);
	}
	if (opts & IMAP_SEARCH_RETURN_PARTIAL) {
		/* RFC 9394 3.1: the range as asked, and NIL when nothing
		 * falls in it */
		const struct imap_partial *p = &prog->partial;
		size_t first, last;
		if (p->last)
			ret |= buf_printf(out, " PARTIAL (-%u:-%u ", p->lo, p->hi);
		else
			ret |= buf_printf(out, " PARTIAL (%u:%u ", p->lo, p->hi);
		if (imap_partial_select(p, n, &first, &last)) {
			if (e->sorted) {
				ret |= append_ordered_set(out, nums + first,
							  last - first + 1);
			} else {
				ret |= imap_search_append_set(out, nums + first,
							      last - first + 1);
			}
		} else {
			ret |= buf_append_str(out, "NIL");
		}
		ret |= buf_append_char(out, ')');
	}
	if (opts & IMAP_SEARCH_RETURN_COUNT)
		ret |= buf_printf(out, " COUNT %zu", n);
	if (e->show_modseq && n > 0 && e->modseqs != NULL) {
		/* RFC 4731 3.2, RFC 7162 3.1.5: the highest modseq of the
		 * messages returned */
		bool *sel = imap_search_returned(prog, n);
		uint64_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (sel[i] && e->modseqs[i] > m)
				m = e->modseqs[i];
		free(sel);
		ret |= buf_printf(out, " MODSEQ %llu", (unsigned long long)m);
	}
	return ret;
}

int imap_search_reply(const struct imap_search_program *prog,
		      const struct imap_search_result *r,
		      const struct imap_search_reply_params *params,
		      struct buf *out)
{
	const uint32_t *nums = params->uid ? r->uids : r->seqs;
	bool modseq = params->condstore && prog->has_modseq && r->count > 0;
	int ret = 0;

	if (!prog->esearch && !params->esearch) {
		ret |= buf_append_str(out, "* SEARCH");
		for (size_t i = 0; i < r->count && ret == 0; i++)
			ret |= buf_printf(out, " %u", nums[i]);
		if (modseq)
			ret |= buf_printf(out, " (MODSEQ %llu)",
					  (unsigned long long)r->highest_modseq);
		return ret;
	}
	struct imap_esearch e = {
		.tag = params->tag, .tag_len = params->tag_len,
		.uid = params->uid, .nums = nums, .modseqs = r->modseqs,
		.count = r->count, .show_modseq = modseq,
	};
	return imap_esearch_reply(prog, &e, out);
}

void imap_search_saved_uids(const struct imap_search_program *prog,
			    const struct imap_search_result *r,
			    uint32_t **uids_r, size_t *count_r)
{
	*uids_r = NULL;
	*count_r = 0;
	if (r->count == 0)
		return;
	bool *sel = imap_search_returned(prog, r->count);
	*uids_r = xmalloc(r->count * sizeof(**uids_r));
	for (size_t i = 0; i < r->count; i++)
		if (sel[i])
			(*uids_r)[(*count_r)++] = r->uids[i];
	free(sel);
}

