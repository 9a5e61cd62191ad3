/*
 * The executor: walks a compiled script's commands, keeps variables
 * (RFC 5229), the internal flags (RFC 5232), the header as editheader
 * leaves it (RFC 5293) and the actions, and runs a sequence of scripts
 * with Pigeonhole's rules (sieve.h). Tests live in sieve-test.c.
 *
 * Bounded: every command and every unit of matching work is charged to
 * the step budget; variables are capped at max_variable_size, expanded
 * strings at their literal length plus that; includes at
 * max_include_depth with cycles refused.
 */
#include "sieve-run.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "mail.h"

#define MAX_VARIABLES 1024

void sv_fail(struct sv_run *run, const struct sv_node *n, const char *fmt,
	     ...)
{
	if (run->failed)
		return;
	run->failed = true;
	run->r->error = true;
	run->r->error_script = run->script_index;
	run->r->error_line = n ? n->line : 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(run->r->error_text, sizeof(run->r->error_text), fmt, ap);
	va_end(ap);
}

bool sv_charge(struct sv_run *run, const struct sv_node *n, uint64_t steps)
{
	run->steps += steps;
	if (run->steps <= run->lim->max_steps)
		return !run->failed;
	sv_fail(run, n, "the script used its step budget (max_steps %llu)",
		(unsigned long long)run->lim->max_steps);
	return false;
}

/* ---- variables ----------------------------------------------------- */

static struct sv_var *vars_find(struct sv_vars *vs, const char *name,
				size_t len)
{
	for (size_t i = 0; i < vs->n; i++)
		if (strlen(vs->v[i].name) == len &&
		    strncasecmp(vs->v[i].name, name, len) == 0)
			return &vs->v[i];
	return NULL;
}

static void vars_free(struct sv_vars *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i].name);
		buf_free(&vs->v[i].val);
	}
	free(vs->v);
	vs->v = NULL;
	vs->n = 0;
}

static bool is_global(const struct sv_frame *f, const char *name, size_t len)
{
	for (size_t i = 0; i < f->nglobals; i++)
		if (strlen(f->globals[i]) == len &&
		    strncasecmp(f->globals[i], name, len) == 0)
			return true;
	return false;
}

struct buf *sv_var_lookup(struct sv_run *run, const char *name, size_t len,
			  bool create)
{
	struct sv_vars *vs = is_global(run->frame, name, len) ? &run->globals
							       : &run->frame->locals;
	struct sv_var *v = vars_find(vs, name, len);
	if (v || !create)
		return v ? &v->val : NULL;
	if (vs->n >= MAX_VARIABLES) {
		sv_fail(run, NULL, "more than %d variables", MAX_VARIABLES);
		return NULL;
	}
	vs->v = xrealloc(vs->v, (vs->n + 1) * sizeof(*vs->v));
	v = &vs->v[vs->n++];
	v->name = xstrndup(name, len);
	for (char *c = v->name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	buf_init(&v->val, 0);
	return &v->val;
}

void sv_set_matches(struct sv_run *run, const struct sv_captures *caps)
{
	if (!(run->frame->s->hdr->exts & (1u << EXT_VARIABLES)))
		return;
	for (unsigned i = 0; i < SV_MAX_MATCH; i++) {
		buf_reset(&run->match[i]);
		if (i < caps->count) {
			size_t n = caps->v[i].len;
			if (n > run->lim->max_variable_size)
				n = run->lim->max_variable_size;
			buf_append(&run->match[i], caps->v[i].ptr, n);
		}
	}
	run->nmatch = caps->count;
}

uint32_t sv_list_count(struct sv_run *run, uint32_t list)
{
	return run->frame->s->lists[list].count;
}

static bool var_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* RFC 5229 3: "${name}" and "${N}" replaced by their values (unknown:
 * empty); anything else that is not a reference stays as it is. */
static void expand(struct sv_run *run, const char *s, size_t n,
		   struct buf *out)
{
	size_t cap = n + run->lim->max_variable_size;
	for (size_t i = 0; i < n;) {
		if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
			const char *close = memchr(s + i + 2, '}', n - i - 2);
			if (close) {
				const char *name = s + i + 2;
				size_t nl = (size_t)(close - name);
				bool digits = nl > 0;
				for (size_t k = 0; k < nl; k++)
					if (!isdigit((unsigned char)name[k]))
						digits = false;
				const struct buf *val = NULL;
				bool ref = false;
				if (digits) {
					ref = true;
					unsigned idx = 0;
					for (size_t k = 0; k < nl && idx < 100; k++)
						idx = idx * 10 + (unsigned)(name[k] - '0');
					if (idx < SV_MAX_MATCH && idx < run->nmatch)
						val = &run->match[idx];
				} else if (var_name_ok(name, nl)) {
					ref = true;
					val = sv_var_lookup(run, name, nl, false);
				}
				if (ref) {
					if (val && val->len) {
						size_t take = val->len;
						if (out->len + take > cap)
							take = cap > out->len ? cap - out->len : 0;
						buf_append(out, val->data, take);
					}
					i = (size_t)(close - s) + 1;
					continue;
				}
			}
		}
		if (out->len < cap)
			buf_append_char(out, s[i]);
		i++;
	}
}

