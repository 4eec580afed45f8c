-- roomcast schema, SQLite dialect (migrations/postgres/ holds the same schema for
-- PostgreSQL). Every timestamp is unix time in milliseconds (INTEGER), written by
-- the server, so both dialects store and return exactly the same values.
-- AUTOINCREMENT: ids are never reused, even after the newest rows were deleted,
-- so an id handed to an operator always names the same snapshot.

-- Game rooms: periodic snapshots of a room's state; the store keeps the newest K
-- per (game, room), "newest" meaning highest id.
CREATE TABLE game_snapshots (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    game           TEXT    NOT NULL,
    room           TEXT    NOT NULL,
    tick           INTEGER NOT NULL,
    format_version INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX game_snapshots_game_room_id ON game_snapshots (game, room, id);

-- Doc rooms: the update log. Every accepted Yjs update is appended here before it
-- is relayed; compaction folds a prefix of it into a doc snapshot and deletes it.
-- ("update" is a reserved word, hence the column name "data".)
CREATE TABLE doc_updates (
    doc        TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (doc, seq)
);

-- Doc rooms: compacted states; a snapshot covers every update with seq <= through_seq.
CREATE TABLE doc_snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    doc         TEXT    NOT NULL,
    through_seq INTEGER NOT NULL,
    state       BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX doc_snapshots_doc_id ON doc_snapshots (doc, id);
