"""slurmgen: SLURM-native peer-to-peer multi-agent synthetic data generation."""
