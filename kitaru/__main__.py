from kitaru_core.cli.app import main

main()
