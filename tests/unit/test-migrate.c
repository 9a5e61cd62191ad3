/*
 * Unit tests of src/migrate's parsers: Maildir file names, dovecot-
 * keywords, dovecot-uidlist (versions 1 and 3, N lagging, duplicates),
 * folder names (Maildir++ and LAYOUT=fs, modified UTF-7 or UTF-8), From_
 * lines, the mbox splitter (mboxrd and mboxo, unquoted "From " in
 * bodies, any split of the input), the mbox header fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "migrate-net.h"
#include "migrate-parse.h"
#include "store.h"
#include "test.h"

static void test_maildir_names(void)
{
	struct maildir_name n;
	char err[128];
	const char *a = "1700000000.M1P2.host,S=100,W=102:2,FRSab";
	CHECK_INT(maildir_name_parse(a, strlen(a), &n, err, sizeof(err)), 0);
	CHECK_INT(n.base_len, strlen("1700000000.M1P2.host,S=100,W=102"));
	CHECK_INT(n.flags, STORE_FLAG_FLAGGED | STORE_FLAG_ANSWERED |
				   STORE_FLAG_SEEN);
	CHECK_INT(n.keywords, 3);
	CHECK(!n.forwarded);
	const char *b = "new.file";
	CHECK_INT(maildir_name_parse(b, strlen(b), &n, err, sizeof(err)), 0);
	CHECK_INT(n.base_len, strlen(b));
	CHECK_INT(n.flags, 0);
	const char *c = "x:2,DPT";
	CHECK_INT(maildir_name_parse(c, strlen(c), &n, err, sizeof(err)), 0);
	CHECK_INT(n.flags, STORE_FLAG_DRAFT | STORE_FLAG_DELETED);
	CHECK(n.forwarded);
	const char *bad[] = {"", "x:1,S", "x:2", "x:2,S!", ":2,S", ".hidden",
			     "a/b:2,S"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(maildir_name_parse(bad[i], strlen(bad[i]), &n, err,
					     sizeof(err)), -1);
	struct buf out;
	buf_init(&out, 0);
	maildir_info_format(STORE_FLAG_SEEN | STORE_FLAG_DRAFT, true, 5, &out);
	buf_append_char(&out, '\0');
	CHECK_STR(out.data, ":2,DPSac");
	buf_free(&out);
}

static void test_keywords(void)
{
	struct maildir_keywords kw;
	char err[128];
	const char *good = "0 $Work\n1 Projekt\r\n\n25 last\n";
	CHECK_INT(maildir_keywords_parse(good, strlen(good), &kw, err,
					 sizeof(err)), 0);
	CHECK_STR(kw.names[0], "$Work");
	CHECK_STR(kw.names[1], "Projekt");
	CHECK_STR(kw.names[25], "last");
	CHECK(kw.names[2] == NULL);
	maildir_keywords_free(&kw);
	const char *bad[] = {"26 x\n", "0 a\n0 b\n", "x y\n", "0 \\Seen\n",
			     "0 a b\n", "0\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(maildir_keywords_parse(bad[i], strlen(bad[i]), &kw,
						 err, sizeof(err)), -1);
		CHECK(strstr(err, "line ") != NULL);
	}
}

static void test_uidlist(void)
{
	struct maildir_uidlist ul;
	char err[160];
	/* N lags: lines were appended after the header was written */
	const char *v3 = "3 V1234 N3 Gabcdef\n"
			 "1 :1.M1.host\n"
			 "2 W120 S118 :2.M2.host\n"
			 "7 P0000abc.uidl W5 :7.M7.host\n";
	CHECK_INT(maildir_uidlist_parse(v3, strlen(v3), &ul, err, sizeof(err)),
		  0);
	CHECK_INT(ul.version, 3);
	CHECK_INT(ul.uidvalidity, 1234);
	CHECK_INT(ul.uidnext, 8);
	CHECK_INT(ul.count, 3);
	if (ul.count == 3) {
		CHECK_STR(ul.recs[1].base, "2.M2.host");
		CHECK(ul.recs[1].pop3_uidl == NULL);
		CHECK_INT(ul.recs[2].uid, 7);
		CHECK_STR(ul.recs[2].pop3_uidl, "0000abc.uidl");
	}
	maildir_uidlist_free(&ul);
	const char *v1 = "1 99 10\n3 3.M3.host:2,S\n";
	CHECK_INT(maildir_uidlist_parse(v1, strlen(v1), &ul, err, sizeof(err)),
		  0);
	CHECK_INT(ul.uidvalidity, 99);
	CHECK_INT(ul.uidnext, 10);
	if (ul.count == 1)
		CHECK_STR(ul.recs[0].base, "3.M3.host");
	maildir_uidlist_free(&ul);

	struct {
		const char *text, *why;
	} bad[] = {
		{"3 V1 N2\n1 :a\n1 :b\n", "line 3: UID 1 given twice"},
		{"3 V1 N2\n5 :a\n2 :b\n", "line 3: UID 2 below the one before"},
		{"3 V1 N2\n1 :a\n2 :a\n", "UIDs 1 and 2 name the same file"},
		{"2 V1 N2\n", "unknown version"},
		{"3 N2\n", "bad version 3 header"},
		{"3 V0 N2\n", "bad version 3 header"},
		{"3 V1 N2\n1 a\n", "line 2: no \":<file name>\""},
		{"3 V1 N2\nx :a\n", "line 2: no UID"},
		{"3 V1 N2\n4294967295 :a\n", "UID 4294967295 leaves no UIDNEXT"},
		{"3 V1 N2\n1 :a/b\n", "line 2: bad file name"},
		{"", "empty file"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(maildir_uidlist_parse(bad[i].text, strlen(bad[i].text),
						&ul, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fprintf(stderr, "uidlist %zu: \"%s\" lacks \"%s\"\n",
				i, err, bad[i].why);
		CHECK(strstr(err, bad[i].why) != NULL);
	}
}

static const char *folder(const char *dir, bool fs, struct buf *b)
{
	buf_reset(b);
	if (maildir_folder_name(dir, strlen(dir), fs, b) < 0)
		return NULL;
	buf_append_char(b, '\0');
	return b->data;
}

static void test_folder_names(void)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK_STR(folder(".Lists.Rust", false, &b), "Lists/Rust");
	CHECK_STR(folder(".Fran&AOc-ais", false, &b), "Fran\xc3\xa7" "ais");
	CHECK_STR(folder(".&ZeVnLIqe-", false, &b), "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	/* not valid mUTF-7 but valid UTF-8: as it is */
	CHECK_STR(folder(".R&D", false, &b), "R&D");
	CHECK_STR(folder(".Caf\xc3\xa9", false, &b), "Caf\xc3\xa9");
	CHECK_STR(folder("Lists/Rust", true, &b), "Lists/Rust");
	CHECK(folder(".Bad\xff", false, &b) == NULL);
	CHECK(folder("..", false, &b) == NULL);
	CHECK(folder(".a..b", false, &b) == NULL);
	CHECK(folder("a/../b", true, &b) == NULL);
	CHECK(folder("Lists", false, &b) == NULL);
	buf_reset(&b);
	CHECK_INT(maildir_folder_dir("Fran\xc3\xa7" "ais/Sub", &b), 0);
	buf_append_char(&b, '\0');
	CHECK_STR(b.data, ".Fran&AOc-ais.Sub");
	buf_reset(&b);
	CHECK_INT(maildir_folder_dir("a.b", &b), -1);
	buf_free(&b);
}

static void test_from_lines(void)
{
	time_t t;
	const char *good[] = {
		"From alice@example.org Sat Jan  3 01:05:34 1996",
		"From - Sat Jan 03 01:05:34 1996",
		"From MAILER-DAEMON Sat Jan  3 01:05 1996",
		"From a@b Sat Jan  3 01:05:34 1996 +0000",
		"From a@b Sat Jan  3 01:05:34 UTC 1996",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(mbox_from_line(good[i], strlen(good[i]), &t));
		CHECK(t == 820631134 || t == 820631100);
	}
	const char *zone = "From a@b Sat Jan  3 02:05:34 1996 +0100";
	CHECK(mbox_from_line(zone, strlen(zone), &t));
	CHECK_INT(t, 820631134);
	const char *bad[] = {
		"From here on, a line that starts with From.",
		"From me",
		"From Sat Jan  3 01:05:34 1996",
		"From a@b Sat Jan  3 01:05:34",
		"From a@b Sat Jan 33 01:05:34 1996",
		"From a@b Sat Jan  3 25:05:34 1996",
		"From a@b Sat Jan  3 01:05:34 1996 trailing",
		">From a@b Sat Jan  3 01:05:34 1996",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!mbox_from_line(bad[i], strlen(bad[i]), &t));
	struct buf b;
	buf_init(&b, 0);
	mbox_from_format(820631134, &b);
	buf_append_char(&b, '\0');
	CHECK_STR(b.data, "From MAILER-DAEMON Wed Jan  3 01:05:34 1996\n");
	buf_free(&b);
}

/* The parser's calls, as text: "B<date>|" "D<bytes>" "E|". */
static void ev_begin(void *ctx, const char *from, size_t len, time_t date)
{
	(void)from;
	(void)len;
	buf_printf(ctx, "B%lld|", (long long)date);
}
static void ev_data(void *ctx, const char *data, size_t len)
{
	buf_append(ctx, data, len);
}
static void ev_end(void *ctx)
{
	buf_append_str(ctx, "E|");
}

static char *split(enum mbox_format fmt, const char *in, size_t len,
		   size_t step, uint64_t *junk_r)
{
	struct buf out;
	buf_init(&out, 0);
	struct mbox_callbacks cb = {ev_begin, ev_data, ev_end, &out};
	struct mbox_parser *p = mbox_parser_create(fmt, &cb);
	for (size_t i = 0; i < len; i += step)
		mbox_parser_feed(p, in + i, len - i < step ? len - i : step);
	mbox_parser_finish(p);
	*junk_r = mbox_parser_junk(p);
	mbox_parser_destroy(&p);
	buf_append_char(&out, '\0');
	return buf_steal(&out, NULL);
}

static void test_mbox_split(void)
{
	const char *in =
		"junk line\n"
		"\n"
		"From a@b Sat Jan  3 01:05:34 1996\n"
		"Subject: one\n"
		"\n"
		"From here on, not a From_ line (no blank line before)\n"
		">From quoted\n"
		">>From twice quoted\n"
		"\n"
		"From me without a date\n"
		"\n"
		"From b@c Sat Jan  3 01:05:35 1996\r\n"
		"Subject: two\r\n"
		"\r\n"
		"body\r\n"
		"\r\n"
		"\n"
		"From c@d Sat Jan  3 01:05:36 1996\n"
		"Subject: three, no final newline";
	const char *want_rd =
		"B820631134|Subject: one\n"
		"\n"
		"From here on, not a From_ line (no blank line before)\n"
		"From quoted\n"
		">From twice quoted\n"
		"\n"
		"From me without a date\n"
		"E|B820631135|Subject: two\r\n"
		"\r\n"
		"body\r\n"
		"\r\n"
		"E|B820631136|Subject: three, no final newlineE|";
	size_t len = strlen(in);
	uint64_t junk;
	size_t steps[] = {len, 1, 2, 3, 7, 64};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		char *got = split(MBOX_RD, in, len, steps[i], &junk);
		CHECK_STR(got, want_rd);
		CHECK_INT(junk, 10);
		free(got);
	}
	char *o = split(MBOX_O, in, len, len, &junk);
	CHECK(strstr(o, "\nFrom quoted\n>>From twice quoted\n") != NULL);
	free(o);
	/* a line longer than the parser's head is passed through whole */
	size_t big = 5000;
	char *lng = xmalloc(big + 100);
	int h = snprintf(lng, 100, "From a@b Sat Jan  3 01:05:34 1996\n");
	memset(lng + h, 'x', big);
	lng[h + big] = '\n';
	char *got = split(MBOX_RD, lng, (size_t)h + big + 1, 100, &junk);
	CHECK_INT(strlen(got), strlen("B820631134|") + big + 1 + 2);
	free(got);
	free(lng);
}

static void test_mbox_headers(void)
{
	const char *hdr = "Subject: hi\n"
			  "Status: RO\n"
			  "X-Status: AFT\n"
			  "X-Keywords: $Work, Projekt  $Work\n"
			  "X-UID: 42\n"
			  "X-IMAPbase: 1234 50 $Work Projekt\n"
			  "Content-Length: 10\n"
			  "X-Other: kept\n"
			  " continued\n"
			  "\n";
	struct buf out;
	struct mbox_meta meta;
	buf_init(&out, 0);
	mbox_header_filter(hdr, strlen(hdr), &out, &meta);
	buf_append_char(&out, '\0');
	CHECK_STR(out.data, "Subject: hi\nX-Other: kept\n continued\n\n");
	CHECK_INT(meta.flags, STORE_FLAG_SEEN | STORE_FLAG_ANSWERED |
				      STORE_FLAG_FLAGGED | STORE_FLAG_DRAFT);
	CHECK_INT(meta.keyword_count, 2);
	if (meta.keyword_count == 2) {
		CHECK_STR(meta.keywords[0], "$Work");
		CHECK_STR(meta.keywords[1], "Projekt");
	}
	CHECK_INT(meta.uid, 42);
	CHECK_INT(meta.uidvalidity, 1234);
	CHECK_INT(meta.uidnext, 50);
	CHECK(!meta.pseudo);
	mbox_meta_free(&meta);
	buf_reset(&out);
	const char *uw = "X-IMAP: 77 3\nStatus: O\n\n";
	mbox_header_filter(uw, strlen(uw), &out, &meta);
	CHECK(meta.pseudo);
	CHECK_INT(meta.flags, 0);
	CHECK_INT(meta.uidvalidity, 77);
	mbox_meta_free(&meta);
	buf_free(&out);
}

static void test_imap_resp(void)
{
	struct imap_resp *r = xcalloc(1, sizeof(*r));
	buf_init(&r->strings, 0);
	const char *f = "* 12 FETCH (UID 7 FLAGS (\\Seen $Work) INTERNALDATE"
			" \"01-Jun-2026 10:00:00 +0000\" BODY[] {5}\r\nhel\"o)\r\n";
	CHECK_INT(imap_resp_parse(f, strlen(f), r), 0);
	const struct imap_item *top = &r->items[0];
	CHECK(imap_item_is(r, imap_resp_child(r, top, 2), "FETCH"));
	const struct imap_item *list = imap_resp_child(r, top, 3);
	CHECK(list != NULL && list->type == IMAP_LIST);
	uint64_t v = 0;
	CHECK(imap_item_u64(r, imap_resp_child(r, list, 1), &v) && v == 7);
	const struct imap_item *fl = imap_resp_child(r, list, 3);
	CHECK(fl != NULL && fl->children == 2);
	CHECK(imap_item_is(r, imap_resp_child(r, fl, 0), "\\Seen"));
	const struct imap_item *date = imap_resp_child(r, list, 5);
	CHECK(date != NULL && date->type == IMAP_STRING && date->len == 26);
	const struct imap_item *body = imap_resp_child(r, list, 7);
	CHECK(body != NULL && body->len == 5 &&
	      memcmp(imap_item_data(r, body), "hel\"o", 5) == 0);
	const char *ok = "L3 OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Logged in\r\n";
	CHECK_INT(imap_resp_parse(ok, strlen(ok), r), 0);
	CHECK(imap_resp_child(r, top, 2)->type == IMAP_SECTION);
	CHECK(r->text_len == 9 && memcmp(r->text, "Logged in", 9) == 0);
	const char *list1 = "* LIST (\\HasNoChildren) \".\" \"a \\\"b\\\"\"\r\n";
	CHECK_INT(imap_resp_parse(list1, strlen(list1), r), 0);
	const struct imap_item *nm = imap_resp_child(r, top, 4);
	CHECK(nm != NULL && nm->len == 5 &&
	      memcmp(imap_item_data(r, nm), "a \"b\"", 5) == 0);
	/* a literal longer than what follows; unbalanced; too deep */
	const char *bad[] = {"* 1 FETCH (BODY[] {50}\r\nshort)\r\n",
			     "* 1 FETCH (UID 1\r\n", "* LIST ((((((((((((((((((("
			     "(((((((((((((((((x)))))))))))))))))))))))))))))))"
			     "))))))\r\n", "* 1 FETCH (X \"a\rb\")\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(imap_resp_parse(bad[i], strlen(bad[i]), r), -1);
	buf_free(&r->strings);
	free(r);

	unsigned num;
	char uidl[71];
	CHECK(pop3_uidl_line("3 000000016b14bb48\r\n", 20, &num, uidl));
	CHECK_INT(num, 3);
	CHECK_STR(uidl, "000000016b14bb48");
	CHECK(!pop3_uidl_line("0 x", 3, &num, uidl));
	CHECK(!pop3_uidl_line("1 a b", 5, &num, uidl));
	CHECK(!pop3_uidl_line("1 ", 2, &num, uidl));

	struct migrate_url u;
	CHECK_INT(migrate_url_parse("imap://alice%40example.org@[::1]:1143", &u),
		  0);
	CHECK_STR(u.user, "alice@example.org");
	CHECK_STR(u.host, "::1");
	CHECK_STR(u.port, "1143");
	CHECK(u.imap && !u.tls);
	CHECK_INT(migrate_url_parse("pop3s://bob@mail.example.org", &u), 0);
	CHECK_STR(u.port, "995");
	CHECK(!u.imap && u.tls);
	CHECK_INT(migrate_url_parse("imap://mail.example.org", &u), -1);
	CHECK_INT(migrate_url_parse("imap://a@h:12x", &u), -1);
	CHECK_INT(migrate_url_parse("http://a@h", &u), -1);
	CHECK_INT(migrate_url_parse("imap://a%4@h", &u), -1);
}

static const struct test_case cases[] = {
	{"imap_resp", test_imap_resp},
	{"maildir_names", test_maildir_names},
	{"keywords", test_keywords},
	{"uidlist", test_uidlist},
	{"folder_names", test_folder_names},
	{"from_lines", test_from_lines},
	{"mbox_split", test_mbox_split},
	{"mbox_headers", test_mbox_headers},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
