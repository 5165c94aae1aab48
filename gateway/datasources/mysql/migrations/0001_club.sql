-- The shooting club: users, groups and memberships, sessions with their shots, activities.
-- Binary collation (made NO PAD by 0005, so text compares exactly as on PostgreSQL and SQLite).
CREATE TABLE IF NOT EXISTS users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(254) NOT NULL,
    display_name VARCHAR(100) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    UNIQUE KEY users_email_key (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS club_groups (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    description TEXT,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS memberships (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    joined_at DATETIME(6) NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY memberships_user_idx (user_id),
    CONSTRAINT memberships_group_fk FOREIGN KEY (group_id) REFERENCES club_groups (id) ON DELETE CASCADE,
    CONSTRAINT memberships_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS shooting_sessions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    group_id BIGINT NULL,
    started_at DATETIME(6) NOT NULL,
    location VARCHAR(200),
    discipline VARCHAR(50) NOT NULL,
    distance_meters INT,
    notes TEXT,
    shot_count INT NOT NULL DEFAULT 0,
    total_tenths INT NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    KEY sessions_started_idx (started_at, id),
    KEY sessions_user_idx (user_id, started_at, id),
    KEY sessions_group_idx (group_id, started_at, id),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT sessions_group_fk FOREIGN KEY (group_id) REFERENCES club_groups (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS shots (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    session_id BIGINT NOT NULL,
    sequence INT NOT NULL,
    score_tenths SMALLINT NOT NULL,
    x DOUBLE,
    y DOUBLE,
    UNIQUE KEY shots_sequence_key (session_id, sequence),
    CONSTRAINT shots_score_range CHECK (score_tenths BETWEEN 0 AND 109),
    CONSTRAINT shots_session_fk FOREIGN KEY (session_id) REFERENCES shooting_sessions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS activities (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    user_id BIGINT NOT NULL,
    group_id BIGINT NULL,
    session_id BIGINT NULL,
    KEY activities_user_idx (user_id, id),
    KEY activities_group_idx (group_id, id),
    CONSTRAINT activities_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT activities_group_fk FOREIGN KEY (group_id) REFERENCES club_groups (id) ON DELETE SET NULL,
    CONSTRAINT activities_session_fk FOREIGN KEY (session_id) REFERENCES shooting_sessions (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
