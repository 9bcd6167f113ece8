#!/bin/bash
# Submit slurmgen run /shared/runs/nr-demo by hand: the same jobs `python -m slurmgen
# cluster=slurm` submits through submitit. The registry goes first; the other jobs wait
# for its address file. Results: /shared/runs/nr-demo/results/; resubmitting resumes.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p /shared/runs/nr-demo/slurm

sbatch registry.sbatch
sbatch llm.sbatch
sbatch llm-teacher.sbatch
sbatch peers.sbatch