struct slice sv_string(struct sv_run *run, uint32_t list, uint32_t i,
		       struct buf *out)
{
	const struct sieve_script *s = run->frame->s;
	const struct sv_list *l = &s->lists[list];
	if (i >= l->count)
		return slice_make("", 0);
	const struct sv_str *st = &s->strs[l->first + i];
	const char *p = s->pool + st->off;
	if (!st->vars)
		return slice_make(p, st->len);
	buf_reset(out);
	expand(run, p, st->len, out);
	run->steps += out->len / 64;
	return slice_make(out->data ? out->data : "", out->len);
}

static char *string_dup(struct sv_run *run, uint32_t list, uint32_t i)
{
	struct buf b;
	buf_init(&b, 0);
	struct slice s = sv_string(run, list, i, &b);
	char *r = xstrndup(s.ptr, s.len);
	buf_free(&b);
	return r;
}

/* ---- flags (RFC 5232) ---------------------------------------------- */

static bool flags_has(const struct buf *f, const char *s, size_t n)
{
	if (f->len == 0)
		return false;
	const char *p = f->data, *e = f->data + f->len;
	while (p && p < e) {
		const char *sp = memchr(p, ' ', (size_t)(e - p));
		const char *we = sp ? sp : e;
		if ((size_t)(we - p) == n && strncasecmp(p, s, n) == 0)
			return true;
		p = we + 1;
	}
	return false;
}

void sv_flags_add(struct buf *f, const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		size_t st = i;
		while (i < len && s[i] != ' ')
			i++;
		if (i > st && !flags_has(f, s + st, i - st)) {
			if (f->len)
				buf_append_char(f, ' ');
			buf_append(f, s + st, i - st);
		}
	}
}

void sv_flags_remove(struct buf *f, const char *s, size_t len)
{
	struct buf keep;
	buf_init(&keep, 0);
	if (f->len == 0)
		return;
	const char *p = f->data, *e = f->data + f->len;
	while (p && p < e) {
		const char *sp = memchr(p, ' ', (size_t)(e - p));
		const char *we = sp ? sp : e;
		bool drop = false;
		size_t i = 0;
		while (i < len && !drop) {
			while (i < len && s[i] == ' ')
				i++;
			size_t st = i;
			while (i < len && s[i] != ' ')
				i++;
			if (i > st && (size_t)(we - p) == i - st &&
			    strncasecmp(p, s + st, i - st) == 0)
				drop = true;
		}
		if (!drop && we > p) {
			if (keep.len)
				buf_append_char(&keep, ' ');
			buf_append(&keep, p, (size_t)(we - p));
		}
		p = we + 1;
	}
	buf_free(f);
	*f = keep;
}

static void flags_to_list(const struct buf *f, char ***list_r, size_t *n_r)
{
	*list_r = NULL;
	*n_r = 0;
	if (f->len == 0)
		return;
	const char *p = f->data, *e = f->data + f->len;
	while (p && p < e) {
		const char *sp = memchr(p, ' ', (size_t)(e - p));
		const char *we = sp ? sp : e;
		if (we > p) {
			*list_r = xrealloc(*list_r, (*n_r + 1) * sizeof(char *));
			(*list_r)[(*n_r)++] = xstrndup(p, (size_t)(we - p));
		}
		p = we + 1;
	}
}

/* The flags of a :flags tag, or the internal variable. */
static void action_flags(struct sv_run *run, const struct sv_node *n,
			 struct sieve_action *a)
{
	if (n->targ[TS_FLAGS]) {
		struct buf f, tmp;
		buf_init(&f, 0);
		buf_init(&tmp, 0);
		uint32_t c = sv_list_count(run, n->targ[TS_FLAGS]);
		for (uint32_t i = 0; i < c; i++) {
			struct slice s = sv_string(run, n->targ[TS_FLAGS], i, &tmp);
			sv_flags_add(&f, s.ptr, s.len);
		}
		flags_to_list(&f, &a->flags, &a->flag_count);
		buf_free(&f);
		buf_free(&tmp);
	} else {
		flags_to_list(&run->flags, &a->flags, &a->flag_count);
	}
}

/* ---- actions ------------------------------------------------------- */

static void action_clear(struct sieve_action *a)
{
	free(a->mailbox);
	for (size_t i = 0; i < a->flag_count; i++)
		free(a->flags[i]);
	free(a->flags);
	free(a->address);
	free(a->text);
	free(a->subject);
	free(a->from);
	free(a->handle);
	for (size_t i = 0; i < a->address_count; i++)
		free(a->addresses[i]);
	free(a->addresses);
	free(a->id);
	memset(a, 0, sizeof(*a));
}

void sieve_result_free(struct sieve_result *r)
{
	for (size_t i = 0; i < r->count; i++)
		action_clear(&r->actions[i]);
	free(r->actions);
	free(r->header);
	memset(r, 0, sizeof(*r));
}

