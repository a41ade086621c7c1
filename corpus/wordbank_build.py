"""Build ``corpus/data/wordbank.json``: a broad bank of common words with festival syllables.

Run once by a developer (needs Debian festival with festlex-cmu / festlex-poslex, and wordfreq)::

    .venv/bin/python -m corpus.wordbank_build

Why: ``corpus.lyrics`` must write lines whose syllables match festival's syllabification exactly
(festival sings them and its PITCH/DURATION lists need one entry per festival syllable), and the words
must be broad (users type words the corpus never used).  So the candidates come from festival's own POS
lexicon, are ranked by wordfreq, and their syllables/phones/stress come from one batch festival process
calling ``lex.lookup``.  The runtime module then needs neither festival nor wordfreq.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import tempfile
from pathlib import Path

from corpus.lyrics import BANK_PATH, template_literals
from corpus.lyrics import rhyme_key as _rhyme_key

POSLEX = Path("/usr/share/festival/dicts/wsj.wp39.poslexR")



def word_set(text: str) -> frozenset[str]:
    """Whitespace-separated word list -> set (keeps the long lists below readable)."""
    return frozenset(text.split())


# Penn tag -> slot class.  vbp (non-3rd-person present) is the same surface form as vb for our use.
TAG_CLASS = {
    "nn": "nn", "nns": "nns", "vb": "vb", "vbp": "vb", "vbz": "vbz", "vbg": "vbg",
    "vbd": "vbd", "vbn": "vbn", "jj": "jj", "rb": "rb",
}
# The poslex numbers are log P(word | tag).  Adding a rough log P(tag) (WSJ tag frequencies) turns them
# into a comparable log P(tag | word), so a rare-but-possible tag does not win over the usual reading
# ("rain" is a noun; its verb reading is kept only if close).
TAG_PRIOR = {
    "nn": 0.13, "nns": 0.06, "vb": 0.027, "vbp": 0.013, "vbz": 0.022, "vbg": 0.015, "vbd": 0.031,
    "vbn": 0.021, "jj": 0.06, "rb": 0.03, "nnp": 0.09, "nnps": 0.003, "in": 0.1, "dt": 0.08,
    "prp": 0.018, "cc": 0.025, "md": 0.01, "cd": 0.037,
}
TAG_MARGIN = 2.5
MIN_ZIPF = 3.0
MAX_WORDS = 6500

# Offensive or grim words kept out of generated songs (short, deliberate list).
BLOCKLIST = word_set("""
rape raped rapes rapist rapists porn pornography sex sexual sexually sexy nazi nazis suicide abortion
abortions fuck fucking shit damn hell bitch ass whore slut cocaine heroin penis vagina genocide terrorist
terrorists terrorism negro negroes molest molested molestation
pedophile incest kill killed killing kills murder murdered murderer murders bomb bombs bombing
butt butts drunk gun guns shoot shot shooting dead death die died dies drug drugs
""")
# Auxiliaries and other grammar words: templates spell these out, they must not fill content slots.
AUX = word_set("""
be am is are was were been being have has had having do does did done doing will would shall should
may might must can could ought the a an and or but if of to in on at by for with from as than that this
these those there here not no yes it its he she they we you me him her them us my your our their his
what which who whom whose when where why how all any some each every both either neither such
""")
# Determiner-like or relational adjectives that read badly in "is {jj}" / "the {jj} {nn}".
JJ_STOP = word_set("""
other such many few own several same much more most less least next last former latter else various
certain whole entire only each every both enough any further additional previous overall total
""")
# Pronoun-like or vague nouns that make "the {nn}" ungrammatical ("down by the nothing").
NN_STOP = word_set("""
nothing something everything anything everyone someone anyone nobody somebody anybody everybody one
ones none lot lots kind sort thing things percent
""")
# Adverbs: the slot sits at line end ("we are running {rb}"), so keep -ly adverbs and these.
RB_KEEP = word_set("""
away again together tonight forever alone home back down still now soon far fast slow today tomorrow
outside inside around along apart above below behind ahead anymore everywhere somewhere nowhere once
twice upstairs downstairs overseas abroad late early long
""")
# Abbreviations that pass the alphabetic filter but would be sung as letters or not at all.
ABBREV = word_set("mr mrs ms dr inc corp co ltd jr sr st vs etc ok tv pc cd dj usa")


def read_poslex(path: Path = POSLEX) -> dict[str, dict[str, float]]:
    """word -> {tag: log P(word|tag)} for lower-case alphabetic words (and simple contractions)."""
    entry_re = re.compile(r'^\("((?:[^"\\]|\\.)*)" \((.*)\) \(\) \)$')
    tag_re = re.compile(r"\((\S+) (-?[\d.]+)\)")
    out: dict[str, dict[str, float]] = {}
    for raw in path.read_text(encoding="latin-1").splitlines():
        m = entry_re.match(raw.strip())
        if not m:
            continue
        word = m.group(1)
        if not re.fullmatch(r"[a-z]+(?:'[a-z]+)?", word):
            continue
        out[word] = {t: float(v) for t, v in tag_re.findall(m.group(2))}
    return out


def word_classes(tags: dict[str, float]) -> list[str]:
    """Slot classes whose tag is within TAG_MARGIN of the best tag (after the tag prior)."""
    # Proper-noun tags are ignored rather than compared: the lexicon is case-folded, so "sun", "sea" and
    # "street" carry big nnp scores from "Sun Microsystems" / "Wall Street".  Words with only nnp tags
    # (names) end up with no class and are dropped.
    scored = {t: lp + math.log(TAG_PRIOR.get(t, 0.01)) for t, lp in tags.items() if t not in ("nnp", "nnps")}
    if not scored:
        return []
    best = max(scored.values())
    classes = {TAG_CLASS[t] for t, s in scored.items() if t in TAG_CLASS and s >= best - TAG_MARGIN}
    return sorted(classes)


def content_candidates(poslex: dict[str, dict[str, float]]) -> dict[str, tuple[list[str], float]]:
    """Common content words with their classes, before the festival check."""
    from wordfreq import zipf_frequency  # build-time only

    out = {}
    for word, tags in poslex.items():
        if "'" in word or len(word) < 2 or word in BLOCKLIST or word in AUX or word in ABBREV:
            continue
        classes = word_classes(tags)
        if "jj" in classes and word in JJ_STOP:
            classes.remove("jj")
        if word in NN_STOP:
            classes = [c for c in classes if c not in ("nn", "nns")]
        if "rb" in classes and not (word.endswith("ly") or word in RB_KEEP):
            classes.remove("rb")
        if not classes:
            continue
        z = zipf_frequency(word, "en")
        if z >= MIN_ZIPF:
            out[word] = (classes, z)
    return out


def scheme_string(word: str) -> str:
    # Words are [a-z'] only (checked by the callers), so a plain Scheme string literal is safe.
    if not re.fullmatch(r"[a-z]+(?:'[a-z]+)?", word):
        raise ValueError(f"unsafe word for Scheme: {word!r}")
    return f'"{word}"'


def parse_sexp(text: str):
    """Minimal s-expression reader for festival's printed lists: strings, atoms, nested lists."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()"]+', text)
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        elif tok.startswith('"'):
            stack[-1].append(tok[1:-1])
        else:
            stack[-1].append(tok)
    return stack[0]


