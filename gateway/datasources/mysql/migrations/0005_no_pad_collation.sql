-- Text compares exactly as on PostgreSQL and SQLite. utf8mb4_bin pads with spaces ('ada ' = 'ada',
-- one unique key for both), so a token whose `sub` was a member's with a trailing space signed in
-- as that member, and a filter on "Air " found "Air". The NO PAD binary collation is
-- utf8mb4_nopad_bin on MariaDB and utf8mb4_0900_bin on MySQL 8: the server's is chosen here.
-- MySQL cannot roll DDL back: if this stops half-way it runs again whole, each step idempotent.
DROP PROCEDURE IF EXISTS gateway_no_pad;
DELIMITER //
CREATE PROCEDURE gateway_no_pad()
BEGIN
    DECLARE collation VARCHAR(32) DEFAULT IF(VERSION() LIKE '%MariaDB%', 'utf8mb4_nopad_bin', 'utf8mb4_0900_bin');
    DECLARE done INT DEFAULT 0;
    DECLARE name VARCHAR(64);
    DECLARE tables CURSOR FOR
        SELECT t.table_name FROM (
            SELECT 'users' AS table_name UNION ALL SELECT 'club_groups'
            UNION ALL SELECT 'shooting_sessions' UNION ALL SELECT 'activities') t;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
    OPEN tables;
    convert_each: LOOP
        FETCH tables INTO name;
        IF done THEN
            LEAVE convert_each;
        END IF;
        SET @gateway_sql = CONCAT('ALTER TABLE ', name, ' CONVERT TO CHARACTER SET utf8mb4 COLLATE ', collation);
        PREPARE statement FROM @gateway_sql;
        EXECUTE statement;
        DEALLOCATE PREPARE statement;
    END LOOP;
    CLOSE tables;
END //
DELIMITER ;
CALL gateway_no_pad();
DROP PROCEDURE gateway_no_pad;
