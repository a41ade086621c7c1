"""The song LM: lyrics/style text, the dual-track sequence layout, the model, its data, training and sampling.

``lm.lyrics`` parses and normalises user lyrics (shared with the app's lyric checker); ``lm.layout`` defines the
one id space (specials | text | vocal codes | accompaniment codes) and the per-section sequence layout
(DESIGN.md §6); ``lm.text`` is the sentencepiece text tokenizer; ``lm.model`` the ``SongLM`` (a Llama from
``transformers``, built from ``LMConfig``); ``lm.data`` the token-corpus windows and batches; ``lm.train`` the
training entry. Nothing here imports ``tokenizer``: the LM reads token shards through their documented format.

``from lm import SongLM`` works, but loads ``transformers`` only on first use, so importing ``lm.lyrics`` (the
app's lyric checker) stays cheap.
"""


def __getattr__(name: str):
    if name in ("SongLM", "LMConfig", "LM_CONFIGS"):
        from lm import model

        return getattr(model, name)
    raise AttributeError(f"module 'lm' has no attribute {name!r}")
