"""The NR input row (a DCLM-baseline record) and the built-in dataset.

Only the fields the workflow reads are declared; the other DCLM fields of a row are
ignored when it is validated, and the row travels unchanged in the task message.
"""

from __future__ import annotations

import msgspec

from slurmgen.workflow import cached_jsonl

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


def builtin_path(conf: object = None) -> str:
    """Path of the built-in dataset, generated on first use (deterministic)."""
    return cached_jsonl(BUILTIN_NAME, lambda: make_corpus(BUILTIN_SIZE, BUILTIN_SEED))
