-- A profile belongs to the signed-in person whose token's `sub` it holds (null: made by an admin or before sign-in).
ALTER TABLE users ADD COLUMN subject TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS users_subject_key ON users (subject);
