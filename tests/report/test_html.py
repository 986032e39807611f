"""``write_report`` / ``fleet-sim report DIR``: one self-contained HTML page with every image.

Runs are made by the real runner (``fleet_sim.run`` / ``fleet_sim.sweep`` with
``out=``) and read back from the store, as a user's would be.
"""

from __future__ import annotations

import base64
import copy
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import pandas as pd
import pytest

import fleet_sim as fs
from fleet_sim import cli
from fleet_sim.errors import FleetSimError
from fleet_sim.report import write_report
from fleet_sim.results import store

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODES = ("baremetal", "vm", "container")

TINY = {
    "run": {"duration_s": 240.0, "warmup_s": 30.0, "seed": 5,
            "record": ["hosts", "workloads", "jobs", "events"]},
    "fleet": {"hosts": [{"type": "small", "count": 2, "cores": 4, "ram_mib": 16_384}]},
    "hosting": {"mode": "container"},
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
        "utilization_heatmap_container", "utilization_distribution", "memory_over_time",
        "power_over_time", "workload_cpu", "unmet_cpu", "response_time_cdf"])
    assert {"Summary", "Figures", "Workloads", "Resolved config"} <= set(page.headings)
    # the summary table shows the run's own numbers
    summary = fs.load(one_run).summary.iloc[0]
    assert f"{summary['cpu_utilization_mean']:,.4g}" in page.cells
    assert f"{summary['jobs_finished']:,.0f}" in page.cells
    # the resolved config is the manifest's
    assert json.loads(page.pre[0]) == store.read_manifest(one_run)["config"]


def test_report_defaults_to_a_report_folder_inside_the_run(one_run):
    path = write_report(one_run)
    assert path == one_run / "report" / "report.html"
    assert_every_image_present(path)
    assert fs.load(one_run).summary.shape[0] == 1  # the run folder still loads


def test_report_of_a_sweep_compares_modes_with_confidence_intervals(mode_sweep):
    path = write_report(mode_sweep)
    page = assert_every_image_present(path)
    names = figure_names(path)
    assert [n for n in names if n.startswith("utilization_heatmap")] == [
        f"utilization_heatmap_{m}" for m in sorted(MODES)]
    start = page.cells.index("metric")  # after the table of runs
    # one column per sweep point, modes in their canonical order
    assert page.cells[start:start + 5] == ["metric", "unit", *MODES]
    assert "Mean ± 95 % confidence half-width over 2 replications" in path.read_text()
    assert any("±" in c for c in page.cells)
    assert "Sweep of 6 runs (6 succeeded)" in path.read_text()


def test_report_lists_failed_runs_and_draws_the_others(tmp_path):
    bad = copy.deepcopy(TINY)
    bad["apps"][1]["ram_mib"] = 15_000  # the batch app fits a host but not next to web
    bad["fleet"]["hosts"][0]["count"] = 1
    out = tmp_path / "mixed"
    fs.sweep(TINY, out=out, workers=1, progress=False)
    fs.sweep(bad, out=out, workers=1, progress=False)
    runs = fs.load(out).runs
    assert sorted(runs["status"]) == ["failed", "ok"]
    path = write_report(out)
    text = path.read_text()
    assert "1 of 2 runs failed" in text
    assert_every_image_present(path)


def test_report_of_a_rollout_sweep_draws_the_timeline(tmp_path):
    out = tmp_path / "rollout"
    fs.sweep(EXPERIMENTS / "rollout.toml", params={"hosting.mode": ["vm", "container"]},
             set={"fleet.hosts.host.count": 12}, out=out, workers=1, progress=False)
    path = write_report(out)
    page = assert_every_image_present(path)
    assert figure_names(path) == ["rollout_timeline"]
    assert "Rollout" in page.headings and "makespan_s" in page.cells


def test_report_of_a_run_stored_without_a_mode_column_takes_it_from_the_config(tmp_path):
    res = fs.run(TINY, progress=False)
    tables = {name: frame.drop(columns=["run_id", "seed", "replication"])
              for name, frame in res.tables.items()}
    manifest = dict(res.manifest, run_id="handmade", status=store.OK)
    manifest["config"] = dict(manifest["config"], hosting={"mode": "vm"})
    run_dir = store.write_run(tmp_path, "handmade", tables, manifest)
    path = write_report(run_dir)
    assert "utilization_heatmap_vm" in figure_names(path)
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
    assert any(c.startswith(f"{row['mean']:,.4g} ± ") for c in page.cells)
    assert isinstance(stats, pd.DataFrame)
