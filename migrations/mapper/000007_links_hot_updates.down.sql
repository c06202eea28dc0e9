ALTER TABLE mapper.links RESET (fillfactor);
DROP INDEX mapper.links_parked_idx;
CREATE INDEX links_parked_idx ON mapper.links (updated_at) WHERE state = 'parked';
