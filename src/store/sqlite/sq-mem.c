/*
 * SQLite's memory, kept apart from the rest of the process.
 *
 * Debian's SQLite is built without lookaside (SQLITE_OMIT_LOOKASIDE), so
 * a connection's parsed schema, statements and page cache are thousands
 * of small malloc() calls. On glibc's heap they landed between the
 * objects a session keeps while it sits in IDLE (its client, buffers,
 * parser, view), made by the same worker thread during the same LOGIN
 * and SELECT. When the idle trim closed the connections, the sessions'
 * few bytes pinned most of the pages SQLite had used: 5.6 MB live held
 * 18.4 MB of heap pages with 1,000 idle sessions (issue 11).
 *
 * Here SQLite gets its own address range (reserved once, PROT_NONE until
 * used). Requests up to SQ_MEM_MAX_CLASS bytes come from 64 KiB slabs,
 * each slab holding one size class (16-byte steps to 128, then 8 classes
 * per doubling: at most 1/8 lost to rounding); a slab whose last object
 * is freed goes back to the system (MADV_DONTNEED) once more than
 * SQ_MEM_EMPTY_KEPT are empty, and all of them at sq_mem_release() (the
 * idle trim). Larger requests (bodies read through SQLite, big VDBE
 * programs) go to malloc(), where a large chunk pins no small objects;
 * so does everything once the range is used up. A pointer is ours when
 * it lies in the range: no per-object header.
 *
 * One mutex: SQLite already calls its allocator under its own global
 * mutex while it keeps memory statistics (the default), so it adds no
 * waiting. Not installed under AddressSanitizer, which checks SQLite's
 * buffers only when they come from its malloc.
 */
#include "sq-private.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define SQ_MEM_SLAB ((size_t)64 * 1024)
#define SQ_MEM_RANGE ((size_t)2 << 30)        /* address space reserved */
#define SQ_MEM_GROW ((size_t)1 << 20)         /* made usable at a time */
#define SQ_MEM_MAX_CLASS 8192
#define SQ_MEM_EMPTY_KEPT 64                  /* empty slabs kept resident */
#define SQ_MEM_CLASSES (8 + 8 * 6)            /* to 128, then 6 doublings */

struct slab {
	struct slab *next, *prev;   /* the class's slabs with room, or empty */
	void *free;                 /* freed objects (a list through them) */
	uint32_t bump;              /* offset of the next never-used object */
	uint16_t used;
	uint8_t cls;
	uint8_t state;              /* SLAB_* */
};

enum { SLAB_UNUSED, SLAB_PARTIAL, SLAB_FULL, SLAB_EMPTY };

static struct {
	pthread_mutex_t mu;
	char *base, *end;           /* the reserved range */
	char *top;                  /* slabs handed out up to here */
	char *usable;               /* read-write up to here */
	struct slab *meta;          /* one per slab of the range */
	struct slab *partial[SQ_MEM_CLASSES];
	struct slab *empty;         /* resident, no object */
	size_t empty_count;
	struct slab *released;      /* given back to the system */
	size_t slabs_used;          /* holding at least one object */
} mem = {.mu = PTHREAD_MUTEX_INITIALIZER};

static unsigned class_of(size_t n)
{
	if (n <= 128)
		return n <= 16 ? 0 : (unsigned)((n - 1) / 16);
	/* n - 1 in [2^b, 2^(b+1)): 8 classes, steps of 2^(b-3) */
	unsigned b = 63 - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
	return 8 + (b - 7) * 8 + (unsigned)(((n - 1) >> (b - 3)) & 7);
}

static size_t class_size(unsigned cls)
{
	if (cls < 8)
		return 16 * (size_t)(cls + 1);
	unsigned b = (cls - 8) / 8 + 7;
	return ((size_t)8 + (cls - 8) % 8 + 1) << (b - 3);
}

/* top only grows, under mu; a pointer handed out below it reached the
 * caller after that */
