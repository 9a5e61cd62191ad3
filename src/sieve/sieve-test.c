/*
 * Sieve tests: address, envelope, header, exists, size (RFC 5228 5),
 * body (RFC 5173), hasflag (RFC 5232), string (RFC 5229), date and
 * currentdate with index (RFC 5260), mailboxexists (RFC 5490),
 * duplicate (RFC 7352), spamtest/virustest (RFC 5235), environment (RFC
 * 5183). Header values are decoded as RFC 5228 2.7 says (RFC 2047 words,
 * 8-bit text as UTF-8 or Windows-1252, as IMAP SEARCH reads them).
 */
#include "sieve-run.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mail.h"

/* ---- key matching -------------------------------------------------- */

bool sv_match_keys(struct sv_run *run, const struct sv_node *n,
		   uint32_t keys, const char *v, size_t vlen)
{
	struct buf kb;
	buf_init(&kb, 0);
	uint32_t c = sv_list_count(run, keys);
	bool hit = false;
	for (uint32_t i = 0; i < c && !hit; i++) {
		struct slice k = sv_string(run, keys, i, &kb);
		if (n->match == M_VALUE) {
			run->steps++;
			hit = sv_relate((enum sv_rel)n->rel,
					sv_compare((enum sv_cmp)n->cmp, v, vlen,
						   k.ptr, k.len));
		} else {
			struct sv_captures caps = {0};
			hit = sv_match((enum sv_match)n->match,
				       (enum sv_cmp)n->cmp, v, vlen, k.ptr, k.len,
				       n->match == M_MATCHES ? &caps : NULL,
				       &run->steps);
			if (hit && n->match == M_MATCHES)
				sv_set_matches(run, &caps);
		}
		if (!sv_charge(run, n, 1))
			break;
	}
	buf_free(&kb);
	return hit && !run->failed;
}

bool sv_match_count(struct sv_run *run, const struct sv_node *n,
		    uint32_t keys, uint64_t count)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "%llu", (unsigned long long)count);
	struct buf kb;
	buf_init(&kb, 0);
	uint32_t c = sv_list_count(run, keys);
	bool hit = false;
	for (uint32_t i = 0; i < c && !hit; i++) {
		struct slice k = sv_string(run, keys, i, &kb);
		hit = sv_relate((enum sv_rel)n->rel,
				sv_compare((enum sv_cmp)n->cmp, num, (size_t)len,
					   k.ptr, k.len));
	}
	buf_free(&kb);
	return hit;
}

/* Values are fed one by one; :count counts them and decides at the end. */
struct sv_values {
	struct sv_run *run;
	const struct sv_node *n;
	uint32_t keys;
	uint64_t count;
	bool hit;
};

static bool feed(struct sv_values *vs, const char *v, size_t len)
{
	if (vs->hit || vs->run->failed)
		return false;
	if (vs->n->match == M_COUNT) {
		vs->count++;
		return true;
	}
	vs->hit = sv_match_keys(vs->run, vs->n, vs->keys, v, len);
	return !vs->hit;
}

static bool values_end(struct sv_values *vs)
{
	if (vs->run->failed)
		return false;
	if (vs->n->match == M_COUNT)
		return sv_match_count(vs->run, vs->n, vs->keys, vs->count);
	return vs->hit;
}

/* ---- header fields ------------------------------------------------- */

/* The fields called name that :index / :last select, in order. */
static bool field_selected(const struct sv_node *n, size_t pos, size_t total)
{
	if (!(n->tags & T_INDEX))
		return true;
	size_t want = (size_t)n->index;
	if (n->tags & T_LAST)
		return want <= total && pos == total - want + 1;
	return pos == want;
}

static size_t field_total(struct sv_run *run, const char *name, size_t nl)
{
	size_t total = 0;
	for (size_t i = 0; i < run->nhdr; i++)
		if (sv_field_is(&run->hdr[i], name, nl))
			total++;
	return total;
}

