CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    msg_id       text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, msg_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed_at_idx ON inbox (processed_at);

CREATE TABLE items (
    id   bigint PRIMARY KEY,
    name text   NOT NULL UNIQUE,
    qty  int    NOT NULL CHECK (qty >= 0)
);