static bool ours(const void *p)
{
	return mem.base != NULL && (const char *)p >= mem.base &&
	       (const char *)p < __atomic_load_n(&mem.top, __ATOMIC_ACQUIRE);
}

static struct slab *slab_of(const void *p)
{
	return &mem.meta[(size_t)((const char *)p - mem.base) / SQ_MEM_SLAB];
}

static char *slab_addr(const struct slab *s)
{
	return mem.base + (size_t)(s - mem.meta) * SQ_MEM_SLAB;
}

static void list_push(struct slab **head, struct slab *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head != NULL)
		(*head)->prev = s;
	*head = s;
}

static void list_drop(struct slab **head, struct slab *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

/* An empty slab for cls: a resident one, a released one, or a new one
 * from the range. NULL when the range is used up. */
static struct slab *slab_new(unsigned cls)
{
	struct slab *s = mem.empty;
	if (s != NULL) {
		list_drop(&mem.empty, s);
		mem.empty_count--;
	} else if ((s = mem.released) != NULL) {
		list_drop(&mem.released, s);
	} else {
		if (mem.top + SQ_MEM_SLAB > mem.end)
			return NULL;
		if (mem.top + SQ_MEM_SLAB > mem.usable) {
			size_t grow = SQ_MEM_GROW;
			if ((size_t)(mem.end - mem.usable) < grow)
				grow = (size_t)(mem.end - mem.usable);
			if (mprotect(mem.usable, grow, PROT_READ | PROT_WRITE) < 0)
				return NULL;
			mem.usable += grow;
		}
		s = slab_of(mem.top);
		__atomic_store_n(&mem.top, mem.top + SQ_MEM_SLAB,
				 __ATOMIC_RELEASE);
	}
	s->cls = (uint8_t)cls;
	s->free = NULL;
	s->bump = 0;
	s->used = 0;
	s->state = SLAB_PARTIAL;
	list_push(&mem.partial[cls], s);
	return s;
}

static void *slab_alloc(unsigned cls)
{
	struct slab *s = mem.partial[cls];
	if (s == NULL && (s = slab_new(cls)) == NULL)
		return NULL;
	size_t size = class_size(cls);
	void *p;
	if (s->free != NULL) {
		p = s->free;
		s->free = *(void **)p;
	} else {
		p = slab_addr(s) + s->bump;
		s->bump += (uint32_t)size;
	}
	if (s->used++ == 0)
		mem.slabs_used++;
	if (s->free == NULL && s->bump + size > SQ_MEM_SLAB) {
		list_drop(&mem.partial[cls], s);
		s->state = SLAB_FULL;
	}
	return p;
}

static void slab_free(void *p)
{
	struct slab *s = slab_of(p);
	*(void **)p = s->free;
	s->free = p;
	if (s->state == SLAB_FULL) {
		s->state = SLAB_PARTIAL;
		list_push(&mem.partial[s->cls], s);
	}
	if (--s->used > 0)
		return;
	mem.slabs_used--;
	list_drop(&mem.partial[s->cls], s);
	if (mem.empty_count < SQ_MEM_EMPTY_KEPT) {
		s->state = SLAB_EMPTY;
		list_push(&mem.empty, s);
		mem.empty_count++;
	} else {
		madvise(slab_addr(s), SQ_MEM_SLAB, MADV_DONTNEED);
		s->state = SLAB_UNUSED;
		list_push(&mem.released, s);
	}
}

void *sq_mem_malloc(int n)
{
	if (n <= 0)
		return NULL;
	if (n <= SQ_MEM_MAX_CLASS && mem.base != NULL) {
		pthread_mutex_lock(&mem.mu);
		void *p = slab_alloc(class_of((size_t)n));
		pthread_mutex_unlock(&mem.mu);
		if (p != NULL)
			return p;
	}
	return malloc((size_t)n);
}

void sq_mem_free(void *p)
{
	if (p == NULL)
		return;
	if (!ours(p)) {
		free(p);
		return;
	}
	pthread_mutex_lock(&mem.mu);
	slab_free(p);
	pthread_mutex_unlock(&mem.mu);
}

int sq_mem_size(void *p)
{
	if (p == NULL)
		return 0;
	if (!ours(p))
		return (int)malloc_usable_size(p);
	/* a slab's class does not change while it holds p */
	return (int)class_size(slab_of(p)->cls);
}

void *sq_mem_realloc(void *p, int n)
{
	if (p == NULL)
		return sq_mem_malloc(n);
	if (n <= 0)
		return NULL;   /* SQLite never asks this; it frees instead */
	if (!ours(p)) {
		/* stays on malloc's side (it was large, or the range full) */
		return realloc(p, (size_t)n);
	}
	size_t have = (size_t)sq_mem_size(p);
	if ((size_t)n <= have && class_of((size_t)n) == slab_of(p)->cls)
		return p;
	void *q = sq_mem_malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, have < (size_t)n ? have : (size_t)n);
	sq_mem_free(p);
	return q;
}

