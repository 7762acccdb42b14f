-- The number a dial job's original call dialled: a callback goes out from it (and
-- its trunk), so a citywide caller whose company is not known is called back from
-- the citywide number, never from another company's. NULL for jobs without one.
ALTER TABLE dial_jobs ADD COLUMN origin_number TEXT;

