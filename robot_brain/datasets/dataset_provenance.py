"""Provenance of an exported dataset: ``meta/provenance.json``, its content hash, the dataset card.

**Content hash** (``robot_brain.dataset-hash/1``): SHA-256 of the text that ``sha256sum``
prints for every file of the dataset, sorted by path: one line ``<hex digest>  <path>`` per
file (two spaces, ``/`` separators, paths relative to the dataset root, sorted bytewise),
each ending in a newline. Left out: ``README.md``, ``meta/provenance.json`` and its seal
(they quote the hash) and anything hidden (a path part starting with ``.``). It can be checked
without robot_brain::

    cd DATASET && find . -type f ! -path ./README.md ! -path ./meta/provenance.json ! -path ./meta/provenance.seal \\
        ! -path '*/.*' -printf '%P\\n' \\
        | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum

``meta/provenance.json`` also lists every file's digest, so :func:`verify_provenance` says
which file changed, went missing or was added.

**Seal** (``meta/provenance.seal``): the export seals ``meta/provenance.json`` under the site's
seal key (:mod:`robot_brain.consent.seals`), so an edit of the provenance itself (an operator
relabelled ``scripted``, an episode's consent changed) is detected: training refuses a dataset
whose seal is missing or does not match. The data files are covered by the content hash the
sealed provenance quotes. A purge that marks a dataset stale logs its content hash in the
audit log, so deleting ``STALE.json`` does not make it trainable again
(:func:`erased_dataset_hashes`).

**Personal data**: provenance carries pseudonyms only. :func:`check_no_personal_data` refuses
keys that would hold a person's identity (``operator_name``, ``real_name``, ``email``, ...)
and an ``operator`` value that does not look like a pseudonym (a clear name has a space).

**Dataset card** (``README.md``): the YAML header LeRobot pushes to the Hub (``license``,
``task_categories: [robotics]``, ``tags: [LeRobot, ...]``, ``configs`` pointing at
``data/*/*.parquet``), then the structure, a consent and provenance summary and the Croissant
RAI data-collection fields with the legal bases and retention periods by operator count
(:mod:`robot_brain.datasets.rai`, also written as ``meta/croissant_rai.json``, which the content
hash covers), built only from known fields (pseudonyms, consent ids and scopes, labels), never
from free-form keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_brain.consent.audit import read_audit
from robot_brain.consent.seals import SealError, check_seal, seal
from robot_brain.datasets.lerobot_format import INCOMPLETE_MARKER, DatasetFormatError, read_json
from robot_brain.datasets.rai import RAI_PATH, rai_bytes, rai_document
from robot_brain.datasets.rai import card_lines as rai_card_lines
from robot_brain.storage.files import atomic_write_bytes, sha256_file
from robot_brain.storage.paths import DataLayout
from robot_brain.storage.times import format_time, utc_now

PROVENANCE_PATH = "meta/provenance.json"
CARD_PATH = "README.md"
SEAL_PATH = "meta/provenance.seal"
SEAL_PURPOSE = "dataset-provenance"
PROVENANCE_FORMAT = "robot_brain.dataset_provenance/1"
HASH_FORMAT = "robot_brain.dataset-hash/1"
HASH_DEFINITION = (
    "sha256 of the sha256sum lines '<hex>  <path>\\n' of every file, sorted by path (bytewise), "
    "except README.md, meta/provenance.json, meta/provenance.seal and hidden paths"
)
# The unfinished-export marker is never part of a finished dataset; it is left out while finalizing.
HASH_EXCLUDED = frozenset({PROVENANCE_PATH, SEAL_PATH, CARD_PATH, INCOMPLETE_MARKER})

# Keys whose values would identify a person; provenance must carry pseudonyms only.
PERSONAL_KEYS = frozenset(
    {"operator_name", "real_name", "full_name", "clear_name", "name_clear", "person_name", "email", "e_mail", "phone"}
)
PSEUDONYM_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._@+-]{0,127}$")


class ProvenanceError(DatasetFormatError):
    """Provenance that would leak a person's identity, or a dataset whose provenance is missing or broken."""


