"""Message entrypoints: one module per protocol clients use, each exposing SPEC."""
