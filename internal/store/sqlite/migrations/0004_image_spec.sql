-- 0004: a job's spec held its image as a name ("image": "alpine"); it now
-- holds an object ({"name": "alpine"}, with entrypoint, pull_policy and
-- user beside it).

UPDATE jobs
SET spec = json_set(spec, '$.image', json_object('name', json_extract(spec, '$.image')))
WHERE json_type(spec, '$.image') = 'text';
