"""The NR input row (a DCLM-baseline record) and the built-in dataset.

Only the fields the workflow reads are declared; the other DCLM fields of a row are
ignored when it is validated, and the row travels unchanged in the task message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec

from .corpus import make_corpus

BUILTIN_NAME = "nr-builtin-v1.jsonl"  # bump the version when the generator changes
BUILTIN_SIZE = 1000
BUILTIN_SEED = 20250211


class DocMetadata(msgspec.Struct, kw_only=True):
    warc_record_id: str = msgspec.field(name="WARC-Record-ID")


class Document(msgspec.Struct, kw_only=True):
    text: str
    url: str = ""
    metadata: DocMetadata
    # fastText language id of the whole page: language -> probability
    language_id_whole_page_fasttext: dict[str, float] = {}

    def row_id(self) -> str:
        return self.metadata.warc_record_id

    def en(self) -> float:
        """The page's English score; a page without one scores 0 (as the reference)."""
        return self.language_id_whole_page_fasttext.get("en", 0.0)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slurmgen``, by default ``~/.cache/slurmgen``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "slurmgen"


def write_jsonl_atomically(path: Path, rows: list[dict[str, object]]) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for row in rows:
                out.write(encoder.encode(row) + b"\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def builtin_path() -> str:
    """Path of the built-in dataset, generated on first use (deterministic)."""
    path = cache_dir() / BUILTIN_NAME
    if not path.exists():
        write_jsonl_atomically(path, make_corpus(BUILTIN_SIZE, BUILTIN_SEED))
    return str(path)