static bool test_header(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf nb;
	buf_init(&nb, 0);
	uint32_t names = sv_list_count(run, n->arg[0]);
	for (uint32_t j = 0; j < names && !vs.hit && !run->failed; j++) {
		struct slice name = sv_string(run, n->arg[0], j, &nb);
		size_t total = field_total(run, name.ptr, name.len), pos = 0;
		for (size_t i = 0; i < run->nhdr; i++) {
			struct sv_field *f = &run->hdr[i];
			if (!sv_field_is(f, name.ptr, name.len))
				continue;
			if (!field_selected(n, ++pos, total))
				continue;
			struct slice dec = sv_field_decoded(f);
			if (!sv_charge(run, n, dec.len / 64 + 1) ||
			    !feed(&vs, dec.ptr, dec.len))
				break;
		}
	}
	buf_free(&nb);
	return values_end(&vs);
}

static bool test_exists(struct sv_run *run, const struct sv_node *n)
{
	struct buf nb;
	buf_init(&nb, 0);
	bool all = true;
	uint32_t names = sv_list_count(run, n->arg[0]);
	for (uint32_t j = 0; j < names && all; j++) {
		struct slice name = sv_string(run, n->arg[0], j, &nb);
		all = field_total(run, name.ptr, name.len) > 0;
	}
	buf_free(&nb);
	return all;
}

/* ---- addresses ------------------------------------------------------ */

/* The part of local@domain the node asks for into out; false when the
 * part does not exist (:detail without a separator). */
static bool address_part(struct sv_run *run, const struct sv_node *n,
			 const char *local, const char *domain,
			 struct buf *out)
{
	const char *sep = run->in->separator && run->in->separator[0]
		? run->in->separator : "+";
	buf_reset(out);
	switch (n->part) {
	case A_LOCAL:
		buf_append_str(out, local);
		return true;
	case A_DOMAIN:
		buf_append_str(out, domain);
		return true;
	case A_USER:
	case A_DETAIL: {
		const char *s = strstr(local, sep);
		if (n->part == A_USER) {
			buf_append(out, local, s ? (size_t)(s - local)
						 : strlen(local));
			return true;
		}
		if (s == NULL)
			return false;
		buf_append_str(out, s + strlen(sep));
		return true;
	}
	default:
		buf_append_str(out, local);
		if (domain[0] || local[0]) {
			if (domain[0]) {
				buf_append_char(out, '@');
				buf_append_str(out, domain);
			}
		}
		return true;
	}
}

static bool feed_address(struct sv_values *vs, const char *local,
			 const char *domain, struct buf *tmp)
{
	if (!address_part(vs->run, vs->n, local, domain, tmp))
		return true;
	return feed(vs, tmp->data ? tmp->data : "", tmp->len);
}

static bool test_address(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf nb, tmp;
	buf_init(&nb, 0);
	buf_init(&tmp, 0);
	uint32_t names = sv_list_count(run, n->arg[0]);
	for (uint32_t j = 0; j < names && !vs.hit && !run->failed; j++) {
		struct slice name = sv_string(run, n->arg[0], j, &nb);
		size_t total = field_total(run, name.ptr, name.len), pos = 0;
		for (size_t i = 0; i < run->nhdr && !vs.hit; i++) {
			struct sv_field *f = &run->hdr[i];
			if (!sv_field_is(f, name.ptr, name.len))
				continue;
			if (!field_selected(n, ++pos, total))
				continue;
			if (!sv_charge(run, n, f->value_len / 64 + 1))
				break;
			size_t cnt = 0;
			const struct mail_address *list =
				sv_field_addresses(f, &cnt);
			for (size_t k = 0; k < cnt; k++) {
				if (list[k].host == NULL)
					continue;   /* group markers */
				const char *host = list[k].host;
				if (strcmp(host, "MISSING_DOMAIN") == 0)
					host = "";
				const char *mbox = list[k].mailbox;
				if (mbox == NULL ||
				    strcmp(mbox, "MISSING_MAILBOX") == 0)
					mbox = "";
				if (!feed_address(&vs, mbox, host, &tmp))
					break;
			}
		}
	}
	buf_free(&nb);
	buf_free(&tmp);
	return values_end(&vs);
}

