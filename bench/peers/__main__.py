from bench.peers.broadcast import main

main()
