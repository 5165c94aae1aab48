-- The shooting club: users, groups and memberships, sessions with their shots, activities.
CREATE TABLE IF NOT EXISTS users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    display_name VARCHAR(100) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE IF NOT EXISTS club_groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS memberships (
    group_id BIGINT NOT NULL REFERENCES club_groups (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user_idx ON memberships (user_id);

CREATE TABLE IF NOT EXISTS shooting_sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES club_groups (id) ON DELETE SET NULL,
    started_at TIMESTAMPTZ NOT NULL,
    location VARCHAR(200),
    discipline VARCHAR(50) NOT NULL,
    distance_meters INTEGER,
    notes TEXT,
    shot_count INTEGER NOT NULL DEFAULT 0,
    total_tenths INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_started_idx ON shooting_sessions (started_at, id);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON shooting_sessions (user_id, started_at, id);
CREATE INDEX IF NOT EXISTS sessions_group_idx ON shooting_sessions (group_id, started_at, id);

CREATE TABLE IF NOT EXISTS shots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES shooting_sessions (id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    score_tenths SMALLINT NOT NULL CHECK (score_tenths BETWEEN 0 AND 109),
    x DOUBLE PRECISION,
    y DOUBLE PRECISION,
    CONSTRAINT shots_sequence_key UNIQUE (session_id, sequence)
);

CREATE TABLE IF NOT EXISTS activities (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES club_groups (id) ON DELETE SET NULL,
    session_id BIGINT REFERENCES shooting_sessions (id) ON DELETE SET NULL
);
CREATE INDEX IF NOT EXISTS activities_user_idx ON activities (user_id, id);
CREATE INDEX IF NOT EXISTS activities_group_idx ON activities (group_id, id);
