"""Resident memory of a process and everything it started, from /proc (Linux): the exporter converts each tower in
a process of its own, so its memory is the sum over its process tree, which /usr/bin/time's "Maximum resident
set size" (the largest single process) does not give."""

import os
import threading


def tree_rss_bytes(root_pid):
    """Resident memory of root_pid and all its descendants now."""
    children = {}
    rss = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as file:
                rss[int(entry)] = int(file.read().split()[1]) * page
        except (OSError, IndexError, ValueError):  # the process ended while we read it
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakTreeMemory:
    """Samples tree_rss_bytes(pid) every `interval` seconds in a thread until stop(); .peak is the largest sample.
    A peak shorter than the interval can be missed, so bounds checked with it need that much room."""

    def __init__(self, pid, interval=0.2):
        self.pid, self.interval, self.peak, self.last = pid, interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.last = tree_rss_bytes(self.pid)
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak
