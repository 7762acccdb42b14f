-- The cluster's event stream lives in PostgreSQL only (migrations/postgres/0012):
-- an engine on SQLite is one node, and its event bus stays in memory.
SELECT 1;
