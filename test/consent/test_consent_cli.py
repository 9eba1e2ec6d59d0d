"""``robot-brain consent`` as a user runs it: real processes, real files, exit codes, concurrency."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robot_brain.consent.audit import read_audit, verify_audit
from robot_brain.consent.operators import normalize_name, parse_expiry
from robot_brain.consent.registry import ConsentRegistry, derive_pseudonym, verify_consent
from robot_brain.storage.paths import DATA_ROOT_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
ADA = "Ada Lovelace"
BASIS = ("--legal-basis", "consent")
"""The CLI requires a legal basis at every enrolment."""


def environment(tmp_path: Path, data_root: Path | None) -> dict[str, str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO_ROOT))
    env.pop(DATA_ROOT_ENV, None)
    if data_root is not None:
        env[DATA_ROOT_ENV] = str(data_root)
    return env


def cli(
    tmp_path: Path, *args: str, data_root: Path | None = None, limit_file_size: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m robot_brain.cli.main consent ARGS`` with HOME pointing into tmp_path."""

    def limit() -> None:  # runs in the child: a file-size limit stands in for a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "consent", *args],
        env=environment(tmp_path, data_root if data_root is not None else tmp_path / "site"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit if limit_file_size is not None else None,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_happy_path_enroll_list_show_revoke_verify(tmp_path: Path) -> None:
    enrolled = cli(
        tmp_path, "enroll", ADA, "--scope", "record,train", *BASIS, "--scope", "export", "--expires", "2099-12-31"
    )
    assert enrolled.returncode == 0, enrolled.stderr
    pseudonym = enrolled.stdout.split()[1].rstrip(":")
    assert enrolled.stdout.startswith("enrolled op-") and "scopes record,train,export" in enrolled.stdout
    assert ADA not in enrolled.stdout, "enrol prints the pseudonym, not the name"
    key = bytes.fromhex((tmp_path / "site/consent/site.key").read_text().strip())
    assert pseudonym == derive_pseudonym(key, normalize_name(ADA))

    assert cli(tmp_path, "enroll", "Bob", "--scope", "record", *BASIS).returncode == 0
    listing = cli(tmp_path, "list")
    assert listing.returncode == 0 and listing.stdout.splitlines()[0].split()[:2] == ["PSEUDONYM", "NAME"]
    assert f"{pseudonym}  {ADA}" in listing.stdout and "record,train,export" in listing.stdout
    listed = json.loads(cli(tmp_path, "list", "--json").stdout)
    assert [operator["name"] for operator in listed["operators"]] == [ADA, "Bob"]
    assert listed["operators"][0]["expires_at"] == parse_expiry("2099-12-31").strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    revoked = cli(tmp_path, "revoke", "ada lovelace", "--scope", "export")
    assert revoked.returncode == 0 and revoked.stdout.startswith("revoked export of consent c-")
    assert revoked.stdout.rstrip().endswith(f"for {pseudonym}")
    shown = json.loads(cli(tmp_path, "show", pseudonym, "--json").stdout)
    assert shown["name"] == ADA and shown["scopes_now"] == ["record", "train"]
    assert shown["consents"][0]["revoked_at"].keys() == {"export"}
    text = cli(tmp_path, "show", ADA).stdout
    assert f"operator   {pseudonym}" in text and "now        record,train" in text

    everything = cli(tmp_path, "revoke", "Bob")
    assert everything.returncode == 0 and "revoked record" in everything.stdout
    assert "revoked" in cli(tmp_path, "list").stdout.splitlines()[2]

    policy = cli(tmp_path, "show", "policy:0123abcd")
    assert policy.returncode == 0 and "non-human operator (policy)" in policy.stdout

    verified = cli(tmp_path, "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK: 5 audit entries chained")
    report = json.loads(cli(tmp_path, "verify", "--json").stdout)
    assert report["ok"] and report["entries"] == 5 and report["operators"] == 2 and report["consents"] == 2


def test_pseudonym_is_stable_across_runs_and_differs_across_sites(tmp_path: Path) -> None:
    first = cli(tmp_path, "enroll", ADA, "--scope", "record", *BASIS).stdout.split()[1]
    again = cli(tmp_path, "enroll", "ADA  LOVELACE", "--scope", "record,train", *BASIS).stdout
    assert again.startswith(f"renewed the consent of {first}")
    shown = json.loads(cli(tmp_path, "show", ADA, "--json").stdout)
    assert shown["pseudonym"] == first.rstrip(":") and len(shown["consents"]) == 2
    other_site = cli(tmp_path, "enroll", ADA, "--scope", "record", *BASIS, data_root=tmp_path / "other")
    other_site = other_site.stdout.split()[1]
    assert other_site != first


def test_data_root_flag_environment_and_default(tmp_path: Path) -> None:
    flag_after, flag_before = (
        ["enroll", "--data-root", str(tmp_path / "flag")],
        ["--data-root", str(tmp_path / "flag2")],
    )
    for position in (flag_after, [*flag_before, "enroll"]):
        assert cli(tmp_path, *position, ADA, "--scope", "record", *BASIS).returncode == 0
    assert (tmp_path / "flag/consent/registry.json").is_file() and (tmp_path / "flag2/consent/registry.json").is_file()
    assert not (tmp_path / "site").exists(), "--data-root wins over the environment"
    result = subprocess.run(
        [sys.executable, "-m", "robot_brain.cli.main", "consent", "enroll", ADA, "--scope", "record", *BASIS],
        env=environment(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.startswith("enrolled op-")
    assert (tmp_path / "home/.local/share/robot_brain/consent/registry.json").is_file()
    help_text = cli(tmp_path, "enroll", "--help").stdout
    assert DATA_ROOT_ENV in help_text and "~/.local/share/robot_brain" in help_text


def test_user_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    assert cli(tmp_path, "enroll", ADA, "--scope", "record", *BASIS).returncode == 0
    unknown = cli(tmp_path, "show", "Mallory Person")
    assert_user_error(unknown, "unknown operator")
    assert "Mallory" not in unknown.stderr, "the error never repeats a name"
    assert_user_error(cli(tmp_path, "enroll", "Bob", "--scope", "record,sell", *BASIS), "bad scope 'sell'")
    bad_date = cli(tmp_path, "enroll", "Bob", "--scope", "record", *BASIS, "--expires", "31/12/2099")
    assert_user_error(bad_date, "bad date")
    assert_user_error(cli(tmp_path, "verify", data_root=tmp_path / "missing"), "does not exist")
    registry = tmp_path / "site/consent/registry.json"
    intact = registry.read_text()
    registry.write_text(intact[:-30])
    assert_user_error(cli(tmp_path, "list"), str(registry), "expected the consent registry as JSON")
    registry.write_text(intact)
    assert cli(tmp_path, "enroll").returncode == 2, "argparse usage errors are exit 2 too"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["revoke", "Mallory"], "unknown operator"),
        (["revoke", ADA, "--scope", "train,nope"], "bad scope 'nope'"),
        (["enroll", "Bob", "--scope", "record", *BASIS, "--expires", "2001-01-01"], "not in the future"),
        (["enroll", "Bob", "--scope", "record", *BASIS, "--expires", "2099-02-30"], "bad date"),
        (["enroll", "policy:0123abcd", "--scope", "record", *BASIS], "operator id"),
        (["enroll", "   ", "--scope", "record", *BASIS], "name is empty"),
        (["show", "policy:xyz"], "expected policy:"),
    ],
)
def test_more_user_errors_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], fragment: str
) -> None:
    """The same entry point in this process (each subprocess costs half a second of imports)."""
    from robot_brain.cli.main import main

    root = ["--data-root", str(tmp_path / "site")]
    assert main(["consent", "enroll", *root, ADA, "--scope", "record", *BASIS]) == 0
    capsys.readouterr()
    assert main(["consent", *root, *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and fragment in captured.err


def test_verify_exits_1_naming_the_first_bad_entry(tmp_path: Path) -> None:
    for name in (ADA, "Bob", "Cara"):
        assert cli(tmp_path, "enroll", name, "--scope", "record", *BASIS).returncode == 0
    log = tmp_path / "site/consent/audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([lines[0], lines[1].replace(b'"record"', b'"train"'), *lines[2:]]))
    edited = cli(tmp_path, "verify")
    assert edited.returncode == 1 and edited.stdout == ""
    assert "TAMPERED OR DAMAGED: consent/audit.jsonl line 2 (entry 2) was edited" in edited.stderr.splitlines()[0]
    report = json.loads(cli(tmp_path, "verify", "--json").stdout)
    assert report["ok"] is False and report["first_bad_line"] == 2

    log.write_bytes(b"".join([lines[0], *lines[2:]]))
    deleted = cli(tmp_path, "verify")
    assert deleted.returncode == 1
    assert "line 2 (entry 3, consent.granted): follows entry 1: entry 2 deleted" in deleted.stderr


def test_a_lost_key_warns_once_and_keeps_known_people(tmp_path: Path) -> None:
    first = cli(tmp_path, "enroll", ADA, "--scope", "record", *BASIS).stdout.split()[1]
    (tmp_path / "site/consent/site.key").unlink()
    verified = cli(tmp_path, "verify")
    assert verified.returncode == 0 and "site.key is missing" in verified.stderr
    renewed = cli(tmp_path, "enroll", ADA, "--scope", "record,train", *BASIS)
    assert renewed.returncode == 0 and first in renewed.stdout and renewed.stderr == ""
    newcomer = cli(tmp_path, "enroll", "Bob", "--scope", "record", *BASIS)
    assert newcomer.returncode == 0
    assert "warning: site key" in newcomer.stderr and "created a new one" in newcomer.stderr
    key = tmp_path / "site/consent/site.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in newcomer.stderr + newcomer.stdout
    assert cli(tmp_path, "enroll", "Cara", "--scope", "record", *BASIS).stderr == "", "the warning is given once"
    assert cli(tmp_path, "verify").returncode == 0


def test_a_full_disk_during_the_audit_append_changes_nothing(tmp_path: Path) -> None:
    assert cli(tmp_path, "enroll", ADA, "--scope", "record", *BASIS).returncode == 0
    consent = tmp_path / "site/consent"
    before = {path.name: path.read_bytes() for path in consent.iterdir()}
    limit = (consent / "audit.jsonl").stat().st_size + 100  # the next entry (~500 bytes) does not fit
    result = cli(tmp_path, "enroll", "Bob", "--scope", "record", *BASIS, limit_file_size=limit)
    assert_user_error(result, "audit.jsonl")
    assert {path.name: path.read_bytes() for path in consent.iterdir()} == before, "no torn line, no change"
    assert cli(tmp_path, "verify").returncode == 0


def test_a_full_disk_during_the_registry_write_keeps_the_old_registry(tmp_path: Path) -> None:
    long_name = "Ada " + "Lovelace-Byron " * 12  # names live in the registry only: it outgrows the log
    assert cli(tmp_path, "enroll", long_name, "--scope", "record", *BASIS).returncode == 0
    assert cli(tmp_path, "enroll", long_name + " the second", "--scope", "record", *BASIS).returncode == 0
    consent = tmp_path / "site/consent"
    registry_before = (consent / "registry.json").read_bytes()
    log_size = (consent / "audit.jsonl").stat().st_size
    assert len(registry_before) > log_size + 700
    result = cli(tmp_path, "enroll", "Bob", "--scope", "record", *BASIS, limit_file_size=len(registry_before) + 10)
    assert_user_error(result, "registry.json", "the previous version is unchanged")
    assert (consent / "registry.json").read_bytes() == registry_before
    assert not [path for path in consent.iterdir() if path.name.endswith(".tmp")]
    assert "Bob" not in cli(tmp_path, "list").stdout, "the consent is not in force"
    verified = cli(tmp_path, "verify")
    assert verified.returncode == 1
    assert "registry.json lacks" in verified.stderr and "a crash between" in verified.stderr


CONCURRENT_ENROLLER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from robot_brain.consent.registry import ConsentRegistry
    root, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    registry = ConsentRegistry(root)
    while not go.exists():
        time.sleep(0.001)
    for index in range(15):
        registry.enroll(f"worker {tag} {index}", "record,train")
        registry.enroll("Shared Person", "record")
    print("done")
    """
)


def test_two_processes_enrolling_at_once_leave_a_consistent_registry(tmp_path: Path) -> None:
    root, go = tmp_path / "site", tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_ENROLLER, str(root), tag, str(go)],
            env=environment(tmp_path, None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    go.touch()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.strip() == "done", err
    registry = ConsentRegistry(root)
    operators = registry.operators()
    assert len(operators) == 31, "30 workers and one shared person: nobody lost, nobody doubled"
    shared = registry.operator("shared person")
    assert len(shared.consents) == 30 and sum(record.superseded_at is None for record in shared.consents) == 1
    entries = read_audit(root)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert [entry.time for entry in entries] == sorted(entry.time for entry in entries), "applied in time order"
    assert [entry.kind for entry in entries].count("key.created") == 1
    assert [entry.kind for entry in entries].count("consent.granted") == 60
    assert verify_audit(root).ok
    result = verify_consent(root)
    assert result.ok, result.problems


@pytest.mark.parametrize("command", [["list"], ["show", ADA]])
def test_reading_commands_write_nothing(tmp_path: Path, command: list[str]) -> None:
    cli(tmp_path, *command)
    assert not (tmp_path / "site").exists()
