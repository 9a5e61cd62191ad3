/*
 * Unit tests for src/mail: encoded words, RFC 2231 parameters, addresses
 * and groups, ENVELOPE and BODYSTRUCTURE of many shapes (expected strings
 * as Dovecot 2.3 answers them), sections and BINARY, search text and
 * preview, base subject, dates, IMAP quoting and limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"
#include "test.h"

/* Turns "\n" into "\r\n" (messages are stored with CRLF). */
static char *crlf(const char *s, size_t *len_r)
{
	size_t n = strlen(s);
	char *out = malloc(n * 2 + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			*o++ = '\r';
		*o++ = s[i];
	}
	*o = '\0';
	*len_r = (size_t)(o - out);
	return out;
}

static char *decode2047(const char *s)
{
	struct buf b;
	buf_init(&b, 0);
	mail_decode_2047(&b, s, strlen(s));
	buf_append(&b, "", 0);
	return buf_steal(&b, &(size_t){0});
}

static void test_2047(void)
{
	char *s;
	CHECK_STR(s = decode2047("=?utf-8?q?h=C3=A9llo?= world"), "héllo world");
	free(s);
	CHECK_STR(s = decode2047("=?ISO-8859-1?B?Y2Fm6Q==?="), "café");
	free(s);
	/* whitespace between adjacent encoded words is dropped (6.2) */
	CHECK_STR(s = decode2047("=?utf-8?q?a?= =?utf-8?q?b?=\t =?utf-8?q?_c?="), "ab c");
	free(s);
	/* but kept next to plain text */
	CHECK_STR(s = decode2047("x =?utf-8?q?y?= z"), "x y z");
	free(s);
	/* a multibyte character split over two words */
	CHECK_STR(s = decode2047("=?utf-8?B?w6==?= =?utf-8?B?qQ==?="), "é");
	free(s);
	/* invalid words stay as they are; language suffix (RFC 2231 5) */
	CHECK_STR(s = decode2047("=?bogus?x?y?= =?utf-8*en?q?lang?="), "=?bogus?x?y?= lang");
	free(s);
	/* unknown charset: bytes survive as Windows-1252 */
	CHECK_STR(s = decode2047("=?x-unknown?q?caf=E9?="), "café");
	free(s);
	/* raw 8-bit Latin-1 in a header becomes UTF-8 */
	CHECK_STR(s = decode2047("caf\xe9"), "café");
	free(s);
	struct buf b;
	buf_init(&b, 0);
	mail_header_decode(&b, slice_make("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", 29));
	CHECK_MEM(b.data, b.len, "ab", 2);
	buf_free(&b);
}

static void test_2231(void)
{
	struct mail_params p;
	const char *v = "attachment;\r\n filename*0*=utf-8''na%C3%AFve%20;\r\n"
			" filename*1=\"file.txt\"; size=10";
	mail_params_parse(v, strlen(v), &p);
	CHECK_STR(p.value, "attachment");
	CHECK_STR(mail_params_get(&p, "filename"), "naïve file.txt");
	CHECK_STR(mail_params_get(&p, "size"), "10");
	mail_params_free(&p);
	v = "text/plain; CHARSET=\"ISO-8859-1\" (comment); Format=flowed";
	mail_params_parse(v, strlen(v), &p);
	CHECK_STR(p.value, "text/plain");
	CHECK_STR(mail_params_get(&p, "charset"), "ISO-8859-1");
	CHECK_STR(mail_params_get(&p, "format"), "flowed");
	mail_params_free(&p);
	v = "application/x; name*=iso-8859-1'en'caf%E9.txt; title=\"=?utf-8?q?T=C3=ADtulo?=\"";
	mail_params_parse(v, strlen(v), &p);
	CHECK_STR(mail_params_get(&p, "name"), "café.txt");
	CHECK_STR(mail_params_get(&p, "title"), "Título");
	mail_params_free(&p);
	/* a broken series (no *0) is kept piece by piece */
	v = "x; a*1=one; a*2=two";
	mail_params_parse(v, strlen(v), &p);
	CHECK_INT(p.count, 2);
	mail_params_free(&p);
}

