"""The song LM: lyrics/style text, the dual-track sequence layout, and (later) the model, training and sampling.

``lm.lyrics`` parses and normalises user lyrics (shared with the app's lyric checker); ``lm.layout`` defines the
one id space (specials | text | vocal codes | accompaniment codes) and the per-section sequence layout
(DESIGN.md §6). Nothing here imports ``tokenizer``: the LM reads token shards through their documented format.
"""
