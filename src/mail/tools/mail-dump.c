/*
 * loft-mail-dump: runs mail_analyze() over message files and prints what
 * the IMAP server would send, for the differential test against Dovecot
 * (tests/interop/test_mail_diff.py) and for measuring parse throughput.
 *
 *   loft-mail-dump FILE...          one JSON object per file
 *   loft-mail-dump --bench N FILE.. analyse every file N times, print MB/s
 *   loft-mail-dump --bench-cb N ... the same with search text streamed to
 *                                   a callback (the store's way), and the
 *                                   peak RSS from /proc/self/status
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "mail.h"

static void json_str(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7F)
			printf("\\u%04x", c);   /* bytes, not characters */
		else
			putchar(c);
	}
	putchar('"');
}

static void section(const char *name, const char *data, size_t len,
		    const struct mail_result *r, const char *spec_text)
{
	struct mail_section_spec spec;
	struct mail_section sec;
	printf(", \"%s\": ", name);
	if (mail_section_parse(spec_text, strlen(spec_text), &spec) < 0) {
		printf("null");
		return;
	}
	if (mail_section_get(data, len, r->parts, r->parts_len, &spec, &sec) < 0)
		printf("null");
	else
		json_str(sec.ptr, sec.len);
	mail_section_free(&sec);
	mail_section_spec_free(&spec);
}

static void binary1(const char *data, size_t len, const struct mail_result *r)
{
	struct mail_section sec;
	bool unknown;
	uint32_t path[1] = {1};
	printf(", \"BINARY[1]\": ");
	if (mail_binary_get(data, len, r->parts, r->parts_len, path, 1, &sec,
			    &unknown) < 0)
		printf(unknown ? "\"UNKNOWN-CTE\"" : "null");
	else
		json_str(sec.ptr, sec.len);
	mail_section_free(&sec);
}

static int map_file(const char *path, const char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return -1;
	}
	*len_r = (size_t)st.st_size;
	*data_r = "";
	if (st.st_size > 0) {
		void *p = mmap(NULL, *len_r, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			perror(path);
			close(fd);
			return -1;
		}
		*data_r = p;
	}
	close(fd);
	return 0;
}

static void discard_text(void *ctx, enum mail_text_kind kind, const char *name,
			 const char *text, size_t len)
{
	(void)kind;
	(void)name;
	(void)text;
	*(size_t *)ctx += len;
}

static void print_peak_rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmHWM:", 6) == 0)
			printf("peak RSS (mapped message included):%s", line + 6);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int first = 1, rounds = 0;
	bool cb = false;
	if (argc > 2 && (strcmp(argv[1], "--bench") == 0 ||
			 strcmp(argv[1], "--bench-cb") == 0)) {
		rounds = atoi(argv[2]);
		first = 3;
		cb = strcmp(argv[1], "--bench-cb") == 0;
	}
	if (rounds > 0) {
		struct timespec a, b;
		double bytes = 0;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		for (int k = 0; k < rounds; k++) {
			for (int i = first; i < argc; i++) {
				const char *data;
				size_t len;
				struct mail_result r;
				if (map_file(argv[i], &data, &len) < 0)
					return 1;
				size_t text = 0;
				struct mail_analyze_options opt = {NULL, discard_text,
								   &text, true};
				mail_analyze(data, len, cb ? &opt : NULL, &r);
				mail_result_free(&r);
				if (len > 0)
					munmap((void *)data, len);
				bytes += (double)len;
			}
		}
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		double secs = (double)(b.tv_sec - a.tv_sec) +
			      (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		printf("%.1f MB in %.3f s CPU: %.1f MB/s\n", bytes / 1e6, secs,
		       bytes / 1e6 / secs);
		print_peak_rss();
		return 0;
	}
	for (int i = first; i < argc; i++) {
		const char *data;
		size_t len;
		struct mail_result r;
		if (map_file(argv[i], &data, &len) < 0)
			return 1;
		mail_analyze(data, len, NULL, &r);
		printf("{\"file\": ");
		json_str(argv[i], strlen(argv[i]));
		printf(", \"ENVELOPE\": ");
		json_str(r.envelope, strlen(r.envelope));
		printf(", \"BODYSTRUCTURE\": ");
		json_str(r.bodystructure, strlen(r.bodystructure));
		printf(", \"BODY\": ");
		json_str(r.body, strlen(r.body));
		printf(", \"RFC822.SIZE\": %zu", len);
		section("BODY[HEADER]", data, len, &r, "HEADER");
		section("BODY[TEXT]", data, len, &r, "TEXT");
		section("BODY[1]", data, len, &r, "1");
		section("BODY[1.MIME]", data, len, &r, "1.MIME");
		section("BODY[2]", data, len, &r, "2");
		section("BODY[2.MIME]", data, len, &r, "2.MIME");
		section("BODY[1.1]", data, len, &r, "1.1");
		section("BODY[2.1]", data, len, &r, "2.1");
		section("BODY[2.HEADER]", data, len, &r, "2.HEADER");
		section("BODY[2.TEXT]", data, len, &r, "2.TEXT");
		section("BODY[3.1.MIME]", data, len, &r, "3.1.MIME");
		section("BODY[HEADER.FIELDS (FROM SUBJECT X-NONE)]", data, len, &r,
			"HEADER.FIELDS (FROM SUBJECT X-NONE)");
		section("BODY[HEADER.FIELDS.NOT (FROM SUBJECT)]", data, len, &r,
			"HEADER.FIELDS.NOT (FROM SUBJECT)");
		binary1(data, len, &r);
		{
			uint64_t bsize;
			bool unknown;
			uint32_t p1[1] = {1};
			printf(", \"BINARY.SIZE[1]\": ");
			if (mail_binary_size(data, len, r.parts, r.parts_len, p1, 1,
					     &bsize, &unknown) < 0)
				printf(unknown ? "\"UNKNOWN-CTE\"" : "null");
			else
				printf("\"%llu\"", (unsigned long long)bsize);
		}
		printf(", \"preview\": ");
		json_str(r.preview, strlen(r.preview));
		printf(", \"body_text\": ");
		json_str(r.body_text, r.body_text_len);
		printf(", \"sort_subject\": ");
		json_str(r.sort_subject, strlen(r.sort_subject));
		printf("}\n");
		mail_result_free(&r);
		if (len > 0)
			munmap((void *)data, len);
	}
	return 0;
}
