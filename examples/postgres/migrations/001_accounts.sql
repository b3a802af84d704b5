CREATE TABLE accounts (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email  text NOT NULL UNIQUE,
    credit numeric(12, 2) NOT NULL DEFAULT 0
);