static struct sieve_action *action_new(struct sv_run *run,
				       const struct sv_node *n,
				       enum sieve_action_kind kind)
{
	if (kind != SIEVE_ACT_DUPLICATE && ++run->actions >
	    run->lim->max_actions) {
		sv_fail(run, n, "more than %u actions (max_actions)",
			run->lim->max_actions);
		return NULL;
	}
	struct sieve_result *r = run->r;
	r->actions = xrealloc(r->actions, (r->count + 1) * sizeof(*r->actions));
	struct sieve_action *a = &r->actions[r->count++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->line = n ? n->line : 0;
	a->script = run->script_index;
	return a;
}

static bool mailbox_eq(const char *a, const char *b)
{
	if (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0)
		return true;
	return strcmp(a, b) == 0;
}

/* RFC 5228 2.10.3: the same fileinto or redirect twice is done once. */
static bool action_dup(struct sv_run *run, enum sieve_action_kind kind,
		       const char *key)
{
	for (size_t i = 0; i < run->r->count; i++) {
		const struct sieve_action *a = &run->r->actions[i];
		if (a->kind != kind || a->script != run->script_index)
			continue;
		if (kind == SIEVE_ACT_KEEP || kind == SIEVE_ACT_DISCARD)
			return true;
		if (kind == SIEVE_ACT_FILEINTO && mailbox_eq(a->mailbox, key))
			return true;
		if (kind == SIEVE_ACT_REDIRECT && strcasecmp(a->address, key) == 0)
			return true;
	}
	return false;
}

static void do_fileinto(struct sv_run *run, const struct sv_node *n)
{
	char *box = string_dup(run, n->arg[0], 0);
	if (box[0] == '\0' || !mail_utf8_valid(box, strlen(box))) {
		sv_fail(run, n, "fileinto: invalid mailbox name");
		free(box);
		return;
	}
	if (!(n->tags & T_COPY))
		run->implicit_keep = false;
	if (action_dup(run, SIEVE_ACT_FILEINTO, box)) {
		free(box);
		return;
	}
	struct sieve_action *a = action_new(run, n, SIEVE_ACT_FILEINTO);
	if (a == NULL) {
		free(box);
		return;
	}
	a->mailbox = box;
	a->create = (n->tags & T_CREATE) != 0;
	a->copy = (n->tags & T_COPY) != 0;
	action_flags(run, n, a);
}

static bool address_ok(const char *s)
{
	const char *at = strrchr(s, '@');
	if (!at || at == s || at[1] == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' ||
		    *p == ',' || *p == '(' || *p == ')')
			return false;
	return true;
}

static void do_redirect(struct sv_run *run, const struct sv_node *n)
{
	char *to = string_dup(run, n->arg[0], 0);
	if (!address_ok(to)) {
		sv_fail(run, n, "redirect: \"%.80s\" is not a valid address", to);
		free(to);
		return;
	}
	if (!(n->tags & T_COPY))
		run->implicit_keep = false;
	if (action_dup(run, SIEVE_ACT_REDIRECT, to)) {
		free(to);
		return;
	}
	if (++run->redirects > run->lim->max_redirects) {
		sv_fail(run, n, "more than %u redirects (max_redirects)",
			run->lim->max_redirects);
		free(to);
		return;
	}
	struct sieve_action *a = action_new(run, n, SIEVE_ACT_REDIRECT);
	if (a == NULL) {
		free(to);
		return;
	}
	a->address = to;
	a->copy = (n->tags & T_COPY) != 0;
}

static void do_reject(struct sv_run *run, const struct sv_node *n,
		      enum sieve_action_kind kind)
{
	for (size_t i = 0; i < run->r->count; i++) {
		enum sieve_action_kind k = run->r->actions[i].kind;
		if (k == SIEVE_ACT_REJECT || k == SIEVE_ACT_EREJECT) {
			sv_fail(run, n, "only one reject or ereject may be "
				"executed (RFC 5429 2.1)");
			return;
		}
	}
	struct sieve_action *a = action_new(run, n, kind);
	if (a == NULL)
		return;
	a->text = string_dup(run, n->arg[0], 0);
	run->implicit_keep = false;
}

static uint64_t fnv64(const char *s, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void do_vacation(struct sv_run *run, const struct sv_node *n)
{
	struct sieve_action *a = action_new(run, n, SIEVE_ACT_VACATION);
	if (a == NULL)
		return;
	a->text = string_dup(run, n->arg[0], 0);
	if (n->targ[TS_SUBJECT])
		a->subject = string_dup(run, n->targ[TS_SUBJECT], 0);
	if (n->targ[TS_FROM])
		a->from = string_dup(run, n->targ[TS_FROM], 0);
	if (n->targ[TS_ADDRESSES]) {
		uint32_t c = sv_list_count(run, n->targ[TS_ADDRESSES]);
		a->addresses = xcalloc(c ? c : 1, sizeof(char *));
		for (uint32_t i = 0; i < c; i++)
			a->addresses[i] = string_dup(run, n->targ[TS_ADDRESSES], i);
		a->address_count = c;
	}
	a->mime = (n->tags & T_MIME) != 0;
	if (n->tags & T_SECONDS)
		a->seconds = n->num;
	else if (n->tags & T_DAYS)
		a->seconds = n->num > UINT64_MAX / 86400 ? UINT64_MAX
							 : n->num * 86400;
	else
		a->seconds = 7 * 86400;
	if (n->targ[TS_HANDLE]) {
		a->handle = string_dup(run, n->targ[TS_HANDLE], 0);
	} else {
		/* RFC 5230 4.2: the same arguments are the same vacation */
		uint64_t h = 14695981039346656037ull;
		h = fnv64(a->text, strlen(a->text) + 1, h);
		if (a->subject)
			h = fnv64(a->subject, strlen(a->subject) + 1, h);
		if (a->from)
			h = fnv64(a->from, strlen(a->from) + 1, h);
		h = fnv64(a->mime ? "m" : "t", 1, h);
		a->handle = xasprintf("auto-%016llx", (unsigned long long)h);
	}
}

/* ---- set (RFC 5229 4) ---------------------------------------------- */

static void do_set(struct sv_run *run, const struct sv_node *n)
{
	struct buf tmp, val;
	buf_init(&tmp, 0);
	buf_init(&val, 0);
	struct slice name = sv_string(run, n->arg[0], 0, &tmp);
	char *nm = xstrndup(name.ptr, name.len);
	struct slice v = sv_string(run, n->arg[1], 0, &tmp);
	buf_append(&val, v.ptr, v.len);
	if (n->tags & (T_LOWER | T_UPPER))
		for (size_t i = 0; i < val.len; i++)
			val.data[i] = (char)((n->tags & T_LOWER)
				? tolower((unsigned char)val.data[i])
				: toupper((unsigned char)val.data[i]));
	if ((n->tags & (T_LOWERFIRST | T_UPPERFIRST)) && val.len)
		val.data[0] = (char)((n->tags & T_LOWERFIRST)
			? tolower((unsigned char)val.data[0])
			: toupper((unsigned char)val.data[0]));
	if (n->tags & T_QUOTEWILD) {
		struct buf q;
		buf_init(&q, 0);
		for (size_t i = 0; i < val.len; i++) {
			char c = val.data[i];
			if (c == '*' || c == '?' || c == '\\')
				buf_append_char(&q, '\\');
			buf_append_char(&q, c);
		}
		buf_free(&val);
		val = q;
	}
	if (n->tags & T_LENGTH) {
		/* characters, not octets */
		size_t chars = 0;
		for (size_t i = 0; i < val.len; i++)
			if (((unsigned char)val.data[i] & 0xC0) != 0x80)
				chars++;
		buf_reset(&val);
		buf_printf(&val, "%zu", chars);
	}
	struct buf *var = sv_var_lookup(run, nm, strlen(nm), true);
	if (var) {
		size_t take = val.len;
		if (take > run->lim->max_variable_size) {
			take = run->lim->max_variable_size;
			/* never cut a UTF-8 character in two */
			while (take > 0 &&
			       ((unsigned char)val.data[take] & 0xC0) == 0x80)
				take--;
		}
		buf_reset(var);
		buf_append(var, val.data, take);
	}
	run->steps += val.len / 64;
	free(nm);
	buf_free(&tmp);
	buf_free(&val);
}

/* setflag/addflag/removeflag: on a named variable (arg 3) or the
 * internal one. */
static void do_flags(struct sv_run *run, const struct sv_node *n)
{
	struct buf *target = &run->flags;
	struct buf tmp;
	buf_init(&tmp, 0);
	if (n->arg[3]) {
		struct slice name = sv_string(run, n->arg[3], 0, &tmp);
		if (!var_name_ok(name.ptr, name.len)) {
			sv_fail(run, n, "invalid variable name");
			buf_free(&tmp);
			return;
		}
		char *nm = xstrndup(name.ptr, name.len);
		target = sv_var_lookup(run, nm, strlen(nm), true);
		free(nm);
		if (target == NULL) {
			buf_free(&tmp);
			return;
		}
	}
	if (n->op == OP_SETFLAG)
		buf_reset(target);
	uint32_t c = sv_list_count(run, n->arg[0]);
	for (uint32_t i = 0; i < c; i++) {
		struct slice s = sv_string(run, n->arg[0], i, &tmp);
		if (n->op == OP_REMOVEFLAG)
			sv_flags_remove(target, s.ptr, s.len);
		else
			sv_flags_add(target, s.ptr, s.len);
		if (target->len > run->lim->max_variable_size) {
			sv_fail(run, n, "flags longer than max_variable_size");
			break;
		}
	}
	buf_free(&tmp);
}

/* ---- editheader (RFC 5293) ----------------------------------------- */

static bool protected_field(const char *s, size_t n)
{
	return (n == 8 && strncasecmp(s, "received", 8) == 0) ||
	       (n == 14 && strncasecmp(s, "auto-submitted", 14) == 0);
}

static bool field_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 200)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 ||
		    s[i] == ':')
			return false;
	return true;
}

