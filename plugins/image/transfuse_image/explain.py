"""Explaining an image by region, with a saliency map (``docs/explain.md``).

Integrated Gradients (captum) on the prepared image's pixels, from the all-zero input
(after the model's normalisation: the mean image, an even grey) to the image. The
per-pixel attributions summed over the colour channels are the saliency map (written as
a PNG with ``transfuse explain --images DIR``); summed over a 3 x 3 grid they are the
parts ("top left" ... "bottom right"), which add up to ``logit(image) - logit(grey)`` up to
the convergence delta reported per row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transfuse.bases import Parts

if TYPE_CHECKING:
    from transfuse.bases import Logit
    from transfuse_image.encoder import TimmEncoder

__all__ = ["IG_STEPS", "REGIONS", "integrated_gradients"]

#: Integration steps (captum's Gauss-Legendre rule).
IG_STEPS = 16
#: The 3 x 3 grid's regions, row by row.
REGIONS = [
    f"{v} {h}".strip().replace("middle centre", "centre")
    for v in ("top", "middle", "bottom")
    for h in ("left", "centre", "right")
]


def integrated_gradients(
    encoder: TimmEncoder, values: pd.Series | pd.DataFrame, logit: Logit
) -> Parts:
    """IG per pixel, summed per region; the per-pixel map kept for pictures."""
    import torch
    from captum.attr import IntegratedGradients

    column = values if isinstance(values, pd.Series) else values.iloc[:, 0]
    missing = np.asarray(encoder.missing(column), dtype=bool)
    device = encoder.device_manager
    image = device.move(encoder.prepare(values))["image"].float()
    labels: list[list[str]] = [[] for _ in range(len(image))]
    scores: list[np.ndarray] = [np.zeros(0) for _ in range(len(image))]
    maps: list[np.ndarray | None] = [None] * len(image)
    delta = np.zeros(len(image))
    rows = np.flatnonzero(~missing)
    if len(rows):
        at = torch.as_tensor(rows, dtype=torch.long, device=image.device)

        def forward(pixels: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
            return logit(encoder.model(pixels), where)

        found, gaps = [], []
        for chunk in torch.split(at, 4):  # 4 images x IG_STEPS interpolations per pass
            a, g = IntegratedGradients(forward).attribute(
                image[chunk],
                baselines=torch.zeros_like(image[chunk]),
                additional_forward_args=(chunk,),
                n_steps=IG_STEPS,
                internal_batch_size=len(chunk) * IG_STEPS,
                return_convergence_delta=True,
            )
            found.append(a)
            gaps.append(g)
        attribution, gap = torch.cat(found), torch.cat(gaps)
        saliency = attribution.sum(1).detach().cpu().double().numpy()  # [R, H, W]
        h, w = saliency.shape[1:]
        hs, ws = np.linspace(0, h, 4).round().astype(int), np.linspace(0, w, 4).round().astype(int)
        for k, row in enumerate(rows):
            grid = [
                saliency[k, hs[i] : hs[i + 1], ws[j] : ws[j + 1]].sum()
                for i in range(3)
                for j in range(3)
            ]
            labels[row], scores[row], maps[row] = list(REGIONS), np.array(grid), saliency[k]
        delta[rows] = np.abs(gap.detach().cpu().double().numpy())
    return Parts(
        labels=labels,
        scores=scores,
        maps=maps,  # type: ignore[arg-type]
        delta=delta,
        method=f"integrated gradients (captum, {IG_STEPS} steps) on the pixels, per region",
        baseline="the all-zero normalised image (the mean image: an even grey)",
    )
