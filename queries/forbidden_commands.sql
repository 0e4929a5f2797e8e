-- How often do shell calls run code (python, pytest, pip, …), kept versus filtered rows, per
-- stage? In execution-free (ZERO) data every such call is a defect.
WITH all_rows AS (
  SELECT stage, messages, true AS kept FROM trajectories
  UNION ALL
  SELECT stage, messages, false AS kept FROM filtered
), calls AS (
  SELECT stage, kept, unnest(m['tool_calls']) AS c
  FROM (SELECT stage, kept, unnest(messages) AS m FROM all_rows)
), shell AS (
  SELECT stage, kept,
         array_has_any(bash_commands(c['arguments']),
                       make_array('python', 'python3', 'pytest', 'pip', 'pip3', 'tox', 'nox',
                                  'make', 'node', 'npm', 'cargo', 'go')) AS runs_code
  FROM calls
  WHERE c['name'] IN ('execute_bash', 'bash')
)
SELECT coalesce(stage, 'unknown') AS stage, kept,
       count(*) AS shell_calls,
       sum(CAST(runs_code AS INT)) AS runs_code,
       round(100.0 * sum(CAST(runs_code AS INT)) / count(*), 1) AS pct
FROM shell
GROUP BY 1, 2
ORDER BY 1, 2;
