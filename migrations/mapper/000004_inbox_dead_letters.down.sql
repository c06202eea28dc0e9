DROP TABLE IF EXISTS mapper.dead_letters;
DROP TABLE IF EXISTS mapper.inbox;
