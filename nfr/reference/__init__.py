"""NumPy reference implementation: the readable specification of every rule (no torch)."""
