"""The pure state of the Compute Engine emulator: resources, invariants and planned mutations.

No sockets, threads or clocks here: the server owns those and calls this model under its lock. A
mutation is split in two, like the real API: `plan_*` validates the request synchronously (raising
`ApiError`, which becomes an HTTP error) and returns a `Plan`; `Plan.apply()` runs when the
operation finishes and re-checks the invariants against the state *at that moment* (raising
`OperationFailure`, which becomes the operation's `error`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from emulators import JsonDict
from emulators.compute.errors import (
    ApiError,
    OperationFailure,
    invalid,
    ip_in_use,
    not_found,
    required,
    unknown_field,
)
from emulators.compute.state import (
    InstanceKey,
    RegionalKey,
    VpcState,
    load_state,
    load_vpc_state,
    new_fingerprint,
)
from emulators.compute.urls import API_ROOT, region_of, resource_key, resource_path

EPHEMERAL_POOL = ipaddress.ip_network("192.0.2.0/24")
"""Documentation range (RFC 5737): ephemeral external IPs are strings that nobody ever contacts."""

AliasConflictMode = Literal["operation", "http"]

NETWORK_INTERFACE_FIELDS = frozenset(
    {
        "accessConfigs",
        "aliasIpRanges",
        "aliasIpv6Ranges",
        "enableVpcScopedDns",
        "fingerprint",
        "igmpQuery",
        "internalIpv6PrefixLength",
        "ipv6AccessConfigs",
        "ipv6AccessType",
        "ipv6Address",
        "kind",
        "name",
        "network",
        "networkAttachment",
        "networkIP",
        "nicType",
        "parentNicName",
        "queueCount",
        "serviceClassId",
        "stackType",
        "subnetwork",
        "vlan",
    }
)
ALIAS_RANGE_FIELDS = frozenset({"ipCidrRange", "subnetworkRangeName"})
ACCESS_CONFIG_FIELDS = frozenset(
    {
        "externalIpv6",
        "externalIpv6PrefixLength",
        "ipCollection",
        "kind",
        "name",
        "natIP",
        "networkTier",
        "publicPtrDomainName",
        "securityPolicy",
        "setPublicPtr",
        "type",
    }
)
SET_LABELS_FIELDS = frozenset({"labels", "labelFingerprint"})
UPDATABLE_NIC_FIELDS = frozenset({"aliasIpRanges", "network", "subnetwork"})
"""What updateNetworkInterface may change; other fields must be absent or equal to current."""

LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def decode_fingerprint(value: str) -> bytes | None:
    """Decode standard or URL-safe base64, padded or not; None when it is not base64 at all."""
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def fingerprints_equal(sent: str, current: str) -> bool:
    """Compare as decoded bytes: gcloud re-encodes fingerprints URL-safe, the Python client not."""
    sent_bytes = decode_fingerprint(sent)
    return sent_bytes is not None and sent_bytes == decode_fingerprint(current)


def _normalise_cidr(field: str, value: Any) -> str:
    """`10.0.0.250` -> `10.0.0.250/32`; host bits set or garbage -> 400 like the API."""
    if not isinstance(value, str) or not value:
        raise invalid(field, value, "The IP CIDR range is invalid.")
    text = value if "/" in value else f"{value}/32"
    try:
        return str(ipaddress.IPv4Network(text, strict=True))
    except ValueError as exc:
        raise invalid(field, value, "The IP CIDR range is invalid.") from exc


def _strip_kind(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_kind(v) for k, v in value.items() if k != "kind"}
    if isinstance(value, list):
        return [_strip_kind(v) for v in value]
    return value


@dataclass(frozen=True)
class Plan:
    """A validated mutation, applied when its operation finishes."""

    operation_type: str
    target: InstanceKey
    target_link: str
    target_id: str
    apply: Callable[[], None]


class ComputeModel:
    """Instances, subnetworks and addresses in API JSON form, with the invariants GCE enforces."""

    def __init__(self) -> None:
        self.instances: dict[InstanceKey, JsonDict] = {}
        self.subnetworks: dict[RegionalKey, JsonDict] = {}
        self.addresses: dict[RegionalKey, JsonDict] = {}
        self.vpc = VpcState()
        """Routes, forwarding rules and target instances (served by `vpc`)."""

    # ---- loading and reading -------------------------------------------------------------------

    def load(self, state: JsonDict) -> None:
        """Replace every resource, filling in what GCE sets itself (see `state.load_state`)."""
        self.instances, self.subnetworks, self.addresses = load_state(state)
        self.vpc = load_vpc_state(state)
        for (project, _, _), address in self.addresses.items():
            if "status" not in address and address.get("address"):
                self.sync_address_users(project, [address["address"]])

    def dump(self) -> JsonDict:
        """The whole state, in the same form `load` takes."""
        return copy.deepcopy(
            {
                "instances": list(self.instances.values()),
                "subnetworks": list(self.subnetworks.values()),
                "addresses": list(self.addresses.values()),
                "routes": list(self.vpc.routes.values()),
                "forwardingRules": list(self.vpc.forwarding_rules.values()),
                "targetInstances": list(self.vpc.target_instances.values()),
            }
        )

    def get_instance(self, project: str, zone: str, name: str) -> JsonDict:
        try:
            return self.instances[(project, zone, name)]
        except KeyError:
            raise not_found(f"projects/{project}/zones/{zone}/instances/{name}") from None

    def zones(self, project: str) -> list[str]:
        """Zones that hold at least one instance of the project, sorted."""
        return sorted({zone for p, zone, _ in self.instances if p == project})

    def subnetwork_of(self, nic: JsonDict) -> JsonDict:
        url = nic.get("subnetwork", "")
        try:
            key = resource_key(url, "regions", "subnetworks")
        except ValueError:
            raise _resource_gone(url) from None
        try:
            return self.subnetworks[key]
        except KeyError:
            raise _resource_gone(
                f"projects/{key[0]}/regions/{key[1]}/subnetworks/{key[2]}"
            ) from None

    @staticmethod
    def find_nic(instance: JsonDict, nic_name: str | None) -> JsonDict:
        if not nic_name:
            raise ApiError(
                400,
                "required",
                "Required parameter 'networkInterface' not specified",
                location="networkInterface",
            )
        for nic in instance.get("networkInterfaces", []):
            if nic.get("name") == nic_name:
                return nic  # type: ignore[no-any-return]
        raise invalid(
            "networkInterface", nic_name, "The network interface does not exist on the instance."
        )

    # ---- invariants ----------------------------------------------------------------------------

    def _holders_in_network(self, network: str, exclude: InstanceKey) -> Iterator[str]:
        """Every IP range held by another instance's NIC in the same network."""
        wanted = resource_path(network)
        for key, other in self.instances.items():
            if key == exclude:
                continue
            for nic in other.get("networkInterfaces", []):
                if resource_path(nic.get("network", "")) != wanted:
                    continue
                if nic.get("networkIP"):
                    yield f"{nic['networkIP']}/32"
                for alias in nic.get("aliasIpRanges", []):
                    yield alias["ipCidrRange"]

    def alias_conflict(
        self, key: InstanceKey, network: str, aliases: Iterable[JsonDict]
    ) -> str | None:
        """The first requested alias range that another instance in the network holds, if any."""
        held = [
            ipaddress.ip_network(r, strict=False) for r in self._holders_in_network(network, key)
        ]
        for alias in aliases:
            wanted = ipaddress.ip_network(alias["ipCidrRange"])
            if any(wanted.overlaps(other) for other in held):
                return str(alias["ipCidrRange"])
        return None

    def check_aliases(self, key: InstanceKey, nic: JsonDict, aliases: list[JsonDict]) -> None:
        """Raise `OperationFailure` when the ranges cannot live on this NIC right now."""
        if not aliases:
            return
        subnet = self.subnetwork_of(nic)
        primary = ipaddress.IPv4Network(subnet["ipCidrRange"])
        secondary = {
            r["rangeName"]: ipaddress.IPv4Network(r["ipCidrRange"])
            for r in subnet.get("secondaryIpRanges", [])
        }
        addresses = list(primary)
        reserved = [addresses[0], addresses[1], addresses[-2], addresses[-1]]
        own_ip = ipaddress.IPv4Address(nic["networkIP"]) if nic.get("networkIP") else None
        for index, alias in enumerate(aliases):
            cidr = alias["ipCidrRange"]
            wanted = ipaddress.IPv4Network(cidr)
            field = f"resource.aliasIpRanges[{index}]"
            range_name = alias.get("subnetworkRangeName")
            if range_name:
                if range_name not in secondary:
                    raise OperationFailure(
                        "INVALID_FIELD_VALUE",
                        f"Invalid value for field '{field}.subnetworkRangeName': '{range_name}'. "
                        f"Secondary IP range '{range_name}' does not exist in subnetwork "
                        f"'{resource_path(subnet['selfLink'])}'.",
                    )
                if not wanted.subnet_of(secondary[range_name]):
                    raise OperationFailure(
                        "INVALID_FIELD_VALUE",
                        f"Invalid value for field '{field}.ipCidrRange': '{cidr}'. The alias IP "
                        f"range must be within the secondary IP range '{range_name}' "
                        f"({secondary[range_name]}) of the subnetwork.",
                    )
            else:
                if not wanted.subnet_of(primary):
                    raise OperationFailure(
                        "INVALID_FIELD_VALUE",
                        f"Invalid value for field '{field}.ipCidrRange': '{cidr}'. The alias IP "
                        f"range must be within the primary IP range ({primary}) of the "
                        "subnetwork.",
                    )
                if any(ip in wanted for ip in reserved):
                    raise OperationFailure(
                        "INVALID_FIELD_VALUE",
                        f"Invalid value for field '{field}.ipCidrRange': '{cidr}'. The IP range "
                        "overlaps addresses reserved in the subnetwork's primary range.",
                    )
            if own_ip is not None and own_ip in wanted:
                raise OperationFailure(
                    "INVALID_FIELD_VALUE",
                    f"Invalid value for field '{field}.ipCidrRange': '{cidr}'. The IP range "
                    "overlaps the primary internal IP address of the network interface.",
                )
        conflict = self.alias_conflict(key, nic.get("network", ""), aliases)
        if conflict is not None:
            raise OperationFailure("IP_IN_USE_BY_ANOTHER_RESOURCE", ip_in_use(conflict))

    # ---- updateNetworkInterface ----------------------------------------------------------------

    def parse_alias_ranges(self, value: Any) -> list[JsonDict]:
        """Validate the body's `aliasIpRanges` shape and normalise each CIDR."""
        if not isinstance(value, list):
            raise invalid("resource.aliasIpRanges", value, "Expected a list.")
        parsed: list[JsonDict] = []
        for index, entry in enumerate(value):
            field = f"resource.aliasIpRanges[{index}]"
            if not isinstance(entry, dict):
                raise invalid(field, entry, "Expected an object.")
            unknown = set(entry) - ALIAS_RANGE_FIELDS
            if unknown:
                raise unknown_field(sorted(unknown)[0], field)
            cidr = _normalise_cidr(f"{field}.ipCidrRange", entry.get("ipCidrRange"))
            alias: JsonDict = {"ipCidrRange": cidr}
            if entry.get("subnetworkRangeName"):
                alias["subnetworkRangeName"] = entry["subnetworkRangeName"]
            parsed.append(alias)
        networks = [ipaddress.IPv4Network(a["ipCidrRange"]) for a in parsed]
        for i, first in enumerate(networks):
            for second in networks[i + 1 :]:
                if first.overlaps(second):
                    raise invalid(
                        "resource.aliasIpRanges", str(second), "Alias IP ranges must not overlap."
                    )
        return parsed

    def plan_update_network_interface(
        self, key: InstanceKey, nic_name: str | None, body: Any
    ) -> tuple[Plan, list[JsonDict] | None]:
        """Validate a PATCH; returns the plan and the new alias list (None when not patched)."""
        instance = self.get_instance(*key)
        nic = self.find_nic(instance, nic_name)
        body = checked_body(
            body, NETWORK_INTERFACE_FIELDS, "fingerprint", nic.get("fingerprint", "")
        )
        sent_fingerprint = body["fingerprint"]
        _refuse_fixed_field_changes(nic, nic_name, body)
        new_aliases = (
            self.parse_alias_ranges(body["aliasIpRanges"]) if "aliasIpRanges" in body else None
        )
        new_links: JsonDict = {}
        for field in ("network", "subnetwork"):
            if field in body and resource_path(str(body[field])) != resource_path(
                nic.get(field, "")
            ):
                if instance.get("status") not in {"TERMINATED", "STOPPED"}:
                    raise invalid(
                        f"resource.{field}",
                        body[field],
                        "The network of a network interface can only be changed while the "
                        "instance is stopped.",
                    )
                new_links[field] = f"{API_ROOT}/{resource_path(str(body[field]))}"

        def apply() -> None:
            target = self._instance_for_apply(key)
            target_nic = self._nic_for_apply(target, nic_name)
            if not fingerprints_equal(sent_fingerprint, target_nic.get("fingerprint", "")):
                raise OperationFailure(
                    "CONDITION_NOT_MET",
                    "Supplied fingerprint does not match current network interface fingerprint.",
                    412,
                )
            candidate = {**target_nic, **new_links}
            aliases = new_aliases if new_aliases is not None else candidate.get("aliasIpRanges", [])
            self.check_aliases(key, candidate, aliases)
            target_nic.update(new_links)
            if new_aliases is not None:
                if new_aliases:
                    target_nic["aliasIpRanges"] = copy.deepcopy(new_aliases)
                else:
                    target_nic.pop("aliasIpRanges", None)
            target_nic["fingerprint"] = new_fingerprint()

        return self._plan("updateNetworkInterface", key, apply), new_aliases

    # ---- access configs ------------------------------------------------------------------------

    def plan_add_access_config(self, key: InstanceKey, nic_name: str | None, body: Any) -> Plan:
        instance = self.get_instance(*key)
        nic = self.find_nic(instance, nic_name)
        if not isinstance(body, dict):
            raise ApiError(400, "badRequest", "Invalid JSON payload received.")
        unknown = set(body) - ACCESS_CONFIG_FIELDS
        if unknown:
            raise unknown_field(sorted(unknown)[0], "resource")
        if body.get("type", "ONE_TO_ONE_NAT") != "ONE_TO_ONE_NAT":
            raise invalid("resource.type", body["type"], "Unsupported access config type.")
        if nic.get("accessConfigs"):
            raise ApiError(400, "invalid", "At most one access config currently supported.")
        requested_ip = body.get("natIP")
        if requested_ip is not None:
            try:
                ipaddress.IPv4Address(requested_ip)
            except ValueError:
                raise invalid("resource.natIP", requested_ip, "Invalid IPv4 address.") from None
        project, zone, _ = key
        region = region_of(zone)
        self._check_tier(project, region, requested_ip, body.get("networkTier", "PREMIUM"))

        def apply() -> None:
            target = self._instance_for_apply(key)
            target_nic = self._nic_for_apply(target, nic_name)
            if target_nic.get("accessConfigs"):
                raise OperationFailure(
                    "INVALID_USAGE", "At most one access config currently supported."
                )
            tier = body.get("networkTier", "PREMIUM")
            if requested_ip:
                address = self._static_address(project, region, requested_ip)
                users = address.get("users", []) if address else []
                others = [u for u in users if resource_path(u) != resource_path(target["selfLink"])]
                if others or self._nat_ip_holder(requested_ip, key) is not None:
                    raise OperationFailure("IP_IN_USE_BY_ANOTHER_RESOURCE", ip_in_use(requested_ip))
                nat_ip = requested_ip
            else:
                nat_ip = self._free_ephemeral_ip()
            target_nic["accessConfigs"] = [
                {
                    "kind": "compute#accessConfig",
                    "type": "ONE_TO_ONE_NAT",
                    "name": body.get("name") or "External NAT",
                    "natIP": nat_ip,
                    "networkTier": tier,
                }
            ]
            target_nic["fingerprint"] = new_fingerprint()
            self.sync_address_users(project, [nat_ip])

        return self._plan("addAccessConfig", key, apply)

    def plan_delete_access_config(
        self, key: InstanceKey, nic_name: str | None, access_config: str | None
    ) -> Plan:
        instance = self.get_instance(*key)
        self.find_nic(instance, nic_name)
        if not access_config:
            raise ApiError(
                400,
                "required",
                "Required parameter 'accessConfig' not specified",
                location="accessConfig",
            )

        def apply() -> None:
            target = self._instance_for_apply(key)
            target_nic = self._nic_for_apply(target, nic_name)
            configs = target_nic.get("accessConfigs", [])
            kept = [c for c in configs if c.get("name") != access_config]
            if len(kept) == len(configs):
                return  # A wrong name succeeds and changes nothing, as seen on GCE (kubeip #59).
            released = [c["natIP"] for c in configs if c not in kept and c.get("natIP")]
            if kept:
                target_nic["accessConfigs"] = kept
            else:
                target_nic.pop("accessConfigs", None)
            target_nic["fingerprint"] = new_fingerprint()
            self.sync_address_users(key[0], released)

        return self._plan("deleteAccessConfig", key, apply)

    def _check_tier(self, project: str, region: str, ip: str | None, tier: str) -> None:
        """A static IP is attached only with its own tier; an omitted tier means PREMIUM.

        GCE refuses a STANDARD address attached with the default tier. Whether it says so on the
        request or in the operation is unconfirmed: the emulator refuses on the request, which
        also leaves the NIC untouched.
        """
        address = self._static_address(project, region, ip) if ip else None
        if address is not None and address.get("networkTier", "PREMIUM") != tier:
            raise invalid(
                "resource.networkTier",
                tier,
                f"The network tier of the access config ({tier}) does not match the network "
                f"tier of the external IP address {ip} ({address.get('networkTier')}).",
            )

    def _static_address(self, project: str, region: str, ip: str) -> JsonDict | None:
        for (p, r, _), address in self.addresses.items():
            if p == project and r == region and address.get("address") == ip:
                return address
        return None

    def _nat_ip_holder(self, ip: str, exclude: InstanceKey | None = None) -> InstanceKey | None:
        for key, instance in self.instances.items():
            if key == exclude:
                continue
            for nic in instance.get("networkInterfaces", []):
                if any(c.get("natIP") == ip for c in nic.get("accessConfigs", [])):
                    return key
        return None

    def _free_ephemeral_ip(self) -> str:
        for host in list(EPHEMERAL_POOL.hosts())[1:]:
            if self._nat_ip_holder(str(host)) is None:
                return str(host)
        raise OperationFailure(
            "IP_SPACE_EXHAUSTED", "No ephemeral external IP addresses are left."
        )  # pragma: no cover - 253 instances with external IPs

    def sync_address_users(self, project: str, ips: Iterable[str]) -> None:
        """Make static addresses' `status`/`users` follow the access configs holding their IP."""
        for ip in set(ips):
            for (p, _, _), address in self.addresses.items():
                if p != project or address.get("address") != ip:
                    continue
                users = [
                    inst["selfLink"]
                    for (ip_project, _, _), inst in self.instances.items()
                    if ip_project == project
                    and any(
                        c.get("natIP") == ip
                        for nic in inst.get("networkInterfaces", [])
                        for c in nic.get("accessConfigs", [])
                    )
                ]
                if users:
                    address["status"] = "IN_USE"
                    address["users"] = users
                else:
                    address["status"] = "RESERVED"
                    address.pop("users", None)

    # ---- labels --------------------------------------------------------------------------------

    def plan_set_labels(self, key: InstanceKey, body: Any) -> Plan:
        instance = self.get_instance(*key)
        body = checked_body(
            body, SET_LABELS_FIELDS, "labelFingerprint", instance.get("labelFingerprint", "")
        )
        sent = body["labelFingerprint"]
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            raise invalid("resource.labels", labels, "Expected a map.")
        for label_key, value in labels.items():
            if not LABEL_KEY.fullmatch(label_key):
                raise invalid(f"resource.labels.{label_key}", label_key, "Invalid label key.")
            if not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
                raise invalid(f"resource.labels.{label_key}", value, "Invalid label value.")

        def apply() -> None:
            target = self._instance_for_apply(key)
            if not fingerprints_equal(sent, target.get("labelFingerprint", "")):
                raise OperationFailure(
                    "CONDITION_NOT_MET",
                    "Labels fingerprint either invalid or resource labels have changed",
                    412,
                )
            if labels == target.get("labels", {}):
                return
            target["labels"] = dict(labels)
            target["labelFingerprint"] = new_fingerprint()

        return self._plan("setLabels", key, apply)

    # ---- out-of-band edits ---------------------------------------------------------------------

    def edit_instance(self, key: InstanceKey, edit: Callable[[JsonDict], None]) -> None:
        """Apply a hand edit, then bump every fingerprint whose content changed (KeyError: none)."""
        instance = self.instances[key]
        before = copy.deepcopy(instance)
        edit(instance)
        old_nics = {n.get("name"): n for n in before.get("networkInterfaces", [])}
        ips: set[str] = set()
        for nic in instance.get("networkInterfaces", []):
            old = old_nics.get(nic.get("name"))
            if old is None or _nic_content(old) != _nic_content(nic):
                nic["fingerprint"] = new_fingerprint()
            for config in [*nic.get("accessConfigs", []), *(old or {}).get("accessConfigs", [])]:
                if config.get("natIP"):
                    ips.add(config["natIP"])
        if before.get("labels", {}) != instance.get("labels", {}):
            instance["labelFingerprint"] = new_fingerprint()
        if before != instance:
            instance["fingerprint"] = new_fingerprint()
        self.sync_address_users(key[0], ips)

    # ---- helpers -------------------------------------------------------------------------------

    def _instance_for_apply(self, key: InstanceKey) -> JsonDict:
        try:
            return self.instances[key]
        except KeyError:
            raise _resource_gone(f"projects/{key[0]}/zones/{key[1]}/instances/{key[2]}") from None

    @staticmethod
    def _nic_for_apply(instance: JsonDict, nic_name: str | None) -> JsonDict:
        for nic in instance.get("networkInterfaces", []):
            if nic.get("name") == nic_name:
                return nic  # type: ignore[no-any-return]
        raise OperationFailure(
            "RESOURCE_NOT_FOUND", f"Network interface '{nic_name}' was not found.", 404
        )

    def _plan(self, operation_type: str, key: InstanceKey, apply: Callable[[], None]) -> Plan:
        instance = self.instances[key]
        return Plan(
            operation_type=operation_type,
            target=key,
            target_link=instance["selfLink"],
            target_id=str(instance.get("id", "")),
            apply=apply,
        )


