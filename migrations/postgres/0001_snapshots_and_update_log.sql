-- roomcast schema, PostgreSQL dialect (migrations/sqlite/ holds the same schema for
-- SQLite). Every timestamp is unix time in milliseconds (BIGINT), written by the
-- server, so both dialects store and return exactly the same values.

-- Game rooms: periodic snapshots of a room's state; the store keeps the newest K
-- per (game, room), "newest" meaning highest id.
CREATE TABLE game_snapshots (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    game           TEXT   NOT NULL,
    room           TEXT   NOT NULL,
    tick           BIGINT NOT NULL,
    -- u32 in the API; BIGINT so that every u32 value fits.
    format_version BIGINT NOT NULL,
    state          BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX game_snapshots_game_room_id ON game_snapshots (game, room, id);

-- Doc rooms: the update log. Every accepted Yjs update is appended here before it
-- is relayed; compaction folds a prefix of it into a doc snapshot and deletes it.
-- ("update" is a reserved word, hence the column name "data".)
CREATE TABLE doc_updates (
    doc        TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (doc, seq)
);

-- Doc rooms: compacted states; a snapshot covers every update with seq <= through_seq.
CREATE TABLE doc_snapshots (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc         TEXT   NOT NULL,
    through_seq BIGINT NOT NULL,
    state       BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX doc_snapshots_doc_id ON doc_snapshots (doc, id);
