"""scripts/bench's report: reads the raw files of one bench run, prints the
table (stdout) and writes every figure to a JSON file.

    python3 scripts/bench_report.py WORKDIR JSON_FILE

WORKDIR holds info.tsv (key TAB value), runs.tsv (one line per run:
phase key run rc t0 t1 prefix note) and, per run, the files named by its
prefix: .out (stdout, every line prefixed with the unix time it was read
at), .err, .time (GNU time's %M), .sb (sysbench, stamped like .out),
.probe (examples/probe's samples). docs/performance.md says what the
figures mean. Exit status 0 unless the files cannot be read.
"""

import json
import os
import re
import statistics
import sys

IDLE_LABELS = [
    ("copy", "native ALTER, ALGORITHM=COPY"),
    ("copy-nobulk", "  the same, innodb_alter_copy_bulk=OFF"),
    ("inplace", "native ALTER, FORCE, ALGORITHM=INPLACE"),
    ("instant", "native ALTER, ALGORITHM=INSTANT"),
    ("one-statement", "one INSERT ... SELECT, RENAME (floor)"),
    ("ptosc", "pt-online-schema-change"),
    ("shadowcut", "shadowcut"),
    ("shadowcut-indexes-during", "shadowcut --indexes-during-copy"),
    ("shadowcut-no-checksum", "shadowcut --skip-checksum"),
    ("shadowcut-instant", "shadowcut --prefer-instant"),
]
LOAD_LABELS = [
    ("baseline", "sysbench alone (baseline)"),
    ("shadowcut-unloaded", "shadowcut, same table, no load"),
    ("shadowcut", "shadowcut"),
    ("shadowcut-nice", "shadowcut --nice-ratio %(nice_ratio)s"),
    ("shadowcut-locking", "shadowcut --locking-apply"),
    ("ptosc", "pt-online-schema-change"),
]
# The loaded shadowcut runs whose own figures (backlog, cut-over, ratios) are shown.
TOOL_RUNS = ("shadowcut", "shadowcut-nice", "shadowcut-locking")


def read_info(path):
    info = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        key, _, value = line.rstrip("\n").partition("\t")
        info[key] = value
    return info


def read_runs(work):
    """The runs; their files are looked up in WORKDIR (it may be a copy)."""
    runs = []
    path = os.path.join(work, "runs.tsv")
    for line in open(path, encoding="utf-8", errors="replace"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 8:
            continue
        runs.append(
            {
                "phase": f[0],
                "key": f[1],
                "run": int(f[2]),
                "rc": None if f[3] == "skip" else int(f[3]),
                "t0": float(f[4]) if f[4] else None,
                "t1": float(f[5]) if f[5] else None,
                "prefix": os.path.join(work, os.path.basename(f[6])),
                "note": f[7],
            }
        )
    return runs


def stamped_lines(path):
    """(unix time, line) for every line of a stamped file."""
    try:
        for line in open(path, encoding="utf-8", errors="replace"):
            stamp, _, rest = line.rstrip("\n").partition(" ")
            try:
                yield float(stamp), rest
            except ValueError:
                continue
    except OSError:
        return


def read_text(path):
    try:
        return open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return ""


def peak_rss_kb(prefix):
    """GNU time -f %M writes the peak RSS in kB on its last line."""
    lines = read_text(prefix + ".time").split()
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def shadowcut_output(prefix):
    """Status lines, summary and error of a shadowcut --output json run."""
    statuses, summary, error = [], None, None
    for at, line in stamped_lines(prefix + ".out"):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("event") == "status":
            statuses.append((at, o["status"]))
        elif o.get("event") == "summary":
            summary = o["summary"]
        elif o.get("event") == "error":
            error = o.get("message")
    return statuses, summary, error


SB_RE = re.compile(
    r"\[\s*(\d+)s\s*\]\s+thds:\s*(\d+)\s+tps:\s*([\d.]+).*?err/s:\s*([\d.]+)\s+reconn/s:\s*([\d.]+)"
)


def sysbench_reports(prefix):
    """sysbench's per-second reports: (end time, threads, tps, err/s, reconn/s)."""
    out = []
    for at, line in stamped_lines(prefix + ".sb"):
        m = SB_RE.search(line)
        if m:
            out.append((at, int(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5))))
    return out


