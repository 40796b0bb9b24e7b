"""The jaxtyping shape and dtype annotations hold: every annotated function and module field is
checked at run time (jaxtyping's import hook with beartype) over a workload of the API."""

import os
import subprocess
import sys
from pathlib import Path


def test_annotations_hold_on_a_workload_of_the_api():
    script = Path(__file__).with_name("annotations_check.py")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-4000:]
