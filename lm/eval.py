"""Song-LM evaluation: per-kind cross-entropy, PPL@1024 (``reference/duotok.md`` §5.1), raw bits per frame, and
a unigram baseline reported the same way (DESIGN.md §6, "the same protocol on every tokenizer compared").

What is counted, precisely. Sequences are ``lm.layout`` sequences (``build_sequence`` output) or the training
windows ``lm.data`` cuts from them (``<bos>`` + style, then whole or cut sections; trailing ``<pad>`` allowed).
Every position t >= 1 before the padding is a target, scored as ``-ln p(ids[t] | ids[<t])`` under the model's
softmax over the whole vocabulary (the distribution it is trained on; no renormalisation over the slot's range).
``<bos>`` is only an input, as SOS is in Codec-Evaluation. Targets are grouped by id range, which in a valid
sequence is the same as grouping by slot:

- ``vocal``: vocal code ids (the even audio slots), ``accomp``: accompaniment code ids (the odd audio slots);
- ``text``: style and lyric pieces (also a word cue's word, which generation writes, never samples);
- ``cue``: ``<word>`` (a word-cue model's choice of the frame where the next word starts);
  ``marker``: every other special after ``<bos>`` (``</style>``, section tags, ``<no_vocal>``, ``<audio>``,
  ``</audio>``, ``<eos>``).

Each ``ce_KIND`` is a per-token mean in nats over all targets of that kind in all sequences (token-weighted,
not a mean of per-batch values: the §5.1 pitfall). From the two audio kinds, with K = 2 tracks::

    PPL@1024       = exp((CE_vocal + CE_accomp) / 2) / (V / 1024)
    PPL_k@1024     = exp(CE_k) / (V_k / 1024)
    bits_per_frame = (CE_vocal + CE_accomp) / ln 2          # one vocal and one accompaniment token per frame

A word-cue model chooses when each word starts, and that choice says something about the audio (where the
singing of a word begins), so its cost belongs next to the audio's: ``bits_per_frame_with_cues`` adds the
``<word>`` targets' nats to the frames' (equal to ``bits_per_frame`` for a model without cues). Compare that
with a model without cues. (A vocal slot without a cue pays for the mass the model put on ``<word>`` there in
its vocal cross-entropy, since the softmax covers the whole vocabulary.)

V is the codebook size; if the two codebooks differ, V is their geometric mean, which keeps PPL@1024 the
geometric mean of the two per-track values (and equal to §5.1 when they are the same size).

Where this differs from Codec-Evaluation's protocol (§6.2), by construction of our single interleaved stream:
(1) the accompaniment token of frame t is predicted given the vocal token of frame t (``v_t a_t`` order), where
parallel heads predict both from frames < t, so CE_accomp is a lower, conditional entropy; the vocal is
predicted from everything before it, as there; (2) audio is conditioned on style, lyrics and earlier sections;
(3) the end-of-stream targets (§5.1 counts EOS in every head) are here the per-section ``</audio>`` and the final
``<eos>``; they are markers, reported in ``ce_marker`` and left out of PPL@1024, because generation fixes each
section's frame count and never samples them.

Context. The CLI scores the validation split as the training windows of ``lm.data`` (each starts with the style
prefix and a section header, as in training; no audio frame is in two windows, but a restated style or header
is scored again, so ``text``/``marker`` counts include repeats). A sequence passed in longer than ``max_len``
is instead scored in plain sliding windows of ``max_len`` tokens advancing by ``stride``: each target exactly
once, every target after the first window with at least ``max_len - stride`` tokens of context.

The unigram baseline (``unigram_baseline``) gives each target the add-one-smoothed training frequency of its id
within its own kind's range (so it knows the slot kind, as the constrained sampler does); a uniform guess over the
codebook scores PPL@1024 = 1024.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from corpus.audio_io import atomic_write_text
from lm.layout import FRAME_RATE_HZ, LayoutError, Vocabulary, revert_sequence

KINDS = ("vocal", "accomp", "text", "marker", "cue")
NOT_A_TARGET = -1


def _kind_ranges(vocab: Vocabulary) -> list[tuple[int, int]]:
    """[start, stop) of each kind in KINDS order (``cue`` is the one id ``<word>`` inside the marker range)."""
    return [(vocab.vocal_start, vocab.accomp_start), (vocab.accomp_start, vocab.size),
            (vocab.text_start, vocab.vocal_start), (0, vocab.text_start), (vocab.word_id, vocab.word_id + 1)]


def _content_length(ids: np.ndarray, vocab: Vocabulary) -> int:
    """Length without trailing batch padding."""
    end = len(ids)
    while end and ids[end - 1] == vocab.pad_id:
        end -= 1
    return end


def _closed(ids: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """A training window (``lm.data.window_ids``) may stop inside a section's audio, at a frame boundary, or after
    a ``</audio>``, without the closing tokens it does not reach; append them so the layout check can run."""
    markers = ids[(ids < vocab.text_start) & (ids != vocab.word_id)]  # word cues sit inside the audio
    last = int(markers[-1]) if len(markers) else None
    if last == vocab.eos_id:
        return ids
    tail = [vocab.audio_close_id, vocab.eos_id] if last == vocab.audio_open_id else [vocab.eos_id]
    return np.concatenate([ids, np.asarray(tail, dtype=np.int64)])


def target_kinds(ids, vocab: Vocabulary) -> np.ndarray:
    """Per position of a sequence (or of a training window cut from one), the index in KINDS of its target
    kind, or ``NOT_A_TARGET`` (position 0, the ``<bos>``, and trailing ``<pad>``). Raises ``LayoutError`` on
    ids that do not follow the layout."""
    ids = np.asarray(ids, dtype=np.int64)
    end = _content_length(ids, vocab)
    revert_sequence(_closed(ids[:end], vocab), vocab)  # validates markers and slots: id range == slot kind below
    kind_of_id = np.empty(vocab.size, dtype=np.int8)
    for kind, (start, stop) in enumerate(_kind_ranges(vocab)):  # in order, so <word> ends up a cue, not a marker
        kind_of_id[start:stop] = kind
    kinds = np.full(len(ids), NOT_A_TARGET, dtype=np.int8)
    kinds[1:end] = kind_of_id[ids[1:end]]
    return kinds


def summarize(nats: np.ndarray, counts: np.ndarray, vocab: Vocabulary) -> dict:
    """Turn per-kind sums of negative log-likelihood (nats) and target counts into the reported metrics."""
    nats, counts = np.asarray(nats, dtype=np.float64), np.asarray(counts, dtype=np.int64)
    result: dict = {}
    for kind, total, count in zip(KINDS, nats, counts, strict=True):
        result[f"n_{kind}"] = int(count)
        result[f"ce_{kind}"] = float(total / count) if count else math.nan
    result["ce_all"] = float(nats.sum() / counts.sum()) if counts.sum() else math.nan
    ce_vocal, ce_accomp = result["ce_vocal"], result["ce_accomp"]
    codebook = math.sqrt(vocab.codebook_size_vocal * vocab.codebook_size_accomp)
    mean_audio_ce = (ce_vocal + ce_accomp) / 2
    result.update({
        "codebook_size_vocal": vocab.codebook_size_vocal,
        "codebook_size_accomp": vocab.codebook_size_accomp,
        "raw_ppl": math.exp(mean_audio_ce),
        "ppl@1024": math.exp(mean_audio_ce) / (codebook / 1024),
        "ppl_vocal@1024": math.exp(ce_vocal) / (vocab.codebook_size_vocal / 1024),
        "ppl_accomp@1024": math.exp(ce_accomp) / (vocab.codebook_size_accomp / 1024),
        "bits_per_frame": (ce_vocal + ce_accomp) / math.log(2),
        "bits_per_frame_with_cues": (ce_vocal + ce_accomp + (nats[KINDS.index("cue")] / counts[0] if counts[0]
                                                             else 0.0)) / math.log(2),
    })
    result["bits_per_second"] = result["bits_per_frame"] * FRAME_RATE_HZ
    return result


# --- the model ------------------------------------------------------------------------------------------------


def _windows(ids: np.ndarray, kinds: np.ndarray, max_len: int, stride: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(window ids, window target kinds) covering one unpadded sequence; a target already scored by an earlier
    window is marked ``NOT_A_TARGET`` so each is counted once. Window position 0 has no context in the window,
    so it is never a target there."""
    length = len(ids)
    start, first_unscored = 0, 1
    while True:
        stop = min(start + max_len, length)
        window_kinds = kinds[start:stop].copy()
        window_kinds[:max(first_unscored - start, 1)] = NOT_A_TARGET
        yield ids[start:stop], window_kinds
        if stop == length:
            return
        first_unscored, start = stop, start + stride


