/*
 * Fuzz target for the IMAP command parser (src/imap/imap-parser.c).
 *
 * The input is fed three times: all at once, in pieces whose sizes the
 * fuzzer chooses, and one byte at a time. Each run writes a transcript of
 * the events (commands with their whole argument tree, errors, literal
 * announcements, streamed literal bytes joined per literal); the three
 * transcripts must be equal, since any split of the input must give the
 * same result (imap-parser.h, STYLE.md). Every command tree is checked
 * against the contract on the way: EOL-terminated lists, NUL-terminated
 * strings, buffered literals of the announced size, limits kept.
 *
 * Input: [limits][literal policy][nsteps][steps...][bytes fed to the parser]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap-parser.h"

/* Small enough that the fuzzer reaches every limit quickly. */
static const struct imap_parser_limits tiny_limits = {
	.max_line = 96,
	.max_literal = 24,
	.max_command = 160,
	.max_depth = 3,
	.max_args = 10,
};

struct run {
	const struct imap_parser_limits *limits;
	uint8_t policy;
	struct buf log;          /* the transcript */
	struct buf stream;       /* the streamed literal being gathered */
	unsigned literals;       /* LITERAL events so far */
	unsigned args;           /* arguments seen while checking a tree */
};

static void check_tree(struct run *r, const struct imap_arg *args,
		       size_t count, unsigned depth)
{
	if (depth > r->limits->max_depth)
		abort();
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		r->args++;
		buf_printf(&r->log, "%*s%d", (int)depth, "", (int)a->type);
		switch (a->type) {
		case IMAP_ARG_LIST:
			if (a->list == NULL || a->list[a->list_count].type !=
						       IMAP_ARG_EOL ||
			    imap_args_count(a->list) != a->list_count ||
			    imap_arg_str(a) != NULL)
				abort();
			buf_append_str(&r->log, "(\n");
			check_tree(r, a->list, a->list_count, depth + 1);
			buf_append_str(&r->log, ")\n");
			continue;
		case IMAP_ARG_LITERAL:
			buf_printf(&r->log, " lit8=%d streamed=%d idx=%u size=%llu",
				   a->literal8, a->streamed, a->stream_index,
				   (unsigned long long)a->literal_size);
			if (a->streamed ? a->str.len != 0 ||
						  imap_arg_str(a) != NULL
					: a->str.len != a->literal_size ||
						  a->literal_size >
							  r->limits->max_literal)
				abort();
			break;
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
		case IMAP_ARG_QUOTED:
			if (a->literal8 || a->streamed)
				abort();
			break;
		default:
			abort();
		}
		if (!a->streamed) {
			if (a->str.ptr == NULL || a->str.ptr[a->str.len] != '\0' ||
			    imap_arg_str(a) != a->str.ptr)
				abort();
			if (a->type == IMAP_ARG_ATOM &&
			    (a->str.len == 0 || imap_arg_has_nul(a)))
				abort();
			if (a->type == IMAP_ARG_NIL &&
			    !imap_arg_atom_eq(a, "NIL"))
				abort();
		}
		buf_printf(&r->log, " %zu:", a->str.len);
		buf_append(&r->log, a->str.ptr, a->str.len);
		buf_append_char(&r->log, '\n');
	}
}

static void on_command(struct run *r, struct imap_parser *p)
{
	struct slice tag = imap_parser_tag(p), name = imap_parser_name(p);
	size_t count;
	const struct imap_arg *args = imap_parser_args(p, &count);

	if (tag.len == 0 || name.len == 0 || tag.ptr[tag.len] != '\0' ||
	    name.ptr[name.len] != '\0' || args[count].type != IMAP_ARG_EOL ||
	    imap_args_count(args) != count)
		abort();
	buf_append_str(&r->log, "COMMAND ");
	buf_append(&r->log, tag.ptr, tag.len);
	buf_append_char(&r->log, ' ');
	buf_append(&r->log, name.ptr, name.len);
	buf_append_char(&r->log, '\n');
	r->args = 0;
	check_tree(r, args, count, 0);
	if (r->args > r->limits->max_args)
		abort();
}

