#!/bin/bash

# Parameters
#SBATCH --account=synth
#SBATCH --cpus-per-task=2
#SBATCH --gpus-per-node=1
#SBATCH --job-name=slurmgen-het
#SBATCH --mem=64G
#SBATCH --nodes=1
#SBATCH --open-mode=append
#SBATCH --output=/shared/runs/nr-demo/slurm/het/%j_0_log.out
#SBATCH --partition=gpu
#SBATCH --signal=USR2@90
#SBATCH --time=240
#SBATCH --wckey=submitit

# setup
#SBATCH --constraint=a100
#SBATCH hetjob
#SBATCH --ntasks=1
#SBATCH --partition=cpu
#SBATCH --account=synth
#SBATCH --time=60
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
module load cuda/12.1
source /opt/venv/bin/activate

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /shared/runs/nr-demo/slurm/het/%j_%t_log.out --het-group=0,1 /opt/venv/bin/python -u -m submitit.core._submit /shared/runs/nr-demo/slurm/het
