/*
 * Unit tests for the IMAP command parser, sequence sets and modified
 * UTF-7. Every parser case is also fed byte by byte: any split of the
 * input must give the same events.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap-parser.h"
#include "imap-seqset.h"
#include "test.h"
#include "utf7.h"

/* Renders events and the argument tree as text for comparison. */
static void dump_args(struct buf *out, const struct imap_arg *a)
{
	for (; a->type != IMAP_ARG_EOL; a++) {
		switch (a->type) {
		case IMAP_ARG_ATOM: buf_printf(out, " A:%.*s", (int)a->str.len, a->str.ptr); break;
		case IMAP_ARG_NIL: buf_append_str(out, " NIL"); break;
		case IMAP_ARG_QUOTED: buf_printf(out, " Q:%.*s", (int)a->str.len, a->str.ptr); break;
		case IMAP_ARG_LITERAL:
			if (a->streamed)
				buf_printf(out, " S%u:%llu", a->stream_index,
					   (unsigned long long)a->literal_size);
			else
				buf_printf(out, " %s:%.*s", a->literal8 ? "L8" : "L",
					   (int)a->str.len, a->str.ptr);
			break;
		case IMAP_ARG_LIST:
			buf_append_str(out, " (");
			dump_args(out, a->list);
			buf_append_str(out, " )");
			break;
		default: break;
		}
	}
}

/* Feeds input in pieces of `step` bytes; streams APPEND-like literals
 * when stream is true. Returns the event log. */
static char *run(const char *input, size_t step, bool stream)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_prelogin);
	struct buf out;
	buf_init(&out, 0);
	size_t len = strlen(input), pos = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step;
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(p, input + pos, n, &used);
		pos += used;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			if (used == 0 && n > 0)
				pos += 0;  /* cannot happen: NEED_MORE consumes */
			break;
		case IMAP_PARSE_COMMAND: {
			struct slice t = imap_parser_tag(p), nm = imap_parser_name(p);
			buf_printf(&out, "[%.*s %.*s", (int)t.len, t.ptr, (int)nm.len, nm.ptr);
			dump_args(&out, imap_parser_args(p, NULL));
			buf_append_str(&out, "]");
			break;
		}
		case IMAP_PARSE_LITERAL: {
			struct imap_literal_info info;
			imap_parser_literal(p, &info);
			buf_printf(&out, "{%llu%s}", (unsigned long long)info.size,
				   info.sync ? "" : "+");
			imap_parser_literal_accept(p, stream && info.arg_index >= 1
							      ? IMAP_LITERAL_STREAM
							      : IMAP_LITERAL_BUFFER);
			break;
		}
		case IMAP_PARSE_LITERAL_DATA: {
			bool last;
			uint32_t idx;
			struct slice d = imap_parser_literal_data(p, &last, &idx);
			buf_printf(&out, "<%.*s%s>", (int)d.len, d.ptr, last ? "$" : "");
			break;
		}
		case IMAP_PARSE_ERROR: {
			struct slice t = imap_parser_tag(p);
			buf_printf(&out, "!%.*s:%s!", (int)t.len, t.ptr,
				   imap_parser_error(p, NULL));
			break;
		}
		}
	}
	imap_parser_destroy(&p);
	size_t l;
	char *s = buf_steal(&out, &l);
	return s;
}

/* Byte-by-byte data events differ in chunking; compare without them. */
static void strip_data(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '<') {
			while (*r && *r != '>')
				r++;
			continue;
		}
		*w++ = *r;
	}
	*w = 0;
}

static void check_parse(const char *input, const char *expect)
{
	char *whole = run(input, strlen(input) + 1, false);
	CHECK_STR(whole, expect);
	char *bytes = run(input, 1, false);
	CHECK_STR(bytes, expect);
	free(whole);
	free(bytes);
}

static void test_basic(void)
{
	check_parse("a1 NOOP\r\n", "[a1 NOOP]");
	check_parse("a1 LOGIN joe \"se\\\"cret\"\r\n", "[a1 LOGIN A:joe Q:se\"cret]");
	check_parse("a2 LOGIN {3}\r\njoe {2+}\r\npw\r\n", "{3}{2+}[a2 LOGIN L:joe L:pw]");
	check_parse("a3 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.10>)\r\n",
		    "[a3 FETCH A:1:* ( A:FLAGS A:BODY.PEEK[HEADER.FIELDS (From To)]<0.10> )]");
	check_parse("a4 STATUS NIL (MESSAGES)\n", "[a4 STATUS NIL ( A:MESSAGES )]");
	check_parse("a5 APPEND x ~{2}\r\nab\r\n", "{2}[a5 APPEND A:x L8:ab]");
	check_parse("\r\na6 X ((a) ())\r\n", "[a6 X ( ( A:a ) ( ) )]");
	check_parse("a7 X {0}\r\n\r\n", "{0}[a7 X L:]");
	check_parse("a8 LIST \"\" ~peter/%\r\n", "[a8 LIST Q: A:~peter/%]");
	check_parse("a9 X ~\r\n", "[a9 X A:~]");
}

