#!/usr/bin/env bash
# Stand-in for Bazel's downloaded coverage tools: coverage needs them, tests do not.
echo "bazel coverage is not supported offline: @remote_coverage_tools is a stand-in" \
  "(third_party/bazel/remote_coverage_tools); use pytest-cov instead." >&2
exit 1
