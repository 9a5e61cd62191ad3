/*
 * The payload of a change notification between nodes (pg-hub.c), apart
 * from libpq so the fuzz target (tests/fuzz/fuzz-store-pgnotify.c) and
 * tests can use it:  "<node hex> <user> <modseq> <mailbox>:<kind> ..."
 */
#ifndef LOFT_PG_NOTIFY_H
#define LOFT_PG_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/* The payload of one transaction's changes (same user and modseq). */
void pg_notify_format(uint64_t node, const struct store_change *changes,
		      size_t count, struct buf *out);
/* 0, or -1 for anything but a well-formed payload (a LOGOUT comes
 * alone, with mailbox 0 and modseq 0). */
int pg_notify_parse(const char *payload, uint64_t *node_r,
		    struct store_change *changes, size_t max, size_t *count_r);

#endif
