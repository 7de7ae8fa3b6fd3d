-- What RunTask changed for one run (RunOverrides as proto3 JSON); NULL = the task as it is.
ALTER TABLE jobs ADD COLUMN overrides jsonb;
