-- jobcollection schema version 3 (SQLite): the accounts of the DDP server.
-- The *_key columns hold the lower-cased name or address (computed by the adapter, in Python,
-- so that it folds more than ASCII): the case-insensitive lookups go through their indexes.
-- IF NOT EXISTS: a database re-labelled as an older version (tests do that) migrates again.
CREATE TABLE IF NOT EXISTS users (
    id           TEXT    NOT NULL PRIMARY KEY,  -- Meteor `_id`, 17 characters
    username     TEXT    NOT NULL UNIQUE,
    username_key TEXT    NOT NULL,
    bcrypt       TEXT,                          -- services.password.bcrypt, NULL: no password
    created      INTEGER NOT NULL               -- ms since the epoch (Meteor `createdAt`)
);
CREATE INDEX IF NOT EXISTS users_username_key ON users (username_key);

-- `emails: [{address, verified}]`, one row per address, in the order they were added.
CREATE TABLE IF NOT EXISTS user_emails (
    address     TEXT    NOT NULL UNIQUE,
    address_key TEXT    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    verified    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS user_emails_key ON user_emails (address_key);
CREATE INDEX IF NOT EXISTS user_emails_user ON user_emails (user_id);

-- `services.resume.loginTokens`: only base64(sha256(token)) is kept, never the token.
CREATE TABLE IF NOT EXISTS login_tokens (
    hashed_token TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id),
    when_ms      INTEGER NOT NULL                -- issued at (ms); expires 90 days later
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS login_tokens_user ON login_tokens (user_id);
CREATE INDEX IF NOT EXISTS login_tokens_when ON login_tokens (when_ms);
