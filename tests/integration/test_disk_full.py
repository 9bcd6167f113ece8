"""The run directory's disk fills up mid-run (a small tmpfs): the run stops with a message
naming the path and the free space, no shard is torn, and once space is freed the same
command finishes every task exactly once."""

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, count_records, read_records, run_slurmgen, slurmgen_processes


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path) -> None:
    """Write zeros until the filesystem refuses one more byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_run_disk_stops_cleanly_and_the_rerun_after_freeing_space_finishes_once(small_disk, tmp_path):
    run_dir = small_disk / "run"
    args = ["workflow=nr", "dataset.limit=400", f"run.dir={run_dir}", "run.max_in_flight=16", "run.progress=false",
            f"spill.dir={tmp_path / 'spill'}"]
    driver = subprocess.Popen([sys.executable, "-m", "slurmgen", *args, "llm.time_scale=5"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and count_records(run_dir) < 20:
            time.sleep(0.2)
        fill(small_disk / "filler")
        _, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0, err
    assert str(run_dir) in err and "bytes free" in err and "run the same command again" in err, err
    assert slurmgen_processes(run_dir) == []
    first = read_records(run_dir)  # strict: every shard ends with a full line
    assert 20 <= len(first) < 400
    (small_disk / "filler").unlink()
    run_slurmgen(*args, "llm.time_scale=200")
    ids = [r.task_id for r in read_records(run_dir)]
    assert len(ids) == 400 and len(set(ids)) == 400
    print("disk full: stopped at", len(first), "records; after freeing space:", len(ids))