static void do_addheader(struct sv_run *run, const struct sv_node *n)
{
	struct buf tb, vb;
	buf_init(&tb, 0);
	buf_init(&vb, 0);
	struct slice name = sv_string(run, n->arg[0], 0, &tb);
	struct slice val = sv_string(run, n->arg[1], 0, &vb);
	if (!field_name_ok(name.ptr, name.len)) {
		sv_fail(run, n, "addheader: invalid field name");
		goto out;
	}
	if (protected_field(name.ptr, name.len))
		goto out;   /* RFC 5293 6: silently not done */
	struct sv_field f = {0};
	f.name = xstrndup(name.ptr, name.len);
	/* RFC 5293 5: non-ASCII values are put in encoded words; CR and
	 * LF do not survive into a field */
	bool ascii = true;
	for (size_t i = 0; i < val.len; i++)
		if ((unsigned char)val.ptr[i] >= 0x80)
			ascii = false;
	struct buf v;
	buf_init(&v, 0);
	if (ascii) {
		for (size_t i = 0; i < val.len; i++)
			if (val.ptr[i] != '\r' && val.ptr[i] != '\n')
				buf_append_char(&v, val.ptr[i]);
	} else {
		char *b64 = base64_encode(val.ptr, val.len);
		buf_printf(&v, "=?UTF-8?B?%s?=", b64);
		free(b64);
	}
	f.name_len = strlen(f.name);
	f.value = buf_steal(&v, &f.value_len);
	if (f.value == NULL)
		f.value = xstrdup("");
	run->hdr = xrealloc(run->hdr, (run->nhdr + 1) * sizeof(*run->hdr));
	if (n->tags & T_LAST) {
		run->hdr[run->nhdr] = f;
	} else {
		memmove(run->hdr + 1, run->hdr, run->nhdr * sizeof(*run->hdr));
		run->hdr[0] = f;
	}
	run->nhdr++;
	run->hdr_edited = true;
out:
	buf_free(&tb);
	buf_free(&vb);
}

