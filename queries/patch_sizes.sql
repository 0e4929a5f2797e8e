-- How big are the final patches? Trajectories and files touched per size of the diff.
SELECT CASE WHEN changed = 0 THEN '0'
            WHEN changed <= 10 THEN '1-10'
            WHEN changed <= 50 THEN '11-50'
            WHEN changed <= 200 THEN '51-200'
            ELSE '>200' END AS lines_changed,
       count(*) AS trajectories,
       sum(files) AS files_touched
FROM (SELECT patch_added_lines + patch_removed_lines AS changed,
             cardinality(patch_files) AS files
      FROM trajectories)
GROUP BY 1
ORDER BY min(changed);
