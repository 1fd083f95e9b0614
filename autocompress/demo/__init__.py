"""The embedded default: its corpus and teacher (data, in corpus/ and teacher/) and the code that builds them; small
models of every family for tests and benchmarks."""
