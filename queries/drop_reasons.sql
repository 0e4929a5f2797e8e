-- Why rows were filtered: rows per reason (a row dropped by several steps counts under each).
SELECT reason, count(*) AS rows
FROM (SELECT unnest(reasons) AS reason FROM filtered)
GROUP BY reason
ORDER BY rows DESC, reason;