static void do_deleteheader(struct sv_run *run, const struct sv_node *n)
{
	struct buf tb;
	buf_init(&tb, 0);
	struct slice sname = sv_string(run, n->arg[0], 0, &tb);
	char *name = xstrndup(sname.ptr, sname.len);
	size_t nl = strlen(name);
	if (!field_name_ok(name, nl) || protected_field(name, nl))
		goto out;
	/* :index counts the fields of that name, from the end with :last */
	size_t total = 0;
	for (size_t i = 0; i < run->nhdr; i++)
		if (sv_field_is(&run->hdr[i], name, nl))
			total++;
	size_t seen = 0, w = 0;
	for (size_t i = 0; i < run->nhdr; i++) {
		struct sv_field *f = &run->hdr[i];
		bool drop = false;
		if (sv_field_is(f, name, nl)) {
			seen++;
			size_t pos = (n->tags & T_LAST) ? total - seen + 1 : seen;
			bool at = !(n->tags & T_INDEX) || pos == n->index;
			if (at && n->arg[1]) {
				struct slice dec = sv_field_decoded(f);
				drop = sv_match_keys(run, n, n->arg[1], dec.ptr,
						     dec.len);
			} else {
				drop = at;
			}
		}
		if (drop) {
			sv_field_free(f);
			run->hdr_edited = true;
		} else {
			run->hdr[w++] = *f;
		}
	}
	run->nhdr = w;
out:
	free(name);
	buf_free(&tb);
}

/* ---- include (RFC 6609) -------------------------------------------- */

static void exec_block(struct sv_run *run, uint32_t first);

static void do_include(struct sv_run *run, const struct sv_node *n)
{
	char *name = string_dup(run, n->arg[0], 0);
	bool global = (n->tags & T_GLOBAL) != 0;
	const struct sieve_script *s = NULL;
	if (run->in->cb && run->in->cb->include)
		s = run->in->cb->include(run->in->cb_ctx, global, name);
	if (s == NULL) {
		if (!(n->tags & T_OPTIONAL))
			sv_fail(run, n, "include: there is no %s script \"%.80s\"",
				global ? "global" : "personal", name);
		free(name);
		return;
	}
	free(name);
	if (n->tags & T_ONCE)
		for (size_t i = 0; i < run->nonce; i++)
			if (run->once[i] == s)
				return;
	for (unsigned d = 0; d <= run->depth && d < 64; d++)
		if (run->chain[d] == s) {
			sv_fail(run, n, "include: \"%s\" includes itself "
				"(a loop)", s->name);
			return;
		}
	if (run->depth + 1 > run->lim->max_include_depth || run->depth + 1 >= 64) {
		sv_fail(run, n, "includes nested deeper than %u "
			"(max_include_depth)", run->lim->max_include_depth);
		return;
	}
	run->once = xrealloc(run->once, (run->nonce + 1) * sizeof(*run->once));
	run->once[run->nonce++] = s;
	struct sv_frame f = {.s = s, .up = run->frame};
	run->frame = &f;
	run->chain[++run->depth] = s;
	exec_block(run, s->hdr->root);
	run->depth--;
	run->frame = f.up;
	run->ret = false;
	vars_free(&f.locals);
	for (size_t i = 0; i < f.nglobals; i++)
		free(f.globals[i]);
	free(f.globals);
}