static bool test_envelope(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf nb, tmp;
	buf_init(&nb, 0);
	buf_init(&tmp, 0);
	uint32_t names = sv_list_count(run, n->arg[0]);
	for (uint32_t j = 0; j < names && !vs.hit; j++) {
		struct slice name = sv_string(run, n->arg[0], j, &nb);
		const char *addr = NULL;
		if (name.len == 4 && strncasecmp(name.ptr, "from", 4) == 0)
			addr = run->in->env_from;
		else if (name.len == 2 && strncasecmp(name.ptr, "to", 2) == 0)
			addr = run->in->env_to;
		else if (name.len == 4 && strncasecmp(name.ptr, "auth", 4) == 0)
			addr = run->in->auth_user;
		if (addr == NULL)
			continue;
		const char *at = strrchr(addr, '@');
		char *local = at ? xstrndup(addr, (size_t)(at - addr))
				 : xstrdup(addr);
		/* RFC 5228 5.4: the null reverse-path matches "" with :all
		 * and nothing else */
		if (addr[0] == '\0') {
			if (n->part == A_ALL || n->part == A_LOCAL ||
			    n->part == A_DOMAIN)
				feed(&vs, "", 0);
		} else {
			feed_address(&vs, local, at ? at + 1 : "", &tmp);
		}
		free(local);
	}
	buf_free(&nb);
	buf_free(&tmp);
	return values_end(&vs);
}

/* ---- body (RFC 5173) ----------------------------------------------- */

static void body_text_cb(void *ctx, enum mail_text_kind kind,
			 const char *name, const char *text, size_t len)
{
	(void)name;
	if (kind == MAIL_TEXT_BODY)
		buf_append(ctx, text, len);
}

static bool content_wanted(struct sv_run *run, const struct sv_node *n,
			   const struct mail_part_info *pi, struct buf *tmp)
{
	uint32_t c = sv_list_count(run, n->targ[TS_CONTENT]);
	for (uint32_t i = 0; i < c; i++) {
		struct slice k = sv_string(run, n->targ[TS_CONTENT], i, tmp);
		if (k.len == 0)
			return true;
		const char *slash = memchr(k.ptr, '/', k.len);
		size_t tl = slash ? (size_t)(slash - k.ptr) : k.len;
		if (tl != pi->type.len ||
		    strncasecmp(k.ptr, pi->type.ptr, tl) != 0)
			continue;
		if (!slash)
			return true;
		size_t sl = k.len - tl - 1;
		if (sl == pi->subtype.len &&
		    strncasecmp(slash + 1, pi->subtype.ptr, sl) == 0)
			return true;
	}
	return false;
}

/* Leaf parts whose type is in :content, decoded (transfer encoding,
 * charset for text), each fed as one value. */
static void body_parts(struct sv_run *run, const struct sv_node *n,
		       struct sv_values *vs, const void *parts,
		       size_t parts_len, uint32_t *path, unsigned depth)
{
	struct mail_part_info pi;
	if (vs->hit || run->failed || depth >= MAIL_SECTION_MAX_PATH ||
	    !mail_part_lookup(parts, parts_len, path, depth, &pi))
		return;
	if (!sv_charge(run, n, pi.body_size / 64 + 1))
		return;
	if (pi.child_count > 0 && !pi.is_message) {
		for (uint32_t i = 1; i <= pi.child_count && !vs->hit; i++) {
			path[depth] = i;
			body_parts(run, n, vs, parts, parts_len, path, depth + 1);
		}
		return;
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	bool want = content_wanted(run, n, &pi, &tmp);
	buf_free(&tmp);
	if (!want) {
		if (pi.is_message && pi.child_count > 0) {
			path[depth] = 1;
			body_parts(run, n, vs, parts, parts_len, path, depth + 1);
		}
		return;
	}
	struct mail_section sec;
	bool unknown = false;
	if (mail_binary_get(run->in->data, run->in->len, parts, parts_len,
			    path, depth, &sec, &unknown) != 0)
		return;
	if (pi.type.len == 4 && strncasecmp(pi.type.ptr, "text", 4) == 0) {
		struct buf u;
		buf_init(&u, 0);
		char cs[64] = "us-ascii";
		if (pi.charset.len > 0 && pi.charset.len < sizeof(cs))
			snprintf(cs, sizeof(cs), "%.*s", (int)pi.charset.len,
				 pi.charset.ptr);
		mail_charset_to_utf8(&u, cs, sec.ptr, sec.len);
		feed(vs, u.data ? u.data : "", u.len);
		buf_free(&u);
	} else {
		feed(vs, sec.ptr ? sec.ptr : "", sec.len);
	}
	mail_section_free(&sec);
}

static bool test_body(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[0], 0, false};
	const char *data = run->in->data ? run->in->data : "";
	if (n->part == B_RAW) {
		size_t bl = run->in->len - run->body_off;
		if (sv_charge(run, n, bl / 64 + 1))
			feed(&vs, data + run->body_off, bl);
		return values_end(&vs);
	}
	if (n->part == B_TEXT) {
		if (!run->have_body_text && run->in->body_text != NULL) {
			/* the delivery's own analysis of the message */
			run->body_view = run->in->body_text;
			run->body_text_len = run->in->body_text_len;
			run->have_body_text = true;
		}
		if (!run->have_body_text) {
			struct buf t;
			buf_init(&t, 0);
			struct mail_analyze_options o = {
				.text_cb = body_text_cb, .text_ctx = &t,
				.want_text = true};
			struct mail_result mr;
			mail_analyze(data, run->in->len, &o, &mr);
			mail_result_free(&mr);
			run->body_text = buf_steal(&t, &run->body_text_len);
			run->body_view = run->body_text;
			run->have_body_text = true;
		}
		if (sv_charge(run, n, run->in->len / 64 + 1))
			feed(&vs, run->body_view ? run->body_view : "",
			     run->body_text_len);
		return values_end(&vs);
	}
	struct mail_analyze_options o = {.want_text = false};
	struct mail_result mr;
	if (!sv_charge(run, n, run->in->len / 64 + 1))
		return false;
	mail_analyze(data, run->in->len, &o, &mr);
	uint32_t path[MAIL_SECTION_MAX_PATH];
	body_parts(run, n, &vs, mr.parts, mr.parts_len, path, 0);
	mail_result_free(&mr);
	return values_end(&vs);
}

