/*
 * DMARC (RFC 7489): the policy record (6.3, a tag list; parsed strictly
 * and fuzzed, tests/fuzz/fuzz-mailauth-dmarc.c), its discovery at the
 * From: domain and then at its organizational domain (6.6.3), identifier
 * alignment of SPF's and DKIM's passing domains (3.1), and the policy
 * that applies (p, or sp for a subdomain) after pct= sampling (6.6.4).
 * What to do with a failure is the caller's (smtp: refuse under reject,
 * Junk under quarantine); none, temperror and permerror never act.
 */
#include "mailauth-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"

static bool value_is(struct slice v, const char *word)
{
	return v.len == strlen(word) && strncasecmp(v.ptr, word, v.len) == 0;
}

static enum dmarc_policy policy_of(struct slice v)
{
	if (value_is(v, "none"))
		return DMARC_P_NONE;
	if (value_is(v, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (value_is(v, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* "v=DMARC1" as the first tag (RFC 7489 6.4). */
static bool is_dmarc(const char *txt, size_t len)
{
	size_t i = 0;

	while (i < len && (txt[i] == ' ' || txt[i] == '\t'))
		i++;
	if (len - i < 8 || strncmp(txt + i, "v=DMARC1", 8) != 0)
		return false;
	i += 8;
	while (i < len && (txt[i] == ' ' || txt[i] == '\t'))
		i++;
	return i == len || txt[i] == ';';
}

int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r,
		       char *why_r, size_t size)
{
	struct ma_tag tags[MA_MAX_TAGS];
	const struct ma_tag *t;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->pct = 100;
	if (!is_dmarc(txt, len) || ma_tags_parse(txt, len, tags, &n) < 0 ||
	    n == 0 || !slice_eq(tags[0].name, "v")) {
		snprintf(why_r, size, "not a DMARC record");
		return -1;
	}
	r->has_rua = ma_tag_find(tags, n, "rua") != NULL;
	t = ma_tag_find(tags, n, "p");
	if (t != NULL)
		r->p = policy_of(t->value);
	if (r->p == DMARC_P_UNSET) {
		/* 6.6.3: an invalid p= with a valid rua= reads as none */
		if (!r->has_rua) {
			snprintf(why_r, size, "DMARC record without a valid p=");
			return -1;
		}
		r->p = DMARC_P_NONE;
	}
	t = ma_tag_find(tags, n, "sp");
	if (t != NULL)
		r->sp = policy_of(t->value);
	t = ma_tag_find(tags, n, "np");
	if (t != NULL)
		r->np = policy_of(t->value);
	t = ma_tag_find(tags, n, "adkim");
	if (t != NULL)
		r->adkim_strict = value_is(t->value, "s");
	t = ma_tag_find(tags, n, "aspf");
	if (t != NULL)
		r->aspf_strict = value_is(t->value, "s");
	t = ma_tag_find(tags, n, "pct");
	if (t != NULL) {
		unsigned v = 0;
		bool ok = t->value.len > 0 && t->value.len <= 3;
		for (size_t i = 0; ok && i < t->value.len; i++) {
			if (t->value.ptr[i] < '0' || t->value.ptr[i] > '9')
				ok = false;
			else
				v = v * 10 + (unsigned)(t->value.ptr[i] - '0');
		}
		r->pct = ok && v <= 100 ? v : 100;
	}
	return 0;
}

static bool aligned(const char *a, const char *from, bool strict)
{
	char oa[256], of[256];

	if (strcasecmp(a, from) == 0)
		return true;
	if (strict)
		return false;
	ma_org_domain(a, oa, sizeof(oa));
	ma_org_domain(from, of, sizeof(of));
	return strcasecmp(oa, of) == 0;
}

/* The one DMARC record among the TXT records of an answer: 1 found, 0
 * none, -1 temperror, -2 unusable. */
static int record_from(const struct dns_answer *a, struct dmarc_record *rec,
		       char *why, size_t size)
{
	int found = 0, rc = 0;

	if (a->status == DNS_TEMPFAIL || a->status == DNS_BOGUS)
		return -1;
	for (size_t i = 0; a->status == DNS_OK && i < a->count; i++) {
		char *txt = dns_parse_txt(a->data[i], a->len[i]);
		if (txt != NULL && is_dmarc(txt, strlen(txt))) {
			found++;
			rc = dmarc_record_parse(txt, strlen(txt), rec, why, size);
		}
		free(txt);
	}
	if (found == 0)
		return 0;
	/* 6.6.3: several records, or one that does not parse: no policy */
	return found == 1 && rc == 0 ? 1 : -2;
}

void dmarc_evaluate_answers(const char *from, const struct dns_answer *at_from,
			    const struct dns_answer *at_org,
			    const struct spf_result *spf,
			    const struct dkim_result *dkim, size_t dkim_count,
			    struct dmarc_result *r)
{
	struct dmarc_record rec;
	char org[256], why[128] = "";
	bool sub = false;
	int found;

	memset(r, 0, sizeof(*r));
	snprintf(r->from_domain, sizeof(r->from_domain), "%s", from);
	ma_org_domain(from, org, sizeof(org));
	found = record_from(at_from, &rec, why, sizeof(why));
	if (found == 0 && strcasecmp(org, from) != 0 && at_org != NULL) {
		found = record_from(at_org, &rec, why, sizeof(why));
		sub = true;
	}
	if (found == -1) {
		r->status = MA_TEMPERROR;
		snprintf(r->reason, sizeof(r->reason), "DMARC lookup failed");
		return;
	}
	if (found == -2) {
		r->status = MA_PERMERROR;
		snprintf(r->reason, sizeof(r->reason), "%s",
			 why[0] ? why : "several DMARC records");
		return;
	}
	if (found == 0) {
		r->status = MA_NONE;
		return;
	}
	r->policy = sub && rec.sp != DMARC_P_UNSET ? rec.sp : rec.p;
	bool pass = spf->status == MA_PASS && spf->domain[0] != '\0' &&
		    aligned(spf->domain, from, rec.aspf_strict);
	for (size_t i = 0; !pass && i < dkim_count; i++)
		pass = dkim[i].status == MA_PASS &&
		       aligned(dkim[i].domain, from, rec.adkim_strict);
	if (pass) {
		r->status = MA_PASS;
		r->applied = DMARC_P_NONE;
		return;
	}
	r->status = MA_FAIL;
	r->applied = r->policy;
	/* 6.6.4: pct= applies the policy to that share of failures; the
	 * rest get the next milder one */
	if (rec.pct < 100 && (unsigned)(random() % 100) >= rec.pct) {
		if (r->applied == DMARC_P_REJECT)
			r->applied = DMARC_P_QUARANTINE;
		else if (r->applied == DMARC_P_QUARANTINE)
			r->applied = DMARC_P_NONE;
	}
	snprintf(r->reason, sizeof(r->reason), "no aligned SPF or DKIM pass");
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_NONE: return "none";
	case DMARC_P_QUARANTINE: return "quarantine";
	case DMARC_P_REJECT: return "reject";
	default: return "none";
	}
}
