"""Building a timm model and loading weights into it from a local file.

The loader itself is the core's public helper :mod:`transfuse.timm_weights` (shared with
``video.frames``, since plugins may not import each other); these names bind it to
``image.timm``'s options, so its errors say ``image.timm options.weights``.
"""

from __future__ import annotations

from functools import partial

from transfuse import timm_weights
from transfuse.timm_weights import DEFAULT_MODEL, DEFAULT_PACKAGE, map_state_dict

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PACKAGE",
    "default_weights_path",
    "load_timm_model",
    "map_state_dict",
    "read_state_dict",
    "resolve_weights",
]

_WHERE = "image.timm options"

default_weights_path = partial(timm_weights.default_weights_path, where=_WHERE)
resolve_weights = partial(timm_weights.resolve_weights, where=_WHERE)
read_state_dict = partial(timm_weights.read_state_dict, where=_WHERE)
load_timm_model = partial(timm_weights.load_timm_model, where=_WHERE)
