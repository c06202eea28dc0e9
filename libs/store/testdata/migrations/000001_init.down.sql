DROP TABLE items;
DROP TABLE inbox;
