/*
 * ManageSieve command parser: see managesieve-parser.h. Each call parses
 * from the start of the buffered bytes; a literal's bytes are skipped by
 * length, so a 1 MB script costs one scan however it arrives.
 */
#include "managesieve-parser.h"

#include <ctype.h>
#include <string.h>

void ms_command_init(struct ms_command *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	buf_init(&cmd->data, 0);
}

void ms_command_free(struct ms_command *cmd)
{
	buf_free(&cmd->data);
	memset(cmd, 0, sizeof(*cmd));
}

const char *ms_arg_str(const struct ms_command *cmd, unsigned i,
		       size_t *len_r)
{
	if (i >= cmd->nargs) {
		if (len_r)
			*len_r = 0;
		return "";
	}
	if (len_r)
		*len_r = cmd->args[i].len;
	return cmd->data.data ? cmd->data.data + cmd->args[i].off : "";
}

/* The end of the current line from q (the LF), or NULL. */
static const char *line_end(const char *q, const char *end)
{
	if (q >= end)
		return NULL;
	return memchr(q, '\n', (size_t)(end - q));
}

/* Error: consumed runs through the end of this line (NEED_MORE until it
 * is there, so the rest of a bad line is not read as a command). */
static enum ms_parse_status fail(const char *p, const char *q,
				 const char *end, size_t *consumed_r,
				 const char **error_r, const char *why)
{
	const char *lf = line_end(q, end);
	if (lf == NULL) {
		*consumed_r = (size_t)(end - p);
		*error_r = why;
		/* the caller drops what it has and the rest of the line */
		return MS_ERROR;
	}
	*consumed_r = (size_t)(lf + 1 - p);
	*error_r = why;
	return MS_ERROR;
}

static int add_arg(struct ms_command *cmd, enum ms_arg_type t,
		   const char *s, size_t n, bool literal, uint64_t num)
{
	if (cmd->nargs >= MS_MAX_ARGS)
		return -1;
	struct ms_arg *a = &cmd->args[cmd->nargs++];
	a->type = t;
	a->off = cmd->data.len;
	a->len = n;
	a->literal = literal;
	a->num = num;
	buf_append(&cmd->data, s, n);
	buf_append_char(&cmd->data, '\0');
	return 0;
}

/* One argument at *qp. 1 parsed, 0 need more, -1 error, 2 too big. */
static int parse_arg(const char *p, const char **qp, const char *end,
		     const struct ms_limits *lim, struct ms_command *cmd,
		     size_t *consumed_r, uint64_t *skip_r,
		     const char **error_r)
{
	const char *q = *qp;
	if (*q == '"') {
		struct buf tmp;
		buf_init(&tmp, 0);
		q++;
		for (;;) {
			if (q >= end) {
				buf_free(&tmp);
				return 0;
			}
			char c = *q++;
			if (c == '"')
				break;
			if (c == '\r' || c == '\n') {
				buf_free(&tmp);
				*error_r = "Unterminated quoted string";
				return -1;
			}
			if (c == '\\') {
				if (q >= end) {
					buf_free(&tmp);
					return 0;
				}
				c = *q++;
				if (c != '"' && c != '\\') {
					buf_free(&tmp);
					*error_r = "Bad escape in a quoted string";
					return -1;
				}
			}
			buf_append_char(&tmp, c);
		}
		int r = add_arg(cmd, MS_STRING, tmp.data ? tmp.data : "", tmp.len,
				false, 0);
		buf_free(&tmp);
		if (r < 0) {
			*error_r = "Too many arguments";
			return -1;
		}
		*qp = q;
		return 1;
	}
	if (*q == '{') {
		const char *s = ++q;
		uint64_t n = 0;
		while (q < end && isdigit((unsigned char)*q)) {
			if (__builtin_mul_overflow(n, 10, &n) ||
			    __builtin_add_overflow(n, (uint64_t)(*q - '0'), &n)) {
				*error_r = "Literal size too large";
				return -1;
			}
			q++;
		}
		if (q >= end)
			return 0;
		if (q == s) {
			*error_r = "Bad literal";
			return -1;
		}
		if (*q == '+')
			q++;
		if (q >= end)
			return 0;
		if (*q != '}') {
			*error_r = "Bad literal";
			return -1;
		}
		q++;
		if (q < end && *q == '\r')
			q++;
		if (q >= end)
			return 0;
		if (*q != '\n') {
			*error_r = "A literal must end its line";
			return -1;
		}
		q++;
		if (n > lim->max_literal) {
			*consumed_r = (size_t)(q - p);
			*skip_r = n;
			return 2;
		}
		if ((uint64_t)(end - q) < n)
			return 0;
		if (add_arg(cmd, MS_STRING, q, (size_t)n, true, 0) < 0) {
			*error_r = "Too many arguments";
			return -1;
		}
		*qp = q + n;
		return 1;
	}
	const char *s = q;
	while (q < end && *q != ' ' && *q != '\r' && *q != '\n')
		q++;
	if (q >= end)
		return 0;
	bool digits = q > s;
	for (const char *d = s; d < q; d++)
		if (!isdigit((unsigned char)*d))
			digits = false;
	uint64_t num = 0;
	if (digits) {
		for (const char *d = s; d < q; d++)
			if (__builtin_mul_overflow(num, 10, &num) ||
			    __builtin_add_overflow(num, (uint64_t)(*d - '0'), &num)) {
				*error_r = "Number too large";
				return -1;
			}
	}
	for (const char *d = s; d < q; d++)
		if ((unsigned char)*d < 0x21 || *d == '"' || *d == '{' ||
		    (unsigned char)*d >= 0x7f) {
			*error_r = "Bad atom";
			return -1;
		}
	if (add_arg(cmd, digits ? MS_NUMBER : MS_ATOM, s, (size_t)(q - s),
		    false, num) < 0) {
		*error_r = "Too many arguments";
		return -1;
	}
	*qp = q;
	return 1;
}

