"""Compute Engine resource URLs and names: one source for the API root and the URL shapes."""

from __future__ import annotations

API_ROOT = "https://www.googleapis.com/compute/v1"


def region_of(zone: str) -> str:
    """`us-west1-a` -> `us-west1`."""
    return zone.rsplit("-", 1)[0]


def zone_url(project: str, zone: str) -> str:
    return f"{API_ROOT}/projects/{project}/zones/{zone}"


def region_url(project: str, region: str) -> str:
    return f"{API_ROOT}/projects/{project}/regions/{region}"


def instance_url(project: str, zone: str, name: str) -> str:
    return f"{zone_url(project, zone)}/instances/{name}"


def subnetwork_url(project: str, region: str, name: str) -> str:
    return f"{region_url(project, region)}/subnetworks/{name}"


def address_url(project: str, region: str, name: str) -> str:
    return f"{region_url(project, region)}/addresses/{name}"


def network_url(project: str, name: str) -> str:
    return f"{API_ROOT}/projects/{project}/global/networks/{name}"


def route_url(project: str, name: str) -> str:
    return f"{API_ROOT}/projects/{project}/global/routes/{name}"


def scope_url(project: str, scope: str) -> str:
    """The URL of an operation's scope: a zone name, `regions/R` or `global`."""
    if scope == "global":
        return f"{API_ROOT}/projects/{project}/global"
    if scope.startswith("regions/"):
        return region_url(project, scope.removeprefix("regions/"))
    return zone_url(project, scope)


def resource_path(url: str) -> str:
    """`https://.../compute/v1/projects/p/zones/z` -> `projects/p/zones/z`; partial URLs too."""
    index = url.find("projects/")
    return url[index:] if index >= 0 else url


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def resource_key(url: str, scope: str, collection: str) -> tuple[str, str, str]:
    """(project, scope name, resource name) of a scoped resource URL, e.g. an instance's
    `projects/P/zones/Z/instances/N` with `zones`, `instances`; ValueError when one is absent."""
    return (
        segment_after(url, "projects"),
        segment_after(url, scope),
        segment_after(url, collection),
    )


def segment_after(url: str, marker: str) -> str:
    """The path segment after `marker` (`projects`, `zones`, ...); ValueError when absent."""
    parts = resource_path(url).split("/")
    try:
        return parts[parts.index(marker) + 1]
    except (ValueError, IndexError) as exc:
        raise ValueError(f"no '{marker}' in {url!r}") from exc
