"""Times each queries/*.sql, plus two point lookups, through `trajforge sql` and DuckDB.

usage: python3 bench/sql_duckdb.py TRAJFORGE_BIN RUN_DIR QUERIES_DIR [REPEAT [LAYOUT]]
Best of REPEAT wall-clock times per engine. trajforge is timed as a process (start-up, table
registration, query, CSV output) and its peak RSS taken with /usr/bin/time; DuckDB from a fresh
in-process connection (views, query, fetch), so the ratio includes trajforge's process start.
Queries DuckDB cannot run unchanged (trajforge's own functions, or the manifest tables) are
listed with the reason, and so are the queries over `packed` when the run has no shards (a
pipeline without tokenize + pack, `TOKENIZE=0` in bench/sql.sh). The lookups select one
trajectory by `trajectory_id` and one task's rollouts by `instance_id`, both ids picked from the
middle of the kept rows.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb

VIEWS = """
CREATE VIEW trajectories AS SELECT * FROM read_parquet('{run}/kept/*.parquet');
CREATE VIEW filtered AS SELECT * FROM read_parquet('{run}/filtered/*.parquet');
CREATE VIEW tool_calls AS
  SELECT trajectory_id, c.id AS call_id, c.name AS name, c.arguments AS arguments
  FROM (SELECT trajectory_id, unnest(m.tool_calls) AS c
        FROM (SELECT trajectory_id, unnest(messages) AS m FROM trajectories));
"""
PACKED = "CREATE VIEW packed AS SELECT * FROM read_parquet('{run}/shards/*.parquet');"

LOOKUP = ("SELECT trajectory_id, instance_id, num_messages, content_bytes FROM trajectories "
          "WHERE {column} = '{value}' ORDER BY trajectory_id")


def best(fn, repeat):
    runs = [fn() for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def trajforge(binary, run, sql):
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "sql", "--data", run,
                           "--format", "csv", sql], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"trajforge sql failed on {sql[:60]!r}: {proc.stderr}")
    rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return seconds, rss_mb, len(proc.stdout.strip().splitlines()) - 1


def duck(run, sql):
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(VIEWS.format(run=run))
    if (Path(run) / "shards").is_dir():
        con.execute(PACKED.format(run=run))
    rows = con.execute(sql).fetchall()
    con.close()
    return time.perf_counter() - start, 0.0, len(rows)


def lookups(run):
    con = duckdb.connect()
    con.execute(VIEWS.format(run=run))
    n = con.execute("SELECT count(*) FROM trajectories").fetchone()[0]
    traj, inst = con.execute(
        f"SELECT trajectory_id, instance_id FROM trajectories LIMIT 1 OFFSET {n // 2}").fetchone()
    con.close()
    return [("lookup_trajectory_id", LOOKUP.format(column="trajectory_id", value=traj)),
            ("lookup_instance_id", LOOKUP.format(column="instance_id", value=inst))]


def main(binary, run, queries, repeat=3, layout="default"):
    repeat = int(repeat)
    print(f"| layout | query | rows out | trajforge sql (s) | trajforge peak RSS (MB) "
          f"| DuckDB {duckdb.__version__} (s) | trajforge / DuckDB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    cases = [(p.stem, p.read_text()) for p in sorted(Path(queries).glob("*.sql"))] + lookups(run)
    has_shards = (Path(run) / "shards").is_dir()
    for name, sql in cases:
        if not has_shards and re.search(r"\bpacked\b", sql):
            print(f"| {layout} | {name} | | not run: no shards | | | |", flush=True)
            continue
        t_tf, rss, rows_tf = best(lambda: trajforge(binary, run, sql), repeat)
        try:
            t_duck, _, rows_duck = best(lambda: duck(run, sql), repeat)
        except duckdb.Error as e:
            reason = str(e).splitlines()[0][:80].replace("|", "/")
            print(f"| {layout} | {name} | {rows_tf} | {t_tf:.3f} | {rss:.0f} | not portable: {reason} | |",
                  flush=True)
            continue
        assert rows_tf == rows_duck, f"{name}: {rows_tf} rows vs DuckDB {rows_duck}"
        print(f"| {layout} | {name} | {rows_tf} | {t_tf:.3f} | {rss:.0f} | {t_duck:.3f} "
              f"| {t_tf / t_duck:.2f} |", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
