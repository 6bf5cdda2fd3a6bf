-- Bumped by every transaction that changes the book or the inbox, so an instance that still
-- holds the book in memory knows whether it may reuse it (nobody else wrote since) or must reload.
ALTER TABLE account ADD COLUMN version bigint NOT NULL DEFAULT 0;
