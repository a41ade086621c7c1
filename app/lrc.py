"""Synchronised lyrics of a generated song: each sung line with the time its first word starts, and the song's
``lyrics.lrc`` (the LRC format karaoke players and music apps read: ``[mm:ss.xx]line``).

The times come from the LM's word cues (``lm.layout.WordCue``: the frame each word starts in, which the LM chose or
its cue deadline forced), so they are where the song sings each line, not an estimate from the lyrics. A sung
section whose cues do not match its words one to one (an LM without word cues, an older manifest) has no such
times; the song then gets no line times at all rather than partly guessed ones. Peers export LRC from the lyrics
they were given (ACE-Step 1.5); users ask for the times of what was actually sung (reference/peers.md §5, #9).

- ``timed_lines(sections) -> [{"seconds", "text"}]``: what the manifest keeps (``"lines"``); after each sung
  section an empty line at its end, so a player's display clears during what follows (left out when the next
  line starts right there);
- ``lrc_text(lines, seconds) -> str``: the file, with a ``[length:]`` tag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

LRC_NAME = "lyrics.lrc"


def timed_lines(sections: Sequence[tuple[float, list[str], list[float]]]) -> list[dict]:
    """``sections``: per song section in order, ``(end_seconds, lyric lines, cue seconds)`` (the start of each
    cued word, in song seconds). Returns each line at its first word's cue plus an empty line where each sung
    section ends, or ``[]`` when a sung section's cues do not match its words (module docstring)."""
    lines: list[dict] = []
    for end_seconds, section_lines, cue_seconds in sections:
        counts = [len(line.split()) for line in section_lines]
        if not sum(counts):
            continue  # an instrumental section, or one with no words to sing
        if sum(counts) != len(cue_seconds):
            return []
        first_word = 0
        for line, count in zip(section_lines, counts, strict=True):
            if count:
                if lines and not lines[-1]["text"] and lines[-1]["seconds"] >= cue_seconds[first_word]:
                    lines.pop()  # the previous section ended where this line starts: nothing to clear
                lines.append({"seconds": round(float(cue_seconds[first_word]), 2), "text": line.strip()})
                first_word += count
        lines.append({"seconds": round(float(end_seconds), 2), "text": ""})
    return lines


def check_lines(lines) -> list[dict]:
    """``lines`` as a manifest keeps them, checked: a list of ``{"seconds": number >= 0, "text": str}``;
    anything else is a ``ValueError`` naming the entry."""
    if not isinstance(lines, list):
        raise ValueError(f"lines must be a list, got {type(lines).__name__}")
    for index, line in enumerate(lines):
        seconds = line.get("seconds") if isinstance(line, Mapping) else None
        if (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
                or not isinstance(line.get("text"), str)):
            raise ValueError(f"lines[{index}] must be {{'seconds': a number >= 0, 'text': a string}}, got {line!r}")
    return lines


def timestamp(seconds: float) -> str:
    """``[mm:ss.xx]``; rounded to hundredths first, so 59.999 s is ``[01:00.00]``, never ``[00:60.00]``."""
    minutes, hundredths = divmod(round(seconds * 100), 6000)
    return f"[{minutes:02d}:{hundredths // 100:02d}.{hundredths % 100:02d}]"


def lrc_text(lines: list[dict], seconds: float) -> str:
    """The LRC file of ``timed_lines`` for a song of ``seconds``."""
    minutes, rest = divmod(round(seconds), 60)
    return "".join([f"[length:{minutes:02d}:{rest:02d}]\n",
                    *(f"{timestamp(line['seconds'])}{line['text']}\n" for line in check_lines(lines))])
