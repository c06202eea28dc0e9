ALTER TABLE mapper.links
    ALTER COLUMN snapshot SET COMPRESSION default,
    ALTER COLUMN sf_projection SET COMPRESSION default,
    ALTER COLUMN command SET COMPRESSION default,
    ALTER COLUMN sf_record SET COMPRESSION default,
    ALTER COLUMN sync SET COMPRESSION default,
    ALTER COLUMN pc_command SET COMPRESSION default;
