/*
 * The S3 client (s3.h): requests over libcurl, AWS Signature V4 computed
 * here so the signed headers are exactly the ones sent, whatever the
 * libcurl version; errors read from the S3 error XML with expat.
 */
#include "s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <expat.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define POOL_MAX 16
#define ERRBODY_MAX (16 * 1024)

struct s3 {
	char *scheme;           /* "http" or "https" */
	char *hostport;         /* the endpoint's authority */
	char *bucket, *region, *access_key, *secret_key;
	bool virtual_host;
	unsigned timeout;
	uint64_t part_size;
	pthread_mutex_t mu;
	CURL *pool[POOL_MAX];
	size_t pool_count;
};

/* ---- signing ----------------------------------------------------------- */

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static void sha256_hex(const char *s, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned len = 0;
	EVP_Digest(s, n, md, &len, EVP_sha256(), NULL);
	hex(md, 32, out);
}

static void hmac(const unsigned char *key, size_t key_len, const char *msg,
		 unsigned char out[32])
{
	unsigned len = 32;
	HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
	     strlen(msg), out, &len);
}

char *s3_sign(const char *method, const char *uri, const char *query,
	      const char *headers, const char *signed_headers,
	      const char *payload_hash, const char *amz_date,
	      const char *region, const char *access_key,
	      const char *secret_key)
{
	char *canonical = xasprintf("%s\n%s\n%s\n%s\n%s\n%s", method, uri,
				    query, headers, signed_headers,
				    payload_hash);
	char creq[65];
	sha256_hex(canonical, strlen(canonical), creq);
	free(canonical);
	char date[9];
	snprintf(date, sizeof(date), "%.8s", amz_date);
	char *scope = xasprintf("%s/%s/s3/aws4_request", date, region);
	char *to_sign = xasprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date,
				  scope, creq);
	char *k0 = xasprintf("AWS4%s", secret_key);
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	hmac((const unsigned char *)k0, strlen(k0), date, k1);
	hmac(k1, 32, region, k2);
	hmac(k2, 32, "s3", k3);
	hmac(k3, 32, "aws4_request", k4);
	hmac(k4, 32, to_sign, sig);
	explicit_bzero(k0, strlen(k0));
	free(k0);
	char sig_hex[65];
	hex(sig, 32, sig_hex);
	char *auth = xasprintf("AWS4-HMAC-SHA256 Credential=%s/%s,"
			       " SignedHeaders=%s, Signature=%s", access_key,
			       scope, signed_headers, sig_hex);
	free(scope);
	free(to_sign);
	return auth;
}

/* ---- XML answers (error documents, multipart results) ---------------- */

struct xml_state {
	int depth;
	const char *root;
	bool is_root;
	const char *name1, *name2;
	char *field;            /* the element being read, or NULL */
	size_t field_size, field_len;
	char *out1, *out2;
	size_t size1, size2;
	bool seen1, seen2;      /* the first of each is kept */
};

static void xml_start(void *ctx, const XML_Char *name, const XML_Char **atts)
{
	(void)atts;
	struct xml_state *st = ctx;
	st->depth++;
	st->field = NULL;
	if (st->depth == 1) {
		st->is_root = strcmp(name, st->root) == 0;
	} else if (st->depth == 2 && st->is_root) {
		if (strcmp(name, st->name1) == 0 && st->size1 > 0 &&
		    !st->seen1) {
			st->field = st->out1;
			st->field_size = st->size1;
			st->seen1 = true;
		} else if (st->name2 != NULL && strcmp(name, st->name2) == 0 &&
			   st->size2 > 0 && !st->seen2) {
			st->field = st->out2;
			st->field_size = st->size2;
			st->seen2 = true;
		}
		if (st->field != NULL)
			st->field[0] = '\0';
		st->field_len = 0;
	}
}

static void xml_end(void *ctx, const XML_Char *name)
{
	(void)name;
	struct xml_state *st = ctx;
	st->depth--;
	st->field = NULL;
}

