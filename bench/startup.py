"""Start-up of the real ``transfuse`` console script against bare Python and ``import torch``.

``transfuse --help`` and ``transfuse plugins`` (every plugin installed: the plugin manager
discovers the entry points and imports each plugin's registration module) are timed as
subprocesses, interleaved with ``python -c pass`` and ``python -c 'import torch'`` so that a
load change hits every command alike. Each command is also run once under
``python -X importtime`` to list the heavy libraries it imports: the target is none of them
(torch above all), and under 0.5 s.

    python bench/startup.py                      # about 30 s on 2 cores
    python bench/startup.py --repeat 21
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

#: Libraries that ``transfuse --help`` and ``transfuse plugins`` must not import.
HEAVY = (
    "torch",
    "torchvision",
    "torchaudio",
    "timm",
    "sentence_transformers",
    "transformers",
    "pandas",
    "numpy",
    "scipy",
    "sklearn",
    "lightgbm",
    "matplotlib",
    "PIL",
    "safetensors",
    "yaml",
)
TARGET_S = 0.5


def console_script() -> str:
    """The installed ``transfuse`` script next to this interpreter (else on PATH)."""
    here = Path(sys.executable).parent / "transfuse"
    found = str(here) if here.exists() else shutil.which("transfuse")
    if found is None:
        raise SystemExit("the transfuse console script is not installed; pip install -e .")
    return found


def user_env() -> dict[str, str]:
    """This environment, but writing ``.pyc`` files as Python does by default (a CI image
    that sets PYTHONDONTWRITEBYTECODE recompiles every transfuse module on each start)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(cmd: list[str]) -> float:
    """Wall time of one run of ``cmd``, in seconds (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=user_env())
    return time.perf_counter() - start


def imported_heavy(script: str, args: list[str]) -> list[str]:
    """The :data:`HEAVY` top-level packages the script imports, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", script, *args],
        check=True,
        capture_output=True,
        text=True,
        env=user_env(),
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return sorted(names & set(HEAVY))


def plugin_summary(script: str) -> str:
    """How many plugin distributions ``transfuse plugins`` lists, and how many loaded."""
    out = subprocess.run([script, "plugins", "--json"], check=True, capture_output=True)
    records = json.loads(out.stdout)
    ok = [r for r in records if r.get("status") == "active"]
    failed = [r["distribution"] for r in records if r not in ok]
    names = ", ".join(sorted(r["distribution"] for r in records))
    line = f"{len(records)} plugin records ({names})"
    return line + (f"; not loaded: {', '.join(failed)}" if failed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="runs per command (median kept)")
    args = parser.parse_args()
    script = console_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "transfuse --help": [script, "--help"],
        "transfuse plugins": [script, "plugins"],
    }
    for cmd in commands.values():  # warm the OS file cache once; writes the .pyc files
        run_once(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):  # interleaved
        for name, cmd in commands.items():
            times[name].append(run_once(cmd))
    median = {name: statistics.median(t) for name, t in times.items()}
    heavy = {
        "transfuse --help": imported_heavy(script, ["--help"]),
        "transfuse plugins": imported_heavy(script, ["plugins"]),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {load:.1f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(f"script: {script}; {plugin_summary(script)}")
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("PYTHONDONTWRITEBYTECODE is set here; unset for the timed runs (as for a user)")
    base, torch_s = median["python -c pass"], median["python -c 'import torch'"]
    print(f"\nmedian of {args.repeat} interleaved runs\n")
    print("| command | median s | min s | x python -c pass | x import torch | heavy imports |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, cmd_times in times.items():
        imported = (", ".join(heavy[name]) or "none") if name in heavy else ""
        print(
            f"| {name} | {median[name]:.3f} | {min(cmd_times):.3f} | {median[name] / base:.1f} "
            f"| {median[name] / torch_s:.2f} | {imported} |"
        )
    worst = max(median["transfuse --help"], median["transfuse plugins"])
    clean = not any(heavy.values())
    verdict = "met" if worst < TARGET_S and clean else "MISSED"
    print(
        f"\ntarget (< {TARGET_S} s, no torch or other heavy library imported): {verdict} "
        f"(slowest {worst:.3f} s; torch imported: {any('torch' in h for h in heavy.values())})"
    )


if __name__ == "__main__":
    main()
