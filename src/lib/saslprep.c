/*
 * SASLprep through libidn's stringprep_profile("SASLprep"). Printable
 * ASCII, by far the common case, prepares to itself (RFC 4013 2 maps and
 * prohibits nothing in it, and NFKC leaves it alone), so it skips the
 * conversion to UCS-4 and back.
 */
#include "saslprep.h"

#include "buf.h"
#include "utf7.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

static bool printable_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	}
	return true;
}

int saslprep(const char *in, enum saslprep_mode mode, char **out_r,
	     const char **error_r)
{
	*out_r = NULL;
	if (*in != '\0' && printable_ascii(in)) {
		*out_r = xstrdup(in);
		return 0;
	}
	if (!utf8_valid(in, strlen(in))) {
		*error_r = "not valid UTF-8";
		return -1;
	}
	char *out = NULL;
	int rc = stringprep_profile(in, &out, "SASLprep",
				    mode == SASLPREP_STORED
					    ? STRINGPREP_NO_UNASSIGNED : 0);
	switch (rc) {
	case STRINGPREP_OK:
		break;
	case STRINGPREP_CONTAINS_UNASSIGNED:
		*error_r = "a character not assigned in Unicode 3.2";
		return -1;
	case STRINGPREP_CONTAINS_PROHIBITED:
		*error_r = "a prohibited character (control, private use, "
			   "non-character, ...)";
		return -1;
	case STRINGPREP_BIDI_BOTH_L_AND_RAL:
	case STRINGPREP_BIDI_LEADTRAIL_NOT_RAL:
	case STRINGPREP_BIDI_CONTAINS_PROHIBITED:
		*error_r = "a mix of right-to-left and left-to-right text that "
			   "RFC 3454 6 forbids";
		return -1;
	case STRINGPREP_MALLOC_ERROR:
		abort();
	default:
		*error_r = "not a valid string";
		return -1;
	}
	if (out == NULL || *out == '\0') {
		free(out);
		*error_r = "nothing left after SASLprep";
		return -1;
	}
	*out_r = out;
	return 0;
}

size_t utf8_length(const char *s)
{
	size_t n = 0;
	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}
