CREATE TABLE seen (event_id text PRIMARY KEY, close numeric NOT NULL);