def sysbench_in(prefix, t0, t1):
    """tx/s from the reports whose second lies inside [t0, t1] (the ones
    overlapping it when none does); errors and reconnections summed over
    every report whose second overlaps [t0, t1]."""
    reports = sysbench_reports(prefix)
    eps = 0.05
    inside = [r for r in reports if r[0] - 1 >= t0 - eps and r[0] <= t1 + eps]
    overlapping = [r for r in reports if r[0] > t0 and r[0] - 1 < t1]
    used = inside or overlapping
    if not used:
        return None
    return {
        "tps": sum(r[2] for r in used) / len(used),
        "tps_seconds": len(used),
        "tps_from": "inside" if inside else "overlapping",
        "errors": round(sum(r[3] for r in overlapping)),
        "error_seconds": len(overlapping),
        "errors_per_s": sum(r[3] for r in overlapping) / max(1, len(overlapping)),
        "reconnects": round(sum(r[4] for r in overlapping)),
        "threads_min": min(r[1] for r in overlapping) if overlapping else None,
        "reports": len(reports),
    }


def deadlocks_in(prefix):
    """The deadlocks InnoDB logged during a loaded run: how many, and how
    many had a statement or lock of a tool's on either side (its tables,
    `_sbtest1_gho` or `_sbtest1_new`, both start with `_sbtest1_`)."""
    try:
        text = open(prefix + ".deadlocks", errors="replace").read()
    except OSError:
        return None
    blocks = text.split("*** (1) TRANSACTION")[1:]
    with_tool = [b for b in blocks if "_sbtest1_" in b.split("WE ROLL BACK")[0]]
    return {"deadlocks": len(blocks), "with_tool": len(with_tool)}


def probe_in(prefix, t0, t1, cut_from=None):
    """The probe's statements that overlap [t0, t1] (and [cut_from, t1])."""
    samples = []
    try:
        for line in open(prefix + ".probe"):
            f = line.split()
            if len(f) == 3:
                samples.append((float(f[0]), float(f[1]), int(f[2])))
    except OSError:
        return None

    def over(a, b):
        return [s for s in samples if s[0] < b and s[0] + s[1] / 1000 > a]

    run = over(t0, t1)
    if not run:
        return None
    lat = sorted(s[1] for s in run)
    worst = max(run, key=lambda s: s[1])
    codes = {}
    for s in run:
        if s[2] != 0:
            codes[str(s[2])] = codes.get(str(s[2]), 0) + 1
    res = {
        "statements": len(run),
        "errors": sum(codes.values()),
        "error_codes": codes,
        "max_ms": worst[1],
        "max_at_s": worst[0] - t0,
        "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "median_ms": statistics.median(lat),
    }
    if cut_from is not None:
        cut = over(cut_from, t1)
        res["cut_over_window_s"] = [cut_from - t0, t1 - t0]
        res["cut_over_max_ms"] = max((s[1] for s in cut), default=None)
    return res


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(st, digits=2, rng=True):
    """The median, and the range when it is wider than the digits shown
    (counts and sizes: rng=False, the median alone)."""
    if st is None:
        return "-"
    f = "%%.%df" % digits
    s = f % st["median"]
    if rng and st["n"] > 1 and (f % st["min"]) != (f % st["max"]):
        s += " [%s–%s]" % (f % st["min"], f % st["max"])
    return s


def fmt_mb(kb_stats):
    if not kb_stats:
        return "-"
    return fmt({k: (v / 1024 if k != "n" else v) for k, v in kb_stats.items()}, 1, rng=False)


def ratio(a, b):
    if a is None or b is None or b["median"] <= 0:
        return None
    return a["median"] / b["median"]


def fmt_ratio(r):
    return "-" if r is None else "%.2f" % r


