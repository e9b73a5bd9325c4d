-- Task rows carry no foreign key to their execution, as events and logs carry none
-- (0004): the key check ran a query and locked the new execution's row (KEY SHARE, a WAL
-- record) for every task row inserted, an eighth of a trigger pass's database time. Tasks
-- are only ever inserted with their execution, in one statement, and pruning deletes them
-- with it.
ALTER TABLE execution_tasks DROP CONSTRAINT IF EXISTS execution_tasks_execution_id_fkey;
