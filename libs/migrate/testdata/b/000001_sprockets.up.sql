CREATE TABLE sprockets (id bigint PRIMARY KEY);
