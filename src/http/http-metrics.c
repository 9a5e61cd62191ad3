/*
 * /metrics (Prometheus text format, from the registry in lib/metrics.h)
 * on the [metrics] admin listener only, and /healthz on every listener:
 * 200 "ok" while loftd serves, for load balancers and systemd checks;
 * 503 while the node cannot reach the store's database (scale-out: the
 * load balancer sends clients to another node).
 */
#include <string.h>

#include "http-private.h"
#include "metrics.h"
#include "store.h"

static void handle_metrics(struct http_request *req, struct http_response *resp,
			   void *ctx)
{
	struct buf b;
	buf_init(&b, 0);
	metrics_render(&b);
	http_response_content_type(resp, "text/plain; version=0.0.4; "
				   "charset=utf-8");
	http_response_set_header(resp, "Cache-Control", "no-store");
	http_response_send(resp, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void handle_healthz(struct http_request *req, struct http_response *resp,
			   void *ctx)
{
	struct http_server *server = ctx;
	http_response_content_type(resp, "text/plain; charset=utf-8");
	http_response_set_header(resp, "Cache-Control", "no-store");
	if (server->store != NULL && !store_reachable(server->store)) {
		static const char away[] = "the mail store's database cannot be"
					   " reached\n";
		http_response_status(resp, 503);
		http_response_send(resp, away, sizeof(away) - 1);
		return;
	}
	http_response_send(resp, "ok\n", 3);
}

void http_metrics_register(struct http_server *server)
{
	static const struct http_route healthz = {
		.method = "GET", .prefix = "/healthz",
		.flags = HTTP_ROUTE_EXACT, .handle = handle_healthz,
	};
	static const struct http_route metrics = {
		.method = "GET", .prefix = "/metrics",
		.flags = HTTP_ROUTE_EXACT, .handle = handle_metrics,
	};
	http_route_add(server, &healthz, server);
	if (server->admin)
		http_route_add(server, &metrics, NULL);
}
