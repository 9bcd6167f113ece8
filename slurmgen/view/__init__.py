"""``slurmgen view RUN_DIR``: the records of a run in the browser, over an index kept in the run dir."""
