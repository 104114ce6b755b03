"""The method seams: torch-free config validation, built-ins declared as they register, the base's shared forward
(a method cannot forget the random batch), FedX forwarding every public ``Method`` hook, the momentum helpers."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedx_bench.config import FedXConfig, RunConfig, run_config_from_dict
from fedx_bench.errors import ConfigError
from fedx_bench.methods import FedX, Method, Views
from fedx_bench.methods.momentum import frozen_copy
from fedx_bench.methods.simclr import SimCLR
from fedx_bench.models import CNN4
from fedx_bench.registry import AGGREGATORS, BACKBONES, EVALUATIONS, METHODS, load_builtins

ROOT = Path(__file__).resolve().parents[1]
B, PROJ = 4, 8
X = torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))
XR = torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_validating_a_suite_or_a_run_imports_no_torch():
    code = (
        "import sys\n"
        "from fedx_bench.config import ModelConfig, RunConfig, load_suite, run_config_from_dict, validate_run\n"
        "s = load_suite('suites/quickstart.yaml')\n"
        "validate_run(RunConfig(method='fedema', method_args={'tau': 0.5}, model=ModelConfig(backbone='cnn4')))\n"
        "run_config_from_dict({'method': 'protocl', 'fedx': 'fedx-no-head', 'federation': {'aggregator': 'ldawa'},\n"
        "                      'eval': {'protocols': ['knn', 'angle', 'semi_supervised', 'linear_probe']}})\n"
        "from fedx_bench.methods import display_name\n"
        "assert display_name('byol@ldawa') == 'FedBYOL + L-DAWA', display_name('byol@ldawa')\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('fedx_bench'))\n"
        "print(len(s.runs))\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) > 0


def test_suite_module_imports_first_and_config_reexports_it():
    r = _python("import fedx_bench.suite\nfrom fedx_bench.config import expand_suite, load_suite\n"
                "assert expand_suite is fedx_bench.suite.expand_suite\n")
    assert r.returncode == 0, r.stderr


def test_every_builtin_is_declared_with_its_schema_and_registered_by_its_module():
    load_builtins()
    for reg in (METHODS, BACKBONES, EVALUATIONS, AGGREGATORS):
        for name in reg.names():
            obj = reg.get(name)
            if obj.__module__.startswith("fedx_bench."):  # not a plug-in another test registered
                assert reg.is_declared(name), f"{reg.kind} {name!r} is registered but not declared (registry.py)"
    for name in METHODS.names():
        if METHODS.is_declared(name):
            assert METHODS.get(name).Args is METHODS.meta(name, load=False)["args"], name


def test_method_args_use_the_configs_typed_conversion():
    assert run_config_from_dict({"method": "fedema", "method_args": {"tau": "5e-1"}}).method_args["tau"] == 0.5
    assert run_config_from_dict({"method": "moco", "method_args": {"momentum": 1}}).method_args["momentum"] == 1.0
    with pytest.raises(ConfigError, match=r"method_args\.pred_hidden: expected an integer"):
        run_config_from_dict({"method": "byol", "method_args": {"pred_hidden": 2.5}})
    with pytest.raises(ConfigError, match=r"method_args\.num_clusters\[1\]: expected an integer"):
        run_config_from_dict({"method": "protocl", "method_args": {"num_clusters": [3, "4"]}})
    with pytest.raises(ConfigError, match=r"unknown key 'method_args\.emaa' for method 'byol' \(did you mean 'ema'"):
        run_config_from_dict({"method": "byol", "method_args": {"emaa": 0.9}})


# --------------------------------------------------------------------------- the shared forward


class _LossOnly(Method):
    """A method that only states its loss: the base does the forward."""

    name = "loss_only"

    def compute_loss(self, v: Views) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = (v.z1 - v.z2).pow(2).mean()
        return loss, {"loss_local_contrastive": loss.detach()}


def _passes(m: Method) -> list[int]:
    """Batch sizes of every student projection pass of ``m`` (recorded on the instance)."""
    sizes: list[int] = []
    inner = m.project
    m.project = lambda x: sizes.append(x.shape[0]) or inner(x)  # type: ignore[method-assign]
    return sizes


def _tiny(cls: type = _LossOnly) -> Method:
    torch.manual_seed(0)
    return cls(CNN4(in_channels=3, width=4), cls.parse_args({}), proj_hidden=16, proj_dim=PROJ)


def test_base_forwards_both_views_and_the_random_batch_in_one_pass():
    m = _tiny()
    sizes = _passes(m)
    out = m.training_step(X, X + 0.1, XR)
    assert sizes == [3 * B] and out.zr is not None and out.zr.shape == (B, PROJ)
    with torch.no_grad():  # zr are the random batch's rows of that one pass
        m.eval()
        ref = m.forward_views(X, X + 0.1, XR)
        assert torch.allclose(ref.zr, torch.cat([ref.z1, ref.z2, ref.zr])[2 * B :])


@pytest.mark.parametrize("variant,random_batch", [("fedx", True), ("fedx-no-relational", False)])
def test_fedx_gets_the_random_batch_from_the_base_exactly_when_it_asks(variant, random_batch):
    base = _tiny()
    sizes = _passes(base)
    m = FedX(base, FedXConfig(enabled=True, variant=variant))
    assert m.uses_random_batch is random_batch
    m.on_round_start(1, None)
    out = m.training_step(X, X + 0.1, XR)
    assert sizes == [3 * B if random_batch else 2 * B]
    assert (out.zr is not None) is random_batch
    assert ("loss_local_relational" in out.logs) is random_batch


# --------------------------------------------------------------------------- FedX forwards every hook

_IMAGES = torch.randint(0, 256, (6, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))


def _transform(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float() / 255.0


HOOK_CALLS = {  # how to call each public hook of Method on a FedX (the base must see the same hook called)
    "features": lambda m: m.features(X),
    "project": lambda m: m.project(X),
    "student_network": lambda m: m.student_network(),
    "forward_views": lambda m: m.forward_views(X, X, XR),
    "compute_loss": lambda m: m.compute_loss(m.forward_views(X, X, XR)),
    "training_step": lambda m: m.training_step(X, X, XR),
    "after_optimizer_step": lambda m: m.after_optimizer_step(),
    "trainable_parameters": lambda m: m.trainable_parameters(),
    "on_round_start": lambda m: m.on_round_start(2, None),
    "prepare_local_training": lambda m: m.prepare_local_training(_IMAGES, _transform),
    "round_stats": lambda m: m.round_stats(),
    "client_state": lambda m: m.client_state(),
}
NOT_FORWARDED = {  # served by FedX itself on purpose
    "parse_args": "a classmethod: the base's arguments are parsed when the base is built",
    "shared_state": "FedX's own state_dict: the base's entries under 'base.' plus FedX's head",
    "load_shared_state": "as shared_state",
}


def _public_hooks() -> set[str]:
    return {n for n, v in vars(Method).items()
            if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, (classmethod, staticmethod)))}


def test_every_public_method_hook_is_classified():
    assert _public_hooks() == set(HOOK_CALLS) | set(NOT_FORWARDED), (
        "a new Method hook: forward it in FedX and add it to HOOK_CALLS (or to NOT_FORWARDED, saying why)"
    )


def _recording_base() -> Method:
    def make(name: str):
        def hook(self, *args, **kwargs):
            self.calls.append(name)
            return getattr(super(cls, self), name)(*args, **kwargs)

        return hook

    cls = type("RecordingSimCLR", (SimCLR,), {name: make(name) for name in HOOK_CALLS})
    m = _tiny(cls)
    m.calls = []
    return m


@pytest.mark.parametrize("hook", sorted(HOOK_CALLS))
def test_fedx_forwards_every_public_hook_to_its_base(hook):
    base = _recording_base()
    m = FedX(base, FedXConfig(enabled=True))
    m.on_round_start(1, None)  # installs the teacher
    base.calls.clear()
    HOOK_CALLS[hook](m)
    assert hook in base.calls, f"FedX.{hook} does not reach the base method"


def test_fedx_shared_state_holds_the_base_state():
    base = _tiny(SimCLR)
    m = FedX(base, FedXConfig(enabled=True))
    shared = m.shared_state()
    assert {"base." + k for k in base.shared_state()} <= set(shared)
    assert any(k.startswith("head.") for k in shared)


# --------------------------------------------------------------------------- momentum helpers


def test_frozen_copy_teacher_is_eval_and_momentum_copy_keeps_training_mode():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)).train()
    teacher, twin = frozen_copy(net), frozen_copy(net, eval_mode=False)
    assert not teacher.training and twin.training and net.training
    for copy_ in (teacher, twin):
        assert all(not p.requires_grad for p in copy_.parameters())
        assert all(p.requires_grad for p in net.parameters())
        assert all(a is not b and torch.equal(a, b) for a, b in zip(copy_.parameters(), net.parameters()))


def test_run_config_default_method_builds_without_a_forgotten_random_batch():
    from fedx_bench.runner import build_method

    cfg = run_config_from_dict({"model": {"backbone": "cnn4", "width": 4, "proj_hidden": 16, "proj_dim": PROJ},
                                "dataset": "synthetic", "fedx": True})
    assert isinstance(cfg, RunConfig)
    m = build_method(cfg, 3)
    m.on_round_start(1, None)
    out = m.training_step(X, X + 0.1, XR)
    assert out.zr is not None and {"loss_local_relational", "loss_global_relational"} <= set(out.logs)
