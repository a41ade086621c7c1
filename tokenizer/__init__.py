"""Duo-Tok, the dual-track music tokenizer: ``DuoTok`` (audio -> two 25 Hz token streams) and
``TrackTokens`` (its output). Both are imported lazily, so ``python -m tokenizer --help`` and the light
submodules (``tokenizer.config``) do not pay for importing torch."""

from __future__ import annotations

__all__ = ["DuoTok", "TrackTokens"]


def __getattr__(name: str):
    if name in __all__:
        from tokenizer import duotok

        return getattr(duotok, name)
    raise AttributeError(f"module 'tokenizer' has no attribute {name!r}")
