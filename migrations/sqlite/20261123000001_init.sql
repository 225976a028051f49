-- Carillon schema, SQLite flavour. Keep in step with ../postgres/.

-- Registrar bindings (RFC 3261 §10.3), one row per (address of record, contact).
CREATE TABLE IF NOT EXISTS bindings (
    aor         TEXT    NOT NULL,
    contact     TEXT    NOT NULL,  -- full Contact URI
    instance    TEXT,              -- +sip.instance (RFC 5626)
    reg_id      INTEGER,           -- reg-id (RFC 5626)
    source      TEXT,              -- transport:ip:port the REGISTER came from (NAT)
    path        TEXT    NOT NULL DEFAULT '[]',  -- JSON array of Path URIs (RFC 3327)
    call_id     TEXT    NOT NULL,
    cseq        INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,  -- unix seconds
    q           REAL,
    user_agent  TEXT,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX IF NOT EXISTS bindings_expires_at ON bindings (expires_at);

-- Call detail records, Asterisk-compatible column names; times in unix ms.
CREATE TABLE IF NOT EXISTS cdr (
    uniqueid     TEXT    NOT NULL PRIMARY KEY,
    linkedid     TEXT    NOT NULL,
    start_ms     INTEGER NOT NULL,
    answer_ms    INTEGER,
    end_ms       INTEGER NOT NULL,
    duration     INTEGER NOT NULL,  -- seconds, end - start
    billsec      INTEGER NOT NULL,  -- seconds, end - answer
    src          TEXT    NOT NULL,
    dst          TEXT    NOT NULL,
    clid         TEXT    NOT NULL,
    dcontext     TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    dstchannel   TEXT    NOT NULL,
    trunk        TEXT,
    disposition  TEXT    NOT NULL,
    hangup_cause INTEGER NOT NULL,  -- Q.850
    accountcode  TEXT,
    userfield    TEXT
);
CREATE INDEX IF NOT EXISTS cdr_start_ms ON cdr (start_ms);
CREATE INDEX IF NOT EXISTS cdr_linkedid ON cdr (linkedid);
