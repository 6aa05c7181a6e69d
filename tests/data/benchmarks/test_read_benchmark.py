"""Tests of the registry in data/benchmarks/__init__.py: argument checks and limits."""

import json

import pytest

from data import benchmarks


def test_every_benchmark_of_the_brief_is_registered():
  assert sorted(benchmarks.READERS) == sorted(
      ["mm_safetybench", "mssbench", "xstest", "siuo", "flames", "m3oralbench", "mmmu",
       "mathvista"])


def test_bad_arguments_fail_at_once_with_names(tmp_path):
  with pytest.raises(ValueError, match="unknown benchmark 'mmlu'"):
    benchmarks.read_benchmark("mmlu", tmp_path)
  with pytest.raises(ValueError, match="mmmu: unknown split 'train'.*validation"):
    benchmarks.read_benchmark("mmmu", tmp_path, split="train")
  with pytest.raises(ValueError, match="limit"):
    benchmarks.read_benchmark("xstest", tmp_path, limit=-1)
  with pytest.raises(FileNotFoundError, match="siuo: directory .*nowhere does not exist"):
    benchmarks.read_benchmark("siuo", tmp_path / "nowhere")


def test_missing_data_file_names_what_was_looked_for(tmp_path):
  with pytest.raises(FileNotFoundError, match="xstest_prompts.csv"):
    list(benchmarks.read_benchmark("xstest", tmp_path))
  with pytest.raises(FileNotFoundError, match="Flames_1k_Chinese.jsonl"):
    list(benchmarks.read_benchmark("flames", tmp_path))


def test_limit_stops_early(tmp_path):
  lines = [json.dumps({"dimension": "Safety", "prompt": f"p{i}"}) for i in range(5)]
  # A malformed record after the limit is never read.
  (tmp_path / "Flames_1k_Chinese.jsonl").write_text("\n".join(lines) + "\n{broken\n")
  got = list(benchmarks.read_benchmark("flames", tmp_path, limit=3))
  assert [e.question for e in got] == ["p0", "p1", "p2"]
  assert list(benchmarks.read_benchmark("flames", tmp_path, limit=0)) == []