static void test_addresses(void)
{
	struct mail_address *l;
	const char *v = "\"Joe Q.\" <joe@example.com>, grp: x@y.z, \"A, B\" <ab@y.z>;, "
			"=?utf-8?q?J=C3=B6rg?= <j@x.y>, <@r1,@r2:u@h>, c@d (Comment), "
			"undisclosed-recipients:;";
	size_t n = mail_address_parse(v, strlen(v), &l);
	CHECK_INT(n, 10);
	if (n == 10) {
		CHECK_STR(l[0].name, "Joe Q.");
		CHECK_STR(l[0].mailbox, "joe");
		CHECK_STR(l[0].host, "example.com");
		CHECK_STR(l[1].mailbox, "grp");
		CHECK(l[1].host == NULL);
		CHECK_STR(l[3].name, "A, B");
		CHECK(l[4].mailbox == NULL && l[4].host == NULL);
		CHECK_STR(l[5].name, "=?utf-8?q?J=C3=B6rg?=");
		CHECK_STR(l[5].name_utf8, "Jörg");
		CHECK_STR(l[6].route, "@r1,@r2");
		CHECK_STR(l[6].mailbox, "u");
		CHECK_STR(l[7].name, "Comment");
		CHECK_STR(l[8].mailbox, "undisclosed-recipients");
		CHECK(l[9].mailbox == NULL && l[9].host == NULL);
	}
	mail_address_list_free(l, n);
	v = "local, @nodomain.example, Jörg <jörg@bücher.example>";
	n = mail_address_parse(v, strlen(v), &l);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(l[0].host, "MISSING_DOMAIN");
		CHECK_STR(l[1].mailbox, "MISSING_MAILBOX");
		CHECK_STR(l[2].mailbox, "jörg");   /* RFC 6532 */
		CHECK_STR(l[2].host, "bücher.example");
	}
	mail_address_list_free(l, n);
}

struct shape {
	const char *msg;
	const char *envelope;      /* NULL: not checked */
	const char *bodystructure;
};

