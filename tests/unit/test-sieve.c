/*
 * Unit tests for src/sieve: the compiler's errors (line and column for
 * every kind of bad script, the limits), each extension with its RFC's
 * examples, the sequence rules of several scripts, the step budget on
 * hostile patterns, the compiled image, vacation checks and replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"
#include "test.h"

static const char MSG[] =
	"Return-Path: <ken@example.org>\r\n"
	"Received: from a.example.org by b.example.com; "
	"Tue, 1 Apr 1997 09:06:31 -0800\r\n"
	"Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)\r\n"
	"From: coyote@desert.example.org\r\n"
	"Sender: \"Ken\" <ken+sieve@example.org>\r\n"
	"To: roadrunner@acme.example.com, bob@example.com\r\n"
	"Cc: \"Alice\" <alice+lists@example.com>\r\n"
	"Subject: I have a present for you\r\n"
	"X-Caffeine: C8H10N4O2\r\n"
	"X-Test: one\r\n"
	"X-Test: two\r\n"
	"X-Test: three\r\n"
	"Message-ID: <1234@local.example.org>\r\n"
	"\r\n"
	"Look, I'm sorry about the whole anvil thing, and I really\r\n"
	"didn't mean to try and drop it on you from the top of the\r\n"
	"cliff.  I want to try to make it up to you.  I've got some\r\n"
	"great birdseed over here at my place--top of the line\r\n"
	"stuff--and if you come by, I'll have it all wrapped\r\n"
	"up for you.  I'm really sorry for all the problems I've\r\n"
	"caused for you over the years, but I know we can work\r\n"
	"this out.\r\n";

static const char MIME_MSG[] =
	"From: a@example.com\r\n"
	"To: bob@example.com\r\n"
	"Subject: =?UTF-8?B?w6ljb2xl?= report\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	"\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Caf=E9 au lait, MAKE MONEY FAST\r\n"
	"--b1\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>html <b>secret</b> part</p>\r\n"
	"--b1\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"YmluYXJ5IHN0dWZm\r\n"
	"--b1--\r\n";

/* ---- helpers -------------------------------------------------------- */

static struct sieve_script *compile(const char *src)
{
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(src, strlen(src), "t", NULL, &e);
	if (s == NULL) {
		struct buf b;
		buf_init(&b, 0);
		sieve_errors_format(&e, "  ", &b);
		fprintf(stderr, "compile failed:\n%s", b.data);
		buf_free(&b);
	}
	sieve_errors_free(&e);
	return s;
}

/* The first error as "L:C: message", or "" when it compiles. */
static char err_text[400];
static const char *first_error(const char *src, size_t len,
			       const struct sieve_limits *lim)
{
	struct sieve_errors e;
	struct sieve_script *s = sieve_compile(src, len, "t", lim, &e);
	err_text[0] = '\0';
	if (s == NULL && e.count > 0)
		snprintf(err_text, sizeof(err_text), "%u:%u: %s", e.items[0].line,
			 e.items[0].column, e.items[0].message);
	sieve_script_free(&s);
	sieve_errors_free(&e);
	return err_text;
}
#define ERR(src) first_error((src), strlen(src), NULL)

static bool dup_answer;
static bool cb_exists(void *ctx, const char *m)
{
	(void)ctx;
	return strcmp(m, "INBOX") == 0 || strcmp(m, "Lists") == 0;
}
static bool cb_dup(void *ctx, const char *id)
{
	(void)ctx;
	(void)id;
	return dup_answer;
}
static struct sieve_script *inc_a, *inc_b, *inc_loop;
static const struct sieve_script *cb_include(void *ctx, bool global,
					     const char *name)
{
	(void)ctx;
	(void)global;
	if (strcmp(name, "a") == 0)
		return inc_a;
	if (strcmp(name, "b") == 0)
		return inc_b;
	if (strcmp(name, "loop") == 0)
		return inc_loop;
	return NULL;
}
static const struct sieve_callbacks CB = {cb_exists, cb_dup, cb_include};

static struct sieve_input input(const char *msg)
{
	struct sieve_input in = {
		.env_from = "coyote@desert.example.org",
		.env_to = "bob+lists@example.com",
		.data = msg, .len = strlen(msg),
		.domain = "example.com", .host = "mx.example.com",
		.remote_ip = "192.0.2.1", .now = 1700000000, .tz_offset = 60,
		.cb = &CB,
	};
	return in;
}

static char out_text[8192];
/* Runs scripts (NULL-terminated sources) and returns the actions as
 * sieve_result_format prints them. */
static const char *runv(const struct sieve_input *in,
			const struct sieve_limits *lim, const char *const *srcs)
{
	struct sieve_script *s[8] = {0};
	size_t n = 0;
	for (; srcs[n]; n++) {
		s[n] = compile(srcs[n]);
		if (s[n] == NULL) {
			for (size_t i = 0; i < n; i++)
				sieve_script_free(&s[i]);
			return "COMPILE ERROR";
		}
	}
	struct sieve_result r;
	sieve_execute((const struct sieve_script *const *)s, n, in, lim, &r);
	struct buf b;
	buf_init(&b, 0);
	sieve_result_format(&r, &b);
	snprintf(out_text, sizeof(out_text), "%s", b.data ? b.data : "");
	buf_free(&b);
	sieve_result_free(&r);
	for (size_t i = 0; i < n; i++)
		sieve_script_free(&s[i]);
	return out_text;
}

static const char *run_msg(const char *src, const char *msg)
{
	struct sieve_input in = input(msg);
	const char *srcs[] = {src, NULL};
	return runv(&in, NULL, srcs);
}
#define RUN(src) run_msg((src), MSG)

/* ---- compile errors ------------------------------------------------- */

