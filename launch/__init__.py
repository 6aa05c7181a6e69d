"""Thin entry points: absl main functions, shell launch scripts, compile checks.

Layer 5: may import everything.
"""
