"""The one error type for an example the pipelines cannot use, with a reason to count by.

Preparing data (`pipeline.validate`) raises it naming the example; a running iterator
counts and logs it by `reason` and skips the example.
"""

from __future__ import annotations

REASONS = ("malformed", "missing_field", "corrupt_image", "token_budget", "patch_budget",
           "image_budget")


class ExampleError(ValueError):
  """An unusable example.

  Attributes:
    uid: the example's uid (or its source position when it has none yet).
    reason: one of `REASONS`.
    detail: the message without the uid and reason.
  """

  def __init__(self, uid: str, reason: str, message: str):
    if reason not in REASONS:
      raise ValueError(f"ExampleError: unknown reason {reason!r}; reasons: {REASONS}")
    super().__init__(f"example {uid!r}: {reason}: {message}")
    self.uid = uid
    self.reason = reason
    self.detail = message
