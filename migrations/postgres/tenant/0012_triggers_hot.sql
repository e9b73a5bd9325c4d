-- Every pass that fires a trigger writes its row back. The due time had an index of its own,
-- which made each write-back a non-HOT update: a new entry in each of the table's three
-- indexes per fire, and a new heap tuple off the row's page. A pass now finds its tenant's due
-- triggers by reading the tenant's triggers whole (a page holds a few dozen; their number is
-- what the tenant's packages declare, not their history), and the write-back stays on the
-- row's page, in the room each page keeps for it.
DROP INDEX IF EXISTS triggers_due;
ALTER TABLE triggers SET (fillfactor = 70);
