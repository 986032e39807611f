"""``write_report`` / ``fleet-sim report DIR``: one self-contained HTML page with every image.

Runs are made by the real runner (``fleet_sim.run`` / ``fleet_sim.sweep`` with
``out=``) and read back from the store, as a user's would be.
"""

from __future__ import annotations

import base64
import io
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

import fleet_sim as fs
from fleet_sim import cli
from fleet_sim.errors import FleetSimError
from fleet_sim.report import answer, write_report
from fleet_sim.report import figures as fg
from fleet_sim.report.groups import GROUP, groups, with_groups
from fleet_sim.report.numbers import ci_cell, fmt
from fleet_sim.results import store

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODES = ("baremetal", "vm", "container")

TINY = {
    "run": {"duration_s": 240.0, "warmup_s": 30.0, "seed": 5,
            "record": ["hosts", "workloads", "jobs", "events"]},
    "fleet": {"hosts": [{"type": "small", "count": 2, "cores": 4, "ram_mib": 16_384}]},
    "hosting": {"mode": "container", "baremetal": {"install_s": 5.0}},
    "apps": [
        {"name": "web", "replicas": 2, "threads": 2, "ram_mib": 1024, "workloads": [
            {"kind": "jobs", "name": "requests", "rate_per_s": 3.0,
             "work_core_s": {"dist": "exponential", "mean": 0.2}}]},
        {"name": "batch", "threads": 4, "ram_mib": 2048, "workloads": [
            {"kind": "spiky", "baseline_cores": 0.5, "rate_per_s": 0.02, "height_cores": 3.0,
             "duration_s": 20}]},
    ],
}


