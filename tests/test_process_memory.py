"""tests/process_memory.py's PeakTreeMemory against short peaks that sampling current RSS misses (a second)."""

import os
import signal
import subprocess
import sys

from tests.process_memory import PeakTreeMemory

MB = 1 << 20


def _python(script, **kwargs):
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, **kwargs)


def _rss(pid):
    """A process's RSS now: what a sampler of current RSS reads (tests/process_memory.py before VmHWM)."""
    with open(f"/proc/{pid}/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_50_ms_peak_between_two_samples_is_counted():
    """A process that holds 300 MB for 50 ms between two samples: its RSS at both is its baseline, so a sampler of
    current RSS (every 0.2 s, it met such a peak one time in four) sees nothing; the high-water marks see it."""
    size = 300 * MB
    child = _python("import sys, time\n"
                    "sys.stdin.readline()\n"
                    f"block = bytearray({size})  # zero-filled: every page written\n"
                    "time.sleep(0.05)\n"
                    "del block\n"
                    "print('freed', flush=True)\n"
                    "sys.stdin.readline()\n")
    try:
        memory = PeakTreeMemory(child.pid, interval=3600)  # a sample now and one at stop(), none between
        before = _rss(child.pid)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "freed\n"
        after = _rss(child.pid)
        peak = memory.stop()
    finally:
        child.kill()
        child.wait()
    assert max(before, after) < 100 * MB, (before, after)
    assert size <= peak < size + 100 * MB, peak


def test_a_process_that_ended_counts_with_its_last_mark():
    """Process A holds 200 MB at the first sample; then its child B takes 200 MB while A still holds its own, A
    ends and B frees its memory, all before the next sample. The tree held 400 MB, which that sample sees only by
    counting A, ended, with its mark at the first sample (and B, re-parented away from the tree when A ended, as
    the process seen there before)."""
    size = 200 * MB
    # B writes to A's stdout, which the test reads; B's stdin is A's pipe, which closes when A ends.
    b_script = (f"import os, sys, time\nprint(os.getpid(), flush=True)\nsys.stdin.readline()\n"
                f"block = bytearray({size})\nprint('held', flush=True)\nsys.stdin.read()\ndel block\n"
                "print('freed', flush=True)\ntime.sleep(60)\n")
    a_script = (f"import subprocess, sys\nblock = bytearray({size})\n"
                f"b = subprocess.Popen([sys.executable, '-c', {b_script!r}], stdin=subprocess.PIPE, text=True)\n"
                "sys.stdin.readline()\nb.stdin.write('\\n')\nb.stdin.flush()\nsys.stdin.readline()\n")
    a = _python(a_script)
    b_pid = None
    try:
        b_pid = int(a.stdout.readline())
        memory = PeakTreeMemory(a.pid, interval=3600)  # a sample now and one at stop(), none between
        first = memory.last
        for expected in ("held\n", "freed\n"):  # A tells B to take its 200 MB, then A ends
            a.stdin.write("\n")
            a.stdin.flush()
            assert a.stdout.readline() == expected
        peak = memory.stop()
    finally:
        a.kill()
        a.wait()
        if b_pid:
            os.kill(b_pid, signal.SIGKILL)
    assert size <= first < size + 100 * MB, first
    assert 2 * size <= peak < 2 * size + 100 * MB, peak
