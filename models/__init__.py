"""Models: pure Flax Linen modules of the Qwen2.5-VL architecture (vision encoder,
Qwen2 decoder with M-RoPE, the VLM glue, the KV cache), model presets, and HF
safetensors import and export.

Layer 1: may import `safework.infra` only.
"""