static void test_errors(void)
{
	CHECK_STR(ERR("keep"), "1:5: missing ';' after the command");
	CHECK_STR(ERR("keep;\nif true { stop;\n"),
		  "3:1: missing '}' at the end of the script");
	CHECK_STR(ERR("keep;\n  frobnicate;"), "2:3: unknown command 'frobnicate'");
	CHECK_STR(ERR("fileinto \"x\";"),
		  "1:1: fileinto requires the \"fileinto\" extension "
		  "(require \"fileinto\";)");
	CHECK_STR(ERR("require \"nope\";"), "1:1: unknown extension \"nope\"");
	CHECK_STR(ERR("if header :foo \"a\" \"b\" { stop; }"),
		  "1:11: unknown tag ':foo' for header");
	CHECK_STR(ERR("redirect 42;"),
		  "1:10: redirect: argument 1 must be a string");
	CHECK_STR(ERR("keep;\nredirect \"a@b.c;\n"), "2:10: unterminated string");
	CHECK_STR(ERR("require \"vacation\";\nvacation text:\nhello\n"),
		  "2:10: unterminated text: block (no line with a single '.')");
	CHECK_STR(ERR("keep; /* open"), "1:7: unterminated comment");
	CHECK_STR(ERR("if true keep;"), "1:9: unknown test 'keep'");
	CHECK_STR(ERR("elsif true { stop; }"),
		  "1:1: elsif without a preceding if");
	CHECK_STR(ERR("keep;\nrequire \"fileinto\";"),
		  "2:1: require must come before any other command");
	CHECK_STR(ERR("if size 100 { stop; }"), "1:4: size needs :over or :under");
	CHECK_STR(ERR("if header :comparator \"i;foo\" \"a\" \"b\" { stop; }"),
		  "1:23: unknown comparator \"i;foo\"");
	CHECK_STR(ERR("require \"comparator-i;ascii-numeric\";\n"
		      "if header :contains :comparator \"i;ascii-numeric\" "
		      "\"a\" \"1\" { stop; }"),
		  "2:4: comparator i;ascii-numeric cannot do :contains or "
		  ":matches");
	CHECK_STR(ERR("if header :is :contains \"a\" \"b\" { stop; }"),
		  "1:15: only one match type tag may be given");
	CHECK_STR(ERR("keep \"x\";"), "1:1: keep: wrong number of arguments "
		  "(1 given)");
	CHECK_STR(ERR("if anyof true { stop; }"),
		  "1:4: anyof needs a test list in ( )");
	CHECK_STR(ERR("stop { keep; }"), "1:1: stop takes no block");
	CHECK_STR(ERR("keep;\n\"str\";"), "2:1: expected a command name");
	CHECK_STR(ERR("require [\"a\" \"b\"];"),
		  "1:14: expected ',' or ']' in the string list");
	CHECK_STR(ERR("if header \"Subject\" \"\xff\" { stop; }"),
		  "1:21: string is not valid UTF-8");
	CHECK_STR(ERR("require \"editheader\";\naddheader \"Received\" \"x\";"),
		  "2:1: addheader: the Received field cannot be changed "
		  "(RFC 5293 6)");
	CHECK_STR(ERR("require \"variables\";\nset \"1a\" \"x\";"),
		  "2:1: set: \"1a\" is not a valid variable name");
	CHECK_STR(ERR("require \"date\";\nif date \"date\" \"fortnight\" \"x\" "
		      "{ stop; }"), "2:4: unknown date part \"fortnight\"");
	CHECK_STR(ERR("if size :over 99999999999999999999 { stop; }"),
		  "1:15: number too large");
	CHECK_STR(ERR("redirect \"not an address\";"),
		  "1:1: redirect: \"not an address\" is not a valid address");
	CHECK_STR(ERR("if true { keep; } else { stop; } else { stop; }"),
		  "1:34: else without a preceding if");
	/* several errors are all reported */
	struct sieve_errors e;
	const char *two = "frob;\nfileinto \"x\";\n";
	CHECK(sieve_compile(two, strlen(two), "t", NULL, &e) == NULL);
	CHECK_INT(e.count, 2);
	struct buf b;
	buf_init(&b, 0);
	sieve_errors_format(&e, "", &b);
	CHECK_STR(b.data, "line 1, column 1: unknown command 'frob'\n"
		  "line 2, column 1: fileinto requires the \"fileinto\" "
		  "extension (require \"fileinto\";)\n");
	buf_free(&b);
	sieve_errors_free(&e);
}

static void test_limits(void)
{
	/* nesting 100,000 deep: an error at max_nesting, no deep stack */
	size_t depth = 100000;
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < depth; i++)
		buf_append_str(&b, "if true {");
	for (size_t i = 0; i < depth; i++)
		buf_append_str(&b, "}");
	CHECK_STR(first_error(b.data, b.len, NULL),
		  "1:292: nesting deeper than 32 (max_nesting)");
	buf_reset(&b);
	buf_append_str(&b, "if ");
	for (size_t i = 0; i < depth; i++)
		buf_append_str(&b, "not ");
	buf_append_str(&b, "true { stop; }");
	CHECK(strstr(first_error(b.data, b.len, NULL), "max_nesting") != NULL);
	/* 1 MiB and one byte more */
	buf_reset(&b);
	buf_append_str(&b, "keep;\n");
	while (b.len < 1024 * 1024)
		buf_append_char(&b, '#');
	b.len = 1024 * 1024;
	CHECK_STR(first_error(b.data, b.len, NULL), "");
	buf_append_char(&b, '#');
	CHECK_STR(first_error(b.data, b.len, NULL),
		  "1:1: script is 1048577 bytes, over the limit of 1048576 "
		  "(max_script_size)");
	/* string lists of 100,000 items, and one more */
	buf_reset(&b);
	buf_append_str(&b, "if header :is \"x\" [");
	for (size_t i = 0; i < 100000; i++)
		buf_append_str(&b, i ? ",\"k\"" : "\"k\"");
	buf_append_str(&b, "] { stop; }");
	CHECK_STR(first_error(b.data, b.len, NULL), "");
	b.len -= strlen("] { stop; }");
	buf_append_str(&b, ",\"k\"] { stop; }");
	CHECK_STR(first_error(b.data, b.len, NULL),
		  "1:19: string list has more than 100000 items "
		  "(max_list_items)");
	buf_free(&b);
}

