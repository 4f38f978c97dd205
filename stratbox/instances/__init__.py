"""Strategy instances: immutable identity, validated config, capital allocation, mode."""
