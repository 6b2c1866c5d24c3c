"""How fast the tagger tags gene-dense abstracts against the full HGNC vocabulary, with and
without the context rules (``Tagger(vocab, rules=False)``).

The vocabulary is the shipped folder plus a real HGNC download imported by ``import_hgnc``
(see ``bench/tagging_quality.py`` for where to get one), protein-coding genes by default or every
locus group with ``--all``. The texts are the real abstracts of the PubMed fixtures; the gene-dense
half (most gene matches per character) is repeated to 10,000. Only matching is timed
(``Tagger.match``), 5 runs of CPU time in one process on one core, against a baseline in the same
process: the bare Aho-Corasick scan over the same texts. Medians and ratios of medians are
printed with the machine's core count. A tagger keeps what it decided about each written form
(and each defined long form), which the repeated texts favour; the last line is the same work
with those caches emptied before every pass over the gene-dense half, so each abstract meets
only what the others taught it, as a paper of a day's fresh batch does.

    PYTHONPATH=src:bench python bench/tagging_speed.py --hgnc FILE [--all] [--abstracts N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tag_speed import abstracts

from litwatch.files.vocab import load_vocabulary
from litwatch.tagging.context import _shape
from litwatch.tagging.forms import canon_lower
from litwatch.tagging.hgnc import LOCUS_GROUPS, import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent


def timed(work: Callable[[str], object], corpus: list[str], runs: int = 5) -> float:
    """Median abstracts per CPU second of this process over ``runs`` passes (CPU time, since
    the machine is shared)."""
    rates = []
    for _ in range(runs):
        start = time.process_time()
        for text in corpus:
            work(text)
        rates.append(len(corpus) / (time.process_time() - start))
    return statistics.median(rates)


def cold(tagger: Tagger, dense: list[str], runs: int = 5, passes: int = 40) -> float:
    """Median abstracts per CPU second when each pass over ``dense`` starts with empty caches."""
    rates = []
    for _ in range(runs):
        elapsed = 0.0
        for _ in range(passes):
            tagger._hits.clear()
            tagger._long_forms.clear()
            _shape.cache_clear()
            start = time.process_time()
            for text in dense:
                tagger.match(text)
            elapsed += time.process_time() - start
        rates.append(passes * len(dense) / elapsed)
    return statistics.median(rates)


def floor(tagger: Tagger) -> Callable[[str], object]:
    """The bare Aho-Corasick scan the tagger starts with, and nothing else: the baseline."""
    automaton = tagger._automaton
    assert automaton is not None

    def scan(text: str) -> int:
        return len(automaton.find_matches_as_indexes(f" {canon_lower(text)} ", overlapping=True))

    return scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hgnc", type=Path, required=True)
    parser.add_argument("--all", action="store_true", help="import every locus group")
    parser.add_argument("--abstracts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "vocab"
        shutil.copytree(ROOT / "queries" / "vocab", folder)
        groups = {"locus_groups": frozenset(LOCUS_GROUPS)} if args.all else {}
        genes = import_hgnc(args.hgnc, folder / "hgnc.tsv", **groups)
        vocab = load_vocabulary(folder)
    with_rules, without = Tagger(vocab), Tagger(vocab, rules=False)
    texts = abstracts()
    dense = sorted(texts, key=lambda t: -sum(m.kind == "gene" for m in without.match(t)) / max(len(t), 1))
    dense = dense[:len(dense) // 2]
    corpus = (dense * (args.abstracts // len(dense) + 1))[:args.abstracts]
    per = sum(sum(m.kind == "gene" for m in without.match(t)) for t in dense) / len(dense)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"vocabulary: {genes:,} HGNC genes + shipped, {len(vocab.terms):,} terms; machine: {cores} cores, "
          "timing on one")
    print(f"texts: {len(corpus):,} abstracts from the {len(dense)} most gene-dense of {len(texts)} real ones "
          f"({per:.1f} gene matches each)")
    base = timed(floor(without), corpus)
    plain = timed(without.match, corpus)
    ruled = timed(with_rules.match, corpus)
    fresh = cold(with_rules, dense)
    print(f"bare automaton scan (baseline):  {base:,.0f} abstracts/s, CPU time, median of 5")
    print(f"tagger without rules:            {plain:,.0f} abstracts/s ({base / plain:.2f}x the baseline's time)")
    print(f"tagger with rules:               {ruled:,.0f} abstracts/s ({base / ruled:.2f}x the baseline's time, "
          f"{plain / ruled:.2f}x without rules)")
    print(f"with rules, caches emptied:      {fresh:,.0f} abstracts/s (each pass over the {len(dense)} starts empty)")


if __name__ == "__main__":
    main()
