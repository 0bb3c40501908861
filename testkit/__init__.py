"""What the tests and the benchmarks both need: real servers and processes on loopback, and
waiting on a condition with a deadline. Neither imports the other; both import this."""
