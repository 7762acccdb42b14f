-- Which live node recovered a dead node (closed its unfinished journal rows and
-- scheduled its waiting callers' callbacks), and when. Set by one conditional
-- UPDATE, so exactly one survivor does it; cleared when the node starts or
-- renews its row again (a new life can be recovered again).
ALTER TABLE nodes ADD COLUMN recovered_by TEXT;
ALTER TABLE nodes ADD COLUMN recovered_at TIMESTAMPTZ;