def idle_run(r):
    d = {"run": r["run"], "exit_code": r["rc"], "wall_s": None, "note": r["note"] or None}
    if r["rc"] is None:
        return d
    d["wall_s"] = r["t1"] - r["t0"]
    if r["key"].startswith("shadowcut") or r["phase"] == "rss":
        statuses, summary, error = shadowcut_output(r["prefix"])
        d["peak_rss_kb"] = peak_rss_kb(r["prefix"])
        d["error"] = error
        if summary:
            d["summary"] = {k: summary.get(k) for k in (
                "duration_s", "rows_copied", "binlog_rows", "binlog_rows_left_to_copy", "keys_applied", "backlog_peak", "backlog_at_swap",
                "cut_over_attempts", "cut_over_lock_s", "checksum", "native")}
    return d


def load_run(r, threads):
    d = {"run": r["run"], "exit_code": r["rc"], "wall_s": None, "note": r["note"] or None}
    if r["rc"] is None:
        return d
    t0, t1 = r["t0"], r["t1"]
    d["wall_s"] = t1 - t0
    cut_from = None
    if r["key"].startswith("shadowcut"):
        statuses, summary, error = shadowcut_output(r["prefix"])
        d["error"] = error
        backlogs = [s["backlog"] for _, s in statuses]
        # The summary's figures: the true peak (status lines only sample
        # it once a second) and what was left unapplied at the swap.
        d["backlog_peak"] = (summary or {}).get("backlog_peak", max(backlogs) if backlogs else None)
        d["backlog_final"] = (summary or {}).get("backlog_at_swap")
        d["backlog_last_status"] = backlogs[-1] if backlogs else None
        before_cut = [s["backlog"] for _, s in statuses if s["stage"] != "cut-over"]
        d["backlog_before_cut_over"] = before_cut[-1] if before_cut else None
        d["status_lines"] = len(statuses)
        # The cut-over started after the last status line of an earlier stage.
        before = [at for at, s in statuses if s["stage"] != "cut-over"]
        cut_from = before[-1] if before else t0
        stages = {}
        for at, s in statuses:
            stages.setdefault(s["stage"], [at - t0, at - t0])[1] = at - t0
        d["stages_seen_s"] = stages
        if summary:
            d["summary"] = {k: summary.get(k) for k in (
                "duration_s", "rows_copied", "binlog_rows", "binlog_rows_left_to_copy", "keys_applied", "backlog_peak", "backlog_at_swap",
                "cut_over_attempts", "cut_over_lock_s", "checksum")}
    elif r["key"] == "ptosc":
        swap = [at for at, line in stamped_lines(r["prefix"] + ".out") if "Swapping tables" in line]
        cut_from = swap[0] - 0.5 if swap else None
        tail = [line for _, line in stamped_lines(r["prefix"] + ".out")]
        errs = [line for line in tail + read_text(r["prefix"] + ".err").splitlines()
                if re.search(r"error|died|fail", line, re.I)]
        d["output_errors"] = errs[:10]
    d["sysbench"] = sysbench_in(r["prefix"], t0, t1)
    d["probe"] = probe_in(r["prefix"], t0, t1, cut_from)
    d["deadlocks"] = deadlocks_in(r["prefix"])
    if d["sysbench"] and d["sysbench"]["threads_min"] is not None and d["sysbench"]["threads_min"] < threads:
        d["note"] = "; ".join(filter(None, [d["note"], "sysbench threads fell to %d of %d" % (
            d["sysbench"]["threads_min"], threads)]))
    return d