static void test_errors(void)
{
	check_parse("a1 X \"abc\r\na2 NOOP\r\n",
		    "!a1:Unterminated quoted string![a2 NOOP]");
	check_parse("a1 X (a\r\n", "!a1:Missing ')'!");
	check_parse("a1 X a)\r\nb NOOP\r\n", "!a1:Unexpected ')'![b NOOP]");
	check_parse("+ X\r\nb NOOP\r\n", "!:Invalid tag![b NOOP]");
	check_parse("a1\r\n", "!a1:Missing command!");
	check_parse("a1\n", "!a1:Missing command name!");
	/* a bad line ending in a non-sync literal: the literal is skipped */
	check_parse("a1 X \"a\"b {3+}\r\nx\r\n\r\nb NOOP\r\n",
		    "!a1:Missing space between arguments![b NOOP]");
	check_parse("a1 X {99999999999999999999}\r\nb NOOP\r\n",
		    "!a1:Literal size too large![b NOOP]");
	check_parse("a1 X {3}x\r\n", "!a1:A literal must end its line!");
	check_parse("a1 LIST  *\r\nb NOOP \r\n", "!a1:Double space![b NOOP]");
	/* nesting limit of the pre-login profile is 4 */
	check_parse("a1 X (((((a)))))\r\nb NOOP\r\n",
		    "!a1:Lists nested too deeply![b NOOP]");
}

static void test_limits(void)
{
	/* pre-login max_line is 64 KiB */
	struct buf in;
	buf_init(&in, 0);
	buf_append_str(&in, "a1 LOGIN ");
	for (int i = 0; i < 66000; i++)
		buf_append_char(&in, 'x');
	buf_append_str(&in, " y\r\nb NOOP\r\n");
	char *r = run(in.data, 4096, false);
	CHECK_STR(r, "!a1:Command line too long![b NOOP]");
	free(r);
	buf_free(&in);
	/* a literal over max_literal is refused: sync ends the command */
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_prelogin);
	size_t used;
	const char *s = "a1 LOGIN {100000}\r\nb NOOP\r\n";
	CHECK_INT(imap_parser_feed(p, s, strlen(s), &used), IMAP_PARSE_LITERAL);
	imap_parser_literal_accept(p, IMAP_LITERAL_BUFFER);
	CHECK_INT(imap_parser_feed(p, s + used, strlen(s) - used, &used),
		  IMAP_PARSE_COMMAND);
	CHECK(slice_eq(imap_parser_name(p), "NOOP"));
	/* non-sync over the limit: discarded with its line */
	const char *t = "a2 LOGIN {10000+}\r\n";
	CHECK_INT(imap_parser_feed(p, t, strlen(t), &used), IMAP_PARSE_LITERAL);
	imap_parser_literal_accept(p, IMAP_LITERAL_REFUSE);
	char *junk = malloc(10000);
	memset(junk, 'z', 10000);
	CHECK_INT(imap_parser_feed(p, junk, 10000, &used), IMAP_PARSE_NEED_MORE);
	CHECK_INT(used, 10000);
	free(junk);
	const char *u = " rest\r\nc NOOP\r\n";
	CHECK_INT(imap_parser_feed(p, u, strlen(u), &used), IMAP_PARSE_COMMAND);
	CHECK(slice_eq(imap_parser_tag(p), "c"));
	imap_parser_destroy(&p);
}

static void test_stream(void)
{
	const char *in = "a1 APPEND INBOX (\\Seen) {5}\r\nhello {0}\r\n {3+}\r\nabc\r\n";
	char *whole = run(in, 1000, true);
	CHECK_STR(whole, "{5}<hello$>{0}{3+}<abc$>[a1 APPEND A:INBOX ( A:\\Seen ) S0:5 S1:0 S2:3]");
	char *bytes = run(in, 1, true);
	strip_data(bytes);
	CHECK_STR(bytes, "{5}{0}{3+}[a1 APPEND A:INBOX ( A:\\Seen ) S0:5 S1:0 S2:3]");
	free(whole);
	free(bytes);
}

