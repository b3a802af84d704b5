CREATE TABLE orders (
    id         serial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    total      numeric(12, 2) NOT NULL CHECK (total > 0)
);
-- Reference data the tests rely on, loaded once with the schema.
INSERT INTO accounts (email, credit) VALUES ('house@example.com', 1000);