static void xml_text(void *ctx, const XML_Char *s, int len)
{
	struct xml_state *st = ctx;
	if (st->field == NULL || len <= 0)
		return;
	for (int i = 0; i < len && st->field_len + 1 < st->field_size; i++) {
		unsigned char c = (unsigned char)s[i];
		/* one line for the log */
		st->field[st->field_len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	st->field[st->field_len] = '\0';
}

int s3_xml_fields(const char *xml, size_t len, const char *root,
		  const char *field, char *out, size_t out_size,
		  const char *field2, char *out2, size_t out2_size)
{
	if (out_size > 0)
		out[0] = '\0';
	if (field2 == NULL)
		out2_size = 0;
	if (out2_size > 0)
		out2[0] = '\0';
	if (len == 0 || len > ERRBODY_MAX)
		return -1;
	XML_Parser p = XML_ParserCreate("UTF-8");
	if (p == NULL)
		return -1;
	struct xml_state st = {.root = root, .name1 = field, .name2 = field2,
			       .out1 = out, .out2 = out2, .size1 = out_size,
			       .size2 = out2_size};
	XML_SetUserData(p, &st);
	XML_SetElementHandler(p, xml_start, xml_end);
	XML_SetCharacterDataHandler(p, xml_text);
	bool ok = XML_Parse(p, xml, (int)len, 1) == XML_STATUS_OK;
	XML_ParserFree(p);
	if (!ok || !st.is_root) {
		if (out_size > 0)
			out[0] = '\0';
		if (out2_size > 0)
			out2[0] = '\0';
		return -1;
	}
	return 0;
}

int s3_error_parse(const char *xml, size_t len, char *code, size_t code_size,
		   char *message, size_t message_size)
{
	return s3_xml_fields(xml, len, "Error", "Code", code, code_size,
			     "Message", message, message_size);
}

/* ---- requests ------------------------------------------------------------ */

struct req {
	const char *method;
	const char *key;          /* NULL: the bucket itself */
	const char *query;        /* NULL, or the URL's query, its
				     parameters in order and encoded */
	int fd;                   /* PUT: the bytes */
	uint64_t offset, size;    /* ... from offset */
	const unsigned char *md5;
	uint64_t sent;
	const char *post;         /* POST: the body (may be NULL) */
	size_t post_len;
	char *out;                /* GET: the bytes */
	uint64_t out_size, got;
	bool overflow;
	struct buf errbody;       /* the answer's body, up to ERRBODY_MAX */
	struct buf *body_r;       /* not NULL: gets a 2xx answer's body */
	char etag[128];           /* the answer's ETag */
	CURL *curl;
};

static size_t on_read(char *dst, size_t size, size_t n, void *ctx)
{
	struct req *r = ctx;
	uint64_t left = r->size - r->sent;
	size_t want = size * n < left ? size * n : (size_t)left;
	if (want == 0)
		return 0;
	ssize_t got;
	do
		got = pread(r->fd, dst, want, (off_t)(r->offset + r->sent));
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	r->sent += (uint64_t)got;
	return (size_t)got;
}

static int on_seek(void *ctx, curl_off_t offset, int origin)
{
	struct req *r = ctx;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->size)
		return CURL_SEEKFUNC_FAIL;
	r->sent = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t size, size_t n, void *ctx)
{
	struct req *r = ctx;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status / 100 != 2 || r->out == NULL) {
		if (r->errbody.len + len <= ERRBODY_MAX)
			buf_append(&r->errbody, data, len);
		return len;
	}
	if (r->got + len > r->out_size) {
		r->overflow = true;
		return 0;
	}
	memcpy(r->out + r->got, data, len);
	r->got += len;
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct req *r = ctx;
	size_t len = size * n;
	if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
		const char *v = data + 5;
		size_t vlen = len - 5;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
				    v[vlen - 1] == ' '))
			vlen--;
		if (vlen < sizeof(r->etag)) {
			memcpy(r->etag, v, vlen);
			r->etag[vlen] = '\0';
		}
	}
	return len;
}

static CURL *handle_get(struct s3 *s3)
{
	pthread_mutex_lock(&s3->mu);
	CURL *c = s3->pool_count > 0 ? s3->pool[--s3->pool_count] : NULL;
	pthread_mutex_unlock(&s3->mu);
	if (c == NULL) {
		c = curl_easy_init();
		if (c == NULL)
			abort();
	}
	return c;
}

