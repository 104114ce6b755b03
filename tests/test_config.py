"""Config validation: unknown keys, wrong types and impossible values are one-line errors naming the key."""

from pathlib import Path

import pytest

from fedx_bench.config import RunConfig, expand_suite, load_suite, run_config_from_dict
from fedx_bench.errors import ConfigError

SUITES = Path(__file__).resolve().parents[1] / "suites"


def test_defaults_are_the_paper_setting():
    c = RunConfig()
    f = c.federation
    assert (f.clients, f.beta, f.rounds, f.local_epochs) == (10, 0.5, 100, 10)
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.batch_size) == (0.01, 0.9, 1e-5, 64)
    assert (c.fedx.temperature, c.fedx.tt, c.fedx.ts) == (0.1, 0.1, 0.1)
    assert c.model.backbone == "resnet18" and c.eval.probe_epochs == 100


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"federation": {"clientz": 3}}, "federation.clientz"),
        ({"federation": {"clients": "ten"}}, "federation.clients"),
        ({"federation": {"beta": 0}}, "federation.beta"),
        ({"optim": {"lr": -1.0}}, "optim.lr"),
        ({"fedx": "fedx-no-heads"}, "fedx-no-head"),
        ({"method": "simclrr"}, "simclr"),
        ({"dataset": "cifar100"}, "cifar100"),
        ({"method_args": {"temprature": 0.2}}, "method_args.temprature"),
        ({"eval": {"protocols": ["probe"]}}, "probe"),
        ({"federation": {"sample_fraction": 1.5}}, "sample_fraction"),
    ],
)
def test_bad_values_name_the_key(doc, needle):
    with pytest.raises(ConfigError) as e:
        run_config_from_dict(doc)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_run_id_ignores_device_and_root_but_not_settings():
    a = run_config_from_dict({"seed": 1})
    b = run_config_from_dict({"seed": 1, "device": "cpu", "data": {"root": "/x"}})
    c = run_config_from_dict({"seed": 2})
    assert a.run_id == b.run_id != c.run_id


def test_grid_and_cases_expand_and_keep_fedx_settings():
    s = expand_suite({
        "name": "t",
        "base": {"fedx": {"temperature": 0.2}, "model": {"backbone": "cnn4"}},
        "cases": [{"dataset": "synthetic"}, {"dataset": {"name": "fmnist", "grayscale": "single"}}],
        "grid": {"fedx": [False, True], "seed": [0, 1]},
    })
    assert len(s.runs) == 8
    assert {r.data.name for r in s.runs} == {"synthetic", "fmnist"}
    assert all(r.fedx.temperature == 0.2 for r in s.runs)
    assert sum(r.fedx.enabled for r in s.runs) == 4
    assert len({r.run_id for r in s.runs}) == 8


def test_suite_file_errors_name_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nbase: {federation: {roundz: 3}}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml.*federation\.roundz.*did you mean 'rounds'"):
        load_suite(p)
    p.write_text("name: x\ngird: {}\n")
    with pytest.raises(ConfigError, match="gird"):
        load_suite(p)


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_suites_validate(path):
    s = load_suite(path)
    assert s.runs and s.name == path.stem
