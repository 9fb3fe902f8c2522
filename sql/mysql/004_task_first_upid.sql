-- ospab panel: the UPID an operation answered with stays findable (issue 10 item 3).
-- A two-step operation (create = vzcreate then vzstart, restart = stop then start, a
-- rollback of a running server = rollback then start) follows its second task in the same
-- row under `upid`; `first_upid` keeps the one the client was given as taskId, which
-- GET /api/server/{id}/tasks and the task.finished event show.
ALTER TABLE tasks ADD COLUMN first_upid VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER upid;
UPDATE tasks SET first_upid = upid;
