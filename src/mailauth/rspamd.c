/*
 * The spam scanner hook: rspamd's HTTP protocol (POST /checkv2 on its
 * normal worker, port 11333 by default; the envelope in request headers
 * IP, Helo, From, Rcpt, Queue-Id, Hostname; a JSON answer with score,
 * required_score and action) over lib/outhttp.h (in loftd the outbound
 * process makes the request), bounded by a timeout. An
 * rspamd that is down or slow never holds mail: the message goes on
 * unscanned and the log says so.
 */
#include "mailauth-private.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outhttp.h"

#define RSPAMD_REPLY_MAX (256 * 1024)

/* A header line "Name: value" with no CR/LF smuggled into it (nor any
 * other control character). */
static char *header(const char *name, const char *value)
{
	struct buf b;
	buf_init(&b, 1000);
	buf_printf(&b, "%s: ", name);
	for (const char *p = value ? value : ""; *p != '\0'; p++)
		if (buf_append_char(&b, (unsigned char)*p < 0x20 ||
				    *p == 0x7f ? ' ' : *p) < 0)
			break;
	return buf_steal(&b, NULL);
}

/* RFC 5235 3.2 from the antivirus module's symbols: one of them fired
 * (5, the virus's name from its options), its _FAIL twin fired (the
 * scanner did not answer: 0), neither (1). */
static void virus_verdict(json_t *symbols, const struct rspamd_request *req,
			  struct rspamd_result *r)
{
	r->virus_status = 0;
	if (req->virus_symbol_count == 0)
		return;
	bool failed = false;
	for (size_t i = 0; i < req->virus_symbol_count; i++) {
		const char *name = req->virus_symbols[i];
		json_t *sym = json_is_object(symbols)
			? json_object_get(symbols, name) : NULL;
		if (sym != NULL) {
			r->virus_status = 5;
			json_t *opts = json_object_get(sym, "options");
			const char *v = json_string_value(json_array_get(opts, 0));
			snprintf(r->virus, sizeof(r->virus), "%s", v ? v : name);
			return;
		}
		char fail[160];
		snprintf(fail, sizeof(fail), "%s_FAIL", name);
		if (json_is_object(symbols) &&
		    json_object_get(symbols, fail) != NULL)
			failed = true;
	}
	r->virus_status = failed ? 0 : 1;
}

static bool parse_reply(const char *text, size_t len,
			const struct rspamd_request *req, struct rspamd_result *r)
{
	json_error_t err;
	json_t *j = json_loadb(text ? text : "", len, 0, &err);
	json_t *v;

	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		return false;
	}
	/* is_skipped says rspamd stopped early (GTUBE, a pre-filter): its
	 * action still stands; without an action nothing was decided */
	v = json_object_get(j, "action");
	if (!json_is_string(v)) {
		json_decref(j);
		return false;
	}
	r->score = json_number_value(json_object_get(j, "score"));
	r->required = json_number_value(json_object_get(j, "required_score"));
	v = json_object_get(j, "action");
	snprintf(r->action, sizeof(r->action), "%s", json_string_value(v));
	v = json_object_get(j, "symbols");
	virus_verdict(v, req, r);
	if (json_is_object(v)) {
		const char *key;
		json_t *sym;
		size_t o = 0;
		json_object_foreach(v, key, sym) {
			double sc = json_number_value(json_object_get(sym, "score"));
			if (sc == 0 || o + strlen(key) + 16 >= sizeof(r->symbols))
				continue;
			o += (size_t)snprintf(r->symbols + o, sizeof(r->symbols) - o,
					      "%s%s(%.2f)", o ? "," : "", key, sc);
		}
	}
	json_decref(j);
	r->scanned = true;
	return true;
}

bool rspamd_check(const char *url, unsigned timeout_ms,
		  const struct rspamd_request *req, const char *msg,
		  size_t len, struct rspamd_result *r)
{
	memset(r, 0, sizeof(*r));
	char *endpoint = xasprintf("%s%scheckv2", url,
				   url[0] && url[strlen(url) - 1] == '/' ? "" : "/");
	size_t n = 0, cap = 8 + req->rcpt_count;
	char **h = xcalloc(cap, sizeof(*h));
	h[n++] = header("IP", req->ip);
	h[n++] = header("Helo", req->helo);
	h[n++] = header("From", req->sender);
	for (size_t i = 0; i < req->rcpt_count; i++)
		h[n++] = header("Rcpt", req->rcpts[i]);
	if (req->queue_id != NULL)
		h[n++] = header("Queue-Id", req->queue_id);
	if (req->hostname != NULL)
		h[n++] = header("MTA-Name", req->hostname);
	h[n++] = xstrdup("Content-Type: message/rfc822");
	h[n++] = xstrdup("Expect:");
	if (timeout_ms == 0)
		timeout_ms = 1;
	if (timeout_ms > OUTHTTP_TIMEOUT_MAX)
		timeout_ms = OUTHTTP_TIMEOUT_MAX;
	struct outhttp_request rq = {
		.method = "POST", .url = endpoint,
		.headers = (const char *const *)h, .header_count = n,
		.body = msg, .body_len = len,
		.timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms,
		.answer_max = RSPAMD_REPLY_MAX,
	};
	struct outhttp_answer a;
	char *err = NULL;
	bool ok = false;
	if (outhttp_perform(&rq, &a, &err) < 0)
		log_warn("rspamd", NULL, "%s: %s: message not scanned", endpoint,
			 err);
	else if (a.status != 200)
		log_warn("rspamd", NULL, "%s: HTTP %u: message not scanned",
			 endpoint, a.status);
	else if (!(ok = parse_reply(a.body, a.body_len, req, r)))
		log_warn("rspamd", NULL, "%s: reply not understood or scan "
			 "skipped: message not scanned", endpoint);
	outhttp_answer_free(&a);
	free(err);
	for (size_t i = 0; i < n; i++)
		free(h[i]);
	free(h);
	free(endpoint);
	return ok;
}
