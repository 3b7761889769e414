"""glibc malloc settings (lensml.sim.allocator)."""

from __future__ import annotations

import subprocess
import sys


def _run(env_value: str | None) -> str:
    code = (
        "import resource, numpy as np\n"
        "from lensml.sim.allocator import keep_freed_memory\n"
        "applied = keep_freed_memory()\n"
        "def chunk():  # like a chunk of samples: several buffers, then all freed\n"
        "    bufs = [np.ones(2**20) for _ in range(4)]\n"
        "for _ in range(3): chunk()\n"
        "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(20): chunk()\n"
        "print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)\n"
    )
    env = {"PATH": "/usr/bin:/bin"} | ({"LENSML_KEEP_FREED_MEMORY": env_value} if env_value else {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return proc.stdout


def test_freed_buffers_are_reused_without_page_faults():
    """4 x 8 MB buffers allocated and freed 20 times: page faults only without the setting (opt-out)."""
    applied, faults = _run(None).split()
    if applied != "True":  # not glibc: nothing to test
        return
    assert int(faults) < 100
    off_applied, off_faults = _run("0").split()
    assert off_applied == "False" and int(off_faults) > 20 * 1000
