"""Unit tests of the configuration: defaults, and one clear error per bad field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from support import mirrors
from vipmover.config import load_config, parse_config
from vipmover.errors import ConfigError

pytestmark = pytest.mark.unit


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The default config with one field replaced (`None` deletes it); path like `a.b.0.c`."""
    doc = copy.deepcopy(mirrors.config())
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return doc


M = f"mirrors.{mirrors.MIRROR}"


def test_documented_example_parses_with_defaults() -> None:
    raw = with_change(f"{M}.network_interface", None)
    raw = {
        "mirrors": {
            mirrors.MIRROR: {
                k: v for k, v in raw["mirrors"][mirrors.MIRROR].items() if k != "project"
            }
        }
    }
    del raw["mirrors"][mirrors.MIRROR]["public_ip"]["access_config_name"]
    config = parse_config(raw, default_project=lambda: "own-project-1")
    mirror = config.mirrors[mirrors.MIRROR]
    assert mirror.project == "own-project-1"
    assert mirror.network_interface == "nic0"
    assert mirror.vip == mirrors.VIP
    assert mirror.public_ip is not None
    assert mirror.public_ip.access_config_name == mirrors.STATIC_NAME
    assert [m.name for m in mirror.members] == ["isc-primary-001", "isc-backup-001"]
    assert all(m.project == "own-project-1" for m in mirror.members)


def test_bare_vip_address_means_slash_32() -> None:
    config = parse_config(with_change(f"{M}.private_vip", "10.0.0.250"))
    assert config.mirrors[mirrors.MIRROR].vip == "10.0.0.250/32"


def test_public_ip_region_defaults_to_first_members_region() -> None:
    config = parse_config(with_change(f"{M}.public_ip.region", None))
    public = config.mirrors[mirrors.MIRROR].public_ip
    assert public is not None
    assert public.region == "us-west1"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("mirrors", {}, "mirrors: at least one mirror"),
        (f"{M}.private_vip", None, f"{M}.private_vip: required"),
        (f"{M}.private_vip", "10.0.0.250/33", f"{M}.private_vip: '10.0.0.250/33' is not"),
        (f"{M}.private_vip", "10.0.0.1/24", f"{M}.private_vip: '10.0.0.1/24' is not"),
        (f"{M}.private_vip", "fd00::1/128", f"{M}.private_vip: 'fd00::1/128' is not IPv4"),
        (f"{M}.private_vip", "8.8.8.8/32", f"{M}.private_vip: '8.8.8.8/32' is not a private"),
        (f"{M}.private_vip", 42, f"{M}.private_vip: expected a non-empty string"),
        (f"{M}.members", [], f"{M}.members: expected a non-empty list"),
        (f"{M}.members.1.zone", "us-west1", f"{M}.members[1].zone: 'us-west1' is not a zone"),
        (f"{M}.members.0.instance", "Bad_Name", f"{M}.members[0].instance: 'Bad_Name' is not"),
        (
            f"{M}.members.1",
            {"instance": "isc-primary-001", "zone": "us-west1-a"},
            f"{M}.members[1]: isc-primary-001 in us-west1-a is listed twice",
        ),
        (f"{M}.members.0.extra", 1, f"{M}.members[0]: unknown key(s) 'extra'"),
        (f"{M}.privte_vip", "10.0.0.250/32", f"{M}: unknown key(s) 'privte_vip'"),
        (f"{M}.network_interface", "eth0", f"{M}.network_interface: 'eth0' is not"),
        (f"{M}.project", "X", f"{M}.project: 'X' is not a project id"),
        (f"{M}.public_ip.address_name", None, f"{M}.public_ip.address_name: required"),
        (f"{M}.public_ip.region", "west", f"{M}.public_ip.region: 'west' is not a region"),
        (f"{M}.public_ip", "isc-mirror", f"{M}.public_ip: expected an object"),
        ("operation_timeout_seconds", 0, "operation_timeout_seconds: expected 1..480"),
        ("operation_timeout_seconds", True, "operation_timeout_seconds: expected 1..480"),
        # 481 s + 60 s to log would outlive the function's 540 s: the move would log nothing.
        ("operation_timeout_seconds", 481, "operation_timeout_seconds: expected 1..480"),
        (
            f"{M}.public_ip.restore_ephemeral",
            "no",
            f"{M}.public_ip.restore_ephemeral: expected true or false",
        ),
        (
            f"{M}.members.1",
            {"instance": "isc-primary-001", "zone": "us-west1-b"},
            f"{M}.members[1].instance: 'isc-primary-001' and 'isc-primary-001' (us-west1-a) share",
        ),
        # Issue 14: whoever answers for the certs URL can sign tokens the function accepts.
        (
            "identity.certs_url",
            "http://certs.example.com/x",
            "identity.certs_url: 'http://certs.example.com/x' must be https",
        ),
        (
            "identity.max_clock_skew_seconds",
            3600,
            "identity.max_clock_skew_seconds: expected 0..300",
        ),
        (f"{M}.corroborate", {"timeout_seconds": 2}, f"{M}.corroborate.url: required"),
        (
            f"{M}.corroborate",
            {"url": "http://{host}:52773/x"},
            f"{M}.corroborate.url: unknown placeholder(s) host",
        ),
        (
            f"{M}.corroborate",
            {"url": "ftp://{ip}/x"},
            f"{M}.corroborate.url: 'ftp://{{ip}}/x' is not",
        ),
        (
            f"{M}.corroborate",
            {"url": "http://{ip}/x", "timeout_seconds": 60},
            f"{M}.corroborate.timeout_seconds: expected a number in 0.1..10",
        ),
        (
            f"{M}.takeover_limit",
            {"moves": 8},
            f"{M}.takeover_limit.moves: expected an integer in 0..7",
        ),
        (f"{M}.takeover_limit", {"minutes": 0}, f"{M}.takeover_limit.minutes: expected a number"),
    ],
)
def test_bad_field_is_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_change(path, value))
    assert str(caught.value).startswith(message)


