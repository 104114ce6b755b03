"""Statistics, setting ids and code provenance: values equal those computed independently with scipy, verdict rules,
the seeds-needed formula, which config keys a setting id ignores."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as sps

from fedx_bench import stats
from fedx_bench.config import RunConfig
from fedx_bench.provenance import code_record, code_version, same_code
from fedx_bench.setting import EXCLUDED_KEYS, describe_differences, setting_dict, setting_id

A = {0: 40.1, 1: 41.3, 2: 39.8, 3: 40.7}
B = {0: 41.0, 1: 42.5, 2: 40.2, 3: 41.9}


def test_summary_ci_matches_scipy() -> None:
    x = list(A.values())
    s = stats.summary(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert s.n == 4 and s.mean == pytest.approx(np.mean(x)) and s.std == pytest.approx(np.std(x, ddof=1))
    assert s.ci == pytest.approx((lo, hi))
    assert stats.summary([5.0]).ci is None and stats.summary([None, float("nan")]) is None


def test_paired_difference_ci_and_p_match_scipy() -> None:
    d = stats.paired(A, B)
    diffs = np.array([B[k] - A[k] for k in sorted(A)])
    lo, hi = sps.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=sps.sem(diffs))
    assert d.kind == "paired" and d.n == 4 and d.mean == pytest.approx(diffs.mean())
    assert d.ci == pytest.approx((lo, hi))
    assert d.p == pytest.approx(sps.ttest_rel(list(B.values()), list(A.values())).pvalue)


def test_unpaired_welch_matches_scipy() -> None:
    a, b = [1.0, 2.0, 3.5], [2.5, 3.0, 4.5, 5.0]
    d = stats.welch(a, b)
    res = sps.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert d.kind == "unpaired" and d.mean == pytest.approx(np.mean(b) - np.mean(a))
    assert d.p == pytest.approx(res.pvalue) and d.ci == pytest.approx((ci.low, ci.high))
    # no common seeds → difference() falls back to unpaired
    assert stats.difference({0: 1.0, 1: 2.0}, {5: 3.0, 6: 4.0}).kind == "unpaired"


def test_verdict_rules() -> None:
    two = stats.paired({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.6})  # n = 2: never a verdict, however clean
    assert not two.resolved and two.verdict.startswith("inconclusive (n=2;")
    up = stats.paired(A, B)  # CI excludes 0, n = 4
    assert up.ci[0] > 0 and up.resolved and up.verdict == "helps"
    down = stats.paired(B, A)
    assert down.verdict == "hurts" and stats.verdict(down, "better", "worse") == "worse"
    noisy = stats.paired({0: 0.0, 1: 0.0, 2: 0.0}, {0: 1.0, 1: -0.8, 2: 0.2})  # CI spans 0
    assert noisy.ci[0] < 0 < noisy.ci[1] and noisy.verdict.startswith("inconclusive (n=3;")
    assert stats.verdict(None) == "—"


def test_seeds_needed_formula() -> None:
    d, s = 0.3, 0.5
    n = stats.seeds_needed(d, s)
    half = lambda k: sps.t.ppf(0.975, k - 1) * s / math.sqrt(k)  # noqa: E731
    assert half(n) < d and half(n - 1) >= d  # the smallest n that resolves a difference of this size
    assert n >= (sps.t.ppf(0.975, n - 1) * s / d) ** 2
    assert stats.seeds_needed(0.0, 1.0) is None and stats.seeds_needed(1.0, 0.0) == 3
    assert stats.seeds_needed(1e-6, 10.0) == stats.MAX_SEEDS + 1
    two = stats.paired({0: 1.0, 1: 2.0}, {0: 1.3, 1: 2.1})
    assert f"~{two.seeds_needed} seeds" in two.verdict


def test_setting_id_ignores_method_seed_and_neutral_keys() -> None:
    base = RunConfig(method="simclr", seed=0).to_dict()
    other = copy.deepcopy(base)
    other.update(method="my_pkg.mod:SimSiam", method_args={"x": 1}, seed=7, device="cuda:1")
    other["fedx"]["enabled"] = True
    other["data"]["root"] = "/somewhere/else"
    other["perf"]["channels_last"] = True
    assert setting_id(base) == setting_id(other) and len(setting_id(base)) == 12
    changed = copy.deepcopy(base)
    changed["federation"]["rounds"] = 1
    assert setting_id(changed) != setting_id(base)
    assert describe_differences(setting_dict(changed), setting_dict(base)) == "rounds 1≠100"
    assert {"method", "method_args", "fedx", "seed", "device", "data.root"} <= set(EXCLUDED_KEYS)
    amp = copy.deepcopy(base)
    amp["perf"]["amp"] = "bf16"  # changes numbers: part of the setting
    assert setting_id(amp) != setting_id(base)


def test_code_record_and_versions() -> None:
    rec = code_record()
    assert len(rec["source_sha256"]) == 64 and len(rec["numerics_sha256"]) == 64 and rec["files"] > 10
    assert same_code({"code": {"numerics_sha256": rec["numerics_sha256"]}}) is True
    assert same_code({"code": {"numerics_sha256": "0" * 64}}) is False
    assert same_code({"git_commit": "abc-dirty"}) is None and same_code({}) is None
    assert code_version({"code": {"numerics_sha256": "ab" * 32}}) == "src:" + "ab" * 6
    assert code_version({"git_commit": "0123456789abcdef-dirty"}) == "git:0123456789ab-dirty"
    assert code_version(None) == "unknown"