/* ---- RFC 5228 ------------------------------------------------------- */

static void test_core(void)
{
	CHECK_STR(RUN("keep;"), "keep\n");
	CHECK_STR(RUN(""), "keep\n");
	CHECK_STR(RUN("discard;"), "discard\n");
	CHECK_STR(RUN("if header :contains \"Subject\" \"PRESENT\" { discard; }"),
		  "discard\n");
	CHECK_STR(RUN("if header :is \"subject\" \"I have a present\" "
		      "{ discard; }"), "keep\n");
	CHECK_STR(RUN("if address :domain :is \"from\" \"DESERT.example.org\" "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("if address :localpart :is [\"to\",\"cc\"] \"bob\" "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("if address :all :is \"sender\" \"ken+sieve@example.org\" "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("if size :over 100K { discard; }"), "keep\n");
	CHECK_STR(RUN("if size :under 1M { discard; }"), "discard\n");
	CHECK_STR(RUN("if exists [\"From\",\"Date\"] { discard; }"),
		  "discard\n");
	CHECK_STR(RUN("if exists [\"From\",\"X-Nope\"] { discard; }"), "keep\n");
	CHECK_STR(RUN("if not exists \"X-Nope\" { discard; }"), "discard\n");
	CHECK_STR(RUN("if allof (true, false) { discard; }"), "keep\n");
	CHECK_STR(RUN("if anyof (false, header :matches \"x-caffeine\" "
		      "\"C*H10*\") { discard; }"), "discard\n");
	CHECK_STR(RUN("if false { discard; } elsif true { redirect "
		      "\"x@example.net\"; } else { discard; }"),
		  "redirect \"x@example.net\"\n");
	CHECK_STR(RUN("redirect \"a@example.net\"; redirect \"A@example.net\";"),
		  "redirect \"a@example.net\"\n");
	CHECK_STR(RUN("keep; stop; discard;"), "keep\n");
	CHECK_STR(RUN("if header :matches \"Subject\" \"I ?ave*\" { discard; }"),
		  "discard\n");
	CHECK_STR(RUN("if header :matches \"Subject\" \"*\\\\?*\" { discard; }"),
		  "keep\n");
	CHECK_STR(RUN("if header :is :comparator \"i;octet\" \"subject\" "
		      "\"i have a present for you\" { discard; }"), "keep\n");
	/* RFC 5228 2.7.2: encoded words are decoded */
	CHECK_STR(run_msg("if header :contains \"subject\" \"\xc3\xa9" "cole\" "
			  "{ discard; }", MIME_MSG), "discard\n");
	/* the example of RFC 5228 section 9 */
	CHECK_STR(RUN(
		"require \"fileinto\";\n"
		"if header :is \"Sender\" \"owner-ietf-mta-filters@imc.org\"\n"
		"        { fileinto \"filter\"; }\n"
		"elsif address :DOMAIN :is [\"From\", \"To\"] \"example.com\"\n"
		"        { keep; }\n"
		"elsif anyof (NOT address :all :contains\n"
		"               [\"To\", \"Cc\", \"Bcc\"] \"me@example.com\",\n"
		"             header :matches \"subject\"\n"
		"               [\"*make*money*fast*\", \"*university*dipl*mas*\"])\n"
		"        { fileinto \"spam\"; }\n"
		"else { fileinto \"personal\"; }\n"), "keep\n");
}

static void test_encoded(void)
{
	CHECK_STR(RUN("require \"encoded-character\";\n"
		      "if header :contains \"subject\" \"${hex:70 72}esent\" "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("require [\"encoded-character\", \"fileinto\"];\n"
		      "fileinto \"${unicode:263a}${hex:}\";"),
		  "fileinto \"\xe2\x98\xba${hex:}\"\n");
	CHECK_STR(ERR("require \"encoded-character\";\n"
		      "keep; if header :is \"a\" \"${unicode:D800}\" { stop; }"),
		  "2:25: encoded-character: a unicode value that is no "
		  "character");
	/* without the extension it is text */
	CHECK_STR(RUN("require \"fileinto\"; fileinto \"${hex:41}\";"),
		  "fileinto \"${hex:41}\"\n");
}

static void test_envelope_subaddress(void)
{
	const char *base = "require [\"envelope\", \"subaddress\", \"fileinto\"];\n";
	char src[512];
	snprintf(src, sizeof(src), "%sif envelope :detail \"to\" \"lists\" "
		 "{ fileinto \"Lists\"; }", base);
	CHECK_STR(RUN(src), "fileinto \"Lists\"\n");
	snprintf(src, sizeof(src), "%sif envelope :user \"to\" \"bob\" "
		 "{ discard; }", base);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif envelope :domain \"from\" "
		 "\"desert.example.org\" { discard; }", base);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif address :detail \"cc\" \"lists\" "
		 "{ discard; }", base);
	CHECK_STR(RUN(src), "discard\n");
	/* no separator: :detail has no value (RFC 5233 4) */
	snprintf(src, sizeof(src), "%sif address :detail :matches \"from\" "
		 "\"*\" { discard; }", base);
	CHECK_STR(RUN(src), "keep\n");
	/* null reverse-path */
	struct sieve_input in = input(MSG);
	in.env_from = "";
	const char *s1[] = {"require \"envelope\"; if envelope :is \"from\" \"\" "
			    "{ discard; }", NULL};
	CHECK_STR(runv(&in, NULL, s1), "discard\n");
	CHECK_STR(ERR("if envelope \"to\" \"x\" { stop; }"),
		  "1:4: envelope requires the \"envelope\" extension "
		  "(require \"envelope\";)");
}

static void test_fileinto_flags_copy(void)
{
	CHECK_STR(RUN("require \"fileinto\"; fileinto \"A\"; fileinto \"A\";"),
		  "fileinto \"A\"\n");
	CHECK_STR(RUN("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\";"),
		  "fileinto \"A\" :copy\nkeep\n");
	CHECK_STR(RUN("require [\"fileinto\", \"mailbox\"]; "
		      "fileinto :create \"New\";"), "fileinto \"New\" :create\n");
	CHECK_STR(RUN("require \"mailbox\"; if mailboxexists \"Lists\" "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("require \"mailbox\"; if mailboxexists [\"Lists\", \"No\"] "
		      "{ discard; }"), "keep\n");
	/* RFC 5232 examples */
	CHECK_STR(RUN("require [\"imap4flags\", \"fileinto\"];\n"
		      "addflag \"\\\\Seen\"; addflag [\"$Work\", \"\\\\seen\"];\n"
		      "fileinto \"A\"; removeflag \"\\\\SEEN\";\n"
		      "fileinto :flags \"\\\\Flagged x\" \"B\";"),
		  "fileinto \"A\" :flags \"\\Seen $Work\"\n"
		  "fileinto \"B\" :flags \"\\Flagged x\"\n");
	CHECK_STR(RUN("require \"imap4flags\"; setflag \"\\\\Deleted\"; "
		      "if hasflag :is \"\\\\deleted\" { addflag \"b\"; } keep;"),
		  "keep :flags \"\\Deleted b\"\n");
	CHECK_STR(RUN("require \"imap4flags\"; addflag \"a\";"),
		  "keep :flags \"a\"\n");
	CHECK_STR(RUN("require [\"imap4flags\", \"variables\"];\n"
		      "addflag \"myvar\" [\"a\", \"b\"]; removeflag \"myvar\" \"a\";\n"
		      "if hasflag :count \"eq\" :comparator \"i;ascii-numeric\" "
		      "\"myvar\" \"1\" { discard; }"), "COMPILE ERROR");
	CHECK_STR(RUN("require [\"imap4flags\", \"variables\", \"relational\", "
		      "\"comparator-i;ascii-numeric\"];\n"
		      "addflag \"myvar\" [\"a\", \"b\"]; removeflag \"myvar\" \"a\";\n"
		      "if hasflag :count \"eq\" :comparator \"i;ascii-numeric\" "
		      "\"myvar\" \"1\" { discard; }"), "discard\n");
}

static void test_variables(void)
{
	/* RFC 5229 examples */
	CHECK_STR(RUN("require [\"variables\", \"fileinto\"];\n"
		      "if header :matches \"Subject\" \"I * a *\" {\n"
		      "  fileinto \"${1}-${2}-${0}\"; }"),
		  "fileinto \"have-present for you-I have a present for you\"\n");
	CHECK_STR(RUN("require [\"variables\", \"fileinto\"];\n"
		      "set \"a\" \"juMBlEd lETteRS\";\n"
		      "set :length \"b\" \"${a}\";\n"
		      "set :lower \"c\" \"${a}\";\n"
		      "set :upperfirst \"d\" \"${c}\";\n"
		      "set :upperfirst :lower \"e\" \"${a}\";\n"
		      "set :quotewildcard \"f\" \"a*b?c\\\\\";\n"
		      "fileinto \"${b}|${c}|${d}|${e}|${f}|${unknown}|${x.y}\";"),
		  "fileinto \"15|jumbled letters|Jumbled letters|Jumbled "
		  "letters|a\\*b\\?c\\\\||${x.y}\"\n");
	CHECK_STR(RUN("require \"variables\";\nset \"x\" \"abc\";\n"
		      "if string :is \"${X}\" \"abc\" { discard; }"), "discard\n");
	CHECK_STR(RUN("require [\"variables\", \"relational\"];\n"
		      "if string :count \"eq\" [\"a\", \"\", \"b\"] \"2\" "
		      "{ discard; }"), "discard\n");
	/* matches: earlier wildcards take as little as they can */
	CHECK_STR(RUN("require [\"variables\", \"fileinto\"];\n"
		      "if string :matches \"a.b.c\" \"*.*\" "
		      "{ fileinto \"${1}|${2}\"; }"), "fileinto \"a|b.c\"\n");
	/* doubling a variable towards gigabytes stops at max_variable_size */
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "require [\"variables\", \"relational\"];\n"
		       "set \"v\" \"0123456789\";\n");
	for (int i = 0; i < 40; i++)
		buf_append_str(&b, "set \"v\" \"${v}${v}\";\n");
	buf_append_str(&b, "set :length \"n\" \"${v}\";\n"
		       "if string :is \"${n}\" \"4096\" { discard; }");
	CHECK_STR(RUN(b.data), "discard\n");
	buf_free(&b);
}

static void test_relational_numeric(void)
{
	const char *r = "require [\"relational\", \"comparator-i;ascii-numeric\"];\n";
	char src[600];
	snprintf(src, sizeof(src), "%sif header :count \"ge\" :comparator "
		 "\"i;ascii-numeric\" \"x-test\" \"3\" { discard; }", r);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif address :count \"eq\" :comparator "
		 "\"i;ascii-numeric\" [\"to\", \"cc\"] \"3\" { discard; }", r);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif header :value \"lt\" \"x-test\" \"p\" "
		 "{ discard; }", r);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif header :value \"gt\" :comparator "
		 "\"i;ascii-numeric\" \"x-caffeine\" \"0\" { discard; }", r);
	/* "C8H..." starts with no digit: positive infinity */
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif string :is :comparator "
		 "\"i;ascii-numeric\" \"007\" \"7\" { discard; }", r);
	CHECK_STR(ERR(src), "2:4: string requires the \"variables\" extension "
		  "(require \"variables\";)");
	CHECK_STR(ERR("if header :count \"eq\" \"a\" \"1\" { stop; }"),
		  "1:11: tag ':count' requires the \"relational\" extension "
		  "(require \"relational\";)");
	CHECK_STR(ERR("require \"relational\"; if header :value \"xx\" \"a\" "
		      "\"1\" { stop; }"),
		  "1:40: relational match needs one of \"gt\", \"ge\", \"lt\", "
		  "\"le\", \"eq\", \"ne\"");
}

