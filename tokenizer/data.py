"""Training data for the Duo-Tok tokenizer (stages 1–3): fixed-length crops of song folders.

Each item is one crop of one song, read straight from the FLAC files with ``soundfile`` seeking (a song is
never loaded whole, so a worker touches only the few seconds it returns). A crop carries every track the
three training stages need — the mix (encoder input), vocals and accompaniment (the two token streams),
the four stems (separation head) — and the festival phones sung inside it (CTC head).

Alignment: the crop length and the crop start are multiples of ``samples_per_token`` (960 = 40 ms at
24 kHz), so the token frames of a crop are exactly token frames of the whole song; features or tokens cached
per song can then be sliced by ``start_sample // samples_per_token``.

Reproducibility: the crop of item ``i`` is drawn from a generator seeded by ``(seed, epoch, i)`` alone, so it
does not depend on worker count, shuffling or which items were read before. ``set_epoch`` moves every crop;
call it before iterating each epoch (DataLoader workers get a fresh copy of the dataset per epoch unless
``persistent_workers`` is set, which would freeze the epoch they saw first).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from corpus.reader import find_song_folders
from tokenizer.phones import SILENCES, phone_id

logger = logging.getLogger(__name__)

# File of each track, relative to the song folder. The vocals stem of the separation targets is vocals.flac
# itself (mix = vocals + drums + bass + other holds sample-exactly in the corpus).
TRACK_FILES = {
    "mix": "mix.flac",
    "vocals": "vocals.flac",
    "accompaniment": "accompaniment.flac",
    "drums": "stems/drums.flac",
    "bass": "stems/bass.flac",
    "other": "stems/other.flac",
}
STEM_ORDER = ("vocals", "drums", "bass", "other")  # rows of the item's ``stems`` tensor
# meta.json phone times are rounded to 1 ms; this only absorbs float error at a crop edge, never a phone.
TIME_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class SongEntry:
    """One usable song: its folder, its length in samples (shortest track) and its phones as parallel
    arrays in time order (``phone_ids`` are CTC ids; festival silences already dropped)."""

    id: str
    folder: Path
    n_samples: int
    phone_starts: np.ndarray  # float64 seconds
    phone_ends: np.ndarray
    phone_ids: np.ndarray  # int64
    f0_hz: np.ndarray  # float32, the sung F0 every ``f0_hop_s`` seconds from the start (0: unvoiced)
    f0_hop_s: float


# Frame-wise pitch classes (the optional ``frame_pitch`` loss): 0 = unvoiced, 1 … PITCH_CLASSES - 1 = the
# MIDI notes PITCH_LOW_MIDI … PITCH_LOW_MIDI + PITCH_CLASSES - 2 (C2 … B5, every voice of the corpus).
PITCH_LOW_MIDI = 36
PITCH_CLASSES = 49


def _read_f0(meta: dict) -> tuple[np.ndarray, float]:
    """The sung F0 track of meta.json (``f0.hz`` every ``f0.hop_seconds``); empty for instrumental songs."""
    track = meta.get("f0") or {}
    return np.asarray(track.get("hz", []), dtype=np.float32), float(track.get("hop_seconds", 0.01))


def read_phones(meta: dict, meta_path: Path, song_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, ids) of every non-silent phone in meta.json's words → syllables → phones, in time order
    (ids: ``tokenizer.phones``, festival's phone set)."""
    timed: list[tuple[float, float, int]] = []
    for word in meta.get("words", []):  # instrumental songs have no words: no phones, has_vocals False
        for syllable in word.get("syllables", []):
            for phone in syllable.get("phones", []):
                name = phone["phone"]
                if name in SILENCES:
                    continue
                try:
                    index = phone_id(name)
                except KeyError as error:
                    # A wrong label set would silently teach CTC nonsense; stop and say where.
                    raise ValueError(f"{meta_path}: song {song_id}: {error.args[0]}") from None
                timed.append((float(phone["start"]), float(phone["end"]), index))
    timed.sort(key=lambda item: (item[0], item[1]))
    starts = np.array([t[0] for t in timed], dtype=np.float64)
    ends = np.array([t[1] for t in timed], dtype=np.float64)
    ids = np.array([t[2] for t in timed], dtype=np.int64)
    return starts, ends, ids


