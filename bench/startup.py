"""How long `transfuse plugins` takes, as a ratio to a bare `python -c pass`.

Run: python bench/startup.py [--repeat N]. Target: under 0.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], repeat: int) -> float:
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    base = timed([sys.executable, "-c", "pass"], args.repeat)
    rows = {
        "import transfuse": [sys.executable, "-c", "import transfuse"],
        "transfuse --help": [sys.executable, "-m", "transfuse.cli", "--help"],
        "transfuse plugins": [sys.executable, "-m", "transfuse.cli", "plugins"],
    }
    print(f"{'command':<20} {'median s':>9} {'x python -c pass':>17}")
    print(f"{'python -c pass':<20} {base:>9.3f} {1.0:>17.1f}")
    for name, cmd in rows.items():
        t = timed(cmd, args.repeat)
        print(f"{name:<20} {t:>9.3f} {t / base:>17.1f}")


if __name__ == "__main__":
    main()
