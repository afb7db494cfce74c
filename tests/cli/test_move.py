"""`mirror-vip move`: the function's move under the operator's credentials, after asking."""

from __future__ import annotations

import io
import json

import pytest

from emulators.compute import ComputeEmulator
from support import compute_view, mirrors

from .conftest import Cli

pytestmark = pytest.mark.integration


def test_move_with_yes_moves_everything_and_records_the_mark(
    cli: Cli, compute: ComputeEmulator
) -> None:
    run = cli("move", "--to", "isc-backup-001", "--yes", "--json")

    assert run.code == 0
    compute_view.assert_vip_on(compute, mirrors.backup(), mirrors.primary())
    labels = compute.instance(mirrors.PROJECT, mirrors.BACKUP_ZONE, "isc-backup-001")["labels"]
    assert labels["mirror-vip-irismirror"].endswith("-isc-backup-001")
    outcome = run.mirror["outcome"]
    assert outcome["outcome"] == "moved"
    assert outcome["event_type"] == "manual_move"
    assert outcome["from_instance"] == f"{mirrors.PROJECT}/us-west1-a/isc-primary-001"
    assert "attach_public_ip:isc-backup-001" in outcome["actions"]


def test_move_logs_the_functions_outcome_line_on_stderr(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    from vipmover.cli import main  # noqa: PLC0415

    capsys.readouterr()
    main(["move", "--to", "isc-backup-001", "--yes", "--config", str(cli.config)])

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [(r["component"], r["outcome"]) for r in lines] == [("mirror-vip", "moved")]


def test_move_without_yes_asks_and_a_no_writes_nothing(
    cli: Cli, compute: ComputeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    run = cli("move", "--to", "isc-backup-001")

    assert run.code == 1
    assert compute.mutations() == []
    compute_view.assert_vip_on(compute, mirrors.primary(), mirrors.backup())


def test_move_without_yes_moves_on_a_yes(
    cli: Cli, compute: ComputeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))

    assert cli("move", "--to", "isc-backup-001").code == 0
    compute_view.assert_vip_on(compute, mirrors.backup(), mirrors.primary())


def test_a_failed_move_exits_1_with_the_outcome(cli: Cli, compute: ComputeEmulator) -> None:
    compute.fail_next("compute.instances.updateNetworkInterface", count=1, code=400)

    run = cli("move", "--to", "isc-backup-001", "--yes", "--json")

    assert run.code == 1
    assert run.mirror["outcome"]["outcome"] == "failed"
    assert run.mirror["outcome"]["error_reason"] == "RequestRefused"