/* ---- date (RFC 5260) ----------------------------------------------- */

static int zone_minutes(const char *z)
{
	int v = ((z[1] - '0') * 10 + (z[2] - '0')) * 60 +
		(z[3] - '0') * 10 + (z[4] - '0');
	return z[0] == '-' ? -v : v;
}

static bool zone_ok(const char *z, size_t n)
{
	if (n != 5 || (z[0] != '+' && z[0] != '-'))
		return false;
	for (int i = 1; i < 5; i++)
		if (!isdigit((unsigned char)z[i]))
			return false;
	return true;
}

/* The date part of t (UTC) shown in zone tz (minutes east). */
static bool date_part(time_t t, int tz, const char *part, size_t pl,
		      char *out, size_t outsz)
{
	time_t local = t + (time_t)tz * 60;
	struct tm tm;
	if (gmtime_r(&local, &tm) == NULL)
		return false;
	char zone[16];
	snprintf(zone, sizeof(zone), "%c%02d%02d", tz < 0 ? '-' : '+',
		 abs(tz) / 60, abs(tz) % 60);
#define IS(s) (pl == strlen(s) && strncasecmp(part, s, pl) == 0)
	if (IS("year"))
		snprintf(out, outsz, "%04d", tm.tm_year + 1900);
	else if (IS("month"))
		snprintf(out, outsz, "%02d", tm.tm_mon + 1);
	else if (IS("day"))
		snprintf(out, outsz, "%02d", tm.tm_mday);
	else if (IS("date"))
		snprintf(out, outsz, "%04d-%02d-%02d", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday);
	else if (IS("julian"))
		/* Modified Julian Day: days since 1858-11-17 */
		snprintf(out, outsz, "%lld",
			 (long long)((local >= 0 ? local : local - 86399) / 86400)
			 + 40587);
	else if (IS("hour"))
		snprintf(out, outsz, "%02d", tm.tm_hour);
	else if (IS("minute"))
		snprintf(out, outsz, "%02d", tm.tm_min);
	else if (IS("second"))
		snprintf(out, outsz, "%02d", tm.tm_sec);
	else if (IS("time"))
		snprintf(out, outsz, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min,
			 tm.tm_sec);
	else if (IS("iso8601"))
		snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, tz < 0 ? '-' : '+',
			 abs(tz) / 60, abs(tz) % 60);
	else if (IS("std11")) {
		static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
						 "Thu", "Fri", "Sat"};
		static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr",
						 "May", "Jun", "Jul", "Aug",
						 "Sep", "Oct", "Nov", "Dec"};
		snprintf(out, outsz, "%s, %d %s %04d %02d:%02d:%02d %s",
			 wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon],
			 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 zone);
	} else if (IS("zone"))
		snprintf(out, outsz, "%s", zone);
	else if (IS("weekday"))
		snprintf(out, outsz, "%d", tm.tm_wday);
	else
		return false;
