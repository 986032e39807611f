"""Every fleet-sim command end to end, through a subprocess, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleet_sim import cli
from fleet_sim.results import store

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "scenarios" / "tiny.toml"
SCRIPT = Path(sys.executable).parent / "fleet-sim"
SHORT = ["--set", "run.duration_s=120"]


def fleet_sim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fleet_sim.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_run_stores_the_run_and_prints_its_summary(tmp_path):
    out = fleet_sim("run", str(TINY), "--seed", "5", "--out", str(tmp_path), *SHORT)
    assert out.returncode == 0, out.stderr
    (run_dir,) = tmp_path.iterdir()
    assert out.stdout.startswith(f"run {run_dir.name}  seed 5  container  120 s simulated")
    assert "cpu_utilization_mean" in out.stdout and "web-0.requests" in out.stdout
    assert "hosts_on_mean" in out.stdout
    assert "migrations" not in out.stdout  # it does not consolidate: no row of "–"
    assert store.read_manifest(run_dir)["seed"] == 5
    assert out.stderr == ""  # no progress bar when not on a terminal


def test_a_run_summary_lists_the_metrics_the_run_measures():
    import pandas as pd

    from fleet_sim.results.schema import TABLES

    names = [c.name for c in TABLES["summary"].columns]
    row = dict.fromkeys(names, 2.0) | {"slatah": float("nan")}
    lines = cli._summary_lines(pd.DataFrame([row]), "summary")
    listed = [line.split()[0] for line in lines]
    assert listed == [n for n in names if n != "slatah"]
    assert "migrations" in listed


def test_runs_and_sweeps_default_to_folders_of_their_own(tmp_path):
    out = fleet_sim("run", "demo", "--set", "run.duration_s=200", "--set", "run.warmup_s=0",
                    cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "results" / "demo-run").iterdir())) == 1
    out = fleet_sim("sweep", "demo", "--set", "run.duration_s=200", "--set", "run.warmup_s=0",
                    "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "results" / "demo-sweep").iterdir())) == 1


def test_a_bad_file_gives_messages_and_exit_2_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace("cores = 4", "cores = 0"))
    for command in ("run", "validate", "sweep"):
        out = fleet_sim(command, str(bad), "--set", "hosting.mode=vms")
        assert out.returncode == 2
        assert out.stderr.splitlines() == [
            f"error: {bad}: fleet.hosts[0].cores: must be > 0, got 0 (allowed: a number > 0)",
            f"error: {bad} (--set): hosting.mode: \"vms\" is not allowed "
            "(allowed: \"baremetal\", \"vm\" or \"container\")"]
        assert "Traceback" not in out.stderr


def test_validate_describes_a_good_file():
    out = fleet_sim("validate", str(TINY))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [
        f"ok: {TINY}: 2 hosts (8 cores), 2 apps (3 replicas), mode container, 300 s",
        "question: What do two small hosts do with a web app and a spiky neighbour? "
        "(the test suite's scenario)"]
    assert out.stdout.splitlines()[2].startswith("estimate: ~")


def test_list_shows_the_shipped_experiments_with_their_questions():
    out = fleet_sim("list")
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines() if line and line[0] != "("}
    assert {"demo", "noisy_neighbor", "density", "rollout"} <= names
    assert all(line.rstrip().endswith("?") for line in out.stdout.splitlines()[:len(names)])


def test_sweep_then_report(tmp_path):
    args = ["sweep", str(TINY), "--param", "hosting.mode=vm,container", "--replications", "2",
            "--workers", "1", "--out", str(tmp_path), *SHORT]
    out = fleet_sim(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        f"sweep {TINY}: 4 runs in {tmp_path}: ran 4, skipped 0 already stored, 0 failed")
    header = next(line for line in out.stdout.splitlines() if line.lstrip().startswith("unit"))
    assert header.split() == ["unit", "vm", "container"] and " ± " in out.stdout
    again = fleet_sim(*args)
    assert "ran 0, skipped 4 already stored" in again.stdout
    report = fleet_sim("report", str(tmp_path), "--text")
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(f"{tmp_path}: 4 runs, 0 failed")
    assert "response_time_p99_s" in report.stdout and "report:" not in report.stdout


def test_sweep_with_report_prints_the_answer_and_table_once_and_names_its_seeds(tmp_path):
    out = fleet_sim("sweep", str(TINY), "--param", "hosting.mode=vm,container",
                    "--replications", "2", "--workers", "1", "--out", str(tmp_path),
                    "--report", *SHORT)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.count("mean ± 95% CI half-width across replications") == 1
    assert text.count("response_time_p99_s") == 1
    assert "replication 0 = 3," in text  # tiny.toml's run.seed
    assert text.index("question: What do two small hosts do") < text.index("answer:")
    assert text.rstrip().endswith(f"report: {tmp_path / 'report' / 'report.html'}")


def test_one_replication_does_not_claim_confidence_intervals(tmp_path):
    out = fleet_sim("sweep", str(TINY), "--param", "hosting.mode=vm,container", "--workers",
                    "1", "--out", str(tmp_path), *SHORT)
    assert out.returncode == 0, out.stderr
    assert "95% CI half-width" not in out.stdout
    assert "one run per group (--replications 2 or more gives 95% CIs)" in out.stdout


def test_the_progress_bar_names_the_scenario_and_shows_writing_tables(tmp_path, capsys):
    from fleet_sim.scenarios import runner

    runner.run(TINY, set={"run.duration_s": 60}, out=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "tiny: writing tables" in err and "tiny: storing" in err
    assert "sim-s/s" in err  # simulated seconds per wall second
    assert str(next(tmp_path.iterdir()).name) not in err  # not the run hash


def test_report_of_one_run_prints_its_summary_and_writes_html(tmp_path):
    assert fleet_sim("run", str(TINY), "--out", str(tmp_path), *SHORT).returncode == 0
    out = fleet_sim("report", str(tmp_path), "--out", str(tmp_path / "html"))
    assert out.returncode == 0, out.stderr
    assert f"{tmp_path}: 1 runs, 0 failed" in out.stdout and "per workload" in out.stdout
    assert out.stdout.rstrip().endswith(f"report: {tmp_path / 'html' / 'report.html'}")
    assert (tmp_path / "html" / "report.html").is_file()


def _fail_at_run_time(monkeypatch):
    """Make every run with 3 web replicas fail inside the simulation (in this process)."""
    from fleet_sim.errors import CapacityError
    from fleet_sim.scenarios import runner

    real = runner.build

    def build(config, *args, **kwargs):
        if config.apps[0].replicas == 3:
            raise CapacityError("injected: out of something at run time")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(runner, "build", build)


def test_a_failed_run_in_a_sweep_exits_1_and_is_listed(tmp_path, monkeypatch, capsys):
    _fail_at_run_time(monkeypatch)
    code = cli.main(["sweep", str(TINY), "--param", "apps.web.replicas=2,3", "--workers",
                     "1", "--out", str(tmp_path), "-q", *SHORT])
    out = capsys.readouterr()
    assert code == 1
    assert "ran 2, skipped 0 already stored, 1 failed" in out.out
    assert "CapacityError: injected" in out.err


def test_a_failed_run_says_so_and_does_not_claim_it_was_stored(tmp_path, monkeypatch, capsys):
    _fail_at_run_time(monkeypatch)
    code = cli.main(["run", str(TINY), "--set", "apps.web.replicas=3", "--out", str(tmp_path),
                     "-q", *SHORT])
    out = capsys.readouterr()
    assert code == 1
    assert "FAILED" in out.out and "stored in" not in out.out
    assert "error: the run failed: CapacityError: injected" in out.err


def test_an_overcommitted_fleet_is_refused_by_validate_with_exit_2():
    out = fleet_sim("validate", "demo", "--set", "apps.web.replicas=100")
    assert out.returncode == 2
    assert "apps[0].replicas: the replicas do not all fit the fleet" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_impossible_in_place_rollout_is_refused_by_validate():
    out = fleet_sim("validate", "rollout", "--set", "hosting.mode=baremetal",
                    "--set", "rollouts.web.strategy_params={max_unavailable=0}")
    assert out.returncode == 2
    assert ('rollouts[0].strategy_params: impossible under hosting.mode = "baremetal"'
            in out.stderr)


def test_a_malformed_trace_is_caught_by_validate(tmp_path):
    (tmp_path / "cpu.txt").write_text("10\nlots\n")
    scenario = tmp_path / "s.toml"
    scenario.write_text(TINY.read_text() + '\n[[apps]]\nname = "vm"\n\n[[apps.workloads]]\n'
                        'kind = "replay"\ntrace = "cpu.txt"\ncores = 1\n')
    out = fleet_sim("validate", str(scenario))
    assert out.returncode == 2
    assert "apps[2].workloads[0].trace:" in out.stderr and "line 2: 'lots'" in out.stderr


def test_an_unexpected_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    from fleet_sim.scenarios import runner

    def broken(*args, **kwargs):
        raise ValueError("deep inside")

    monkeypatch.setattr(runner, "prepare", broken)
    assert cli.main(["validate", str(TINY)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error in fleet-sim validate: ValueError: deep inside")
    assert "Traceback" not in err


def test_replay_delegates_to_the_trace_replay(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("time,host,workload,core_seconds,max_cores\n0,h1,a,8,4\n0,h1,a,1,1\n")
    out = fleet_sim("replay", str(trace), "--cores", "4", "--out", str(tmp_path / "o.csv"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o.csv").read_text().startswith("job_id,workload,arrival,start,finish")


@pytest.mark.parametrize("command", ["run", "sweep", "report", "validate", "list", None])
def test_help_has_examples(command):
    out = fleet_sim(*([command] if command else []), "--help")
    assert out.returncode == 0
    assert "example" in out.stdout


def test_validate_prints_an_estimate_of_the_run():
    out = fleet_sim("validate", str(TINY))
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[-1]
    assert line.startswith("estimate: ~") and "simulated events" in line
    assert "wall on this machine" in line and "of memory" in line


def test_a_run_with_many_replicas_prints_each_app_once_with_its_replicas_summed():
    import pandas as pd

    n = cli.MAX_WORKLOAD_ROWS + 5
    ws = pd.DataFrame({"workload": [f"web-{i}.requests" for i in range(n)] + ["db.query"],
                       "demand_core_s": [10.0] * n + [4.0],
                       "allocated_core_s": [8.0] * n + [4.0],
                       "throttled_core_s": [2.0] * n + [0.0],
                       "contention_core_s": [0.0] * (n + 1),
                       "satisfied_fraction": [0.8] * n + [1.0],
                       "jobs_finished": [100] * n + [7],
                       "response_time_p99_s": [0.1 + i / 1000 for i in range(n)] + [0.5]})
    lines = cli._workload_lines(ws)
    assert lines[1].startswith("per app workload")
    rows = {line.split()[0]: line.split() for line in lines[2].splitlines()[1:]}
    assert set(rows) == {"web.requests", "db.query"}
    web = rows["web.requests"]
    assert web[1] == str(n) and web[2] == f"{8 * n:,}" and web[5] == "80.0" and web[7] == "2,500"
    assert float(web[-1]) == pytest.approx(0.1 + (n - 1) / 1000)


def test_a_services_own_row_is_not_counted_as_one_of_its_replicas():
    """A service's requests are one row of their own (``web.requests``, all replicas
    together) beside one row per replica: the app still has ``n`` replicas."""
    import pandas as pd

    n = cli.MAX_WORKLOAD_ROWS + 5
    ws = pd.DataFrame({"workload": [f"web-{i}.requests" for i in range(n)]
                       + ["web.requests", "db.query"],
                       "demand_core_s": [1.0] * n + [0.0, 4.0],
                       "allocated_core_s": [1.0] * n + [0.0, 4.0],
                       "throttled_core_s": [0.0] * (n + 2),
                       "contention_core_s": [0.0] * (n + 2),
                       "satisfied_fraction": [1.0] * n + [float("nan"), 1.0],
                       "jobs_finished": [0] * n + [900, 7],
                       "response_time_p99_s": [float("nan")] * n + [0.25, 0.5]})
    rows = {line.split()[0]: line.split()
            for line in cli._workload_lines(ws)[2].splitlines()[1:]}
    assert rows["web.requests"][1] == str(n) and rows["db.query"][1] == "1"
    assert float(rows["web.requests"][-1]) == 0.25  # the service's p99
