"""Chat with human CoT editing (safework/chat.py) on the real sampler: the tiny model with
a planted bigram that greedily writes "good step." over and over."""

import json
import threading
import urllib.error
import urllib.request

import jax
import numpy as np
import pytest

from models import inputs as model_inputs
from rl import rollout, sampler
from safework import chat, chat_web
from tests.rl.test_search_rollout import CONFIG, TOK, W, WIDTH, planted_params

NEW = 12
GOOD = {W["q_step"]: {W["good"]: 1.0}, W["good"]: {W["step."]: 1.0},
        W["step."]: {W["good"]: 1.0}, W["bad"]: {W["step."]: 1.0}}
EDIT = "bad step. bad step."


def _prompt(example):
  ids = TOK.encode(example.question)
  tokens = np.zeros((1, WIDTH), np.int32)
  segments = np.zeros_like(tokens)
  tokens[0, :len(ids)], segments[0, :len(ids)] = ids, 1
  inputs, next_position = model_inputs.make_inputs(tokens, segments, CONFIG)
  return rollout.PromptBatch(inputs, next_position, [None])


@pytest.fixture(scope="module")
def params():
  return planted_params(GOOD, margin=16.0)


def _session(params):
  return chat.ChatSession(params, CONFIG, TOK,
                          chat.ChatConfig(step_delimiter=".", max_new_tokens=NEW),
                          prompt_fn=_prompt)


def _plain(params, forced_prefix=None):
  prompt = _prompt(type("E", (), {"question": "q_step"}))
  out = jax.device_get(sampler.sample(
      params, prompt.inputs, prompt.next_position, config=CONFIG, max_new_tokens=NEW,
      stop_tokens=(TOK.special.im_end,), rng=jax.random.key(0), forced_prefix=forced_prefix))
  return out.tokens_bt[0, :out.lengths_b[0]].tolist(), out.mask_bt[0, :out.lengths_b[0]]


def test_the_steps_stream_the_plain_greedy_answer_one_step_at_a_time(params):
  session = _session(params)
  session.start("q_step")
  steps = []
  while not session.finished:
    steps.append(session.step())
  assert steps == ["good step."] + [" good step."] * 5
  assert session.step() == "" and session.run() == ""
  assert TOK.encode(session.response) == _plain(params)[0]


def test_an_edit_becomes_the_forced_prefix_and_decoding_resumes_after_it(params):
  session = _session(params)
  session.start("q_step")
  assert session.step() + session.step() == "good step. good step."
  session.edit(EDIT)
  assert session.response == EDIT
  rest = session.run()
  tokens, mask = _plain(params, forced_prefix=[TOK.encode(EDIT)])
  assert rest == " good step." * 4 and TOK.encode(session.response) == tokens
  prefix = len(TOK.encode(EDIT))
  assert not mask[:prefix].any() and mask[prefix:].all()  # The edit is not the policy's.
  with pytest.raises(ValueError, match="budget is 12"):
    session.edit("bad step. " * 6)


def test_the_chat_loop_shows_steps_and_takes_an_edit(params):
  answers = iter(["q_step", "", "e", EDIT, "r", ""])
  shown = []
  chat.interact(_session(params), lambda prompt: next(answers), shown.append)
  assert shown[:3] == ["good step.", " good step.", "response so far: good step. good step."]
  # After the edit the next step is shown, then "r" runs to the end of the turn.
  assert shown[3:5] == [" good step.", " good step." * 3]
  assert shown[-1].strip() == "--- " + EDIT + " good step." * 4


def test_the_web_ui_drives_the_same_session(params):
  server = chat_web.ChatServer(("127.0.0.1", 0), _session(params))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  url = f"http://127.0.0.1:{server.server_address[1]}"

  def post(name, body=None):
    request = urllib.request.Request(f"{url}/{name}", data=json.dumps(body or {}).encode(),
                                     method="POST")
    try:
      with urllib.request.urlopen(request) as reply:
        return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
      return e.code, json.loads(e.read())

  try:
    with urllib.request.urlopen(url + "/") as page:
      assert "resume from my text" in page.read().decode()
    assert post("step")[0] == 400  # No turn yet: a clear error, not a crash.
    assert post("start", {"question": "q_step"}) == (
        200, {"response": "", "new": "", "finished": False})
    assert post("step")[1]["new"] == "good step."
    assert post("edit", {"text": EDIT})[1]["response"] == EDIT
    code, reply = post("run")
    assert code == 200 and reply["finished"]
    assert reply["response"] == EDIT + " good step." * 4
    code, reply = post("edit", {"text": "bad step. " * 6})
    assert code == 400 and "budget" in reply["error"]
    assert post("nothing")[0] == 404
  finally:
    server.shutdown()
    server.server_close()
