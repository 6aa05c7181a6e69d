"""Infrastructure shared by every layer: the device mesh, logical-axis sharding
rules, orbax checkpointing, metric writing, PRNG and config helpers.

Layer 0: imports nothing of ours.
"""
