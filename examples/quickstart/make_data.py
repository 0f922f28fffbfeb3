"""Make the quickstart's data: loan applicants with a table row, a note, a statement image
and a call recording, whose label (``bad``) depends on all four.

    python examples/quickstart/make_data.py            # writes examples/quickstart/data/
    python examples/quickstart/make_data.py --rows 2000 --out /tmp/qs

Writes ``train.csv`` (labelled), ``new.csv`` (unlabelled rows to score), and the images
(32x32 PNG) and recordings (0.5 s, 16 kHz WAV) they name by relative path. Each row has
four hidden risk factors, one per modality (low income or no job; a worried note; a red
statement; a high-pitched call); ``bad`` is 1 when at least three are present, so no
single modality can tell the label alone. About 10% of rows lack the image or the call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_RATE = 16000
CALM = [
    "steady job for six years and savings in the bank",
    "salary paid on time every month, no other loans",
    "owns the flat, pays every bill by direct debit",
    "long contract with the employer and a small mortgage",
    "repaid the last car loan early",
]
WORRIED = [
    "missed two payments last year and asks for more time",
    "overdraft every month, wants to consolidate card debt",
    "was late on rent twice and has collectors calling",
    "lost hours at work and needs a loan to cover arrears",
    "several payday loans open and one in default",
]


def _image(path: Path, risky: bool, rng: np.random.Generator) -> None:
    from PIL import Image

    base = np.array([200, 40, 40] if risky else [40, 170, 60], dtype=float)
    pixels = base + rng.normal(0, 35, size=(32, 32, 3))
    y0, x0 = rng.integers(0, 20, size=2)
    pixels[y0 : y0 + 12, x0 : x0 + 12] = rng.integers(0, 255, size=3)  # a random patch
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def _call(path: Path, risky: bool, rng: np.random.Generator) -> None:
    import soundfile

    t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = rng.uniform(900, 1400) if risky else rng.uniform(150, 400)
    wave = 0.4 * np.sin(2 * np.pi * pitch * t) + rng.normal(0, 0.05, size=t.shape)
    soundfile.write(path, wave.astype(np.float32), SAMPLE_RATE)


def make_frame(
    n: int, folder: Path, *, seed: int = 0, missing: float = 0.1, prefix: str = "row"
) -> pd.DataFrame:
    """``n`` applicants; images and calls are written under ``folder`` and named by paths
    relative to it."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "calls").mkdir(parents=True, exist_ok=True)
    factors = rng.random((n, 4)) < 0.5  # table, text, image, audio
    employment = np.where(
        factors[:, 0],
        rng.choice(["unemployed", "self-employed"], n),
        rng.choice(["salaried", "self-employed"], n),
    )
    income = np.where(factors[:, 0], rng.normal(22, 6, n), rng.normal(48, 10, n)).round(1)
    rows = []
    for i in range(n):
        name = f"{prefix}{i:05d}"
        image = call = None
        if rng.random() >= missing:
            image = f"images/{name}.png"
            _image(folder / image, bool(factors[i, 2]), rng)
        if rng.random() >= missing:
            call = f"calls/{name}.wav"
            _call(folder / call, bool(factors[i, 3]), rng)
        rows.append(
            {
                "applicant_id": name,
                "income": float(income[i]),
                "employment": str(employment[i]),
                "note": str(rng.choice(WORRIED if factors[i, 1] else CALM)),
                "statement": image,
                "call": call,
                "bad": int(factors[i].sum() >= 3),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    """Write train.csv and new.csv (and their files) into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800, help="labelled rows (default 800)")
    parser.add_argument("--new", type=int, default=50, help="rows to score (default 50)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train = make_frame(args.rows, args.out, seed=args.seed)
    train.to_csv(args.out / "train.csv", index=False)
    new = make_frame(args.new, args.out, seed=args.seed + 1, prefix="new").drop(columns="bad")
    new.to_csv(args.out / "new.csv", index=False)
    print(
        f"wrote {len(train)} labelled rows ({train['bad'].mean():.0%} bad) and {len(new)} "
        f"new rows to {args.out}"
    )


if __name__ == "__main__":
    main()
