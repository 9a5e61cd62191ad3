/*
 * libcurl through outconn.h: include after <curl/curl.h> and call
 * outconn_curl(handle) before curl_easy_perform. With a broker (loftd's
 * mail process) the socket curl would open is connected by the outbound
 * process instead and curl is told it is connected already; without one,
 * or with a libcurl older than 8.0 (see outconn_curl_handover_works),
 * curl connects by itself.
 */
#ifndef LOFT_OUTCONN_CURL_H
#define LOFT_OUTCONN_CURL_H

#include <stdlib.h>

#include "log.h"
#include "outconn.h"

static curl_socket_t outconn_curl_open(void *ctx, curlsocktype purpose,
				       struct curl_sockaddr *a)
{
	(void)ctx;
	if (purpose != CURLSOCKTYPE_IPCXN || a->socktype != SOCK_STREAM)
		return CURL_SOCKET_BAD;
	char *err = NULL;
	int fd = outconn_connect(&a->addr, a->addrlen, 10000, &err);
	if (fd < 0) {
		log_debug("outconn", NULL, "connect: %s", err ? err : "?");
		free(err);
		return CURL_SOCKET_BAD;
	}
	return fd;
}

static int outconn_curl_sockopt(void *ctx, curl_socket_t fd,
				curlsocktype purpose)
{
	(void)ctx;
	(void)fd;
	(void)purpose;
	return CURL_SOCKOPT_ALREADY_CONNECTED;
}

/* Whether libcurl takes a connected socket as it is: 7.88 (Debian 12)
 * calls connect(2) on it again despite CURL_SOCKOPT_ALREADY_CONNECTED
 * (curl issue 10626, fixed in 8.0.0), which a process without the right
 * to connect (Landlock) is refused. */
static inline bool outconn_curl_handover_works(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v != NULL && v->version_num >= 0x080000;
}

static inline void outconn_curl(CURL *c)
{
	if (!outconn_brokered() || !outconn_curl_handover_works())
		return;
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, outconn_curl_open);
	curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, outconn_curl_sockopt);
}

#endif
