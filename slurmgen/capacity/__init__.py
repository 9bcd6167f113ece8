"""``slurmgen plan CALIBRATION_RUN --records N --hours H``: size a run from a measured one."""
