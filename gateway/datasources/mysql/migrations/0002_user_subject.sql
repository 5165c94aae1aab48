-- A profile belongs to the signed-in person whose token's `sub` it holds (null: made by an admin or before sign-in).
-- One statement, so MySQL's non-transactional DDL cannot stop half-way.
ALTER TABLE users ADD COLUMN subject VARCHAR(255) NULL, ADD UNIQUE KEY users_subject_key (subject);
