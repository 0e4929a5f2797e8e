"""Times each queries/*.sql through `trajforge sql` and through DuckDB on the same run folder.

usage: python3 bench/sql_duckdb.py TRAJFORGE_BIN RUN_DIR QUERIES_DIR [REPEAT]
Best of REPEAT wall-clock times per engine. trajforge is timed as a process (start-up, table
registration, query, CSV output); DuckDB from a fresh in-process connection (views, query,
fetch), so the ratio includes trajforge's process start. Queries DuckDB cannot run unchanged
(trajforge's own functions, or the manifest tables) are listed with the reason.
"""

import subprocess
import sys
import time
from pathlib import Path

import duckdb

VIEWS = """
CREATE VIEW trajectories AS SELECT * FROM read_parquet('{run}/kept/*.parquet');
CREATE VIEW filtered AS SELECT * FROM read_parquet('{run}/filtered/*.parquet');
CREATE VIEW packed AS SELECT * FROM read_parquet('{run}/shards/*.parquet');
CREATE VIEW tool_calls AS
  SELECT trajectory_id, c.id AS call_id, c.name AS name, c.arguments AS arguments
  FROM (SELECT trajectory_id, unnest(m.tool_calls) AS c
        FROM (SELECT trajectory_id, unnest(messages) AS m FROM trajectories));
"""


def best(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def trajforge(binary, run, sql_file):
    out = subprocess.run([binary, "sql", "--data", run, "-f", sql_file, "--format", "csv"],
                         check=True, capture_output=True, text=True).stdout
    return len(out.strip().splitlines()) - 1


def duck(run, sql):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(VIEWS.format(run=run))
    rows = con.execute(sql).fetchall()
    con.close()
    return len(rows)


def main(binary, run, queries, repeat=3):
    repeat = int(repeat)
    print(f"| query | rows out | trajforge sql (s) | DuckDB {duckdb.__version__} (s) | trajforge / DuckDB |")
    print("|---|---|---|---|---|")
    for path in sorted(Path(queries).glob("*.sql")):
        sql = path.read_text()
        t_tf, rows_tf = best(lambda: trajforge(binary, run, str(path)), repeat)
        try:
            t_duck, rows_duck = best(lambda: duck(run, sql), repeat)
        except duckdb.Error as e:
            reason = str(e).splitlines()[0][:80]
            print(f"| {path.stem} | {rows_tf} | {t_tf:.3f} | not portable: {reason} | |")
            continue
        assert rows_tf == rows_duck, f"{path.stem}: {rows_tf} rows vs DuckDB {rows_duck}"
        print(f"| {path.stem} | {rows_tf} | {t_tf:.3f} | {t_duck:.3f} | {t_tf / t_duck:.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
