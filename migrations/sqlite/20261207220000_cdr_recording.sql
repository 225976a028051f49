-- The call's recording (MixMonitor): the WAV file the switch named, NULL
-- when the call was not recorded. Rows from before stay NULL.
ALTER TABLE cdr ADD COLUMN recording TEXT;
