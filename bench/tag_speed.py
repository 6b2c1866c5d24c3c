"""How fast the tagger matches abstracts against a vocabulary the size of HGNC.

The vocabulary is the curated starter set (``queries/vocab``) plus synthetic HGNC-style genes
written in the ``hgnc_complete_set.txt`` format and read through ``import_hgnc``: symbols shaped
like real ones (letters, a family number, a member letter: ``SLC44A4``, ``KCNK18``), a name and
aliases, until the vocabulary holds 50,000 terms. The texts are the real abstracts of the PubMed
fixtures, repeated to 10,000. Only matching is timed (``Tagger.match``), best of 3, in one process
on one core; building the automaton is reported apart.

    PYTHONPATH=src python bench/tag_speed.py [abstracts] [terms]
"""

from __future__ import annotations

import random
import resource
import shutil
import string
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from litwatch.files.vocab import load_vocabulary
from litwatch.tagging.hgnc import import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = [Path("/work/shared/fixtures/pubmed/metapub"), ROOT / "tests" / "fixtures" / "pubmed"]
WORDS = ("protein kinase receptor channel factor family member subunit domain containing "
         "transporter binding associated regulator homolog like zinc finger solute carrier").split()


def abstracts() -> list[str]:
    """Every abstract (sections joined by newlines) of the PubMed XML fixtures found."""
    texts: list[str] = []
    for folder in FIXTURES:
        for path in sorted(folder.rglob("*.xml")):
            tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
            for article in tree.iter("Abstract"):
                text = "\n".join("".join(t.itertext()) for t in article.iter("AbstractText"))
                if text.strip():
                    texts.append(text)
    return texts


def synthetic_hgnc(path: Path, terms: int, seed: int = 7) -> None:
    """An hgnc_complete_set.txt-shaped file of made-up genes (a symbol, a name, 0-3 aliases each)
    holding ``terms`` terms in all."""
    rng = random.Random(seed)
    seen: set[str] = set()
    with path.open("w", encoding="utf-8") as out:
        out.write("hgnc_id\tsymbol\tname\tlocus_group\tstatus\talias_symbol\tprev_symbol\n")
        n = 0
        while terms > 0:
            stem = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(2, 5)))
            symbol = stem + str(rng.randint(1, 60)) + rng.choice(["", "", "A", "B", "L", "P1"])
            if symbol in seen:
                continue
            seen.add(symbol)
            aliases = [
                "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 6)))
                + str(rng.randint(1, 99))
                for _ in range(rng.choice([0, 1, 1, 2, 3]))
            ]
            aliases = [a for a in aliases if a not in seen][:max(0, terms - 2)]
            seen.update(aliases)
            terms -= 2 + len(aliases)
            name = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) + f" {rng.randint(1, 40)}"
            out.write(f"HGNC:{n + 1}\t{symbol}\t{name}\tprotein-coding gene\tApproved\t"
                      f"\"{'|'.join(aliases)}\"\t\n")
            n += 1


def main(n_abstracts: int = 10_000, n_terms: int = 50_000) -> None:
    texts = abstracts()
    if not texts:
        sys.exit("no PubMed fixtures found")
    corpus = (texts * (n_abstracts // len(texts) + 1))[:n_abstracts]
    chars = sum(map(len, corpus)) / len(corpus)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "vocab"
        shutil.copytree(ROOT / "queries" / "vocab", folder)
        starter = len(load_vocabulary(folder).terms)
        synthetic_hgnc(Path(tmp) / "hgnc_complete_set.txt", n_terms - starter)
        import_hgnc(Path(tmp) / "hgnc_complete_set.txt", folder / "hgnc.tsv")
        vocab = load_vocabulary(folder)
    start = time.perf_counter()
    tagger = Tagger(vocab)
    build = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"vocabulary: {len(vocab.terms):,} terms ({starter} curated + synthetic HGNC-style), "
          f"automaton built in {build:.1f} s, peak RSS {rss:.0f} MB")
    print(f"texts: {len(corpus):,} abstracts ({len(texts)} distinct real PubMed abstracts, "
          f"{chars:,.0f} characters on average)")
    best, matches = float("inf"), 0
    for _ in range(3):
        start = time.perf_counter()
        matches = sum(len(tagger.match(text)) for text in corpus)
        best = min(best, time.perf_counter() - start)
    print(f"matching: {len(corpus) / best:,.0f} abstracts/s on one core "
          f"({best * 1e6 / len(corpus):.0f} µs each, {matches / len(corpus):.1f} matches per abstract)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
