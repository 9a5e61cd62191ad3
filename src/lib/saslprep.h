/*
 * SASLprep (RFC 4013), the stringprep profile (RFC 3454) for user names
 * and passwords: non-ASCII spaces become U+0020, "commonly mapped to
 * nothing" characters (soft hyphen, zero-width joiners, ...) go, the
 * result is NFKC-normalised, and control characters, private use,
 * non-characters, surrogates and the like are refused, as are strings
 * that break the bidi rules. Done by libidn's stringprep (libidn-dev).
 *
 * Used for passwords (PLAIN, LOGIN, SCRAM-SHA-256 per RFC 7677 / RFC 5802
 * 2.2) and SASL user names; the identifiers of IMAP ACL (RFC 4314 3) take
 * the same preparation.
 */
#ifndef LOFT_SASLPREP_H
#define LOFT_SASLPREP_H

#include <stddef.h>

enum saslprep_mode {
	/* A string compared with stored ones (a login's password):
	 * unassigned code points pass (RFC 3454 7). */
	SASLPREP_QUERY,
	/* A string about to be stored (a new password): unassigned code
	 * points are refused, so a later Unicode version cannot change
	 * what it prepares to. */
	SASLPREP_STORED,
};

/* Prepares in (NUL-terminated). 0 with *out_r (caller frees; never empty);
 * -1 with a short static reason in *error_r: not UTF-8, a prohibited or
 * (STORED) unassigned character, a bidi violation, or nothing left. */
int saslprep(const char *in, enum saslprep_mode mode, char **out_r,
	     const char **error_r);

/* The number of characters (code points) of a valid UTF-8 string. */
size_t utf8_length(const char *s);

#endif
