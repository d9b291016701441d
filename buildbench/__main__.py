from buildbench.cli import main

main()
