/*
 * Fuzz target for listen addresses (net_addr_check, src/net/net.c):
 * "HOST:PORT", "[IPV6]:PORT", "*:PORT", "unix:/PATH" from the config.
 * Whatever is accepted has a port of 1-65535 or an absolute socket path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *addr = xstrndup((const char *)data, size);
	const char *error = NULL;
	if (net_addr_check(addr, &error) == 0) {
		if (strncmp(addr, "unix:", 5) == 0) {
			if (addr[5] != '/')
				abort();
		} else {
			const char *colon = strrchr(addr, ':');
			long port = colon ? strtol(colon + 1, NULL, 10) : 0;
			if (port < 1 || port > 65535)
				abort();
		}
	} else if (error == NULL) {
		abort();
	}
	free(addr);
	return 0;
}