/* Expected strings as Dovecot 2.3.19 answered them for the same bytes. */
static const struct shape shapes[] = {
	{"From: \"Joe Q.\" <joe@example.com>\nTo: a@b.c, grp: x@y.z, w@v.u;\n"
	 "Subject: =?utf-8?q?h=C3=A9llo?= world\nDate: Fri, 21 Nov 1997 09:55:06 -0600\n"
	 "Content-Type: TEXT/Plain; CHARSET=\"ISO-8859-1\"; format=flowed\n\nbody line\n",
	 "(\"Fri, 21 Nov 1997 09:55:06 -0600\" \"=?utf-8?q?h=C3=A9llo?= world\" "
	 "((\"Joe Q.\" NIL \"joe\" \"example.com\")) ((\"Joe Q.\" NIL \"joe\" \"example.com\")) "
	 "((\"Joe Q.\" NIL \"joe\" \"example.com\")) ((NIL NIL \"a\" \"b.c\")(NIL NIL \"grp\" NIL)"
	 "(NIL NIL \"x\" \"y.z\")(NIL NIL \"w\" \"v.u\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)",
	 "(\"TEXT\" \"Plain\" (\"CHARSET\" \"ISO-8859-1\" \"format\" \"flowed\") NIL NIL "
	 "\"7bit\" 11 1 NIL NIL NIL NIL)"},
	/* no header at all */
	{"\nJust a body.\n", "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 1 NIL NIL NIL NIL)"},
	/* Content-* without MIME-Version are not MIME */
	{"From: a@b.c\nContent-Transfer-Encoding: base64\n\naGVsbG8K\n", NULL,
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)"},
	/* an empty multipart */
	{"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"e\"\n\n--e--\n", NULL,
	 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) "
	 "\"mixed\" (\"boundary\" \"e\") NIL NIL NIL)"},
	/* preamble, epilogue, a part without header */
	{"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"p\"\n\npre 1\npre 2\n"
	 "--p\n\nno header part\n--p--\nepi 1\nepi 2\n", NULL,
	 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 0 NIL NIL NIL NIL) "
	 "\"mixed\" (\"boundary\" \"p\") NIL NIL NIL)"},
	/* extension data */
	{"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-ID: <cid@x>\n"
	 "Content-Description: a description\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
	 "Content-Disposition: inline; filename=\"a.txt\"\nContent-Language: en-US, fr\n"
	 "Content-Location: http://example.com/a.txt\nContent-Transfer-Encoding: 7bit\n\ntext\n",
	 NULL,
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") \"<cid@x>\" \"a description\" \"7bit\" 6 1 "
	 "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"inline\" (\"filename\" \"a.txt\")) (\"en-US\" \"fr\") "
	 "\"http://example.com/a.txt\")"},
	/* message/rfc822 with a multipart inside */
	{"From: outer@a.b\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
	 "From: inner@a.b\nSubject: inner\nMIME-Version: 1.0\n"
	 "Content-Type: multipart/alternative; boundary=\"in\"\n\n--in\n"
	 "Content-Type: text/plain\n\nplain\n--in\nContent-Type: text/html\n\n<p>html</p>\n--in--\n",
	 NULL,
	 "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 201 (NIL \"inner\" ((NIL NIL \"inner\" \"a.b\")) "
	 "((NIL NIL \"inner\" \"a.b\")) ((NIL NIL \"inner\" \"a.b\")) NIL NIL NIL NIL NIL) "
	 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)"
	 "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) "
	 "\"alternative\" (\"boundary\" \"in\") NIL NIL NIL) 14 NIL NIL NIL NIL)"},
	/* multipart/digest: parts default to message/rfc822 */
	{"MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=\"d\"\n\n--d\n\n"
	 "From: one@x.y\nSubject: one\n\nfirst\n--d--\n", NULL,
	 "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 36 (NIL \"one\" ((NIL NIL \"one\" \"x.y\")) "
	 "((NIL NIL \"one\" \"x.y\")) ((NIL NIL \"one\" \"x.y\")) NIL NIL NIL NIL NIL) "
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) 3 "
	 "NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)"},
	/* an outer boundary closes the unclosed inner multipart */
	{"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"o\"\n\n--o\n"
	 "Content-Type: multipart/alternative; boundary=\"i\"\n\n--i\nContent-Type: text/plain\n\n"
	 "inner\n--o\nContent-Type: text/plain\n\nlast\n--o--\n", NULL,
	 "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) "
	 "\"alternative\" (\"boundary\" \"i\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\" "
	 "\"us-ascii\") NIL NIL \"7bit\" 4 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)"},
	/* subjects and names "for humans": tabs, runs of spaces, quotes */
	{"From: \"a \\\"b\\\" c\" <a@b.c>\nSubject:\tlead  and  double \n\nb\n",
	 "(NIL {15}\r\nlead and double (({7}\r\na \"b\" c NIL \"a\" \"b.c\")) "
	 "(({7}\r\na \"b\" c NIL \"a\" \"b.c\")) (({7}\r\na \"b\" c NIL \"a\" \"b.c\")) "
	 "NIL NIL NIL NIL NIL)",
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)"},
	/* message/rfc822 parts cut short by the boundary (the first one
	 * as the 8th part: the part array grows under it) */
	{"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n1\n"
	 "--b\n\n2\n--b\n\n3\n--b\n\n4\n--b\n\n5\n--b\n\n6\n"
	 "--b\nContent-Type: message/rfc822\n\n--b\nContent-Type: message/rfc822\n\n"
	 "Subject: x\n--b--\n", NULL,
	 "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL)"
	 "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
	 "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 "
	 "NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 12 (NIL \"x\" NIL NIL NIL "
	 "NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 "
	 "NIL NIL NIL NIL) 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"},
	{NULL, NULL, NULL},
};