static void handle_put(struct s3 *s3, CURL *c)
{
	curl_easy_reset(c);
	pthread_mutex_lock(&s3->mu);
	if (s3->pool_count < POOL_MAX) {
		s3->pool[s3->pool_count++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s3->mu);
	if (c != NULL)
		curl_easy_cleanup(c);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SigV4's canonical query string of a URL query whose parameters are
 * already in order and encoded: each one with its '=' ("uploads" is
 * signed as "uploads="). */
static char *canonical_query(const char *query)
{
	struct buf b;
	buf_init(&b, 0);
	for (const char *p = query; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, "&");
		if (b.len > 0)
			buf_append(&b, "&", 1);
		buf_append(&b, p, n);
		if (memchr(p, '=', n) == NULL)
			buf_append(&b, "=", 1);
		p += n;
		if (*p == '&')
			p++;
	}
	return buf_steal(&b, NULL);
}

/* One attempt. Returns the HTTP status, or 0 with *error_r for a
 * transport failure. */
static long attempt(struct s3 *s3, struct req *r, double left,
		    char **error_r)
{
	/* path: /bucket/key; virtual: bucket.host/key */
	char *uri = s3->virtual_host
		? xasprintf("/%s", r->key != NULL ? r->key : "")
		: r->key != NULL ? xasprintf("/%s/%s", s3->bucket, r->key)
				 : xasprintf("/%s", s3->bucket);
	char *host = s3->virtual_host
		? xasprintf("%s.%s", s3->bucket, s3->hostport)
		: xstrdup(s3->hostport);
	char *url = xasprintf("%s://%s%s%s%s", s3->scheme, host, uri,
			      r->query != NULL ? "?" : "",
			      r->query != NULL ? r->query : "");
	char *canon_query = canonical_query(r->query);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char amz_date[17];
	strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
	char md5_b64[32] = "";
	if (r->md5 != NULL)
		EVP_EncodeBlock((unsigned char *)md5_b64, r->md5, 16);
	char *canon = r->md5 != NULL
		? xasprintf("content-md5:%s\nhost:%s\nx-amz-content-sha256:"
			    "UNSIGNED-PAYLOAD\nx-amz-date:%s\n", md5_b64, host,
			    amz_date)
		: xasprintf("host:%s\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"
			    "x-amz-date:%s\n", host, amz_date);
	const char *signed_headers = r->md5 != NULL
		? "content-md5;host;x-amz-content-sha256;x-amz-date"
		: "host;x-amz-content-sha256;x-amz-date";
	char *auth = s3_sign(r->method, uri, canon_query, canon, signed_headers,
			     "UNSIGNED-PAYLOAD", amz_date, s3->region,
			     s3->access_key, s3->secret_key);
	struct curl_slist *h = NULL;
	char *line = xasprintf("Host: %s", host);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("x-amz-date: %s", amz_date);
	h = curl_slist_append(h, line);
	free(line);
	h = curl_slist_append(h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (r->md5 != NULL) {
		line = xasprintf("Content-MD5: %s", md5_b64);
		h = curl_slist_append(h, line);
		free(line);
	}
	line = xasprintf("Authorization: %s", auth);
	h = curl_slist_append(h, line);
	free(line);
	h = curl_slist_append(h, "Expect:");
	h = curl_slist_append(h, "Content-Type:");
	free(auth);
	free(canon);
	free(canon_query);

	CURL *c = r->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	long ms = (long)(left * 1000);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 100 ? ms : 100L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms > 100 ? ms : 100L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	r->etag[0] = '\0';
	if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS,
				 r->post != NULL ? r->post : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)r->post_len);
	} else if (strcmp(r->method, "PUT") == 0) {
		r->sent = 0;
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, r);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)r->size);
	} else if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	}
	r->got = 0;
	r->overflow = false;
	buf_reset(&r->errbody);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->overflow))
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		*error_r = xasprintf("%s %s: %s", r->method, url,
				     curl_easy_strerror(rc));
	curl_slist_free_all(h);
	curl_easy_reset(c);
	free(url);
	free(host);
	free(uri);
	return status;
}

