"""Peak resident memory of a process and everything it starts, from /proc (Linux): the exporter converts each tower
in a process of its own, so its memory is the sum over its process tree, which /usr/bin/time's "Maximum resident
set size" (the largest single process) does not give.

Sampling each process's current RSS misses whatever rises and falls between two samples (a 50 ms peak, between
samples 0.2 s apart). PeakTreeMemory reads instead each process's high-water mark, VmHWM in /proc/PID/status,
which the kernel raises before any unmapping lowers the RSS (munmap, madvise, reclaim), and resets it to the current
RSS after reading it (writing 5 to /proc/PID/clear_refs, Linux 4.0 and later). A process's high-water mark read at
one sample is thus the largest RSS it had since the one before, and the sum over the processes alive at this sample
or at the one before (for a process that ended since, the mark it had at its last sample) bounds the tree's RSS at
every moment between the two. The largest such sum is .peak. What it can still miss:
- a process's growth in its last interval: from its last sample to its end (the kernel does not keep an ended
  process's mark), and all of a process that starts and ends between two samples;
- a process's growth between the sample before it calls exec and the exec (the new program starts a new mark);
- what a process allocates and frees in the microseconds between the read of its mark and its reset, and the
  growth of the processes read first in a sample while the others are read (microseconds per process);
- the kernel's RSS count itself is per-CPU batched (off by well under a megabyte per process).
It counts more than the memory in use where processes share it, as any sum of RSS does: pages mapped by several
processes count once in each, and a child between fork (or vfork) and exec counts its parent's memory once more,
at the sample that sees it there and, if it ends before the next one, at that one too.
The processes of the tree are found from each sample's /proc/PID/stat parent links, from the root and from every
process seen in the tree before (a process whose parent ended stays counted).

The resets change what the kernel reports for the measured processes afterwards: their VmHWM and their
getrusage/wait4 ru_maxrss (so /usr/bin/time's figure) drop to about the peak of their last interval; .largest
gives the largest single process's peak instead."""

import errno
import os
import re
import threading

_HWM = re.compile(rb"^VmHWM:\s+(\d+) kB$", re.MULTILINE)


def _children_by_parent():
    """{parent pid: [child pid, ...]} of the processes there are now."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                parent = int(file.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended while we read it
            continue
        children.setdefault(parent, []).append(int(entry))
    return children


def _unended(error, pid):
    """`error` as is when process `pid` has ended (ENOENT, ESRCH), else naming what the sampler needs."""
    if error.errno in (errno.ENOENT, errno.ESRCH):
        return error
    return OSError(error.errno, f"cannot read and reset the memory high-water mark of process {pid} "
                                f"(/proc/{pid}/status, /proc/{pid}/clear_refs: Linux 4.0 or later, and the user's "
                                f"own processes): {error.strerror}")


class _Process:
    """One process's /proc/PID/status and /proc/PID/clear_refs, open: the descriptors name that process, not its
    pid, so a pid the kernel gives to a new process after this one ended reads as ended here."""

    def __init__(self, pid):
        self.status = os.open(f"/proc/{pid}/status", os.O_RDONLY)
        try:
            self.clear_refs = os.open(f"/proc/{pid}/clear_refs", os.O_WRONLY)
        except OSError as error:
            os.close(self.status)
            raise _unended(error, pid)
        self.mark = 0  # the high-water mark read at its last sample, bytes

    def read_and_reset(self, pid):
        """The process's high-water mark since its last reset, in bytes, which is reset to its RSS now; None when
        it has ended (a zombie has no memory and no VmHWM line)."""
        try:
            match = _HWM.search(os.pread(self.status, 1 << 16, 0))
            if match:
                os.write(self.clear_refs, b"5")
        except OSError as error:
            if error.errno == errno.ESRCH:
                return None
            raise _unended(error, pid)
        return int(match.group(1)) * 1024 if match else None

    def close(self):
        os.close(self.status)
        os.close(self.clear_refs)


class PeakTreeMemory:
    """Bounds the RSS of the process tree under `pid` from a sample now, one every `interval` seconds in a thread,
    and one at stop() (module docstring): .peak, the largest bound so far in bytes; .last, the last sample's;
    .largest, the largest peak of a single process."""

    def __init__(self, pid, interval=0.2):
        self.pid, self.interval = pid, interval
        self.peak = self.last = self.largest = 0
        self._processes = {}  # pid -> _Process, those alive at the last sample
        self._error = None
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        children = _children_by_parent()
        bound, alive = 0, {}
        for pid, process in self._processes.items():
            mark = process.read_and_reset(pid)
            if mark is None:  # ended since the last sample: its mark then, its growth since is not known
                bound += process.mark
                process.close()
            else:
                process.mark = mark
                alive[pid] = process
        stack = [self.pid, *alive]
        seen = set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            stack.extend(children.get(pid, ()))
            if pid not in alive:
                try:
                    process = _Process(pid)
                except OSError as error:
                    if error.errno in (errno.ENOENT, errno.ESRCH):  # ended since the listing
                        continue
                    raise
                mark = process.read_and_reset(pid)
                if mark is None:
                    process.close()
                    continue
                process.mark = mark
                alive[pid] = process
        for process in alive.values():
            bound += process.mark
            self.largest = max(self.largest, process.mark)
        self._processes = alive
        self.last = bound
        self.peak = max(self.peak, bound)

    def _run(self):
        try:
            while not self._stop.wait(self.interval):
                self._sample()
            self._sample()
        except OSError as error:  # stop() raises it
            self._error = error

    def stop(self):
        """Takes a last sample, closes the processes' files and returns .peak."""
        self._stop.set()
        self._thread.join()
        for process in self._processes.values():
            process.close()
        self._processes = {}
        if self._error:
            raise self._error
        return self.peak