static void test_shapes(void)
{
	for (const struct shape *s = shapes; s->msg != NULL; s++) {
		size_t len;
		char *m = crlf(s->msg, &len);
		struct mail_result r;
		CHECK_INT(mail_analyze(m, len, NULL, &r), 0);
		if (s->envelope)
			CHECK_STR(r.envelope, s->envelope);
		if (s->bodystructure)
			CHECK_STR(r.bodystructure, s->bodystructure);
		mail_result_free(&r);
		free(m);
	}
}

static const char multi[] =
	"From: Alice <alice@example.com>\n"
	"To: bob@example.com\n"
	"Subject: =?utf-8?q?Re=3A_Re=3A_[list]_Gr=C3=BC=C3=9Fe?= (fwd)\n"
	"Date: Mon, 2 Jan 2006 15:04:05 -0700\n"
	"Message-ID: <m1@example.com>\n"
	"In-Reply-To: <p1@example.com> (comment)\n"
	"References: <a@example.com>\n <p1@example.com>\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\n"
	"\n"
	"--outer\n"
	"Content-Type: multipart/alternative; boundary=\"alt\"\n"
	"\n"
	"--alt\n"
	"Content-Type: text/plain; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Caf=E9 cr=E8me, soft=\n"
	" break\n"
	"--alt\n"
	"Content-Type: text/html; charset=utf-8\n"
	"\n"
	"<html><style>x{}</style><p>Caf&eacute; &amp; cr\xc3\xa8me</p></html>\n"
	"--alt--\n"
	"--outer\n"
	"Content-Type: application/pdf; name=\"secret.pdf\"\n"
	"Content-Disposition: attachment; filename=\"secret.pdf\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"SGlkZGVuV29yZA==\n"
	"--outer\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Disposition: attachment; filename=\"notes.txt\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"bm90ZXMgd29yZA==\n"
	"--outer\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: inner@example.com\n"
	"Subject: inner subject\n"
	"\n"
	"inner body\n"
	"--outer--\n";

static void test_search_text(void)
{
	size_t len;
	char *m = crlf(multi, &len);
	struct mail_result r;
	mail_analyze(m, len, NULL, &r);
	CHECK(strstr(r.body_text, "Café crème, soft break") != NULL);
	CHECK(strstr(r.body_text, "Caf") != NULL);
	CHECK(strstr(r.body_text, "Café & crème") != NULL);   /* &eacute; */
	CHECK(strstr(r.body_text, "x{}") == NULL);          /* style dropped */
	CHECK(strstr(r.body_text, "<p>") == NULL);
	CHECK(strstr(r.body_text, "HiddenWord") == NULL);   /* pdf body */
	CHECK(strstr(r.body_text, "notes word") != NULL);   /* text attachment */
	CHECK(strstr(r.body_text, "inner subject") != NULL);
	CHECK(strstr(r.body_text, "inner body") != NULL);
	CHECK(strstr(r.header_text, "Subject: Re: Re: [list] Grüße (fwd)\n") != NULL);
	CHECK(strstr(r.header_text, "From: Alice <alice@example.com>\n") != NULL);
	CHECK_STR(r.preview, "Café crème, soft break");
	CHECK_STR(r.sort_subject, "Grüße");
	CHECK_STR(r.sort_from, "alice");
	CHECK_STR(r.sort_display_from, "Alice");
	CHECK_STR(r.sort_to, "bob");
	CHECK_STR(r.sort_display_to, "bob@example.com");
	CHECK_STR(r.message_id, "<m1@example.com>");
	CHECK_STR(r.in_reply_to, "<p1@example.com>");
	CHECK_STR(r.references, "<a@example.com> <p1@example.com>");
	CHECK_INT(r.sent_date, 1136239445);
	CHECK_INT(r.part_count, 8);
	CHECK(r.has_attachment);
	CHECK(mail_text_contains(r.body_text, r.body_text_len, "CAFÉ CRÈME", 12));
	CHECK(!mail_text_contains(r.body_text, r.body_text_len, "hiddenword", 10));
	mail_result_free(&r);

	/* without search text: the same preview, no text */
	struct mail_analyze_options opt = {0};
	opt.want_text = false;
	mail_analyze(m, len, &opt, &r);
	CHECK_STR(r.preview, "Café crème, soft break");
	CHECK_INT(r.body_text_len, 0);
	CHECK_INT(r.header_text_len, 0);
	mail_result_free(&r);
	free(m);
}

