"""Every config builds for every argument, and bad arguments fail by name."""

import importlib

import pytest

NAMES = ["safeladder", "judges", "sft", "m3rl", "efficient", "search"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("arg", ["runlocal", "model=7b", "model=72b"])
def test_configs_build_and_name_their_stages(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  assert config.stages
  for stage in config.stages:
    assert stage in config, f"{name}:{arg} runs {stage} without its section"


def test_production_and_local_differ_where_they_must():
  local = importlib.import_module("configs.safeladder").get_config("runlocal")
  big = importlib.import_module("configs.safeladder").get_config("model=72b")
  assert local.model.preset == "tiny" and big.model.preset == "qwen2_5_vl_72b"
  assert local.world is not None and big.world is None
  assert big.m3rl_b.learning_rate == 1e-6 and big.m3rl_b.num_samples == 8
  # The 72B plan fits a v5p-64 only with the KL reference stored in bf16.
  for stage in ("m3rl_a", "m3rl_b", "efficient", "search"):
    assert big[stage].reference_dtype == "bfloat16"
  assert big.m3rl_b.loss_config.kl_coef > 0


@pytest.mark.parametrize("arg, message", [("model=13b", "unknown model"),
                                          ("runlocal,model=7b", "runlocal uses the tiny"),
                                          ("fast", "unknown config argument 'fast'")])
def test_bad_arguments_fail_clearly(arg, message):
  with pytest.raises(ValueError, match=message):
    importlib.import_module("configs.safeladder").get_config(arg)


def test_runlocal_copy_span_is_the_distance_from_question_to_query(tmp_path):
  """Each token of the query `<word> of <name>` repeats the question's, `sft.copy_span`
  tokens later, in every search trace of the runlocal world under its own tokenizer: the
  distance the copy rows teach. A change to the templates or the tokenizer that moves it
  fails here."""
  from data.pipeline import Pipeline, PipelineConfig
  from data.world import knowledge_base
  from safework import ladder

  config = importlib.import_module("configs.safeladder").get_config("runlocal")
  run = ladder.Ladder(config, tmp_path)
  traces = [e for e in run.world.split("sft") if e.response and "search:" in e.response]
  assert {e.meta["relation"] for e in traces} == set(knowledge_base.RELATIONS)
  for example in traces:
    row = next(iter(Pipeline([example], run.tokenizer, PipelineConfig(
        mode="sft", batch_size=1, max_tokens=512, max_patches=64, max_images=1, pack=False,
        seed=0))))
    tokens = [int(t) for t in row["tokens"][0]]
    relation = knowledge_base.RELATIONS[example.meta["relation"]]
    query = run.tokenizer.encode(" " + relation.query.format(e=example.meta["entity"]))
    starts = [i for i in range(len(tokens)) if tokens[i:i + len(query)] == query]
    # The question, the query, and the hit when its sentence repeats the words.
    assert len(starts) >= 2 and starts[1] - starts[0] == config.sft.copy_span, example.uid
