/*
 * One write per commit into the WAL instead of two per page.
 *
 * SQLite writes a WAL frame as two pwrite() calls, its 24-byte header and
 * then the page, each frame starting 24 bytes past a page boundary, so a
 * commit of n pages costs 2n system calls and about 3n page-cache folio
 * walks (the header's, and the two the page straddles). A commit in the
 * mixed IMAP workload writes ~15 pages: pwrite was 7 % of the mail
 * process and its folio preparation most of that.
 *
 * This VFS wraps the one the connection would use otherwise. Only while
 * a thread runs a group commit's COMMIT (sq_wal_gather_begin/_end around
 * it, sq-commit.c) are that thread's appends to a WAL file gathered in a
 * buffer and written as one pwrite when SQLite syncs the WAL, which it
 * does before it publishes the commit in the WAL index: with
 * synchronous=FULL (the durability contract, DESIGN.md) no other
 * connection can read a frame before it is in the file. Anything but a
 * contiguous append (a read, a rewrite, a truncate, the size) writes the
 * buffer first, so the file sees the same bytes in the same order. What
 * is left when the COMMIT ends without a sync (it failed) is dropped: it
 * is past the last commit frame, which no reader or recovery uses, and
 * writing it later could land on frames another process appended since
 * (after a COMMIT that succeeded nothing is left; if something were, it
 * is written then).
 * Outside a COMMIT (frames spilled by a big transaction, checkpoints,
 * connections without fsync) every call goes straight through.
 */
#include "sq-private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under 128 KiB: SQLite's unix VFS writes at most 0x1ffff bytes per call
 * (seekAndWrite masks the length; pages are at most 64 KiB) and reports
 * the rest as SQLITE_FULL. A bigger commit goes out in pieces this size. */
#define GATHER_CAP ((size_t)112 * 1024)

struct gather_file {
	sqlite3_file base;
	sqlite3_file *real;     /* right behind this struct */
	char *buf;              /* pending bytes for [off, off + len) */
	size_t len;
	sqlite3_int64 off;
};

struct gather_vfs {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	char name[64];
};

/* the WAL file with pending bytes on this thread, if any */
static _Thread_local bool gather_on;
static _Thread_local struct gather_file *gather_pending;

_Atomic uint64_t sq_wal_gathered_writes;

#define G(f) ((struct gather_file *)(void *)(f))
#define REAL(f) (G(f)->real)

static void drop(struct gather_file *g)
{
	g->len = 0;
	free(g->buf);
	g->buf = NULL;
	if (gather_pending == g)
		gather_pending = NULL;
}

static int flush(struct gather_file *g)
{
	if (g->len == 0)
		return SQLITE_OK;
	int rc = g->real->pMethods->xWrite(g->real, g->buf, (int)g->len,
					   g->off);
	drop(g);
	return rc;
}

static int g_close(sqlite3_file *f)
{
	/* a pending append outlives no COMMIT: nothing to keep */
	drop(G(f));
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int g_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}

static int g_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off)
{
	struct gather_file *g = G(f);
	if (gather_on && g->len > 0 && off == g->off + (sqlite3_int64)g->len &&
	    g->len + (size_t)n <= GATHER_CAP) {
		memcpy(g->buf + g->len, b, (size_t)n);
		g->len += (size_t)n;
		return SQLITE_OK;
	}
	int rc = flush(g);
	if (rc != SQLITE_OK)
		return rc;
	if (!gather_on || (size_t)n >= GATHER_CAP ||
	    (gather_pending != NULL && gather_pending != g))
		return REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
	g->buf = xmalloc(GATHER_CAP);
	memcpy(g->buf, b, (size_t)n);
	g->off = off;
	g->len = (size_t)n;
	gather_pending = g;
	atomic_fetch_add(&sq_wal_gathered_writes, 1);
	return SQLITE_OK;
}

static int g_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int g_sync(sqlite3_file *f, int flags)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int g_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int g_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int g_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int g_reserved(sqlite3_file *f, int *r)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}

static int g_fcntl(sqlite3_file *f, int op, void *arg)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int g_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int g_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int g_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
		     void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int g_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void g_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int g_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int g_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	int rc = flush(G(f));
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int g_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods gather_io = {
	3, g_close, g_read, g_write, g_truncate, g_sync, g_size, g_lock,
	g_unlock, g_reserved, g_fcntl, g_sector, g_devchar, g_shm_map,
	g_shm_lock, g_shm_barrier, g_shm_unmap, g_fetch, g_unfetch,
};

static int g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
		  int flags, int *out_flags)
{
	sqlite3_vfs *real = ((struct gather_vfs *)(void *)vfs)->real;
	/* every other file is the wrapped VFS's own, in place */
	if (!(flags & SQLITE_OPEN_WAL))
		return real->xOpen(real, name, file, flags, out_flags);
	struct gather_file *g = G(file);
	memset(g, 0, sizeof(*g));
	g->real = (sqlite3_file *)(void *)&g[1];
	int rc = real->xOpen(real, name, g->real, flags, out_flags);
	if (g->real->pMethods != NULL)
		g->base.pMethods = &gather_io;
	return rc;
}

/* One gathering VFS per wrapped one (the default, or the fault VFS of
 * the tests), registered once. */
static struct gather_vfs vfs_default, vfs_fault;
static pthread_once_t once_default = PTHREAD_ONCE_INIT;
static pthread_once_t once_fault = PTHREAD_ONCE_INIT;

static void register_on(struct gather_vfs *g, const char *base)
{
	g->real = sqlite3_vfs_find(base);
	if (g->real == NULL)
		return;
	g->vfs = *g->real;
	snprintf(g->name, sizeof(g->name), "loft-wal-%s",
		 base != NULL ? base : "default");
	g->vfs.zName = g->name;
	g->vfs.szOsFile = (int)sizeof(struct gather_file) + g->real->szOsFile;
	g->vfs.xOpen = g_open;
	g->vfs.pNext = NULL;
	sqlite3_vfs_register(&g->vfs, 0);
}

static void register_default(void)
{
	register_on(&vfs_default, NULL);
}

static void register_fault(void)
{
	register_on(&vfs_fault, sq_fault_vfs());
}

const char *sq_wal_vfs(bool fsync)
{
	const char *base = sq_fault_vfs();
	/* without syncs a commit is published with no xSync before it */
	if (!fsync)
		return base;
	struct gather_vfs *g = base != NULL ? &vfs_fault : &vfs_default;
	pthread_once(base != NULL ? &once_fault : &once_default,
		     base != NULL ? register_fault : register_default);
	return g->real != NULL ? g->name : base;
}

void sq_wal_gather_begin(void)
{
	gather_on = true;
}

int sq_wal_gather_end(bool committed)
{
	gather_on = false;
	struct gather_file *g = gather_pending;
	if (g == NULL)
		return SQLITE_OK;
	/* a COMMIT that succeeded has synced everything; should SQLite
	 * ever not have, its frames are written, as without gathering */
	if (committed)
		return flush(g);
	drop(g);
	return SQLITE_OK;
}
