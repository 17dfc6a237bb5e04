from adamrepro.benchmark.run import main

main()
