"""Control-loop benchmark (``make bench``): ``robot-brain bench control`` at 1 kHz for 10 s.

Extra arguments are passed through, e.g. ``python bench/control.py --rate 500 --seconds 5 --json``.
Results and the exact commands are recorded in docs/benchmarks.md (control section).
"""

from __future__ import annotations

import sys

from robot_brain.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "control", *(sys.argv[1:] or ["--rate", "1000", "--seconds", "10"])]))