static void test_body(void)
{
	const char *b = "require \"body\";\n";
	char src[400];
	snprintf(src, sizeof(src), "%sif body :contains \"birdseed\" "
		 "{ discard; }", b);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif body :raw :contains \"=E9\" "
		 "{ discard; }", b);
	CHECK_STR(run_msg(src, MIME_MSG), "discard\n");
	snprintf(src, sizeof(src), "%sif body :text :contains \"caf\xc3\xa9\" "
		 "{ discard; }", b);
	CHECK_STR(run_msg(src, MIME_MSG), "discard\n");
	snprintf(src, sizeof(src), "%sif body :content \"text/plain\" "
		 ":contains \"secret\" { discard; }", b);
	CHECK_STR(run_msg(src, MIME_MSG), "keep\n");
	snprintf(src, sizeof(src), "%sif body :content \"text\" :contains "
		 "\"secret\" { discard; }", b);
	CHECK_STR(run_msg(src, MIME_MSG), "discard\n");
	snprintf(src, sizeof(src), "%sif body :content \"application\" "
		 ":contains \"binary stuff\" { discard; }", b);
	CHECK_STR(run_msg(src, MIME_MSG), "discard\n");
	/* a long body (the skip search under i;ascii-casemap): a needle
	 * at the very end, mixed case, one near-miss, and none */
	struct buf big;
	buf_init(&big, 0);
	buf_printf(&big, "From: a@b.org\r\nSubject: s\r\n\r\n");
	for (int i = 0; i < 300; i++)
		buf_printf(&big, "line %d of filler, word%d.\r\n", i, i);
	buf_printf(&big, "The END is NeAr-ZeBrA\r\n");
	const char *keys[][2] = {
		{"near-zebra", "discard\n"}, {"NEAR-ZEBR", "discard\n"},
		{"word299.", "discard\n"}, {"near-zebrb", "keep\n"},
		{"zebra-near", "keep\n"}, {"e", "discard\n"},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		snprintf(src, sizeof(src), "%sif body :text :contains \"%s\" "
			 "{ discard; }", b, keys[i][0]);
		CHECK_STR(run_msg(src, big.data), keys[i][1]);
		snprintf(src, sizeof(src), "%sif body :raw :comparator "
			 "\"i;octet\" :contains \"%s\" { discard; }", b,
			 keys[i][0]);
		CHECK_STR(run_msg(src, big.data),
			  i == 0 || i == 1 ? "keep\n" : keys[i][1]);
	}
	buf_free(&big);
}

