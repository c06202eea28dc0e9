-- Every link write that changes a large column (the referral snapshot, the
-- Salesforce record and projection, the last commands) compresses it again
-- on its way to TOAST. With the default pglz that was the largest single
-- function of Postgres under load (about 6 % of its CPU at 200 referrals/s);
-- lz4 compresses the same values about three times faster, for values some
-- 15 % larger (docs/performance.md). Only values written from now on use it;
-- older ones stay readable as they are. A server built without lz4 keeps
-- pglz, with a notice.
DO $$
BEGIN
    ALTER TABLE mapper.links
        ALTER COLUMN snapshot SET COMPRESSION lz4,
        ALTER COLUMN sf_projection SET COMPRESSION lz4,
        ALTER COLUMN command SET COMPRESSION lz4,
        ALTER COLUMN sf_record SET COMPRESSION lz4,
        ALTER COLUMN sync SET COMPRESSION lz4,
        ALTER COLUMN pc_command SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'mapper.links keeps pglz compression: %', SQLERRM;
END
$$;
