"""Chat with a policy step by step, with human CoT editing (METHOD.md §5.2).

  session = ChatSession(params, model_config, tokenizer, ChatConfig(step_delimiter="."))
  session.start("How do I clean a kitchen knife?")
  step = session.step()             # the next reasoning step's text ("" once finished)
  session.edit(session.response.replace("sharp", "blunt"))   # rewrite what was said so far
  rest = session.run()              # decode to the end of the turn
  session.response                  # the whole assistant turn (special tokens kept)

The reasoning streams one step at a time: the sampler decodes until a token whose text
holds the step delimiter, or `</think>`, and pauses (`sampler.decode`'s segment ends).
An edit replaces the response so far: the prompt is prefilled again and the edited text
is appended as a forced prefix of the assistant turn (`sampler.append`: part of the
response, not the policy's draws), and decoding resumes after it. `interact` is the loop
of `launch/chat.py`, with input and output passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from data.example import Example
from data.pipeline import Pipeline
from data.pipeline_config import PipelineConfig
from data.tokenizer import Tokenizer
from models.config import ModelConfig
from rl import sampler
from rl.rollout import PromptBatch
from rl.sampling_methods import Greedy, Method
from safework import step_search


@dataclasses.dataclass(frozen=True)
class ChatConfig:
  """Settings of a chat session."""

  step_delimiter: str = "\n\n"  # What ends a shown reasoning step (METHOD.md §5.2).
  max_new_tokens: int = 512  # Budget of one assistant turn, tokens (edits included).
  max_prompt_tokens: int = 1024  # Budget of the prompt, tokens.
  max_patches: int = 1024  # Image patches of the prompt.
  method: Method = Greedy()  # How tokens are drawn.
  system: str | None = None  # The system prompt; None: the chat template's default.
  seed: int = 0  # Root of the draws (a sampling `method` differs between seeds).


class ChatSession:
  """One conversation turn at a time (see the module docstring)."""

  def __init__(self, params, model_config: ModelConfig, tokenizer: Tokenizer,
               config: ChatConfig = ChatConfig(),
               prompt_fn: Callable[[Example], PromptBatch] | None = None):
    self.params, self.model_config, self.tokenizer = params, model_config, tokenizer
    self.config = config
    self.prompt_fn = prompt_fn or self._pipeline_prompt
    self.step_ends = step_search.step_end_tokens(tokenizer, config.step_delimiter)
    self.stop = (tokenizer.special.im_end,)
    self.edits = 0
    self._prompts = self._state = None

  def _pipeline_prompt(self, example: Example) -> PromptBatch:
    cfg = PipelineConfig(mode="prompt", batch_size=1, max_tokens=self.config.max_prompt_tokens,
                         max_patches=self.config.max_patches,
                         max_images=max(1, len(example.images)), shuffle=False, num_epochs=1,
                         drop_remainder=False, pack=False)
    batches = list(Pipeline([example], self.tokenizer, cfg))
    if not batches or batches[0].rows[0] is None:
      raise ValueError(f"the prompt does not fit in {self.config.max_prompt_tokens} tokens")
    return PromptBatch.from_data(batches[0], self.model_config)

  def start(self, question: str, images=(), label: str = "chat") -> None:
    """Begins a turn: the user's question (and images); nothing is decoded yet."""
    example = Example(f"chat-{self.edits}", label, question, tuple(images), None, None,
                      self.config.system, {})
    self._prompts = self.prompt_fn(example)
    self._prefill()

  def _prefill(self) -> None:
    self._state = sampler.prefill(
        self.params, self._prompts.inputs, self._prompts.next_position,
        config=self.model_config, max_new_tokens=self.config.max_new_tokens,
        rng=jax.random.key(self.config.seed))

  def _ids(self) -> list[int]:
    tokens, length = jax.device_get((self._state.tokens_bt[0], self._state.length_b[0]))
    return np.asarray(tokens[:length]).tolist()

  @property
  def response(self) -> str:
    """The assistant turn so far (special tokens kept)."""
    return self.tokenizer.decode(self._ids()) if self._state is not None else ""

  @property
  def finished(self) -> bool:
    """The turn has ended (a stop token or the budget)."""
    return bool(jax.device_get(self._state.done_b[0]))

  def _decode(self, pause: bool) -> str:
    if self._state is None:
      raise RuntimeError("ChatSession: call start() first")
    before = self.response
    if not self.finished:
      self._state = sampler.decode(self.params, self._state, method=self.config.method,
                                   stop_tokens=self.stop,
                                   segment_end_tokens=self.step_ends if pause else ())
    return self.response[len(before):]

  def step(self) -> str:
    """Decodes the next reasoning step and returns its text ("" when finished)."""
    return self._decode(pause=True)

  def run(self) -> str:
    """Decodes to the end of the turn and returns the new text."""
    return self._decode(pause=False)

  def edit(self, text: str) -> None:
    """Replaces the response so far with `text`; decoding resumes after it."""
    ids = self.tokenizer.encode(text)
    if len(ids) >= self.config.max_new_tokens:
      raise ValueError(f"the edited response has {len(ids)} tokens; the turn's budget is "
                       f"{self.config.max_new_tokens}")
    self.edits += 1
    self._prefill()
    if ids:
      self._state = sampler.append(self.params, self._state, [ids], [0])


def interact(session: ChatSession, read: Callable[[str], str],
             write: Callable[[str], None]) -> None:
  """The chat loop: a question, then each step shown; after a step, an empty line keeps
  it, `e` edits the response so far (the next line replaces it), `r` runs to the end of
  the turn. An empty question ends the chat."""
  while True:
    question = read("you> ").strip()
    if not question:
      return
    session.start(question)
    while not session.finished:
      shown = session.step()
      write(shown)
      if session.finished:
        break
      choice = read("[enter] next step, [e] edit, [r] run to the end> ").strip().lower()
      if choice == "e":
        write(f"response so far: {session.response}")
        session.edit(read("new response so far> "))
      elif choice == "r":
        write(session.run())
    write(f"\n--- {session.response}\n")
