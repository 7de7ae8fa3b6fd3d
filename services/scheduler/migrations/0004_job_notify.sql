-- Whether a job's task wanted notifications when the job was created (NEVER / ERRORS /
-- ALWAYS, NEVER when it had no channel): finished jobs that cannot notify skip the outbox.
ALTER TABLE jobs ADD COLUMN notify text NOT NULL DEFAULT 'NEVER';