def phones_at(starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The phone id sung at each of ``times`` (seconds), 0 where none, from ``read_phones``'s arrays."""
    labels = np.zeros(len(times), dtype=np.int64)
    if len(starts):
        index = np.searchsorted(starts, times, side="right") - 1
        sung = (index >= 0) & (times < ends[np.clip(index, 0, None)])
        labels[sung] = ids[index[sung]]
    return labels


def _inspect_folder(folder: Path, sample_rate: int) -> tuple[SongEntry | None, str | None]:
    """A SongEntry for a usable folder, else (None, reason). Reads only file headers and meta.json."""
    missing = [name for name in (*TRACK_FILES.values(), "meta.json") if not (folder / name).is_file()]
    if missing:
        return None, f"missing {', '.join(missing)}"
    lengths = []
    for name in TRACK_FILES.values():
        try:
            info = sf.info(str(folder / name))
        except (sf.LibsndfileError, RuntimeError) as error:
            return None, f"{name} unreadable ({error})"
        if info.samplerate != sample_rate:
            # Crops are read without resampling (seeking in a resampled stream is not sample-exact).
            return None, f"{name} is {info.samplerate} Hz, expected {sample_rate} Hz"
        lengths.append(info.frames)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    starts, ends, ids = read_phones(meta, folder / "meta.json", folder.name)
    f0_hz, f0_hop_s = _read_f0(meta)
    return SongEntry(folder.name, folder, min(lengths), starts, ends, ids, f0_hz, f0_hop_s), None


class SongCropDataset(Dataset):
    """Fixed-length, token-aligned crops of the song folders under ``root``; ``crops_per_song`` items per song.

    Item ``i`` is a crop of song ``i // crops_per_song`` as a dict:

    - ``mix``, ``vocals``, ``accompaniment``: float32 ``[N]``; ``stems``: float32 ``[4, N]`` in the order
      vocals, drums, bass, other. ``N = crop_samples`` (a multiple of ``samples_per_token``) for every item;
      a song shorter than the crop is zero-padded and ``valid_samples`` says how much of it is real.
    - ``phones``: int64 ``[n_phones]`` CTC ids of the phones whose [start, end] lies inside the crop, in
      time order (festival silences excluded); ``n_phones`` (int) and ``has_vocals`` (bool: any phone).
    - ``phone_frames``: int64 ``[crop_samples // samples_per_token]``, the phone sung at each token frame's
      centre (0: none); ``pitch_frames``: int64, same length, the sung note's pitch class (0: unvoiced).
    - ``song_id`` (str), ``start_sample`` (int, a multiple of ``samples_per_token``), ``valid_samples`` (int).
    """

    def __init__(self, root: str | Path, crop_seconds: float = 4.0, sample_rate: int = 24_000,
                 samples_per_token: int = 960, seed: int = 0, crops_per_song: int = 4):
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.samples_per_token = samples_per_token
        self.seed = seed
        self.crops_per_song = crops_per_song
        self.epoch = 0
        # Round the crop down to whole tokens so every crop is a whole number of token frames.
        self.crop_samples = int(crop_seconds * sample_rate) // samples_per_token * samples_per_token
        if self.crop_samples <= 0:
            raise ValueError(f"crop_seconds={crop_seconds} is shorter than one token "
                             f"({samples_per_token} samples at {sample_rate} Hz)")
        if crops_per_song < 1:
            raise ValueError(f"crops_per_song must be at least 1, not {crops_per_song}")

        self.songs: list[SongEntry] = []
        skipped: list[str] = []
        for folder in find_song_folders(self.root):
            entry, reason = _inspect_folder(folder, sample_rate)
            if entry is None:
                skipped.append(f"{folder.name} ({reason})")
            else:
                self.songs.append(entry)
        if skipped:
            logger.warning("skipping %d of %d song folders under %s: %s", len(skipped),
                           len(skipped) + len(self.songs), self.root, "; ".join(skipped))
        if not self.songs:
            required = ", ".join((*TRACK_FILES.values(), "meta.json"))
            found = (f"all {len(skipped)} song folders were skipped (see the warning)" if skipped
                     else "no song folders found")
            raise ValueError(f"no usable songs under {self.root}: {found}; a training song folder needs "
                             f"{required} at {sample_rate} Hz")

    def __len__(self) -> int:
        return len(self.songs) * self.crops_per_song

    def set_epoch(self, epoch: int) -> None:
        """Choose a new, reproducible set of crops (same ``(seed, epoch)`` → same crops)."""
        self.epoch = int(epoch)

    def crop_start(self, index: int) -> int:
        """First sample of item ``index``'s crop: a multiple of ``samples_per_token``, 0 for short songs."""
        song = self.songs[index // self.crops_per_song]
        last_start_token = (song.n_samples - self.crop_samples) // self.samples_per_token
        if last_start_token <= 0:
            return 0
        # SeedSequence mixes the three numbers, so neighbouring items and epochs get unrelated crops.
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, last_start_token + 1)) * self.samples_per_token

    def _read_track(self, song: SongEntry, track: str, start: int, stop: int) -> np.ndarray:
        samples, _rate = sf.read(str(song.folder / TRACK_FILES[track]), start=start, stop=stop,
                                 dtype="float32", always_2d=True)
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        padded = np.zeros(self.crop_samples, dtype=np.float32)
        padded[: len(mono)] = mono  # zero tail for songs shorter than the crop
        return padded

    def phone_frames(self, song: SongEntry, crop_begin_s: float) -> np.ndarray:
        """The phone id sung at the centre of each token frame of the crop, 0 where none (silence, no vocals):
        frame-wise targets from the corpus's exact phone times, for the optional ``frame_phone`` loss."""
        n_tokens = self.crop_samples // self.samples_per_token
        centres = crop_begin_s + (np.arange(n_tokens) + 0.5) * self.samples_per_token / self.sample_rate
        return phones_at(song.phone_starts, song.phone_ends, song.phone_ids, centres)

    def pitch_frames(self, song: SongEntry, crop_begin_s: float) -> np.ndarray:
        """The sung note of each token frame of the crop as a pitch class (module constants), 0 where fewer
        than half of the frame's F0 values are voiced: the median voiced F0 rounded to a semitone. Targets
        for the optional ``frame_pitch`` loss, which puts the melody into the vocal tokens."""
        n_tokens = self.crop_samples // self.samples_per_token
        labels = np.zeros(n_tokens, dtype=np.int64)
        if not len(song.f0_hz):
            return labels
        token_s = self.samples_per_token / self.sample_rate
        per_token = max(1, round(token_s / song.f0_hop_s))
        first = round(crop_begin_s / song.f0_hop_s)
        window = np.zeros(n_tokens * per_token, dtype=np.float32)
        available = song.f0_hz[first: first + len(window)]
        window[: len(available)] = available
        window = window.reshape(n_tokens, per_token)
        voiced = window > 0
        enough = voiced.sum(1) * 2 >= per_token
        if enough.any():
            median = np.nanmedian(np.where(voiced, window, np.nan)[enough], axis=1)
            midi = np.rint(69 + 12 * np.log2(median / 440.0)).astype(np.int64)
            labels[enough] = np.clip(midi - PITCH_LOW_MIDI + 1, 1, PITCH_CLASSES - 1)
        return labels

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        song = self.songs[index // self.crops_per_song]
        start = self.crop_start(index)
        valid = min(self.crop_samples, song.n_samples - start)
        audio = {track: self._read_track(song, track, start, start + valid) for track in TRACK_FILES}

        crop_begin_s = start / self.sample_rate
        crop_end_s = (start + self.crop_samples) / self.sample_rate
        inside = ((song.phone_starts >= crop_begin_s - TIME_TOLERANCE_S)
                  & (song.phone_ends <= crop_end_s + TIME_TOLERANCE_S))
        phones = torch.from_numpy(song.phone_ids[inside].copy())

        return {
            "phone_frames": torch.from_numpy(self.phone_frames(song, crop_begin_s)),
            "pitch_frames": torch.from_numpy(self.pitch_frames(song, crop_begin_s)),
            "mix": torch.from_numpy(audio["mix"]),
            "vocals": torch.from_numpy(audio["vocals"]),
            "accompaniment": torch.from_numpy(audio["accompaniment"]),
            "stems": torch.from_numpy(np.stack([audio[name] for name in STEM_ORDER])),
            "phones": phones,
            "n_phones": len(phones),
            "has_vocals": len(phones) > 0,
            "song_id": song.id,
            "start_sample": start,
            "valid_samples": valid,
        }


def collate_crops(items: list[dict]) -> dict:
    """Batch crops: audio stacked (``mix [B, N]``, ``stems [B, 4, N]``, …), ``phones [B, L]`` padded with 0
    (the blank, which CTC never reads past ``phone_lengths``) plus ``phone_lengths [B]``; ``has_vocals``,
    ``start_sample`` and ``valid_samples`` as tensors, ``song_id`` as a list."""
    if not items:
        raise ValueError("collate_crops got an empty batch")
    lengths = torch.tensor([len(item["phones"]) for item in items], dtype=torch.long)
    phones = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)
    for row, item in enumerate(items):
        phones[row, : len(item["phones"])] = item["phones"]
    return {
        **{key: torch.stack([item[key] for item in items]) for key in ("mix", "vocals", "accompaniment", "stems")},
        "phones": phones,
        "phone_lengths": lengths,
        "phone_frames": torch.stack([item["phone_frames"] for item in items]),
        "pitch_frames": torch.stack([item["pitch_frames"] for item in items]),
        "has_vocals": torch.tensor([item["has_vocals"] for item in items], dtype=torch.bool),
        "start_sample": torch.tensor([item["start_sample"] for item in items], dtype=torch.long),
        "valid_samples": torch.tensor([item["valid_samples"] for item in items], dtype=torch.long),
        "song_id": [item["song_id"] for item in items],
    }