static void test_date_index(void)
{
	const char *d = "require [\"date\", \"index\", \"relational\"];\n";
	char src[500];
	snprintf(src, sizeof(src), "%sif date :zone \"+0000\" \"date\" \"hour\" "
		 "\"17\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif date :originalzone \"date\" \"iso8601\" "
		 "\"1997-04-01T09:06:31-08:00\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif date \"date\" \"zone\" \"+0100\" "
		 "{ discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif date :zone \"-0800\" \"received\" "
		 "\"weekday\" \"2\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	/* 1700000000 = 2023-11-14 22:13:20 UTC */
	snprintf(src, sizeof(src), "%sif currentdate :zone \"+0000\" \"date\" "
		 "\"2023-11-14\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif currentdate \"julian\" \"60262\" "
		 "{ discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif currentdate :value \"ge\" \"std11\" "
		 "\"Tue, 14 Nov 2023 23:13:20 +0100\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif header :index 2 \"x-test\" \"two\" "
		 "{ discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif header :index 1 :last \"x-test\" "
		 "\"three\" { discard; }", d);
	CHECK_STR(RUN(src), "discard\n");
	snprintf(src, sizeof(src), "%sif header :index 1 \"x-test\" \"two\" "
		 "{ discard; }", d);
	CHECK_STR(RUN(src), "keep\n");
	snprintf(src, sizeof(src), "%sif address :index 2 :domain \"to\" "
		 "\"example.com\" { discard; }", d);
	CHECK_STR(RUN(src), "keep\n");
}

static void test_editheader(void)
{
	struct sieve_input in = input(MSG);
	const char *s1[] = {"require [\"editheader\", \"index\"];\n"
			    "addheader \"X-Sieve\" \"yes\";\n"
			    "addheader :last \"X-Utf\" \"caf\xc3\xa9\";\n"
			    "deleteheader :index 1 :last \"X-Test\";\n"
			    "deleteheader \"X-Test\" \"one\";\n"
			    "if header :is \"X-Sieve\" \"yes\" { keep; }", NULL};
	struct sieve_script *s = compile(s1[0]);
	struct sieve_result r;
	CHECK_INT(sieve_execute((const struct sieve_script *const *)&s, 1, &in,
				NULL, &r), 0);
	CHECK(r.header != NULL);
	if (r.header) {
		CHECK(strncmp(r.header, "X-Sieve: yes\r\nReturn-Path:", 26) == 0);
		CHECK(strstr(r.header, "X-Test: two\r\n") != NULL);
		CHECK(strstr(r.header, "X-Test: one") == NULL);
		CHECK(strstr(r.header, "X-Test: three") == NULL);
		CHECK(strstr(r.header, "Received: from") != NULL);
		CHECK(strstr(r.header, "X-Utf: =?UTF-8?B?Y2Fmw6k=?=\r\n\r\n") != NULL);
	}
	CHECK_INT(r.count, 1);
	sieve_result_free(&r);
	sieve_script_free(&s);
	(void)s1;
	CHECK_STR(ERR("require \"editheader\"; deleteheader \"auto-submitted\";"),
		  "1:23: deleteheader: the auto-submitted field cannot be "
		  "changed (RFC 5293 6)");
}

static void test_duplicate(void)
{
	dup_answer = false;
	CHECK_STR(RUN("require \"duplicate\"; if duplicate { discard; }"),
		  "duplicate record dup-0bb09261f9e21d8c6f5806f01e56f1f5 "
		  ":seconds 43200\nkeep\n");
	dup_answer = true;
	CHECK_STR(RUN("require \"duplicate\"; if duplicate :seconds 60 "
		      "{ discard; }"), "discard\n");
	CHECK_STR(RUN("require \"duplicate\"; if duplicate :last :seconds 60 "
		      ":header \"subject\" { discard; }"),
		  "duplicate record dup-489c72892bcd81bc9d6859b67610838b "
		  ":seconds 60\ndiscard\n");
	dup_answer = false;
}

static void test_spam_env(void)
{
	struct sieve_input in = input(MSG);
	const char *s0[] = {"require [\"spamtest\", \"relational\", "
			    "\"comparator-i;ascii-numeric\"];\n"
			    "if spamtest :is \"0\" { discard; }", NULL};
	CHECK_STR(runv(&in, NULL, s0), "discard\n");
	in.spam_scanned = true;
	in.spam_score = 12;
	in.spam_threshold = 6;
	const char *s1[] = {"require [\"spamtest\", \"relational\", "
			    "\"comparator-i;ascii-numeric\"];\n"
			    "if spamtest :value \"ge\" :comparator "
			    "\"i;ascii-numeric\" \"10\" { discard; }", NULL};
	CHECK_STR(runv(&in, NULL, s1), "discard\n");
	in.spam_score = 3;
	const char *s2[] = {"require [\"spamtestplus\", \"relational\", "
			    "\"comparator-i;ascii-numeric\"];\n"
			    "if spamtest :percent :value \"eq\" :comparator "
			    "\"i;ascii-numeric\" \"50\" { discard; }", NULL};
	CHECK_STR(runv(&in, NULL, s2), "discard\n");
	CHECK_STR(RUN("require \"virustest\"; if virustest :is \"0\" "
		      "{ discard; }"), "discard\n");
	/* the scanner's verdict (RFC 5235 3.2): 5 infected, 1 clean */
	const char *v5[] = {"require [\"virustest\", \"relational\", "
			    "\"comparator-i;ascii-numeric\", \"fileinto\"];\n"
			    "if virustest :value \"ge\" :comparator "
			    "\"i;ascii-numeric\" \"4\" { fileinto \"Virus\"; }\n"
			    "elsif virustest :value \"eq\" :comparator "
			    "\"i;ascii-numeric\" \"1\" { discard; }", NULL};
	in.virus_status = 5;
	CHECK_STR(runv(&in, NULL, v5), "fileinto \"Virus\"\n");
	in.virus_status = 1;
	CHECK_STR(runv(&in, NULL, v5), "discard\n");
	in.virus_status = 0;
	CHECK_STR(runv(&in, NULL, v5), "keep\n");
	CHECK_STR(RUN("require \"environment\"; if allof (environment "
		      ":is \"domain\" \"example.com\", environment :is "
		      "\"remote-ip\" \"192.0.2.1\", environment :is \"location\" "
		      "\"MDA\", environment :is \"phase\" \"during\") "
		      "{ discard; }"), "discard\n");
}

static void test_vacation_reject(void)
{
	CHECK_STR(RUN("require \"vacation\";\nvacation :days 3 :subject "
		      "\"Away\" :handle \"h1\" \"I am away\";"),
		  "vacation :handle \"h1\" :seconds 259200 \"I am away\"\n"
		  "keep\n");
	CHECK_STR(RUN("require \"vacation-seconds\";\nvacation :seconds 60 "
		      ":handle \"x\" \"brb\";"),
		  "vacation :handle \"x\" :seconds 60 \"brb\"\nkeep\n");
	CHECK_STR(ERR("require \"vacation\";\nvacation :seconds 60 \"brb\";"),
		  "2:10: tag ':seconds' requires the \"vacation-seconds\" "
		  "extension (require \"vacation-seconds\";)");
	CHECK_STR(ERR("require \"vacation-seconds\";\nvacation :days 1 "
		      ":seconds 60 \"brb\";"),
		  "2:18: :days and :seconds cannot both be given");
	CHECK_STR(RUN("require \"reject\"; reject \"go away\";"),
		  "reject \"go away\"\n");
	CHECK_STR(RUN("require \"ereject\"; ereject \"no\";"), "ereject \"no\"\n");
	CHECK_STR(RUN("require [\"reject\", \"fileinto\"]; fileinto \"a\"; "
		      "reject \"no\";"),
		  "error: script 1, line 0: reject cannot be combined with "
		  "keep, fileinto, redirect or vacation\n"
		  "keep (INBOX, as if no script had run)\n");
	CHECK_STR(RUN("require [\"reject\", \"ereject\"]; reject \"a\"; "
		      "ereject \"b\";"),
		  "error: script 1, line 1: only one reject or ereject may be "
		  "executed (RFC 5429 2.1)\nkeep (INBOX, as if no script had "
		  "run)\n");
}

static void test_include(void)
{
	inc_a = compile("require [\"include\", \"variables\", \"fileinto\"];\n"
			"global \"g\"; set \"g\" \"from-a\"; fileinto \"A\";");
	inc_b = compile("require \"include\"; include :once \"a\"; return; "
			"discard;");
	inc_loop = compile("require \"include\"; include \"loop\";");
	CHECK_STR(RUN("require [\"include\", \"variables\", \"fileinto\"];\n"
		      "global \"g\";\ninclude \"b\"; include :once \"a\";\n"
		      "fileinto \"${g}\";"),
		  "fileinto \"A\"\nfileinto \"from-a\"\n");
	CHECK_STR(RUN("require \"include\"; include :optional \"nope\"; keep;"),
		  "keep\n");
	CHECK_STR(RUN("require \"include\"; include \"nope\";"),
		  "error: script 1, line 1: include: there is no personal "
		  "script \"nope\"\nkeep (INBOX, as if no script had run)\n");
	CHECK_STR(RUN("require \"include\"; include \"loop\";"),
		  "error: script 1, line 1: include: \"t\" includes itself "
		  "(a loop)\nkeep (INBOX, as if no script had run)\n");
	sieve_script_free(&inc_a);
	sieve_script_free(&inc_b);
	sieve_script_free(&inc_loop);
}

/* Pigeonhole's sequence: before, personal, after. */
static void test_sequence(void)
{
	struct sieve_input in = input(MSG);
	const char *a[] = {"keep;", "require \"fileinto\"; fileinto \"F\";",
			   NULL};
	CHECK_STR(runv(&in, NULL, a), "fileinto \"F\"\n");
	const char *b[] = {"discard;", "require \"fileinto\"; fileinto \"F\";",
			   NULL};
	CHECK_STR(runv(&in, NULL, b), "discard\n");
	const char *c[] = {"require \"fileinto\"; fileinto \"B\"; keep;",
			   "", "require \"imap4flags\"; addflag \"x\";", NULL};
	CHECK_STR(runv(&in, NULL, c), "fileinto \"B\"\nkeep :flags \"x\"\n");
	const char *d[] = {"keep;", "frob;", NULL};
	CHECK_STR(runv(&in, NULL, d), "COMPILE ERROR");
	/* Pigeonhole's: the flags variable is the message's, a keep stays
	 * until a later script cancels it, keeps merge */
	const char *f[] = {"require \"imap4flags\"; addflag \"y\";",
			   "require \"fileinto\"; fileinto \"F\";", NULL};
	CHECK_STR(runv(&in, NULL, f), "fileinto \"F\" :flags \"y\"\n");
	const char *g[] = {"require \"imap4flags\"; keep :flags \"\\\\Seen\";",
			   "require \"imap4flags\"; addflag \"z\";", NULL};
	CHECK_STR(runv(&in, NULL, g), "keep :flags \"\\Seen z\"\n");
	const char *h[] = {"keep;", "discard;", NULL};
	CHECK_STR(runv(&in, NULL, h), "discard\n");
	const char *e[] = {NULL};
	CHECK_STR(runv(&in, NULL, e), "keep\n");
}

/* Hostile input: bounded by the step budget, linear matching. */
static void test_budget(void)
{
	size_t big = 1024 * 1024;
	char *msg = malloc(big + 100);
	strcpy(msg, "X-Big: ");
	size_t o = strlen(msg);
	memset(msg + o, 'a', big);
	strcpy(msg + o + big, "\r\n\r\nbody\r\n");
	struct sieve_input in = input(msg);
	const char *s[] = {"if header :matches \"x-big\" \"*a*a*a*a*b\" "
			   "{ discard; }", NULL};
	CHECK_STR(runv(&in, NULL, s), "keep\n");
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_steps = 100000;
	CHECK_STR(runv(&in, &lim, s),
		  "error: script 1, line 1: the script used its step budget "
		  "(max_steps 100000)\nkeep (INBOX, as if no script had run)\n");
	free(msg);
	/* 10,000 fileinto: max_actions */
	struct buf b;
	buf_init(&b, 0);
	buf_append_str(&b, "require \"fileinto\";\n");
	for (int i = 0; i < 10000; i++)
		buf_printf(&b, "fileinto \"f%d\";\n", i);
	CHECK_STR(RUN(b.data), "error: script 1, line 34: more than 32 actions "
		  "(max_actions)\nkeep (INBOX, as if no script had run)\n");
	buf_reset(&b);
	for (int i = 0; i < 6; i++)
		buf_printf(&b, "redirect \"u%d@example.net\";\n", i);
	CHECK_STR(RUN(b.data), "error: script 1, line 5: more than 4 redirects "
		  "(max_redirects)\nkeep (INBOX, as if no script had run)\n");
	buf_free(&b);
}

static void test_image(void)
{
	struct sieve_script *s = compile("require \"fileinto\";\n"
					 "if header :contains \"subject\" "
					 "\"present\" { fileinto \"P\"; }");
	size_t len;
	const void *img = sieve_script_image(s, &len);
	struct sieve_script *t = sieve_script_load(img, len, "copy");
	CHECK(t != NULL);
	CHECK(sieve_script_uses(t, "fileinto"));
	CHECK(!sieve_script_uses(t, "vacation"));
	struct sieve_input in = input(MSG);
	struct sieve_result r;
	CHECK_INT(sieve_execute((const struct sieve_script *const *)&t, 1, &in,
				NULL, &r), 0);
	CHECK_INT(r.count, 1);
	CHECK_STR(r.actions[0].mailbox, "P");
	sieve_result_free(&r);
	/* damaged images are refused, every byte flipped in turn */
	unsigned char *copy = malloc(len);
	int loaded = 0;
	for (size_t i = 0; i < len; i++) {
		memcpy(copy, img, len);
		copy[i] ^= 0x5a;
		struct sieve_script *u = sieve_script_load(copy, len, "bad");
		if (u) {
			loaded++;
			CHECK_INT(sieve_execute((const struct sieve_script *const *)&u,
						1, &in, NULL, &r) <= 0, 1);
			sieve_result_free(&r);
			sieve_script_free(&u);
		}
	}
	CHECK(loaded < (int)len);
	CHECK(sieve_script_load(img, len - 1, "short") == NULL);
	free(copy);
	sieve_script_free(&t);
	sieve_script_free(&s);
}

static void test_vacation_replies(void)
{
	const char *own[] = {"bob@example.com", "roadrunner@acme.example.com"};
	CHECK(sieve_vacation_refusal(MSG, strlen(MSG), "coyote@desert.example.org",
				     own, 2) == NULL);
	CHECK_STR(sieve_vacation_refusal(MSG, strlen(MSG), "", own, 2),
		  "null envelope sender");
	CHECK(sieve_vacation_refusal(MSG, strlen(MSG), "MAILER-DAEMON@x.org",
				     own, 2) != NULL);
	CHECK(sieve_vacation_refusal(MSG, strlen(MSG), "owner-list@x.org",
				     own, 2) != NULL);
	CHECK(sieve_vacation_refusal(MSG, strlen(MSG), "list-request@x.org",
				     own, 2) != NULL);
	CHECK_STR(sieve_vacation_refusal(MSG, strlen(MSG), "bob@example.com",
					 own, 2), "the sender is the user");
	const char *other[] = {"carol@example.com"};
	CHECK_STR(sieve_vacation_refusal(MSG, strlen(MSG), "a@b.org", other, 1),
		  "the user is not named in To, Cc, Bcc or Resent-*");
	const char *list = "From: a@b.org\r\nTo: bob@example.com\r\n"
			   "List-Id: <l.example.org>\r\n\r\nx\r\n";
	CHECK_STR(sieve_vacation_refusal(list, strlen(list), "a@b.org", own, 2),
		  "a mailing list message (List-*)");
	const char *bulk = "From: a@b.org\r\nTo: bob@example.com\r\n"
			   "Precedence: bulk\r\n\r\nx\r\n";
	CHECK(sieve_vacation_refusal(bulk, strlen(bulk), "a@b.org", own, 2));
	const char *auto1 = "From: a@b.org\r\nTo: bob@example.com\r\n"
			    "Auto-Submitted: auto-generated\r\n\r\nx\r\n";
	CHECK(sieve_vacation_refusal(auto1, strlen(auto1), "a@b.org", own, 2));
	const char *auto2 = "From: a@b.org\r\nTo: bob@example.com\r\n"
			    "Auto-Submitted: no\r\n\r\nx\r\n";
	CHECK(!sieve_vacation_refusal(auto2, strlen(auto2), "a@b.org", own, 2));
	/* the early checks: no own addresses needed */
	CHECK(sieve_vacation_refusal_early(MSG, strlen(MSG), "a@b.org") == NULL);
	CHECK_STR(sieve_vacation_refusal_early(list, strlen(list), "a@b.org"),
		  "a mailing list message (List-*)");
	const char *nobody = "From: a@b.org\r\nSubject: x\r\n\r\nx\r\n";
	CHECK_STR(sieve_vacation_refusal_early(nobody, strlen(nobody),
					       "a@b.org"),
		  "the user is not named in To, Cc, Bcc or Resent-*");
	CHECK_STR(sieve_vacation_refusal(nobody, strlen(nobody), "a@b.org",
					 own, 2),
		  "the user is not named in To, Cc, Bcc or Resent-*");

	struct sieve_action a = {.kind = SIEVE_ACT_VACATION,
				 .text = (char *)"Je suis absent \xc3\xa9t\xc3\xa9.",
				 .handle = (char *)"h"};
	struct buf out;
	buf_init(&out, 0);
	sieve_vacation_compose(&a, MSG, strlen(MSG), "coyote@desert.example.org",
			       "bob@example.com", "mx.example.com", 0, &out);
	CHECK(strstr(out.data, "From: <bob@example.com>\r\n") != NULL);
	CHECK(strstr(out.data, "To: <coyote@desert.example.org>\r\n") != NULL);
	CHECK(strstr(out.data, "Subject: Auto: I have a present for you\r\n"));
	CHECK(strstr(out.data, "In-Reply-To: <1234@local.example.org>\r\n"));
	CHECK(strstr(out.data, "References: <1234@local.example.org>\r\n"));
	CHECK(strstr(out.data, "Auto-Submitted: auto-replied\r\n"));
	CHECK(strstr(out.data, "Content-Transfer-Encoding: base64\r\n\r\n"
		     "SmUgc3VpcyBhYnNlbnQgw6l0w6ku\r\n"));
	buf_reset(&out);
	a.subject = (char *)"Absent \xc3\xa9t\xc3\xa9";
	a.from = (char *)"Bob <bob@example.com>";
	sieve_vacation_compose(&a, MSG, strlen(MSG), "c@d.org", "bob@example.com",
			       "mx", 0, &out);
	CHECK(strstr(out.data, "Subject: =?UTF-8?B?QWJzZW50IMOpdMOp?=\r\n"));
	CHECK(strstr(out.data, "From: Bob <bob@example.com>\r\n"));
	buf_reset(&out);
	sieve_reject_compose("not wanted", MSG, strlen(MSG), "c@d.org",
			     "bob@example.com", "mx.example.com", 0, &out);
	CHECK(strstr(out.data, "Content-Type: multipart/report; "
		     "report-type=disposition-notification;"));
	CHECK(strstr(out.data, "Disposition: automatic-action/"
		     "MDN-sent-automatically; deleted\r\n"));
	CHECK(strstr(out.data, "Final-Recipient: rfc822; bob@example.com\r\n"));
	CHECK(strstr(out.data, "not wanted"));
	CHECK(strstr(out.data, "X-Caffeine: C8H10N4O2\r\n"));
	buf_free(&out);
}

static const struct test_case cases[] = {
	{"errors", test_errors},
	{"limits", test_limits},
	{"core", test_core},
	{"encoded", test_encoded},
	{"envelope_subaddress", test_envelope_subaddress},
	{"fileinto_flags_copy", test_fileinto_flags_copy},
	{"variables", test_variables},
	{"relational_numeric", test_relational_numeric},
	{"body", test_body},
	{"date_index", test_date_index},
	{"editheader", test_editheader},
	{"duplicate", test_duplicate},
	{"spam_env", test_spam_env},
	{"vacation_reject", test_vacation_reject},
	{"include", test_include},
	{"sequence", test_sequence},
	{"budget", test_budget},
	{"image", test_image},
	{"vacation_replies", test_vacation_replies},
	{NULL, NULL},
};

int main(void)
{
	return test_main(cases);
}
