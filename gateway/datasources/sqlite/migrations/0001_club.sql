-- The shooting club: users, groups and memberships, sessions with their shots, activities.
-- Timestamps are ISO-8601 UTC text of fixed width, so they sort as they compare.
-- AUTOINCREMENT: an id is never reused after a delete, so an old opaque id never names a new row.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS club_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS memberships (
    group_id INTEGER NOT NULL REFERENCES club_groups (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user_idx ON memberships (user_id);

CREATE TABLE IF NOT EXISTS shooting_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER REFERENCES club_groups (id) ON DELETE SET NULL,
    started_at TEXT NOT NULL,
    location TEXT,
    discipline TEXT NOT NULL,
    distance_meters INTEGER,
    notes TEXT,
    shot_count INTEGER NOT NULL DEFAULT 0,
    total_tenths INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_started_idx ON shooting_sessions (started_at, id);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON shooting_sessions (user_id, started_at, id);
CREATE INDEX IF NOT EXISTS sessions_group_idx ON shooting_sessions (group_id, started_at, id);

CREATE TABLE IF NOT EXISTS shots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES shooting_sessions (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    score_tenths INTEGER NOT NULL CHECK (score_tenths BETWEEN 0 AND 109),
    x REAL,
    y REAL,
    UNIQUE (session_id, sequence)
);

CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER REFERENCES club_groups (id) ON DELETE SET NULL,
    session_id INTEGER REFERENCES shooting_sessions (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS activities_user_idx ON activities (user_id, id);
CREATE INDEX IF NOT EXISTS activities_group_idx ON activities (group_id, id);
