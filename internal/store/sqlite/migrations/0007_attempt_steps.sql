-- 0007: attempts keep the timings of their steps, as the agent reports
-- them when the attempt completes (Attempt.Steps): JSON text, as the other
-- list columns. The attempts stored before read back as none ('null',
-- what a nil list encodes to).

ALTER TABLE attempts ADD COLUMN steps TEXT NOT NULL DEFAULT 'null';
