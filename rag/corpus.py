"""Corpus readers: files of paper abstracts (text page, JSON Lines, JSON or CSL JSON, CSV, BibTeX, RIS, PDF) and
folders of them → papers."""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rag.errors import RagError
from rag.models import Paper
from rag.text import plain

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 1 << 20  # a line-based file's record fits in a line; none is this long (MAX_ABSTRACT_CHARS is 20,000)
# NOTE: a JSON record (or a top-level JSON object) and a BibTeX entry are each parsed whole, the file never is: memory
# stays near one record, and a "record" this long is not one
MAX_RECORD_CHARS = 16 * 2**20
_CHUNK = 1 << 16  # characters read at a time
MAX_ABSTRACT_CHARS = 20_000
MAX_TITLE_CHARS = 1_000
_ABSTRACT_MIN_CHARS = 200
_PAGE_CHROME = re.compile(r"^Subscribe(?=[A-Z0-9])")
_ARXIV = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/|arxiv:)\s*(\d{4}\.\d{4,5})", re.IGNORECASE)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)
_PDF_PAGES = 2  # NOTE: title and abstract are on the first pages; reading no further bounds the work a PDF can ask for
# "Abstract" alone on its line or run in ("Abstract—We", "ABSTRACT. We"); "A BSTRACT" is how pypdf reads small capitals
_ABSTRACT_HEADING = re.compile(r"^[ \t]*a ?bstract[ \t]*(?:$|[.:—–-]+)", re.IGNORECASE | re.MULTILINE)
_NEXT_HEADING = re.compile(
    r"^[ \t]*(?:(?:1|I)\.?[ \t]*)?i ?ntroduction[ \t]*$|^[ \t]*(?:keywords|key words|index terms|ccs concepts)\b",
    re.IGNORECASE | re.MULTILINE,
)
_LIGATURES = {c: unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)}  # 'ﬁ' → 'fi', as it was typed


class CorpusError(RagError):
    """A corpus file that cannot be read as a whole; the message names file and line."""


@dataclass
class ReadResult:
    """The papers of one file and what was skipped inside it, with reasons."""

    source: str
    papers: list[Paper] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def numbered_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """The non-empty lines of a user's file (a batch, an eval file, a history), numbered from 1, stripped; a file
    that cannot be read is one error naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RagError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    return ((n, line.strip()) for n, line in enumerate(lines, 1) if line.strip())


def json_line(path: str | Path, n: int, line: str) -> object:
    """One JSON Lines record, or one error naming the file and line."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise RagError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
    except (RecursionError, ValueError) as exc:
        raise RagError(f"{path}:{n}: unreadable JSON ({_why(exc)})") from None


def normalise_title(title: str) -> str:
    """Lower-case, accent-free, punctuation-free title used for ids and duplicate checks."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def make_paper_id(title: str, *, own_id: str | None = None, url: str | None = None, doi: str | None = None) -> str:
    """A stable id: the record's own id, else its arXiv id or DOI, else a slug plus a hash of the title."""
    if own_id and own_id.strip():
        return re.sub(r"\s+", "-", own_id.strip())
    for text in (url, doi):
        if text and (match := _ARXIV.search(text)):
            return f"arxiv:{match.group(1)}"
    for text in (doi, url):
        if text and (match := _DOI.search(text)):
            return f"doi:{match.group(1).rstrip('.').lower()}"
    norm = normalise_title(title)
    slug = "-".join(norm.split()[:6])[:60] or "paper"
    return f"{slug}-{hashlib.sha1(norm.encode()).hexdigest()[:8]}"