def check_no_personal_data(value: Any, where: str = "provenance") -> None:
    """Refuse identity-bearing keys anywhere in ``value`` and ``operator`` values that are not pseudonyms."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in PERSONAL_KEYS:
                raise ProvenanceError(f"{where}: key {key!r} would carry a person's identity; use the pseudonym only")
            if key == "operator" and item is not None:
                if not isinstance(item, str) or not PSEUDONYM_PATTERN.match(item):
                    raise ProvenanceError(f"{where}: expected an operator pseudonym (no spaces), found {item!r}")
            check_no_personal_data(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            check_no_personal_data(item, f"{where}[{position}]")


def _is_hashed(relative: str) -> bool:
    return relative not in HASH_EXCLUDED and not any(part.startswith(".") for part in relative.split("/"))



def file_hashes(root: str | Path, overrides: Mapping[str, bytes] | None = None) -> dict[str, str]:
    """SHA-256 of every hashed file under ``root`` (see the module docstring), by relative path.

    ``overrides`` gives the bytes of files about to be written (path -> content), hashed as if
    they were already on disk.
    """
    base = Path(root)
    hashes: dict[str, str] = {}
    for path in base.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(base).as_posix()
        if _is_hashed(relative):
            hashes[relative] = sha256_file(path)
    for relative, content in (overrides or {}).items():
        if _is_hashed(relative):
            hashes[relative] = hashlib.sha256(content).hexdigest()
    return dict(sorted(hashes.items(), key=lambda item: item[0].encode("utf-8")))


def content_hash(hashes: Mapping[str, str]) -> str:
    """The dataset content hash over per-file digests (``sha256sum`` lines, sorted by path)."""
    lines = "".join(f"{hashes[path]}  {path}\n" for path in sorted(hashes, key=lambda p: p.encode("utf-8")))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def dataset_content_hash(root: str | Path) -> str:
    """Recompute the content hash of the dataset at ``root``."""
    return content_hash(file_hashes(root))


@dataclass(frozen=True)
class ProvenanceCheck:
    """The outcome of :func:`verify_provenance`: the recorded and recomputed hashes and what differs."""

    recorded_hash: str
    actual_hash: str
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.recorded_hash == self.actual_hash and not (self.changed or self.missing or self.added)

    def message(self) -> str:
        """One line: the dataset verifies, or what differs."""
        if self.ok:
            return f"content hash {self.actual_hash} verifies"
        parts = [
            f"{label}: {', '.join(paths[:3])}"
            for label, paths in (("changed", self.changed), ("missing", self.missing), ("added", self.added))
            if paths
        ]
        detail = "; ".join(parts) if parts else "the file list matches but the hash does not"
        return f"content hash {self.actual_hash} does not match the recorded {self.recorded_hash} ({detail})"


def verify_provenance(root: str | Path) -> ProvenanceCheck:
    """Recompute the content hash of ``root`` and compare it, file by file, with ``meta/provenance.json``."""
    base = Path(root)
    provenance = read_json(base / PROVENANCE_PATH)
    try:
        recorded_hash = provenance["content_hash"]["value"]
        recorded_files: dict[str, str] = dict(provenance["files"])
    except (KeyError, TypeError) as error:
        raise ProvenanceError(f"{base / PROVENANCE_PATH}: expected 'content_hash.value' and 'files'") from error
    actual = file_hashes(base)
    return ProvenanceCheck(
        recorded_hash=recorded_hash,
        actual_hash=content_hash(actual),
        changed=sorted(p for p in actual if p in recorded_files and actual[p] != recorded_files[p]),
        missing=sorted(p for p in recorded_files if p not in actual),
        added=sorted(p for p in actual if p not in recorded_files),
    )



def build_provenance(
    info: Mapping[str, Any],
    episodes: Sequence[Mapping[str, Any]],
    hashes: Mapping[str, str],
    *,
    software: Mapping[str, Any],
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``meta/provenance.json`` document (see :func:`write_provenance`)."""
    check_no_personal_data(list(episodes), "episodes")
    check_no_personal_data(dict(export or {}), "export")
    video = {
        key: {k: v for k, v in spec.get("info", {}).items() if k in ("video.codec", "video.crf", "video.g")}
        for key, spec in info["features"].items()
        if spec.get("dtype") == "video"
    }
    return {
        "format": PROVENANCE_FORMAT,
        "created": format_time(utc_now()),
        "software": dict(software),
        "content_hash": {
            "algorithm": "sha256",
            "format": HASH_FORMAT,
            "definition": HASH_DEFINITION,
            "value": content_hash(hashes),
        },
        "dataset": {
            "codebase_version": info["codebase_version"],
            "fps": info["fps"],
            "robot_type": info.get("robot_type"),
            "total_episodes": info["total_episodes"],
            "total_frames": info["total_frames"],
            "features": list(info["features"]),
            "videos": video,
        },
        "export": dict(export or {}),
        "episodes": [dict(episode) for episode in episodes],
        "files": dict(hashes),
    }


