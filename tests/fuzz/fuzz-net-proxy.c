/*
 * Fuzz target for the PROXY protocol header parser (src/net/net-proxy.c):
 * the first bytes a trusted load balancer sends, v1 text or v2 binary.
 *
 * Rules checked: a header is never longer than the input nor than the
 * spec allows; it parses the same on its own; every shorter prefix of it
 * asks for more bytes (the net reads it as it arrives and must neither
 * refuse a header cut by TCP nor take a byte past its end); an address
 * given is IPv4 or IPv6. The input as a trusted-networks list
 * (net_cidr_parse) is checked too: each network's prefix fits its family.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "net-proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_proxy_header h;
	const char *why;
	int ret = net_proxy_parse(data, size, &h, &why);
	if (ret < 0 && why == NULL)
		abort();
	if (ret > 0) {
		size_t n = (size_t)ret;
		if (n > size || (h.version == 1 && n > NET_PROXY_V1_MAX) ||
		    (h.version == 2 && n > NET_PROXY_V2_HEAD + 65535) ||
		    (h.version != 1 && h.version != 2))
			abort();
		if (h.has_addr &&
		    ((h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6) ||
		     h.src.ss_family != h.dst.ss_family))
			abort();
		struct net_proxy_header again;
		if (net_proxy_parse(data, n, &again, &why) != ret ||
		    again.has_addr != h.has_addr)
			abort();
		for (size_t k = 0; k < n && k < 600; k++)
			if (net_proxy_parse(data, k, &again, &why) != 0)
				abort();
	}
	if (ret == 0 && net_proxy_start(data, size) < 0)
		abort();

	char *list = xstrndup((const char *)data, size);
	struct net_cidr *nets;
	size_t count;
	if (net_cidr_parse(list, &nets, &count, &why) == 0) {
		for (size_t i = 0; i < count; i++)
			if ((nets[i].family == AF_INET && nets[i].prefix > 32) ||
			    (nets[i].family == AF_INET6 && nets[i].prefix > 128) ||
			    (nets[i].family != AF_INET && nets[i].family != AF_INET6))
				abort();
		free(nets);
	} else if (why == NULL) {
		abort();
	}
	free(list);
	return 0;
}