/* Arguments until the line ends. */
static enum ms_parse_status parse_args(const char *p, const char *q,
				       const char *end,
				       const struct ms_limits *lim,
				       struct ms_command *cmd,
				       size_t *consumed_r, uint64_t *skip_r,
				       const char **error_r)
{
	size_t outside = (size_t)(q - p);
	for (;;) {
		if (q >= end)
			goto more;
		if (*q == '\r') {
			if (q + 1 >= end)
				goto more;
			if (q[1] != '\n')
				return fail(p, q, end, consumed_r, error_r,
					    "Bad line end");
			*consumed_r = (size_t)(q + 2 - p);
			return MS_COMMAND;
		}
		if (*q == '\n') {
			*consumed_r = (size_t)(q + 1 - p);
			return MS_COMMAND;
		}
		if (*q != ' ')
			return fail(p, q, end, consumed_r, error_r,
				    "Expected a space between arguments");
		q++;
		if (q >= end)
			goto more;
		const char *before = q;
		int r = parse_arg(p, &q, end, lim, cmd, consumed_r, skip_r,
				  error_r);
		if (r == 0)
			goto more;
		if (r < 0)
			return fail(p, before, end, consumed_r, error_r, *error_r);
		if (r == 2)
			return MS_TOO_BIG;
		if (!cmd->args[cmd->nargs - 1].literal)
			outside += (size_t)(q - before);
		if (outside > lim->max_line)
			return fail(p, q, end, consumed_r, error_r, "Line too long");
	}
more:
	if ((size_t)(end - p) > lim->max_line + lim->max_literal * 2 + 64 ||
	    (line_end(p, end) == NULL && (size_t)(end - p) > lim->max_line &&
	     !memchr(p, '{', (size_t)(end - p))))
		return fail(p, end, end, consumed_r, error_r, "Line too long");
	return MS_NEED_MORE;
}

enum ms_parse_status ms_parse(const char *p, size_t len,
			      const struct ms_limits *lim,
			      struct ms_command *cmd, size_t *consumed_r,
			      uint64_t *skip_r, const char **error_r)
{
	const char *end = p + len, *q = p;
	buf_reset(&cmd->data);
	cmd->nargs = 0;
	cmd->name[0] = '\0';
	*skip_r = 0;
	*error_r = NULL;
	size_t n = 0;
	while (q < end && isalpha((unsigned char)*q)) {
		if (n + 1 < sizeof(cmd->name))
			cmd->name[n++] = (char)toupper((unsigned char)*q);
		else
			return fail(p, q, end, consumed_r, error_r,
				    "Unknown command");
		q++;
	}
	cmd->name[n] = '\0';
	if (q >= end) {
		if (len > lim->max_line)
			return fail(p, q, end, consumed_r, error_r,
				    "Line too long");
		return MS_NEED_MORE;
	}
	if (n == 0) {
		if (*q == '\r' || *q == '\n')
			return fail(p, q, end, consumed_r, error_r,
				    "Empty command");
		return fail(p, q, end, consumed_r, error_r, "Bad command name");
	}
	return parse_args(p, q, end, lim, cmd, consumed_r, skip_r, error_r);
}

enum ms_parse_status ms_parse_sasl(const char *p, size_t len,
				   const struct ms_limits *lim,
				   struct ms_command *cmd, bool *cancel_r,
				   size_t *consumed_r, const char **error_r)
{
	const char *end = p + len, *q = p;
	buf_reset(&cmd->data);
	cmd->nargs = 0;
	*cancel_r = false;
	*error_r = NULL;
	if (q >= end)
		return MS_NEED_MORE;
	if (*q == '*') {
		const char *lf = line_end(q, end);
		if (lf == NULL)
			return MS_NEED_MORE;
		*cancel_r = true;
		*consumed_r = (size_t)(lf + 1 - p);
		return MS_COMMAND;
	}
	if (*q != '"' && *q != '{')
		return fail(p, q, end, consumed_r, error_r,
			    "Expected a string");
	uint64_t skip = 0;
	struct ms_limits l = *lim;
	if (l.max_literal > 64 * 1024)
		l.max_literal = 64 * 1024;
	int r = parse_arg(p, &q, end, &l, cmd, consumed_r, &skip, error_r);
	if (r == 0)
		return MS_NEED_MORE;
	if (r < 0 || r == 2)
		return fail(p, q, end, consumed_r, error_r,
			    r == 2 ? "Response too long" : *error_r);
	if (q >= end || (*q == '\r' && q + 1 >= end))
		return MS_NEED_MORE;
	if (*q == '\r' && q[1] == '\n') {
		*consumed_r = (size_t)(q + 2 - p);
		return MS_COMMAND;
	}
	if (*q == '\n') {
		*consumed_r = (size_t)(q + 1 - p);
		return MS_COMMAND;
	}
	return fail(p, q, end, consumed_r, error_r, "Expected the line end");
}
