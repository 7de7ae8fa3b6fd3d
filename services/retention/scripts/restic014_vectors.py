#!/usr/bin/env python3
"""Regenerate tests/data/restic-0.14-cli.json with the real restic CLI.

For every scenario this makes a throwaway repository, creates one snapshot per
entry with `restic backup --time ... --tag ...` (under the scenario's TZ, so
restic records the snapshot's local offset exactly as a machine in that zone
would), then asks `restic forget --dry-run --json --group-by ''` what each
policy keeps and why.

Times are unique inside a scenario: restic lists snapshots in storage-ID
order, so equal times would make the tie order random.

Usage: python3 scripts/restic014_vectors.py [OUT]   (needs `restic` on PATH;
about five minutes on two cores)
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import zoneinfo

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"

# Flags of `restic forget` by RetentionPolicy field.
FLAGS = {
    "keep_last": "--keep-last",
    "keep_hourly": "--keep-hourly",
    "keep_daily": "--keep-daily",
    "keep_weekly": "--keep-weekly",
    "keep_monthly": "--keep-monthly",
    "keep_yearly": "--keep-yearly",
    "keep_within": "--keep-within",
    "keep_within_hourly": "--keep-within-hourly",
    "keep_within_daily": "--keep-within-daily",
    "keep_within_weekly": "--keep-within-weekly",
    "keep_within_monthly": "--keep-within-monthly",
    "keep_within_yearly": "--keep-within-yearly",
}


def suite_scenario():
    """restic's own policy-test snapshot list, made unique in time.

    The `.1` fractional times become one second later (`--time` takes whole
    seconds) and the five snapshots at 2015-10-22 10:20:30 are spread over
    seconds 30..34, keeping their input order.
    """
    suite = json.loads((DATA / "restic-policy-suite.json").read_text())
    seen = {}
    snaps = []
    for sn in suite["snapshots"]:
        t = sn["time"].replace("T", " ").rstrip("Z")
        if t.endswith(".1"):
            t = t[:-2]
            t = t[:-2] + "%02d" % (int(t[-2:]) + 1)
        n = seen.get(t, 0)
        seen[t] = n + 1
        if n:
            t = t[:-2] + "%02d" % (int(t[-2:]) + n)
        snaps.append((sn["id"], t, sn["labels"]))
    policies = [c["policy"] for c in suite["cases"] if c.get("policy")]
    # restic 0.14 has no -1 (it removes everything), so those cases are left out.
    policies = [p for p in policies if all(v != -1 for v in p.values())]
    policies += [
        {"keep_last": 3, "keep_tags": [["bar"]]},
        {"keep_hourly": 5, "keep_within_daily": "10d"},
        {"keep_weekly": 60},
        {"keep_monthly": 30, "keep_yearly": 1},
        {"keep_daily": 1, "keep_within": "3m"},
        {"keep_within_weekly": "1y", "keep_within_monthly": "2y"},
        {"keep_tags": [["foo"], ["foo", "bar"]], "keep_weekly": 3},
    ]
    return {"name": "restic policy-test snapshots (unique times)", "time_zone": "UTC",
            "snapshots": snaps, "policies": policies}


def berlin_scenario():
    """Europe/Berlin: DST changes, midnights, the ISO week 53 of 2020, month ends."""
    times = [
        "2020-12-27 23:30:00", "2020-12-28 00:30:00", "2020-12-31 23:59:00",
        "2021-01-01 00:01:00", "2021-01-03 22:00:00", "2021-01-04 00:10:00",
        "2021-01-10 23:00:00", "2021-01-31 23:45:00", "2021-02-01 00:15:00",
        "2021-02-28 12:00:00", "2021-03-27 23:30:00", "2021-03-28 01:30:00",
        "2021-03-28 03:30:00", "2021-03-28 04:10:00", "2021-03-29 00:30:00",
        "2021-03-31 22:00:00", "2021-04-01 01:00:00", "2021-05-31 23:00:00",
        "2021-06-30 23:30:00", "2021-07-01 00:30:00", "2021-10-30 23:00:00",
        "2021-10-31 01:30:00", "2021-10-31 03:30:00", "2021-10-31 04:30:00",
        "2021-10-31 23:30:00", "2021-11-01 00:30:00", "2021-11-07 23:59:00",
        "2021-11-08 00:00:30", "2021-12-31 23:30:00", "2022-01-01 00:30:00",
        "2022-01-02 12:00:00", "2022-01-03 08:00:00", "2022-02-28 23:00:00",
        "2022-03-01 00:30:00", "2022-03-26 10:00:00", "2022-03-27 01:00:00",
        "2022-03-27 04:00:00", "2022-03-28 09:00:00", "2022-03-29 09:00:00",
        "2022-03-31 09:00:00",
    ]
    snaps = [("b%02d" % i, t, ["nightly"] if i % 3 == 0 else []) for i, t in enumerate(times)]
    policies = [
        {"keep_hourly": 5}, {"keep_hourly": 30}, {"keep_daily": 7}, {"keep_daily": 30},
        {"keep_weekly": 4}, {"keep_weekly": 12}, {"keep_monthly": 6}, {"keep_monthly": 14},
        {"keep_yearly": 3}, {"keep_last": 4, "keep_weekly": 3},
        {"keep_within": "3d12h"}, {"keep_within": "1m"}, {"keep_within": "4d"},
        {"keep_within_daily": "10d"}, {"keep_within_hourly": "4d"},
        {"keep_within_weekly": "2m"}, {"keep_within_monthly": "1y1m"},
        {"keep_within_yearly": "5y"},
        {"keep_daily": 3, "keep_weekly": 2, "keep_monthly": 2, "keep_yearly": 2},
        {"keep_tags": [["nightly"]], "keep_last": 2},
    ]
    return {"name": "Europe/Berlin local buckets", "time_zone": "Europe/Berlin",
            "snapshots": snaps, "policies": policies}


def new_york_scenario():
    """America/New_York: evenings that are already tomorrow in UTC."""
    times = [
        "2023-12-29 21:00:00", "2023-12-31 20:30:00", "2023-12-31 23:30:00",
        "2024-01-01 19:00:00", "2024-01-06 22:00:00", "2024-01-07 21:00:00",
        "2024-01-08 00:30:00", "2024-01-31 20:00:00", "2024-02-29 22:00:00",
        "2024-03-09 21:00:00", "2024-03-10 01:30:00", "2024-03-10 03:30:00",
        "2024-03-10 21:00:00", "2024-03-11 19:30:00", "2024-03-12 22:30:00",
        "2024-03-13 20:00:00", "2024-03-14 23:00:00",
    ]
    snaps = [("n%02d" % i, t, []) for i, t in enumerate(times)]
    policies = [
        {"keep_daily": 5}, {"keep_daily": 12}, {"keep_hourly": 8}, {"keep_weekly": 4},
        {"keep_monthly": 3}, {"keep_yearly": 2}, {"keep_within_daily": "5d"},
        {"keep_within": "4d2h"}, {"keep_within_weekly": "1m"},
    ]
    return {"name": "America/New_York local buckets", "time_zone": "America/New_York",
            "snapshots": snaps, "policies": policies}


def future_scenario():
    """A snapshot dated in the future is not the base of keep-within windows."""
    times = ["2024-05-01 10:00:00", "2024-05-03 10:00:00", "2024-05-05 10:00:00",
             "2024-05-06 10:00:00", "2024-05-07 10:00:00", "2099-01-01 00:00:00"]
    snaps = [("f%d" % i, t, []) for i, t in enumerate(times)]
    policies = [{"keep_within": "3d"}, {"keep_within_daily": "3d"}, {"keep_last": 2},
                {"keep_within": "1y"}]
    return {"name": "one snapshot in the future", "time_zone": "UTC",
            "snapshots": snaps, "policies": policies}


def run(args, env):
    return subprocess.run(["restic", *args], env=env, check=True, capture_output=True,
                          text=True).stdout


def utc(restic_time):
    # restic writes RFC 3339 with up to nanoseconds; Python parses microseconds.
    head, _, tail = restic_time.partition(".")
    if tail:
        frac = "".join(ch for ch in tail if ch.isdigit())
        tz = tail[len(frac):]
        restic_time = head + "." + frac[:6] + tz
    t = datetime.datetime.fromisoformat(restic_time.replace("Z", "+00:00"))
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def forget_args(policy):
    args = []
    for field, value in policy.items():
        if field == "keep_tags":
            for labels in value:
                args += ["--keep-tag", ",".join(labels)]
        else:
            args += [FLAGS[field], str(value)]
    return args


def scenario(sc, workdir):
    repo = os.path.join(workdir, sc["name"].split()[0].replace("/", "_"))
    env = dict(os.environ, RESTIC_PASSWORD="cairn", RESTIC_REPOSITORY=repo,
               RESTIC_CACHE_DIR=os.path.join(workdir, "cache"), TZ=sc["time_zone"])
    src = os.path.join(workdir, "src")
    os.makedirs(src, exist_ok=True)
    pathlib.Path(src, "f").write_text("cairn\n")
    run(["init", "-q"], env)
    by_time = {}
    snapshots = []
    zone = zoneinfo.ZoneInfo(sc["time_zone"])
    for ident, local, labels in sc["snapshots"]:
        args = ["backup", "-q", "--json", "--host", "cairn", "--time", local]
        for label in labels:
            args += ["--tag", label]
        run(args + [src], env)
        when = datetime.datetime.fromisoformat(local).replace(tzinfo=zone)
        t = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        by_time[t] = ident
        snapshots.append({"id": ident, "time": t, "local": local, "labels": labels})
    listed = json.loads(run(["snapshots", "--json"], env))
    assert sorted(utc(s["time"]) for s in listed) == sorted(by_time), "time round trip"
    cases = []
    for policy in sc["policies"]:
        out = json.loads(run(["forget", "--dry-run", "--json", "--group-by", ""]
                             + forget_args(policy), env))
        keep, reasons = [], {}
        for group in out:
            keep += [by_time[utc(s["time"])] for s in group["keep"] or []]
            for r in group["reasons"] or []:
                reasons[by_time[utc(r["snapshot"]["time"])]] = r["matches"]
        cases.append({"policy": policy, "keep": keep, "reasons": reasons})
    return {"name": sc["name"], "time_zone": sc["time_zone"], "snapshots": snapshots,
            "cases": cases}


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DATA / "restic-0.14-cli.json"
    version = run(["version"], os.environ).strip()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {"generator": version, "generated_at": now, "scenarios": []}
    with tempfile.TemporaryDirectory() as workdir:
        for sc in [suite_scenario(), berlin_scenario(), new_york_scenario(),
                   future_scenario()]:
            result["scenarios"].append(scenario(sc, workdir))
            print("done:", sc["name"], file=sys.stderr)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
