"""Model presets: `tiny` (the embedded default), `small_100m` (benchmarks) and the real
Qwen2.5-VL shapes, whose numbers are those of the released `config.json` files.

  config = get_preset("qwen2_5_vl_7b")
  config = get_preset("tiny", vocab_size=1000, image_token_id=7)  # overrides by field
"""

from __future__ import annotations

import dataclasses

from models.config import ModelConfig, TextConfig, VisionConfig

_REAL_VISION = dict(depth=32, hidden_size=1280, num_heads=16, intermediate_size=3420,
                    window_size=112, fullatt_block_indexes=(7, 15, 23, 31))


def _real(hidden, layers, heads, kv_heads, mlp, vocab, tied) -> ModelConfig:
  return ModelConfig(
      text=TextConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads,
                      intermediate_size=mlp, tie_word_embeddings=tied),
      vision=VisionConfig(out_hidden_size=hidden, **_REAL_VISION))


PRESETS = {
    # Trains on a CPU in minutes. Token ids are placeholders: the ladder sets them from
    # its tokenizer.
    "tiny": ModelConfig(
        text=TextConfig(vocab_size=1024, hidden_size=128, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, intermediate_size=384,
                        mrope_section=(4, 6, 6), tie_word_embeddings=True),
        vision=VisionConfig(depth=2, hidden_size=64, num_heads=4, intermediate_size=128,
                            out_hidden_size=128, fullatt_block_indexes=(1,)),
        image_token_id=1020, video_token_id=1021, vision_start_token_id=1022,
        vision_end_token_id=1023, dtype="float32"),
    # About 100M parameters, for CPU speed measurements.
    "small_100m": ModelConfig(
        text=TextConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, num_key_value_heads=4, intermediate_size=2048,
                        mrope_section=(8, 12, 12), tie_word_embeddings=True),
        vision=VisionConfig(depth=4, hidden_size=256, num_heads=4, intermediate_size=512,
                            out_hidden_size=768, fullatt_block_indexes=(3,)),
        image_token_id=31996, video_token_id=31997, vision_start_token_id=31998,
        vision_end_token_id=31999, dtype="float32"),
    "qwen2_5_vl_3b": _real(2048, 36, 16, 2, 11008, 151936, tied=True),
    "qwen2_5_vl_7b": _real(3584, 28, 28, 4, 18944, 152064, tied=False),
    "qwen2_5_vl_32b": _real(5120, 64, 40, 8, 27648, 152064, tied=False),
    "qwen2_5_vl_72b": _real(8192, 80, 64, 8, 29568, 152064, tied=False),
}


def get_preset(name: str, **overrides) -> ModelConfig:
  """A preset by name; keyword overrides may name ModelConfig, TextConfig or VisionConfig
  fields (text and vision fields are routed to their sub-config)."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
  config = PRESETS[name]
  fields = {f.name for f in dataclasses.fields(ModelConfig)}
  text_fields = {f.name for f in dataclasses.fields(TextConfig)}
  vision_fields = {f.name for f in dataclasses.fields(VisionConfig)}
  top, text, vision = {}, {}, {}
  for key, value in overrides.items():
    if key in fields:
      top[key] = value
    elif key in text_fields:
      text[key] = value
    elif key.startswith("vision_") and key[len("vision_"):] in vision_fields:
      vision[key[len("vision_"):]] = value
    else:
      raise ValueError(f"unknown model field {key!r} for preset {name!r}")
  new_text = dataclasses.replace(config.text, **text)
  new_vision = dataclasses.replace(config.vision, **vision)
  if "hidden_size" in text:
    new_vision = dataclasses.replace(new_vision, out_hidden_size=new_text.hidden_size)
  return dataclasses.replace(config, text=new_text, vision=new_vision, **top)
