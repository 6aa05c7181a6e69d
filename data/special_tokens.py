"""The special tokens of the chat format, as strings.

Both tokenizer backends map each of these to one id. The names follow Qwen2.5-VL's
real vocabulary where it has the token (`<|im_start|>`, `<|image_pad|>`, `<tool_call>`);
the think and confidence markers are ours (Qwen2.5 writes them as plain text).
"""

PAD = "<|endoftext|>"  # Also the document end; Qwen uses it as the pad token.
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # Ends every turn; the sampler's default stop token.
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"  # Repeated once per merged image token.
VIDEO_PAD = "<|video_pad|>"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"  # Ends a decoding segment in the search rollout.
TOOL_RESPONSE_OPEN = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"
CONFIDENCE_OPEN = "<confidence>"
CONFIDENCE_CLOSE = "</confidence>"

ALL = (
    PAD, IM_START, IM_END, THINK_OPEN, THINK_CLOSE, VISION_START, VISION_END, IMAGE_PAD,
    VIDEO_PAD, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE,
    CONFIDENCE_OPEN, CONFIDENCE_CLOSE,
)