#undef IS
	return true;
}

static int target_zone(struct sv_run *run, const struct sv_node *n,
		       int original, bool *ok)
{
	*ok = true;
	if (n->tags & T_ORIGZONE)
		return original;
	if (n->targ[TS_ZONE]) {
		struct buf zb;
		buf_init(&zb, 0);
		struct slice z = sv_string(run, n->targ[TS_ZONE], 0, &zb);
		int r = 0;
		if (zone_ok(z.ptr, z.len))
			r = zone_minutes(z.ptr);
		else
			*ok = false;   /* RFC 5260 4: an invalid zone fails */
		buf_free(&zb);
		return r;
	}
	return run->in->tz_offset;
}

static bool test_date(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[2], 0, false};
	struct buf nb, pb;
	buf_init(&nb, 0);
	buf_init(&pb, 0);
	struct slice name = sv_string(run, n->arg[0], 0, &nb);
	struct slice part = sv_string(run, n->arg[1], 0, &pb);
	size_t total = field_total(run, name.ptr, name.len), pos = 0;
	for (size_t i = 0; i < run->nhdr && !vs.hit; i++) {
		const struct sv_field *f = &run->hdr[i];
		if (!sv_field_is(f, name.ptr, name.len))
			continue;
		if (!field_selected(n, ++pos, total))
			continue;
		/* Received: the date after the last ';' (RFC 5260 4.1) */
		const char *v = f->value;
		size_t vl = f->value_len;
		if (name.len == 8 && strncasecmp(name.ptr, "received", 8) == 0) {
			const char *semi = NULL;
			for (size_t k = 0; k < vl; k++)
				if (v[k] == ';')
					semi = v + k;
			if (semi == NULL)
				continue;
			vl -= (size_t)(semi + 1 - v);
			v = semi + 1;
		}
		time_t t;
		int tz;
		if (!mail_date_parse(v, vl, &t, &tz))
			continue;
		bool ok;
		int zone = target_zone(run, n, tz, &ok);
		char out[64];
		if (ok && date_part(t, zone, part.ptr, part.len, out, sizeof(out)))
			feed(&vs, out, strlen(out));
	}
	buf_free(&nb);
	buf_free(&pb);
	return values_end(&vs);
}

static bool test_currentdate(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf pb;
	buf_init(&pb, 0);
	struct slice part = sv_string(run, n->arg[0], 0, &pb);
	bool ok;
	int zone = target_zone(run, n, run->in->tz_offset, &ok);
	char out[64];
	if (ok && date_part(run->in->now, zone, part.ptr, part.len, out,
			    sizeof(out)))
		feed(&vs, out, strlen(out));
	buf_free(&pb);
	return values_end(&vs);
}

/* ---- the rest ------------------------------------------------------ */

static bool test_string(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf sb;
	buf_init(&sb, 0);
	uint32_t c = sv_list_count(run, n->arg[0]);
	for (uint32_t i = 0; i < c; i++) {
		struct slice s = sv_string(run, n->arg[0], i, &sb);
		/* RFC 5229 5: :count counts the non-empty strings */
		if (n->match == M_COUNT && s.len == 0)
			continue;
		if (!feed(&vs, s.ptr, s.len))
			break;
	}
	buf_free(&sb);
	return values_end(&vs);
}

static bool test_hasflag(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[0], 0, false};
	struct buf all, tmp;
	buf_init(&all, 0);
	buf_init(&tmp, 0);
	if (n->arg[3]) {
		uint32_t c = sv_list_count(run, n->arg[3]);
		for (uint32_t i = 0; i < c; i++) {
			struct slice name = sv_string(run, n->arg[3], i, &tmp);
			struct buf *v = sv_var_lookup(run, name.ptr, name.len, false);
			if (v && v->len)
				sv_flags_add(&all, v->data, v->len);
		}
	} else {
		buf_append(&all, run->flags.data, run->flags.len);
	}
	const char *p = all.data, *e = all.data ? all.data + all.len : NULL;
	while (p && p < e) {
		const char *sp = memchr(p, ' ', (size_t)(e - p));
		const char *we = sp ? sp : e;
		if (we > p && !feed(&vs, p, (size_t)(we - p)))
			break;
		p = we + 1;
	}
	buf_free(&all);
	buf_free(&tmp);
	return values_end(&vs);
}

