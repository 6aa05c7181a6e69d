"""Experiment configs: ml_collections `get_config(arg)` files. Data only: they
compose dicts and import nothing of ours but other configs.
"""
