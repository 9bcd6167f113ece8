"""``python -m slurmgen workflow=<name> [key=value ...]`` — see README.md."""

from slurmgen.cli import main

if __name__ == "__main__":
    main()
