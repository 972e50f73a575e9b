"""What the tests and the benchmarks share: the services started as child processes
on free loopback ports, and waiting for them (``harness.processes``)."""
