/*
 * LMTP/SMTP syntax, I/O-free: splitting a command line into verb and
 * arguments, parsing reverse- and forward-paths with their ESMTP
 * parameters (RFC 5321 4.1.2), and the DATA decoder that removes
 * dot-stuffing and finds the end of the message (RFC 5321 4.5.2) in a
 * stream fed in pieces of any size. The session (lmtp-session.c) feeds
 * these from the connection's input on the I/O thread; the unit test feeds
 * them byte by byte.
 */
#ifndef LOFT_LMTP_PARSER_H
#define LOFT_LMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 5321 4.5.3.1: local-part 64 octets, domain 255, path 256. */
#define LMTP_LOCAL_MAX 64
#define LMTP_DOMAIN_MAX 255
#define LMTP_PATH_MAX 256

/* Splits "VERB args" into the verb (upper-cased copy, at most 15 chars)
 * and a slice of what follows the first space. Returns -1 if the line is
 * empty, has a verb that is not letters, or holds a NUL or other control
 * byte (a command line is text). */
int lmtp_parse_verb(const char *line, size_t len, char verb_r[16],
		    struct slice *args_r);

/* A parsed path. address is "local@domain" with a quoted local-part
 * unquoted (empty for the null path "<>"); local/domain point into it. */
struct lmtp_path {
	char address[LMTP_PATH_MAX + 1];
	size_t local_len;       /* address[0..local_len) is the local-part */
	bool null_path;
};

/* Parses args after the verb: "FROM:<path> params" (want "FROM") or
 * "TO:<path> params". Spaces between ':' and '<' are tolerated (a common
 * client bug); a source route "@a,@b:" is accepted and ignored (RFC 5321
 * 4.1.2). With strict, the local-part must be a dot-string or a quoted
 * string and the domain a hostname or address literal; without, anything
 * printable without spaces or angle brackets passes (senders are not ours
 * to judge). allow_null accepts "<>". *params_r gets what follows the
 * path (after spaces). Returns 0, or -1 with a short reason in *why_r. */
int lmtp_parse_path(struct slice args, const char *want, bool strict,
		    bool allow_null, struct lmtp_path *path_r,
		    struct slice *params_r, const char **why_r);

/* The address of path as it goes into a header or a reply: as is when
 * its local-part is a dot-atom, else with the local-part quoted again
 * (RFC 5321 4.1.2), so a header never carries a bare '"', '<', '>' or
 * space from it. Writes at most size - 1 bytes and a NUL; LMTP_PATH_TEXT
 * is always enough. */
#define LMTP_PATH_TEXT (2 * LMTP_PATH_MAX + 3)
void lmtp_path_text(const struct lmtp_path *path, char *out, size_t size);

/* Iterates over "KEY[=VALUE] KEY[=VALUE]..." Returns 1 with key/value
 * filled (value empty if absent), 0 at the end, -1 on bad syntax. */
int lmtp_param_next(struct slice *params, struct slice *key_r,
		    struct slice *value_r);

/* Parses a decimal number with an overflow check. */
int lmtp_parse_u64(struct slice s, uint64_t *v_r);

/* ---- DATA --------------------------------------------------------- */

/* The DATA decoder, one for LMTP and SMTP, in two modes. A line starting
 * with '.' loses that dot; a line that is only "." ends the message; the
 * line end before the final dot ends the last line of the message and is
 * kept (RFC 5321 4.1.1.4). Other bytes (NUL, 8-bit, long lines) pass
 * through unchanged.
 *
 * strict (SMTP, from the internet): only <CRLF>.<CRLF> ends a message, so
 * none of the smuggling variants ("\n.\n", "\r.\r", "\r\n.\n",
 * "\n.\r\n", ...) does (CVE-2023-51766 class). A bare LF or bare CR
 * stays in the message as data (the store turns a bare LF into a line
 * end, as Postfix's smtpd_forbid_bare_newline = normalize does); a dot is
 * unstuffed only after a CRLF.
 *
 * not strict (LMTP, from the local MTA): a line ends at LF, CRLF and bare
 * LF alike, so a client that sends bare LFs still ends its message with
 * "\n.\n" instead of hanging, as Dovecot's LMTP does. The LMTP client is
 * the server's own MTA, which has already settled where the message ends
 * (Postfix writes every line with CRLF), so there is nothing to smuggle
 * past; docs/compat.md says so.
 *
 * Any split of the input gives the same result. */
struct lmtp_dot {
	int state;
	bool strict;
};

void lmtp_dot_init(struct lmtp_dot *dot, bool strict);
/* Decodes up to len bytes of in, appending the message bytes to out (it
 * grows by at most len + 2 bytes: a CR held back from an earlier call may
 * come out now). *consumed_r says how many input bytes were used. Returns
 * 1 when the end-of-data line was consumed (the bytes after it are the
 * next command), 0 when all of in was consumed and more is needed, -1 if
 * out refused to grow (its max). */
int lmtp_dot_feed(struct lmtp_dot *dot, const char *in, size_t len,
		  size_t *consumed_r, struct buf *out);

#endif
