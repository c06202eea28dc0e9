DROP TABLE gadgets;
DELETE FROM widgets WHERE id = 1;
