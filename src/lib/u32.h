/*
 * Arrays of uint32_t (UID lists, sequence numbers): the qsort/bsearch
 * order and an append that grows the array. One copy for every module.
 */
#ifndef LOFT_U32_H
#define LOFT_U32_H

#include <stddef.h>
#include <stdint.h>

/* Ascending order of two uint32_t, for qsort and bsearch. */
int u32_cmp(const void *a, const void *b);
/* Appends v to *a (n used of cap), doubling the array when full. */
void u32_push(uint32_t **a, size_t *n, size_t *cap, uint32_t v);

#endif
