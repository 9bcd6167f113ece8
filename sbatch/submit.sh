#!/bin/bash
# Submit slurmgen run {{run_dir}} by hand: the same jobs `python -m slurmgen
# cluster=slurm` submits through submitit. The registry goes first; the other jobs wait
# for its address file. Results: {{run_dir}}/results/; resubmitting resumes.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p {{run_dir}}/slurm

sbatch registry.sbatch
{{submit_lines}}
