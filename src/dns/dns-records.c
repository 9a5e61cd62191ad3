/*
 * Pure helpers over DNS wire data (fuzzed: tests/fuzz/fuzz-dns-records.c)
 * and the MX host list of RFC 5321 5.1 with null MX (RFC 7505).
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

int dns_wire_name(const uint8_t *data, size_t len, size_t *off, char *out,
		  size_t out_size)
{
	size_t o = *off, n = 0;

	if (out_size == 0)
		return -1;
	for (;;) {
		if (o >= len)
			return -1;
		uint8_t l = data[o++];
		if (l == 0)
			break;
		if (l > 63 || o + l > len)
			return -1; /* a pointer: rdata names are uncompressed */
		/* RFC 1035 2.3.4: 255 octets at most, the final 0 included */
		if (o + l + 1 - *off > 255)
			return -1;
		if (n > 0) {
			if (n + 1 >= out_size)
				return -1;
			out[n++] = '.';
		}
		for (uint8_t i = 0; i < l; i++) {
			unsigned char c = data[o + i];
			if (n + 1 >= out_size || c == 0 || c == '.')
				return -1;
			out[n++] = (char)tolower(c);
		}
		o += l;
	}
	out[n] = '\0';
	*off = o;
	return 0;
}

int dns_parse_mx(const uint8_t *data, size_t len, struct dns_mx *mx_r)
{
	size_t off = 2;

	if (len < 3)
		return -1;
	mx_r->pref = (unsigned)data[0] << 8 | data[1];
	return dns_wire_name(data, len, &off, mx_r->host, sizeof(mx_r->host));
}

char *dns_parse_txt(const uint8_t *data, size_t len)
{
	struct buf b;
	size_t o = 0;

	buf_init(&b, 0);
	while (o < len) {
		uint8_t l = data[o++];
		if (o + l > len) {
			buf_free(&b);
			return NULL;
		}
		buf_append(&b, data + o, l);
		o += l;
	}
	buf_append(&b, "", 0);
	return buf_steal(&b, NULL);
}

int dns_reverse_name(const char *ip, char *out, size_t size)
{
	unsigned char a[16];
	static const char hex[] = "0123456789abcdef";

	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1],
			 a[0]);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) != 1 || size < 74)
		return -1;
	size_t n = 0;
	for (int i = 15; i >= 0; i--) {
		out[n++] = hex[a[i] & 15];
		out[n++] = '.';
		out[n++] = hex[a[i] >> 4];
		out[n++] = '.';
	}
	snprintf(out + n, size - n, "ip6.arpa");
	return 0;
}

static int mx_cmp(const void *x, const void *y)
{
	const struct dns_mx *a = x, *b = y;
	return (int)a->pref - (int)b->pref;
}

int dns_mx_hosts(struct dns *dns, const char *domain, struct dns_mx **mx_r,
		 size_t *count_r, bool *null_mx_r, bool *secure_r,
		 enum dns_status *status_r)
{
	struct dns_answer a;
	struct dns_mx *mx;
	size_t n = 0;

	*mx_r = NULL;
	*count_r = 0;
	*null_mx_r = false;
	dns_query(dns, domain, DNS_MX, &a);
	*status_r = a.status;
	*secure_r = a.secure;
	if (a.status == DNS_NODATA) {
		/* RFC 5321 5.1: no MX, the domain itself is the host */
		mx = xcalloc(1, sizeof(*mx));
		snprintf(mx->host, sizeof(mx->host), "%s", domain);
		*mx_r = mx;
		*count_r = 1;
		*status_r = DNS_OK;
		dns_answer_free(&a);
		return 0;
	}
	if (a.status != DNS_OK) {
		dns_answer_free(&a);
		return -1;
	}
	mx = xcalloc(a.count, sizeof(*mx));
	for (size_t i = 0; i < a.count; i++) {
		if (dns_parse_mx(a.data[i], a.len[i], &mx[n]) < 0)
			continue;
		if (mx[n].host[0] == '\0') {
			/* RFC 7505: a lone null MX says "no mail here" */
			if (a.count == 1)
				*null_mx_r = true;
			continue;
		}
		n++;
	}
	dns_answer_free(&a);
	/* shuffle, then a stable sort: equal preferences stay random */
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)random() % i;
		struct dns_mx t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && mx_cmp(&mx[j - 1], &mx[j]) > 0; j--) {
			struct dns_mx t = mx[j];
			mx[j] = mx[j - 1];
			mx[j - 1] = t;
		}
	if (n == 0) {
		free(mx);
		mx = NULL;
		if (!*null_mx_r)
			*status_r = DNS_TEMPFAIL; /* only garbage records */
	}
	*mx_r = mx;
	*count_r = n;
	return n > 0 || *null_mx_r ? 0 : -1;
}
