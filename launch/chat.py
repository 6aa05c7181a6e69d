"""Chat in the terminal with a policy of a run, one reasoning step at a time, editing the
chain of thought as it goes (METHOD.md §5.2; safework/chat.py).

  python -m launch.chat --config=configs/safeladder.py:runlocal --workdir=/tmp/safeladder \\
      --stage=search --step_delimiter=.

After each step: enter shows the next one, `e` replaces the response so far with the line
you type (decoding resumes after it), `r` runs to the end of the turn. An empty question
ends the chat. With `--port=8000` the same session is a web page at
http://127.0.0.1:8000/ instead (safework/chat_web.py): the turn in an editable box, a step
per click, "resume from my text" after an edit.
"""

from absl import app, flags
from ml_collections import config_flags

from rl.sampling_methods import Greedy, Temperature
from safework import chat, chat_web, convert

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
_STAGE = flags.DEFINE_string("stage", "search", "A finished policy stage, or 'initial'.")
_DELIMITER = flags.DEFINE_string("step_delimiter", "\n\n", "What ends a shown step.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "0: greedy; else sampling.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 0, "Turn budget (0: config.eval's).")
_PORT = flags.DEFINE_integer("port", 0, "Serve the web UI on this port (0: the terminal).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "The web UI's address.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  ladder = convert.open_run(_CONFIG.value, _WORKDIR.value)
  params = convert.policy_params(ladder, _STAGE.value)
  session = chat.ChatSession(params, ladder.model_config, ladder.tokenizer, chat.ChatConfig(
      step_delimiter=_DELIMITER.value,
      max_new_tokens=_MAX_NEW.value or ladder.config.eval.max_new_tokens,
      max_prompt_tokens=ladder.config.eval.max_prompt_tokens,
      method=Temperature(_TEMPERATURE.value) if _TEMPERATURE.value > 0 else Greedy()))
  if _PORT.value:
    server = chat_web.ChatServer((_HOST.value, _PORT.value), session,
                                 title=f"SafeLadder chat: {_STAGE.value}")
    print(f"chat on http://{_HOST.value}:{server.server_address[1]}/", flush=True)
    server.serve_forever()
  else:
    chat.interact(session, input, lambda text: print(text, flush=True))


if __name__ == "__main__":
  app.run(main)
