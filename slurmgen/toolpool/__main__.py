from slurmgen.toolpool.server import main

main()
