"""The deployment files and the documentation agree with the code."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from click.testing import CliRunner

from gemini_tasks.ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gemini_tasks"
SETTINGS = (ROOT / "gemini_tasks" / "settings.py").read_text()
README = (ROOT / "README.md").read_text()


def setting_names() -> set[str]:
    names = {f"GEMINI_TASKS_{n}" for n in re.findall(r'e\.get\("([A-Z_]+)"', SETTINGS)}
    return names | {"REDIS_URL", "GOOGLE_GEMINI_BASE_URL"}


def test_every_setting_is_documented_and_every_documented_one_exists():
    names = setting_names()
    assert len(names) > 25
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"settings missing from the README: {missing}"
    documented = set(re.findall(r"GEMINI_TASKS_[A-Z_]*[A-Z]", README))
    assert documented <= names, f"README names unknown settings: {documented - names}"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_commands_and_environment_match_the_code():
    services = compose()["services"]
    assert set(services) == {"redis", "worker", "flower", "emulator", "metrics", "prometheus",
                             "grafana"}  # fmt: skip
    redis = services["redis"]
    assert "--requirepass" in redis["command"] and "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert services["worker"]["command"] == ["gemini-tasks", "worker"]
    assert services["flower"]["command"][:4] == ["celery", "-A", "gemini_tasks", "flower"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert services["emulator"]["profiles"] == ["dry-run"]
    assert "--any-key" in services["emulator"]["command"]
    for name in ("redis", "flower", "emulator"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("metrics", "prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
    assert services["metrics"]["command"][:2] == ["gemini-tasks", "metrics"]
    grafana = services["grafana"]["volumes"]
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/gemini-tasks.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    scrape = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["metrics:9808"]
    for name in ("worker", "flower"):
        environment = services[name]["environment"]
        assert environment["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert services[name]["build"]["dockerfile"] == "worker/Dockerfile"
    used = set(re.findall(r"\b(GEMINI_TASKS_[A-Z_]+|REDIS_URL|GOOGLE_GEMINI_BASE_URL)\b",
                          (ROOT / "docker-compose.yml").read_text()))  # fmt: skip
    assert used <= setting_names()


def test_the_worker_image_installs_the_built_wheel_and_runs_a_worker():
    dockerfile = (ROOT / "worker" / "Dockerfile").read_text()
    assert "COPY pyproject.toml" in dockerfile and "COPY gemini_tasks" in dockerfile
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /dist ." in dockerfile
    assert "pip install /dist/*.whl" in dockerfile
    assert 'CMD ["gemini-tasks", "worker"]' in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, flags=re.M)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    commands = [
        "worker", "emulator", "keys", "metrics", "submit", "run", "collect", "status", "jobs",
        "cancel", "pause", "resume", "retry", "priority", "budget", "forget",
    ]  # fmt: skip
    assert set(commands) == set(main.commands)
    for name in commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"{name} --help has no example"


def test_usage_errors_exit_with_2():
    assert CliRunner().invoke(main, ["collect"]).exit_code == 2
    assert CliRunner().invoke(main, ["submit", "/no/such/file.jsonl"]).exit_code == 2


def test_a_bad_setting_stops_the_command_with_its_name_and_exit_1(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')

    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "submit", str(prompts)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "GEMINI_TASKS_MAX_RETRIES": "lots"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "GEMINI_TASKS_MAX_RETRIES='lots' is not valid" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_wheel_carries_every_file_of_the_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ROOT)) for p in files if str(p.relative_to(ROOT)) not in shipped]
    assert any(p.suffix == ".lua" for p in files)
    assert not missing, f"the wheel lacks {missing}"