/* Runs r with retries: S3_OK on 2xx, S3_NOTFOUND on 404, else S3_FAIL
 * with *error_r. */
static enum s3_result run(struct s3 *s3, struct req *r, char **error_r)
{
	*error_r = NULL;
	buf_init(&r->errbody, 0);
	r->curl = handle_get(s3);
	double start = now_s();
	unsigned delay_ms = 100;
	enum s3_result res = S3_FAIL;
	for (int tries = 1;; tries++) {
		double left = s3->timeout - (now_s() - start);
		free(*error_r);
		*error_r = NULL;
		long status = attempt(s3, r, left, error_r);
		if (status / 100 == 2 && !r->overflow &&
		    (r->out == NULL || r->got == r->out_size)) {
			res = S3_OK;
			break;
		}
		if (status / 100 == 2) {
			*error_r = xasprintf("GET %s: the object's size differs"
					     " from the index's", r->key);
			break;
		}
		if (status == 404 && r->key != NULL) {
			res = S3_NOTFOUND;
			*error_r = xasprintf("%s %s: not found", r->method,
					     r->key);
			break;
		}
		bool retry = status == 0 || status >= 500 || status == 429;
		if (status != 0) {
			char code[64], msg[256];
			s3_error_parse(r->errbody.data, r->errbody.len, code,
				       sizeof(code), msg, sizeof(msg));
			*error_r = xasprintf("%s %s: HTTP %ld%s%s%s%s",
					     r->method, r->key != NULL ? r->key
					     : s3->bucket, status,
					     code[0] ? " " : "", code,
					     msg[0] ? ": " : "", msg);
		}
		left = s3->timeout - (now_s() - start);
		if (!retry || left * 1000 < delay_ms + 100)
			break;
		log_warn("store", NULL, "s3: %s (try %d, again in %u ms)",
			 *error_r, tries, delay_ms);
		usleep(delay_ms * 1000);
		delay_ms = delay_ms * 3 > 2000 ? 2000 : delay_ms * 3;
	}
	if (r->body_r != NULL && res == S3_OK) {
		buf_free(r->body_r);
		*r->body_r = r->errbody;
	} else {
		buf_free(&r->errbody);
	}
	handle_put(s3, r->curl);
	r->curl = NULL;
	return res;
}

/* ---- multipart upload ---------------------------------------------------- */

/* A query value as SigV4 wants it: unreserved characters kept, the rest
 * %XX (upper case). */
static char *uri_encode(const char *s)
{
	struct buf b;
	buf_init(&b, 0);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		    *p == '.' || *p == '~')
			buf_append_char(&b, (char)*p);
		else
			buf_printf(&b, "%%%02X", *p);
	}
	return buf_steal(&b, NULL);
}

/* The MD5 of size bytes of fd from offset. */
static int md5_range(int fd, uint64_t offset, uint64_t size,
		     unsigned char md5[16])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1)
		abort();
	char chunk[64 * 1024];
	uint64_t done = 0;
	while (done < size) {
		size_t want = size - done < sizeof(chunk) ? (size_t)(size - done)
							  : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			EVP_MD_CTX_free(ctx);
			return -1;
		}
		EVP_DigestUpdate(ctx, chunk, (size_t)n);
		done += (uint64_t)n;
	}
	unsigned len = 16;
	EVP_DigestFinal_ex(ctx, md5, &len);
	EVP_MD_CTX_free(ctx);
	return 0;
}

/* CreateMultipartUpload, UploadPart for each part_size slice (with its
 * own Content-MD5), CompleteMultipartUpload; any failure aborts the
 * upload (AbortMultipartUpload, best effort: the store's lifecycle
 * rules reap what an abort misses). */
