"""The project's own promises: the README's Quickstart is what CI runs, torchaudio stays out, ruff passes."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_quickstart_starts_with_demo_and_test_commands():
    assert _quickstart_commands()[:2] == ["make demo", "make test"]


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci_lines == [_quickstart_commands()[1]]


def test_make_targets_set_up_first():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: setup\n\t.*pytest", makefile, re.M)
    assert re.search(r"^demo: setup\n", makefile, re.M)


def test_setup_installs_every_debian_package_the_generator_needs():
    packages = set((ROOT / "packages.txt").read_text().split())
    assert {"festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts", "fluidsynth",
            "timgm6mb-soundfont", "fluidr3mono-gm-soundfont"} <= packages


def test_torchaudio_is_not_installed_and_not_required():
    assert importlib.util.find_spec("torchaudio") is None
    assert importlib.util.find_spec("torchcodec") is None
    declared = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r'"(torchaudio|torchcodec|vocos|encodec)\b', declared)


def test_ruff_passes():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
