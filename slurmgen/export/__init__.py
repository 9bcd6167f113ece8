"""``slurmgen export``: a training set out of a run directory (see ``slurmgen.export.cli``)."""