def write_provenance(
    root: str | Path,
    episodes: Sequence[Mapping[str, Any]],
    *,
    software: Mapping[str, Any] | None = None,
    export: Mapping[str, Any] | None = None,
    info_bytes: bytes | None = None,
    card: bool = True,
    license: str | None = "apache-2.0",
    title: str | None = None,
) -> dict[str, Any]:
    """Write ``meta/provenance.json`` (and the ``README.md`` card) for the dataset at ``root``.

    ``episodes`` holds one entry per dataset episode, in order (``episode_index``, ``length``,
    ``task`` and a ``source`` dict from the episode manifest: operator pseudonym, consent id and
    scopes, robot, URDF SHA-256, label, times, software, ...). ``export`` is free-form context
    of the export (data root, consent check time, excluded episodes with reasons).
    ``info_bytes`` is ``meta/info.json``'s content when it is not written yet. Returns the document.
    """
    base = Path(root)
    info_content = info_bytes if info_bytes is not None else (base / "meta/info.json").read_bytes()
    info = json.loads(info_content.decode("utf-8"))
    if software is None:
        import robot_brain

        software = {"package": "robot_brain", "version": robot_brain.__version__}
    # The Croissant RAI fields: a meta file like the others, so the content hash covers it.
    rai_content = rai_bytes(rai_document(info, episodes, export, title=title))
    hashes = file_hashes(base, overrides={"meta/info.json": info_content, RAI_PATH: rai_content})
    document = build_provenance(info, episodes, hashes, software=software, export=export)
    atomic_write_bytes(base / RAI_PATH, rai_content, mode=0o600)
    atomic_write_bytes(base / PROVENANCE_PATH, json.dumps(document, indent=4, ensure_ascii=False).encode("utf-8"),
                       mode=0o600)  # people's data: owner only, as the dataset's other files
    if card:
        atomic_write_bytes(base / CARD_PATH, dataset_card(info, document, license=license, title=title).encode("utf-8"),
                           mode=0o600)
    return document


