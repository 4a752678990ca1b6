"""Appends one dated line for a `make bench` run to the "History" table at the end of BENCHMARKS.md.

Usage: bench_history.py <sb-bench output> <BENCHMARKS.md> <commit> <arguments>
Figures absent from the output (another shape, a failed part) are written as "-".
"""
import datetime
import os
import re
import sys

HEADER = """## History

One line per `make bench` run (Deploy/local/bench_history.py appends it): the commit (`+changes` when the
working tree differed), the arguments, the bare relay's ceiling, the best pipeline rate and its ratio to the
ceiling, Switchboard's CPU per 1,000 messages over all runs, p99 at half rate, bytes written to storage per
message, the SQLite file's growth per 1,000 messages, peak RSS and the replay rate.

| date (UTC) | commit | arguments | ceiling msg/s | pipeline msg/s | ratio | CPU s/1,000 | p99 half rate | bytes/msg | MB/1,000 msgs | peak RSS | replay msg/s |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def figures(text):
    def first(pattern, group=1):
        m = re.search(pattern, text, re.MULTILINE)
        return m.group(group) if m else "-"
    rates = [int(r) for r in re.findall(r"^pipeline run \d+: (\d+) msg/s", text, re.MULTILINE)]
    return [
        first(r"^ceiling  \(bare relay.*?: (\d+) msg/s"),
        str(max(rates)) if rates else "-",
        first(r"^bench: ratio ([\d.]+)"),
        first(r"CPU ([\d.]+) s per 1000 msgs over all runs"),
        first(r"^pipeline at .*?p99 ([\d.]+ ms)"),
        first(r"^store: (\d+) bytes written"),
        first(r"grew ([\d.]+) MB per 1000 msgs"),
        first(r"peak RSS run ([\d.]+ MB)"),
        first(r"^replay: .*?: (\d+) msg/s"),
    ]


def main():
    report, benchmarks, commit, arguments = sys.argv[1:5]
    with open(report, encoding="utf-8") as f:
        text = f.read()
    with open(benchmarks, encoding="utf-8") as f:
        doc = f.read()
    if "\n## History\n" not in doc:
        doc = doc.rstrip("\n") + "\n\n" + HEADER
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    shown = f"`{arguments}`" if arguments.strip() else "defaults"
    found = figures(text)
    if os.environ.get("SB_STORE_URL", "").startswith("postgres"):
        # The database's own writes are PostgreSQL's, not the store process's.
        shown += ", PostgreSQL store"
        found[5] = "-"
    cells = [now, commit, shown] + found
    doc = doc.rstrip("\n") + "\n| " + " | ".join(cells) + " |\n"
    with open(benchmarks, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"bench: a line for {commit} appended to {benchmarks} (History)")


if __name__ == "__main__":
    main()
