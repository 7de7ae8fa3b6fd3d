#!/usr/bin/env python3
"""Regenerates tests/data/systemd-vectors.json from `systemd-analyze calendar` (systemd 252).

Run through gen_vectors.sh. The corpus is a hand-written list of grammar corners plus random
expressions from a fixed seed, so the output only changes when this file or systemd does.
For every expression the file records whether systemd accepts it and its normalised form;
for accepted ones, the next fire times from several base times in several zones, and `cut`:
the start of the first DST-affected window after the base (3 h before an offset change), so
that the Rust test compares only fire times where systemd's and Cairn's DST rules agree.
"""

import concurrent.futures
import datetime as dt
import json
import os
import random
import subprocess
import sys
import zoneinfo

ITERATIONS = 5
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "systemd-vectors.json")

HAND = """
02:00
*-*-* 02:00
Mon..Fri 18:00
Sun 03:00
*-*-01 03:00
hourly
daily
weekly
monthly
yearly
annually
anually
quarterly
semiannually
semi-annually
biannually
bi-annually
minutely
HOURLY
Semi-Annually
Sat,Sun 04:30
*:0/15
*-*~01 23:00
*-*~01
Mon *-05~07/1
*-*~03/1
*-*~03/2 12:00
*-*~1..7
*-*~2..5
*-*~1..28/27
*-*~28/27
*-*~1,15
*-02~1
2024-02~1
*~01
*~*
*-*~*
*-*-1/11 23:00
*-*-01/11 23:00:00
*-*-1/5 04:00:00
*-*-01/7 04:00:00
*-*-1/30
*-*-1..31/31
*:0/25
*:0/59
0/5:00
0/23:00
*-*-* *:*:0/25
*:*:0/25.5
*:*:0/0.5
*:*:1.5
*:*:0.1234567
*:*:0.9999995
*:*:0..10/2.5
*:*:1.5..3
*:*:0..0.5/0.25
*:*:0.5..1.7
*:*:0.5..1.2/1
*:*:0/59.999999
*:*:5,3,1..4
*-*-* *:*:*
*:*
1:2:3
1:2:3.5
MONDAY 1:2
mon
Mon,
Mon, 12:00
Mon-Wed
Mon-Wed,Fri
Mon..Sun
Sun..Sun
Sun,Sat
Mon,Mon
Monday..Wed
Mon..Wednesday,Fri
Sat..Sun,Mon
Mon  12:00
Mon 2024-*-* 12:00
Mon *-*-*  12:00
*-*-*  12:00
Mon,Wed,Fri *-*-* 1:00
0..0:00
1..1:00
5..5/2:00
1..10/3:00
1..10/9:00
1..10/10:00
1..10/20:00
1/1:00
1..5:00
8..17/2:00
8..17/3:00
3,1,2:00
1..3,2..4:00
1,1..3:00
*-*-* 0,12:0,30
*-*-* 0/1:0/1:0/1
*-*-* 0..23:0..59:0..59
2025..2027-*-*
25..27-*-*
2024-02-29
*-02-29
*-02-30
*-04-31
*-*-31
2024/2-*-*
*-1/5-*
1970..2199-*-*
1970/229-*-*
70-01-01
69-01-01
99-01-01
0-01-01
00-01-01
2199-12-31
02-29
2-29
2-29 12:00
*-*
*-*-*
@1700000000
@0
@ 1
@+5
@-0
@05
@7258118399
@1700000000 UTC
@1700000000 Europe/Berlin
Mon @1700000000
Tue @1700000000
12:00 utc
daily UTC
12:00 UTC
12:00 Europe/Berlin
weekly Europe/Berlin
12:00 CET
12:00 EST
12:00 GMT
12:00 Etc/GMT+5
12:00 Etc/UTC
12:00 posix/Europe/Berlin
12:00 America/New_York
02:30 Europe/Berlin
*:0/30 Europe/Berlin
12:00 Asia/Kolkata
02:00 Australia/Lord_Howe
Fri *-*-13
Mon *-*-1..7 12:00
Sat *-*-29..31
Mon *-02-29
Thu 2026-01-01
Fri,Sat *-12-24..26 18:30
*-12-31 23:59:59
*-*-* 23:59:59
*-*-* 23:59:59.999999
*-01-01 00:00:00
Mon..Fri *-*-* 09..17:00/30
*-*-* 09..17/4:15,45
Wed *-*-* 12:00:00
2024-*-* 12:00
2023-*-* 12:00
2030..2031-02-28..29
*-12-25
12-25
*-3..5-*
*-*-* 06,18:00
*-*-* */2:00
0/2:00
Mon.Tue
Mon..Tue-Fri
Mon-Wed-Fri
Mon Tue
Fri..Mon
Mond
Tues
25:00
24:00
23:60
*-13-01
*-00-01
*-*-00
*-*-32
1969-01-01
2200-01-01
100-01-01
2027..2025-*-*
1970/230-*-*
*-*-2/30
*-*~29
*-*~7..1
*-*~1/1
*-*~01/27
*:0/60
*:50/15
5..1:00
0/24:00
*:*:0/60
*:*:0..0.5
*:*:0.5..1.2
*:*:0/0.0000004
*:*:0/0.0000005
*:*:1.
*:*:59.9999999
*:*:*.5
*:*:0.5/0
*/2:00
*:*/5
0/5
*
12
12:00:00:00
12:
:00
*-*-*-*
*-*-* *
*-*-* *:
*-*-* :00
*-*-01..05~03
2024~01
@
@-1
@1700000000.5
@1h
@1700000000 Mon
@1700000000junk
@7258118400
@99999999999
Mon..
Mon,,Tue
Mon.. Tue
Mon ,Tue
UTC
12:00 Europe/Nowhere
12:00 UTC UTC
12:00 Europe/Berlin UTC
12:00 UTC Europe/Berlin
daily Europe//Berlin
12:00 europe/berlin
*-*-+1
*-*- 1
*-*~1,2,3,4,5,6,7
*-*~1,2,3,4,5,6,7,8
*-*~1,3/2
*-*~1,2/2
1~1..24,28
1~1..24
1~28
12:00  Europe/Berlin
Mon12:00
Mon,Tue 2024-*-29 00:00:00.5
*:*:5,0/1,7
*:*:0,0/1
*:*:0/1,0.5
*:*:0..10,0/1
*:0,0/1
2025-*-* *:*:6,27.4998..50,0/1
*-1/18 *:02,8..49:*
""".strip("\n").split("\n")