class Page(HTMLParser):
    """Collects what a browser would need: images, headings, table cells, preformatted text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self.cells: list[str] = []
        self.pre: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in ("h1", "h2", "td", "th", "pre"):
            self._in = tag
            if tag == "pre":
                self.pre.append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in in ("h1", "h2"):
            self.headings.append(data)
        elif self._in in ("td", "th"):
            self.cells.append(data)
        elif self._in == "pre":
            self.pre[-1] += data


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def assert_every_image_present(html_path: Path) -> Page:
    """Each <img> embeds a PNG that decodes, has a size, and equals the PNG file beside it."""
    page = read_page(html_path)
    assert page.images, "the report has no figure"
    for img in page.images:
        head, _, data = img["src"].partition(",")
        assert head == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG_MAGIC)
        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400
        assert pixels[..., :3].std() > 0.01  # not a blank canvas
        assert img["alt"]
    files = sorted(html_path.parent.glob("*.png"))
    embedded = sorted(base64.b64decode(i["src"].partition(",")[2]) for i in page.images)
    assert sorted(f.read_bytes() for f in files) == embedded
    text = html_path.read_text(encoding="utf-8")
    assert "could not be drawn" not in text
    assert "src='http" not in text and 'src="http' not in text  # self-contained
    return page


def figure_names(html_path: Path) -> list[str]:
    return sorted(p.stem for p in html_path.parent.glob("*.png"))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    res = fs.run(TINY, out=tmp_path_factory.mktemp("run"), progress=False)
    return Path(res.manifest["path"])


@pytest.fixture(scope="module")
def mode_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    fs.sweep(TINY, params={"hosting.mode": list(MODES)}, replications=2, out=out, workers=1,
             progress=False)
    return out


def test_report_of_one_run_embeds_every_figure_the_tables_support(one_run, tmp_path):
    path = write_report(one_run, tmp_path / "rep")
    assert path == tmp_path / "rep" / "report.html"
    page = assert_every_image_present(path)
    assert figure_names(path) == sorted([
        "headline", "utilization_heatmap", "utilization_distribution", "memory_over_time",
        "power_over_time", "workload_cpu", "unmet_cpu", "response_time_cdf"])
    assert {"Answer", "Summary", "Figures", "Workloads", "Resolved config"} <= set(
        page.headings)
    # the summary table shows the run's own numbers, formatted as everywhere
    summary = fs.load(one_run).summary.iloc[0]
    assert fmt(summary["cpu_utilization_mean"], "fraction") in page.cells
    assert fmt(summary["jobs_finished"]) in page.cells


def test_the_resolved_config_is_shown_as_toml(one_run, tmp_path):
    page = read_page(write_report(one_run, tmp_path / "rep"))

    def without_none(x):
        if isinstance(x, dict):
            return {k: without_none(v) for k, v in x.items() if v is not None}
        return [without_none(v) for v in x] if isinstance(x, list) else x

    shown = tomllib.loads(page.pre[0])
    assert shown == without_none(store.read_manifest(one_run)["config"])
    assert "[[apps.workloads]]" in page.pre[0]


def test_report_defaults_to_a_report_folder_inside_the_run(one_run):
    path = write_report(one_run)
    assert path == one_run / "report" / "report.html"
    assert_every_image_present(path)
    assert fs.load(one_run).summary.shape[0] == 1  # the run folder still loads


def test_report_of_a_sweep_compares_modes_with_confidence_intervals(mode_sweep):
    path = write_report(mode_sweep)
    page = assert_every_image_present(path)
    # per-host heatmaps of every mode folded into one figure, drawn last
    assert [n for n in figure_names(path) if n.startswith("utilization_heatmap")] == [
        "utilization_heatmap"]
    text = path.read_text()
    assert text.index("id=\"headline\"") < text.index("id=\"response_time_cdf\"") < text.index(
        "id=\"utilization_heatmap\"")
    # one column per group, modes in their canonical order
    start = page.cells.index("unit")
    assert page.cells[start:start + 4] == ["unit", *MODES]
    assert "over the runs of each group (baremetal: 2, vm: 2, container: 2)" in text
    assert any("±" in c for c in page.cells)
    assert "6 runs (6 succeeded) in 3 group(s)" in text
    assert "runs differ in: hosting.mode" in text


def failed_run(out: Path) -> None:
    """Store a run that failed, as the runner stores one (status failed, its exception)."""
    res = fs.run(TINY, progress=False)
    manifest = dict(res.manifest, run_id="broken", status=store.FAILED, tables={},
                    exception={"type": "RuntimeError", "message": "host exploded"})
    store.write_run(out, "broken", {}, manifest)


def test_report_marks_failed_runs_and_draws_the_others(tmp_path, capsys):
    out = tmp_path / "mixed"
    fs.run(TINY, out=out, progress=False)
    failed_run(out)
    runs = fs.load(out).runs
    assert sorted(runs["status"]) == ["failed", "ok"]
    path = write_report(out)
    text = path.read_text()
    assert "1 of 2 runs failed: they are left out of every number and figure below" in text
    assert "RuntimeError: host exploded" in read_page(path).cells
    assert_every_image_present(path)
    # the command says so and exits non-zero
    assert cli.main(["report", str(out), "--text"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "1 run(s) failed and are left out of every number" in err and "host exploded" in err


def test_a_failed_report_leaves_no_old_report_behind(one_run, tmp_path):
    out = tmp_path / "rep"
    write_report(one_run, out)
    assert (out / "report.html").is_file() and list(out.glob("*.png"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FleetSimError, match="no runs found"):
        write_report(empty, out)
    assert not (out / "report.html").exists() and not list(out.glob("*.png"))


def test_report_of_a_folder_mixing_a_run_and_a_sweep_groups_by_mode(tmp_path, capsys):
    """One `fleet-sim run` plus a `fleet-sim sweep --param hosting.mode=…` in one folder."""
    out = tmp_path / "mixed"
    fs.run(dict(TINY, hosting={"mode": "baremetal"}), out=out, progress=False)
    fs.sweep(TINY, params={"hosting.mode": ["vm", "container"]}, out=out, workers=1,
             progress=False)
    res = fs.load(out)
    assert res.params == ["hosting.mode"]
    assert groups(res).order == ["baremetal", "vm", "container"]
    assert list(answer.headline(res)["group"]) == ["baremetal", "vm", "container"]
    assert cli.main(["report", str(out), "--out", str(tmp_path / "rep")]) == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert "runs differ in: hosting.mode" in printed
    page = assert_every_image_present(tmp_path / "rep" / "report.html")
    start = page.cells.index("unit")
    assert page.cells[start:start + 4] == ["unit", "baremetal", "vm", "container"]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a figure that fails warns
def test_an_app_absent_from_some_runs_leaves_its_panel_empty_there(tmp_path):
    """As `make demo` sweeps the batch neighbours away (replicas 1, 0): the CPU figure of
    the victim and its neighbours is drawn, with no panel for batch where it did not run."""
    out = tmp_path / "sweep"
    fs.sweep(TINY, params={"apps.batch.replicas": [1, 0]}, out=out, workers=1, progress=False)
    path = write_report(out, tmp_path / "rep")
    assert "workload_cpu" in figure_names(path)
    assert issubclass(fg.NoRows, ValueError)


def test_workloads_table_shows_no_float_noise(mode_sweep):
    text = write_report(mode_sweep).read_text()
    workloads = text[text.index("<h2>Workloads</h2>"):text.index("<h2>Events</h2>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", workloads)
    assert cells and not [c for c in cells if re.search(r"\de-\d", c)]
    assert "guest-os" not in workloads or "guest-os workloads are" in workloads
    assert "overflow-x:auto}" not in text.split("table{")[1].split("}")[0]


def test_report_of_a_rollout_sweep_draws_the_timeline(tmp_path):
    out = tmp_path / "rollout"
    fs.sweep(EXPERIMENTS / "rollout.toml", params={"hosting.mode": ["vm", "container"]},
             set={"fleet.hosts.host.count": 12, "apps.web.replicas": 12,
                  "apps.batch.replicas": 12, "run.duration_s": 2000}, out=out, workers=1,
             progress=False)
    path = write_report(out)
    page = assert_every_image_present(path)
    # a fleet run: its service's figures, and the rollout's timeline
    assert figure_names(path) == ["headline", "response_time_cdf", "rollout_timeline"]
    assert "Rollout" in page.headings and "makespan_s" in page.cells


def test_report_of_a_run_stored_without_a_mode_column_takes_it_from_the_config(tmp_path):
    res = fs.run(TINY, progress=False)
    tables = {name: frame.drop(columns=["run_id", "seed", "replication"])
              for name, frame in res.tables.items()}
    manifest = dict(res.manifest, run_id="handmade", status=store.OK)
    manifest["config"] = dict(manifest["config"], hosting={"mode": "vm"})
    run_dir = store.write_run(tmp_path, "handmade", tables, manifest)
    assert groups(fs.load(run_dir)).order == ["vm"]
    path = write_report(run_dir)
    assert "utilization_heatmap" in figure_names(path)
    assert_every_image_present(path)


def test_cli_report_writes_the_html_and_prints_its_path(one_run, tmp_path, capsys):
    assert cli.main(["report", str(one_run), "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert f"report: {tmp_path / 'cli' / 'report.html'}" in printed
    assert_every_image_present(tmp_path / "cli" / "report.html")


def test_report_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(FleetSimError, match="no runs found"):
        write_report(tmp_path)


def test_summary_numbers_of_the_sweep_are_the_replication_means(mode_sweep):
    res = fs.load(mode_sweep)
    stats = res.summarize()
    page = read_page(write_report(mode_sweep))
    row = stats[(stats["hosting.mode"] == "vm") & (stats["metric"] == "energy_kwh")].iloc[0]
    assert ci_cell(row["mean"], row["ci95"]) in page.cells


def test_headline_is_computed_from_the_jobs_of_each_window(mode_sweep):
    res = fs.load(mode_sweep)
    head = answer.headline(res)
    s = res.summary.set_index("run_id")
    jobs = res.jobs
    jobs = jobs[(jobs["arrival"] >= jobs["run_id"].map(s["duration_s"] - s["window_s"]))
                & (jobs["arrival"] <= jobs["run_id"].map(s["duration_s"]))]
    done = jobs[jobs["finish"].notna()]
    per_run = done.groupby(["hosting.mode", "seed"]).agg(
        p99=("response_time_s", lambda x: np.quantile(x, 0.99)), slowdown=("slowdown", "mean"))
    assert list(head["group"]) == list(MODES)
    assert (head["reference"] == "baremetal").all()
    for _, row in head.iterrows():
        mine = per_run.loc[row["group"]]
        t = stats.t.ppf(0.975, len(mine) - 1)
        assert row["runs"] == len(mine) == 2
        assert row["p99_s"] == pytest.approx(mine["p99"].mean(), rel=1e-12)
        assert row["p99_ci95_s"] == pytest.approx(
            t * mine["p99"].std(ddof=1) / np.sqrt(len(mine)), rel=1e-9)
        assert row["slowdown"] == pytest.approx(mine["slowdown"].mean(), rel=1e-12)
        if row["group"] != "baremetal":  # paired by seed with the reference
            d = mine["p99"] - per_run.loc["baremetal"]["p99"].reindex(mine.index)
            assert row["pairs"] == 2
            assert row["p99_diff_s"] == pytest.approx(d.mean(), rel=1e-9)
            assert row["p99_diff_ci95_s"] == pytest.approx(
                t * d.std(ddof=1) / np.sqrt(len(d)), rel=1e-9)
    # with one job workload the summary's figures are the headline's
    summarized = res.summarize().set_index(["hosting.mode", "metric"])
    for _, row in head.iterrows():
        assert row["p99_s"] == pytest.approx(
            summarized.loc[(row["group"], "response_time_p99_s"), "mean"], rel=1e-12)
    # the page and the terminal print the same table
    page = read_page(write_report(mode_sweep))
    printed = answer.headline_table(head)
    assert set(printed["p99 response time (s)"]) <= set(page.cells)


def test_figure_numbers_equal_the_summary_tables(mode_sweep):
    res = fs.load(mode_sweep)
    grouping = groups(res)
    summary = with_groups(res.summary, grouping)
    s = summary.set_index("run_id")
    by_mode = summary.groupby("hosting.mode")
    head = answer.headline(res)
    bars = fg.plotted(fg.headline_bars(head, axes=list(Figure().subplots(1, 2)))[0])
    pd.testing.assert_frame_equal(bars, head)
    unmet = fg.plotted(fg.unmet_cpu(with_groups(res.workload_summary, grouping), by=GROUP,
                                    ax=Figure().add_subplot()))
    power = fg.plotted(fg.power_over_time(with_groups(res.hosts, grouping), by=GROUP,
                                          t_end=s["duration_s"],
                                          t_start=s["duration_s"] - s["window_s"],
                                          ax=Figure().add_subplot()))
    for mode in MODES:
        assert unmet.set_index("group").loc[mode, "satisfied_fraction"] == pytest.approx(
            by_mode["satisfied_fraction"].mean()[mode], rel=1e-9)
        assert unmet.set_index("group").loc[mode, "contention_core_s"] == pytest.approx(
            by_mode["contention_core_s"].mean()[mode], rel=1e-9)
        assert power[power["group"] == mode]["energy_kwh"].iloc[0] == pytest.approx(
            by_mode["energy_kwh"].mean()[mode], rel=1e-9)


def test_an_apps_workload_takes_its_replicas_vms_and_new_versions_together():
    from fleet_sim.report.answer import app_workload

    assert app_workload("web-3.requests") == "web.requests"
    assert app_workload("web-3-vm.guest-os") == "web-vm.guest-os"
    assert app_workload("web-12-vm.migration") == "web-vm.migration"
    assert app_workload("web-9@v2.requests") == "web@v2.requests"
    assert app_workload("my-app-2.x") == "my-app.x"
    assert app_workload("web.requests") == "web.requests"
