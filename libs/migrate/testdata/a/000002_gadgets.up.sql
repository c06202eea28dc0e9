CREATE TABLE gadgets (id bigint PRIMARY KEY, widget_id bigint NOT NULL REFERENCES widgets (id));
INSERT INTO widgets (id) VALUES (1);