# Inputs whose whitespace matters and would not survive the list above.
HAND += [" 12:00", "12:00 ", "12:00  UTC", "daily  UTC", "", "Mon\t12:00", "  "]

ZONE_SUFFIXES = ["UTC", "utc", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                 "Australia/Lord_Howe", "Etc/GMT-3", "Nowhere/Zone"]
NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Monday", "tuesday", "WEDNESDAY",
         "Thursday", "friday", "Saturday", "sunday", "mon", "SUN"]


def rand_component(r, lo, hi, spread, usec=False):
    """One list element: value, range, step, range with step; sometimes out of bounds."""
    def val():
        v = r.randint(lo, hi + spread) if r.random() < 0.9 else r.randint(0, hi + 40)
        if usec and r.random() < 0.25:
            return f"{v}.{r.randint(0, 999999):0{r.randint(1, 7)}d}"
        return str(v) if r.random() < 0.7 else f"{v:02d}"
    kind = r.random()
    if kind < 0.45:
        return val()
    if kind < 0.65:
        return f"{val()}..{val()}"
    if kind < 0.85:
        return f"{val()}/{r.randint(1, max(1, (hi - lo) // 2 + 3))}"
    return f"{val()}..{val()}/{r.randint(1, max(1, (hi - lo) // 3 + 2))}"


def rand_chain(r, lo, hi, spread=2, usec=False, star=0.35):
    if r.random() < star:
        return "*"
    return ",".join(rand_component(r, lo, hi, spread, usec) for _ in range(r.choice([1, 1, 1, 2, 3])))


def rand_expr(r):
    if r.random() < 0.04:
        return r.choice(["hourly", "daily", "weekly", "monthly", "quarterly", "minutely"])
    parts = []
    if r.random() < 0.3:
        items = []
        for _ in range(r.choice([1, 1, 2])):
            a = r.choice(NAMES)
            if r.random() < 0.4:
                items.append(f"{a}{r.choice(['..', '..', '-'])}{r.choice(NAMES)}")
            else:
                items.append(a)
        parts.append(",".join(items))
    if r.random() < 0.65:
        day = rand_chain(r, 1, 31, 1, star=0.4)
        month = rand_chain(r, 1, 12, 1, star=0.5)
        sep = "~" if r.random() < 0.2 else "-"
        if r.random() < 0.5:
            if r.random() < 0.3:
                year = rand_chain(r, 20, 35, 0, star=0.0)
            else:
                year = rand_chain(r, 2023, 2030, 0, star=0.6)
            parts.append(f"{year}-{month}{sep}{day}")
        else:
            parts.append(f"{month}{sep}{day}")
    if r.random() < 0.85 or not parts:
        hour = rand_chain(r, 0, 23, 1, star=0.3)
        minute = rand_chain(r, 0, 59, 1, star=0.3)
        if r.random() < 0.35:
            parts.append(f"{hour}:{minute}:{rand_chain(r, 0, 59, 1, usec=True, star=0.3)}")
        else:
            parts.append(f"{hour}:{minute}")
    expr = " ".join(parts)
    if r.random() < 0.1:
        expr += " " + r.choice(ZONE_SUFFIXES)
    return expr


