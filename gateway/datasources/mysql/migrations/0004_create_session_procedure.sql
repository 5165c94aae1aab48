-- createShootingSession's writes in one round trip: the session (only if its user and group
-- exist), its shots and the activity, in one transaction, where the statements cost five round
-- trips (BEGIN, three INSERTs, COMMIT). The answer is one row, session_id, NULL when the user or
-- the group does not exist. The shots come as one text of p_shot_count records of 54 bytes:
-- score_tenths in 6, x and y in 24 each (Python's repr of a float fits), right-aligned, blank
-- for NULL (gateway/datasources/mysql/procedures.py writes it).
-- Strings are utf8mb4 whatever the database's default character set, and wider than their
-- columns, so a value too long fails on the column as the plain INSERT does. SQL SECURITY
-- INVOKER: it runs with the caller's privileges, who needs EXECUTE on it besides the tables'.
-- Creating it takes CREATE ROUTINE. IF NOT EXISTS (MariaDB 10.1.3+, MySQL 8.0.29+): a start that
-- stopped after creating it, before recording this migration, runs it again without failing on
-- "already exists" (no DROP first: dropping takes ALTER ROUTINE, even IF EXISTS).
DELIMITER //
CREATE PROCEDURE IF NOT EXISTS gateway_create_session(
    p_user BIGINT, p_group BIGINT, p_started DATETIME(6), p_location TEXT CHARACTER SET utf8mb4,
    p_discipline TEXT CHARACTER SET utf8mb4, p_distance BIGINT, p_notes TEXT CHARACTER SET utf8mb4,
    p_shot_count BIGINT, p_total_tenths BIGINT, p_now DATETIME(6), p_shots LONGBLOB)
    MODIFIES SQL DATA
    SQL SECURITY INVOKER
BEGIN
    DECLARE new_id BIGINT DEFAULT NULL;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;
    START TRANSACTION;
    INSERT INTO shooting_sessions (user_id, group_id, started_at, location, discipline,
        distance_meters, notes, shot_count, total_tenths, created_at)
    SELECT p_user, p_group, p_started, p_location, p_discipline, p_distance, p_notes,
        p_shot_count, p_total_tenths, p_now
    FROM users u WHERE u.id = p_user
        AND (p_group IS NULL OR EXISTS (SELECT 1 FROM club_groups g WHERE g.id = p_group));
    IF ROW_COUNT() = 1 THEN
        SET new_id = LAST_INSERT_ID();
        -- One row per shot, numbered by a recursive CTE (JSON_TABLE would need MariaDB 10.6), cut
        -- from fixed-width text: parsing JSON again for every value cost the server ~20% more.
        INSERT INTO shots (session_id, sequence, score_tenths, x, y)
        WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < p_shot_count)
        SELECT new_id, n.i + 1,
            SUBSTRING(p_shots, n.i * 54 + 1, 6),
            NULLIF(TRIM(SUBSTRING(p_shots, n.i * 54 + 7, 24)), ''),
            NULLIF(TRIM(SUBSTRING(p_shots, n.i * 54 + 31, 24)), '')
        FROM n WHERE n.i < p_shot_count;
        INSERT INTO activities (kind, created_at, user_id, group_id, session_id, session_ref)
        VALUES ('SESSION_CREATED', p_now, p_user, p_group, new_id, new_id);
    END IF;
    COMMIT;
    SELECT new_id AS session_id;
END //
DELIMITER ;
