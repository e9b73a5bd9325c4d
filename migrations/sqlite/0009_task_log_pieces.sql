-- A running attempt's output is kept a piece at a time as it comes (docs/engine.md): each
-- task_logs row is one piece, in id order, and the attempt's end comes with its last piece.
-- Rows written before this were whole attempts, written at their end.
ALTER TABLE task_logs ADD COLUMN ended INTEGER NOT NULL DEFAULT 1 CHECK (ended IN (0, 1));
