/*
 * The spam scanner hook: rspamd's HTTP protocol (POST /checkv2 on its
 * normal worker, port 11333 by default; the envelope in request headers
 * IP, Helo, From, Rcpt, Queue-Id, Hostname; a JSON answer with score,
 * required_score and action) over libcurl, bounded by a timeout. An
 * rspamd that is down or slow never holds mail: the message goes on
 * unscanned and the log says so.
 */
#include "mailauth-private.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outconn-curl.h"

#define RSPAMD_REPLY_MAX (256 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * n;

	return buf_append(b, p, len) == 0 ? len : 0;
}

/* A header line "Name: value" with no CR/LF smuggled into it. */
static struct curl_slist *add_header(struct curl_slist *h, const char *name,
				     const char *value)
{
	char line[1024];
	size_t o = (size_t)snprintf(line, sizeof(line), "%s: ", name);

	for (const char *p = value ? value : ""; *p != '\0' && o + 1 < sizeof(line);
	     p++)
		line[o++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
	line[o] = '\0';
	return curl_slist_append(h, line);
}

static bool parse_reply(const struct buf *b, struct rspamd_result *r)
{
	json_error_t err;
	json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, &err);
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
	CURL *c;
	struct curl_slist *h = NULL;
	struct buf reply;
	char *endpoint;
	long status = 0;
	CURLcode rc;
	bool ok = false;

	memset(r, 0, sizeof(*r));
	pthread_once(&curl_once, curl_init);
	c = curl_easy_init();
	if (c == NULL)
		return false;
	buf_init(&reply, RSPAMD_REPLY_MAX);
	endpoint = xasprintf("%s%scheckv2", url,
			     url[0] && url[strlen(url) - 1] == '/' ? "" : "/");
	h = add_header(h, "IP", req->ip);
	h = add_header(h, "Helo", req->helo);
	h = add_header(h, "From", req->sender);
	for (size_t i = 0; i < req->rcpt_count; i++)
		h = add_header(h, "Rcpt", req->rcpts[i]);
	if (req->queue_id != NULL)
		h = add_header(h, "Queue-Id", req->queue_id);
	if (req->hostname != NULL)
		h = add_header(h, "MTA-Name", req->hostname);
	h = curl_slist_append(h, "Content-Type: message/rfc822");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, endpoint);
	outconn_curl(c);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, msg);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		log_warn("rspamd", NULL, "%s: %s: message not scanned", endpoint,
			 curl_easy_strerror(rc));
	else if (status != 200)
		log_warn("rspamd", NULL, "%s: HTTP %ld: message not scanned",
			 endpoint, status);
	else if (!(ok = parse_reply(&reply, r)))
		log_warn("rspamd", NULL, "%s: reply not understood or scan "
			 "skipped: message not scanned", endpoint);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	buf_free(&reply);
	free(endpoint);
	return ok;
}
