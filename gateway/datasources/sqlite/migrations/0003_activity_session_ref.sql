-- The session an activity is about, kept when the session is deleted (session_id is then null):
-- shootingSessionChanged reads it to announce the deletion. No foreign key, on purpose.
ALTER TABLE activities ADD COLUMN session_ref INTEGER;
UPDATE activities SET session_ref = session_id;
