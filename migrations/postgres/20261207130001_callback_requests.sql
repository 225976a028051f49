-- Callback requests a caller left in the dialplan (issue 13): the number to
-- call back, an alternative, the caller's id and language. Keep in step
-- with ../sqlite/. Times in unix ms. (uniqueid, requested_at) makes a
-- spool replay after a crash idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS callback_requests (
    id           BIGSERIAL PRIMARY KEY,
    uniqueid     TEXT    NOT NULL,  -- channel that captured it (cdr.uniqueid)
    caller_num   TEXT    NOT NULL,
    number       TEXT    NOT NULL,
    alt_number   TEXT,
    language     TEXT    NOT NULL,
    requested_at BIGINT  NOT NULL,  -- unix ms
    context      TEXT,
    exten        TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending',
    UNIQUE (uniqueid, requested_at)
);
CREATE INDEX IF NOT EXISTS callback_requests_requested_at ON callback_requests (requested_at);
