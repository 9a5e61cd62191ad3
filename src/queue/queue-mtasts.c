/*
 * MTA-STS (RFC 8461) for outbound delivery: the _mta-sts TXT record (its
 * policy id), the policy fetched over HTTPS from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt by lib/outhttp.h (PKIX
 * verified, no redirects, at most 64 KiB) and cached in the queue's
 * backend until max_age, refetched when the id changes. A domain whose
 * policy says enforce gets mail only over TLS with a certificate valid
 * for an MX host the policy names; testing and none change nothing.
 * The policy and TXT parsers are pure and fuzzed
 * (tests/fuzz/fuzz-queue-mtasts.c).
 */
#include "queue-private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "log.h"
#include "outhttp.h"

#define STS_BODY_MAX (64 * 1024)
#define STS_MAX_AGE 31557600         /* RFC 8461 3.2: about a year */
#define STS_MAX_MX 64

/* ---- parsing ------------------------------------------------------- */

static void trim(const char **p, size_t *n)
{
	while (*n > 0 && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

static bool mx_pattern_ok(const char *s, size_t n)
{
	/* a host name, or "*." and one */
	if (n >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		n -= 2;
	}
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
			return false;
		/* s is a slice of the policy text: no strstr, no NUL there */
		if (c == '.' && i + 1 < n && s[i + 1] == '.')
			return false;
	}
	return s[0] != '.';
}

int qsts_policy_parse(const char *text, size_t len, struct qsts_policy *p,
		      char *why, size_t size)
{
	bool version = false, mode = false, age = false;
	size_t i = 0;

	memset(p, 0, sizeof(*p));
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		size_t n = e - i;
		const char *line = text + i;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		i = e + 1;
		if (n == 0)
			continue;
		const char *colon = memchr(line, ':', n);
		if (colon == NULL) {
			snprintf(why, size, "policy line without a colon");
			qsts_policy_free(p);
			return -1;
		}
		const char *k = line, *v = colon + 1;
		size_t kn = (size_t)(colon - line), vn = n - kn - 1;
		trim(&k, &kn);
		trim(&v, &vn);
		if (kn == 7 && strncmp(k, "version", 7) == 0) {
			version = vn == 5 && strncmp(v, "STSv1", 5) == 0;
		} else if (kn == 4 && strncmp(k, "mode", 4) == 0) {
			mode = true;
			if (vn == 7 && strncmp(v, "enforce", 7) == 0)
				p->mode = QSTS_ENFORCE;
			else if (vn == 7 && strncmp(v, "testing", 7) == 0)
				p->mode = QSTS_TESTING;
			else if (vn == 4 && strncmp(v, "none", 4) == 0)
				p->mode = QSTS_NONE;
			else
				mode = false;
		} else if (kn == 7 && strncmp(k, "max_age", 7) == 0) {
			uint64_t a = 0;
			age = vn > 0 && vn <= 10;
			for (size_t k2 = 0; age && k2 < vn; k2++) {
				if (!isdigit((unsigned char)v[k2]))
					age = false;
				else
					a = a * 10 + (uint64_t)(v[k2] - '0');
			}
			p->max_age = a > STS_MAX_AGE ? STS_MAX_AGE : a;
		} else if (kn == 2 && strncmp(k, "mx", 2) == 0) {
			if (!mx_pattern_ok(v, vn) || p->mx_count == STS_MAX_MX) {
				snprintf(why, size, "bad mx pattern");
				qsts_policy_free(p);
				return -1;
			}
			p->mx = xrealloc(p->mx, (p->mx_count + 1) * sizeof(char *));
			p->mx[p->mx_count] = xstrndup(v, vn);
			for (char *c = p->mx[p->mx_count]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			p->mx_count++;
		}
		/* other keys: ignored (3.2) */
	}
	if (!version || !mode || !age ||
	    (p->mode != QSTS_NONE && p->mx_count == 0)) {
		snprintf(why, size, "policy lacks version, mode, max_age or mx");
		qsts_policy_free(p);
		return -1;
	}
	return 0;
}

void qsts_policy_free(struct qsts_policy *p)
{
	for (size_t i = 0; i < p->mx_count; i++)
		free(p->mx[i]);
	free(p->mx);
	p->mx = NULL;
	p->mx_count = 0;
}

bool qsts_mx_matches(const struct qsts_policy *p, const char *host)
{
	size_t hn = strlen(host);

	if (hn > 0 && host[hn - 1] == '.')
		hn--;
	for (size_t i = 0; i < p->mx_count; i++) {
		const char *m = p->mx[i];
		if (m[0] == '*' && m[1] == '.') {
			/* "*.example.com" matches exactly one more label */
			size_t sn = strlen(m + 1);
			const char *dot = memchr(host, '.', hn);
			if (dot != NULL && dot != host &&
			    (size_t)(host + hn - dot) == sn &&
			    strncasecmp(dot, m + 1, sn) == 0)
				return true;
		} else if (strlen(m) == hn && strncasecmp(host, m, hn) == 0) {
			return true;
		}
	}
	return false;
}

int qsts_txt_id(const char *txt, size_t len, char id[QSTS_ID_MAX + 1])
{
	size_t i = 0;
	bool seen_id = false;

	if (len < 7 || strncmp(txt, "v=STSv1", 7) != 0)
		return -1;
	i = 7;
	while (i < len && (txt[i] == ' ' || txt[i] == '\t'))
		i++;
	if (i < len && txt[i] != ';')
		return -1;
	while (i < len) {
		i++;            /* ';' */
		while (i < len && (txt[i] == ' ' || txt[i] == '\t'))
			i++;
		size_t a = i;
		while (i < len && txt[i] != ';')
			i++;
		size_t b = i;
		while (b > a && (txt[b - 1] == ' ' || txt[b - 1] == '\t'))
			b--;
		if (b - a > 3 && strncmp(txt + a, "id=", 3) == 0) {
			size_t n = b - a - 3;
			if (n == 0 || n > QSTS_ID_MAX || seen_id)
				return -1;
			for (size_t k = 0; k < n; k++)
				if (!isalnum((unsigned char)txt[a + 3 + k]))
					return -1;
			memcpy(id, txt + a + 3, n);
			id[n] = '\0';
			seen_id = true;
		}
	}
	return seen_id ? 0 : -1;
}

/* ---- fetching ------------------------------------------------------ */

/* The policy text of domain over HTTPS (lib/outhttp.h: in loftd the
 * outbound process fetches it); NULL (logged) on any failure. */
static char *fetch(struct queue *q, const char *domain)
{
	char *url = xasprintf("https://mta-sts.%s/.well-known/mta-sts.txt",
			      domain);
	uint64_t ct = q->set.connect_timeout > 0 ? q->set.connect_timeout : 1;
	if (ct > OUTHTTP_TIMEOUT_MAX / 2000)
		ct = OUTHTTP_TIMEOUT_MAX / 2000;
	struct outhttp_request rq = {
		.method = "GET", .url = url, .https_only = true,   /* 3.3 */
		.ca_file = q->set.tls_ca_file,
		.timeout_ms = (unsigned)ct * 2000,
		.connect_timeout_ms = (unsigned)ct * 1000,
		.answer_max = STS_BODY_MAX,
	};
	struct outhttp_answer a;
	char *err = NULL, *text = NULL;
	if (outhttp_perform(&rq, &a, &err) < 0)
		log_info("queue", NULL, "MTA-STS policy of %s: %s", domain, err);
	else if (a.status != 200)
		log_info("queue", NULL, "MTA-STS policy of %s: HTTP %u", domain,
			 a.status);
	else if (a.content_type == NULL ||
		 strncasecmp(a.content_type, "text/plain", 10) != 0)
		log_info("queue", NULL, "MTA-STS policy of %s: not text/plain",
			 domain);
	else if (memchr(a.body, '\0', a.body_len) != NULL)
		log_info("queue", NULL, "MTA-STS policy of %s: NUL in the text",
			 domain);
	else
		text = xstrdup(a.body);
	outhttp_answer_free(&a);
	free(err);
	free(url);
	return text;
}

/* ---- the policy that applies --------------------------------------- */

void queue_mtasts_policy(struct queue *q, const char *domain,
			 struct qsts_policy *p_r)
{
	char id[QSTS_ID_MAX + 1] = "", why[100];
	char *cached_id = NULL, *cached = NULL, *text = NULL;
	time_t expires = 0, now = time(NULL);
	int found = 0;

	memset(p_r, 0, sizeof(*p_r));
	if (q->set.dns == NULL)
		return;
	char *name = xasprintf("_mta-sts.%s", domain);
	struct dns_answer a;
	dns_query(q->set.dns, name, DNS_TXT, &a);
	free(name);
	for (size_t i = 0; a.status == DNS_OK && i < a.count; i++) {
		char *t = dns_parse_txt(a.data[i], a.len[i]);
		char one[QSTS_ID_MAX + 1];
		if (t != NULL && strncmp(t, "v=STSv1", 7) == 0) {
			found++;
			if (qsts_txt_id(t, strlen(t), one) == 0)
				memcpy(id, one, sizeof(id));
		}
		free(t);
	}
	dns_answer_free(&a);
	if (found > 1)
		id[0] = '\0';       /* 3.1: several records: none */
	if (q->be->sts_get(q, domain, &cached_id, &cached, &expires) < 0 ||
	    expires <= now) {
		free(cached_id);
		free(cached);
		cached_id = cached = NULL;
	}
	/* RFC 8461 5.1: a cached policy holds until it expires (a domain
	 * removes one by publishing mode none); a new id is fetched, and if
	 * that fails the cached one still holds */
	if (id[0] != '\0' && (cached == NULL || cached_id == NULL ||
			      strcmp(cached_id, id) != 0)) {
		text = fetch(q, domain);
		if (text != NULL) {
			struct qsts_policy fresh;
			if (qsts_policy_parse(text, strlen(text), &fresh, why,
					      sizeof(why)) == 0) {
				q->be->sts_put(q, domain, id, text,
					       now + (time_t)fresh.max_age);
				qsts_policy_free(&fresh);
			} else {
				log_info("queue", NULL, "MTA-STS policy of %s: %s",
					 domain, why);
				free(text);
				text = NULL;
			}
		}
	}
	if (text == NULL && cached != NULL)
		text = xstrdup(cached);
	if (text != NULL &&
	    qsts_policy_parse(text, strlen(text), p_r, why, sizeof(why)) < 0)
		memset(p_r, 0, sizeof(*p_r));
	free(text);
	free(cached);
	free(cached_id);
}