static enum s3_result put_multipart(struct s3 *s3, const char *key, int fd,
				    uint64_t size, char **error_r)
{
	struct buf answer;
	buf_init(&answer, 0);
	struct req init = {.method = "POST", .key = key, .fd = -1,
			   .query = "uploads", .body_r = &answer};
	enum s3_result res = run(s3, &init, error_r);
	char upload_id[512];
	if (res == S3_OK &&
	    (s3_xml_fields(answer.data, answer.len,
			   "InitiateMultipartUploadResult", "UploadId",
			   upload_id, sizeof(upload_id), NULL, NULL, 0) < 0 ||
	     upload_id[0] == '\0')) {
		*error_r = xasprintf("POST %s?uploads: no UploadId in the"
				     " answer", key);
		res = S3_FAIL;
	}
	buf_free(&answer);
	if (res != S3_OK)
		return res == S3_NOTFOUND ? S3_FAIL : res;
	char *id = uri_encode(upload_id);
	struct buf done;
	buf_init(&done, 0);
	buf_append_str(&done, "<CompleteMultipartUpload>");
	unsigned part = 0;
	for (uint64_t off = 0; off < size && res == S3_OK; off += s3->part_size) {
		part++;
		uint64_t len = size - off < s3->part_size ? size - off
							  : s3->part_size;
		unsigned char md5[16];
		if (md5_range(fd, off, len, md5) < 0) {
			*error_r = xasprintf("PUT %s part %u: cannot read the"
					     " spooled body: %s", key, part,
					     strerror(errno));
			res = S3_FAIL;
			break;
		}
		char *q = xasprintf("partNumber=%u&uploadId=%s", part, id);
		struct req pr = {.method = "PUT", .key = key, .query = q,
				 .fd = fd, .offset = off, .size = len,
				 .md5 = md5};
		res = run(s3, &pr, error_r);
		free(q);
		if (res == S3_OK && pr.etag[0] == '\0') {
			*error_r = xasprintf("PUT %s part %u: no ETag in the"
					     " answer", key, part);
			res = S3_FAIL;
		}
		if (res == S3_OK && strpbrk(pr.etag, "<>&") != NULL) {
			*error_r = xasprintf("PUT %s part %u: an ETag that is"
					     " not one", key, part);
			res = S3_FAIL;
		}
		if (res == S3_OK)
			buf_printf(&done, "<Part><PartNumber>%u</PartNumber>"
				   "<ETag>%s</ETag></Part>", part, pr.etag);
	}
	buf_append_str(&done, "</CompleteMultipartUpload>");
	char *q = xasprintf("uploadId=%s", id);
	if (res == S3_OK) {
		buf_init(&answer, 0);
		struct req cr = {.method = "POST", .key = key, .query = q,
				 .fd = -1, .post = done.data,
				 .post_len = done.len, .body_r = &answer};
		res = run(s3, &cr, error_r);
		char code[64], msg[256];
		/* S3 may answer 200 and an error document when it fails
		 * after the answer began */
		if (res == S3_OK && s3_error_parse(answer.data, answer.len,
						   code, sizeof(code), msg,
						   sizeof(msg)) == 0) {
			*error_r = xasprintf("POST %s?uploadId: %s: %s", key,
					     code, msg);
			res = S3_FAIL;
		}
		buf_free(&answer);
		if (res == S3_NOTFOUND) {
			/* the upload is gone: an earlier try completed it
			 * and its answer was lost? */
			struct req head = {.method = "HEAD", .key = key,
					   .fd = -1};
			char *herr = NULL;
			if (run(s3, &head, &herr) == S3_OK) {
				free(*error_r);
				*error_r = NULL;
				res = S3_OK;
			} else {
				res = S3_FAIL;
			}
			free(herr);
		}
	}
	if (res != S3_OK) {
		struct req ab = {.method = "DELETE", .key = key, .query = q,
				 .fd = -1};
		char *aerr = NULL;
		if (run(s3, &ab, &aerr) != S3_OK)
			log_warn("store", NULL, "s3: abort of the upload of %s:"
				 " %s", key, aerr != NULL ? aerr : "failed");
		free(aerr);
	}
	free(q);
	buf_free(&done);
	free(id);
	return res == S3_NOTFOUND ? S3_FAIL : res;
}

