"""All statistics that reports print, in one place (scipy.stats; nothing hand-rolled).

- ``summary``: mean ± sample std (n) and the 95 % Student-t confidence interval of the mean.
- ``paired``: the difference b − a over units present in both (seeds with the same partition), its mean, the 95 %
  t interval of the mean difference and the two-sided paired t-test p-value (``scipy.stats.ttest_rel``).
- ``welch``: the unpaired difference of means with Welch's t interval (Welch–Satterthwaite df) and p-value
  (``scipy.stats.ttest_ind(equal_var=False)``).
- ``verdict``: "helps"/"hurts" only when the 95 % interval excludes 0 and n ≥ 3; otherwise "inconclusive", with
  ``seeds_needed``: the smallest n with t_{0.975,n−1} · s_d / √n < |d̄|, i.e. n ≥ (t_{0.975,n−1} · s_d / |d̄|)²
  found by scanning n = 3, 4, … (a difference of the observed size at the observed noise; at least 3).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as st

CONFIDENCE = 0.95
MIN_N = 3  # fewer seeds never give a verdict
MAX_SEEDS = 1000  # "seeds needed" beyond this is reported as "> 1000"


def _clean(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(f):
            out.append(f)
    return out


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof 1; 0 for one value), n and the 95 % t interval of the mean (None for n < 2)."""

    mean: float
    std: float
    n: int
    ci: tuple[float, float] | None

    def as_tuple(self) -> tuple[float, float, int]:
        return (self.mean, self.std, self.n)


def summary(values: Iterable[Any]) -> Summary | None:
    """mean ± std (n) with the 95 % Student-t CI; None when no value is present."""
    x = _clean(values)
    if not x:
        return None
    n = len(x)
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else 0.0
    ci = None
    if n > 1:
        half = float(st.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
        ci = (mean - half, mean + half)
    return Summary(mean, std, n, ci)


@dataclass(frozen=True)
class Difference:
    """b − a: mean difference, its 95 % CI, p-value, n (pairs, or min of the two group sizes), how it was formed
    (``paired`` / ``unpaired``), the noise s (std of paired differences, or sqrt(s_a² + s_b²) unpaired) and the
    per-unit differences (paired only)."""

    mean: float
    ci: tuple[float, float] | None
    p: float | None
    n: int
    kind: str
    noise: float
    diffs: tuple[float, ...] = ()

    @property
    def resolved(self) -> bool:
        """The 95 % interval excludes 0 and there are at least 3 seeds (pairs)."""
        return self.n >= MIN_N and self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)

    @property
    def verdict(self) -> str:
        return verdict(self)

    @property
    def seeds_needed(self) -> int | None:
        return seeds_needed(self.mean, self.noise, self.kind)


def _pvalue(p: Any) -> float | None:
    p = float(p)
    return None if math.isnan(p) else p


