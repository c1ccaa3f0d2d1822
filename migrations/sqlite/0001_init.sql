-- The key index: one row per key, pointing at the object that holds its image.
CREATE TABLE key_image (
    key     TEXT PRIMARY KEY NOT NULL,
    object  TEXT NOT NULL,
    mime    TEXT NOT NULL,
    version INTEGER NOT NULL
);

-- One global version counter: it only grows, across deletes and restarts.
CREATE TABLE counter (
    id           INTEGER PRIMARY KEY CHECK (id = 0),
    next_version INTEGER NOT NULL
);
INSERT INTO counter (id, next_version) VALUES (0, 1);