static void text_cb(void *ctx, enum mail_text_kind kind, const char *name,
		    const char *text, size_t len)
{
	struct buf *b = ctx;
	if (kind == MAIL_TEXT_HEADER) {
		buf_append_str(b, name);
		buf_append_str(b, "=");
	}
	buf_append(b, text, len);
}

static void test_text_callback(void)
{
	size_t len;
	char *m = crlf(multi, &len);
	struct mail_result r;
	struct buf got;
	buf_init(&got, 0);
	struct mail_analyze_options opt = {NULL, text_cb, &got, true};
	mail_analyze(m, len, &opt, &r);
	buf_append(&got, "", 0);
	CHECK(strstr(got.data, "Subject=Re: Re: [list] Grüße (fwd)") != NULL);
	CHECK(strstr(got.data, "notes word") != NULL);
	CHECK(strstr(got.data, "HiddenWord") == NULL);
	CHECK_STR(r.body_text, "");
	mail_result_free(&r);
	buf_free(&got);
	free(m);
}

static void get_section(const char *m, size_t len, const struct mail_result *r,
			const char *spec_text, char **out_r)
{
	struct mail_section_spec spec;
	struct mail_section sec;
	*out_r = NULL;
	if (mail_section_parse(spec_text, strlen(spec_text), &spec) < 0)
		return;
	if (mail_section_get(m, len, r->parts, r->parts_len, &spec, &sec) == 0)
		*out_r = strndup(sec.ptr, sec.len);
	mail_section_free(&sec);
	mail_section_spec_free(&spec);
}

static void check_section(const char *m, size_t len, const struct mail_result *r,
			  const char *spec, const char *want)
{
	char *got;
	size_t wl;
	char *w = crlf(want, &wl);
	get_section(m, len, r, spec, &got);
	if (got == NULL || strcmp(got, w) != 0) {
		fprintf(stderr, "section %s: got \"%s\" want \"%s\"\n", spec,
			got ? got : "(error)", w);
		test_failures_in_case++;
	}
	free(got);
	free(w);
}