enum s3_result s3_put_fd(struct s3 *s3, const char *key, int fd,
			 uint64_t size, const unsigned char md5[16],
			 char **error_r)
{
	if (size > s3->part_size)
		return put_multipart(s3, key, fd, size, error_r);
	struct req r = {.method = "PUT", .key = key, .fd = fd, .size = size,
			.md5 = md5};
	return run(s3, &r, error_r);
}

enum s3_result s3_get(struct s3 *s3, const char *key, char *out,
		      uint64_t size, char **error_r)
{
	struct req r = {.method = "GET", .key = key, .out = out,
			.out_size = size};
	/* an empty body still takes the out path */
	char dummy;
	if (size == 0)
		r.out = &dummy;
	return run(s3, &r, error_r);
}

enum s3_result s3_delete(struct s3 *s3, const char *key, char **error_r)
{
	struct req r = {.method = "DELETE", .key = key};
	enum s3_result res = run(s3, &r, error_r);
	if (res == S3_NOTFOUND) {
		free(*error_r);
		*error_r = NULL;
		res = S3_OK;
	}
	return res;
}

/* ---- open/close ---------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int s3_open(const struct s3_settings *set, struct s3 **s3_r, char **error_r)
{
	*s3_r = NULL;
	*error_r = NULL;
	const char *e = set->endpoint;
	const char *sep = e != NULL ? strstr(e, "://") : NULL;
	if (sep == NULL || (strncmp(e, "http://", 7) != 0 &&
			    strncmp(e, "https://", 8) != 0)) {
		*error_r = xstrdup("[s3] endpoint must be an http:// or"
				   " https:// URL");
		return -1;
	}
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/");
	if (alen == 0 || (auth[alen] == '/' && auth[alen + 1] != '\0')) {
		*error_r = xstrdup("[s3] endpoint must be scheme://host[:port]"
				   " (no path)");
		return -1;
	}
	pthread_once(&curl_once, curl_init_once);
	struct s3 *s3 = xcalloc(1, sizeof(*s3));
	s3->scheme = xasprintf("%.*s", (int)(sep - e), e);
	s3->hostport = xasprintf("%.*s", (int)alen, auth);
	s3->bucket = xstrdup(set->bucket);
	s3->region = xstrdup(set->region != NULL ? set->region : "us-east-1");
	s3->access_key = xstrdup(set->access_key);
	s3->secret_key = xstrdup(set->secret_key);
	s3->virtual_host = set->virtual_host;
	s3->timeout = set->timeout ? set->timeout : 30;
	s3->part_size = set->part_size ? set->part_size : S3_PART_SIZE;
	if (s3->part_size < S3_PART_MIN)
		s3->part_size = S3_PART_MIN;
	pthread_mutex_init(&s3->mu, NULL);
	/* the bucket: there, or made */
	struct req r = {.method = "HEAD"};
	char *err = NULL;
	enum s3_result res = run(s3, &r, &err);
	if (res != S3_OK) {
		free(err);
		err = NULL;
		struct req mk = {.method = "PUT", .fd = -1};
		res = run(s3, &mk, &err);
		if (res != S3_OK && err != NULL &&
		    strstr(err, "BucketAlreadyOwnedByYou") != NULL)
			res = S3_OK;
	}
	if (res != S3_OK) {
		*error_r = xasprintf("s3: bucket %s at %s: %s", set->bucket,
				     set->endpoint, err != NULL ? err : "failed");
		free(err);
		s3_close(&s3);
		return -1;
	}
	free(err);
	*s3_r = s3;
	return 0;
}

void s3_close(struct s3 **s3p)
{
	struct s3 *s3 = *s3p;
	if (s3 == NULL)
		return;
	for (size_t i = 0; i < s3->pool_count; i++)
		curl_easy_cleanup(s3->pool[i]);
	pthread_mutex_destroy(&s3->mu);
	free(s3->scheme);
	free(s3->hostport);
	free(s3->bucket);
	free(s3->region);
	free(s3->access_key);
	if (s3->secret_key != NULL) {
		explicit_bzero(s3->secret_key, strlen(s3->secret_key));
		free(s3->secret_key);
	}
	free(s3);
	*s3p = NULL;
}
