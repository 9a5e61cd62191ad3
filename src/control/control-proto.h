/*
 * The control protocol spoken over loftd's control socket (loftctl <->
 * loftd): pure, I/O-free parsers shared by the server (control-server.c),
 * the client (control-client.c) and the fuzz target.
 *
 *   server greeting:  "loftd control 1" LF
 *   request:          WORD *(SP WORD) LF          e.g. "kick 42", "ban list"
 *   reply:            *("* " TEXT LF) ("ok" [SP TEXT] / "err" SP TEXT) LF
 *
 * A WORD is 1..CONTROL_MAX_WORD bytes of printable ASCII (0x21-0x7E) or
 * valid UTF-8 above 0x7F; TEXT is printable ASCII with spaces, or UTF-8,
 * never a control character. Lines end with a bare LF; a CR, a NUL, a
 * leading, trailing or doubled space, or a line over CONTROL_MAX_LINE is
 * an error. Several requests may follow each other on one connection;
 * each gets its whole reply before the next is read.
 */
#ifndef LOFT_CONTROL_PROTO_H
#define LOFT_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define CONTROL_PROTO_VERSION 1
#define CONTROL_GREETING "loftd control 1"
#define CONTROL_MAX_LINE 4096     /* bytes before the LF */
#define CONTROL_MAX_WORDS 32
#define CONTROL_MAX_WORD 1024

struct control_request {
	size_t count;
	struct slice words[CONTROL_MAX_WORDS];   /* point into the line */
};

/* Finds the next line in data[0..len): 1 with *line_len_r (without the
 * LF) and *used_r (with it); 0 when no LF has come yet and the line may
 * still fit; -1 when the line is longer than max (whatever follows). */
int control_line_next(const char *data, size_t len, size_t max,
		      size_t *line_len_r, size_t *used_r);

/* Parses one request line (without its LF). 0, or -1 with a static
 * reason in *error_r. */
int control_request_parse(const char *line, size_t len,
			  struct control_request *req_r, const char **error_r);

enum control_reply_kind {
	CONTROL_REPLY_DATA,       /* "* TEXT": one line of the answer */
	CONTROL_REPLY_OK,         /* "ok [TEXT]": done */
	CONTROL_REPLY_ERR,        /* "err TEXT": failed */
};

/* Parses one reply line (without its LF); *text_r points into line (an
 * empty slice for a bare "ok"). 0, or -1 with a static reason. */
int control_reply_parse(const char *line, size_t len,
			enum control_reply_kind *kind_r, struct slice *text_r,
			const char **error_r);

/* Whether text may be sent as TEXT (printable, valid UTF-8). */
bool control_text_valid(const char *text, size_t len);
/* Appends text to out as valid TEXT: control characters and invalid
 * UTF-8 become '?', so a reply line can never be split or forged. */
void control_text_append(struct buf *out, const char *text, size_t len);

#endif
