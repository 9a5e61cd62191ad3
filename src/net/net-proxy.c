/*
 * The PROXY protocol header, versions 1 and 2 (net-proxy.h), and the
 * trusted networks it is accepted from.
 */
#include "net-proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

int net_proxy_start(const unsigned char *buf, size_t len)
{
	size_t n1 = len < 6 ? len : 6, n2 = len < 12 ? len : 12;
	bool v1 = memcmp(buf, v1_sig, n1) == 0;
	bool v2 = memcmp(buf, v2_sig, n2) == 0;
	if ((v1 && len >= 6) || (v2 && len >= 12))
		return 1;
	return v1 || v2 ? 0 : -1;
}

static int fail(const char **error_r, const char *why)
{
	*error_r = why;
	return -1;
}

/* A port: 0-65535, decimal, no sign, no leading zero. */
static bool v1_port(const char *s, size_t len, uint16_t *port_r)
{
	if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port_r = (uint16_t)v;
	return true;
}

static bool v1_addr(int family, const char *s, size_t len, uint16_t port,
		    struct sockaddr_storage *ss)
{
	char tmp[INET6_ADDRSTRLEN];
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
}

/* "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
 * "PROXY TCP6 ...", "PROXY UNKNOWN[ anything]\r\n". */
static int parse_v1(const unsigned char *buf, size_t len,
		    struct net_proxy_header *h, const char **error_r)
{
	const unsigned char *crlf = NULL;
	size_t max = len < NET_PROXY_V1_MAX ? len : NET_PROXY_V1_MAX;
	for (size_t i = 0; i + 1 < max; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	}
	if (crlf == NULL)
		return len >= NET_PROXY_V1_MAX
		       ? fail(error_r, "PROXY v1 line longer than 107 bytes")
		       : 0;
	const char *line = (const char *)buf + 6;
	size_t line_len = (size_t)(crlf - buf) - 6;
	size_t total = (size_t)(crlf - buf) + 2;
	memset(h, 0, sizeof(*h));
	h->version = 1;
	if (line_len >= 7 && memcmp(line, "UNKNOWN", 7) == 0 &&
	    (line_len == 7 || line[7] == ' '))
		return (int)total;
	/* TCP4|TCP6 SP src SP dst SP sport SP dport: exactly 5 fields */
	const char *f[5];
	size_t fl[5];
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= line_len; i++) {
		if (i < line_len && line[i] != ' ')
			continue;
		if (k == 5)
			return fail(error_r, "PROXY v1 line has too many fields");
		f[k] = line + start;
		fl[k] = i - start;
		if (fl[k] == 0)
			return fail(error_r, "PROXY v1 line has an empty field");
		k++;
		start = i + 1;
	}
	if (k != 5)
		return fail(error_r, "PROXY v1 line has too few fields");
	int family;
	if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		family = AF_INET;
	else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return fail(error_r, "PROXY v1 protocol is not TCP4, TCP6 or"
			    " UNKNOWN");
	uint16_t sport, dport;
	if (!v1_port(f[3], fl[3], &sport) || !v1_port(f[4], fl[4], &dport))
		return fail(error_r, "PROXY v1 port is not 0-65535");
	if (!v1_addr(family, f[1], fl[1], sport, &h->src) ||
	    !v1_addr(family, f[2], fl[2], dport, &h->dst))
		return fail(error_r, "PROXY v1 address does not match its"
			    " protocol");
	h->has_addr = true;
	return (int)total;
}

static int parse_v2(const unsigned char *buf, size_t len,
		    struct net_proxy_header *h, const char **error_r)
{
	if (len < NET_PROXY_V2_HEAD)
		return 0;
	unsigned ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
	unsigned af = buf[13] >> 4, proto = buf[13] & 0x0f;
	size_t body = ((size_t)buf[14] << 8) | buf[15];
	if (ver != 2)
		return fail(error_r, "PROXY v2 header of another version");
	if (cmd > 1)
		return fail(error_r, "PROXY v2 command is not LOCAL or PROXY");
	if (af > 3 || proto > 2)
		return fail(error_r, "PROXY v2 family or protocol unknown");
	if (len < NET_PROXY_V2_HEAD + body)
		return 0;
	const unsigned char *a = buf + NET_PROXY_V2_HEAD;
	memset(h, 0, sizeof(*h));
	h->version = 2;
	int total = (int)(NET_PROXY_V2_HEAD + body);
	/* LOCAL: the balancer's own connection (a health check); UNSPEC,
	 * UNIX or DGRAM: nothing loftd can use; the real endpoints stand */
	if (cmd == 0 || proto != 1 || (af != 1 && af != 2))
		return total;
	if (af == 1) {
		if (body < 12)
			return fail(error_r, "PROXY v2 IPv4 addresses cut short");
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else {
		if (body < 36)
			return fail(error_r, "PROXY v2 IPv6 addresses cut short");
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	}
	/* the TLVs after the addresses (ALPN, SSL, unique id) are skipped:
	 * loftd uses none of them */
	h->has_addr = true;
	return total;
}

int net_proxy_parse(const unsigned char *buf, size_t len,
		    struct net_proxy_header *h, const char **error_r)
{
	*error_r = NULL;
	switch (net_proxy_start(buf, len)) {
	case -1:
		return fail(error_r, "not a PROXY protocol header");
	case 0:
		return 0;
	}
	if (buf[0] == 'P')
		return parse_v1(buf, len, h, error_r);
	return parse_v2(buf, len, h, error_r);
}

/* ---- trusted networks --------------------------------------------------- */

int net_cidr_parse(const char *list, struct net_cidr **nets_r,
		   size_t *count_r, const char **error_r)
{
	struct net_cidr *nets = NULL;
	size_t n = 0;
	const char *p = list;
	*nets_r = NULL;
	*count_r = 0;
	while (p != NULL && *p != '\0') {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (len == 0)
			break;
		char tok[64];
		if (len >= sizeof(tok)) {
			free(nets);
			*error_r = "an address in the list is too long";
			return -1;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		p += len;
		struct net_cidr c = {0};
		char *slash = strchr(tok, '/');
		if (slash != NULL)
			*slash = '\0';
		if (inet_pton(AF_INET, tok, c.addr) == 1)
			c.family = AF_INET;
		else if (inet_pton(AF_INET6, tok, c.addr) == 1)
			c.family = AF_INET6;
		else {
			free(nets);
			*error_r = "not an IPv4 or IPv6 address (ADDRESS/PREFIX)";
			return -1;
		}
		unsigned max = c.family == AF_INET ? 32 : 128;
		c.prefix = max;
		if (slash != NULL) {
			char *end;
			unsigned long v = strtoul(slash + 1, &end, 10);
			if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
			    v > max) {
				free(nets);
				*error_r = "a prefix length is not 0-32 (IPv4)"
					   " or 0-128 (IPv6)";
				return -1;
			}
			c.prefix = (unsigned)v;
		}
		nets = xrealloc(nets, (n + 1) * sizeof(*nets));
		nets[n++] = c;
	}
	*nets_r = nets;
	*count_r = n;
	return 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b,
			 unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool net_cidr_match(const struct net_cidr *nets, size_t count,
		    const struct sockaddr *sa)
{
	int family;
	const unsigned char *addr;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		addr = (const unsigned char *)
			&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
			&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr = a6->s6_addr + 12;
		} else {
			family = AF_INET6;
			addr = a6->s6_addr;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < count; i++)
		if (nets[i].family == family &&
		    prefix_equal(nets[i].addr, addr, nets[i].prefix))
			return true;
	return false;
}
