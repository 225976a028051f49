-- Voicemail (issue 14): one row per message a caller left (the WAV is
-- under [voicemail] dir), and the PINs owners changed over voicemail.toml's.
-- Keep in step with ../sqlite/. Times in unix ms; heard is 0/1.
CREATE TABLE IF NOT EXISTS voicemail_messages (
    id          TEXT    NOT NULL PRIMARY KEY,  -- the file's stem (the call's uniqueid)
    mailbox     TEXT    NOT NULL,
    caller_num  TEXT    NOT NULL,
    caller_name TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,  -- unix ms
    duration_ms BIGINT  NOT NULL,
    folder      TEXT    NOT NULL,  -- INBOX, Old, Work, Family, Friends
    heard       BIGINT  NOT NULL DEFAULT 0,
    path        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS voicemail_messages_mailbox ON voicemail_messages (mailbox, received_at);
CREATE TABLE IF NOT EXISTS voicemail_pins (
    mailbox TEXT NOT NULL PRIMARY KEY,
    pin     TEXT NOT NULL
);
