"""The one-read-per-process /proc scan agrees with psutil and measures CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from supervisor import _procscan

pytestmark = pytest.mark.skipif(not _procscan.available(), reason="needs Linux /proc")


def test_parse_stat_handles_names_with_spaces_and_parentheses():
    line = b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 777 1000 300 0"
    st = _procscan.parse_stat(4242, line)
    assert st is not None
    assert (st.name, st.ppid, st.start) == ("my (odd) name", 1, 777)
    assert st.cpu_seconds == pytest.approx(300 / os.sysconf("SC_CLK_TCK"))
    assert st.rss == 300 * os.sysconf("SC_PAGE_SIZE")


def test_scan_agrees_with_psutil_about_this_process():
    me = {p.pid: p for p in _procscan.scan()}[os.getpid()]
    ps = psutil.Process()
    assert me.ppid == ps.ppid()
    assert me.name == ps.name()
    assert abs(me.rss - ps.memory_info().rss) < 16 * 1024 * 1024


def test_cpu_meter_sees_a_burner_and_not_a_sleeper():
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        meter = _procscan.CpuMeter()
        meter.percents(_procscan.scan())
        time.sleep(0.5)  # a measuring window, not synchronisation
        pct = meter.percents(_procscan.scan())
        assert pct[burner.pid] > 40
        assert pct[sleeper.pid] < 5
    finally:
        for p in (burner, sleeper):
            p.kill()
            p.wait()
