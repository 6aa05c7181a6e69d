"""Runs one test file under pytest inside a Bazel test: `pytest_main.py FILE [PYTEST ARGS]`.

The working directory is the runfiles root, which holds pyproject.toml and tests/conftest.py,
so pytest applies the project's options and the 8-CPU-device set-up exactly as `make test`
does. Extra arguments (`bazel test --test_arg=...`) go to pytest; the JUnit report goes
where Bazel asks ($XML_OUTPUT_FILE) so `bazel-testlogs` shows each test case.
"""

import os
import sys

import pytest

# pytest's exit code when every test of the file is deselected (e.g. all `slow`).
_NO_TESTS_COLLECTED = 5


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    print(f"usage: {argv[0]} TEST_FILE [PYTEST_ARGS...]", file=sys.stderr)
    return 2
  args = [argv[1], "-q", *argv[2:]]
  if "XML_OUTPUT_FILE" in os.environ:
    args.append(f"--junitxml={os.environ['XML_OUTPUT_FILE']}")
  code = pytest.main(args)
  if code == _NO_TESTS_COLLECTED:
    print(f"{argv[1]}: every test is deselected by the markers in use", file=sys.stderr)
    return 0
  return int(code)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
