"""The trainer's overhead: transfuse against a hand-written PyTorch loop on the same tensors.

The model is the same in both (real LendingClub loans: ``tabular.mlp`` over nine
application columns + the job title through frozen all-MiniLM-L6-v2, attention fusion,
binary head), starts from the same weights and trains the same number of steps with AdamW
and the same warm-up + cosine schedule, then scores the validation rows each epoch. The
hand-written loop holds every input as a ready tensor in memory and slices it per batch;
transfuse goes through its trainer and data path (frame rows, ``prepare``, cache lookups,
the DataLoader). The text embeddings are cached first, so both measure training, not
MiniLM. Target: throughput ratio >= 0.95.

    python bench/overhead.py                     # CPU, about 2 minutes on 2 cores
    python bench/overhead.py --epochs 2 --repeat 1
    python bench/overhead.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from typing import Any

import torch
from perfkit import add_device_args, loan_config, loans, machine, print_table, set_threads


def materialise(data: Any) -> dict[str, Any]:
    """Every row of a FrameBatches as one host batch (what a hand-written loop would hold)."""
    whole = copy.copy(data)
    whole.batch_size = len(data.frame)
    return next(iter(whole.batches()))


def slice_batch(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The rows ``rows`` of a nested batch of tensors."""
    if isinstance(batch, torch.Tensor):
        return batch[rows]
    return {k: slice_batch(v, rows) for k, v in batch.items()}


def hand_loop(pipeline: Any, model: Any, epochs: int, seed: int) -> float:
    """Train ``model`` as a user would by hand; returns the wall time."""
    from transfuse.train import default_param_groups, warmup_cosine

    cfg, task, device = pipeline.config.train, pipeline.task, pipeline.device
    train = materialise(pipeline.frame_batches(pipeline.splits.train, labelled=True))
    valid = materialise(pipeline.frame_batches(pipeline.splits.validation, labelled=True))
    labels = pipeline.splits.validation[pipeline.config.task.target]
    n, size = len(train["target"]), cfg.batch_size
    steps = epochs * -(-n // size)
    started = time.perf_counter()
    groups = default_param_groups(model, cfg.lr, cfg.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, cfg.warmup))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for rows in torch.randperm(n, generator=gen).split(size):
            batch = device.move(slice_batch(train, rows))
            with device.autocast():
                loss = task.loss(model(batch)["logits"], batch["target"])
            loss.backward()
            if cfg.grad_clip is not None:  # the trainer clips by default; so does this loop
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        model.eval()
        with device.inference():
            logits = model(device.move(valid))["logits"].float().cpu()
        task.metrics(labels, task.scores(logits))
    return time.perf_counter() - started


def transfuse_loop(pipeline: Any, model: Any, epochs: int) -> float:
    """Train ``model`` through transfuse's Trainer; returns the wall time."""
    from transfuse.train import Trainer

    config = pipeline.config.train.model_copy(update={"epochs": epochs})
    train = pipeline.frame_batches(pipeline.splits.train, labelled=True)
    valid = pipeline.frame_batches(pipeline.splits.validation, labelled=True)
    trainer = Trainer(model, pipeline.task, config, pipeline.device, pipeline.manager)
    started = time.perf_counter()
    trainer.fit(train, valid)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_args(parser)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed run")
    parser.add_argument("--rows", type=int, default=10000, help="loans used (of 10,000)")
    parser.add_argument("--cache", default=None, help="embedding cache folder (default: temp)")
    args = parser.parse_args()
    set_threads(args)
    os.environ["TRANSFUSE_CACHE"] = args.cache or tempfile.mkdtemp(prefix="transfuse-bench-")
    from transfuse import Pipeline

    frame = loans().iloc[: args.rows]
    started = time.perf_counter()
    pipeline = Pipeline.from_config(loan_config(1, args)).fit(frame)  # builds, warms the cache
    print(f"machine: {machine(pipeline.device)}")
    print(f"setup (one epoch; MiniLM embeds the job titles): {time.perf_counter() - started:.0f} s")
    start_state = copy.deepcopy(pipeline.model.state_dict())
    seconds = {"hand-written loop": float("inf"), "transfuse Trainer": float("inf")}
    for rep in range(args.repeat):  # interleaved, so load changes hit both alike
        for name in seconds:
            model = copy.deepcopy(pipeline.model)
            model.load_state_dict(start_state)
            torch.manual_seed(rep)
            if name == "hand-written loop":
                took = hand_loop(pipeline, model, args.epochs, rep)
            else:
                took = transfuse_loop(pipeline, model, args.epochs)
            seconds[name] = min(seconds[name], took)
    n = len(pipeline.splits.train) * args.epochs
    base = seconds["hand-written loop"]
    rows = [[name, s, n / s, base / s] for name, s in seconds.items()]
    title = (
        f"{len(pipeline.splits.train)} training rows x {args.epochs} epochs, batch 128, "
        "+ validation each epoch"
    )
    print_table(title, ["loop", "seconds", "rows/s", "throughput ratio"], rows)


if __name__ == "__main__":
    main()
