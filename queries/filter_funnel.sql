-- The filter funnel of each run, from its manifest: rows entering and leaving every step.
SELECT run_name, step_index, name, kind, rows_in, rows_out, flagged
FROM run_steps
ORDER BY run_name, step_index;
