CREATE TABLE half (id bigint PRIMARY KEY);
SELECT no_such_function();
