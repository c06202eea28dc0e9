DROP TABLE IF EXISTS mapper.links;
