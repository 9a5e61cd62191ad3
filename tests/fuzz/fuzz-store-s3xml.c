/*
 * The S3 client's error documents and multipart answers
 * (src/store/s3/s3.c, expat): whatever a
 * store answers, the parser stays within its buffers, and what it fills
 * is NUL-terminated, one line, within the sizes given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3.h"

static void check(const char *s, size_t size)
{
	if (strlen(s) >= size)
		abort();
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char code[16], msg[40];
	memset(code, 'x', sizeof(code));
	memset(msg, 'x', sizeof(msg));
	int r = s3_error_parse((const char *)data, size, code, sizeof(code),
			       msg, sizeof(msg));
	check(code, sizeof(code));
	check(msg, sizeof(msg));
	if (r != 0 && (code[0] != '\0' || msg[0] != '\0'))
		abort();
	/* a multipart upload's answer: the same rules */
	char id[24];
	memset(id, 'x', sizeof(id));
	r = s3_xml_fields((const char *)data, size,
			  "InitiateMultipartUploadResult", "UploadId", id,
			  sizeof(id), NULL, NULL, 0);
	check(id, sizeof(id));
	if (r != 0 && id[0] != '\0')
		abort();
	return 0;
}
