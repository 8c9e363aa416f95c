"""The Prometheus configuration and rules, checked and unit-tested by promtool (Debian's
`prometheus` package, which `loopline infra up` installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from loopline_infra import InfraError, Paths, Ports, Prometheus, render_prometheus_config
from monitoring_queries import PROJECT, RULES, rule_groups

ALERT_TESTS = PROJECT / "infra" / "prometheus" / "tests" / "alerts_test.yml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool comes with Debian's prometheus package (`make infra-up` installs it)"
    return subprocess.run(
        [found, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid() -> None:
    files = sorted(RULES.glob("*.yml"))
    done = promtool("check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    count = sum(len(g["rules"]) for groups in rule_groups().values() for g in groups)
    assert f"SUCCESS: {count} rules found" in done.stdout


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    done = promtool("test", "rules", ALERT_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {
        rule["alert"]
        for groups in rule_groups().values()
        for group in groups
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts == tested


@pytest.mark.parametrize("interval", [1, 5])
def test_the_rendered_configuration_is_valid(tmp_path: Path, interval: int) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus_config(
            PROJECT / "infra" / "prometheus" / "prometheus.yml",
            targets_dir=tmp_path / "targets",
            rules_dir=RULES,
            listen_address="127.0.0.1:19999",
            scrape_interval_s=interval,
        )
    )
    done = promtool("check", "config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    # promtool checks the rule files the configuration names: they were found.
    assert f"SUCCESS: {len(list(RULES.glob('*.yml')))} rule files found" in done.stdout
    rendered = yaml.safe_load(config.read_text())
    assert rendered["global"]["scrape_interval"] == f"{interval}s"
    (job,) = [j for j in rendered["scrape_configs"] if j["job_name"] == "loopline"]
    assert job["file_sd_configs"][0]["files"] == [f"{tmp_path / 'targets'}/*.json"]


def test_the_compose_configuration_is_valid() -> None:
    done = promtool("check", "config", PROJECT / "infra" / "prometheus" / "compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_rule_stops_infra_up_before_prometheus_starts(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT / "infra" / "prometheus", project / "infra" / "prometheus")
    broken = project / "infra" / "prometheus" / "rules" / "loopline.yml"
    broken.write_text(
        broken.read_text().replace("sum by (kind) (rate(", "sum by (kind) (rate((", 1)
    )
    paths = Paths(project=project, home=tmp_path / "home", cache=tmp_path / "cache")
    component = Prometheus(paths, Ports(kafka=1, kafka_controller=2, redis=3, postgres=4))
    with pytest.raises(InfraError, match="promtool check config failed"):
        component.prepare(say=lambda _: None)
    assert component.pid() is None


def test_a_scrape_interval_below_a_second_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="at least 1 s"):
        render_prometheus_config(
            PROJECT / "infra" / "prometheus" / "prometheus.yml",
            targets_dir=tmp_path,
            rules_dir=RULES,
            listen_address="127.0.0.1:19999",
            scrape_interval_s=0,
        )