def _refuse_fixed_field_changes(nic: JsonDict, nic_name: str | None, body: JsonDict) -> None:
    """400 when the PATCH body changes a field other than the aliases and the network."""
    for field, value in body.items():
        if field in UPDATABLE_NIC_FIELDS or field in {"fingerprint", "kind"}:
            continue
        if field == "name" and value == nic_name:
            continue
        if _strip_kind(value) != _strip_kind(nic.get(field)):
            raise invalid(
                f"resource.{field}",
                value,
                "Only alias IP ranges and the network can be changed by updateNetworkInterface.",
            )


def _resource_gone(path: str) -> OperationFailure:
    """A resource that disappeared before the operation applied."""
    return OperationFailure("RESOURCE_NOT_FOUND", f"The resource '{path}' was not found", 404)


def _nic_content(nic: JsonDict) -> JsonDict:
    return {k: v for k, v in nic.items() if k != "fingerprint"}


def checked_body(
    body: Any, allowed: frozenset[str], fingerprint_field: str, current: str
) -> JsonDict:
    """A fingerprinted mutation's body: a JSON object of known fields with a current fingerprint.

    Raises:
        ApiError: 400 for a malformed body, unknown field or missing/invalid fingerprint; 412
            for a stale one.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "badRequest", "Invalid JSON payload received.")
    unknown = set(body) - allowed
    if unknown:
        raise unknown_field(sorted(unknown)[0], "resource")
    sent = body.get(fingerprint_field)
    if not sent:
        raise required(f"resource.{fingerprint_field}")
    if not isinstance(sent, str) or decode_fingerprint(sent) is None:
        raise invalid(f"resource.{fingerprint_field}", sent, "Invalid fingerprint.")
    check_fingerprint(sent, current)
    return body


def check_fingerprint(sent: str, current: str) -> None:
    """412 conditionNotMet when the caller read an older version."""
    if not fingerprints_equal(sent, current):
        raise ApiError(
            412,
            "conditionNotMet",
            "Supplied fingerprint does not match current fingerprint.",
            location="If-Match",
            location_type="header",
        )
