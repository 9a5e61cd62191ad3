/*
 * One message's checks (mailauth.h): the DKIM keys and the DMARC records
 * are asked for at once in one DNS batch, SPF runs its chain of lookups
 * meanwhile, and everything shares the message's deadline. Then the
 * Authentication-Results field (RFC 8601) says what was found.
 */
#include "mailauth-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"

#define MAX_FROM_DOMAINS 8

/* The distinct From: domains of the message's header; -1 if there is
 * no From: field or it does not parse. */
static int from_domains(const struct dkim_verifier *v, char doms[][256],
			size_t max)
{
	struct ma_field *f;
	size_t hlen, n = ma_header_split(v->head.data ? v->head.data : "",
					  v->head.len, &f, &hlen);
	size_t count = 0;
	bool seen = false;

	for (size_t i = 0; i < n; i++) {
		if (f[i].name_len != 4 || strncasecmp(f[i].name, "From", 4) != 0)
			continue;
		char got[MAX_FROM_DOMAINS][256];
		int k = ma_from_domains(f[i].value, f[i].value_len, got,
					MAX_FROM_DOMAINS);
		seen = true;
		if (k < 0) {
			free(f);
			return -1;
		}
		for (int j = 0; j < k; j++) {
			bool dup = false;
			for (size_t d = 0; d < count; d++)
				dup |= strcmp(doms[d], got[j]) == 0;
			if (!dup && count < max)
				memcpy(doms[count++], got[j], 256);
		}
	}
	free(f);
	return seen && count > 0 ? (int)count : -1;
}

/* The stricter of two DMARC outcomes (several From: domains: each must
 * pass on its own, RFC 7489 6.6.1). */
static bool worse(const struct dmarc_result *a, const struct dmarc_result *b)
{
	static const int rank[] = {
		[MA_NONE] = 1, [MA_PASS] = 0, [MA_FAIL] = 4, [MA_SOFTFAIL] = 1,
		[MA_NEUTRAL] = 1, [MA_POLICY] = 1, [MA_TEMPERROR] = 2,
		[MA_PERMERROR] = 3,
	};
	if (a->status == MA_FAIL && b->status == MA_FAIL)
		return a->applied > b->applied;
	return rank[a->status] > rank[b->status];
}

void mailauth_check(struct dns *dns, const struct ma_deadline *deadline,
		    const struct mailauth_input *in, struct mailauth_result *r)
{
	char doms[MAX_FROM_DOMAINS][256], orgs[MAX_FROM_DOMAINS][256];
	size_t q_from[MAX_FROM_DOMAINS], q_org[MAX_FROM_DOMAINS];
	struct dns_batch *b = dns_batch_create(dns);
	int nd = from_domains(in->dkim, doms, MAX_FROM_DOMAINS);

	memset(r, 0, sizeof(*r));
	/* every lookup that does not depend on another, sent now */
	dkim_verifier_queries(in->dkim, b);
	for (int i = 0; i < nd; i++) {
		char name[300];
		snprintf(name, sizeof(name), "_dmarc.%s", doms[i]);
		q_from[i] = dns_batch_add(b, name, DNS_TXT);
		ma_org_domain(doms[i], orgs[i], sizeof(orgs[i]));
		q_org[i] = SIZE_MAX;
		if (strcmp(orgs[i], doms[i]) != 0) {
			snprintf(name, sizeof(name), "_dmarc.%s", orgs[i]);
			q_org[i] = dns_batch_add(b, name, DNS_TXT);
		}
	}
	/* SPF's chain meanwhile */
	spf_check(dns, deadline, in->ip, in->sender, in->helo, in->receiver,
		  &r->spf);
	dns_batch_wait(b, ma_deadline_left(deadline));
	dkim_verifier_complete(in->dkim, b);
	r->dkim_count = dkim_verifier_results(in->dkim, r->dkim,
					      DKIM_MAX_SIGNATURES);
	if (nd <= 0) {
		r->dmarc.status = MA_NONE;
		snprintf(r->dmarc.reason, sizeof(r->dmarc.reason),
			 "no From: domain");
	}
	for (int i = 0; i < nd; i++) {
		struct dmarc_result one;
		dmarc_evaluate_answers(doms[i], dns_batch_answer(b, q_from[i]),
				       q_org[i] != SIZE_MAX
					       ? dns_batch_answer(b, q_org[i])
					       : NULL,
				       &r->spf, r->dkim, r->dkim_count, &one);
		if (i == 0 || worse(&one, &r->dmarc))
			r->dmarc = one;
	}
	dns_batch_free(&b);
}

/* ---- Authentication-Results --------------------------------------- */

/* A comment's text: no parentheses, backslashes or control
 * characters. */
