"""``save_pretrained`` / ``from_pretrained`` for Duo-Tok: a folder with ``config.json`` and
``model.safetensors`` (never pickle), written atomically, loaded strictly. Frozen random parts (the
BEST-RQ projection and codebook, the SimVQ base codebooks) are persistent buffers, so they are saved too."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from corpus.audio_io import atomic_target
from tokenizer.config import DuoTokConfig
from tokenizer.model import DuoTokModel


class CheckpointError(ValueError):
    pass


def write_weights(model: nn.Module, directory: Path, dtype: torch.dtype = torch.float32,
                  metadata: dict[str, str] | None = None) -> None:
    """``directory/model.safetensors`` from the model's state dict (floats cast to ``dtype``), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: (t.to(dtype) if t.is_floating_point() else t).contiguous().clone()
             for name, t in model.state_dict().items()}
    with atomic_target(directory / "model.safetensors", suffix=".safetensors") as tmp:
        save_file(state, tmp, metadata={"format": "pt", **(metadata or {})})


def read_weights(model: nn.Module, directory: Path, new_keys: frozenset[str] = frozenset()) -> None:
    """Load ``directory/model.safetensors`` into ``model`` strictly (casting to the model's dtypes), with
    clear errors for unreadable or mismatching files. ``new_keys`` keep their fresh initialisation (parts that
    a config update added, or frozen codebooks it resized) and are not read from the file; everything else
    must be there."""
    try:
        state = load_file(directory / "model.safetensors")
    except Exception as error:  # safetensors raises its own error types for truncated or corrupt files
        raise CheckpointError(f"{directory / 'model.safetensors'}: unreadable ({error})") from error
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items() if k not in new_keys}
    try:
        missing, unexpected = model.load_state_dict(state, strict=not new_keys)
    except RuntimeError as error:
        raise CheckpointError(f"{directory}: weights do not match config.json ({error})") from error
    if unexpected or set(missing) - new_keys:
        raise CheckpointError(f"{directory}: weights do not match config.json (missing "
                              f"{sorted(set(missing) - new_keys)}, unexpected {sorted(unexpected)})")


def save_pretrained(model: DuoTokModel, directory: str | Path, dtype: torch.dtype = torch.float32,
                    metadata: dict[str, str] | None = None) -> None:
    """Write ``directory/config.json`` and ``directory/model.safetensors``. ``dtype=torch.float16`` halves
    the file; integer buffers keep their type."""
    directory = Path(directory)
    write_weights(model, directory, dtype, metadata)
    model.config.save(directory / "config.json")


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu",
                    config_updates: dict | None = None) -> DuoTokModel:
    """Load a folder written by ``save_pretrained``; every tensor must match the config (strict).

    ``config_updates`` (for fine-tuning, e.g. ``{"n_pitch_classes": 49, "loss_weights": {"frame_pitch": 1}}``)
    changes the config before the weights load: parts the update adds start fresh, and so do resized frozen
    SimVQ codebooks (``{"codebook_size": 4096}``: new random codes, while the learned transforms, the mel skips
    and everything else keep their weights); every other tensor must still be in the file with its shape."""
    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: missing {name} (not a Duo-Tok checkpoint folder)")
    try:
        config = DuoTokConfig.load(directory / "config.json")
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{directory / 'config.json'}: invalid config ({error})") from error
    new_keys: frozenset[str] = frozenset()
    if config_updates:
        try:
            updated = config.with_updates(config_updates)
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"invalid config update {config_updates} ({error})") from error
        model = DuoTokModel(updated)
        before = {k: v.shape for k, v in DuoTokModel(config).state_dict().items()}
        # a SimVQ's frozen codebook is random by design and never trained, so a resized one may start fresh;
        # any other resized tensor is trained and stays an error below
        new_keys = frozenset(k for k, v in model.state_dict().items()
                             if k not in before or (before[k] != v.shape and k.endswith(".frozen_codebook")))
    else:
        model = DuoTokModel(config)
    read_weights(model, directory, new_keys)
    return model.to(device).eval()


def rebuild_with_config_updates(model: nn.Module, updates: dict, build, kind: str) -> tuple[nn.Module, frozenset[str]]:
    """``(build(config with updates), names of the kept tensors)`` for a stage-4 part: unknown keys are a
    ``ValueError``; every tensor whose name and shape the update leaves alone is copied over, the others keep
    ``build``'s fresh initialisation (the caller may start some of them otherwise)."""
    try:
        config = model.config.with_updates(updates)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid {kind} config update {updates} ({error})") from error
    updated = build(config)
    fresh = updated.state_dict()
    kept = {k: v for k, v in model.state_dict().items() if k in fresh and fresh[k].shape == v.shape}
    updated.load_state_dict(kept, strict=False)
    return updated, frozenset(kept)


def save_component(model: nn.Module, directory: str | Path, kind: str, config: dict,
                   dtype: torch.dtype = torch.float32, metadata: dict[str, str] | None = None) -> None:
    """A stage-4 part (``kind`` "vocoder" or "decoder") in a folder of its own: ``config.json`` with
    ``"kind"`` + ``model.safetensors``, each written atomically."""
    from corpus.audio_io import atomic_write_json

    directory = Path(directory)
    write_weights(model, directory, dtype, {"kind": kind, **(metadata or {})})
    atomic_write_json(directory / "config.json", {"kind": kind, **config})


def load_component(directory: str | Path, kind: str, config_from_dict, build, device: str | torch.device = "cpu"):
    """Load a folder written by :func:`save_component`: checks the files and the kind, builds the model with
    ``build(config_from_dict(data))`` and loads the weights strictly."""
    import json

    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: missing {name} (not a {kind} checkpoint folder)")
    try:
        data = json.loads((directory / "config.json").read_text())
        found = data.pop("kind", None)
        if found != kind:
            raise ValueError(f'"kind" is {found!r}, expected {kind!r}')
        config = config_from_dict(data)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{directory / 'config.json'}: invalid {kind} config ({error})") from error
    model = build(config)
    read_weights(model, directory)
    return model.to(device).eval()
