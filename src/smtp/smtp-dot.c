/*
 * The strict DATA decoder (smtp-dot.h). States:
 *   LS     at the start of a line (after CRLF, or the message start)
 *   MID    inside a line
 *   CR     a CR was seen (held back: it may start a CRLF)
 *   DOT    a '.' at the start of a line (held back)
 *   DOTCR  ".\r" at the start of a line (held back: ".\r\n" ends)
 */
#include "smtp-dot.h"

enum { LS, MID, CR, DOT, DOTCR };

void smtp_dot_init(struct smtp_dot *dot)
{
	dot->state = LS;
}

int smtp_dot_feed(struct smtp_dot *dot, const char *in, size_t len,
		  size_t *consumed_r, struct buf *out)
{
	size_t i = 0;
	int st = dot->state;

	*consumed_r = 0;
	while (i < len) {
		char c = in[i];
		size_t before = out->len;
		int rc = 0;

		switch (st) {
		case LS:
			if (c == '.') {
				st = DOT;
			} else if (c == '\r') {
				st = CR;
			} else {
				rc = buf_append_char(out, c);
				st = MID;
			}
			break;
		case MID:
			if (c == '\r')
				st = CR;
			else
				rc = buf_append_char(out, c);
			break;
		case CR:
			if (c == '\n') {
				rc = buf_append(out, "\r\n", 2);
				st = LS;
			} else if (c == '\r') {
				rc = buf_append_char(out, '\r'); /* bare CR */
			} else {
				rc = buf_append_char(out, '\r');
				if (rc == 0)
					rc = buf_append_char(out, c);
				st = MID;
			}
			break;
		case DOT:
			/* a stuffed dot: dropped; the line goes on */
			if (c == '\r') {
				st = DOTCR;
			} else {
				rc = buf_append_char(out, c);
				st = MID;
			}
			break;
		case DOTCR:
			if (c == '\n') {
				dot->state = LS;
				*consumed_r = i + 1;
				return 1;
			}
			/* ".\r" then something else: the dot was stuffing,
			 * the CR is data */
			rc = buf_append_char(out, '\r');
			if (rc == 0 && c != '\r') {
				rc = buf_append_char(out, c);
				st = MID;
			} else {
				st = CR;
			}
			break;
		}
		if (rc < 0) {
			out->len = before;
			out->data[before] = '\0';
			dot->state = st;
			*consumed_r = i;
			return -1;
		}
		i++;
	}
	dot->state = st;
	*consumed_r = i;
	return 0;
}
