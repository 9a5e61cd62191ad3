/* Unit tests for src/lib: bounded buffers, the config parser and its value
 * readers. */
#include "buf.h"
#include "config.h"
#include "test.h"

static void test_buf_limit(void)
{
	struct buf b;
	buf_init(&b, 8);
	CHECK_INT(buf_append_str(&b, "12345678"), 0);
	CHECK_INT(buf_append_char(&b, 'x'), -1);
	CHECK_INT(b.len, 8);
	CHECK_STR(b.data, "12345678");
	buf_consume(&b, 3);
	CHECK_STR(b.data, "45678");
	CHECK_INT(buf_printf(&b, "%d", 123), 0);
	CHECK_INT(buf_printf(&b, "%d", 1), -1);
	CHECK_STR(b.data, "45678123");
	buf_free(&b);
}

static void test_config_parse(void)
{
	const char *text = "data_dir = /tmp/x # comment\n"
			   "\n[imap]\nlisten = 127.0.0.1:1143, [::1]:1143\n"
			   "listen = 127.0.0.1:2000\n[bad\nnovalue\n";
	struct config *cfg;
	struct buf err;
	buf_init(&err, 0);
	CHECK_INT(config_parse("t.conf", text, strlen(text), &cfg, &err), -1);
	CHECK_STR(config_get(cfg, "", "data_dir"), "/tmp/x");
	CHECK_STR(config_get(cfg, "imap", "listen"), "127.0.0.1:2000");
	CHECK(config_has_section(cfg, "imap"));
	CHECK(strstr(err.data, "t.conf:6: malformed section header") != NULL);
	CHECK(strstr(err.data, "t.conf:7: expected 'key = value'") != NULL);
	size_t n;
	char **items = config_split_list(" a, b ,,c ", &n);
	CHECK_INT(n, 3);
	if (n == 3)
		CHECK_STR(items[1], "b");
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	config_free(&cfg);
	CHECK(cfg == NULL);
	buf_free(&err);
}

static void test_config_values(void)
{
	uint64_t v;
	CHECK_INT(config_parse_size("500M", &v), 0);
	CHECK_INT(v, 500ULL << 20);
	CHECK_INT(config_parse_size("2G", &v), 0);
	CHECK_INT(v, 2ULL << 30);
	CHECK_INT(config_parse_size("1.5K", &v), 0);
	CHECK_INT(v, 1536);
	CHECK_INT(config_parse_size("10240", &v), 0);
	CHECK_INT(v, 10240);
	CHECK_INT(config_parse_size("0x10", &v), -1);
	CHECK_INT(config_parse_size("1e3K", &v), -1);
	CHECK_INT(config_parse_size("1.", &v), -1);
	CHECK_INT(config_parse_size("-1", &v), -1);
	CHECK_INT(config_parse_size("5Q", &v), -1);
	CHECK_INT(config_parse_duration("5m", &v), 0);
	CHECK_INT(v, 300);
	CHECK_INT(config_parse_duration("7d", &v), 0);
	CHECK_INT(v, 7 * 86400);
	CHECK_INT(config_parse_duration("5x", &v), -1);
	bool b;
	CHECK_INT(config_parse_bool("Yes", &b), 0);
	CHECK(b);
	CHECK_INT(config_parse_bool("maybe", &b), -1);
	CHECK_INT(config_parse_uint("42", 100, &v), 0);
	CHECK_INT(config_parse_uint("420", 100, &v), -1);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"buf_limit", test_buf_limit},
		{"config_parse", test_config_parse},
		{"config_values", test_config_values},
		{NULL, NULL},
	};
	return test_main(cases);
}
