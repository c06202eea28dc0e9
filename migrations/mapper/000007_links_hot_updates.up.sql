-- Every message the mapper handles rewrites its link row. Two things kept
-- those updates from being HOT (heap-only: the new row version stays on
-- its page and no index is touched): links_parked_idx indexed updated_at,
-- which every update changes, and full pages left no room for the new
-- version. Index the few parked links by id instead (they are listed
-- rarely, and sorted in memory) and leave a third of each page free.
-- The fillfactor applies to pages written from now on.
DROP INDEX mapper.links_parked_idx;
CREATE INDEX links_parked_idx ON mapper.links (id) WHERE state = 'parked';
ALTER TABLE mapper.links SET (fillfactor = 70);
