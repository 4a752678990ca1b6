"""The summary of a `make bench` run, and its dated line in the "History" table at the end of BENCHMARKS.md.

Usage:
  bench_history.py --parts <dir> <BENCHMARKS.md> <commit>
      the whole report: <dir> holds one sb-bench output per part (run, quorum, fleet, fleet-postgres,
      timers, replay, ingress); prints the summary against issue 25's gates, then appends the line.
  bench_history.py --single <sb-bench output> <BENCHMARKS.md> <commit> <arguments>
      one sb-bench run with arguments (one shape): its figures in the line, the other columns "-".
Figures absent from the output (a part skipped or failed) are written as "-".
"""
import datetime
import os
import re
import sys

COLUMNS = ["date (UTC)", "commit", "arguments", "ceiling msg/s", "all-in-one msg/s", "ratio", "CPU s/1,000",
           "p99 half rate", "quorum ratio", "fleet SQLite ratio", "fleet PostgreSQL ratio", "timers ratio",
           "timers p99", "bytes/msg", "MB/1,000 msgs", "peak RSS", "replay msg/s"]
# The columns of the table before the one-report run (12): date .. p99 half rate, then bytes/msg .. replay.
OLD_WIDTH = 12

HEADER = """## History

One line per `make bench` run (Deploy/local/bench_history.py appends it): the commit (`+changes` when the
working tree differed), the arguments, the bare relay's ceiling, the all-in-one's best rate and its ratio to
the ceiling, its CPU per 1,000 messages over all runs (all Switchboard processes), p99 at half rate; the
ratios of the same run with quorum queues, of the fleet shape on SQLite and on PostgreSQL (each against
the ceiling measured in its own part); the timers' fired rate as a ratio of the broker's own dead-letter
ceiling and their lateness p99; bytes written to storage per message, the SQLite file's growth per 1,000
messages, peak RSS and the replay rate. Lines before the one-report `make bench` have "-" for the parts
they did not run.

"""


def table_head():
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"


def first(text, pattern, group=1):
    m = re.search(pattern, text or "", re.MULTILINE)
    return m.group(group) if m else "-"


def pipeline(text):
    """The run or fleet shape's figures: ceiling, best rate, ratio, CPU, p99 at half rate, bytes, MB, RSS."""
    rates = [int(r) for r in re.findall(r"^pipeline run \d+: (\d+) msg/s", text or "", re.MULTILINE)]
    return {
        "ceiling": first(text, r"^ceiling  \(bare relay.*?: (\d+) msg/s"),
        "rate": str(max(rates)) if rates else "-",
        "ratio": first(text, r"^bench: ratio ([\d.]+)"),
        "cpu": first(text, r"CPU ([\d.]+) s per 1000 msgs over all runs"),
        "p99": first(text, r"^pipeline at .*?p99 ([\d.]+ ms)"),
        "bytes": first(text, r"^store: (\d+) bytes written"),
        "mb": first(text, r"grew ([\d.]+) MB per 1000 msgs"),
        "rss": first(text, r"peak RSS run ([\d.]+ MB)"),
    }


def timers(text):
    return {
        "ratio": first(text, r"^timers: fired at .*?: ([\d.]+) of the broker's dead-letter ceiling"),
        "p99": first(text, r"^timers: \d+ of \d+ fired; .*?p99 ([\d.]+ ms)"),
        "fired": first(text, r"^timers: fired at (\d+)/s"),
        "ceiling": first(text, r"^ceiling  \(bare broker.*?: (\d+)/s"),
        "count": first(text, r"^timers: (\d+ of \d+) fired"),
    }


def replay(text):
    return first(text, r"^replay: .*?: (\d+) msg/s")


def ingress(text):
    """The webhook ingress part's p99 and what it reached, from ingress_bench.py's line."""
    m = re.search(r"reached (\d+)/s\): p50 ([\d.]+) ms, p99 ([\d.]+) ms", text or "")
    return f"{m.group(3)} ms (p50 {m.group(2)} ms, {m.group(1)}/s reached)" if m else "-"


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def append(benchmarks, cells):
    with open(benchmarks, encoding="utf-8") as f:
        doc = f.read()
    if "\n## History\n" not in doc:
        doc = doc.rstrip("\n") + "\n\n" + HEADER + table_head()
    else:
        doc = widen(doc)
    doc = doc.rstrip("\n") + "\n| " + " | ".join(cells) + " |\n"
    with open(benchmarks, "w", encoding="utf-8") as f:
        f.write(doc)