static void test_sections(void)
{
	size_t len;
	char *m = crlf(multi, &len);
	struct mail_result r;
	mail_analyze(m, len, NULL, &r);
	check_section(m, len, &r, "1.1", "Caf=E9 cr=E8me, soft=\n break");
	check_section(m, len, &r, "1.1.MIME", "Content-Type: text/plain; charset=iso-8859-1\n"
		      "Content-Transfer-Encoding: quoted-printable\n\n");
	check_section(m, len, &r, "2", "SGlkZGVuV29yZA==");
	check_section(m, len, &r, "4", "From: inner@example.com\nSubject: inner subject\n\ninner body");
	check_section(m, len, &r, "4.HEADER", "From: inner@example.com\nSubject: inner subject\n\n");
	check_section(m, len, &r, "4.TEXT", "inner body");
	check_section(m, len, &r, "4.1", "inner body");
	check_section(m, len, &r, "4.MIME", "Content-Type: message/rfc822\n\n");
	check_section(m, len, &r, "HEADER.FIELDS (Subject \"To\" X-None)",
		      "To: bob@example.com\nSubject: =?utf-8?q?Re=3A_Re=3A_[list]_Gr=C3=BC=C3=9Fe?= (fwd)\n\n");
	check_section(m, len, &r, "HEADER.FIELDS.NOT (From To Subject Date Message-ID "
		      "In-Reply-To MIME-Version Content-Type)",
		      "References: <a@example.com>\n <p1@example.com>\n\n");
	check_section(m, len, &r, "4.HEADER.FIELDS (SUBJECT)", "Subject: inner subject\n\n");
	check_section(m, len, &r, "5", "");        /* no such part */
	check_section(m, len, &r, "1.3", "");
	check_section(m, len, &r, "2.HEADER", "");  /* not a message part */
	char *whole;
	get_section(m, len, &r, "", &whole);
	CHECK(whole != NULL && strlen(whole) == len);
	free(whole);
	char *hdr, *text;
	get_section(m, len, &r, "HEADER", &hdr);
	get_section(m, len, &r, "TEXT", &text);
	CHECK(hdr && text && strlen(hdr) + strlen(text) == len);
	free(hdr);
	free(text);

	/* BINARY */
	struct mail_section sec;
	bool unknown;
	uint32_t p11[] = {1, 1}, p2[] = {2}, p3[] = {3};
	CHECK_INT(mail_binary_get(m, len, r.parts, r.parts_len, p11, 2, &sec, &unknown), 0);
	CHECK_MEM(sec.ptr, sec.len, "Caf\xe9 cr\xe8me, soft break", 22);
	mail_section_free(&sec);
	CHECK_INT(mail_binary_get(m, len, r.parts, r.parts_len, p2, 1, &sec, &unknown), 0);
	CHECK_MEM(sec.ptr, sec.len, "HiddenWord", 10);
	mail_section_partial(&sec, 6, 100);
	CHECK_MEM(sec.ptr, sec.len, "Word", 4);
	mail_section_partial(&sec, 10, 1);
	CHECK_INT(sec.len, 0);
	mail_section_free(&sec);
	uint64_t size;
	CHECK_INT(mail_binary_size(m, len, r.parts, r.parts_len, p3, 1, &size, &unknown), 0);
	CHECK_INT(size, 10);
	CHECK_INT(mail_binary_size(m, len, r.parts, r.parts_len, p11, 2, &size, &unknown), 0);
	CHECK_INT(size, 22);
	struct mail_part_info info;
	CHECK(mail_part_lookup(r.parts, r.parts_len, p11, 2, &info));
	CHECK_MEM(info.charset.ptr, info.charset.len, "iso-8859-1", 10);
	CHECK_MEM(info.encoding.ptr, info.encoding.len, "quoted-printable", 16);
	/* a corrupt map is an error, not a crash */
	CHECK_INT(mail_binary_get(m, len, r.parts, 3, p2, 1, &sec, &unknown), -1);
	mail_section_free(&sec);
	mail_result_free(&r);
	free(m);

	const char *u = "MIME-Version: 1.0\nContent-Transfer-Encoding: x-uuencode\n\nbegin\n";
	m = crlf(u, &len);
	mail_analyze(m, len, NULL, &r);
	uint32_t p1[] = {1};
	CHECK_INT(mail_binary_get(m, len, r.parts, r.parts_len, p1, 1, &sec, &unknown), -1);
	CHECK(unknown);
	mail_section_free(&sec);
	mail_result_free(&r);
	free(m);
}

static void test_section_parse(void)
{
	struct mail_section_spec s;
	CHECK_INT(mail_section_parse("1.2.3", 5, &s), 0);
	CHECK_INT(s.path_len, 3);
	CHECK_INT(s.kind, MAIL_SECTION_ALL);
	mail_section_spec_free(&s);
	CHECK_INT(mail_section_parse("2.MIME", 6, &s), 0);
	CHECK_INT(s.kind, MAIL_SECTION_MIME);
	mail_section_spec_free(&s);
	CHECK_INT(mail_section_parse("header.fields (a b)", 19, &s), 0);
	CHECK_INT(s.field_count, 2);
	mail_section_spec_free(&s);
	CHECK_INT(mail_section_parse("MIME", 4, &s), -1);
	CHECK_INT(mail_section_parse("0.TEXT", 6, &s), -1);
	CHECK_INT(mail_section_parse("1.", 2, &s), -1);
	CHECK_INT(mail_section_parse("HEADER.FIELDS ()", 16, &s), -1);
	CHECK_INT(mail_section_parse("HEADER.FIELDS (a", 16, &s), -1);
	CHECK_INT(mail_section_parse("TEXTX", 5, &s), -1);
	CHECK_INT(mail_section_parse("1TEXT", 5, &s), -1);
}

