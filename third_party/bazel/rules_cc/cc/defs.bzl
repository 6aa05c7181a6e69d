"""Offline stand-in for @rules_cc//cc:defs.bzl: the C++ rules built into Bazel 4.

Bazel 4's own tools (@bazel_tools) load these names from @rules_cc, which Bazel would
otherwise download. Built-in rules are exactly what rules_cc wraps at that version, so
re-exporting them keeps every @bazel_tools package loadable without network access.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
