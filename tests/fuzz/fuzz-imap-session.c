/*
 * Fuzz target for the IMAP front-end's command handlers (src/imap): the
 * argument parsing of every command that has no public parser of its own
 * (CREATE/LIST/STATUS/SELECT parameters, APPEND flags and date-time,
 * STORE modifiers, ENABLE, ID, AUTHENTICATE, ...), run through a real
 * session over a Unix socket (see fuzz-net-session.h) so the command
 * parser's literal handling and the dispatcher are exercised with them.
 *
 * Input: [flags][bytes the client sends]. flags bit 0: LOGIN first;
 * bit 1: also SELECT INBOX. The greeting must be "* OK", and no input
 * may make the server answer [SERVERBUG] (an internal error: with a
 * healthy store, a client cannot cause one).
 */
#include <stdbool.h>

#include "fuzz-net-session.h"
#include "imap.h"

static void *create(const struct config *cfg, struct store *store,
		    struct auth *auth, struct buf *errors)
{
	return imap_server_create(cfg, store, auth, errors);
}

/* Whether a tagged reply says [SERVERBUG]. Only the start of a response
 * line counts (the tag cannot hold a space, and literals, which may hold
 * what a client appended, are skipped), so no echo of the input can fake
 * one. */
static bool internal_error(const char *out, size_t len)
{
	size_t pos = 0;
	bool at_start = true;
	while (pos < len) {
		const char *eol = memmem(out + pos, len - pos, "\r\n", 2);
		if (eol == NULL)
			break;
		const char *line = out + pos;
		size_t n = (size_t)(eol - line);
		if (at_start && n > 2 && line[0] != '*' && line[0] != '+') {
			const char *sp = memchr(line, ' ', n);
			if (sp != NULL && ((size_t)(eol - sp) > 15 &&
					   (memcmp(sp, " NO [SERVERBUG]", 15) == 0 ||
					    memcmp(sp, " BAD [SERVERBUG", 15) == 0)))
				return true;
		}
		pos = (size_t)(eol - out) + 2;
		at_start = true;
		/* a literal at the end of the line: its bytes are data */
		if (n > 2 && line[n - 1] == '}') {
			const char *open = memrchr(line, '{', n);
			if (open != NULL) {
				uint64_t size = strtoull(open + 1, NULL, 10);
				pos = size > len - pos ? len : pos + (size_t)size;
				at_start = false;
			}
		}
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool started;
	if (!started) {
		fuzz_session_start("[imap]\nlisten = unix:/unused\n",
				   create, &imap_proto);
		started = true;
	}
	if (size < 1)
		return 0;
	fuzz_session_refill();
	const char *prefix = (data[0] & 3) == 3 ? "l0 LOGIN alice@example.test fuzzing-secret-1\r\n"
						   "s0 SELECT INBOX\r\n"
			     : (data[0] & 1) ? "l0 LOGIN alice@example.test fuzzing-secret-1\r\n"
					     : "";
	size_t len;
	char *out = fuzz_session_run(prefix, data + 1, size - 1, &len);
	if (len < 4 || strncmp(out, "* OK", 4) != 0)
		abort();
	if (internal_error(out, len)) {
		fwrite(out, 1, len, stderr);
		abort();
	}
	free(out);
	return 0;
}
