-- Which tools do the agents call, and what share of all calls is each?
SELECT name AS tool, count(*) AS calls,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM tool_calls
GROUP BY name
ORDER BY calls DESC, tool;