static void do_global(struct sv_run *run, const struct sv_node *n)
{
	struct sv_frame *f = run->frame;
	uint32_t c = sv_list_count(run, n->arg[0]);
	struct buf tmp;
	buf_init(&tmp, 0);
	for (uint32_t i = 0; i < c; i++) {
		struct slice s = sv_string(run, n->arg[0], i, &tmp);
		if (is_global(f, s.ptr, s.len))
			continue;
		f->globals = xrealloc(f->globals, (f->nglobals + 1) *
				      sizeof(char *));
		f->globals[f->nglobals++] = xstrndup(s.ptr, s.len);
	}
	buf_free(&tmp);
}

/* ---- the walk ------------------------------------------------------ */

static void exec_command(struct sv_run *run, const struct sv_node *n)
{
	switch (n->op) {
	case OP_REQUIRE:
		break;
	case OP_STOP:
		run->stop = true;
		break;
	case OP_RETURN:
		run->ret = true;
		break;
	case OP_KEEP: {
		run->explicit_keep = true;
		run->implicit_keep = false;
		if (action_dup(run, SIEVE_ACT_KEEP, NULL))
			break;
		struct sieve_action *a = action_new(run, n, SIEVE_ACT_KEEP);
		if (a)
			action_flags(run, n, a);
		break;
	}
	case OP_DISCARD:
		run->implicit_keep = false;
		if (!action_dup(run, SIEVE_ACT_DISCARD, NULL))
			action_new(run, n, SIEVE_ACT_DISCARD);
		break;
	case OP_FILEINTO:
		do_fileinto(run, n);
		break;
	case OP_REDIRECT:
		do_redirect(run, n);
		break;
	case OP_REJECT:
		do_reject(run, n, SIEVE_ACT_REJECT);
		break;
	case OP_EREJECT:
		do_reject(run, n, SIEVE_ACT_EREJECT);
		break;
	case OP_SETFLAG:
	case OP_ADDFLAG:
	case OP_REMOVEFLAG:
		do_flags(run, n);
		break;
	case OP_SET:
		do_set(run, n);
		break;
	case OP_VACATION:
		do_vacation(run, n);
		break;
	case OP_INCLUDE:
		do_include(run, n);
		break;
	case OP_GLOBAL:
		do_global(run, n);
		break;
	case OP_ADDHEADER:
		do_addheader(run, n);
		break;
	case OP_DELETEHEADER:
		do_deleteheader(run, n);
		break;
	default:
		sv_fail(run, n, "unexpected node in the compiled script");
		break;
	}
}

static void exec_block(struct sv_run *run, uint32_t first)
{
	const struct sieve_script *s = run->frame->s;
	bool taken = false;
	for (uint32_t i = first; i != 0; i = s->nodes[i].next) {
		if (run->failed || run->stop || run->ret)
			return;
		const struct sv_node *n = &s->nodes[i];
		if (!sv_charge(run, n, 1))
			return;
		switch (n->op) {
		case OP_IF:
			taken = sv_test(run, n->kid);
			if (taken && !run->failed)
				exec_block(run, n->block);
			break;
		case OP_ELSIF:
			if (!taken) {
				taken = sv_test(run, n->kid);
				if (taken && !run->failed)
					exec_block(run, n->block);
			}
			break;
		case OP_ELSE:
			if (!taken)
				exec_block(run, n->block);
			taken = true;
			break;
		default:
			exec_command(run, n);
			break;
		}
	}
}

/* ---- the header ---------------------------------------------------- */

static void header_load(struct sv_run *run)
{
	const char *data = run->in->data ? run->in->data : "";
	size_t hs = mail_header_size(data, run->in->len);
	run->body_off = hs;
	struct mail_header_iter it;
	mail_header_iter_init(&it, data, hs);
	struct slice name, value;
	size_t cap = 0;
	while (mail_header_iter_next(&it, &name, &value) == 1) {
		if (run->nhdr == cap) {
			cap = cap ? cap * 2 : 32;
			run->hdr = xrealloc(run->hdr, cap * sizeof(*run->hdr));
		}
		struct sv_field *f = &run->hdr[run->nhdr++];
		memset(f, 0, sizeof(*f));
		/* values may hold NUL bytes: copied by length */
		f->name = xstrndup(name.ptr, name.len);
		f->name_len = strlen(f->name);
		f->value = xmalloc(value.len + 1);
		memcpy(f->value, value.ptr, value.len);
		f->value[value.len] = '\0';
		f->value_len = value.len;
	}
}