def test_missing_project_without_a_default_is_an_error() -> None:
    raw = with_change(f"{M}.project", None)
    with pytest.raises(ConfigError, match=rf"^{M}\.project: required"):
        parse_config(raw)


def test_two_mirrors_may_not_share_a_vip() -> None:
    raw = mirrors.config(
        mirrors.mirror_config(), mirrors.mirror_config(name="OTHER", vip="10.0.0.250")
    )
    with pytest.raises(
        ConfigError, match=r"^mirrors\.OTHER\.private_vip: overlaps the VIP of mirror"
    ):
        parse_config(raw)


def test_mirror_names_match_without_case_and_may_not_collide() -> None:
    """IRIS upper-cases mirror names: `irismirror` in the config is IRIS's `IRISMIRROR`."""
    config = parse_config(mirrors.config(mirrors.mirror_config(name="IrisMirror")))
    found = config.mirror("IRISMIRROR")
    assert found is not None
    assert found.name == "IrisMirror"
    assert config.mirror("OTHER") is None
    raw = mirrors.config(
        mirrors.mirror_config(), mirrors.mirror_config(name="irismirror", vip="10.0.0.251")
    )
    collision = r"^mirrors\.irismirror: differs from mirror 'IRISMIRROR' only in case"
    with pytest.raises(ConfigError, match=collision):
        parse_config(raw)


def test_mirrors_whose_label_keys_collide_are_refused() -> None:
    """`IRIS.MIRROR` and `IRIS-MIRROR` both map to label `mirror-vip-iris-mirror`: each would
    read the other's high-water mark as its own."""
    raw = mirrors.config(
        mirrors.mirror_config(name="IRIS.MIRROR"),
        mirrors.mirror_config(name="IRIS-MIRROR", vip="10.0.0.251"),
    )
    with pytest.raises(
        ConfigError, match=r"^mirrors\.IRIS-MIRROR: its instance label 'mirror-vip-iris-mirror'"
    ):
        parse_config(raw)


@pytest.mark.parametrize(
    "identity", [None, {}, {"audience": "a"}], ids=["null", "empty", "partial"]
)
def test_identity_is_required_by_default(identity: Any) -> None:
    raw = mirrors.config() | {"identity": identity}
    assert parse_config(raw).identity.required is True
    del raw["identity"]
    assert parse_config(raw).identity.required is True


@pytest.mark.parametrize(
    "url",
    [
        "https://certs.example.com/x",
        "http://127.0.0.1:9/x",
        "http://[::1]/x",
        "http://localhost:1/x",
    ],
)
def test_certs_url_is_https_or_loopback_http(url: str) -> None:
    raw = mirrors.config() | {"identity": {"certs_url": url}}
    assert parse_config(raw).identity.certs_url == url


def test_safeguards_defaults() -> None:
    """Takeover limit 3 in 10 min by default; corroboration only when configured."""
    raw = with_change(f"{M}.takeover_limit", None)
    mirror = parse_config(raw).mirrors[mirrors.MIRROR]
    assert (mirror.takeover_limit.moves, mirror.takeover_limit.minutes) == (3, 10)
    assert mirror.corroborate is None
    raw = with_change(f"{M}.corroborate", {"url": "http://{ip}:52773/csp/user/mirror_status.cxw"})
    corroborate = parse_config(raw).mirrors[mirrors.MIRROR].corroborate
    assert corroborate is not None
    assert corroborate.timeout_s == 2.0
    assert (
        corroborate.url_for("10.0.0.9", "vm", "z")
        == "http://10.0.0.9:52773/csp/user/mirror_status.cxw"
    )


def test_not_an_object_at_the_top() -> None:
    with pytest.raises(ConfigError, match=r"^config: expected an object"):
        parse_config(["mirrors"])


def test_load_from_env_json_text() -> None:
    config = load_config({"MIRROR_CONFIG": json.dumps(mirrors.config())})
    assert list(config.mirrors) == [mirrors.MIRROR]


def test_load_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "mirrors.yaml"
    path.write_text(
        "mirrors:\n"
        "  IRISMIRROR:\n"
        "    project: iris-prod-1\n"
        "    private_vip: 10.0.0.250/32\n"
        "    members:\n"
        "      - {instance: isc-primary-001, zone: us-west1-a}\n"
        "      - {instance: isc-backup-001, zone: us-west1-b}\n",
        encoding="utf-8",
    )
    config = load_config({"MIRROR_CONFIG_FILE": str(path)})
    assert config.mirrors["IRISMIRROR"].public_ip is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "MIRROR_CONFIG or MIRROR_CONFIG_FILE must be set"),
        ({"MIRROR_CONFIG_FILE": "/nonexistent/mirrors.yaml"}, "MIRROR_CONFIG_FILE: cannot read"),
        ({"MIRROR_CONFIG": "{not json"}, "MIRROR_CONFIG: neither valid JSON nor YAML"),
        ({"MIRROR_CONFIG": "just text"}, "config: expected an object"),
    ],
)
def test_load_errors_are_clear(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config(environ)


def test_bad_json_file_says_json(tmp_path: Path) -> None:
    path = tmp_path / "mirrors.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mirrors\.json: not valid JSON"):
        load_config({"MIRROR_CONFIG_FILE": str(path)})
