"""HF `config.json` <-> `ModelConfig` for Qwen2.5-VL.

Reads both layouts found in the wild: the nested one transformers 5 writes
(`text_config`, `vision_config`, `rope_parameters`) and the flat one of the released
Qwen checkpoints (text fields at the top level, `rope_scaling`, `in_chans`). Writes
the nested one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.config import ModelConfig, TextConfig, VisionConfig

_QWEN_BOS, _QWEN_EOS = 151643, 151645


def _rope(section: Mapping[str, Any]) -> Mapping[str, Any]:
  return section.get("rope_parameters") or section.get("rope_scaling") or {}


def config_from_hf(hf: Mapping[str, Any], **overrides) -> ModelConfig:
  """A ModelConfig from a parsed HF config.json; `overrides` set ModelConfig-level
  fields (dtype, param_dtype, scan_layers, remat)."""
  if hf.get("model_type") not in ("qwen2_5_vl", None):
    raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, expected "
                     "'qwen2_5_vl'")
  text = dict(hf.get("text_config") or hf)
  vision = dict(hf.get("vision_config") or {})
  if text.get("hidden_act", "silu") != "silu" or vision.get("hidden_act", "silu") != "silu":
    raise ValueError("only hidden_act='silu' is supported (as in every Qwen2.5-VL release)")
  if text.get("use_sliding_window"):
    raise ValueError("use_sliding_window=True is not supported (no Qwen2.5-VL release uses it)")
  rope = {**_rope(hf), **_rope(text)}
  theta = rope.get("rope_theta", text.get("rope_theta", hf.get("rope_theta", 1_000_000.0)))
  tie = bool(hf.get("tie_word_embeddings", False) or text.get("tie_word_embeddings", False))
  try:
    text_config = TextConfig(
        vocab_size=text["vocab_size"], hidden_size=text["hidden_size"],
        num_hidden_layers=text["num_hidden_layers"],
        num_attention_heads=text["num_attention_heads"],
        num_key_value_heads=text.get("num_key_value_heads") or text["num_attention_heads"],
        intermediate_size=text["intermediate_size"], rope_theta=float(theta),
        mrope_section=tuple(rope.get("mrope_section", (16, 24, 24))),
        rms_norm_eps=float(text.get("rms_norm_eps", 1e-6)), tie_word_embeddings=tie,
        initializer_range=float(text.get("initializer_range",
                                         hf.get("initializer_range", 0.02))))
    vision_rope = _rope(vision)
    vision_config = VisionConfig(
        depth=vision["depth"], hidden_size=vision["hidden_size"], num_heads=vision["num_heads"],
        intermediate_size=vision["intermediate_size"],
        out_hidden_size=vision.get("out_hidden_size", text["hidden_size"]),
        patch_size=vision.get("patch_size", 14),
        temporal_patch_size=vision.get("temporal_patch_size", 2),
        spatial_merge_size=vision.get("spatial_merge_size", 2),
        in_channels=vision.get("in_channels", vision.get("in_chans", 3)),
        window_size=vision.get("window_size", 112),
        fullatt_block_indexes=tuple(vision.get("fullatt_block_indexes", (7, 15, 23, 31))),
        rope_theta=float(vision_rope.get("rope_theta", 10000.0)),
        initializer_range=float(vision.get("initializer_range", 0.02)))
  except KeyError as e:
    raise ValueError(f"config.json lacks the field {e.args[0]!r}") from e
  return ModelConfig(
      text=text_config, vision=vision_config,
      image_token_id=hf.get("image_token_id", 151655),
      video_token_id=hf.get("video_token_id", 151656),
      vision_start_token_id=hf.get("vision_start_token_id", 151652),
      vision_end_token_id=hf.get("vision_end_token_id", 151653), **overrides)


def config_to_hf(config: ModelConfig, torch_dtype: str = "bfloat16") -> dict[str, Any]:
  """The nested config.json that transformers 5 writes and reads for Qwen2.5-VL."""
  t, v = config.text, config.vision
  return {
      "architectures": ["Qwen2_5_VLForConditionalGeneration"],
      "model_type": "qwen2_5_vl",
      "dtype": torch_dtype,
      "image_token_id": config.image_token_id,
      "video_token_id": config.video_token_id,
      "vision_start_token_id": config.vision_start_token_id,
      "vision_end_token_id": config.vision_end_token_id,
      "tie_word_embeddings": t.tie_word_embeddings,
      "text_config": {
          "model_type": "qwen2_5_vl_text",
          "vocab_size": t.vocab_size, "hidden_size": t.hidden_size,
          "num_hidden_layers": t.num_hidden_layers,
          "num_attention_heads": t.num_attention_heads,
          "num_key_value_heads": t.num_key_value_heads,
          "intermediate_size": t.intermediate_size, "hidden_act": "silu",
          "rms_norm_eps": t.rms_norm_eps, "tie_word_embeddings": t.tie_word_embeddings,
          "use_sliding_window": False, "initializer_range": t.initializer_range,
          "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta,
                              "mrope_section": list(t.mrope_section)},
          # Qwen's ids where the vocabulary is Qwen's; none for our own small vocabularies.
          "bos_token_id": _QWEN_BOS if t.vocab_size > _QWEN_EOS else None,
          "eos_token_id": _QWEN_EOS if t.vocab_size > _QWEN_EOS else None,
          "pad_token_id": None,
      },
      "vision_config": {
          "model_type": "qwen2_5_vl_vision",
          "depth": v.depth, "hidden_size": v.hidden_size, "num_heads": v.num_heads,
          "intermediate_size": v.intermediate_size, "out_hidden_size": v.out_hidden_size,
          "patch_size": v.patch_size, "temporal_patch_size": v.temporal_patch_size,
          "spatial_merge_size": v.spatial_merge_size, "in_channels": v.in_channels,
          "window_size": v.window_size, "fullatt_block_indexes": list(v.fullatt_block_indexes),
          "hidden_act": "silu", "initializer_range": v.initializer_range,
          "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
      },
  }


def same_architecture(a: ModelConfig, b: ModelConfig) -> bool:
  """True when two configs describe the same weights (compute settings aside)."""
  return (dataclasses.replace(a, dtype="float32", param_dtype="float32", scan_layers=True,
                              remat="none")
          == dataclasses.replace(b, dtype="float32", param_dtype="float32", scan_layers=True,
                                 remat="none"))
