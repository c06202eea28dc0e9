-- Each service keeps its tables in its own Postgres schema so names never collide
-- and one service's migrations never touch another's tables.
CREATE SCHEMA IF NOT EXISTS mapper;
