/*
 * The PROXY protocol, versions 1 and 2 (HAProxy's "The PROXY protocol",
 * https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt): a load
 * balancer in front of loftd ([proxy] trusted) sends, before anything
 * else on the connection, the address of the client it relays. loftd
 * then logs, throttles and bans by that address.
 *
 * Only the parsing is here (net-proxy.c, fuzzed: tests/fuzz/
 * fuzz-net-proxy.c); the net reads the header (net-conn.c).
 */
#ifndef LOFT_NET_PROXY_H
#define LOFT_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1 is one line of at most 107 bytes with its CRLF; v2 is 16 bytes and
 * the length they give (at most 65535 more). */
#define NET_PROXY_V1_MAX 107
#define NET_PROXY_V2_HEAD 16

struct net_proxy_header {
	unsigned version;       /* 1 or 2 */
	/* false: LOCAL (v2) or UNKNOWN (v1), or a family other than TCP
	 * over IPv4/IPv6: the connection's own addresses stand (a health
	 * check of the balancer itself) */
	bool has_addr;
	struct sockaddr_storage src, dst;
};

/* Parses the header at the start of buf[0..len).
 * > 0: a whole, valid header of that many bytes (h filled);
 *   0: a valid beginning, more bytes are needed;
 *  -1: not a PROXY header, or a malformed one (*error_r says which). */
int net_proxy_parse(const unsigned char *buf, size_t len,
		    struct net_proxy_header *h, const char **error_r);

/* Whether buf[0..len) begins a PROXY header of either version, as far as
 * it goes: 1 it does (the 6 bytes "PROXY " or v2's 12-byte signature are
 * there), 0 it may (a prefix of one of them), -1 it does not. */
int net_proxy_start(const unsigned char *buf, size_t len);

/* A list of trusted networks ("10.0.0.0/8, 192.0.2.7, ::1/128"; an
 * address without a prefix is the one address). */
struct net_cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};
/* Parses list; 0 (*nets_r malloced, *count_r) or -1 with a static
 * message in error_r. An empty list gives 0 networks. */
int net_cidr_parse(const char *list, struct net_cidr **nets_r,
		   size_t *count_r, const char **error_r);
/* Whether sa (IPv4, IPv6, or IPv4-mapped IPv6) is in one of nets. */
bool net_cidr_match(const struct net_cidr *nets, size_t count,
		    const struct sockaddr *sa);

#endif
