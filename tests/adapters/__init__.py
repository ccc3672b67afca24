"""Chat adapter tests: the shared contract, platform fakes and real-server fixtures."""
