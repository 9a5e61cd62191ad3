/*
 * SORT (RFC 5256 section 3, with the DISPLAYFROM/DISPLAYTO keys of RFC
 * 5957): a list of criteria, each optionally reversed, applied to messages
 * already selected by a search program. Strings compare by collation key
 * (imap_sort_collation_key); ties are broken by sequence number,
 * ascending, whatever REVERSE says.
 */
#ifndef LOFT_IMAP_SORT_H
#define LOFT_IMAP_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;

enum imap_sort_key {
	IMAP_SORT_ARRIVAL,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM,
	IMAP_SORT_DISPLAYTO,
};

#define IMAP_SORT_MAX_CRITERIA 16

struct imap_sort_program {
	struct {
		enum imap_sort_key key;
		bool reverse;
	} crit[IMAP_SORT_MAX_CRITERIA];
	unsigned count;
};

/* One message as SORT sees it; strings belong to the caller (never
 * NULL: "" when the field is absent, RFC 5256 3). */
struct imap_sort_msg {
	uint32_t seq;
	uint32_t number;        /* seq, or UID for UID SORT */
	uint64_t size;
	time_t arrival;         /* INTERNALDATE */
	time_t sent_date;       /* Date:, INTERNALDATE when unusable */
	const char *subject;    /* base subject */
	const char *from, *to, *cc;
	const char *display_from, *display_to;
};

/* Parses one sort key name (any case). -1 if unknown. */
int imap_sort_key_parse(const char *name, size_t len, enum imap_sort_key *key_r);
/* Whether a key needs the cached sort fields (else flags/size suffice). */
bool imap_sort_needs_fields(const struct imap_sort_program *prog);

/* Appends the collation key of a UTF-8 string: strings then compare as
 * bytes (strcmp). ASCII letters are upper-cased, as i;ascii-casemap
 * (RFC 4790 9.2) does, so ASCII orders exactly as RFC 5256 says; beyond
 * ASCII the key approximates i;unicode-casemap (RFC 5051: title case,
 * canonical decomposition), the collation Dovecot sorts with: a letter
 * with an accent sorts right after its base letter ("Ça" between "Bz"
 * and "Cb"), other scripts are upper-cased. Invalid UTF-8 is kept. */
void imap_sort_collation_key(struct buf *out, const char *s);

/* Sorts msgs in place. The string fields must be collation keys. */
void imap_sort_run(const struct imap_sort_program *prog,
		   struct imap_sort_msg *msgs, size_t count);

#endif