static bool test_mailboxexists(struct sv_run *run, const struct sv_node *n)
{
	struct buf tmp;
	buf_init(&tmp, 0);
	bool all = true;
	uint32_t c = sv_list_count(run, n->arg[0]);
	for (uint32_t i = 0; i < c && all; i++) {
		struct slice s = sv_string(run, n->arg[0], i, &tmp);
		char *name = xstrndup(s.ptr, s.len);
		if (run->in->cb && run->in->cb->mailbox_exists)
			all = run->in->cb->mailbox_exists(run->in->cb_ctx, name);
		free(name);
	}
	buf_free(&tmp);
	return all;
}

static uint64_t fnv(const char *s, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* RFC 7352: the id is the handle and the value (Message-ID by default);
 * the record itself is an action, committed with the delivery. */
static bool test_duplicate(struct sv_run *run, const struct sv_node *n)
{
	struct buf vb, hb, dec;
	buf_init(&vb, 0);
	buf_init(&hb, 0);
	buf_init(&dec, 0);
	struct slice value = slice_make("", 0);
	bool have = false;
	if (n->targ[TS_UNIQUEID]) {
		value = sv_string(run, n->targ[TS_UNIQUEID], 0, &vb);
		have = true;
	} else {
		const char *field = "message-id";
		size_t fl = 10;
		if (n->targ[TS_HEADER]) {
			struct slice h = sv_string(run, n->targ[TS_HEADER], 0, &hb);
			field = h.ptr;
			fl = h.len;
		}
		for (size_t i = 0; i < run->nhdr; i++)
			if (sv_field_is(&run->hdr[i], field, fl)) {
				struct slice d = sv_field_decoded(&run->hdr[i]);
				buf_append(&dec, d.ptr, d.len);
				/* RFC 7352 3.1: whitespace does not count */
				size_t w = 0;
				for (size_t k = 0; k < dec.len; k++)
					if (!isspace((unsigned char)dec.data[k]))
						dec.data[w++] = dec.data[k];
				dec.len = w;
				value = slice_make(dec.data ? dec.data : "", dec.len);
				have = true;
				break;
			}
	}
	bool seen = false;
	if (have) {
		struct slice handle = slice_make("", 0);
		struct buf tb;
		buf_init(&tb, 0);
		if (n->targ[TS_HANDLE])
			handle = sv_string(run, n->targ[TS_HANDLE], 0, &tb);
		uint64_t h1 = fnv(handle.ptr, handle.len, 14695981039346656037ull);
		h1 = fnv("\0", 1, h1);
		h1 = fnv(value.ptr, value.len, h1);
		uint64_t h2 = fnv(value.ptr, value.len, 0x84222325cbf29ce4ull);
		h2 = fnv("\0", 1, h2);
		h2 = fnv(handle.ptr, handle.len, h2);
		buf_free(&tb);
		char *id = xasprintf("dup-%016llx%016llx",
				     (unsigned long long)h1,
				     (unsigned long long)h2);
		if (run->in->cb && run->in->cb->duplicate_seen)
			seen = run->in->cb->duplicate_seen(run->in->cb_ctx, id);
		/* a tracked message is recorded; a duplicate only refreshes
		 * its record with :last */
		bool record = !seen || (n->tags & T_LAST);
		bool dup_done = false;
		for (size_t i = 0; i < run->r->count; i++)
			if (run->r->actions[i].kind == SIEVE_ACT_DUPLICATE &&
			    strcmp(run->r->actions[i].id, id) == 0)
				dup_done = true;
		if (record && !dup_done) {
			run->r->actions = xrealloc(run->r->actions,
						   (run->r->count + 1) *
						   sizeof(*run->r->actions));
			struct sieve_action *a = &run->r->actions[run->r->count++];
			memset(a, 0, sizeof(*a));
			a->kind = SIEVE_ACT_DUPLICATE;
			a->line = n->line;
			a->script = run->script_index;
			a->id = id;
			a->seconds = (n->tags & T_SECONDS) ? n->num : 12 * 3600;
			id = NULL;
		}
		free(id);
	}
	buf_free(&vb);
	buf_free(&hb);
	buf_free(&dec);
	return seen;
}

static bool test_spamtest(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[0], 0, false};
	char v[16];
	const struct sieve_input *in = run->in;
	if (!in->spam_scanned) {
		snprintf(v, sizeof(v), "0");
	} else {
		double th = in->spam_threshold > 0 ? in->spam_threshold : 5.0;
		double ratio = in->spam_score / th;
		if (ratio < 0)
			ratio = 0;
		if (ratio > 1)
			ratio = 1;
		if (n->tags & T_PERCENT)
			snprintf(v, sizeof(v), "%d", (int)(ratio * 100 + 0.5));
		else
			snprintf(v, sizeof(v), "%d", 1 + (int)(ratio * 9 + 0.5));
	}
	feed(&vs, v, strlen(v));
	return values_end(&vs);
}