def run_one(expr, tz, base):
    """Runs systemd-analyze on one expression: (normalized, [utc times]) or None if rejected.

    One process per expression: systemd-analyze prints no "Original form" line when the
    input is already normal and nothing at all for rejected input, so batch output cannot be
    matched to its inputs reliably.
    """
    proc = subprocess.run(
        ["systemd-analyze", "calendar", f"--iterations={ITERATIONS}", f"--base-time={base}",
         "--", expr],
        env={**os.environ, "TZ": tz, "LC_ALL": "C"},
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        return None
    norm = None
    times, pending = [], None
    for line in proc.stdout.split("\n"):
        line = line.strip()
        if line.startswith("Normalized form: "):
            norm = line[len("Normalized form: "):]
        elif line.startswith("Next elapse: ") or line.startswith("Iter. #"):
            value = line.split(": ", 1)[1]
            if value == "never":
                continue
            if pending is not None:
                times.append(pending)
            pending = value
        elif line.startswith("(in UTC): "):
            pending = line[len("(in UTC): "):]
    if pending is not None:
        times.append(pending)
    return norm, [to_rfc3339(t) for t in times]


def run(exprs, tz, base):
    """run_one over many expressions in parallel: {expr: result} for the accepted ones."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda e: run_one(e, tz, base), exprs)
        return {e: r for e, r in zip(exprs, results) if r is not None}


def has_zone_suffix(expr):
    last = expr.rsplit(" ", 1)[-1]
    return " " in expr and (last.upper() == "UTC" or os.path.isfile("/usr/share/zoneinfo/" + last))


def to_rfc3339(text):
    # "Tue 2024-01-30 12:00:00 UTC" (systemd prints whole seconds).
    _, day, clock, zone = text.split(" ")
    assert zone == "UTC", text
    return f"{day}T{clock}Z"


def cut_for(tz, after, times):
    """3 h before the first UTC-offset change in (after, last fire + 1 day], else None."""
    if tz == "UTC" or not times:
        return None
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.fromisoformat(after.replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(times[-1].replace("Z", "+00:00")) + dt.timedelta(days=1)
    t, step = start, dt.timedelta(minutes=30)
    off = t.astimezone(zone).utcoffset()
    while t <= end:
        t2 = t + step
        off2 = t2.astimezone(zone).utcoffset()
        if off2 != off:
            c = t - dt.timedelta(hours=3)
            return c.strftime("%Y-%m-%dT%H:%M:%SZ")
        t, off = t2, off2
    return None


BASES_UTC = ["2024-01-30 10:15:00", "2025-12-31 23:59:30", "2024-02-28 23:59:59",
             "2023-02-28 12:00:00", "2024-12-23 23:30:00", "2024-12-31 23:55:00",
             "2024-01-31 21:00:00", "1970-01-01 00:00:00", "2199-12-30 00:00:00"]
ZONED = [
    ("Europe/Berlin", ["2024-01-30 10:15:00", "2024-03-30 22:00:00", "2024-10-26 22:00:00"]),
    ("America/New_York", ["2024-03-09 12:00:00", "2024-11-02 12:00:00"]),
    ("Australia/Lord_Howe", ["2024-04-06 10:00:00", "2024-10-05 10:00:00"]),
    ("Asia/Kolkata", ["2024-01-30 10:15:00"]),
]


def main():
    r = random.Random(20240130)
    corpus = list(dict.fromkeys(HAND + [rand_expr(r) for _ in range(1500)]))
    # Validity and normal forms, from the first base in UTC.
    first = run(corpus, "UTC", BASES_UTC[0] + " UTC")
    accepted = [e for e in corpus if e in first]
    rejected = [e for e in corpus if e not in first]
    cases = []
    plans = [("UTC", BASES_UTC)] + ZONED
    for tz, bases in plans:
        # Under another TZ, systemd reads a trailing CET/CEST (the zone's abbreviations) as a
        # DST flag, which Cairn's API (zone given separately) cannot express; zones written
        # in the expression are covered by the UTC runs.
        exprs = accepted if tz == "UTC" else [
            e for e in accepted if not has_zone_suffix(e) and "@" not in e]
        for base in bases:
            got = run(exprs, tz, base + " UTC")
            after = base.replace(" ", "T") + "Z"
            for e in exprs:
                if e not in got:
                    # systemd gave up ("Infinite loop in calendar calculation") across a
                    # DST change; there is nothing to compare.
                    continue
                norm, times = got[e]
                cases.append({"expr": e, "time_zone": tz, "after": after, "next": times,
                              "cut": cut_for(tz, after, times)})
    doc = {
        "generated_by": "services/schedule/tests/gen_vectors.sh",
        "systemd": subprocess.run(["systemd-analyze", "--version"], capture_output=True,
                                  text=True).stdout.split("\n")[0],
        "iterations": ITERATIONS,
        "note": "times are whole seconds (systemd prints no fractions); `cut`: compare only "
                "fire times before it (DST rules differ after it)",
        "rejected": rejected,
        "accepted": [{"expr": e, "normalized": first[e][0]} for e in accepted],
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=0, ensure_ascii=False)
        f.write("\n")
    print(f"{len(accepted)} accepted, {len(rejected)} rejected, {len(cases)} cases -> {OUT}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