struct slice sv_field_decoded(struct sv_field *f)
{
	if (f->dec == NULL) {
		struct buf dec;
		buf_init(&dec, 0);
		mail_header_decode(&dec, slice_make(f->value, f->value_len));
		f->dec = buf_steal(&dec, &f->dec_len);
		if (f->dec == NULL) {
			f->dec = xstrdup("");
			f->dec_len = 0;
		}
	}
	return slice_make(f->dec, f->dec_len);
}

const struct mail_address *sv_field_addresses(struct sv_field *f,
					      size_t *count_r)
{
	if (!f->have_addrs) {
		f->naddrs = mail_address_parse(f->value, f->value_len,
					       &f->addrs);
		f->have_addrs = true;
	}
	*count_r = f->naddrs;
	return f->addrs;
}

void sv_field_free(struct sv_field *f)
{
	free(f->name);
	free(f->value);
	free(f->dec);
	if (f->have_addrs)
		mail_address_list_free(f->addrs, f->naddrs);
	memset(f, 0, sizeof(*f));
}

bool sv_field_is(const struct sv_field *f, const char *name, size_t len)
{
	return f->name_len == len && strncasecmp(f->name, name, len) == 0;
}

static void header_free(struct sv_run *run)
{
	for (size_t i = 0; i < run->nhdr; i++)
		sv_field_free(&run->hdr[i]);
	free(run->hdr);
	run->hdr = NULL;
	run->nhdr = 0;
}

static void header_result(struct sv_run *run)
{
	if (!run->hdr_edited)
		return;
	struct buf h;
	buf_init(&h, 0);
	for (size_t i = 0; i < run->nhdr; i++) {
		buf_append_str(&h, run->hdr[i].name);
		buf_append(&h, ": ", 2);
		/* folded values keep their line breaks, as CRLF */
		const char *v = run->hdr[i].value;
		for (size_t k = 0; k < run->hdr[i].value_len; k++) {
			if (v[k] == '\r')
				continue;
			if (v[k] == '\n')
				buf_append_char(&h, '\r');
			buf_append_char(&h, v[k]);
		}
		buf_append(&h, "\r\n", 2);
	}
	buf_append(&h, "\r\n", 2);
	run->r->header = buf_steal(&h, &run->r->header_len);
}

/* ---- the sequence -------------------------------------------------- */

/* RFC 5429 2.1/2.2, RFC 5230 4.7: a refusal does not go with keeping,
 * filing, forwarding or a vacation reply. */
static void check_conflicts(struct sv_run *run, size_t from)
{
	bool rej = false, other = false;
	for (size_t i = from; i < run->r->count; i++) {
		enum sieve_action_kind k = run->r->actions[i].kind;
		if (k == SIEVE_ACT_REJECT || k == SIEVE_ACT_EREJECT)
			rej = true;
		else if (k == SIEVE_ACT_KEEP || k == SIEVE_ACT_FILEINTO ||
			 k == SIEVE_ACT_REDIRECT || k == SIEVE_ACT_VACATION)
			other = true;
	}
	if (rej && other)
		sv_fail(run, NULL, "reject cannot be combined with keep, "
			"fileinto, redirect or vacation");
}

/* Keeps of earlier scripts that a later one cancelled (fileinto,
 * discard, redirect without :copy, reject) go. */
static void drop_keeps(struct sieve_result *r, size_t before)
{
	size_t w = 0;
	for (size_t i = 0; i < r->count; i++) {
		if (i < before && r->actions[i].kind == SIEVE_ACT_KEEP)
			action_clear(&r->actions[i]);
		else
			r->actions[w++] = r->actions[i];
	}
	r->count = w;
}

/* One keep for the whole sequence, at the first keep's place, with the
 * flags of every keep (the same message in the same folder). */
static void merge_keeps(struct sieve_result *r)
{
	struct sieve_action *k = NULL;
	size_t w = 0;
	for (size_t i = 0; i < r->count; i++) {
		struct sieve_action *a = &r->actions[i];
		if (a->kind != SIEVE_ACT_KEEP || k == NULL) {
			if (a->kind == SIEVE_ACT_KEEP)
				k = &r->actions[w];
			r->actions[w++] = *a;
			continue;
		}
		for (size_t f = 0; f < a->flag_count; f++) {
			bool have = false;
			for (size_t g = 0; g < k->flag_count && !have; g++)
				have = strcasecmp(k->flags[g], a->flags[f]) == 0;
			if (have)
				continue;
			k->flags = xrealloc(k->flags, (k->flag_count + 1) *
					    sizeof(*k->flags));
			k->flags[k->flag_count++] = xstrdup(a->flags[f]);
		}
		action_clear(a);
	}
	r->count = w;
}

static void run_free(struct sv_run *run)
{
	header_free(run);
	vars_free(&run->globals);
	for (int i = 0; i < SV_MAX_MATCH; i++)
		buf_free(&run->match[i]);
	buf_free(&run->flags);
	free(run->once);
	free(run->body_text);
}

