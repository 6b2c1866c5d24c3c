"""Damaged and hostile files given to ``litwatch ingest``, and an ingest stopped by SIGKILL or Ctrl-C.

Each hostile file is refused in one line naming the file and where, with the complete records
before the fault stored and nothing else, nothing read beyond the inputs, and the peak memory of
the whole command (its parser processes too) under 300 MB. The files are built from the real
fixtures in tests/fixtures/pubmed. Every command runs as a process of its own, as a user runs it.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import gzip
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fake_dtd_host import FakeDtdHost
from fake_eutils import FakeEutils, Fault
from smtp_sink import Sink, free_port

PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
ONE = PUBMED / "metapub" / "34843274.xml"  # one record, PMID 34843274, its title on line 4
LITWATCH = Path(sys.executable).with_name("litwatch")
PEAK_MB = 300
# runs a command and prints the peak resident memory of it and every process it waited for, in kB
MEASURED = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
RECORD = re.compile(r"<PubmedArticle>.*?</PubmedArticle>", re.S)
SET_START = '<?xml version="1.0" ?>\n<PubmedArticleSet>\n'


def records() -> list[str]:
    """The real one-article records of tests/fixtures/pubmed/metapub, DOIs and references dropped so
    that clones of them are papers of their own."""
    found = []
    for path in sorted((PUBMED / "metapub").glob("*.xml")):
        for record in RECORD.findall(path.read_text(encoding="utf-8")):
            found.append(re.sub(r"<ArticleIdList>.*?</ArticleIdList>|<ELocationID[^>]*>[^<]*</ELocationID>"
                                r"|<ReferenceList>.*?</ReferenceList>", "", record, flags=re.S))
    return found


def clone(record: str, pmid: int) -> str:
    record = re.sub(r'<PMID Version="(\d+)">\d+</PMID>', rf'<PMID Version="\g<1>">{pmid}</PMID>', record, count=1)
    return record.replace("<ArticleTitle>", f"<ArticleTitle>[{pmid}] ", 1)


def big_file(path: Path, megabytes: int) -> int:
    """A PubMed set of distinct clones of the real records, about ``megabytes`` large; their number."""
    real, parts, size, count = records(), [SET_START], 0, 0
    while size < megabytes * 1_000_000:
        text = clone(real[count % len(real)], 90_000_000 + count)
        parts.append(text + "\n")
        size, count = size + len(text), count + 1
    path.write_text("".join(parts) + "</PubmedArticleSet>\n", encoding="utf-8")
    return count


def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_") and k != "NCBI_API_KEY"}
    return clean | {"LITWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
                    "LITWATCH_QUERIES_DIR": str(tmp_path / "queries"), "PYTHONDONTWRITEBYTECODE": "1",
                    "LITWATCH_PUBTATOR": "off"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    subprocess.run([str(LITWATCH), "init"], env=env(tmp_path), check=True, capture_output=True)
    return tmp_path / "store.sqlite"


def pmids(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT pmid FROM papers ORDER BY pmid")]


def ingest(tmp_path: Path, *args: str) -> tuple[int, str, str, float]:
    """``litwatch ingest ARGS``: exit code, stdout, stderr, and the peak memory in MB."""
    done = subprocess.run([sys.executable, "-c", MEASURED, str(LITWATCH), "ingest", *args], env=env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    *said, peak = done.stderr.splitlines()
    return done.returncode, done.stdout, "\n".join(said), int(peak) / 1024


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A file outside the inputs holding a marker, and a loopback web server (logging every path
    asked of it) serving another: what a hostile DOCTYPE points at."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("MARKER-FROM-A-LOCAL-FILE")
    with FakeDtdHost() as host:
        yield secret, host.url.rstrip("/"), host.requests


def _one() -> tuple[str, str]:
    text = ONE.read_text(encoding="utf-8")
    return text.split("\n", 2)[0], text.split("\n", 2)[2]  # the XML declaration; the file after its DOCTYPE


def _with_doctype(subset: str) -> bytes:
    declaration, rest = _one()
    return f"{declaration}\n<!DOCTYPE PubmedArticleSet {subset}>\n{rest}".replace(
        "<ArticleTitle>", "<ArticleTitle>&x;", 1).encode()


def billion_laughs(_secret: Path, _base: str) -> bytes:
    levels = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">\n' for i in range(1, 10))
    return _with_doctype(f'[\n<!ENTITY l0 "lol">\n{levels}<!ENTITY x "&l9;">\n]')


def local_file_entity(secret: Path, _base: str) -> bytes:
    return _with_doctype(f'[\n<!ENTITY x SYSTEM "file://{secret}">\n]')


def network_entity(_secret: Path, base: str) -> bytes:
    return _with_doctype(f'SYSTEM "{base}/pubmed.dtd" [\n<!ENTITY % remote SYSTEM "{base}/p.dtd">\n%remote;\n'
                         '<!ENTITY x "&web;">\n]')


def external_dtd(_secret: Path, base: str) -> bytes:
    declaration, rest = _one()  # the DTD is never fetched: the file loads, its one record with it
    return f'{declaration}\n<!DOCTYPE PubmedArticleSet SYSTEM "{base}/pubmed_250101.dtd">\n{rest}'.encode()


def three(*, damage: str = "", where: int = 1) -> bytes:
    """Three real records, the one at ``where`` (0-based) damaged."""
    found = records()[:3]
    if damage == "mismatched tag":
        found[where] = found[where].replace("</ArticleTitle>", "</ArticleTitel>", 1)
    elif damage == "garbage bytes":
        found[where] = found[where][:300] + "\x00\x01\x1b[2J" + found[where][300:]
    elif damage == "cut short":
        return (SET_START + "\n".join(found[:where]) + "\n" + found[where][:600]).encode()
    return (SET_START + "\n".join(found) + "\n</PubmedArticleSet>\n").encode()


def truncated_gzip(_secret: Path, _base: str) -> bytes:
    data = gzip.compress(three() * 1)
    return data[: len(data) * 2 // 3]


FIRST_THREE = [int(re.search(r"<PMID[^>]*>(\d+)", r).group(1)) for r in records()[:3]]  # type: ignore[union-attr]

# name: (the file's bytes, what stderr says, PMIDs stored, whether the file is refused)
HOSTILE = {
    "billion laughs": (billion_laughs, ":3:1: malformed PubMed XML: the DOCTYPE declares an entity", []),
    "file:// entity": (local_file_entity, ":3:1: malformed PubMed XML: the DOCTYPE declares an entity", []),
    "http:// entity": (network_entity, ":3:1: malformed PubMed XML: the DOCTYPE declares an entity", []),
    "external DTD": (external_dtd, "", [34843274]),
    "truncated gzip": (truncated_gzip, ": malformed PubMed XML: damaged gzip data", FIRST_THREE[:1]),
    "mismatched tag in record 1": (lambda s, b: three(damage="mismatched tag", where=0), "Opening and ending tag mismatch", []),
    "mismatched tag in the middle": (lambda s, b: three(damage="mismatched tag", where=1), "Opening and ending tag mismatch",
                                     FIRST_THREE[:1]),
    "mismatched tag in the last": (lambda s, b: three(damage="mismatched tag", where=2), "Opening and ending tag mismatch",
                                   FIRST_THREE[:2]),
    "garbage bytes": (lambda s, b: three(damage="garbage bytes", where=2), "malformed PubMed XML", FIRST_THREE[:2]),
    "cut short mid-record": (lambda s, b: three(damage="cut short", where=2), "malformed PubMed XML", FIRST_THREE[:2]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_or_damaged_file_is_refused_in_one_line(
    tmp_path: Path, store: Path, marker: tuple[Path, str, list[str]], name: str
) -> None:
    secret, base, asked = marker
    make, message, stored = HOSTILE[name]
    target = tmp_path / ("hostile.xml.gz" if name == "truncated gzip" else "hostile.xml")
    target.write_bytes(make(secret, base))
    code, out, err, peak = ingest(tmp_path, "--no-tag", str(target))
    if message:
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"litwatch: error: {target}:") and message in err
    else:
        assert (code, err) == (0, "")
    assert pmids(store) == sorted(stored)
    markers = ("MARKER-FROM-A-LOCAL-FILE", FakeDtdHost.MARKER)
    assert not any(m in out + err for m in markers) and asked == []
    with sqlite3.connect(store) as conn:
        assert not [row for row in conn.execute("SELECT * FROM papers") if any(m in repr(row) for m in markers)]
    assert peak < PEAK_MB


@pytest.mark.slow
@pytest.mark.parametrize("gz", [False, True], ids=["plain, parser processes", "gzip, sequential"])
def test_a_200_mb_record_is_refused_by_its_pmid_with_memory_flat(tmp_path: Path, store: Path, gz: bool) -> None:
    real = records()
    huge = clone(real[3], 99_999_999).replace("<AbstractText", "<AbstractText>" + "lorem ipsum " * 17_000_000
                                              + "</AbstractText><AbstractText", 1)
    document = SET_START + "\n".join(real[:3] + [huge] + real[4:6]) + "\n</PubmedArticleSet>\n"
    line = document[: document.index(huge)].count("\n") + 1
    target = tmp_path / ("huge.xml.gz" if gz else "huge.xml")
    data = document.encode()
    target.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    code, _, err, peak = ingest(tmp_path, "--no-tag", str(target))
    assert code == 2 and err == (
        f"litwatch: error: {target}:{line}: malformed PubMed XML: <PubmedArticle> PMID 99999999 is over 32 MB, "
        "the limit of one record; no real PubMed record is this large: if this one is, raise max_record_mb "
        "(LITWATCH_MAX_RECORD_MB) (records before this point were loaded; fix or re-download the file and "
        "ingest it again)")
    assert pmids(store) == sorted(FIRST_THREE)
    assert peak < PEAK_MB


@pytest.mark.slow
def test_a_killed_ingest_leaves_no_parser_process_behind(tmp_path: Path, store: Path) -> None:
    big_file(tmp_path / "big.xml", 40)
    with open(tmp_path / "out", "wb") as out:  # not a pipe: a process left behind would hold it open
        ingest = subprocess.Popen([str(LITWATCH), "ingest", "--no-tag", str(tmp_path / "big.xml")],
                                  env=env(tmp_path), stdout=out, stderr=out)
    left: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(children(ingest.pid)) < 3 and time.monotonic() < deadline:  # 2 parsers, the resource tracker
            time.sleep(0.05)
        left = children(ingest.pid)
        assert len(left) >= 3, "the ingest started no parser processes"
        ingest.kill()
        ingest.wait()
        deadline = time.monotonic() + 2
        while any(alive(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in left if alive(pid)] == []
    finally:  # a failing run leaves nothing behind either
        for pid in left:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_says_what_was_stored_and_running_again_finishes(tmp_path: Path, store: Path) -> None:
    total = big_file(tmp_path / "big.xml", 20)
    command = [str(LITWATCH), "ingest", "--no-tag", "--wide", "--batch-size", "200", str(tmp_path / "big.xml")]
    ingest = subprocess.Popen(command, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(pmids(store)) < 200 and ingest.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ingest.send_signal(signal.SIGINT)
    out, err = ingest.communicate(timeout=60)
    said = re.fullmatch(rf"litwatch: error: interrupted: ([\d,]+) records from {re.escape(str(tmp_path))}/big.xml "
                        r"stored \(the last one PMID (\d+)\); run the same command again to load the rest: "
                        r"records already stored are counted unchanged, not stored twice\n", err)
    assert ingest.returncode == 130 and said, err
    kept = pmids(store)
    assert int(said.group(1).replace(",", "")) == len(kept) >= 200 and int(said.group(2)) == kept[-1]
    assert kept == list(range(90_000_000, 90_000_000 + len(kept)))  # whole batches, in file order
    rerun = subprocess.run(command, env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and rerun.stderr == ""
    header, row = rerun.stdout.splitlines()[:2]
    counts = dict(zip(header.split()[1:], map(int, row.split()[1:])))
    assert (counts["read"], counts["new"], counts["unchanged"]) == (total, total - len(kept), len(kept))
    assert len(pmids(store)) == total


def _folder(tmp_path: Path) -> Path:
    queries = tmp_path / "queries"
    queries.mkdir(exist_ok=True)
    (queries / "migraine-immunology.toml").write_text('term = "migraine[tiab]"\ngroups = ["headache-lab"]\n')
    (queries / "groups.toml").write_text('[groups.headache-lab]\nrecipients = ["lab@example.org"]\n')
    return queries


def test_a_script_title_from_pubmed_is_text_in_the_previewed_digest(tmp_path: Path, store: Path) -> None:
    hostile = ONE.read_text(encoding="utf-8").replace(
        "<ArticleTitle>", "<ArticleTitle>&lt;script&gt;alert(1)&lt;/script&gt;&#13;&#10;Bcc: victim@example.net ", 1)
    (tmp_path / "hostile.xml").write_text(hostile, encoding="utf-8")
    _folder(tmp_path)
    assert subprocess.run([str(LITWATCH), "ingest", "--no-tag", str(tmp_path / "hostile.xml")], env=env(tmp_path),
                          capture_output=True).returncode == 0
    with sqlite3.connect(store) as conn:
        conn.execute("INSERT INTO query_hits (query_name, paper_pmid, first_found_at, last_found_at) "
                     "VALUES ('migraine-immunology', 34843274, '2026-03-01 06:00:00', '2026-03-01 06:00:00')")
    done = subprocess.run([str(LITWATCH), "digest", "--preview", str(tmp_path / "pv"), "--since", "2026-02-01"],
                          env=env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "pv" / "headache-lab.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; Bcc: victim@example.net" in html
    eml = (tmp_path / "pv" / "headache-lab.eml").read_bytes()
    message = email.message_from_bytes(eml, policy=email.policy.default)
    assert message.get_all("Bcc") is None and b"\nBcc:" not in eml
    html_part = message.get_body(("html",))
    assert html_part is not None and "<script>" not in str(html_part.get_content())


API_KEY, SMTP_PASSWORD = "MARKER-API-KEY-7f3a", "MARKER-SMTP-PASSWORD-91c2"


def _echoing_authenticator(server: object, session: object, envelope: object, mechanism: str,
                           auth_data: object) -> AuthResult:
    """A careless SMTP server: it refuses every login and quotes the password it was given."""
    given = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else ""
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials {given}")


def test_secrets_never_reach_output_receipts_or_the_outbox(tmp_path: Path, store: Path, fake_eutils: FakeEutils) -> None:
    """The API key and the SMTP password, set as markers, against servers that quote them back."""
    fake_eutils.add_records_from_file(ONE, crdt=dt.date.today() - dt.timedelta(days=1))
    _folder(tmp_path)
    sink = Sink(port=free_port())
    smtp = Controller(sink, hostname="127.0.0.1", port=sink.port, authenticator=_echoing_authenticator,
                      auth_require_tls=False)
    smtp.start()
    settings = env(tmp_path) | {
        "NCBI_API_KEY": API_KEY, "LITWATCH_EMAIL": "librarian@example.org", "LITWATCH_EUTILS_URL": fake_eutils.url,
        "LITWATCH_PUBTATOR": "off", "LITWATCH_MAX_RETRIES": "1", "LITWATCH_OUTBOX": str(tmp_path / "outbox"),
        "LITWATCH_SMTP_HOST": "127.0.0.1", "LITWATCH_SMTP_PORT": str(sink.port), "LITWATCH_SMTP_TLS": "none",
        "LITWATCH_SMTP_USER": "digest", "LITWATCH_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    said = []
    try:
        quoting = Fault(status=500, body=f"<h1>500</h1>?api_key={API_KEY}".encode())  # a proxy quoting the URL
        for command, fault in [(["run-due"], quoting), (["run"], None), (["digest", "--send", "--force"], None),
                               (["run"], quoting)]:
            if fault is None:
                fake_eutils.clear_faults()
            else:
                fake_eutils.inject(fault)
            done = subprocess.run([str(LITWATCH), *command], env=settings, capture_output=True, text=True, timeout=120)
            said.append((command, done.returncode, done.stdout + done.stderr))
    finally:
        smtp.stop()
    assert [code for _, code, _ in said] == [1, 0, 1, 1], said
    assert "500" in said[0][2] and "bad credentials" in said[2][2] and "500" in said[3][2]
    with sqlite3.connect(store) as conn:
        dump = "\n".join(conn.iterdump())
    outbox = "".join(p.read_text(errors="replace") for p in (tmp_path / "outbox").rglob("*") if p.is_file())
    for secret in (API_KEY, SMTP_PASSWORD):
        assert not [command for command, _, text in said if secret in text]
        assert secret not in dump and secret not in outbox
