-- The session an activity is about, kept when the session is deleted (session_id is then null):
-- shootingSessionChanged reads it to announce the deletion. No foreign key, on purpose.
ALTER TABLE activities ADD COLUMN IF NOT EXISTS session_ref BIGINT;
UPDATE activities SET session_ref = session_id;
-- Every committed activity is announced to the gateways LISTENing on gateway_activity, whoever wrote
-- it; the payload is its id only, each gateway reads the row itself. One line: migrations split on `;`.
CREATE OR REPLACE FUNCTION gateway_announce_activity() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('gateway_activity', NEW.id::text); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS activities_announce ON activities;
CREATE TRIGGER activities_announce AFTER INSERT ON activities FOR EACH ROW EXECUTE FUNCTION gateway_announce_activity();
