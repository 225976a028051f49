-- Queues (issue 15). Keep in step with ../postgres/.
--
-- queue_members: members that must survive a restart: dynamic members
-- (logged in at run time) and the pause state of any member, static ones
-- included (dynamic = 0 rows only carry the pause). skills is a JSON
-- object (name -> level). Times in unix ms; paused_at is kept while the
-- member stays paused.
CREATE TABLE IF NOT EXISTS queue_members (
    queue        TEXT    NOT NULL,
    interface    TEXT    NOT NULL,  -- PJSIP/201
    membername   TEXT,
    penalty      INTEGER NOT NULL DEFAULT 0,
    skills       TEXT    NOT NULL DEFAULT '{}',
    dynamic      INTEGER NOT NULL DEFAULT 1,
    pause_reason TEXT,              -- NULL = not paused
    paused_at    INTEGER,
    updated_at   INTEGER  NOT NULL,
    PRIMARY KEY (queue, interface)
);

-- queue_log: app_queue's queue log (Asterisk's realtime queue_log columns:
-- time, callid, queuename, agent, event, data1..data5), so existing queue
-- reports can read it. time is UTC 'YYYY-MM-DD HH:MM:SS.mmm'; time_ms the
-- same instant in unix ms for range queries.
CREATE TABLE IF NOT EXISTS queue_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms   INTEGER  NOT NULL,
    time      TEXT    NOT NULL,
    callid    TEXT    NOT NULL,
    queuename TEXT    NOT NULL,
    agent     TEXT    NOT NULL,
    event     TEXT    NOT NULL,
    data1     TEXT    NOT NULL DEFAULT '',
    data2     TEXT    NOT NULL DEFAULT '',
    data3     TEXT    NOT NULL DEFAULT '',
    data4     TEXT    NOT NULL DEFAULT '',
    data5     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_log_time_ms ON queue_log (time_ms);
CREATE INDEX IF NOT EXISTS queue_log_queue_event ON queue_log (queuename, event);