def festival_lookup(words: list[str]) -> dict[str, dict]:
    """One festival process: for every word, lex.lookup (what festival sings when it has no POS) and
    lex.lookup_all (every lexicon entry; empty when festival would fall back to letter-to-sound)."""
    lines = [f"(print (list {scheme_string(w)} (lex.lookup {scheme_string(w)} nil) "
             f"(lex.lookup_all {scheme_string(w)})))" for w in words]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "lookup.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True,
                              check=True)
    out = {}
    for item in parse_sexp(proc.stdout):
        word, entry, alls = item[0], item[1], item[2]
        sylls = [[list(ph), int(st)] for ph, st in entry[2]]
        counts = {len(e[2]) for e in alls} if isinstance(alls, list) else set()
        out[word] = {"syl": sylls, "in_lexicon": bool(counts), "counts": counts}
    return out


def build(max_words: int = MAX_WORDS) -> dict:
    poslex = read_poslex()
    cands = content_candidates(poslex)
    literals = sorted(template_literals())
    ranked = sorted(cands, key=lambda w: (-cands[w][1], w))
    # Look up a margin beyond max_words: some are dropped below (letter-to-sound, ambiguous syllables).
    lookup = festival_lookup(sorted(set(ranked[: int(max_words * 1.3)]) | set(literals)))

    from wordfreq import zipf_frequency

    words: dict[str, dict] = {}
    for w in ranked:
        if len(words) >= max_words:
            break
        info = lookup.get(w)
        # Keep only words in festival's lexicon whose entries agree on the syllable count, so the count
        # holds whichever homograph festival's POS tagger picks ("live", "read" keep one count).
        if info is None or not info["in_lexicon"] or len(info["counts"]) != 1:
            continue
        if not any(p for s in info["syl"] for p in s[0]):
            continue
        words[w] = {"syl": info["syl"], "cls": cands[w][0], "zipf": round(cands[w][1], 2)}
    for w in literals:
        info = lookup[w]
        zipf = round(zipf_frequency(w, "en"), 2)
        entry = words.setdefault(w, {"syl": info["syl"], "cls": [], "zipf": zipf})
        entry["cls"] = sorted(set(entry["cls"]) | {"function"})
    for entry in words.values():
        entry["rhyme"] = _rhyme_key(entry["syl"])
    return {"version": 1, "source": "festival lex.lookup (cmu) + wsj.wp39.poslexR + wordfreq", "words": words}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=BANK_PATH)
    ap.add_argument("--max-words", type=int, default=MAX_WORDS)
    args = ap.parse_args(argv)
    bank = build(args.max_words)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(bank, separators=(",", ":")), encoding="utf-8")
    counts: dict[str, int] = {}
    for entry in bank["words"].values():
        for c in entry["cls"]:
            counts[c] = counts.get(c, 0) + 1
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(bank['words'])} words, {size / 1e6:.2f} MB)")
    print("words per class:", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
