"""The services' env file: written once by `stvg services up`, read by every entry point."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from flows.services.layout import Ports, load_layout, ports_from_env, save_state
from stvg.env import configure_environment, format_env_file, read_env_file


def test_env_file_round_trips_values_a_shell_would_split(tmp_path: Path) -> None:
    values = {"A_URL": "http://127.0.0.1:5000", "SPACED": "two words", "QUOTE": "it's", "EMPTY": ""}
    path = tmp_path / "env"
    path.write_text(format_env_file(values, "written by a test\nsecond line"), encoding="utf-8")
    assert read_env_file(path) == values
    assert path.read_text().startswith("# written by a test\n# second line\nexport A_URL=")


def test_a_malformed_env_file_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("export OK=1\nthis is not an assignment\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"env:2: expected KEY=VALUE"):
        read_env_file(path)


def _unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset ``names`` so that whatever the test sets is undone afterwards (delenv of an unset variable is not)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _checkout_with_services(tmp_path: Path, values: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    (root / ".services").mkdir(parents=True)
    (root / "params.yaml").write_text("{}\n")
    (root / ".services" / "env").write_text(format_env_file(values, "test"), encoding="utf-8")
    return root


def test_configure_environment_loads_the_services_env_without_overriding_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout_with_services(
        tmp_path, {"STVG_TEST_SERVER": "http://127.0.0.1:5000", "STVG_TEST_MINE": "theirs"}
    )
    _unset(monkeypatch, "STVG_SERVICES_ENV", "STVG_TEST_SERVER")
    monkeypatch.setenv("STVG_TEST_MINE", "mine")
    configure_environment(root)
    assert os.environ["STVG_TEST_SERVER"] == "http://127.0.0.1:5000"
    assert os.environ["STVG_TEST_MINE"] == "mine"  # what the user set wins


def test_services_env_can_be_named_or_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = _checkout_with_services(tmp_path, {"STVG_TEST_SERVER": "from-checkout"})
    other = tmp_path / "shared.env"
    other.write_text(format_env_file({"STVG_TEST_SERVER": "from-named-file"}, "test"), encoding="utf-8")
    _unset(monkeypatch, "STVG_TEST_SERVER")

    monkeypatch.setenv("STVG_SERVICES_ENV", "none")
    configure_environment(root)
    assert "STVG_TEST_SERVER" not in os.environ

    monkeypatch.setenv("STVG_SERVICES_ENV", str(other))
    configure_environment(root)
    assert os.environ["STVG_TEST_SERVER"] == "from-named-file"

    monkeypatch.delenv("STVG_TEST_SERVER")
    monkeypatch.setenv("STVG_SERVICES_ENV", str(tmp_path / "missing.env"))
    with caplog.at_level(logging.WARNING):
        configure_environment(root)
    assert "STVG_TEST_SERVER" not in os.environ  # a wrong name loads nothing, and says so
    assert "missing.env: no such file" in caplog.text


def test_ports_are_chosen_by_env_before_the_first_up_and_kept_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ports_from_env("mlflow=5001, prefect=4201") == Ports(mlflow=5001, prefect=4201)
    with pytest.raises(ValueError, match="bad entry 'mlfow=5001'.*NAME one of"):
        ports_from_env("mlfow=5001")
    monkeypatch.setenv("STVG_SERVICES_PORTS", "mlflow=5002")
    layout = load_layout(tmp_path / ".services")
    assert layout.ports.mlflow == 5002 and layout.url("mlflow") == "http://127.0.0.1:5002"
    save_state(layout)
    monkeypatch.setenv("STVG_SERVICES_PORTS", "mlflow=5003")
    assert load_layout(tmp_path / ".services").ports.mlflow == 5002  # running services keep their ports