static void comment(struct buf *out, const char *text)
{
	if (text == NULL || text[0] == '\0')
		return;
	buf_append_str(out, " (");
	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		buf_append_char(out, c < 0x20 || c == '(' || c == ')' ||
					     c == '\\' || c == 0x7f
					     ? ' ' : (char)c);
	}
	buf_append_char(out, ')');
}

/* A property value (RFC 8601 2.2 pvalue): a domain, address or token
 * as it is, anything else as a quoted string. */
static void pvalue(struct buf *out, const char *v)
{
	bool plain = v[0] != '\0';

	for (const char *p = v; *p != '\0' && plain; p++) {
		unsigned char c = (unsigned char)*p;
		plain = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			(c >= 'A' && c <= 'Z') || strchr("-._@+", c) != NULL;
	}
	if (plain) {
		buf_append_str(out, v);
		return;
	}
	buf_append_char(out, '"');
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_append_char(out, '\\');
		if ((unsigned char)*p >= 0x20 && *p != 0x7f)
			buf_append_char(out, *p);
	}
	buf_append_char(out, '"');
}

void mailauth_results(const char *authserv_id,
		      const struct mailauth_result *r, struct buf *out)
{
	buf_printf(out, "Authentication-Results: %s;\r\n\tspf=%s", authserv_id,
		   ma_status_name(r->spf.status));
	comment(out, r->spf.reason);
	if (r->spf.domain[0] != '\0') {
		buf_append_str(out, r->spf.helo ? " smtp.helo=" : " smtp.mailfrom=");
		pvalue(out, r->spf.domain);
	}
	if (r->dkim_count == 0)
		buf_append_str(out, ";\r\n\tdkim=none");
	for (size_t i = 0; i < r->dkim_count; i++) {
		const struct dkim_result *d = &r->dkim[i];
		buf_printf(out, ";\r\n\tdkim=%s", ma_status_name(d->status));
		comment(out, d->testing && d->reason[0] == '\0' ? "test key"
								  : d->reason);
		if (d->domain[0] != '\0') {
			buf_append_str(out, " header.d=");
			pvalue(out, d->domain);
		}
		if (d->selector[0] != '\0') {
			buf_append_str(out, " header.s=");
			pvalue(out, d->selector);
		}
		if (d->b[0] != '\0') {
			buf_append_str(out, " header.b=");
			pvalue(out, d->b);
		}
	}
	buf_printf(out, ";\r\n\tdmarc=%s", ma_status_name(r->dmarc.status));
	if (r->dmarc.status == MA_PASS || r->dmarc.status == MA_FAIL) {
		char c[80];
		snprintf(c, sizeof(c), "p=%s dis=%s",
			 dmarc_policy_name(r->dmarc.policy),
			 dmarc_policy_name(r->dmarc.applied));
		comment(out, c);
	} else {
		comment(out, r->dmarc.reason);
	}
	if (r->dmarc.from_domain[0] != '\0') {
		buf_append_str(out, " header.from=");
		pvalue(out, r->dmarc.from_domain);
	}
	buf_append_str(out, "\r\n");
}

bool mailauth_results_ours(const char *v, size_t len, const char *authserv_id)
{
	size_t i = 0, n = strlen(authserv_id);
	int depth = 0;

	/* CFWS, then the authserv-id (a token or quoted string) */
	while (i < len) {
		char c = v[i];
		if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			i++;
			continue;
		}
		if (c == '(') {
			depth = 1;
			i++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else {
			break;
		}
	}
	if (i < len && v[i] == '"') {
		size_t a = ++i;
		while (i < len && v[i] != '"')
			i++;
		return i - a == n && strncasecmp(v + a, authserv_id, n) == 0;
	}
	size_t a = i;
	while (i < len && v[i] != ';' && v[i] != ' ' && v[i] != '\t' &&
	       v[i] != '\r' && v[i] != '\n' && v[i] != '(')
		i++;
	return i - a == n && strncasecmp(v + a, authserv_id, n) == 0;
}

size_t mailauth_strip_results(const char *header, size_t len,
			      const char *authserv_id, struct buf *out)
{
	struct ma_field *f;
	size_t hlen, n = ma_header_split(header, len, &f, &hlen), removed = 0;
	const char *at = header;

	for (size_t i = 0; i < n; i++) {
		if (f[i].name_len == 22 &&
		    strncasecmp(f[i].name, "Authentication-Results", 22) == 0 &&
		    mailauth_results_ours(f[i].value, f[i].value_len,
					  authserv_id)) {
			buf_append(out, at, (size_t)(f[i].raw - at));
			at = f[i].raw + f[i].raw_len;
			removed++;
		}
	}
	buf_append(out, at, (size_t)(header + len - at));
	free(f);
	return removed;
}
