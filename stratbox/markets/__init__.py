"""Markets, stored bars and price feeds (simulated random walk, replay of stored bars)."""
