-- An app's token activity (tokens issued, authentications refused) is read
-- per client and time range.
CREATE INDEX audit_events_by_subject ON audit_events (subject, at);
