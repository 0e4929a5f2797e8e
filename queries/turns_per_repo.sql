-- Trajectories and assistant turns per repository, the most represented repositories first.
SELECT repo, count(*) AS trajectories,
       round(avg(num_assistant_turns), 1) AS avg_turns,
       min(num_assistant_turns) AS min_turns,
       max(num_assistant_turns) AS max_turns
FROM trajectories
GROUP BY repo
ORDER BY trajectories DESC, repo
LIMIT 20;
