-- The expires_at index cost every binding write a delete and an insert in a
-- second B-tree (a refresh always moves expires_at): about a fifth of the
-- SQLite writer's CPU under REGISTER load. It served only the purge, which
-- runs once a minute and now scans the table instead (tens of milliseconds
-- for a million bindings). PostgreSQL keeps its index.
DROP INDEX IF EXISTS bindings_expires_at;
