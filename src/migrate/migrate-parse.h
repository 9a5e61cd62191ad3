/*
 * The parsers of src/migrate: I/O free, for untrusted input (a Maildir or
 * mbox from anywhere), fuzzed (tests/fuzz/fuzz-migrate-*.c).
 *
 * Maildir (https://cr.yp.to/proto/maildir.html, Dovecot's extensions):
 *   file names "<base>[:2,<flags>]": D draft, F flagged, P passed, R
 *   replied, S seen, T trashed; a..z keywords by dovecot-keywords;
 *   dovecot-keywords: "<index> <name>" lines;
 *   dovecot-uidlist version 3: "3 V<uidvalidity> N<nextuid> [G<guid>]"
 *   then "<uid> [<key><value> ...] :<base>" (P: the POP3 UIDL); version
 *   1: "1 <uidvalidity> <nextuid>" then "<uid> <name>";
 *   folder names: Maildir++ ".A.B" (modified UTF-7 as Dovecot writes
 *   them, or UTF-8) or LAYOUT=fs directories.
 * mbox (RFC 4155): messages after "From " lines, mboxrd or mboxo quoting,
 *   flags in Status / X-Status / X-Keywords, UIDs in X-IMAPbase / X-UID.
 */
#ifndef LOFT_MIGRATE_PARSE_H
#define LOFT_MIGRATE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* ---- Maildir ------------------------------------------------------ */

struct maildir_name {
	size_t base_len;        /* the name up to ":2," (or all of it) */
	unsigned flags;         /* enum store_flag */
	uint32_t keywords;      /* bit i: keyword letter 'a' + i */
	bool forwarded;         /* P: $Forwarded */
};
/* 0, or -1 with a reason in err (a name that is empty, has '/', a NUL,
 * starts with '.', or an info part that is not ":2,<flags>" with flags
 * in ASCII order, each once). */
int maildir_name_parse(const char *name, size_t len, struct maildir_name *r,
		       char *err, size_t err_size);

#define MAILDIR_KEYWORDS 26
struct maildir_keywords {
	char *names[MAILDIR_KEYWORDS];   /* NULL: letter unused */
};
/* dovecot-keywords. Lines that are not "<0-25> <keyword>" with a valid
 * IMAP keyword are errors (line number in err); an index given twice
 * too. */
int maildir_keywords_parse(const char *data, size_t len,
			   struct maildir_keywords *kw, char *err,
			   size_t err_size);
void maildir_keywords_free(struct maildir_keywords *kw);

struct maildir_uidrec {
	uint32_t uid;
	char *base;             /* file name without the info part */
	char *pop3_uidl;        /* P field, NULL if none */
};
struct maildir_uidlist {
	unsigned version;
	uint32_t uidvalidity, uidnext;   /* uidnext: max(N, last uid + 1) */
	struct maildir_uidrec *recs;     /* in file order (ascending UIDs) */
	size_t count;
};
/* dovecot-uidlist. -1 with the line in err: unknown version, a bad
 * header, UIDs not ascending or repeated, a base named twice. */
int maildir_uidlist_parse(const char *data, size_t len,
			  struct maildir_uidlist *ul, char *err,
			  size_t err_size);
void maildir_uidlist_free(struct maildir_uidlist *ul);

/* A folder's name from its directory: Maildir++ ".A.B" -> "A/B" (the
 * leading dot required), LAYOUT=fs "A/B" as it is. Each component is
 * decoded from modified UTF-7 when it is valid mUTF-7, else taken as
 * UTF-8; -1 if it is neither, or empty, "." or "..". Appended to out. */
int maildir_folder_name(const char *dir, size_t len, bool fs_layout,
			struct buf *out);
/* The inverse for export: a Loft name -> ".A.B" in modified UTF-7.
 * -1 for a name with a "." in a component (Maildir++ cannot say it). */
int maildir_folder_dir(const char *name, struct buf *out);

/* Flags and keywords -> ":2,<letters>" for export. kw_index gives each
 * keyword's letter index (-1: none). */
void maildir_info_format(unsigned flags, bool forwarded, uint32_t keywords,
			 struct buf *out);

/* ---- mbox --------------------------------------------------------- */

enum mbox_format { MBOX_RD, MBOX_O };

/* A From_ line ("From <sender> <asctime date>[ <tz>]"), without its line
 * end: whether it is one, and its date (UTC unless a numeric zone is
 * given). */
bool mbox_from_line(const char *line, size_t len, time_t *date_r);

