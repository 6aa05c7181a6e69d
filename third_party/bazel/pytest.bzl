"""`pytest_test`: one py_test per test file, run through pytest so tests/conftest.py applies.

Running a test file directly would skip conftest.py (which gives 8 simulated CPU devices
before jax loads) and pyproject.toml's pytest options (`-m 'not slow'`); running it under
pytest from the runfiles root applies both, as `make test` does.
"""

# The libraries of DESIGN.md's layer table, by layer. A test may import the package it
# mirrors and everything at or below that package's layer (siblings included: a data test
# may build model inputs), so a library change reruns only the tests above it.
LAYERS = [
    ["//safework/infra"],
    ["//data", "//models"],
    ["//rl"],
    ["//verifiers"],
    ["//safework"],
    ["//launch", "//configs", "//benchmarks"],
]

ALL_LIBRARIES = [label for layer in LAYERS for label in layer]

def importable_libraries(src):
    """The libraries a test file of the current package may import.

    `tests/data/test_x.py` -> infra, data and models; `tests/rl/test_x.py` -> those and rl;
    `tests/safework/infra/test_x.py` -> infra only. Top-level tests (the layer rule) and the
    tests of launch/, configs/ and benchmarks/ get every library.

    Args:
      src: the test file's path relative to the current package (a folder under tests/).

    Returns:
      A list of py_library labels.
    """
    parts = (native.package_name() + "/" + src).split("/")[1:-1]
    if not parts:
        return ALL_LIBRARIES
    mirrored = "//safework/infra" if parts[:2] == ["safework", "infra"] else "//" + parts[0]
    for depth, layer in enumerate(LAYERS):
        if mirrored in layer:
            return [label for below in LAYERS[:depth + 1] for label in below]
    fail("tests/%s mirrors no package of %s; add its package to LAYERS in %s" % (
        "/".join(parts + [src.split("/")[-1]]),
        ALL_LIBRARIES,
        "third_party/bazel/pytest.bzl",
    ))

def pytest_test(src, deps = [], **kwargs):
    """A py_test named after `src` (without .py) that runs `src` under pytest.

    Args:
      src: a test file of this package, e.g. `test_losses.py` or `world/test_generator.py`.
      deps: py_libraries the test imports.
      **kwargs: passed on to py_test (size, timeout, tags, ...).
    """
    # An hour: a jit-heavy test file can pass 15 minutes on a loaded 2-core machine, and
    # speed is measured in benchmarks/, not here; the timeout only catches a hang.
    kwargs.setdefault("timeout", "eternal")
    native.py_test(
        name = src[:-len(".py")],
        srcs = [src, "//third_party/bazel:pytest_main.py"],
        main = "//third_party/bazel:pytest_main.py",
        args = ["$(rootpath %s)" % src],
        python_version = "PY3",
        srcs_version = "PY3",
        # No empty __init__.py files invented in runfiles: packages import exactly as in
        # the checkout under plain pytest.
        legacy_create_init = False,
        deps = deps,
        **kwargs
    )