int sieve_execute(const struct sieve_script *const *scripts, size_t count,
		  const struct sieve_input *in,
		  const struct sieve_limits *limits, struct sieve_result *r)
{
	struct sieve_limits deflim;
	if (limits == NULL) {
		sieve_limits_default(&deflim);
		limits = &deflim;
	}
	memset(r, 0, sizeof(*r));
	struct sv_run run = {.in = in, .lim = limits, .r = r};
	for (int i = 0; i < SV_MAX_MATCH; i++)
		buf_init(&run.match[i], 0);
	buf_init(&run.flags, 0);
	header_load(&run);
	bool keep = true;
	for (size_t i = 0; i < count; i++) {
		bool last = i + 1 == count;
		size_t first = r->count;
		struct sv_frame f = {.s = scripts[i]};
		run.frame = &f;
		run.script_index = (unsigned)i;
		run.implicit_keep = true;
		run.explicit_keep = false;
		run.stop = run.ret = false;
		run.depth = 0;
		run.chain[0] = scripts[i];
		run.nonce = 0;
		run.actions = 0;
		run.redirects = 0;
		run.nmatch = 0;
		/* the imap4flags internal variable is the message's, not the
		 * script's: what an earlier script of the sequence set goes on
		 * (as Pigeonhole: a before script's addflag reaches the
		 * implicit keep and a later fileinto) */
		vars_free(&run.globals);
		exec_block(&run, scripts[i]->hdr->root);
		if (!run.failed)
			check_conflicts(&run, first);
		vars_free(&f.locals);
		for (size_t k = 0; k < f.nglobals; k++)
			free(f.globals[k]);
		free(f.globals);
		if (run.failed)
			break;
		keep = run.implicit_keep || run.explicit_keep;
		/* Pigeonhole's sequence: a keep (explicit, with its flags, or
		 * implicit) lets the next script run and stays until one of
		 * them cancels it */
		if (!keep)
			drop_keeps(r, first);
		if (!last) {
			if (!keep)
				break;
			continue;
		}
		if (run.implicit_keep) {
			run.actions = 0;   /* the implicit keep is not counted */
			struct sieve_action *a = action_new(&run, NULL,
							    SIEVE_ACT_KEEP);
			flags_to_list(&run.flags, &a->flags, &a->flag_count);
		}
	}
	if (count == 0) {
		struct sieve_action *a = action_new(&run, NULL, SIEVE_ACT_KEEP);
		(void)a;
	}
	r->steps = run.steps;
	if (run.failed) {
		for (size_t i = 0; i < r->count; i++)
			action_clear(&r->actions[i]);
		r->count = 0;
		run_free(&run);
		return -1;
	}
	merge_keeps(r);
	header_result(&run);
	run_free(&run);
	return 0;
}

/* ---- printing ------------------------------------------------------ */

void sieve_result_format(const struct sieve_result *r, struct buf *out)
{
	if (r->error) {
		buf_printf(out, "error: script %u, line %u: %s\n",
			   r->error_script + 1, r->error_line, r->error_text);
		buf_append_str(out, "keep (INBOX, as if no script had run)\n");
		return;
	}
	for (size_t i = 0; i < r->count; i++) {
		const struct sieve_action *a = &r->actions[i];
		switch (a->kind) {
		case SIEVE_ACT_KEEP:
			buf_append_str(out, "keep");
			break;
		case SIEVE_ACT_FILEINTO:
			buf_printf(out, "fileinto \"%s\"%s%s", a->mailbox,
				   a->create ? " :create" : "",
				   a->copy ? " :copy" : "");
			break;
		case SIEVE_ACT_REDIRECT:
			buf_printf(out, "redirect \"%s\"%s", a->address,
				   a->copy ? " :copy" : "");
			break;
		case SIEVE_ACT_DISCARD:
			buf_append_str(out, "discard");
			break;
		case SIEVE_ACT_REJECT:
			buf_printf(out, "reject \"%s\"", a->text);
			break;
		case SIEVE_ACT_EREJECT:
			buf_printf(out, "ereject \"%s\"", a->text);
			break;
		case SIEVE_ACT_VACATION:
			buf_printf(out, "vacation :handle \"%s\" :seconds %llu "
				   "\"%.60s\"", a->handle,
				   (unsigned long long)a->seconds, a->text);
			break;
		case SIEVE_ACT_DUPLICATE:
			buf_printf(out, "duplicate record %s :seconds %llu", a->id,
				   (unsigned long long)a->seconds);
			break;
		}
		if (a->flag_count) {
			buf_append_str(out, " :flags \"");
			for (size_t k = 0; k < a->flag_count; k++)
				buf_printf(out, "%s%s", k ? " " : "", a->flags[k]);
			buf_append_str(out, "\"");
		}
		buf_append_char(out, '\n');
	}
	if (r->header)
		buf_append_str(out, "(header edited: the copies get their own "
			       "header)\n");
}