def make_loader(root: str | Path, batch_size: int, crop_seconds: float, seed: int, shuffle: bool = True,
                num_workers: int = 0, *, sample_rate: int = 24_000, samples_per_token: int = 960,
                crops_per_song: int = 4, drop_last: bool = False) -> DataLoader:
    """A DataLoader over ``SongCropDataset(root, …)`` batched with ``collate_crops``. The shuffle order comes
    from a generator seeded with ``seed``, so a run is reproducible; call ``loader.dataset.set_epoch(e)``
    before each epoch for new crops."""
    dataset = SongCropDataset(root, crop_seconds=crop_seconds, sample_rate=sample_rate,
                              samples_per_token=samples_per_token, seed=seed, crops_per_song=crops_per_song)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_crops, generator=generator, drop_last=drop_last)


@torch.no_grad()
def estimate_mel_stats(dataset: SongCropDataset, frontend, n_items: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Global per-bin mean and std of the log-mel of the mix and the four stems over ``n_items`` crops
    (spread evenly over the dataset, so every song contributes when ``n_items >= len(songs)``). BEST-RQ's
    random-projection targets need normalised features; stems are included because the same normalisation
    is applied to the stem inputs. Zero padding of short songs is left out (it would pile mass on the log
    floor). ``frontend`` is a ``tokenizer.frontend.AudioFrontEnd``. Returns float32 ``(mean, std)``, [n_mels]."""
    n_items = min(n_items, len(dataset))
    if n_items < 1:
        raise ValueError("estimate_mel_stats needs at least one item")
    indices = np.unique(np.linspace(0, len(dataset) - 1, n_items).round().astype(int))
    device = frontend.mel_basis.device
    n_mels = frontend.mel_basis.shape[0]
    # float64 sums: tens of thousands of frames of values around -5 lose precision in float32.
    total = torch.zeros(n_mels, dtype=torch.float64)
    total_sq = torch.zeros(n_mels, dtype=torch.float64)
    count = 0
    for index in indices:
        item = dataset[int(index)]
        tracks = torch.cat([item["mix"][None], item["stems"]]).to(device)  # [5, N]
        log_mel = frontend.log_mel(tracks).double().cpu()  # [5, frames, n_mels]
        valid_frames = item["valid_samples"] // frontend.hop_length
        log_mel = log_mel[:, :valid_frames].reshape(-1, n_mels)
        total += log_mel.sum(0)
        total_sq += (log_mel**2).sum(0)
        count += log_mel.shape[0]
    if count == 0:
        raise ValueError("estimate_mel_stats: the chosen crops hold no complete mel frame")
    mean = total / count
    variance = (total_sq / count - mean**2).clamp(min=0.0)
    # A bin that never varies (e.g. above every source's band) would divide by zero when normalising.
    std = variance.sqrt().clamp(min=math.sqrt(1e-8))
    return mean.float(), std.float()
