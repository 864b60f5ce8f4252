from dermx.cli import main

main()
