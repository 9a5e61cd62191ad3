"""A workload's clients spread over several client processes, so that the
figure measures the server and not the Python process driving it.

One asyncio process driving 50 IMAP sessions at a few thousand operations
per second needs a good share of a core of its own, and its one event loop
queues every session's replies behind the others': on a 2-core machine it
competes with the server it measures. run_split() forks one process per
part of the clients; all of them start the clock together once every
process has its sessions ready (logged in), and the server's CPU seconds
(every process of the server, threads and reaped children included) are
taken at that start and once every process has ended its timed part.
"""

import asyncio
import multiprocessing
import os
import threading
import time
import traceback

# generous bounds for one process to get its sessions ready (logins at
# Loft's production argon2 cost on a loaded machine) and to end its part
READY_S = 900
END_S = 900


def default_procs():
    """One client process per core, plus one: a process blocked on the
    server is not left holding the only runnable event loop."""
    return (os.cpu_count() or 1) + 1


class Sync:
    """What a part's coroutine uses to meet the others: `await
    sync.started()` once its sessions are ready returns the common start
    (time.monotonic(), one clock for every process); `await
    sync.finished()` once its timed work is over, before logging out."""

    def __init__(self, ctx, parts):
        self.start = ctx.Value("d", 0.0)
        start = self.start

        def mark():
            start.value = time.monotonic()
        self.ready = ctx.Barrier(parts + 1, action=mark)
        self.done = ctx.Barrier(parts + 1)
        self.cpu0 = self.cpu1 = None

    async def started(self):
        if self.cpu0 is None:
            await asyncio.get_running_loop().run_in_executor(
                None, self.ready.wait, READY_S)
            self.cpu0 = time.process_time()
        return self.start.value

    async def finished(self):
        if self.cpu1 is None:
            await self.started()
            await asyncio.get_running_loop().run_in_executor(
                None, self.done.wait, END_S)
            self.cpu1 = time.process_time()

    def abort(self):
        self.ready.abort()
        self.done.abort()


def _child(target, part, work, sync, out):
    try:
        res = asyncio.run(_run_part(target, part, work, sync))
        res["client_cpu"] = sync.cpu1 - sync.cpu0
        out.put(res)
    except BaseException:
        sync.abort()
        out.put({"failed": traceback.format_exc()})


async def _run_part(target, part, work, sync):
    res = await work(target, part, sync)
    await sync.finished()
    return res


class Split:
    """The parts' results and what run_split measured around them."""

    def __init__(self, results, wall, server_cpu):
        self.results = results        # one dict per part, in part order
        self.wall = wall              # common start -> last part finished
        self.server_cpu = server_cpu  # the server's CPU s in that window
        self.client_cpu = sum(r["client_cpu"] for r in results)


def run_split(target, parts, work):
    """Runs `await work(target, part, sync)` in one forked process per
    element of parts (asyncio.run in each); work returns a dict of
    picklable figures. Raises RuntimeError with the child's traceback if a
    part fails. Call it outside any running event loop."""
    ctx = multiprocessing.get_context("fork")
    sync = Sync(ctx, len(parts))
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(target, p, work, sync, out),
                         daemon=True) for p in parts]
    for p in procs:
        p.start()
    # the children's results are read while they run: a child blocks on a
    # full pipe until its result is taken
    got = []
    reader = threading.Thread(target=lambda: got.extend(
        out.get() for _ in procs), daemon=True)
    reader.start()
    failed = None
    try:
        sync.ready.wait(READY_S)
        cpu0, t0 = target.cpu(), sync.start.value
        sync.done.wait(END_S)
        cpu1, t1 = target.cpu(), time.monotonic()
    except threading.BrokenBarrierError:
        failed = "a client process failed"
    reader.join(READY_S + END_S)
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.kill()
            p.join()
    errs = [r["failed"] for r in got if "failed" in r]
    if errs or failed or len(got) != len(procs):
        raise RuntimeError("%s\n%s" % (failed or "client processes failed",
                                       "\n".join(errs)))
    # order of arrival is not part order: parts say who they are
    got.sort(key=lambda r: r.get("part", 0))
    return Split(got, t1 - t0, cpu1 - cpu0)