static void on_literal(struct run *r, struct imap_parser *p)
{
	struct imap_literal_info info;

	imap_parser_literal(p, &info);
	buf_printf(&r->log, "LITERAL %llu sync=%d lit8=%d depth=%u index=%u\n",
		   (unsigned long long)info.size, info.sync, info.literal8,
		   info.depth, info.arg_index);
	/* The choice depends only on the event sequence, which is the same
	 * in every run. */
	enum imap_literal_action action =
		(enum imap_literal_action)((r->policy >> (2 * (r->literals++ % 4))) % 3);
	int ret = imap_parser_literal_accept(p, action);
	buf_printf(&r->log, "ACCEPT %d -> %d\n", (int)action, ret);
}

static void on_literal_data(struct run *r, struct imap_parser *p)
{
	bool last;
	uint32_t index;
	struct slice s = imap_parser_literal_data(p, &last, &index);

	buf_append(&r->stream, s.ptr, s.len);
	if (!last)
		return;
	buf_printf(&r->log, "DATA %u %zu:", index, r->stream.len);
	buf_append(&r->log, r->stream.data, r->stream.len);
	buf_append_char(&r->log, '\n');
	buf_reset(&r->stream);
}

static void on_error(struct run *r, struct imap_parser *p)
{
	enum imap_parse_error_code code;
	const char *msg = imap_parser_error(p, &code);
	struct slice tag = imap_parser_tag(p);

	buf_printf(&r->log, "ERROR %d %s tag=", (int)code, msg);
	buf_append(&r->log, tag.ptr, tag.len);
	buf_append_char(&r->log, '\n');
}

/* Feeds data[0..len) in pieces of steps[k] + 1 bytes (all at once when
 * nsteps is 0), handling every event. */
static void feed(struct run *r, const char *data, size_t len,
		 const uint8_t *steps, size_t nsteps)
{
	struct imap_parser *p = imap_parser_create(r->limits);
	size_t pos = 0, k = 0;

	buf_init(&r->log, 0);
	buf_init(&r->stream, 0);
	r->literals = 0;
	while (pos < len) {
		size_t step = nsteps ? (size_t)steps[k++ % nsteps] + 1 : len;
		size_t end = len - pos < step ? len : pos + step;
		while (pos < end) {
			size_t used;
			enum imap_parse_result res =
				imap_parser_feed(p, data + pos, end - pos, &used);
			if (used > end - pos)
				abort();
			pos += used;
			switch (res) {
			case IMAP_PARSE_NEED_MORE:
				/* only a pending literal decision stops
				 * short, and every LITERAL was accepted */
				if (pos != end)
					abort();
				break;
			case IMAP_PARSE_COMMAND:
				on_command(r, p);
				break;
			case IMAP_PARSE_LITERAL:
				on_literal(r, p);
				break;
			case IMAP_PARSE_LITERAL_DATA:
				on_literal_data(r, p);
				break;
			case IMAP_PARSE_ERROR:
				on_error(r, p);
				break;
			default:
				abort();
			}
		}
	}
	/* bytes of an unfinished streamed literal */
	buf_printf(&r->log, "END %zu:", r->stream.len);
	buf_append(&r->log, r->stream.data, r->stream.len);
	buf_free(&r->stream);
	imap_parser_destroy(&p);
}

static bool same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t one = 0;
	struct run whole, split, bytes;

	if (size < 3)
		return 0;
	const struct imap_parser_limits *limits =
		data[0] % 3 == 0 ? &imap_parser_limits_default
		: data[0] % 3 == 1 ? &imap_parser_limits_prelogin
				   : &tiny_limits;
	uint8_t policy = data[1];
	size_t nsteps = data[2] % 16;
	if (size < 3 + nsteps)
		return 0;
	const uint8_t *steps = data + 3;
	const char *text = (const char *)data + 3 + nsteps;
	size_t len = size - 3 - nsteps;

	whole.limits = split.limits = bytes.limits = limits;
	whole.policy = split.policy = bytes.policy = policy;
	feed(&whole, text, len, NULL, 0);
	feed(&split, text, len, steps, nsteps);
	feed(&bytes, text, len, &one, 1);
	if (!same(&whole.log, &split.log) || !same(&whole.log, &bytes.log))
		abort();
	buf_free(&whole.log);
	buf_free(&split.log);
	buf_free(&bytes.log);
	return 0;
}
