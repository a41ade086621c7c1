"""The song generation app (DESIGN.md §7): ``app.pipeline.SongGenerator`` (lyrics + style -> vocals,
accompaniment and mix, with progress), ``app.request`` (input checks and the section plan), ``app.manifest``
(the record of how a song was made, and its output folder), ``app.cli`` (``python -m app``) and the Gradio UI.

Imports run one way: ``app`` uses ``lm`` and ``tokenizer``; nothing imports ``app``. The package itself
imports nothing heavy, so ``python -m app --help`` answers without loading torch.
"""
