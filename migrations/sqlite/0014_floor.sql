-- The floor the nodes of a cluster share: each operator's state and which node
-- may offer them a call, the softphone bindings each node registered, and what
-- each node has waiting for an operator. One row per operator, per (operator,
-- node) binding set and per (node, tenant, city) demand: small tables that every
-- node reads whole a few times a second.

-- An operator's state as last written by any node. The holder is the node that may
-- offer them a call (granted, one node at a time, under a row lock) or holds the
-- call they are on; NULL when nobody does.
CREATE TABLE floor_operators (
    extension  TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    reason     TEXT,
    since      TEXT NOT NULL,
    call_id    TEXT,
    holder     TEXT,
    node       TEXT NOT NULL
);

-- The live bindings of an operator's softphones that one node registered, as JSON
-- (contact, source flow, expiry in UTC): any node can ring any softphone.
CREATE TABLE floor_bindings (
    extension  TEXT NOT NULL,
    node       TEXT NOT NULL,
    bindings   TEXT NOT NULL,
    PRIMARY KEY (extension, node)
);

-- What a node has waiting for an operator: for each tenant and city ('' for any),
-- how many calls and jobs wait and since when the longest-waiting has waited. An
-- operator goes to the node whose work has waited longest.
CREATE TABLE floor_demand (
    node       TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    city       TEXT NOT NULL,
    since      TEXT NOT NULL,
    waiting    BIGINT NOT NULL,
    PRIMARY KEY (node, tenant, city)
);