static void test_base_subject(void)
{
	static const char *const cases[][2] = {
		{"Re: Re: hello", "hello"},
		{"re: [list] Fwd: hello (fwd)", "hello"},
		{"[fwd: hello]", "hello"},
		{"[list]", "[list]"},
		{"  spaced \t out  ", "spaced out"},
		{"Re[2]: x", "x"},
		{"Fw: [a] Re: y (fwd) (fwd)", "y"},
		{"Re [a][b]: z", "Re [a][b]: z"},   /* one blob only */
		{"", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		buf_init(&b, 0);
		mail_base_subject(&b, cases[i][0], strlen(cases[i][0]));
		buf_append(&b, "", 0);
		CHECK_STR(b.data, cases[i][1]);
		buf_free(&b);
	}
}

static void test_dates(void)
{
	time_t t;
	int tz;
	CHECK(mail_date_parse("Fri, 21 Nov 1997 09:55:06 -0600", 31, &t, &tz));
	CHECK_INT(t, 880127706);
	CHECK_INT(tz, -360);
	CHECK(mail_date_parse("21 Nov 97 09:55 EST (comment)", 29, &t, &tz));
	CHECK_INT(t, 880124100);   /* 14:55 UTC */
	CHECK(mail_date_parse("Thu, 1 Jan 1970 00:00:00 GMT", 28, &t, &tz));
	CHECK_INT(t, 0);
	CHECK(!mail_date_parse("not a date", 10, &t, &tz));
	CHECK(!mail_date_parse("32 Jan 2000 00:00 +0000", 23, &t, &tz));
}

static void test_quoting(void)
{
	struct buf b;
	buf_init(&b, 0);
	mail_imap_nstring(&b, NULL, 0, false);
	buf_append_char(&b, ' ');
	mail_imap_string(&b, "a\"b", 3, false);
	buf_append_char(&b, ' ');
	mail_imap_string(&b, "caf\xc3\xa9", 5, false);
	buf_append_char(&b, ' ');
	mail_imap_string(&b, "caf\xc3\xa9", 5, true);
	buf_append_char(&b, ' ');
	mail_imap_string(&b, "\"\"\"\"\"", 5, false);
	CHECK_MEM(b.data, b.len, "NIL \"a\\\"b\" {5}\r\ncaf\xc3\xa9 \"caf\xc3\xa9\" {5}\r\n\"\"\"\"\"",
		  strlen("NIL \"a\\\"b\" {5}\r\ncaf\xc3\xa9 \"caf\xc3\xa9\" {5}\r\n\"\"\"\"\""));
	buf_reset(&b);
	mail_imap_string(&b, "a\0b", 3, false);
	CHECK_MEM(b.data, b.len, "{3}\r\na\x80" "b", 8);
	buf_free(&b);
}

/* LF and CRLF forms give the same structure; sizes count CRLF. */
static void test_lf_and_limits(void)
{
	const char *lf = "From: a@b.c\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n"
			 "\n--x\nContent-Type: text/plain\n\nhello\n--x--\n";
	size_t len;
	char *m = crlf(lf, &len);
	struct mail_result a, b;
	mail_analyze(lf, strlen(lf), NULL, &a);
	mail_analyze(m, len, NULL, &b);
	CHECK_STR(a.bodystructure, b.bodystructure);
	mail_result_free(&a);
	mail_result_free(&b);
	free(m);

	/* 300 nested multiparts: past the depth limit the rest is text */
	struct buf deep;
	buf_init(&deep, 0);
	buf_append_str(&deep, "MIME-Version: 1.0\r\n");
	for (int i = 0; i < 300; i++)
		buf_printf(&deep, "Content-Type: multipart/mixed; boundary=\"n%03d\"\r\n\r\n--n%03d\r\n", i, i);
	buf_append_str(&deep, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	struct mail_limits lim;
	mail_limits_default(&lim);
	lim.max_depth = 10;
	struct mail_analyze_options opt = {&lim, NULL, NULL, true};
	mail_analyze(deep.data, deep.len, &opt, &a);
	CHECK(a.part_count <= 12);
	mail_result_free(&a);
	mail_analyze(deep.data, deep.len, NULL, &a);   /* default limits */
	CHECK(a.part_count > 0);
	mail_result_free(&a);
	buf_free(&deep);

	/* many parts: the part limit holds */
	struct buf many;
	buf_init(&many, 0);
	buf_append_str(&many, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < 500; i++)
		buf_append_str(&many, "--b\r\n\r\nx\r\n");
	lim.max_depth = 64;
	lim.max_parts = 100;
	mail_analyze(many.data, many.len, &opt, &a);
	CHECK_INT(a.part_count, 100);
	mail_result_free(&a);
	buf_free(&many);

	/* an unterminated comment in Content-Transfer-Encoding (fuzzer) */
	const char *cte = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64 (x\r\n\r\nQQ==\r\n";
	mail_analyze(cte, strlen(cte), NULL, &a);
	CHECK(strstr(a.bodystructure, "\"7bit\"") != NULL);
	mail_result_free(&a);

	/* NULs and empty input */
	mail_analyze("", 0, NULL, &a);
	CHECK_STR(a.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	mail_result_free(&a);
	mail_analyze("Subject: a\0b\r\n\r\nx\0y", 19, NULL, &a);
	CHECK(a.has_nul);
	mail_result_free(&a);
}

static void test_charsets(void)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(mail_charset_to_utf8(&b, "koi8-r", "\xd4\xc5\xcb\xd3\xd4", 5));
	CHECK_MEM(b.data, b.len, "текст", 10);
	buf_reset(&b);
	/* "utf-8" that is Latin-1: repaired, reported */
	CHECK(!mail_charset_to_utf8(&b, "utf-8", "caf\xe9", 4));
	CHECK_MEM(b.data, b.len, "café", 5);
	buf_reset(&b);
	CHECK(!mail_charset_to_utf8(&b, "no-such-charset", "\x93x\x94", 3));
	CHECK_MEM(b.data, b.len, "\xe2\x80\x9cx\xe2\x80\x9d", 7);
	buf_reset(&b);
	CHECK(mail_charset_to_utf8(&b, "iso-2022-jp", "\x1b$BF|K\\8l\x1b(B", 12));
	CHECK_MEM(b.data, b.len, "日本語", 9);
	buf_reset(&b);
	/* iconv writes a 6-byte "UTF-8" for UCS-4 past U+10FFFF (fuzzer) */
	mail_charset_to_utf8(&b, "UCS-4BE", "\x7f\xff\xff\xff\x00\x00\x00A", 8);
	CHECK(b.len > 0 && mail_utf8_valid(b.data, b.len));
	buf_free(&b);
	/* a conversion that writes nothing into a buffer that never held
	 * anything (data NULL): fuzz-mail-2047, UBSan's null + 0 */
	buf_init(&b, 0);
	mail_charset_to_utf8(&b, "iso-2022-jp", "\x1b$B", 3);
	CHECK(b.len == 0);
	buf_free(&b);
}

static const struct test_case cases[] = {
	{"2047", test_2047},
	{"2231", test_2231},
	{"addresses", test_addresses},
	{"shapes", test_shapes},
	{"search_text", test_search_text},
	{"text_callback", test_text_callback},
	{"sections", test_sections},
	{"section_parse", test_section_parse},
	{"base_subject", test_base_subject},
	{"dates", test_dates},
	{"quoting", test_quoting},
	{"lf_and_limits", test_lf_and_limits},
	{"charsets", test_charsets},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
