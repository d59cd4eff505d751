"""Endpoint connectors: one module per backend type, each exposing SPEC."""
