-- Near-duplicate clusters (near_dedupe): how many clusters have each size, kept and dropped
-- members counted together.
SELECT size, count(*) AS clusters
FROM (SELECT near_dedupe_cluster, count(*) AS size
      FROM (SELECT near_dedupe_cluster FROM trajectories
            UNION ALL
            SELECT near_dedupe_cluster FROM filtered)
      WHERE near_dedupe_cluster IS NOT NULL
      GROUP BY near_dedupe_cluster)
GROUP BY size
ORDER BY size;