struct mbox_parser;
struct mbox_callbacks {
	/* A message starts: its From_ line (no line end) and date. */
	void (*begin)(void *ctx, const char *from, size_t len, time_t date);
	/* Bytes of the message, unquoted, line ends as in the file. */
	void (*data)(void *ctx, const char *data, size_t len);
	/* The message ended (the blank line before the next From_ or the
	 * end of the file is not part of it). */
	void (*end)(void *ctx);
	void *ctx;
};
struct mbox_parser *mbox_parser_create(enum mbox_format format,
				       const struct mbox_callbacks *cb);
/* Any split of the input gives the same calls. Bytes before the first
 * From_ line are junk: counted (mbox_parser_junk), not a message. */
void mbox_parser_feed(struct mbox_parser *p, const char *data, size_t len);
void mbox_parser_finish(struct mbox_parser *p);
uint64_t mbox_parser_junk(const struct mbox_parser *p);
void mbox_parser_destroy(struct mbox_parser **p);

/* What the header fields Dovecot and UW-IMAP keep in an mbox say. */
struct mbox_meta {
	unsigned flags;            /* enum store_flag */
	char **keywords;           /* X-Keywords */
	size_t keyword_count;
	uint32_t uid;              /* X-UID, 0: none */
	uint32_t uidvalidity;      /* X-IMAPbase (first message), 0: none */
	uint32_t uidnext;
	bool pseudo;               /* X-IMAP: UW-IMAP's folder data message,
				      not mail */
};
/* Reads Status, X-Status, X-Keywords, X-UID, X-IMAPbase (and X-IMAP)
 * from a header block and appends the block to out without them and
 * without Content-Length (Dovecot's own; these are not stored, as in
 * Dovecot). */
void mbox_header_filter(const char *hdr, size_t len, struct buf *out,
			struct mbox_meta *meta);
void mbox_meta_free(struct mbox_meta *meta);
/* A From_ line for export: "From MAILER-DAEMON <asctime UTC>". */
void mbox_from_format(time_t date, struct buf *out);
/* The same naming the envelope sender (one word, no spaces: the
 * caller checks). */
void mbox_from_format_sender(const char *sender, time_t date,
			     struct buf *out);

/* ---- IMAP client responses (imap-resp.c) ------------------------- */

enum imap_item_type { IMAP_ATOM, IMAP_STRING, IMAP_NIL, IMAP_LIST,
		      IMAP_SECTION };
struct imap_item {
	enum imap_item_type type;
	size_t off, len;          /* in the response, or in strings */
	bool in_strings;          /* a quoted string, unescaped */
	unsigned first, next;     /* 1-based item indexes, 0: none */
	unsigned children;
};
#define IMAP_RESP_ITEMS 4096
#define IMAP_RESP_DEPTH 16
struct imap_resp {
	const char *data;
	struct buf strings;       /* buf_init it once; reused */
	struct imap_item items[IMAP_RESP_ITEMS];
	unsigned count;           /* items[0]: the response; its children:
				     tag, word, then the rest */
	const char *text;         /* status responses: the text after the
				     [code]; "+": the continuation's */
	size_t text_len;
};
/* One whole response (line, literals, final CRLF). -1: not IMAP. */
int imap_resp_parse(const char *s, size_t len, struct imap_resp *r);
/* The n-th child (0-based) of a list/atom, or NULL. */
const struct imap_item *imap_resp_child(const struct imap_resp *r,
					const struct imap_item *it, unsigned n);
const struct imap_item *imap_resp_next(const struct imap_resp *r,
				       const struct imap_item *it);
const char *imap_item_data(const struct imap_resp *r,
			   const struct imap_item *it);
bool imap_item_is(const struct imap_resp *r, const struct imap_item *it,
		  const char *word);
bool imap_item_u64(const struct imap_resp *r, const struct imap_item *it,
		   uint64_t *v_r);

/* An IMAP UID set as VANISHED gives it ("1:3,7,9:12"; RFC 9051
 * sequence-set without "*"): ranges (lo <= hi; caller frees), at most
 * IMAP_UID_SET_MAX of them. -1: not a UID set. */
#define IMAP_UID_SET_MAX 100000
struct store_uid_range;
int imap_uid_set_parse(const char *s, size_t len, struct store_uid_range **r_r,
		       size_t *count_r);
bool imap_uid_set_has(const struct store_uid_range *r, size_t n, uint32_t uid);

/* One line of a POP3 UIDL listing, "n uidl" (line end optional): the
 * UIDL 1-70 characters 0x21-0x7E (RFC 1939 7), copied to uidl. */
bool pop3_uidl_line(const char *line, size_t len, unsigned *num_r,
		    char uidl[71]);

/* An IMAP keyword (RFC 3501 atom minus flag chars): what Loft stores. */
bool migrate_keyword_valid(const char *s, size_t len);

#endif
