"""A dataset goes in as the user has it: JSONL (plain, .gz, .zst, with a BOM), Parquet, or a
Hugging Face save_to_disk directory; anything else is refused before anything starts."""

import gzip
import json

import pytest

from slurmgen.exitcodes import Exit
from tests.conftest import read_records, run_slurmgen

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def docs(n: int) -> list[dict]:
    return [{"text": f"Prove that {i} plus {i} is even, step by step. " * 20, "url": f"https://example.org/{i}",
             "metadata": {"WARC-Record-ID": f"<urn:uuid:doc-{i}>"}, "language_id_whole_page_fasttext": {"en": 0.93}}
            for i in range(n)]


def run(tmp_path, path, *extra):
    run_dir = tmp_path / "run"
    source = (f"dataset.path={path}",) if path else ()
    proc = run_slurmgen("workflow=nr", *source, f"run.dir={run_dir}", "llm.time_scale=500", *extra,
                        check=False, timeout=180)
    return proc, run_dir


def test_a_parquet_file_runs_every_row_and_names_a_bad_row_by_its_row(tmp_path):
    rows = docs(40)
    rows[6] = {**rows[6], "text": None}  # a null where the workflow needs text
    path = tmp_path / "docs.parquet"
    schema = pa.schema([("text", pa.string()), ("url", pa.string()),
                        ("metadata", pa.struct([("WARC-Record-ID", pa.string())])),
                        ("language_id_whole_page_fasttext", pa.map_(pa.string(), pa.float64()))])
    table = pa.Table.from_pylist([{**r, "language_id_whole_page_fasttext": list(r["language_id_whole_page_fasttext"]
                                                                                .items())} for r in rows], schema)
    pq.write_table(table, path, row_group_size=7)  # several row groups; a map column, as pandas writes dicts
    proc, run_dir = run(tmp_path, path)
    assert proc.returncode == Exit.OK, proc.stderr
    recs = {r.row_id: r for r in read_records(run_dir)}
    assert len(recs) == 40
    assert sum(r.status == "failed" for r in recs.values()) == 1, "the map column reads as a JSON object"
    bad = recs["<urn:uuid:doc-6>"]  # its own id: the field the id comes from is fine
    assert bad.status == "failed" and bad.reason.startswith("bad_input: row 7:") and "`$.text`" in bad.reason
    assert bad.line == 7
    good = recs["<urn:uuid:doc-3>"]
    assert good.line == 4 and json.loads(bytes(good.input))["url"] == "https://example.org/3"
    config = (run_dir / "config.yaml").read_text()
    assert "format: parquet" in config and "fingerprint: parquet:" in config


def test_a_hugging_face_save_to_disk_directory_runs(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "hf_docs"
    datasets.Dataset.from_list(docs(25)).save_to_disk(str(path))
    proc, run_dir = run(tmp_path, path, "run.peers=3")
    assert proc.returncode == Exit.OK, proc.stderr
    recs = read_records(run_dir)
    assert sorted(r.row_id for r in recs) == sorted(d["metadata"]["WARC-Record-ID"] for d in docs(25))


@pytest.mark.parametrize("suffix", ["jsonl.gz", "jsonl.zst"])
def test_compressed_jsonl_with_a_bom_runs(tmp_path, suffix):
    data = b"\xef\xbb\xbf" + "".join(json.dumps(d) + "\n" for d in docs(20)).encode()
    path = tmp_path / f"docs.{suffix}"
    if suffix.endswith("gz"):
        path.write_bytes(gzip.compress(data))
    else:
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    proc, run_dir = run(tmp_path, path)
    assert proc.returncode == Exit.OK, proc.stderr
    recs = read_records(run_dir)
    assert len(recs) == 20 and not [r for r in recs if r.status == "failed"]  # the BOM line too


@pytest.mark.parametrize("name, needle", [("docs.csv", "pandas.read_csv"), ("docs.xlsx", "unknown format"),
                                          ("plain_dir", "not a Hugging Face save_to_disk one")])
def test_other_formats_are_refused_naming_the_accepted_ones(tmp_path, name, needle):
    path = tmp_path / name
    path.mkdir() if name == "plain_dir" else path.write_text("id,text\n1,hello\n")
    proc, run_dir = run(tmp_path, path)
    assert proc.returncode == Exit.REFUSED
    assert needle in proc.stderr and "Parquet (.parquet)" in proc.stderr
    assert not run_dir.exists()


def test_a_resume_after_the_input_changed_is_refused(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs(10)))
    proc, run_dir = run(tmp_path, path)
    assert proc.returncode == Exit.OK, proc.stderr
    path.write_text("".join(json.dumps(d) + "\n" for d in docs(12)))
    proc, _ = run(tmp_path, path)
    assert proc.returncode == Exit.REFUSED and "the input's content changed" in proc.stderr
    proc, _ = run(tmp_path, path, "run.allow_config_change=true")
    assert proc.returncode == Exit.OK and len(read_records(run_dir)) == 12


def test_a_local_data_files_dataset_by_name_runs_and_a_missing_hub_name_says_how_to_prepare_it(tmp_path):
    pytest.importorskip("datasets")
    repo = tmp_path / "my_docs"  # laid out like a dataset repository: data/<split>-*.parquet
    (repo / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(docs(18)), repo / "data" / "train-00000-of-00001.parquet")
    proc, run_dir = run(tmp_path, "", f"dataset.hf={repo}", "dataset.split=train")
    assert proc.returncode == Exit.OK, proc.stderr
    assert len(read_records(run_dir)) == 18
    assert "format: hub" in (run_dir / "config.yaml").read_text()
    proc, _ = run(tmp_path / "x", "", "dataset.hf=nobody/not-cached-here")
    assert proc.returncode == Exit.REFUSED
    assert "is not on this machine" in proc.stderr and "save_to_disk" in proc.stderr
