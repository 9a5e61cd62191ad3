/*
 * A small S3 client for the postgres backend's blob driver
 * ([store] blobs = s3, docs/scale-out.md): PUT, GET and DELETE of whole
 * objects by key, the bucket made if missing. libcurl carries the
 * requests; each is signed with AWS Signature V4 here (the signed
 * headers are exactly the ones sent: host, content-md5 on PUT,
 * x-amz-content-sha256 = UNSIGNED-PAYLOAD, which radosgw requires, and
 * x-amz-date). A 5xx, 429 or a transport failure is retried with
 * backoff within [s3] timeout; the error XML (expat) names the cause in
 * the log. A body larger than part_size goes up as a multipart upload
 * (one Content-MD5 per part, each part retried on its own; aborted on
 * failure). Thread-safe: curl handles are pooled for connection reuse.
 */
#ifndef LOFT_S3_H
#define LOFT_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct s3_settings {
	const char *endpoint;      /* http(s)://host[:port] */
	const char *bucket;
	const char *region;        /* NULL: us-east-1 */
	const char *access_key;
	const char *secret_key;    /* the key itself (read from its file) */
	bool virtual_host;         /* addressing = virtual */
	unsigned timeout;          /* seconds for one request, retries
				      included (a multipart upload: per part) */
	uint64_t part_size;        /* 0: S3_PART_SIZE; at least 5 MiB (S3's
				      smallest part but the last) */
};

/* Bodies larger than this go up in parts of this size. */
#define S3_PART_SIZE (8u << 20)
#define S3_PART_MIN (5u << 20)

struct s3;

/* Checks the endpoint, then makes the bucket when missing. 0, or -1
 * with *error_r (malloced, one line for the admin). */
int s3_open(const struct s3_settings *set, struct s3 **s3_r, char **error_r);
void s3_close(struct s3 **s3);

/* Results of the calls below. */
enum s3_result {
	S3_OK = 0,
	S3_FAIL = -1,        /* temporary: unreachable, 5xx, 403, timeout */
	S3_NOTFOUND = -2,    /* the object is not there */
};

/* PUT of size bytes read from fd (from offset 0) under key, with
 * Content-MD5 = md5 (the store answers 400 BadDigest when the bytes it
 * got differ). Past part_size: a multipart upload (md5 unused; each
 * part has its own), whose every failure aborts the upload. */
enum s3_result s3_put_fd(struct s3 *s3, const char *key, int fd,
			 uint64_t size, const unsigned char md5[16],
			 char **error_r);
/* GET of key into out (exactly size bytes expected: more or fewer is
 * S3_FAIL with "size differs"). */
enum s3_result s3_get(struct s3 *s3, const char *key, char *out,
		      uint64_t size, char **error_r);
/* DELETE of key (a missing object is S3_OK). */
enum s3_result s3_delete(struct s3 *s3, const char *key, char **error_r);

/* The Code and Message of an S3 error document (<Error><Code>..);
 * 0 when it is one, -1 otherwise. Truncated to the sizes. Fuzzed. */
int s3_error_parse(const char *xml, size_t len, char *code, size_t code_size,
		   char *message, size_t message_size);

/* The text of element field (the first) under the root element root
 * (<root><field>text</field>..</root>), e.g. the UploadId of an
 * InitiateMultipartUploadResult; field2 likewise when not NULL. 0, or
 * -1 when the document is not well formed or its root is another.
 * Truncated to the sizes, one line. Fuzzed (through s3_error_parse). */
int s3_xml_fields(const char *xml, size_t len, const char *root,
		  const char *field, char *out, size_t out_size,
		  const char *field2, char *out2, size_t out2_size);

/* SigV4's Authorization header value for one request (exposed for the
 * unit test): headers is "name:value\n" lines, lowercase names, sorted,
 * signed_headers their names joined by ';'. */
char *s3_sign(const char *method, const char *uri, const char *query,
	      const char *headers, const char *signed_headers,
	      const char *payload_hash, const char *amz_date,
	      const char *region, const char *access_key,
	      const char *secret_key);

#endif