def paired(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> Difference | None:
    """b − a paired on the keys present in both (e.g. seed → value); None without a common key."""
    keys = sorted((k for k in set(a) & set(b) if _clean([a[k]]) and _clean([b[k]])), key=str)
    if not keys:
        return None
    x = np.array([float(a[k]) for k in keys])
    y = np.array([float(b[k]) for k in keys])
    d = y - x
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    ci, p = None, None
    if n > 1:
        half = float(st.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
        ci = (mean - half, mean + half)
        if sd > 0:
            with warnings.catch_warnings():  # nearly identical differences: scipy warns, the p-value stands
                warnings.simplefilter("ignore", RuntimeWarning)
                p = _pvalue(st.ttest_rel(y, x).pvalue)
        else:  # every pair differs by the same amount: no noise to test against
            p = 1.0 if mean == 0 else 0.0
    return Difference(mean, ci, p, n, "paired", sd, tuple(float(v) for v in d))


def welch(a: Iterable[Any], b: Iterable[Any]) -> Difference | None:
    """mean(b) − mean(a), unpaired, Welch's t interval and test; None when a side is empty."""
    x, y = np.array(_clean(a)), np.array(_clean(b))
    if not len(x) or not len(y):
        return None
    mean = float(y.mean() - x.mean())
    va = float(x.var(ddof=1)) if len(x) > 1 else math.nan
    vb = float(y.var(ddof=1)) if len(y) > 1 else math.nan
    n = min(len(x), len(y))
    if math.isnan(va) or math.isnan(vb):
        return Difference(mean, None, None, n, "unpaired", math.nan)
    se2 = va / len(x) + vb / len(y)
    noise = math.sqrt(va + vb)
    if se2 == 0:
        return Difference(mean, (mean, mean), 1.0 if mean == 0 else 0.0, n, "unpaired", 0.0)
    df = se2 ** 2 / ((va / len(x)) ** 2 / (len(x) - 1) + (vb / len(y)) ** 2 / (len(y) - 1))
    half = float(st.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(se2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = _pvalue(st.ttest_ind(y, x, equal_var=False).pvalue)
    return Difference(mean, (mean - half, mean + half), p, n, "unpaired", noise)


def difference(a: Mapping[Any, Any], b: Mapping[Any, Any], pairable: bool = True) -> Difference | None:
    """Paired by key when ``pairable`` and at least two keys are common, else unpaired (Welch)."""
    if pairable and len(set(a) & set(b)) >= 2:
        return paired(a, b)
    return welch(a.values(), b.values())


def seeds_needed(mean_diff: float, noise: float, kind: str = "paired") -> int | None:
    """Smallest n ≥ 3 with t_{0.975,n−1} · noise / √n < |mean_diff| (paired: noise = std of the paired
    differences; unpaired with n per side: noise = sqrt(s_a² + s_b²)). None when the observed difference is 0 or the
    noise unknown; MAX_SEEDS + 1 when more than MAX_SEEDS would be needed."""
    del kind  # same formula; the noise term already says which
    if mean_diff == 0 or noise is None or math.isnan(noise):
        return None
    if noise == 0:
        return MIN_N
    ns = np.arange(MIN_N, MAX_SEEDS + 1)
    ok = st.t.ppf(0.5 + CONFIDENCE / 2, ns - 1) * noise / np.sqrt(ns) < abs(mean_diff)
    return int(ns[np.argmax(ok)]) if ok.any() else MAX_SEEDS + 1


def verdict(d: Difference | None, yes: str = "helps", no: str = "hurts") -> str:
    """``yes``/``no`` only for a resolved difference (CI excludes 0, n ≥ 3); else ``inconclusive``, with the seeds
    a difference of this size would need at this noise (``inconclusive (n=2; ~7 seeds would resolve ±0.31)``)."""
    if d is None:
        return "—"
    if d.resolved:
        return yes if d.mean > 0 else no
    need = seeds_needed(d.mean, d.noise, d.kind)
    if need is None:
        why = "no difference" if d.mean == 0 else "noise unknown"
        return f"inconclusive (n={d.n}; {why})"
    shown = f"> {MAX_SEEDS}" if need > MAX_SEEDS else f"~{need}"
    return f"inconclusive (n={d.n}; {shown} seeds would resolve {d.mean:+.2f})"


def fmt_summary(s: Summary | None, ci: bool = False) -> str:
    """``48.80 ± 0.52 (3)`` (+ `` [47.5, 50.1]`` with ``ci``); one value ``48.80 (1)``; none ``—``."""
    if s is None:
        return "—"
    out = f"{s.mean:.2f} ± {s.std:.2f} ({s.n})" if s.n > 1 else f"{s.mean:.2f} (1)"
    if ci and s.ci is not None:
        out += f" [{s.ci[0]:.2f}, {s.ci[1]:.2f}]"
    return out


def fmt_ci(ci: tuple[float, float] | None, signed: bool = True) -> str:
    if ci is None:
        return "—"
    f = "{:+.2f}" if signed else "{:.2f}"
    return "[" + f.format(ci[0]) + ", " + f.format(ci[1]) + "]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_difference(d: Difference | None) -> str:
    """``−0.91 [−1.90, +0.08] p=0.061 (3 paired)``; ``—`` when there is nothing to compare."""
    if d is None:
        return "—"
    return f"{d.mean:+.2f} {fmt_ci(d.ci)} p={fmt_p(d.p)} ({d.n} {d.kind})"
