"""The suite record (``results/suites/<name>.json``) declares the suite's design — ``base``, ``cases``, ``grid`` as
expanded (after ``--set``/``--sweep``) and each run's setting id — and reports read the design from it, falling back
to inference only for records written before."""

from __future__ import annotations

import json

import yaml

from fedx_bench import api
from fedx_bench.config import expand_suite
from fedx_bench.reports import SuiteDesign, build_report
from fedx_bench.setting import setting_id
from fedx_bench.suite import suite_record

DOC = {
    "name": "design-demo",
    "base": {"dataset": "synthetic", "seed": 0, "model": {"backbone": "cnn4", "width": 4},
             "federation": {"clients": 3, "rounds": 1, "local_epochs": 1, "min_size": 2},
             "optim": {"batch_size": 16}, "eval": {"probe_epochs": 2, "knn_k": 5}},
    "cases": [{"federation": {"rounds": 1}}, {"federation": {"rounds": 2, "local_epochs": 1}}],
    "grid": {"fedx": [False, True], "federation.clients": [3, 10]},
}


def test_record_holds_the_design_as_expanded_and_it_expands_to_the_same_runs():
    suite = expand_suite(DOC, overrides={"federation.local_epochs": 2, "optim.lr": 0.05},
                         sweeps={"seed": [0, 1]})
    rec = suite_record(suite, "now")
    assert rec["base"]["federation"]["local_epochs"] == 2 and rec["base"]["optim"]["lr"] == 0.05  # --set applied
    assert rec["base"]["data"] == {"name": "synthetic"}  # shorthands resolved as expansion reads them
    assert rec["cases"][0] == {"federation": {"rounds": 1}}  # a case that does not set the key keeps its own
    assert rec["cases"][1]["federation"] == {"rounds": 2, "local_epochs": 2}  # --set wins over the case
    assert rec["grid"] == {"fedx": [False, True], "federation.clients": [3, 10], "seed": [0, 1]}
    assert rec["setting_ids"] == {r.run_id: setting_id(r.to_dict()) for r in suite.runs}
    again = expand_suite({"name": rec["name"], "base": rec["base"], "cases": rec["cases"], "grid": rec["grid"]})
    assert [r.run_id for r in again.runs] == rec["run_ids"] == [r.run_id for r in suite.runs]
    json.dumps(rec)  # plain JSON

    design = SuiteDesign.from_record(rec)
    assert design is not None
    assert design.setting_keys() == ["federation.clients", "federation.rounds"]
    assert design.sweep_columns() == ["clients", "rounds"]
    assert design.base_values() == {"federation.clients": 3, "federation.rounds": 1}
    old = {k: v for k, v in rec.items() if k not in ("base", "cases", "grid", "setting_ids")}
    assert SuiteDesign.from_record(old) is None


def test_run_writes_the_design_and_the_report_uses_it(tmp_path):
    """Four runs in two settings (3 or 10 clients) with two runs each. Inference picks the setting closest to the
    paper's (10 clients) for Table 1; the design's base says 3 clients, and the report follows the record."""
    doc = {**DOC, "cases": [{}], "grid": {"fedx": [False, True], "federation.clients": [3, 10]}}
    path = tmp_path / "design-demo.yaml"
    path.write_text(yaml.safe_dump(doc))
    res_dir = tmp_path / "res"
    res = api.run_suite(path, res_dir, progress="quiet", in_process=True)
    assert res.counts["done"] == 4
    rec_path = res_dir / "suites" / "design-demo.json"
    rec = json.loads(rec_path.read_text())
    assert rec["base"]["federation"]["clients"] == 3 and rec["grid"]["federation.clients"] == [3, 10]
    assert rec["cases"] == [{}]
    specs = {rid: json.loads((res_dir / "runs" / rid / "spec.json").read_text()) for rid in rec["run_ids"]}
    assert rec["setting_ids"] == {rid: s["setting_id"] for rid, s in specs.items()}
    by_clients = {s["config"]["federation"]["clients"]: s["setting_id"] for s in specs.values()}

    def table1_setting(out: str) -> tuple[str, str]:
        r = build_report("design-demo", tmp_path / out, [res_dir])
        t1 = r.artefact("table1")
        assert t1 is not None
        (line,) = [p for p in t1.provenance if p.startswith("**Setting ids**")]
        return line, (tmp_path / out / "design-demo" / "index.md").read_text()

    line, index = table1_setting("with-design")
    assert f"`{by_clients[3]}`" in line and by_clients[10] not in line
    assert "Design read from the suite record" in index and "`federation.clients`" in index

    rec_path.write_text(json.dumps({k: v for k, v in rec.items() if k not in ("base", "cases", "grid",
                                                                               "setting_ids")}))
    line, index = table1_setting("inferred")  # a record written before: inferred, as reports always did
    assert f"`{by_clients[10]}`" in line and by_clients[3] not in line
    assert "Design read from the suite record" not in index
