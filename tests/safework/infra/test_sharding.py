"""Meshes from config lists and logical rules as data."""

import jax
import pytest
from jax.sharding import PartitionSpec as P

from safework.infra import sharding


def test_mesh_resolves_minus_one_and_uses_auto_axes():
  mesh = sharding.make_mesh([("data", -1), ("fsdp", 2), ("tensor", 2)])
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("axes, message", [
    ([("data", 3), ("fsdp", -1)], "do not divide"),
    ([("data", 2), ("fsdp", 2)], "needs 4 devices, there are 8"),
    ([("data", -1), ("fsdp", -1)], "at most one -1"),
    ([("batch", 8)], "distinct names"),
    ([("data", 4), ("data", 2)], "distinct names"),
])
def test_bad_mesh_configs_fail_clearly(axes, message):
  with pytest.raises(ValueError, match=message):
    sharding.make_mesh(axes)


def test_rules_from_config_lists_and_unknown_mesh_axis():
  assert sharding.validate_rules([["batch", ["data", "fsdp"]], ["embed", None]]) == (
      ("batch", ("data", "fsdp")), ("embed", None))
  with pytest.raises(ValueError, match=r"rule for 'mlp' names unknown mesh axes \['model'\]"):
    sharding.validate_rules([["mlp", "model"]])


def test_logical_to_mesh_spec_skips_used_axes_and_indivisible_dims():
  mesh = sharding.make_mesh([("data", 2), ("fsdp", 2), ("tensor", 2)])
  rules = sharding.DEFAULT_RULES
  # Activations: batch takes fsdp, so embed stays whole.
  assert sharding.logical_to_mesh_spec(("batch", "length", "embed"), (8, 5, 6), mesh,
                                       rules) == P(("data", "fsdp"), None, None)
  # Parameters: embed over fsdp, mlp over tensor.
  assert sharding.logical_to_mesh_spec(("embed", "mlp"), (4, 6), mesh, rules) == P("fsdp",
                                                                                   "tensor")
  # A width of 3 cannot split two ways: that dimension stays whole.
  assert sharding.logical_to_mesh_spec(("embed", "mlp"), (4, 3), mesh, rules) == P("fsdp", None)
  # A batch of 2 keeps data but not fsdp.
  assert sharding.logical_to_mesh_spec(("batch",), (2,), mesh, rules) == P("data")