static int sq_mem_roundup(int n)
{
	if (n <= 0 || n > SQ_MEM_MAX_CLASS)
		return n > 0 ? (n + 15) & ~15 : n;
	return (int)class_size(class_of((size_t)n));
}

static int sq_mem_init(void *ctx)
{
	(void)ctx;
	return SQLITE_OK;
}

static void sq_mem_shutdown(void *ctx)
{
	(void)ctx;
}

void sq_mem_release(void)
{
	pthread_mutex_lock(&mem.mu);
	struct slab *s;
	while ((s = mem.empty) != NULL) {
		list_drop(&mem.empty, s);
		madvise(slab_addr(s), SQ_MEM_SLAB, MADV_DONTNEED);
		s->state = SLAB_UNUSED;
		list_push(&mem.released, s);
	}
	mem.empty_count = 0;
	pthread_mutex_unlock(&mem.mu);
}

size_t sq_mem_resident_slabs(void)
{
	pthread_mutex_lock(&mem.mu);
	size_t n = mem.slabs_used + mem.empty_count;
	pthread_mutex_unlock(&mem.mu);
	return n;
}

bool sq_mem_reserve(void)
{
	if (mem.base != NULL)
		return true;
	size_t slabs = SQ_MEM_RANGE / SQ_MEM_SLAB;
	/* the slab table is touched only where slabs are used */
	void *meta = mmap(NULL, slabs * sizeof(struct slab),
			  PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (meta == MAP_FAILED)
		return false;
	/* aligned to a slab, so a slab never straddles the range's end */
	void *r = mmap(NULL, SQ_MEM_RANGE + SQ_MEM_SLAB, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED) {
		munmap(meta, slabs * sizeof(struct slab));
		return false;
	}
	uintptr_t a = ((uintptr_t)r + SQ_MEM_SLAB - 1) & ~(SQ_MEM_SLAB - 1);
	mem.meta = meta;
	mem.base = (char *)a;
	mem.end = mem.base + SQ_MEM_RANGE;
	mem.top = mem.usable = mem.base;
	return true;
}

/* a fork while another thread allocates leaves the child the lock */
static void fork_prepare(void)
{
	pthread_mutex_lock(&mem.mu);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&mem.mu);
}

#if defined(__SANITIZE_ADDRESS__)
#define SQ_MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SQ_MEM_ASAN 1
#endif
#endif
#ifndef SQ_MEM_ASAN
#define SQ_MEM_ASAN 0
#endif

void sq_mem_install(void)
{
	static const sqlite3_mem_methods methods = {
		sq_mem_malloc, sq_mem_free, sq_mem_realloc, sq_mem_size,
		sq_mem_roundup, sq_mem_init, sq_mem_shutdown, NULL};
	if (!SQ_MEM_ASAN && sq_mem_reserve() &&
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK)
		pthread_atfork(fork_prepare, fork_done, fork_done);
}