def main():
    work, json_path = sys.argv[1], sys.argv[2]
    info = read_info(work + "/info.tsv")
    runs = read_runs(work)
    threads = int(info.get("threads", "0") or 0)
    footnotes = []

    def note_ref(notes):
        notes = [n for n in notes if n]
        if not notes:
            return ""
        refs = []
        for n in dict.fromkeys(notes):
            footnotes.append(n)
            refs.append("[%d]" % len(footnotes))
        return " ".join(refs)

    def runs_note(rs):
        notes = []
        for d in rs:
            n = d.get("note") or ""
            if d.get("error") and d["exit_code"] != 0:
                n += ": " + d["error"]
            if n:
                notes.append("run %d: %s" % (d["run"], n))
        return notes

    result = {
        "date": info.get("date"),
        "machine": {k: info.get(k) for k in ("cpus", "cpu_model", "kernel", "memory_mb")},
        "server_version": info.get("server_version"),
        "tools": {k: info.get(k) for k in ("shadowcut_version", "shadowcut_git", "ptosc_version", "sysbench_version")},
        "options": {k: (int(info[k]) if (info.get(k) or "").isdigit() else info.get(k))
                    for k in ("rows", "runs", "sysbench_rows", "threads", "baseline_seconds",
                              "warmup_seconds", "probe_interval_ms", "rss_rows", "timeout_s",
                              "shadowcut_args")},
        "idle": {"table": "orders", "rows": int(info["rows"]), "alter": info.get("alter_idle"), "methods": []},
        "load": {"table": "sbtest1 (sysbench oltp_write_only)", "rows": int(info["sysbench_rows"]),
                 "threads": threads, "alter": info.get("alter_load"), "methods": [],
                 "skipped": info.get("load_skipped") or None},
        "rss": [],
    }

    rows_out = []  # (label, cells...) or a section title (str)
    head = ["", "wall s", "vs COPY", "vs pt-osc", "app tx/s (vs alone)", "app errors",
            "probe max ms", "at cut-over", "backlog peak/final", "cut-overs/lock s", "RSS MB", "notes"]

    # ---------------- idle ----------------
    rows_out.append("idle: orders, %s rows, %s" % (info["rows"], info.get("alter_idle")))
    idle = {}
    for key, label in IDLE_LABELS:
        rs = [idle_run(r) for r in runs if r["phase"] == "idle" and r["key"] == key]
        if not rs:
            continue
        ok = [d for d in rs if d["exit_code"] == 0 and not (d.get("note") or "").startswith("FAILED")]
        m = {"method": label, "key": key, "runs": rs, "wall_s": stats([d["wall_s"] for d in ok])}
        if key.startswith("shadowcut"):
            m["peak_rss_kb"] = stats([d.get("peak_rss_kb") for d in ok])
            m["cut_over_lock_s"] = stats([(d.get("summary") or {}).get("cut_over_lock_s") for d in ok])
            m["cut_over_attempts"] = stats([(d.get("summary") or {}).get("cut_over_attempts") for d in ok])
            natives = [(d.get("summary") or {}).get("native") for d in ok]
            if key == "shadowcut-instant":
                applied = [bool(n and n.get("applied")) for n in natives]
                m["native_applied_runs"] = sum(applied)
        idle[key] = m
    for key, m in idle.items():
        m["vs_copy"] = ratio(m["wall_s"], idle.get("copy", {}).get("wall_s"))
        if key.startswith("shadowcut"):
            m["vs_ptosc"] = ratio(m["wall_s"], idle.get("ptosc", {}).get("wall_s"))
        notes = runs_note(m["runs"])
        if key == "shadowcut-instant" and "native_applied_runs" in m:
            n_ok = m["wall_s"]["n"] if m["wall_s"] else 0
            if 0 < n_ok != m["native_applied_runs"]:
                notes.insert(0, "ran natively (INSTANT) in %d of %d runs" % (m["native_applied_runs"], n_ok))
        vs_ptosc = tries = rss = ""
        if key.startswith("shadowcut"):
            vs_ptosc = fmt_ratio(m.get("vs_ptosc"))
            tries = "-"
            if m.get("native_applied_runs") and m["native_applied_runs"] == (m["wall_s"] or {}).get("n"):
                tries = "native"
            elif m.get("cut_over_attempts"):
                tries = "%s/%s" % (fmt(m["cut_over_attempts"], 0, rng=False), fmt(m.get("cut_over_lock_s"), 3))
            rss = fmt_mb(m.get("peak_rss_kb"))
        rows_out.append(["  " + m["method"], fmt(m["wall_s"]), fmt_ratio(m.get("vs_copy")),
                         vs_ptosc, "", "", "", "", "", tries, rss, note_ref(notes)])
        result["idle"]["methods"].append(m)

    # ---------------- under load ----------------
    rows_out.append("under load: sysbench oltp_write_only, %s rows, %s threads uncapped; %s" % (
        info["sysbench_rows"], info.get("threads"), info.get("alter_load")))
    if info.get("load_skipped"):
        rows_out.append(["  (skipped)", "", "", "", "", "", "", "", "", "", "", note_ref([info["load_skipped"]])])
    load = {}
    for key, label in LOAD_LABELS:
        rs = [load_run(r, threads) for r in runs if r["phase"] == "load" and r["key"] == key]
        if not rs:
            continue
        ok = [d for d in rs if d["exit_code"] == 0 and not (d.get("note") or "").startswith("FAILED")]
        ran = [d for d in rs if d["exit_code"] is not None]
        sb = [d.get("sysbench") or {} for d in ran]
        pr = [d.get("probe") or {} for d in ran]
        m = {
            "method": label % {"nice_ratio": info.get("nice_ratio")}, "key": key, "runs": rs,
            "runs_ok": len(ok),
            "wall_s": stats([d["wall_s"] for d in ok]) if key != "baseline" else None,
            "tps": stats([s.get("tps") for s in sb]),
            "errors": stats([s.get("errors") for s in sb]),
            "errors_per_s": stats([s.get("errors_per_s") for s in sb]),
            "probe_max_ms": stats([p.get("max_ms") for p in pr]),
            "probe_cut_over_max_ms": stats([p.get("cut_over_max_ms") for p in pr]),
            "probe_errors": stats([p.get("errors") for p in pr]),
        }
        if key in TOOL_RUNS:
            m["backlog_peak"] = stats([d.get("backlog_peak") for d in ok])
            m["backlog_final"] = stats([d.get("backlog_final") for d in ok])
            m["cut_over_attempts"] = stats([(d.get("summary") or {}).get("cut_over_attempts") for d in ok])
            m["cut_over_lock_s"] = stats([(d.get("summary") or {}).get("cut_over_lock_s") for d in ok])
            m["keys_applied"] = stats([(d.get("summary") or {}).get("keys_applied") for d in ok])
        load[key] = m
    base = load.get("baseline", {}).get("tps")
    for key, m in load.items():
        m["tps_vs_alone"] = ratio(m["tps"], base)
        if key in TOOL_RUNS:
            m["vs_ptosc"] = ratio(m["wall_s"], load.get("ptosc", {}).get("wall_s"))
        notes = runs_note(m["runs"])
        if key in TOOL_RUNS:
            unloaded = load.get("shadowcut-unloaded", {}).get("wall_s")
            m["vs_unloaded"] = ratio(m["wall_s"], unloaded)
            if m["vs_unloaded"] is not None:
                notes.insert(0, "%.1f x the same migration with no load (%.2f s)" % (
                    m["vs_unloaded"], unloaded["median"]))
        n_ran = len([d for d in m["runs"] if d["exit_code"] is not None])
        if key != "baseline" and m["runs_ok"] < n_ran:
            notes.insert(0, "%d of %d runs failed" % (n_ran - m["runs_ok"], n_ran))
        if m["probe_errors"] and m["probe_errors"]["max"] > 0:
            codes = {}
            for d in m["runs"]:
                for c, n in ((d.get("probe") or {}).get("error_codes") or {}).items():
                    codes[c] = codes.get(c, 0) + n
            notes.append("probe errors (code: count over all runs): " +
                         ", ".join("%s: %d" % kv for kv in sorted(codes.items())))
        logged = [d.get("deadlocks") for d in m["runs"] if d.get("deadlocks")]
        if logged:
            m["deadlocks"] = sum(x["deadlocks"] for x in logged)
            m["deadlocks_with_tool"] = sum(x["with_tool"] for x in logged)
            if m["deadlocks"] or key not in ("baseline", "shadowcut-unloaded"):
                notes.append("deadlocks InnoDB logged over the %d run(s), warm-up included: %d, %d of them "
                             "with a statement of the tool's" % (len(logged), m["deadlocks"], m["deadlocks_with_tool"]))
        short = [d["run"] for d in m["runs"] if (d.get("sysbench") or {}).get("tps_from") == "overlapping"]
        if short:
            notes.append("tx/s of run(s) %s: from the sysbench seconds overlapping the run (none lies inside it)"
                         % ", ".join(map(str, short)))
        for d in m["runs"]:
            if d.get("output_errors") and d["exit_code"] != 0:
                notes.append("run %d output: %s" % (d["run"], " | ".join(d["output_errors"][:3])))
        tps = "-"
        if m["tps"]:
            tps = fmt(m["tps"], 0)
            if m["tps_vs_alone"] is not None:
                tps += " (%.0f%%)" % (100 * m["tps_vs_alone"])
        errs = "-"
        if m["errors"]:
            errs = "%s (%.1f/s)" % (fmt(m["errors"], 0, rng=False), m["errors_per_s"]["median"])
        label = m["method"]
        wall = vs_ptosc = at_cut = backlog = tries = ""
        if key == "baseline":
            label += ", %s s" % info.get("baseline_seconds")
        else:
            wall = fmt(m["wall_s"])
            at_cut = fmt(m["probe_cut_over_max_ms"], 0)
        if key in TOOL_RUNS:
            vs_ptosc = fmt_ratio(m.get("vs_ptosc"))
            backlog = "-"
            if m.get("backlog_peak"):
                backlog = "%s/%s" % (fmt(m["backlog_peak"], 0, rng=False), fmt(m.get("backlog_final"), 0, rng=False))
            tries = "-"
            if m.get("cut_over_attempts"):
                tries = "%s/%s" % (fmt(m["cut_over_attempts"], 0, rng=False), fmt(m.get("cut_over_lock_s"), 3))
        rows_out.append(["  " + label, wall, "", vs_ptosc, tps, errs,
                         fmt(m["probe_max_ms"], 0), at_cut, backlog, tries, "", note_ref(notes)])
        result["load"]["methods"].append(m)

    # ---------------- peak RSS ----------------
    rss_sizes = [int(x) for x in (info.get("rss_rows") or "").split()]
    if rss_sizes:
        rows_out.append("peak RSS of shadowcut (orders, %s; GNU time %%M)" % info.get("alter_idle"))
    for n in rss_sizes:
        if n == int(info["rows"]) and "shadowcut" in idle:
            m = idle["shadowcut"]
            ok = [d for d in m["runs"] if d["exit_code"] == 0 and d.get("peak_rss_kb")]
            entry = {"rows": n, "from": "the idle shadowcut runs", "wall_s": stats([d["wall_s"] for d in ok]),
                     "peak_rss_kb": stats([d["peak_rss_kb"] for d in ok]), "runs": []}
            notes = []
        else:
            rs = [idle_run(r) for r in runs if r["phase"] == "rss" and r["key"] == str(n)]
            ok = [d for d in rs if d["exit_code"] == 0 and not (d.get("note") or "").startswith("FAILED")]
            entry = {"rows": n, "wall_s": stats([d["wall_s"] for d in ok]),
                     "peak_rss_kb": stats([d.get("peak_rss_kb") for d in ok]), "runs": rs}
            notes = runs_note(rs)
        rss = fmt_mb(entry["peak_rss_kb"])
        rows_out.append(["  %d rows" % n, fmt(entry["wall_s"]), "", "", "", "", "", "", "", "", rss,
                         note_ref(notes)])
        result["rss"].append(entry)

    # ---------------- print ----------------
    print("shadowcut bench, %s: MariaDB %s (binlog ROW, buffer pool 256M); %s CPUs (%s)" % (
        info.get("date"), info.get("server_version"), info.get("cpus"), info.get("cpu_model")))
    print("shadowcut %s (%s)%s, pt-online-schema-change %s, sysbench %s" % (
        info.get("shadowcut_version"), info.get("shadowcut_git"),
        (" with " + info["shadowcut_args"]) if info.get("shadowcut_args") else "",
        info.get("ptosc_version"),
        info.get("sysbench_version")))
    print("medians of %s run(s) [min–max]; compare ratios within this run only (docs/performance.md)" % info.get("runs"))
    print()
    table = [r for r in rows_out if not isinstance(r, str)]
    widths = [max(len(head[i]), *(len(r[i]) for r in table)) if table else len(head[i]) for i in range(len(head))]
    line = lambda cells: "  ".join(
        c.ljust(widths[i]) if i in (0, len(head) - 1) else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()
    print(line(head))
    for r in rows_out:
        print(r if isinstance(r, str) else line(r))
    print()
    for i, n in enumerate(footnotes, 1):
        print("[%d] %s" % (i, n))
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
