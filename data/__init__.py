"""Data: tokenizers and the chat template, Qwen2.5-VL image preprocessing, the
SafeLadder world (synthetic tasks with gold labels), TFDS builders, seqio tasks,
grain pipelines, readers for the real benchmarks' formats, and the search corpus.

Layer 1: may import `safework.infra` only.
"""
