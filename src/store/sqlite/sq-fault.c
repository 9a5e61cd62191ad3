/*
 * Fault injection for tests (the failing backend DESIGN.md asks for): a
 * SQLite VFS that wraps the default one and makes the k-th and every
 * later xWrite, xSync or xTruncate of every index fail (SQLITE_FULL for
 * a write, as ENOSPC gives; SQLITE_IOERR_* otherwise) until disarmed,
 * as a disk that fills up and then gets space back. It is registered and
 * used only after sq_fault_enable() (tests call it before opening any
 * account); loftd never does, and its connections use the default VFS.
 */
#include "sq-private.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define FAULT_VFS "loft-fault"

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static atomic_bool enabled;
static atomic_int armed_ops;        /* SQ_FAULT_* mask */
static atomic_long armed_at;        /* the k-th matching call fails */
static atomic_long seen;            /* matching calls since armed */
static atomic_bool fired;
static atomic_bool eio;             /* writes fail with EIO, not ENOSPC */

struct fault_file {
	sqlite3_file base;
	sqlite3_file *real;     /* right behind this struct */
};

static int fault_check(int op, int code)
{
	if ((atomic_load(&armed_ops) & op) == 0)
		return SQLITE_OK;
	if (atomic_fetch_add(&seen, 1) + 1 < atomic_load(&armed_at))
		return SQLITE_OK;
	atomic_store(&fired, true);
	return code;
}

#define REAL(f) (((struct fault_file *)(f))->real)

static int f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off)
{
	int rc = fault_check(SQ_FAULT_WRITE, atomic_load(&eio) ?
				     SQLITE_IOERR_WRITE : SQLITE_FULL);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = fault_check(SQ_FAULT_TRUNCATE, SQLITE_IOERR_TRUNCATE);
	return rc != SQLITE_OK ? rc
			       : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
	int rc = fault_check(SQ_FAULT_SYNC, SQLITE_IOERR_FSYNC);
	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_reserved(sqlite3_file *f, int *r)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
		     void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
	3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock,
	f_unlock, f_reserved, f_fcntl, f_sector, f_devchar, f_shm_map,
	f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
		  int flags, int *out_flags)
{
	(void)vfs;
	struct fault_file *p = (struct fault_file *)file;
	p->real = (sqlite3_file *)&p[1];
	p->base.pMethods = NULL;
	int rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out_flags);
	if (p->real->pMethods != NULL)
		p->base.pMethods = &fault_io;
	return rc;
}

static void fault_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	fault_vfs = *real_vfs;
	fault_vfs.zName = FAULT_VFS;
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) +
			     real_vfs->szOsFile;
	fault_vfs.xOpen = f_open;
	fault_vfs.pNext = NULL;
	sqlite3_vfs_register(&fault_vfs, 0);
}

void sq_fault_enable(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, fault_register);
	atomic_store(&enabled, true);
}

const char *sq_fault_vfs(void)
{
	return atomic_load(&enabled) ? FAULT_VFS : NULL;
}

void sq_fault_arm(int ops, long k, bool io_error)
{
	atomic_store(&armed_ops, 0);
	atomic_store(&seen, 0);
	atomic_store(&fired, false);
	atomic_store(&eio, io_error);
	atomic_store(&armed_at, k);
	atomic_store(&armed_ops, ops);
}

long sq_fault_calls(void)
{
	return atomic_load(&seen);
}

bool sq_fault_disarm(void)
{
	atomic_store(&armed_ops, 0);
	return atomic_load(&fired);
}