def _clean(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return re.sub(r"\s+", " ", text).strip()


def _authors(value: object) -> list[str]:
    if isinstance(value, list):
        return [_clean(a) for a in value if _clean(a)]
    text = _clean(value)
    if not text:
        return []
    parts = re.split(r"\s+and\s+|;", text) if (" and " in text or ";" in text) else text.split(",")
    return [p.strip() for p in parts if p.strip()]


def _year(value: object) -> int | None:
    match = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", _clean(value))
    return int(match.group(1)) if match else None


def _record_to_paper(record: dict[str, object], source: str, where: str, result: ReadResult) -> None:
    """Validate one record and add it to `result`, or count why it was skipped."""
    fields = {str(k).strip().lower(): v for k, v in record.items()}
    for name in ("title", "abstract"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            kind = {"float": "a number", "int": "a number", "dict": "an object", "list": "a list", "bool": "true/false"}
            raise CorpusError(
                f"{source}: {where}: {name} is {kind.get(type(fields[name]).__name__, 'not text')}, not text"
            )
    raw_title = _clean(fields.get("title"))
    title, abstract = plain(raw_title), plain(_clean(fields.get("abstract")))
    if not title:
        result.skipped["missing title"] += 1
        return
    if not abstract:
        result.skipped["missing abstract"] += 1
        return
    if len(abstract) > MAX_ABSTRACT_CHARS or len(title) > MAX_TITLE_CHARS:
        result.skipped[f"longer than {MAX_ABSTRACT_CHARS:,} characters"] += 1
        return
    url = _clean(fields.get("url")) or None
    doi = _clean(fields.get("doi")) or None
    paper = Paper(
        paper_id=make_paper_id(raw_title, own_id=_clean(fields.get("id")) or None, url=url, doi=doi),
        title=title,
        abstract=abstract,
        url=url,
        authors=_authors(fields.get("authors") or fields.get("author")),
        year=_year(fields.get("year")),
        source=source,
        locator=where,
    )
    result.papers.append(paper)


class _Counted(io.BufferedIOBase):
    """A binary file that counts the bytes and newlines read through it, so that a decoding error can be placed."""

    def __init__(self, binary: io.BufferedIOBase) -> None:
        super().__init__()
        self._binary = binary
        self.bytes = self.newlines = 0

    @property
    def name(self) -> Any:  # NOTE: what TextIOWrapper shows as its name
        return getattr(self._binary, "name", None)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._count(self._binary.read(size))

    def read1(self, size: int = -1) -> bytes:
        return self._count(self._binary.read1(size))

    def _count(self, data: bytes) -> bytes:
        self.bytes += len(data)
        self.newlines += data.count(b"\n")
        return data


@contextlib.contextmanager
def _decoded(binary: io.BufferedIOBase, source: str) -> Iterator[TextIO]:
    """The text of a corpus file, decoded as it is read: UTF-8 without its BOM, line ends as written. NUL bytes near its
    start, bytes that are not UTF-8 and a file of nothing but whitespace are each one error naming the file."""
    if b"\x00" in binary.read(65536):
        raise CorpusError(f"{source}: looks binary (NUL bytes); expected UTF-8 text")
    counted = _Counted(binary)

    def from_start() -> TextIO:
        nonlocal counted
        binary.seek(0)
        counted = _Counted(binary)
        return io.TextIOWrapper(counted, encoding="utf-8-sig", newline="")

    try:
        stream = from_start()
        while (chunk := stream.read(_CHUNK)).isspace():  # NOTE: text usually starts in the first chunk
            pass
        if not chunk:
            raise CorpusError(f"{source}: file has no text")
        yield from_start()
    except UnicodeDecodeError as exc:
        # NOTE: the decoder fails on the bytes it was given last, which end where the reading has got to
        at = counted.bytes - len(exc.object) + exc.start
        line = counted.newlines - exc.object[exc.start :].count(b"\n") + 1
        raise CorpusError(f"{source}:{line}: not valid UTF-8 (byte {at}); re-save the file as UTF-8") from None


def _lines(stream: TextIO, source: str, head: str = "") -> Iterator[str]:
    """The lines of `head` (text already read from `stream`) and of the rest of the stream, with their line ends; a
    line over MAX_LINE_BYTES is an error naming it, so memory stays near one line."""
    if head:
        head += stream.readline(MAX_LINE_BYTES + 1)  # NOTE: the rest of the line `head` stops in
    rest = iter(functools.partial(stream.readline, MAX_LINE_BYTES + 1), "")
    for n, line in enumerate(itertools.chain(io.StringIO(head, newline=""), rest), 1):
        if len(line) > MAX_LINE_BYTES:
            raise _line_too_long(source, n)
        yield line


def _read_text_page(stream: TextIO, result: ReadResult) -> None:
    """Title line followed by abstract line, recognised by what each line looks like."""
    lines = [(n, _PAGE_CHROME.sub("", line.strip())) for n, line in enumerate(stream.read().splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line]

    def is_abstract(line: str) -> bool:
        return len(line) >= _ABSTRACT_MIN_CHARS and len(re.findall(r"[.!?](\s|$)", line)) >= 1

    pending: tuple[int, str] | None = None
    for n, line in lines:
        if is_abstract(line):
            if pending is None:
                result.skipped["abstract without a title line"] += 1
            else:
                _record_to_paper({"title": pending[1], "abstract": line}, result.source, f"line {pending[0]}", result)
            pending = None
        else:
            pending = (n, line)


def _why(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else "a number too long to read"


def _read_jsonl(stream: TextIO, result: ReadResult) -> None:
    """A record a line, read a line at a time; lines end at a line break only (a JSON string may hold U+2028)."""
    for n, line in enumerate(_lines(stream, result.source), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{result.source}:{n}: invalid JSON ({exc.msg}, column {exc.colno})") from None
        except (RecursionError, ValueError) as exc:  # nested too deeply; an integer of thousands of digits
            raise CorpusError(f"{result.source}:{n}: unreadable JSON ({_why(exc)})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{result.source}:{n}: expected a JSON object with title and abstract")
        _record_to_paper(record, result.source, f"line {n}", result)


def _read_json(stream: TextIO, result: ReadResult) -> None:
    """A top-level array is read a record at a time; anything else (one record, or records under "papers" or
    "records") is read whole, up to MAX_RECORD_CHARS."""
    window = _JsonWindow(stream, result.source)
    records: Iterable[object]
    if window.peek() == "[":
        records = window.items()
    else:
        data = window.whole()
        if isinstance(data, dict):
            data = data.get("papers", data.get("records", [data]))
        if not isinstance(data, list):
            raise CorpusError(f"{result.source}: expected a list of objects with title and abstract")
        records = data
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise CorpusError(f"{result.source}: record {i} is not an object with title and abstract")
        _record_to_paper(_from_csl(record) if _is_csl(record) else record, result.source, f"record {i}", result)


_JSON = json.JSONDecoder()
_JSON_TOKEN = re.compile(r"[^ \t\n\r]")  # what json does not skip as whitespace
# NOTE: json's scanner stops within this many characters of the end when the end cuts a literal, a number or an escape
# short ("tru", "-Infinit", "\u12"), or at the opening quote of a string the end cuts; any other error is in the file
_JSON_CUT = 16


class _JsonWindow:
    """JSON text read from a stream a window at a time (`text[pos:]` is not parsed yet), with json's own scanner, so
    values and errors are json.loads's, their line and column counted from the start of the file."""

    def __init__(self, stream: TextIO, source: str) -> None:
        self.stream, self.source = stream, source
        self.text, self.pos, self.end = "", 0, False
        self.line, self.column = 1, 0  # where `text` starts in the file

    def more(self) -> None:
        """Drop what is parsed and read at least as much again as is left: a long record is scanned a few times, not
        once a chunk."""
        done = self.text[: self.pos]
        if newlines := done.count("\n"):
            self.line, self.column = self.line + newlines, len(done) - done.rfind("\n") - 1
        else:
            self.column += len(done)
        data = self.stream.read(max(_CHUNK, len(self.text) - self.pos))
        self.text, self.pos, self.end = self.text[self.pos :] + data, 0, not data

    def peek(self) -> str:
        """The next character that is not whitespace; "" at the end of the text."""
        while True:
            token = _JSON_TOKEN.search(self.text, self.pos)
            self.pos = token.start() if token else len(self.text)
            if token or self.end:
                return self.text[self.pos : self.pos + 1]
            self.more()

    def value(self, record: int) -> object:
        """The value after `pos` (and whitespace), read on while the window's end cuts it short."""
        self.peek()
        while True:
            end: int | None = None
            try:
                value, end = _JSON.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.text) - _JSON_CUT
                if self.end or not cut:
                    raise self.invalid(exc) from None
            except (RecursionError, ValueError) as exc:  # nested too deeply; an integer of thousands of digits
                raise CorpusError(f"{self.source}: unreadable JSON ({_why(exc)})") from None
            # NOTE: the limit is on the record (or on what is read of it), not on the window, wherever reads end
            if (len(self.text) if end is None else end) - self.pos > MAX_RECORD_CHARS:
                line = self.line + self.text.count("\n", 0, self.pos)
                raise CorpusError(
                    f"{self.source}:{line}: record {record} is over {MAX_RECORD_CHARS // 2**20} MiB; a record is far "
                    "shorter, so this is not a corpus file"
                )
            if end is not None:
                self.pos = end
                return value
            self.more()

    def items(self) -> Iterator[object]:
        """The values of the array whose "[" is next, then nothing but whitespace to the end."""
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        else:
            for record in itertools.count(1):
                yield self.value(record)
                after = self.peek()
                if after == "]":
                    self.pos += 1
                    break
                if after != ",":
                    raise self.invalid(json.JSONDecodeError("Expecting ',' delimiter", self.text, self.pos))
                self.pos += 1
        self.finish()

    def whole(self) -> object:
        """The one value of the rest of the text, read whole."""
        while not self.end and len(self.text) - self.pos <= MAX_RECORD_CHARS:
            self.more()
        if len(self.text) - self.pos > MAX_RECORD_CHARS:
            raise CorpusError(
                f"{self.source}: a JSON object over {MAX_RECORD_CHARS // 2**20} MiB is read whole; give the papers as "
                "a top-level array ([{...}, ...]) or as JSON Lines, read a record at a time"
            )
        value = self.value(1)
        self.finish()
        return value

    def finish(self) -> None:
        if self.peek():
            raise self.invalid(json.JSONDecodeError("Extra data", self.text, self.pos))

    def invalid(self, exc: json.JSONDecodeError) -> CorpusError:
        column = exc.colno + (self.column if exc.lineno == 1 else 0)
        return CorpusError(f"{self.source}:{self.line + exc.lineno - 1}: invalid JSON ({exc.msg}, column {column})")


def _is_csl(record: dict[str, Any]) -> bool:
    """Whether a JSON record is a CSL item (Zotero's "CSL JSON" export): names as objects, a date as an object."""
    names = record.get("author")
    return isinstance(record.get("issued"), dict) or (
        isinstance(names, list) and any(isinstance(n, dict) for n in names)
    )


def _from_csl(item: dict[str, Any]) -> dict[str, object]:
    """A CSL item as the record every reader gives: names as BibTeX and RIS write them ("Family, Given"), the year
    out of `issued` ({"date-parts": [[2023, 5]]}, or its "raw" or "literal" text)."""
    names = item.get("author")
    if isinstance(names, list):
        names = [_csl_name(n) if isinstance(n, dict) else n for n in names]
    issued = item.get("issued")
    if isinstance(issued, dict):
        parts = issued.get("date-parts")
        first = parts[0] if isinstance(parts, list) and parts else None
        issued = first[0] if isinstance(first, list) and first else issued.get("raw") or issued.get("literal")
    record = {
        "title": item.get("title"),
        "abstract": item.get("abstract"),
        "authors": names,
        "year": issued,
        "url": item.get("URL"),
        "doi": item.get("DOI"),
    }
    record["id"] = _citation_key(record, item.get("id"))
    return record


def _csl_name(name: dict[str, Any]) -> str:
    return _clean(name.get("literal")) or ", ".join(_clean(name.get(k)) for k in ("family", "given") if name.get(k))


def _read_csv(stream: TextIO, result: ReadResult) -> None:
    sample = ""
    while len(sample) < 4096 and (more := stream.read(4096 - len(sample))):
        sample += more
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(_lines(stream, result.source, sample), dialect=dialect)
    try:
        columns = {c.strip().lower() for c in reader.fieldnames or [] if c}
        if not {"title", "abstract"} <= columns:
            found = ", ".join(sorted(columns)) or "none"
            raise CorpusError(f"{result.source}:1: needs 'title' and 'abstract' columns (found: {found})")
        for record in reader:
            if None in record:
                raise CorpusError(f"{result.source}:{reader.line_num}: more fields than columns")
            _record_to_paper(dict(record), result.source, f"line {reader.line_num}", result)
    except csv.Error as exc:
        raise CorpusError(f"{result.source}:{reader.line_num}: malformed CSV ({exc})") from None


_BIBTEX_BLOCK = re.compile(r"@\w*[ \t]*[{(]")  # how bibtexparser's splitter tells the start of a block
_MACRO = "rag_macro"  # parser metadata marking an earlier piece's @string, given to a later piece


def _read_bibtex(stream: TextIO, result: ReadResult) -> None:
    """BibTeX, an entry at a time, as bibtexparser's `parse_string` reads a whole file, with LaTeX turned into text.

    An @string macro applies to the entries after it, as BibTeX itself reads them. A key used twice, like any block
    that cannot be parsed, is one error naming its line."""
    from bibtexparser.library import Library
    from bibtexparser.middlewares import LatexDecodingMiddleware
    from bibtexparser.middlewares.parsestack import default_parse_stack
    from bibtexparser.model import Entry, ParsingFailedBlock, String
    from bibtexparser.splitter import Splitter

    stack = [*default_parse_stack(), LatexDecodingMiddleware()]
    macros: dict[str, tuple[str, str]] = {}  # lower-case name → name and value as written, of each @string so far
    entry_keys: set[str] = set()
    string_keys: set[str] = set()
    for first, text in _bibtex_pieces(stream, result.source):
        split = Splitter(text).split()
        # NOTE: bibtexparser replaces a field whose whole value names a macro; only those macros are given along
        named = {f.value.lower() for e in split.entries for f in e.fields if isinstance(f.value, str)}
        given = [String(*macros[name]) for name in named if name in macros]
        for macro in given:
            macro.set_parser_metadata(_MACRO, True)
        library = Library()
        library.add([*given, *split.blocks], fail_on_duplicate_key=False)
        defined = [(s.key, s.value) for s in split.strings]  # NOTE: as written: the stack changes them in place
        for middleware in stack:
            library = middleware.transform(library)
        for block in library.blocks:
            line = first + (block.start_line or 0)
            if isinstance(block, ParsingFailedBlock):
                raise CorpusError(f"{result.source}:{line}: malformed BibTeX entry ({type(block).__name__})")
            if isinstance(block, Entry | String) and not block.get_parser_metadata(_MACRO):
                keys = entry_keys if isinstance(block, Entry) else string_keys
                if block.key in keys:  # NOTE: as bibtexparser flags a key used twice in one string
                    raise CorpusError(f"{result.source}:{line}: malformed BibTeX entry (DuplicateBlockKeyBlock)")
                keys.add(block.key)
            if isinstance(block, Entry):
                record: dict[str, object] = {k.lower(): f.value for k, f in block.fields_dict.items()}
                record["id"] = _citation_key(record, block.key)
                if record["id"] is None and record.get("eprint") and not record.get("url"):
                    record["url"] = f"https://arxiv.org/abs/{record['eprint']}"
                _record_to_paper(record, result.source, f"entry {block.key} (line {line})", result)
        macros.update((key.lower(), (key, value)) for key, value in defined)
    if not entry_keys:
        raise CorpusError(f"{result.source}: no BibTeX entries found")


def _bibtex_pieces(stream: TextIO, source: str) -> Iterator[tuple[int, str]]:
    """A BibTeX file cut before each line that starts a block ("@article{"), each piece with its first line's number.

    NOTE: bibtexparser's splitter ends a block still open at such a line (as a failed block), so each piece parses as
    it does in the whole file, and memory stays near one entry."""
    piece: list[str] = []
    size, first, line, at_start = 0, 1, 1, True
    while text := stream.readline(MAX_RECORD_CHARS + 1):
        if at_start and piece and _BIBTEX_BLOCK.match(text.lstrip()):
            yield first, "".join(piece)
            piece, size, first = [], 0, line
        piece.append(text)
        size += len(text)
        if size > MAX_RECORD_CHARS:
            raise CorpusError(
                f"{source}:{first}: a BibTeX entry over {MAX_RECORD_CHARS // 2**20} MiB; an entry is far shorter, so "
                "this is not a bibliography"
            )
        at_start = text.endswith("\n")  # NOTE: bibtexparser counts lines by "\n" alone
        line += at_start
    if piece:
        yield first, "".join(piece)


def _citation_key(record: dict[str, object], key: object) -> object:
    """A reference manager's key names a paper only in its own library: it is the paper's id only when no arXiv id or
    DOI names the paper everywhere."""
    if _ARXIV.search(f"{record.get('url') or ''} arxiv:{record.get('eprint') or ''}") or record.get("doi"):
        return None
    return key


def _read_ris(stream: TextIO, result: ReadResult) -> None:
    """RIS (Zotero, EndNote, Mendeley): records from a 'TY  -' line to an 'ER  -' line.

    NOTE: a record's ID is not its paper id, unlike a BibTeX key: EndNote numbers its records 1, 2, 3 in every file."""
    import rispy

    text = stream.read()
    starts = _ris_starts(text, result.source)
    try:
        # NOTE: without blank lines, which rispy adds to the previous record's last field, or fails on
        entries = rispy.loads("\n".join(line for line in text.split("\n") if line.strip()))
    except Exception as exc:  # NOTE: rispy has no error of its own; _ris_starts rejects what makes it fail
        raise CorpusError(f"{result.source}: malformed RIS ({type(exc).__name__})") from None
    for entry, line in zip(entries, starts, strict=True):
        record = {
            "title": entry.get("title") or entry.get("primary_title"),
            "abstract": entry.get("abstract") or entry.get("notes_abstract"),
            "authors": entry.get("authors") or entry.get("first_authors"),
            "year": entry.get("year") or entry.get("publication_year") or entry.get("date"),
            "url": (entry.get("urls") or [None])[0],
            "doi": entry.get("doi"),
        }
        _record_to_paper(record, result.source, f"record at line {line}", result)


def _ris_starts(text: str, source: str) -> list[int]:
    """The line of each RIS record, found as rispy finds them. A record without its 'ER  -' line, which rispy
    would drop or merge with the next without a word, and text before a record's first field are errors."""
    starts: list[int] = []
    open_at: int | None = None
    fields = False
    for n, line in enumerate(text.split("\n"), 1):
        is_tag = line[2:5] == "  -" and line[:2].isupper() and line[:1].isalpha()  # as rispy tells a field's line
        if open_at is None:
            if line.startswith("TY"):
                starts.append(open_at := n)
                fields = False
        elif line.startswith("ER  -"):
            open_at = None
        elif line.startswith("TY  -"):
            break
        elif is_tag:
            fields = True
        elif line.strip() and not fields:
            raise CorpusError(f"{source}:{n}: expected a field ('TI  - A title') after the record's 'TY' line")
    if open_at is not None:
        raise CorpusError(f"{source}:{open_at}: RIS record has no 'ER  -' line to end it")
    if not starts:
        raise CorpusError(f"{source}: no RIS records (each starts with a 'TY  - ' line and ends with 'ER  - ')")
    return starts


READERS: dict[str, Callable[[TextIO, ReadResult], None]] = {
    ".txt": _read_text_page,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".bib": _read_bibtex,
    ".ris": _read_ris,
}
FORMATS = frozenset([*READERS, ".pdf"])  # the file suffixes read_file and read_path read


def _read_pdf(data: bytes, result: ReadResult) -> None:
    """Title and abstract from the first pages of a paper's PDF. A PDF whose abstract cannot be found (no "Abstract"
    heading, or no heading after it) is skipped, and the skip names the file: its abstract is never guessed."""
    pages, meta_title, meta_authors = _pdf_contents(data, result.source)
    text = "\n".join(line for lines in pages for line, _ in lines)
    start = _ABSTRACT_HEADING.search(text)
    end = _NEXT_HEADING.search(text, start.end()) if start else None
    if not start or not end:
        result.skipped[f"PDF with no abstract found ({result.source})"] += 1
        return
    # NOTE: a word broken at a line end ("hallucina-", "tion") is joined: such a hyphen is rarely part of the word
    abstract = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", text[start.end() : end.start()])
    # NOTE: a metadata title is used only when page 1 shows it: it is often a template's, a file's or a tool's
    shown, meta = normalise_title(" ".join(line for line, _ in pages[0])), normalise_title(meta_title)
    title = meta_title if meta and f" {meta} " in f" {shown} " else _pdf_title(pages[0])
    _record_to_paper({"title": title, "abstract": abstract, "authors": meta_authors}, result.source, "page 1", result)


def _pdf_contents(data: bytes, source: str) -> tuple[list[list[tuple[str, float]]], str, str | None]:
    """The lines of a PDF's first pages, and the title and authors of its metadata; one error when it cannot be
    read."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # NOTE: "" opens a PDF that only restricts printing
            raise CorpusError(f"{source}: PDF needs a password; save a copy without one")
        meta = reader.metadata
        pages = [_pdf_lines(page) for page in reader.pages[:_PDF_PAGES]]
        return pages, _clean(meta.title if meta else None), meta.author if meta else None
    except CorpusError:
        raise
    except Exception as exc:  # NOTE: pypdf raises many kinds (PdfReadError, ValueError, KeyError...) on a damaged file
        why = _clean(str(exc))[:120] or type(exc).__name__
        raise CorpusError(f"{source}: damaged or unsupported PDF ({why}); re-download or re-save it") from None


def _pdf_lines(page: Any) -> list[tuple[str, float]]:
    """A page's lines of text, each with the height of its largest type (0 for turned text, like arXiv's stamp)."""
    lines = [("", 0.0)]

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        height = round(float(size) * abs(tm[2] * cm[1] + tm[3] * cm[3]), 1)
        for i, part in enumerate(text.translate(_LIGATURES).split("\n")):
            if i:
                lines.append(("", 0.0))
            line, top = lines[-1]
            lines[-1] = (line + part, max(top, height) if part.strip() else top)

    page.extract_text(visitor_text=visit)
    return lines


def _pdf_title(lines: list[tuple[str, float]]) -> str:
    """The first lines in the largest type above the abstract, or the first line when no type stands out."""
    above = itertools.takewhile(lambda line: not _ABSTRACT_HEADING.match(line[0]), lines)
    head = [(line, size) for line, size in above if line.strip() and size]
    if not head:
        return ""
    top = max(size for _, size in head)
    if top <= statistics.median(size for line, size in lines if line.strip()):
        return head[0][0]
    run = itertools.dropwhile(lambda line: line[1] < top, head)
    return " ".join(line for line, _ in itertools.takewhile(lambda line: line[1] == top, run))


def read_stream(stream: TextIO, source: str, suffix: str) -> ReadResult:
    """Parse corpus text from a stream in the format named by `suffix` (e.g. ".json"); JSON arrays, CSV and BibTeX are
    read a record at a time."""
    reader = READERS.get(suffix.lower())
    if reader is None:
        raise _unknown_format(source, suffix)
    result = ReadResult(source=source)
    reader(stream, result)
    _drop_duplicates(result)
    if not result.papers:
        reasons = ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "nothing recognisable"
        raise CorpusError(f"{source}: no papers with a title and an abstract ({reasons})")
    return result


def read_text(text: str, source: str, suffix: str) -> ReadResult:
    """Parse corpus text in the format named by `suffix` (e.g. ".jsonl")."""
    return read_stream(io.StringIO(text, newline=""), source, suffix)


def read_bytes(data: bytes, source: str, suffix: str) -> ReadResult:
    """Parse a corpus file's bytes in the format named by `suffix` (e.g. ".pdf"); `source` names it in messages.

    A PDF gives its one paper, or none and the reason it was skipped; a file of any other format that gives no paper
    is an error."""
    if suffix.lower() == ".pdf":
        result = ReadResult(source=source)
        _read_pdf(data, result)
        return result
    with _decoded(io.BytesIO(data), source) as stream:
        return read_stream(stream, source, suffix)


def read_file(path: str | Path) -> ReadResult:
    """Read one corpus file; raises CorpusError naming the file and line when it cannot. Memory stays near one record
    for JSON arrays, CSV and BibTeX, whatever the file's size."""
    path = Path(path)
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder; give the corpus files inside it")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise _unknown_format(str(path), path.suffix)
    if suffix in (".txt", ".jsonl") and path.is_file():
        _check_lines(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise CorpusError(f"{path}: file is empty")
        if size > MAX_FILE_BYTES:
            raise CorpusError(f"{path}: {size / 1e6:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MiB limit; split it")
        with path.open("rb") as binary:
            if suffix == ".pdf":
                return read_bytes(binary.read(), str(path), suffix)
            with _decoded(binary, str(path)) as stream:
                return read_stream(stream, str(path), suffix)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_path(path: str | Path) -> list[ReadResult]:
    """Read a corpus file, or every corpus file in a folder and its subfolders, in order of their paths.

    In a folder, hidden files and folders (".git", ".DS_Store") and files of other formats (notes, figures) are
    ignored, as a folder of papers holds them too; a corpus file that cannot be read is an error naming it, as when
    it is named alone. A folder without a corpus file is an error naming the folder."""
    path = Path(path)
    if not path.is_dir():
        return [read_file(path)]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix.lower() in FORMATS
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.is_file()
    )
    if not files:
        raise CorpusError(f"{path}: no corpus files in this folder (looked for {', '.join(sorted(FORMATS))})")
    return [read_file(p) for p in files]


def _unknown_format(source: str, suffix: str) -> CorpusError:
    known = ", ".join(sorted(FORMATS))
    return CorpusError(f"{source}: unknown format {suffix or '(no extension)'!r}; use one of {known}")


def _check_lines(path: Path, chunk: int = 1 << 20) -> None:
    """Reject a line-based file with an absurdly long line before reading it whole: memory stays near one chunk."""
    line, length = 1, 0
    try:
        with path.open("rb") as f:
            while block := f.read(chunk):
                *whole, rest = block.split(b"\n")
                for piece in whole:
                    if length + len(piece) > MAX_LINE_BYTES:
                        raise _line_too_long(path, line)
                    line, length = line + 1, 0
                length += len(rest)
                if length > MAX_LINE_BYTES:
                    raise _line_too_long(path, line)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _line_too_long(source: str | Path, line: int) -> CorpusError:
    return CorpusError(
        f"{source}:{line}: a line over {MAX_LINE_BYTES // 2**20} MiB; a record is far shorter, so this is not a "
        "corpus file"
    )


def _drop_duplicates(result: ReadResult) -> None:
    seen_ids: set[str] = set()
    seen_titles: set[str] = set()
    kept = []
    for paper in result.papers:
        key = normalise_title(paper.title)
        if paper.paper_id in seen_ids or key in seen_titles:
            result.skipped["duplicate"] += 1
            continue
        seen_ids.add(paper.paper_id)
        seen_titles.add(key)
        kept.append(paper)
    result.papers = kept


def iter_papers(results: Iterable[ReadResult]) -> Iterator[Paper]:
    """All papers of several files, each paper id once (first file wins)."""
    seen: set[str] = set()
    for result in results:
        for paper in result.papers:
            if paper.paper_id not in seen:
                seen.add(paper.paper_id)
                yield paper
