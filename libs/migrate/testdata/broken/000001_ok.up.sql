CREATE TABLE fine (id bigint PRIMARY KEY);
