"""bench.vocal_melody: the pitch counts read from an F0 track inside the sung spans."""

from __future__ import annotations

import numpy as np
import pytest

from bench.vocal_melody import melody_stats, summarise


def test_notes_changes_jumps_and_voicing_are_counted_inside_the_spans_only():
    a4, c_sharp5 = 440.0, 440.0 * 2 ** (4 / 12)
    f0 = np.array([a4] * 20 + [0.0] * 10 + [c_sharp5] * 20 + [a4] * 2 + [c_sharp5] * 8 + [a4 * 2] * 40)  # 1 s
    stats = melody_stats(f0, [(0.0, 0.6)])  # frames 0-59: A4, a rest, C#5, a 2-frame A4 blip, C#5
    assert stats["frames"] == 60 and stats["voiced"] == 50
    assert stats["changes"] == 1  # A4 -> C#5; the blip is shorter than a note and C#5 goes on after it
    assert stats["jumps"] == 2 and stats["pairs"] == 48  # into the blip and out of it, 4 semitones each
    summary = summarise([stats])
    assert summary["voiced"] == pytest.approx(50 / 60, abs=1e-4)
    assert summary["note_changes_per_second"] == pytest.approx(1 / 0.6, abs=1e-3)
    assert summary["range_semitones"] == pytest.approx(4.0, abs=1e-6)
    whole = melody_stats(f0, [(0.0, 1.0)])
    assert whole["changes"] == 2 and whole["jumps"] == 3 and whole["pairs"] == 88  # and the leap up to A5