static void test_seqset(void)
{
	struct imap_seqset set;
	CHECK_INT(imap_seqset_parse(slice_make("1:4294967295", 12), false, &set), 0);
	CHECK_INT(set.count, 1);
	CHECK_INT(set.ranges[0].hi, 4294967295u);
	imap_seqset_free(&set);
	CHECK_INT(imap_seqset_parse(slice_make("*:*", 3), false, &set), 0);
	imap_seqset_free(&set);
	CHECK_INT(imap_seqset_parse(slice_make("4294967296", 10), false, &set), -1);
	CHECK_INT(imap_seqset_parse(slice_make("0", 1), false, &set), -1);
	CHECK_INT(imap_seqset_parse(slice_make("1,", 2), false, &set), -1);
	CHECK_INT(imap_seqset_parse(slice_make("1::2", 4), false, &set), -1);
	CHECK_INT(imap_seqset_parse(slice_make("$", 1), false, &set), -1);
	CHECK_INT(imap_seqset_parse(slice_make("$", 1), true, &set), 0);
	CHECK(set.saved);
	struct store_uid_range r[] = {{5, 9}, {1, 2}, {3, 3}, {20, 30}, {10, 10}};
	size_t n = imap_uid_ranges_normalize(r, 5);
	CHECK_INT(n, 3);
	CHECK_INT(r[0].lo, 1);
	CHECK_INT(r[0].hi, 3);
	CHECK_INT(r[1].hi, 10);
	CHECK(imap_uid_ranges_contain(r, n, 25));
	CHECK(!imap_uid_ranges_contain(r, n, 15));
	struct buf b;
	buf_init(&b, 0);
	uint32_t uids[] = {1, 2, 3, 7, 9, 10};
	imap_uids_append_set(&b, uids, 6);
	CHECK_STR(b.data, "1:3,7,9:10");
	buf_free(&b);
}

static void check_utf7(const char *utf8, const char *utf7)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK_INT(utf7_encode(utf8, strlen(utf8), &b), 0);
	CHECK_STR(b.data, utf7);
	buf_reset(&b);
	CHECK_INT(utf7_decode(utf7, strlen(utf7), &b), 0);
	CHECK_STR(b.data, utf8);
	buf_free(&b);
}

static void test_utf7(void)
{
	check_utf7("INBOX", "INBOX");
	check_utf7("A&B", "A&-B");
	check_utf7("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	check_utf7("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		   "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_utf7("\xf0\x9f\x98\x80", "&2D3eAA-");
	const char *bad[] = {"&", "&Jjo", "&AGE-", "&Jjo!-", "&2D3-", "&3gA-",
			     "&AOk-&AOk-", "a\xc3\xa9", "&AOkA-"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b;
		buf_init(&b, 0);
		if (utf7_decode(bad[i], strlen(bad[i]), &b) != -1) {
			fprintf(stderr, "accepted bad mUTF-7 %s\n", bad[i]);
			test_failures_in_case++;
		}
		buf_free(&b);
	}
	CHECK(utf8_valid("\xc3\xa9", 2));
	CHECK(!utf8_valid("\xc0\xaf", 2));
	CHECK(!utf8_valid("\xed\xa0\x80", 3));
}

/* Issue 11: a session in IDLE holds little of the parser: after SELECT
 * with an argument and a long LOGIN, "a3 IDLE" leaves no node array and
 * a buffer of at most 256 bytes (byte counts, not timing). */
static void test_idle_footprint(void)
{
	struct imap_parser *p = imap_parser_create(&imap_parser_limits_default);
	char login[700];
	snprintf(login, sizeof(login), "a1 LOGIN %0500d secret\r\n", 7);
	const char *cmds[] = {login, "a2 SELECT INBOX\r\n", "a3 IDLE\r\n"};
	for (size_t i = 0; i < 3; i++) {
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(p, cmds[i], strlen(cmds[i]),
							    &used);
		CHECK(r == IMAP_PARSE_COMMAND);
		CHECK(used == strlen(cmds[i]));
		if (i == 1)
			CHECK(imap_parser_heap_bytes(p) >= 640);
	}
	struct slice nm = imap_parser_name(p);
	CHECK(nm.len == 4 && memcmp(nm.ptr, "IDLE", 4) == 0);
	CHECK(imap_parser_heap_bytes(p) <= 256 + 16);
	imap_parser_destroy(&p);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"basic", test_basic},
		{"errors", test_errors},
		{"limits", test_limits},
		{"stream", test_stream},
		{"seqset", test_seqset},
		{"utf7", test_utf7},
		{"idle_footprint", test_idle_footprint},
		{NULL, NULL},
	};
	return test_main(cases);
}
