-- Length distributions of the kept trajectories: messages, assistant turns, bytes of text, and
-- tokens per packed sample.
WITH samples AS (SELECT unnest(seq_lens) AS tokens FROM packed)
SELECT 'messages' AS measure, min(num_messages) AS min,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY num_messages) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY num_messages) AS p90,
       max(num_messages) AS max
FROM trajectories
UNION ALL
SELECT 'assistant_turns', min(num_assistant_turns),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY num_assistant_turns),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY num_assistant_turns),
       max(num_assistant_turns)
FROM trajectories
UNION ALL
SELECT 'content_bytes', min(content_bytes),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY content_bytes),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY content_bytes),
       max(content_bytes)
FROM trajectories
UNION ALL
SELECT 'tokens', min(tokens),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY tokens),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY tokens),
       max(tokens)
FROM samples
ORDER BY measure;
