/* See outhttp.h. */
#include "outhttp.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static outhttp_fn *broker_fn;
static void *broker_ctx;

void outhttp_set_broker(outhttp_fn *fn, void *ctx)
{
	__atomic_store_n(&broker_ctx, ctx, __ATOMIC_RELAXED);
	__atomic_store_n(&broker_fn, fn, __ATOMIC_RELEASE);
}

int outhttp_perform(const struct outhttp_request *req,
		    struct outhttp_answer *answer_r, char **error_r)
{
	outhttp_fn *fn = __atomic_load_n(&broker_fn, __ATOMIC_ACQUIRE);
	if (fn != NULL)
		return fn(__atomic_load_n(&broker_ctx, __ATOMIC_RELAXED), req,
			  answer_r, error_r);
	return outhttp_perform_here(req, answer_r, error_r);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void outhttp_init(void)
{
	pthread_once(&curl_once, curl_init);
}

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t len = size * n;

	return buf_append(b, p, len) == 0 ? len : 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

int outhttp_perform_here(const struct outhttp_request *req,
			 struct outhttp_answer *answer_r, char **error_r)
{
	memset(answer_r, 0, sizeof(*answer_r));
	outhttp_init();
	CURL *c = curl_easy_init();
	if (c == NULL) {
		*error_r = xstrdup("libcurl: no handle");
		return -1;
	}
	struct curl_slist *hdr = NULL, *pin = NULL;
	for (size_t i = 0; i < req->header_count; i++)
		hdr = curl_slist_append(hdr, req->headers[i]);
	struct buf body;
	buf_init(&body, req->answer_max);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
			 req->https_only ? "https" : "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)req->connect_timeout_ms);
	if (req->resolve != NULL && req->resolve[0] != '\0') {
		pin = curl_slist_append(NULL, req->resolve);
		curl_easy_setopt(c, CURLOPT_RESOLVE, pin);
	}
	if (req->ca_file != NULL && req->ca_file[0] != '\0') {
		curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (hdr != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	if (strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS,
				 req->body != NULL ? req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
	}
	if (req->answer_max > 0) {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	}
	CURLcode rc = curl_easy_perform(c);
	int ret = -1;
	if (rc == CURLE_WRITE_ERROR && req->answer_max > 0) {
		*error_r = xasprintf("answer over %zu bytes", req->answer_max);
	} else if (rc != CURLE_OK) {
		*error_r = xstrdup(curl_easy_strerror(rc));
	} else {
		long status = 0;
		char *ctype = NULL;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
		if (status < 100 || status > 599) {
			*error_r = xasprintf("HTTP status %ld", status);
		} else {
			answer_r->status = (unsigned)status;
			if (ctype != NULL)
				answer_r->content_type = xstrdup(ctype);
			if (req->answer_max > 0)
				answer_r->body = buf_steal(&body,
							   &answer_r->body_len);
			ret = 0;
		}
	}
	curl_slist_free_all(hdr);
	curl_slist_free_all(pin);
	curl_easy_cleanup(c);
	buf_free(&body);
	return ret;
}

void outhttp_answer_free(struct outhttp_answer *a)
{
	free(a->content_type);
	free(a->body);
	memset(a, 0, sizeof(*a));
}