def _yaml_string(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(text, ensure_ascii=False)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _card_yaml_header(license: str | None) -> list[str]:
    """The YAML front matter LeRobot pushes to the Hub: license, task category, tags and data files."""
    header = ["---"]
    if license:
        header.append(f"license: {_yaml_string(license)}")
    header += [
        "task_categories:",
        "- robotics",
        "tags:",
        "- LeRobot",
        "- robot_brain",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
    ]
    return header


def _card_structure_lines(info: Mapping[str, Any], provenance: Mapping[str, Any], title: str | None) -> list[str]:
    """The card's title, origin line and ``Dataset structure`` section with its feature table and video notes."""
    features = info["features"]
    lines = [
        f"# {title or 'robot_brain demonstrations'}",
        "",
        "Exported by robot_brain "
        f"{provenance.get('software', {}).get('version', '')} in the LeRobot dataset format "
        f"{info['codebase_version']} ([LeRobot](https://github.com/huggingface/lerobot)).",
        "",
        "## Dataset structure",
        "",
        f"- robot type: `{info.get('robot_type')}`; {info['fps']} frames per second",
        f"- {info['total_episodes']} episodes, {info['total_frames']} frames, {info['total_tasks']} tasks",
        "",
        "| feature | dtype | shape | names |",
        "| --- | --- | --- | --- |",
    ]
    for key, spec in features.items():
        names = spec.get("names")
        shown = ", ".join(map(str, names)) if isinstance(names, list) and len(names) <= 12 else ""
        lines.append(f"| `{key}` | {spec['dtype']} | {list(spec['shape'])} | {_cell(shown)} |")
    for key, spec in features.items():
        if spec["dtype"] == "video":
            video_info = spec.get("info", {})
            lines.append(
                f"\n`{key}`: {video_info.get('video.codec')} {video_info.get('video.width')}x"
                f"{video_info.get('video.height')} {video_info.get('video.pix_fmt')}, "
                f"crf {video_info.get('video.crf')}, "
                f"keyframe every {video_info.get('video.g')} frames."
            )
    return lines


def _operators_by_pseudonym(episodes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per operator pseudonym: episode and frame counts, consent ids and consent scopes."""
    operators: dict[str, dict[str, Any]] = {}
    for episode in episodes:
        source = episode.get("source") or {}
        operator = str(source.get("operator", "unknown"))
        consent = source.get("consent") or {}
        entry = operators.setdefault(operator, {"episodes": 0, "frames": 0, "consent": set(), "scopes": set()})
        entry["episodes"] += 1
        entry["frames"] += int(episode.get("length", 0))
        if consent.get("id"):
            entry["consent"].add(str(consent["id"]))
        entry["scopes"].update(str(s) for s in consent.get("scopes") or [])
    return operators


def _operator_table_lines(operators: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The Markdown table of operators (pseudonyms), their episodes, frames, consent ids and scopes."""
    lines = [
        "",
        "| operator (pseudonym) | episodes | frames | consent ids | scopes at recording |",
        "| --- | --- | --- | --- | --- |",
    ]
    for operator, entry in sorted(operators.items()):
        lines.append(
            f"| `{_cell(operator)}` | {entry['episodes']} | {entry['frames']} | "
            f"{_cell(', '.join(sorted(entry['consent'])) or 'none needed')} | "
            f"{_cell(', '.join(sorted(entry['scopes'])))} |"
        )
    return lines


def _excluded_summary_lines(provenance: Mapping[str, Any]) -> list[str]:
    """The count of episodes excluded at export, by reason; no lines when none were."""
    excluded = (provenance.get("export") or {}).get("excluded") or []
    if not excluded:
        return []
    reasons = Counter(str(item.get("reason", "unspecified")) for item in excluded if isinstance(item, Mapping))
    return [
        "",
        f"Excluded at export: {len(excluded)} episodes ("
        + "; ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
        + ").",
    ]


def _card_consent_lines(episodes: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any]) -> list[str]:
    """The ``Consent and provenance`` section: the consent statement, operators, labels and exclusions."""
    lines = ["", "## Consent and provenance", ""]
    lines.append(
        "Every episode of a person was recorded under their enrolment in the site's consent registry (its legal "
        "basis and retention period are below), checked again at export time. Operators "
        "appear only as pseudonyms; no person's name is part of this dataset. Per-episode provenance "
        f"(robot, URDF SHA-256, software, times, labels) is in `{PROVENANCE_PATH}`."
    )
    operators = _operators_by_pseudonym(episodes)
    if operators:
        lines += _operator_table_lines(operators)
    labels = Counter(str((e.get("source") or {}).get("label", "unlabelled")) for e in episodes)
    if episodes:
        lines += ["", "Labels: " + ", ".join(f"{label} {count}" for label, count in sorted(labels.items())) + "."]
    lines += _excluded_summary_lines(provenance)
    return lines


def _card_content_hash_lines(provenance: Mapping[str, Any]) -> list[str]:
    """The ``Content hash`` section: the recorded hash, its definition and a shell command that checks it."""
    content = provenance.get("content_hash", {})
    return [
        "",
        "## Content hash",
        "",
        f"`{content.get('value')}` ({content.get('format')}): {content.get('definition')}. "
        "Check it with `robot_brain.datasets.dataset_provenance.verify_provenance` or:",
        "",
        "```bash",
        "find . -type f ! -path ./README.md ! -path ./meta/provenance.json ! -path '*/.*' -printf '%P\\n' \\",
        "    | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        "```",
        "",
    ]


def dataset_card(
    info: Mapping[str, Any],
    provenance: Mapping[str, Any],
    *,
    license: str | None = "apache-2.0",
    title: str | None = None,
) -> str:
    """The ``README.md`` dataset card: LeRobot's Hub YAML header, structure, consent and provenance summary."""
    header = _card_yaml_header(license)
    episodes = list(provenance.get("episodes", []))
    lines = _card_structure_lines(info, provenance, title)
    lines += _card_consent_lines(episodes, provenance)
    lines += rai_card_lines(info, provenance)
    lines += _card_content_hash_lines(provenance)
    return "\n".join(header + lines)


def seal_dataset(layout: DataLayout, root: str | Path) -> None:
    """Seal ``root``'s ``meta/provenance.json`` under this site's seal key (``meta/provenance.seal``, 0600)."""
    base = Path(root)
    text = seal(layout, SEAL_PURPOSE, (base / PROVENANCE_PATH).read_bytes())
    atomic_write_bytes(base / SEAL_PATH, (text + "\n").encode("ascii"), mode=0o600)


def check_dataset_seal(layout: DataLayout, root: str | Path) -> None:
    """:class:`ProvenanceError` naming the file unless ``meta/provenance.json`` is as this site sealed it."""
    base = Path(root)
    seal_file = base / SEAL_PATH
    text = seal_file.read_text(encoding="ascii") if seal_file.is_file() else None
    try:
        check_seal(layout, SEAL_PURPOSE, (base / PROVENANCE_PATH).read_bytes(), text, what=str(base / PROVENANCE_PATH))
    except SealError as error:
        raise ProvenanceError(f"{error} (re-export the dataset from its episodes)") from None


def erased_dataset_hashes(layout: DataLayout) -> dict[str, int]:
    """Content hashes of datasets a purge marked stale, by the audit entry that says so (a hash-chained log)."""
    if not layout.audit_log_path.is_file():
        return {}
    erased: dict[str, int] = {}
    for entry in read_audit(layout):
        if entry.kind != "data.purged":
            continue
        for dataset in entry.details.get("datasets") or []:
            if isinstance(dataset, Mapping) and dataset.get("action") == "stale" and dataset.get("content_hash"):
                erased[str(dataset["content_hash"])] = entry.seq
    return erased
