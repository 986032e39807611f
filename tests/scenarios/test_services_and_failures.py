"""Scenarios with services behind a load balancer and hosts that fail
(docs/model.md §3.4, §6.1): hand cases, rates, conservation of requests, bad input."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_sim.errors import ConfigError, ConfigErrors
from fleet_sim.model.distributions import Exponential
from fleet_sim.model.jobs import FAILED, FINISHED, UNFINISHED, PoissonJobs
from fleet_sim.rng import Streams
from fleet_sim.scenarios import config as cfg
from fleet_sim.scenarios.build import build

FLEET = """
[[fleet.hosts]]
type = "std"
count = {hosts}
cores = 4
ram_mib = 8192
"""
APP = """
[[apps]]
name = "web"
replicas = {replicas}
threads = 4
cpu_request_cores = 4
ram_mib = 1024
"""
SERVICE = """
[[apps.workloads]]
kind = "jobs"
name = "req"
scope = "{scope}"
rate_per_s = {rate}
work_core_s = {{ dist = "exponential", mean = 0.05 }}
"""
HOSTING = """
[hosting]
mode = "{mode}"
[hosting.vm]
boot_s = 30
guest_os_cores = 0
[hosting.container]
start_s = 2
[hosting.baremetal]
install_s = 50
install_step_failure_p = 0
"""
#: images whose pull takes a round number of seconds (registry and NICs: 1250 MB/s)
IMAGES = """
[images]
vm_image_mb = 2500.0
base_layers_mb = [1250.0]
app_layer_mb = 1250.0
unpack_mb_s_per_core = 250.0
"""


def scenario(*, mode="container", hosts=2, replicas=1, scope="service", rate=4.0,
             duration=300.0, extra="", seed=0) -> str:
    """A scenario: ``replicas`` of a 4-core app on 4-core hosts (one replica per host)."""
    return (f"[run]\nduration_s = {duration}\nseed = {seed}\n"
            'record = ["hosts", "workloads", "jobs", "events"]\n'
            + FLEET.format(hosts=hosts) + HOSTING.format(mode=mode)
            + APP.format(replicas=replicas) + SERVICE.format(scope=scope, rate=rate) + extra)


def run(text: str, tmp_path) -> dict[str, pd.DataFrame]:
    path = tmp_path / "s.toml"
    path.write_text(text)
    sim = build(cfg.load_config(path))
    sim.start()
    sim.run()
    sim.finalize()
    return sim.tables()  # type: ignore[return-value]


def failure(host: str, at_s: float, repair_s: float | None = None) -> str:
    repair = "" if repair_s is None else f"repair_s = {repair_s}\n"
    return f'\n[[failures.scheduled]]\nhost = "{host}"\nat_s = {at_s}\n{repair}'


def events(tables, kind: str, entity: str) -> list[tuple[float, str]]:
    e = tables["events"]
    rows = e[(e["kind"] == kind) & (e["entity"] == entity)]
    return list(zip(rows["t"], rows["host"], strict=True))


# ---------------------------------------------------------------- hand cases
@pytest.mark.parametrize(("mode", "entity", "kind", "provisioning_s"), [
    # a new VM copies its 2500 MB image over the 1250 MB/s registry link (2 s) and boots
    ("vm", "web-vm", "boot", 2.0 + 30.0),
    # the container pulls its two 1250 MB layers together (2 s) while they unpack one
    # after the other at 250 MB/s (5 s each), then starts (2 s)
    ("container", "web", "start", 10.0 + 2.0),
    ("baremetal", "web", "start", 50.0),    # the app is reinstalled
])
def test_a_failed_hosts_replica_runs_elsewhere_after_its_modes_provisioning(
        tmp_path, mode, entity, kind, provisioning_s):
    """std000 fails at 100 s: its one replica is up on std001 at 100 s + the time its
    mode provisions (image copy + boot; pull + start; install), and serves requests
    from then on."""
    t = run(scenario(mode=mode, extra=IMAGES + failure("std000", 100.0)), tmp_path)
    assert events(t, kind, entity) == [(provisioning_s, "std000"),
                                       (100.0 + provisioning_s, "std001")]
    assert events(t, "rescheduled", "web") == [(100.0, "std001")]
    jobs = t["jobs"]
    down = (jobs["arrival"] > 100.0) & (jobs["arrival"] < 100.0 + provisioning_s)
    assert (jobs.loc[down, "outcome"] == FAILED).all() and down.any()
    later = jobs[jobs["arrival"] > 100.0 + provisioning_s]
    assert set(later["host"]) == {"std001"} and set(later["replica"]) == {"web"}
    assert (later["outcome"] != FAILED).all()


def test_a_shared_os_app_without_room_waits_for_the_repair(tmp_path):
    """Both hosts are full: web-0 waits for std000's repair (60 s later), then is
    reinstalled there (50 s)."""
    t = run(scenario(mode="baremetal", replicas=2, extra=failure("std000", 100.0, 60.0)),
            tmp_path)
    assert events(t, "unplaced", "web-0") == [(100.0, "")]
    assert events(t, "host_repaired", "std000") == [(160.0, "std000")]
    assert events(t, "rescheduled", "web-0") == [(160.0, "std000")]
    assert events(t, "start", "web-0") == [(50.0, "std000"), (210.0, "std000")]


def test_in_flight_requests_fail_with_their_host_or_are_retried(tmp_path):
    """Requests of 20 core-s on 4 cores are in flight at any time; those on std000
    when it fails at 100 s fail, or with retry = true start again on std001."""
    text = scenario(replicas=2, hosts=3, rate=0.5, extra=failure("std000", 100.0)).replace(
        'mean = 0.05', 'mean = 20.0')
    lost = run(text, tmp_path)["jobs"]
    on0 = lost[(lost["host"] == "std000") & (lost["outcome"] == FAILED)]
    assert len(on0) > 0 and (on0["arrival"] < 100.0).all()
    retried = run(text.replace('[[apps.workloads]]', '[apps.service]\nretry = true\n'
                               '[[apps.workloads]]'), tmp_path)["jobs"]
    again = retried.set_index("job_id").loc[on0["job_id"]]
    assert (again["host"] != "std000").all() and (again["start"] >= 100.0).all()
    assert (again["outcome"] != FAILED).all()


def test_random_failures_repeat_after_each_repair(tmp_path):
    """mtbf_s = 100, mttr_s = 10 (fixed): every host fails at 100 s and 210 s and is
    repaired at 110 s and 220 s."""
    extra = "\n[failures.host_types.std]\nmtbf_s = 100\nmttr_s = 10\n"
    t = run(scenario(hosts=2, duration=300.0, extra=extra), tmp_path)
    for host in ("std000", "std001"):
        assert [x for x, _ in events(t, "host_failure", host)] == [100.0, 210.0]
        assert [x for x, _ in events(t, "host_repaired", host)] == [110.0, 220.0]


# ---------------------------------------------------------------- rates
def test_with_one_of_four_replicas_down_each_other_gets_a_third(tmp_path):
    """4 replicas behind random routing, λ = 40/s; std003 fails at 10 s and its replica
    has nowhere to go: over 2000 s each of the other three receives λ/3 (Poisson
    counts, within 4 standard deviations)."""
    lam, t0, t1 = 40.0, 10.0, 2010.0
    jobs = run(scenario(hosts=4, replicas=4, rate=lam, duration=t1,
                        extra=failure("std003", t0)), tmp_path)["jobs"]
    window = jobs[(jobs["arrival"] > t0) & (jobs["arrival"] < t1)]
    counts = window.groupby("replica").size()
    mean = lam / 3 * (t1 - t0)
    assert set(counts.index) == {"web-0", "web-1", "web-2"}
    for n in counts:
        assert abs(n - mean) < 4 * math.sqrt(mean), (n, mean)


def _arrivals(seed: int, name: str, rate: float, until: float) -> int:
    """Arrivals of stream ``name`` before ``until``, drawn independently of the run."""
    s = Streams(seed)
    feed = PoissonJobs(rate, Exponential(0.05), 1.0, s.get(f"workload.{name}.arrivals"),
                       s.get(f"workload.{name}.sizes"), t_end=until)
    return sum(1 for _ in feed.arrivals())


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["baremetal", "vm", "container"]),
       scope=st.sampled_from(["replica", "service"]),
       routing=st.sampled_from(["random", "round-robin", "least-outstanding", "power-of-two"]),
       retry=st.booleans(), seed=st.integers(0, 50),
       fail_at=st.lists(st.tuples(st.integers(0, 2), st.floats(1.0, 150.0),
                                  st.one_of(st.none(), st.floats(1.0, 60.0))), max_size=3))
def test_requests_are_conserved_under_failures(tmp_path, mode, scope, routing, retry, seed,
                                               fail_at):
    """Every request that arrived ends as one row (a service's: counted from its stream
    drawn apart; the arrival times do not depend on the work's mean): finished,
    failed or unfinished, with finish set exactly for the finished ones. Random
    failures run too."""
    extra = "".join(failure(f"std00{h}", t, r) for h, t, r in fail_at)
    extra += ('\n[failures.host_types.std]\nmtbf_s = { dist = "exponential", mean = 150 }\n'
              "mttr_s = 20\n")
    text = scenario(mode=mode, hosts=3, replicas=2, scope=scope, rate=3.0, duration=200.0,
                    seed=seed, extra=extra)
    text = text.replace("[[apps.workloads]]", f'[apps.service]\nrouting = "{routing}"\n'
                        f"retry = {str(retry).lower()}\n[[apps.workloads]]").replace(
                        "mean = 0.05", "mean = 0.5")
    jobs = run(text, tmp_path)["jobs"]
    if scope == "service":  # one stream: every arrival is a row, down or not
        assert len(jobs) == _arrivals(seed, "web.req", 3.0, 200.0)
    for _, ids in jobs.groupby("workload")["job_id"]:  # numbered on across restarts
        assert sorted(ids) == list(range(len(ids)))
    assert set(jobs["outcome"]) <= {FINISHED, FAILED, UNFINISHED}
    assert (jobs["finish"].notna() == (jobs["outcome"] == FINISHED)).all()


ROLLOUT = """
[[rollouts]]
app = "web"
at_s = 100
strategy = "rolling"
strategy_params = { max_surge = 1, max_unavailable = 0 }
"""


@pytest.mark.parametrize("mode", ["container", "vm", "baremetal"])
@pytest.mark.parametrize("routing", ["random", "least-outstanding"])
def test_a_service_keeps_serving_through_a_rollout_and_a_host_failure(tmp_path, mode, routing):
    """web's 2 replicas roll out to v2 at 100 s (one at a time: a surge of one, or in
    place on a shared OS) while std001 fails at 130 s: every request is one row
    (conserved), and once the rollout is done the v2 instances take the service's
    requests."""
    rollout = ROLLOUT if mode != "baremetal" else ROLLOUT.replace(
        "max_surge = 1, max_unavailable = 0", "max_surge = 0, max_unavailable = 1")
    text = scenario(mode=mode, hosts=4, replicas=2, rate=20.0, duration=400.0,
                    extra=failure("std001", 130.0, 50.0) + rollout)
    text = text.replace("[[apps.workloads]]", f'[apps.service]\nrouting = "{routing}"\n'
                        "[[apps.workloads]]")
    t = run(text, tmp_path)
    jobs = t["jobs"]
    assert len(jobs) == _arrivals(0, "web.req", 20.0, 400.0)
    assert set(jobs["outcome"]) <= {FINISHED, FAILED, UNFINISHED}
    ended = t["events"].query("kind == 'rollout_end'")["t"]
    assert len(ended) == 1
    after = jobs[jobs["arrival"] > float(ended.iloc[0])]
    assert set(after["replica"]) == {"web-0@v2", "web-1@v2"}
    assert (after["outcome"] != FAILED).mean() > 0.99


# ---------------------------------------------------------------- bad input
BAD = {
    "weights": ("\n[apps.service]\nweights = [1, 2, 3]\n",
                "apps[0].service.weights: 3 weights for 2 replicas"),
    "routing": ('\n[apps.service]\nrouting = "sticky"\n', "apps[0].service.routing"),
    "weights without random": ('\n[apps.service]\nrouting = "round-robin"\nweights = [1, 2]\n',
                               'apps[0].service.weights: weights do nothing with routing'),
    "host type": ("\n[failures.host_types.big]\nmtbf_s = 10\nmttr_s = 1\n",
                  'failures.host_types.big: no host type "big" in the fleet'),
    "host": (failure("std009", 5.0), 'failures.scheduled[0].host: no host "std009"'),
    "mtbf": ("\n[failures.host_types.std]\nmtbf_s = 0\nmttr_s = 1\n",
             "failures.host_types.std.mtbf_s: a host would fail again and again"),
    "compromise": ('\n[[failures.compromises]]\napp = "db"\nat_s = 1\n',
                   'failures.compromises[0].app: no replica "db"'),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_service_and_failure_keys_name_file_key_and_allowed(tmp_path, case):
    extra, message = BAD[case]
    text = scenario(replicas=2)
    if extra.startswith("\n[apps.service]"):
        text = text.replace("\n[[apps.workloads]]", extra + "[[apps.workloads]]", 1)
    else:
        text += extra
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, ConfigErrors)) as err:
        cfg.load_config(path)
    assert f"{path}: {message}" in str(err.value)
    assert "allowed" in str(err.value)


def test_a_compromise_from_a_scenario_records_its_blast_radius(tmp_path):
    extra = '\n[[failures.compromises]]\napp = "web-0"\nat_s = 20\n'
    t = run(scenario(mode="container", hosts=1, replicas=1, extra=extra).replace(
        "replicas = 1\nthreads = 4\ncpu_request_cores = 4",
        "replicas = 2\nthreads = 4\ncpu_request_cores = 2"), tmp_path)
    assert events(t, "compromised", "web-0") == [(20.0, "std000")]
    exposed = t["events"][t["events"]["kind"] == "exposed"]
    assert list(exposed["entity"]) == ["web-1"] and "p=0.1" in exposed["detail"].iloc[0]


def test_a_rollout_counts_an_instance_lost_to_a_host_failure_as_not_serving(tmp_path):
    """Bare metal, in place, one at a time from 100 s (install 50 s): web-0 is replaced
    first (v2 healthy at 160 s); std001 fails at 130 s with web-1 (v1) on it, so from
    130 s until the rollout replaces web-1 at 160 s nothing serves."""
    rollout = ROLLOUT.replace("max_surge = 1, max_unavailable = 0",
                              "max_surge = 0, max_unavailable = 1")
    t = run(scenario(mode="baremetal", hosts=4, replicas=2, rate=20.0, duration=400.0,
                     extra=failure("std001", 130.0, 50.0) + rollout), tmp_path)
    capacity = t["capacity"].set_index("t")
    assert capacity.loc[130.0, ["old_healthy", "new_healthy"]].tolist() == [0, 0]
    assert capacity.loc[160.0, ["old_healthy", "new_healthy"]].tolist() == [0, 1]
    assert t["rollout_summary"]["min_serving_fraction"].iloc[0] == 0.0
