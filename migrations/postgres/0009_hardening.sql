-- Production hardening (issue 13). Keep in step with the other dialect.
--
-- Each journal row names the node whose call core owns the call, so that a node
-- that crashed (SIGKILL) closes its own unfinished rows when it starts again, and
-- calls back the callers who were waiting in its queue, without touching the live
-- calls of other nodes.
ALTER TABLE calls ADD COLUMN node TEXT;
CREATE INDEX calls_open_by_node ON calls (node) WHERE ended_at IS NULL;