def _model_device(model) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(iter(model.parameters())).device


def evaluate_ppl(model, vocab: Vocabulary, sequences: Iterable, max_len: int = 1024, stride: int | None = None,
                 batch_size: int = 4) -> dict:
    """Score ``sequences`` (layout id arrays) with a causal LM (``model(input_ids=…).logits``); see the module
    docstring for what is counted. Returns ``summarize``'s dict plus ``n_sequences`` and ``n_windows``."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an integer >= 2, got {max_len!r}")
    stride = max_len // 2 if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= max_len - 1:
        raise ValueError(f"stride must be an integer in 1..max_len-1 ({max_len - 1}), got {stride!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = _model_device(model)
    nats, counts = np.zeros(len(KINDS)), np.zeros(len(KINDS), dtype=np.int64)
    n_sequences, n_windows, batch = 0, 0, []

    def score(batch: list[tuple[np.ndarray, np.ndarray]]) -> None:
        width = max(len(ids) for ids, _ in batch)
        input_ids = np.full((len(batch), width), vocab.pad_id, dtype=np.int64)
        batch_kinds = np.full((len(batch), width), NOT_A_TARGET, dtype=np.int8)
        attention = np.zeros((len(batch), width), dtype=np.int64)
        for row, (ids, kinds) in enumerate(batch):
            input_ids[row, :len(ids)], batch_kinds[row, :len(ids)], attention[row, :len(ids)] = ids, kinds, 1
        inputs = torch.from_numpy(input_ids).to(device)
        logits = model(input_ids=inputs, attention_mask=torch.from_numpy(attention).to(device)).logits
        # logits at position t predict the id at t + 1
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), inputs[:, 1:],
                                                reduction="none").double().cpu().numpy()
        target_kinds_ = batch_kinds[:, 1:]
        for kind in range(len(KINDS)):
            chosen = target_kinds_ == kind
            nats[kind] += nll[chosen].sum()
            counts[kind] += int(chosen.sum())

    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.inference_mode():
            for index, sequence in enumerate(sequences):
                ids = np.asarray(sequence, dtype=np.int64)
                try:
                    kinds = target_kinds(ids, vocab)
                except LayoutError as error:
                    raise ValueError(f"sequence {index}: {error}") from None
                n_sequences += 1
                end = _content_length(ids, vocab)
                for window in _windows(ids[:end], kinds[:end], max_len, stride):
                    batch.append(window)
                    n_windows += 1
                    if len(batch) == batch_size:
                        score(batch)
                        batch = []
            if batch:
                score(batch)
    finally:
        model.train(was_training)
    return {**summarize(nats, counts, vocab), "n_sequences": n_sequences, "n_windows": n_windows}


# --- the unigram baseline ----------------------------------------------------------------------------------------


def unigram_baseline(train_sequences: Iterable, eval_sequences: Iterable, vocab: Vocabulary) -> dict:
    """Score ``eval_sequences`` with per-kind unigram frequencies of the training targets, add-one smoothed
    over each kind's id range: ``p(id) = (n_id + 1) / (N_kind + range size)``. Same targets and report as
    ``evaluate_ppl``, so the two numbers can be read side by side."""
    id_counts = np.zeros(vocab.size, dtype=np.int64)
    for index, sequence in enumerate(train_sequences):
        ids = np.asarray(sequence, dtype=np.int64)
        try:
            kinds = target_kinds(ids, vocab)
        except LayoutError as error:
            raise ValueError(f"training sequence {index}: {error}") from None
        id_counts += np.bincount(ids[kinds != NOT_A_TARGET], minlength=vocab.size)
    log_prob = np.empty(vocab.size)
    for start, stop in _kind_ranges(vocab):  # (a kind of one id, ``cue``, costs nothing here)
        in_range = id_counts[start:stop]
        log_prob[start:stop] = np.log(in_range + 1) - np.log(in_range.sum() + (stop - start))

    nats, counts = np.zeros(len(KINDS)), np.zeros(len(KINDS), dtype=np.int64)
    for index, sequence in enumerate(eval_sequences):
        ids = np.asarray(sequence, dtype=np.int64)
        try:
            kinds = target_kinds(ids, vocab)
        except LayoutError as error:
            raise ValueError(f"evaluation sequence {index}: {error}") from None
        for kind in range(len(KINDS)):
            chosen = kinds == kind
            nats[kind] -= log_prob[ids[chosen]].sum()
            counts[kind] += int(chosen.sum())
    return summarize(nats, counts, vocab)


# --- CLI --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """``python -m lm.eval --checkpoint DIR --data TOKENS_DIR [--split val] [--unigram]``: prints JSON metrics."""
    parser = argparse.ArgumentParser(prog="python -m lm.eval", description="PPL@1024 and bits per frame of a SongLM")
    parser.add_argument("--checkpoint", required=True, help="SongLM folder (SongLM.save_pretrained output)")
    parser.add_argument("--data", required=True, help="token corpus folder (tokenizer output)")
    parser.add_argument("--split", default="val", choices=("train", "val", "all"))
    parser.add_argument("--max-len", type=int, default=1024, help="window length in tokens (the training max_len)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--unigram", action="store_true", help="also report the unigram baseline (train split counts)")
    parser.add_argument("--train-data", help="token folder whose counts make the unigram baseline (default: --data)")
    parser.add_argument("--json", default=None, help="also write the metrics to this file")
    args = parser.parse_args(argv)

    from lm.data import TokenDataset  # lazy: the metric functions above need neither parquet nor checkpoints
    from lm.model import SongLM

    song_lm = SongLM.from_pretrained(args.checkpoint, device=args.device)

    def windows(split: str, folder: str | None = None) -> Iterator[np.ndarray]:
        dataset = TokenDataset(folder or args.data, song_lm.text, args.max_len, vocab=song_lm.vocab, split=split,
                               word_cues=song_lm.config.word_cues, phone_cues=song_lm.config.phone_cues)
        return (dataset[index]["input_ids"].numpy() for index in range(len(dataset)))

    metrics = {"model": evaluate_ppl(song_lm.model, song_lm.vocab, windows(args.split), max_len=args.max_len,
                                     batch_size=args.batch_size)}
    if args.unigram:
        counts_from = windows("all", args.train_data) if args.train_data else windows("train")
        metrics["unigram"] = unigram_baseline(counts_from, windows(args.split), song_lm.vocab)
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return metrics


if __name__ == "__main__":
    main()
