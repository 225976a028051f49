-- Carillon schema, PostgreSQL flavour. Keep in step with ../sqlite/.

-- Registrar bindings (RFC 3261 §10.3), one row per (address of record, contact).
CREATE TABLE IF NOT EXISTS bindings (
    aor         TEXT    NOT NULL,
    contact     TEXT    NOT NULL,  -- full Contact URI
    instance    TEXT,              -- +sip.instance (RFC 5626)
    reg_id      BIGINT,            -- reg-id (RFC 5626), u32
    source      TEXT,              -- transport:ip:port the REGISTER came from (NAT)
    path        TEXT    NOT NULL DEFAULT '[]',  -- JSON array of Path URIs (RFC 3327)
    call_id     TEXT    NOT NULL,
    cseq        BIGINT  NOT NULL,  -- u32
    expires_at  BIGINT  NOT NULL,  -- unix seconds
    q           REAL,
    user_agent  TEXT,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX IF NOT EXISTS bindings_expires_at ON bindings (expires_at);

-- Call detail records, Asterisk-compatible column names; times in unix ms.
CREATE TABLE IF NOT EXISTS cdr (
    uniqueid     TEXT    NOT NULL PRIMARY KEY,
    linkedid     TEXT    NOT NULL,
    start_ms     BIGINT  NOT NULL,
    answer_ms    BIGINT,
    end_ms       BIGINT  NOT NULL,
    duration     BIGINT  NOT NULL,  -- seconds, end - start
    billsec      BIGINT  NOT NULL,  -- seconds, end - answer
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
