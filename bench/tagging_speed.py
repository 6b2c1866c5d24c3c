"""How fast the tagger tags gene-dense abstracts against the full HGNC vocabulary, with and
without the context rules (``Tagger(vocab, rules=False)``).

The vocabulary is the shipped folder plus a real HGNC download imported by ``import_hgnc``
(see ``bench/tagging_quality.py`` for where to get one), protein-coding genes by default or every
locus group with ``--all``. The texts are the real abstracts of the PubMed fixtures; the gene-dense
half (most gene matches per character) is repeated to 10,000. Only matching is timed
(``Tagger.match``), 5 runs, in one process on one core; the median and the ratio of the medians
are printed with the machine's core count.

    PYTHONPATH=src:bench python bench/tagging_speed.py --hgnc FILE [--all] [--abstracts N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tag_speed import abstracts

from litwatch.files.vocab import load_vocabulary
from litwatch.tagging.hgnc import LOCUS_GROUPS, import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent


def timed(tagger: Tagger, corpus: list[str], runs: int = 5) -> float:
    """Median abstracts per second over ``runs`` passes."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for text in corpus:
            tagger.match(text)
        rates.append(len(corpus) / (time.perf_counter() - start))
    return statistics.median(rates)


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
    plain = timed(without, corpus)
    ruled = timed(with_rules, corpus)
    print(f"without rules: {plain:,.0f} abstracts/s (median of 5)")
    print(f"with rules:    {ruled:,.0f} abstracts/s (median of 5), {ruled / plain:.2f}x")


if __name__ == "__main__":
    main()