static bool test_virustest(struct sv_run *run, const struct sv_node *n)
{
	/* RFC 5235 3.2: 0 not tested, 1 clean ... 5 infected */
	struct sv_values vs = {run, n, n->arg[0], 0, false};
	int st = run->in->virus_status;
	char v[2] = {(char)('0' + (st < 0 || st > 5 ? 0 : st)), '\0'};
	feed(&vs, v, 1);
	return values_end(&vs);
}

static bool test_environment(struct sv_run *run, const struct sv_node *n)
{
	struct sv_values vs = {run, n, n->arg[1], 0, false};
	struct buf nb;
	buf_init(&nb, 0);
	struct slice name = sv_string(run, n->arg[0], 0, &nb);
	const struct sieve_input *in = run->in;
	const char *v = NULL;
#define IS(s) (name.len == strlen(s) && strncasecmp(name.ptr, s, name.len) == 0)
	if (IS("domain"))
		v = in->domain;
	else if (IS("host"))
		v = in->host;
	else if (IS("location"))
		v = "MDA";
	else if (IS("name"))
		v = "Loft";
	else if (IS("phase"))
		v = "during";
	else if (IS("remote-host"))
		v = in->remote_host;
	else if (IS("remote-ip"))
		v = in->remote_ip;
	else if (IS("version"))
		v = "1.0";
#undef IS
	if (v)
		feed(&vs, v, strlen(v));
	buf_free(&nb);
	return values_end(&vs);
}

bool sv_test(struct sv_run *run, uint32_t idx)
{
	const struct sieve_script *s = run->frame->s;
	const struct sv_node *n = &s->nodes[idx];
	if (idx == 0 || !sv_charge(run, n, 1))
		return false;
	switch (n->op) {
	case OP_TRUE:
		return true;
	case OP_FALSE:
		return false;
	case OP_NOT:
		return !sv_test(run, n->kid) && !run->failed;
	case OP_ANYOF:
		for (uint32_t k = n->kid; k && !run->failed; k = s->nodes[k].next)
			if (sv_test(run, k))
				return true;
		return false;
	case OP_ALLOF:
		for (uint32_t k = n->kid; k && !run->failed; k = s->nodes[k].next)
			if (!sv_test(run, k))
				return false;
		return !run->failed;
	case OP_ADDRESS:
		return test_address(run, n);
	case OP_ENVELOPE:
		return test_envelope(run, n);
	case OP_HEADER:
		return test_header(run, n);
	case OP_EXISTS:
		return test_exists(run, n);
	case OP_SIZE:
		return (n->tags & T_OVER) ? run->in->len > n->num
					  : run->in->len < n->num;
	case OP_BODY:
		return test_body(run, n);
	case OP_HASFLAG:
		return test_hasflag(run, n);
	case OP_STRING:
		return test_string(run, n);
	case OP_DATE:
		return test_date(run, n);
	case OP_CURRENTDATE:
		return test_currentdate(run, n);
	case OP_MAILBOXEXISTS:
		return test_mailboxexists(run, n);
	case OP_DUPLICATE:
		return test_duplicate(run, n);
	case OP_SPAMTEST:
		return test_spamtest(run, n);
	case OP_VIRUSTEST:
		return test_virustest(run, n);
	case OP_ENVIRONMENT:
		return test_environment(run, n);
	default:
		sv_fail(run, n, "unexpected test in the compiled script");
		return false;
	}
}