def widen(doc):
    """The History section of an older BENCHMARKS.md (12 columns) in today's form: the new header and
    text, old lines with "-" in the columns they had not."""
    start = doc.index("\n## History\n") + 1
    before, section = doc[:start], doc[start:]
    rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| date")]
    if section.count("| quorum ratio |") and all(l.count(" | ") + 1 == len(COLUMNS) for l in rows):
        return doc
    out = []
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == OLD_WIDTH:
            cells = cells[:8] + ["-"] * 5 + cells[8:]
        out.append("| " + " | ".join(cells) + " |")
    return before + HEADER + table_head() + "\n".join(out) + "\n"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def single(report, benchmarks, commit, arguments):
    text = read(report) or ""
    shown = f"`{arguments}`" if arguments.strip() else "defaults"
    p = pipeline(text)
    t = timers(text)
    if os.environ.get("SB_STORE_URL", "").startswith("postgres"):
        # The database's own writes are PostgreSQL's, not the store process's.
        shown += ", PostgreSQL store"
        p["bytes"] = p["mb"] = "-"
    cells = [now(), commit, shown, p["ceiling"], p["rate"], p["ratio"], p["cpu"], p["p99"], "-", "-", "-",
             t["ratio"], t["p99"], p["bytes"], p["mb"], p["rss"], replay(text)]
    append(benchmarks, cells)
    print(f"bench: a line for {commit} appended to {benchmarks} (History)")


def parts(directory, benchmarks, commit):
    run = pipeline(read(os.path.join(directory, "run")))
    quorum = pipeline(read(os.path.join(directory, "quorum")))
    fleet = pipeline(read(os.path.join(directory, "fleet")))
    fleet_pg = pipeline(read(os.path.join(directory, "fleet-postgres")))
    t = timers(read(os.path.join(directory, "timers")))
    rate = replay(read(os.path.join(directory, "replay")))
    gates = [
        ("all-in-one CPU s per 1,000 messages", run["cpu"], "<= 0.14"),
        ("all-in-one ratio to the bare relay", f'{run["ratio"]} ({run["rate"]} of {run["ceiling"]} msg/s)', ">= 0.60"),
        ("all-in-one p99 at half rate", run["p99"], "< 15 ms"),
        ("all-in-one, quorum queues: ratio, p99 at half rate", f'{quorum["ratio"]}, {quorum["p99"]}', "(reported beside)"),
        ("fleet on SQLite: ratio, p99 at half rate", f'{fleet["ratio"]}, {fleet["p99"]}', ">= 0.40, < 50 ms"),
        ("fleet on PostgreSQL: ratio, p99 at half rate", f'{fleet_pg["ratio"]}, {fleet_pg["p99"]}', ">= 0.35, < 50 ms"),
        ("timers: ratio to the broker's dead-letter ceiling", f'{t["ratio"]} ({t["fired"]} of {t["ceiling"]}/s, {t["count"]} fired)', ">= 0.8"),
        ("timers: lateness p99", t["p99"], "< 300 ms"),
        ("all-in-one: bytes written per message, MB per 1,000", f'{run["bytes"]}, {run["mb"]}', "(reported)"),
        ("all-in-one peak RSS", run["rss"], "(reported)"),
        ("replay msg/s", rate, "(reported)"),
        ("ingress (issue 26): p99 answer at 1,000 requests/s", ingress(read(os.path.join(directory, "ingress"))), "< 50 ms"),
    ]
    width = max(len(g[0]) for g in gates)
    print("\nbench summary (issue 25's figures; each ratio against the ceiling measured in its own part):")
    for name, value, gate in gates:
        print(f"  {name.ljust(width)}  {value:<48} {gate}")
    cells = [now(), commit, "defaults", run["ceiling"], run["rate"], run["ratio"], run["cpu"], run["p99"], quorum["ratio"],
             fleet["ratio"], fleet_pg["ratio"], t["ratio"], t["p99"], run["bytes"], run["mb"], run["rss"], rate]
    append(benchmarks, cells)
    print(f"bench: a line for {commit} appended to {benchmarks} (History)")


def main():
    mode = sys.argv[1]
    if mode == "--parts":
        parts(*sys.argv[2:5])
    elif mode == "--single":
        single(*sys.argv[2:6])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
