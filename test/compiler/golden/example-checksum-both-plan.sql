-- bisync plan b8bacb0b05085d2f6db26fae64d98f2fc89bdd7d1db4117954464f1f3818d89b
-- config: sync.config.yaml; state schema: bisync; 1 step
-- Parameters are listed above each statement; values are sent as $n parameters, never spliced into SQL.

-- ============================================================================
-- Step 1/1: jobshead forward: desktop public.jobshead → cloud public.jobshead
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; checksum-first: each database sums, per bucket of keys (1,024 buckets), the fingerprint of every key whose row its own copy of the base holds as agreed with no conflict parked; only the rows of buckets that differ are read
-- write: upsert; deletes: keep; columns: job_id, client_id, template_id, job_name, job_status, fee, due_date, notes, extra
-- step hash: 687f07f9924d6bf246f4daa2133351826fa7efc55113d3c0fe5768b5ed88173c
-- ============================================================================

-- Bootstrap on cloud, only if bisync.state/runs/rejects/base/conflicts are missing:

-- [cloud] bootstrap bisync's state on cloud, only if it is missing
BEGIN ISOLATION LEVEL READ COMMITTED;

-- [cloud] transaction-local settings (search_path pinned)
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true);

-- [cloud] refuse a state schema another role made or changed; stop here (rollback) when all its tables exist
--   $1 = 'bisync'  (state schema)
-- Who owns bisync's state schema? bisync only uses it when the schema and its tables (state, runs,
-- rejects, base, conflicts) belong to the connecting role (or a role it is a member of; being
-- superuser does not count) and are plain tables without triggers or rules: otherwise another role
-- could have prepared them to run its code, or to plant rows, with bisync's privileges. Read-only.
WITH RECURSIVE mine AS (
  SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user
  UNION
  SELECT m.roleid FROM pg_auth_members AS m JOIN mine ON m.member = mine.oid
)
SELECT n.oid IS NOT NULL AS schema_exists,
       pg_get_userbyid(n.nspowner) AS schema_owner,
       coalesce(n.nspowner IN (SELECT oid FROM mine), false) AS schema_mine,
       current_user AS me,
       -- state and runs tables an earlier bisync created lack xmin_cursor, base_tracked and the wire counts, and its
       -- base holds keys as jsonb: bootstrap adds the columns and converts the keys to text "C"
       (SELECT count(*) = 5 FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
         WHERE c.relnamespace = n.oid AND NOT a.attisdropped
           AND (c.relname, a.attname) IN (('state', 'xmin_cursor'), ('state', 'base_tracked'), ('runs', 'round_trips'), ('runs', 'bytes_sent'), ('runs', 'bytes_received')))
       AND NOT EXISTS (SELECT 1 FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
                        WHERE c.relnamespace = n.oid AND c.relname = 'base' AND a.attname = 'key' AND NOT a.attisdropped
                          AND (a.atttypid <> 'pg_catalog.text'::pg_catalog.regtype OR a.attcollation <> 'pg_catalog."C"'::pg_catalog.regcollation)) AS state_current,
       (SELECT json_agg(json_build_object(
                 'name', t.name,
                 'exists', c.oid IS NOT NULL,
                 'kind', c.relkind,
                 'owner', pg_get_userbyid(c.relowner),
                 'mine', coalesce(c.relowner IN (SELECT oid FROM mine), false),
                 'triggers', (SELECT count(*) FROM pg_trigger AS g WHERE g.tgrelid = c.oid),
                 'rules', (SELECT count(*) FROM pg_rewrite AS w WHERE w.ev_class = c.oid)) ORDER BY t.ord)
          FROM unnest(ARRAY['state', 'runs', 'rejects', 'base', 'conflicts']) WITH ORDINALITY AS t(name, ord)
          LEFT JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = t.name) AS tables
  FROM (SELECT 1) AS one
  LEFT JOIN pg_namespace AS n ON n.nspname = $1;

-- [cloud] serialise concurrent bootstraps
--   $1 = 'bisync bootstrap bisync'  (bootstrap lock key)
-- Serialise bootstrap between concurrent runs (released at COMMIT).
SELECT pg_advisory_xact_lock(hashtext($1));

-- [cloud] create schema bisync and its tables
-- bisync's own tables, in their own schema (never public). Idempotent.
CREATE SCHEMA IF NOT EXISTS "bisync";

CREATE TABLE IF NOT EXISTS "bisync".state (
  table_name  text        NOT NULL,
  direction   text        NOT NULL CHECK (direction IN ('forward', 'reverse')),
  watermark   timestamptz,
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (table_name, direction)
);

-- For xmin reads (SPEC 8); a state table an earlier bisync created gets the column here.
ALTER TABLE "bisync".state ADD COLUMN IF NOT EXISTS xmin_cursor jsonb;

-- base_tracked: this step records in base every row it writes (reverse under edits: owner, SPEC 7),
-- so a row on T without a base entry was not written by bisync. Rows of an earlier bisync get false
-- (their step's next run reads in full once and records what both sides hold); new rows start true.
ALTER TABLE "bisync".state ADD COLUMN IF NOT EXISTS base_tracked boolean NOT NULL DEFAULT false;
ALTER TABLE "bisync".state ALTER COLUMN base_tracked SET DEFAULT true;

CREATE TABLE IF NOT EXISTS "bisync".runs (
  run_id           uuid        NOT NULL,
  table_name       text        NOT NULL,
  direction        text        NOT NULL,
  attempt          integer     NOT NULL DEFAULT 1,
  mode             text        NOT NULL,
  reason           text        NOT NULL,
  plan_hash        text        NOT NULL,
  status           text        NOT NULL,
  started_at       timestamptz NOT NULL,
  finished_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  read_rows        bigint,
  inserted         bigint,
  updated          bigint,
  unchanged        bigint,
  protected        bigint,
  rejected         bigint,
  deleted          bigint,
  watermark_before timestamptz,
  watermark_after  timestamptz,
  error            text,
  PRIMARY KEY (run_id, table_name, direction, attempt)
);

-- The step's cost on the wire (SPEC 8), as counted when its run row was written: round trips (its
-- own included), bytes sent and received until then. NULL for steps that did not get that far. A
-- runs table an earlier bisync created gets the columns here.
ALTER TABLE "bisync".runs
  ADD COLUMN IF NOT EXISTS round_trips integer,
  ADD COLUMN IF NOT EXISTS bytes_sent bigint,
  ADD COLUMN IF NOT EXISTS bytes_received bigint;

CREATE TABLE IF NOT EXISTS "bisync".rejects (
  table_name  text        NOT NULL,
  direction   text        NOT NULL,
  key         jsonb       NOT NULL,
  row_data    jsonb       NOT NULL,
  reason      text        NOT NULL CHECK (reason IN ('error', 'conflict')),
  error_code  text,
  error       text,
  attempts    integer     NOT NULL DEFAULT 1,
  first_seen  timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_tried  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (table_name, direction, key)
);

-- The base (SPEC 7): per key of a table synced both ways, the fingerprint of the version both sides
-- last agreed on. Each database keeps its own copy, written in the same transaction as the data; a
-- step uses the fresher (higher generation) of its source's and its target's copy. A NULL fingerprint
-- records a delete both sides agreed on. The key is text compared byte by byte (collation "C"): a
-- one-column key is its value's text, a key of several columns the text of the JSON array of their texts.
CREATE TABLE IF NOT EXISTS "bisync".base (
  table_name  text        NOT NULL,
  key         text        COLLATE "C" NOT NULL,
  fingerprint text,
  generation  bigint      NOT NULL,
  agreed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (table_name, key)
);

-- A base an earlier bisync created keeps its keys as JSON arrays (jsonb): converted here, in place, to the
-- text above (an array of one value becomes that value's text, a longer one the array's text); fingerprints
-- and generations are kept, so nothing is re-recorded. A key already text stays as it is (to_jsonb of
-- a text is a JSON string), so running this again, e.g. by a second bootstrap that waited on the lock
-- above, changes nothing.
ALTER TABLE "bisync".base
  ALTER COLUMN key TYPE text COLLATE "C"
  USING CASE WHEN jsonb_typeof(to_jsonb(key)) = 'array'
             THEN CASE WHEN jsonb_array_length(to_jsonb(key)) = 1 THEN to_jsonb(key) ->> 0 ELSE to_jsonb(key)::text END
             ELSE to_jsonb(key) #>> '{}'
        END;

-- Conflicts (SPEC 7): both sides changed a row since the base. Parked keys are left alone until
-- `bisync resolve` settles them, or until both sides hold the same version again.
CREATE TABLE IF NOT EXISTS "bisync".conflicts (
  table_name       text        NOT NULL,
  key              jsonb       NOT NULL,
  kind             text        NOT NULL CHECK (kind IN ('update-update', 'insert-insert', 'delete-update', 'update-delete')),
  versions         jsonb       NOT NULL,
  base_fingerprint text,
  first_detected   timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_detected    timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (table_name, key)
);

-- [cloud] check again: CREATE … IF NOT EXISTS would accept a schema created meanwhile by another role
--   $1 = 'bisync'  (state schema)
-- Who owns bisync's state schema? bisync only uses it when the schema and its tables (state, runs,
-- rejects, base, conflicts) belong to the connecting role (or a role it is a member of; being
-- superuser does not count) and are plain tables without triggers or rules: otherwise another role
-- could have prepared them to run its code, or to plant rows, with bisync's privileges. Read-only.
WITH RECURSIVE mine AS (
  SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user
  UNION
  SELECT m.roleid FROM pg_auth_members AS m JOIN mine ON m.member = mine.oid
)
SELECT n.oid IS NOT NULL AS schema_exists,
       pg_get_userbyid(n.nspowner) AS schema_owner,
       coalesce(n.nspowner IN (SELECT oid FROM mine), false) AS schema_mine,
       current_user AS me,
       -- state and runs tables an earlier bisync created lack xmin_cursor, base_tracked and the wire counts, and its
       -- base holds keys as jsonb: bootstrap adds the columns and converts the keys to text "C"
       (SELECT count(*) = 5 FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
         WHERE c.relnamespace = n.oid AND NOT a.attisdropped
           AND (c.relname, a.attname) IN (('state', 'xmin_cursor'), ('state', 'base_tracked'), ('runs', 'round_trips'), ('runs', 'bytes_sent'), ('runs', 'bytes_received')))
       AND NOT EXISTS (SELECT 1 FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
                        WHERE c.relnamespace = n.oid AND c.relname = 'base' AND a.attname = 'key' AND NOT a.attisdropped
                          AND (a.atttypid <> 'pg_catalog.text'::pg_catalog.regtype OR a.attcollation <> 'pg_catalog."C"'::pg_catalog.regcollation)) AS state_current,
       (SELECT json_agg(json_build_object(
                 'name', t.name,
                 'exists', c.oid IS NOT NULL,
                 'kind', c.relkind,
                 'owner', pg_get_userbyid(c.relowner),
                 'mine', coalesce(c.relowner IN (SELECT oid FROM mine), false),
                 'triggers', (SELECT count(*) FROM pg_trigger AS g WHERE g.tgrelid = c.oid),
                 'rules', (SELECT count(*) FROM pg_rewrite AS w WHERE w.ev_class = c.oid)) ORDER BY t.ord)
          FROM unnest(ARRAY['state', 'runs', 'rejects', 'base', 'conflicts']) WITH ORDINALITY AS t(name, ord)
          LEFT JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = t.name) AS tables
  FROM (SELECT 1) AS one
  LEFT JOIN pg_namespace AS n ON n.nspname = $1;

-- [cloud] this step's row of state, for its lock (apply claims every step's row before the steps run)
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

-- The probe (its checksums summed over the table on each database), run before any step, inside one transaction per database (BEGIN … COMMIT) shared with the other steps' probes.
-- When the probe finds nothing to do, the statements below do not run.
-- apply --probe auto (the default) probes only over a slow link: a round trip of 10 ms or more to either database while the catalog was read; --probe always | never.

-- [cloud] transaction-local settings (search_path pinned)
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true);

-- [cloud] no other run holds this step's lock (else the step runs, and reports it)
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction of the locked row)
-- Probe: is the row of bisync's state that this step locks free? SKIP LOCKED
-- never waits: while another run holds it this answers false, and the step then runs as planned (its own
-- lock answers lock_not_available: exit 3). Held by this probe's transaction only until the probe ends.
SELECT EXISTS (SELECT 1
                 FROM "bisync".state AS st
                WHERE st.table_name = $1
                  AND st.direction = $2
                  FOR UPDATE SKIP LOCKED) AS free;

-- [cloud] this step's checksums on cloud, summed over the table
--   $1 = 'cloud'  (this database)
--   $2 = 'jobshead'  (table)
-- Probe: this step's checksums on cloud (the statement below: its bucket checksums, as planned, summed over the
-- whole table instead of per bucket, so no key is hashed into a bucket and nothing is sorted): how many rows, and the sum.
-- Equal rows and sums on both databases mean every bucket's checksum is equal too (a difference in any bucket changes
-- the total, unless it cancels out exactly: a 64-bit coincidence, as one equal bucket already is): the step would read
-- no row, delete none and write none. Also what the step would report unchanged.
SELECT s.rows,
       s.checksum AS digest
  FROM (
-- cloud (edits: both), for the run-level probe: the step's bucket checksums in one row, computed without
-- pairing rows with the base. Every key is settled on cloud (the rule of the step's bucket checksums: its row
-- and cloud's own copy of the base hold the same fingerprint, or it has no row and the copy no live version,
-- and no conflict is parked) exactly when the fingerprints of the rows and those of the copy's live versions are
-- the same set: the fingerprint covers the key columns, so it names its key, and the copy holds each version under
-- the key of the row it fingerprints (as the merge records it). The counts and the sums of the first 64 bits on both
-- sides compare the two sets (as a bucket's sum compares its rows: equal but for a 64-bit coincidence). Settled: how
-- many rows, and their sum, which equals the other database's only when both hold the same rows, as every bucket
-- would. Not settled: a value naming cloud, which the other database never sends: the step runs, as its
-- buckets would differ. The statement reads the same on cloud for both directions of the table, so a run
-- that asks both computes it once.
SELECT r.rows,
       CASE WHEN r.rows = b.rows AND r.checksum IS NOT DISTINCT FROM b.checksum AND c.parked = 0
            THEN r.checksum::text
            ELSE 'not settled on ' || $1::text
       END AS checksum
  FROM (SELECT count(*)::bigint AS rows,
               sum(('x' || left(md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')), 16))::bit(64)::bigint) AS checksum
          FROM "public"."jobshead" AS t) AS r,
       (SELECT count(*)::bigint AS rows,
               sum(('x' || left(b.fingerprint, 16))::bit(64)::bigint) AS checksum
          FROM "bisync".base AS b
         WHERE b.table_name = $2
           AND b.fingerprint IS NOT NULL) AS b,
       (SELECT count(*)::bigint AS parked
          FROM "bisync".conflicts AS c
         WHERE c.table_name = $2) AS c
       ) AS s;

-- [desktop] transaction-local text formats and settings
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'UTC'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = 'jobshead'  (table)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement, and this step's read window.
-- TimeZone: desktop's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true),
       pg_catalog.set_config('bisync.base_table', $9, true);

-- [desktop] this step's checksums on desktop, summed over the table
--   $1 = 'desktop'  (this database)
--   $2 = 'jobshead'  (table)
-- Probe: this step's checksums on desktop (the statement below: its bucket checksums, as planned, summed over the
-- whole table instead of per bucket, so no key is hashed into a bucket and nothing is sorted): how many rows, and the sum.
-- Equal rows and sums on both databases mean every bucket's checksum is equal too (a difference in any bucket changes
-- the total, unless it cancels out exactly: a 64-bit coincidence, as one equal bucket already is): the step would read
-- no row, delete none and write none. Also what the step would report unchanged.
SELECT s.rows,
       s.checksum AS digest
  FROM (
-- desktop (edits: both), for the run-level probe: the step's bucket checksums in one row, computed without
-- pairing rows with the base. Every key is settled on desktop (the rule of the step's bucket checksums: its row
-- and desktop's own copy of the base hold the same fingerprint, or it has no row and the copy no live version,
-- and no conflict is parked) exactly when the fingerprints of the rows and those of the copy's live versions are
-- the same set: the fingerprint covers the key columns, so it names its key, and the copy holds each version under
-- the key of the row it fingerprints (as the merge records it). The counts and the sums of the first 64 bits on both
-- sides compare the two sets (as a bucket's sum compares its rows: equal but for a 64-bit coincidence). Settled: how
-- many rows, and their sum, which equals the other database's only when both hold the same rows, as every bucket
-- would. Not settled: a value naming desktop, which the other database never sends: the step runs, as its
-- buckets would differ. The statement reads the same on desktop for both directions of the table, so a run
-- that asks both computes it once.
SELECT r.rows,
       CASE WHEN r.rows = b.rows AND r.checksum IS NOT DISTINCT FROM b.checksum AND c.parked = 0
            THEN r.checksum::text
            ELSE 'not settled on ' || $1::text
       END AS checksum
  FROM (SELECT count(*)::bigint AS rows,
               sum(('x' || left(md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')), 16))::bit(64)::bigint) AS checksum
          FROM "public"."jobshead" AS t) AS r,
       (SELECT count(*)::bigint AS rows,
               sum(('x' || left(b.fingerprint, 16))::bit(64)::bigint) AS checksum
          FROM "bisync".base AS b
         WHERE b.table_name = $2
           AND b.fingerprint IS NOT NULL) AS b,
       (SELECT count(*)::bigint AS parked
          FROM "bisync".conflicts AS c
         WHERE c.table_name = $2) AS c
       ) AS s;

-- [cloud] only when the probe finds nothing to do: one row in runs for this step, which did not run
--   $1 = <run id, supplied while running>
--   $2 = 'jobshead'  (table)
--   $3 = 'forward'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'probe: the checksums of every row summed alike on both databases: nothing to do, not run'  (reason)
--   $7 = <plan hash, supplied while running>
--   $8 = <status, supplied while running>
--   $9 = <started at, supplied while running>
--   $10 = <read, supplied while running>
--   $11 = <inserted, supplied while running>
--   $12 = <updated, supplied while running>
--   $13 = <unchanged, supplied while running>
--   $14 = <protected, supplied while running>
--   $15 = <rejected, supplied while running>
--   $16 = <deleted, supplied while running>
--   $17 = NULL  (watermark before)
--   $18 = <watermark after, supplied while running>
--   $19 = <error, supplied while running>
--   $20 = <round trips, supplied while running>
--   $21 = <bytes sent, supplied while running>
--   $22 = <bytes received, supplied while running>
INSERT INTO "bisync".runs
  (run_id, table_name, direction, attempt, mode, reason, plan_hash, status, started_at,
   read_rows, inserted, updated, unchanged, protected, rejected, deleted,
   watermark_before, watermark_after, error, round_trips, bytes_sent, bytes_received)
VALUES ($1, $2, $3, $4, $5, $6,
        $7, $8, $9,
        $10, $11, $12, $13,
        $14, $15, $16,
        $17, $18, $19,
        $20, $21, $22);

-- The step:

-- [cloud] open the write transaction on cloud
BEGIN ISOLATION LEVEL READ COMMITTED;

-- [cloud] transaction-local text formats
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true);

-- [cloud] one run per (table, direction) at a time
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
-- One run per (table, direction): lock this step's row of bisync's state, which only a role that can
-- write bisync's state can lock (an advisory lock, any role that can connect could take). A second
-- concurrent run gets lock_not_available and stops (exit 3); the lock ends with the transaction, or
-- with the connection of a run that was killed.
SELECT true AS locked
  FROM "bisync".state AS st
 WHERE st.table_name = $1
   AND st.direction = $2
   FOR UPDATE NOWAIT;

-- [cloud] the watermark this step starts from (must equal the planned one)
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS watermark,
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS version
  FROM "bisync".state
 WHERE table_name = $1
   AND direction = $2;

-- [cloud] deferred constraints fail per merged batch, not at COMMIT
-- Deferrable constraints are checked at the end of each statement instead of at COMMIT, so a row
-- that breaks one fails inside the merge's savepoint and becomes a reject instead of failing the step.
SET CONSTRAINTS ALL IMMEDIATE;

-- [cloud] staging table, dropped at commit
-- Staging for the rows read from desktop: text columns, cast to the target's types in the merge,
-- so a value the target refuses becomes a reject instead of failing the whole COPY.
CREATE TEMPORARY TABLE "bisync_stage" (
  "job_id" text,
  "client_id" text,
  "template_id" text,
  "job_name" text,
  "job_status" text,
  "fee" text,
  "due_date" text,
  "notes" text,
  "extra" text,
  __bisync_cursor     timestamptz,
  __bisync_present    boolean NOT NULL DEFAULT true,
  __bisync_base_fp    text,
  __bisync_base_gen   bigint,
  __bisync_parked_kind text,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

-- [cloud] checksum-first: per bucket of keys on cloud, the fingerprints of keys whose row and copy of the base agree
--   $1 = 'cloud'  (this database)
--   $2 = 'jobshead'  (table)
-- cloud (edits: both): per bucket of keys, how many keys are settled here and a checksum.
-- A key is settled on cloud when no conflict is parked for it here and either its row and cloud's own copy
-- of the base hold the same fingerprint (the merge's: md5 of the row of synced values, key columns included, a timestamptz
-- as UTC time), or it has no row and the copy no live version. A settled key with a row adds the first 64 bits of its
-- fingerprint (the key is in the row, so two keys never add the same value by holding the same other values); a settled
-- key without one adds nothing; every other key adds a value naming this database (cloud), which the other
-- database never sends, so its bucket differs, is read and merged as a full read merges it. Equal buckets on both
-- databases therefore hold the same rows, each agreed in both copies of the base: the merge would change nothing there.
-- The keys are those of the rows, of the copy of the base and of the parked conflicts; a key's bucket is the
-- first 10 bits of the md5 of its text as the base stores it (one value's text, or the JSON array of several).
-- `r` is MATERIALIZED so that each row's fingerprint is computed once: inlined, PostgreSQL would compute it again in
-- every place below that uses it (up to four times per row).
WITH r AS MATERIALIZED (
  SELECT t."job_id"::text COLLATE "C" AS key,
         md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')) AS fp
    FROM "public"."jobshead" AS t
)
SELECT (('x' || left(md5(convert_to((k.key)::text, 'UTF8')), 4))::bit(16)::int >> 6) AS bucket,
       count(*)::bigint AS rows,
       sum(('x' || left(k.hash, 16))::bit(64)::bigint)::text AS checksum
  FROM (SELECT coalesce(r.key, b.key, c.key) AS key,
               CASE WHEN c.key IS NULL AND r.key IS NOT NULL AND b.fingerprint = r.fp
                      THEN r.fp
                    WHEN c.key IS NULL AND r.key IS NULL AND b.fingerprint IS NULL
                      THEN NULL
                    ELSE md5(convert_to(jsonb_build_array($1::text, coalesce(r.key, b.key, c.key))::text, 'UTF8'))
               END AS hash
          FROM r
          FULL JOIN (SELECT key, fingerprint FROM "bisync".base WHERE table_name = $2) AS b
            ON b.key = r.key
          FULL JOIN (SELECT (CASE WHEN jsonb_array_length(key) = 1 THEN key ->> 0 ELSE key::text END) COLLATE "C" AS key FROM "bisync".conflicts WHERE table_name = $2) AS c
            ON c.key = coalesce(r.key, b.key)) AS k
 WHERE k.hash IS NOT NULL
 GROUP BY 1
 ORDER BY 1;

-- [desktop] open the read snapshot on desktop
-- One snapshot for the rows and their cursor values.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- [desktop] transaction-local text formats and the read window
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'UTC'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = 'jobshead'  (table)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement, and this step's read window.
-- TimeZone: desktop's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true),
       pg_catalog.set_config('bisync.base_table', $9, true);

-- [desktop] checksum-first: per bucket of keys on desktop, the fingerprints of keys whose row and copy of the base agree
--   $1 = 'desktop'  (this database)
--   $2 = 'jobshead'  (table)
-- desktop (edits: both): per bucket of keys, how many keys are settled here and a checksum.
-- A key is settled on desktop when no conflict is parked for it here and either its row and desktop's own copy
-- of the base hold the same fingerprint (the merge's: md5 of the row of synced values, key columns included, a timestamptz
-- as UTC time), or it has no row and the copy no live version. A settled key with a row adds the first 64 bits of its
-- fingerprint (the key is in the row, so two keys never add the same value by holding the same other values); a settled
-- key without one adds nothing; every other key adds a value naming this database (desktop), which the other
-- database never sends, so its bucket differs, is read and merged as a full read merges it. Equal buckets on both
-- databases therefore hold the same rows, each agreed in both copies of the base: the merge would change nothing there.
-- The keys are those of the rows, of the copy of the base and of the parked conflicts; a key's bucket is the
-- first 10 bits of the md5 of its text as the base stores it (one value's text, or the JSON array of several).
-- `r` is MATERIALIZED so that each row's fingerprint is computed once: inlined, PostgreSQL would compute it again in
-- every place below that uses it (up to four times per row).
WITH r AS MATERIALIZED (
  SELECT t."job_id"::text COLLATE "C" AS key,
         md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')) AS fp
    FROM "public"."jobshead" AS t
)
SELECT (('x' || left(md5(convert_to((k.key)::text, 'UTF8')), 4))::bit(16)::int >> 6) AS bucket,
       count(*)::bigint AS rows,
       sum(('x' || left(k.hash, 16))::bit(64)::bigint)::text AS checksum
  FROM (SELECT coalesce(r.key, b.key, c.key) AS key,
               CASE WHEN c.key IS NULL AND r.key IS NOT NULL AND b.fingerprint = r.fp
                      THEN r.fp
                    WHEN c.key IS NULL AND r.key IS NULL AND b.fingerprint IS NULL
                      THEN NULL
                    ELSE md5(convert_to(jsonb_build_array($1::text, coalesce(r.key, b.key, c.key))::text, 'UTF8'))
               END AS hash
          FROM r
          FULL JOIN (SELECT key, fingerprint FROM "bisync".base WHERE table_name = $2) AS b
            ON b.key = r.key
          FULL JOIN (SELECT (CASE WHEN jsonb_array_length(key) = 1 THEN key ->> 0 ELSE key::text END) COLLATE "C" AS key FROM "bisync".conflicts WHERE table_name = $2) AS c
            ON c.key = coalesce(r.key, b.key)) AS k
 WHERE k.hash IS NOT NULL
 GROUP BY 1
 ORDER BY 1;

-- [desktop] the buckets whose checksums differ (compared in bisync); when none does, the copy below does not run
--   $1 = <differing buckets, supplied while running>
-- checksum-first: the key buckets whose checksums differ between desktop and cloud (an array of bucket
-- numbers, transaction-local): the read and the deletes below act only inside them.
SELECT pg_catalog.set_config('bisync.buckets', $1, true);

-- [desktop] stream the rows out of desktop, with desktop's copy of the base
-- Read every row, and every key desktop's copy of the base knows (a key in the base that desktop no longer has was deleted there),
-- each with desktop's base fingerprint and generation, and the kind of a conflict desktop holds parked for the key
-- (edits: both, SPEC 7: a key parked on either database is left alone). Every matching row, no window.
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT coalesce(f."job_id"::text, b.key), f."client_id", f."template_id", f."job_name", f."job_status", f."fee", f."due_date", f."notes", f."extra",
         fk.__bisync_key IS NOT NULL AS __bisync_present,
         b.fingerprint AS __bisync_base_fp,
         b.generation AS __bisync_base_gen,
         c.kind AS __bisync_parked_kind
    -- Each row's key as the base stores it, built once and used by both joins (in a relation of its own: no column
    -- of desktop's table can share its name); NULL where desktop has no row for a key of its base.
    FROM "public"."jobshead" AS f
   CROSS JOIN LATERAL (SELECT f."job_id"::text COLLATE "C" AS __bisync_key) AS fk
    FULL JOIN (SELECT key, fingerprint, generation
                 FROM "bisync".base
                WHERE table_name = (SELECT current_setting('bisync.base_table'))) AS b
      ON b.key = fk.__bisync_key
    LEFT JOIN "bisync".conflicts AS c
      ON c.table_name = (SELECT current_setting('bisync.base_table'))
     AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = coalesce(b.key, fk.__bisync_key)
   -- checksum-first: only keys in buckets whose checksums differ; in every other bucket each key is settled alike on both sides
   WHERE (('x' || left(md5(convert_to((coalesce(b.key, fk.__bisync_key))::text, 'UTF8')), 4))::bit(16)::int >> 6) = ANY ((SELECT current_setting('bisync.buckets')::int[])::int[])
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("job_id", "client_id", "template_id", "job_name", "job_status", "fee", "due_date", "notes", "extra", __bisync_present, __bisync_base_fp, __bisync_base_gen, __bisync_parked_kind) FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] the same buckets on the target: keys of cloud's base staged as deleted on desktop, and unmarked rows, are looked for only inside them
--   $1 = <differing buckets, supplied while running>
-- checksum-first: the key buckets whose checksums differ between desktop and cloud (an array of bucket
-- numbers, transaction-local): the read and the deletes below act only inside them.
SELECT pg_catalog.set_config('bisync.buckets', $1, true);

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'job_id'  (key column name job_id)
-- Rows earlier runs could not write are tried again as this run read them from the source (a step with
-- pending rejects reads in full): a rejects row is only a key to retry, never data to write. The row
-- keeps its attempts and first-seen time, so a reject is "new" only once; a key the source no longer
-- has leaves rejects.
WITH pending AS (
  DELETE FROM "bisync".rejects AS r
   WHERE r.table_name = $1
     AND r.direction = $2
  RETURNING r.key, r.attempts, r.first_seen
)
UPDATE "bisync_stage" AS s
   SET __bisync_attempts = p.attempts, __bisync_first_seen = p.first_seen
  FROM pending AS p
 WHERE s."job_id" = p.key ->> $3;

-- [cloud] keys cloud's base holds that desktop no longer has: deleted there
--   $1 = 'jobshead'  (table)
-- After a full read: keys cloud's copy of the base holds as agreed, and keys cloud holds parked, that
-- desktop sent neither as a row nor from its own base. desktop deleted them (or never had them); the merge
-- decides what that means, and refreshes a parked key's versions.
INSERT INTO "bisync_stage" ("job_id", __bisync_present)
SELECT b.key, false
  FROM (SELECT b.key FROM "bisync".base AS b
         WHERE b.table_name = $1 AND b.fingerprint IS NOT NULL
        UNION
        SELECT (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" FROM "bisync".conflicts AS c
         WHERE c.table_name = $1) AS b
 WHERE NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE (s."job_id"::bigint)::text COLLATE "C" = b.key)
   -- checksum-first: only keys in buckets compared and read; a key of an equal bucket is missing from staging because
   -- it was not read, and must never be taken for a delete
   AND (('x' || left(md5(convert_to((b.key)::text, 'UTF8')), 4))::bit(16)::int >> 6) = ANY ((SELECT current_setting('bisync.buckets')::int[])::int[]);

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan;
-- and of the staged row numbers, so the merge's range of them is estimated as the rows it holds (the three-way
-- merge joins them to cloud, its base and its conflicts: an estimate of a few rows would choose nested loops).
ANALYZE "bisync_stage" ("job_id", __bisync_row);

-- [cloud] three-way merge: each row of the decision table (SPEC §7), conflicts, and the new base
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'jobshead'  (table)
--   $4 = 'update-update'  (kind update-update)
--   $5 = 'insert-insert'  (kind insert-insert)
--   $6 = 'D'  (origin value this direction writes)
--   $7 = 'desktop'  (source database)
--   $8 = 'cloud'  (target database)
--   $9 = '10000'  (most versions sent back for the source copy)
-- Three-way merge (edits: both, SPEC 7) of staged rows $1..$2 into cloud, in one statement.
-- Each key is seen in three versions: desktop's (staged), cloud's, and the base: the fingerprint of the version
-- both sides last agreed on (the fresher, by generation, of desktop's copy read with the rows and cloud's copy).
-- No base (fingerprint NULL) means no agreed live row: never synced, or agreed deleted.
-- One CTE per row of the decision table, then the writes, the conflicts (park) and the new base:
--   both_equal               both sides hold the same version           nothing; record the base; a parked conflict clears itself
--   f_changed_t_unchanged    desktop changed, cloud did not          write desktop's version to cloud
--   f_unchanged_t_changed    cloud changed, desktop did not          nothing (cloud -> desktop carries it)
--   conflict_update_update   both changed, differently                 conflict update-update
--   f_created_t_absent       new on desktop, not on cloud, no base        insert it on cloud
--   t_created_f_absent       new on cloud, not on desktop, no base        nothing (cloud -> desktop carries it)
--   conflict_insert_insert   new on both sides, different              conflict insert-insert
--   f_deleted_kept           deleted on desktop (deletes: keep)           nothing: the delete is not carried
--   t_deleted_kept           deleted on cloud (deletes: keep)           nothing: never re-created on cloud
--   both_deleted             deleted on both sides                      nothing; the base records the delete
-- A key with a parked conflict (on either database) is left alone until it is resolved or both sides become equal.
WITH src AS (
  SELECT s.*,
         (s."job_id"::bigint)::text COLLATE "C" AS __bisync_key,
         CASE WHEN s.__bisync_present THEN md5(convert_to(row(s."job_id", s."client_id", s."template_id", s."job_name", s."job_status", s."fee", s."due_date", s."notes", s."extra")::text, 'UTF8')) END AS __bisync_fp
    FROM "bisync_stage" AS s
   WHERE s.__bisync_row BETWEEN $1 AND $2
),
three AS MATERIALIZED (
  SELECT s.__bisync_row AS row_no,
         s.__bisync_key AS key,
         s.__bisync_present AS f_present,
         t.ctid IS NOT NULL AS t_present,
         s.__bisync_fp AS f_fp,
         CASE WHEN t.ctid IS NOT NULL THEN md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')) END AS t_fp,
         CASE WHEN coalesce(s.__bisync_base_gen, -1) > coalesce(b.generation, -1) THEN s.__bisync_base_fp ELSE b.fingerprint END AS base_fp,
         coalesce(greatest(s.__bisync_base_gen, b.generation), 0) AS base_gen,
         b.generation IS NOT NULL AS t_has_base,
         b.fingerprint AS t_base_fp,
         s.__bisync_base_gen IS NOT NULL AS f_has_base,
         s.__bisync_base_fp AS f_base_fp,
         c.key IS NOT NULL OR s.__bisync_parked_kind IS NOT NULL AS parked,
         coalesce(c.kind, s.__bisync_parked_kind) AS parked_kind
    FROM src AS s
    LEFT JOIN "public"."jobshead" AS t ON t."job_id" = s."job_id"::bigint
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = s.__bisync_key
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = s.__bisync_key
),
both_equal AS (
  SELECT * FROM three WHERE f_present AND t_present AND f_fp = t_fp
),
f_changed_t_unchanged AS (
  SELECT * FROM three WHERE f_present AND t_present AND NOT parked AND f_fp <> base_fp AND t_fp = base_fp
),
f_unchanged_t_changed AS (
  SELECT * FROM three WHERE f_present AND t_present AND NOT parked AND f_fp = base_fp AND t_fp <> base_fp
),
conflict_update_update AS (
  SELECT * FROM three WHERE f_present AND t_present AND f_fp <> t_fp AND f_fp <> base_fp AND t_fp <> base_fp
),
f_created_t_absent AS (
  SELECT * FROM three WHERE f_present AND NOT t_present AND base_fp IS NULL AND NOT parked
),
t_created_f_absent AS (
  SELECT * FROM three WHERE NOT f_present AND t_present AND base_fp IS NULL AND NOT parked
),
conflict_insert_insert AS (
  SELECT * FROM three WHERE f_present AND t_present AND base_fp IS NULL AND f_fp <> t_fp
),
f_deleted_kept AS (
  SELECT * FROM three WHERE NOT f_present AND t_present AND NOT parked AND base_fp IS NOT NULL
),
t_deleted_kept AS (
  SELECT * FROM three WHERE f_present AND NOT t_present AND NOT parked AND base_fp IS NOT NULL
),
both_deleted AS (
  SELECT * FROM three WHERE NOT f_present AND NOT t_present
),
found AS (
  SELECT x.*, $4::text AS kind FROM conflict_update_update AS x
  UNION ALL
  SELECT x.*, $5::text FROM conflict_insert_insert AS x
),
conflicted AS (
  -- A key parked earlier (on either database) whose two sides still differ stays a conflict of its
  -- kind whatever its row above says now, so its versions stay what the two sides hold.
  SELECT * FROM found
  UNION ALL
  SELECT x.*, x.parked_kind FROM three AS x
   WHERE x.parked AND x.f_fp IS DISTINCT FROM x.t_fp
     AND NOT EXISTS (SELECT 1 FROM found AS y WHERE y.row_no = x.row_no)
),
decided AS (
  -- conflicts: park. A key parked earlier stays parked until it is resolved.
  SELECT x.*,
         CASE WHEN x.parked THEN 'park'
              ELSE 'park'
         END AS winner
    FROM conflicted AS x
),
updated AS (
  -- desktop's version over cloud's, only while cloud still holds the version compared.
  UPDATE "public"."jobshead" AS t
     SET "client_id" = s."client_id"::integer,
         "template_id" = s."template_id"::integer,
         "job_name" = s."job_name"::character varying,
         "job_status" = s."job_status"::character varying,
         "fee" = s."fee"::numeric(12,2),
         "due_date" = s."due_date"::date,
         "notes" = s."notes"::text,
         "extra" = s."extra"::jsonb
    FROM src AS s
    JOIN (SELECT row_no, t_fp, base_gen, t_has_base, parked FROM f_changed_t_unchanged
          UNION ALL
          SELECT row_no, t_fp, base_gen, t_has_base, parked FROM decided WHERE winner = 'source' AND f_present AND t_present) AS w
      ON w.row_no = s.__bisync_row
   WHERE t."job_id" = s."job_id"::bigint
     AND md5(convert_to(row(t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra")::text, 'UTF8')) = w.t_fp
  RETURNING s.__bisync_key AS key, s.__bisync_fp AS fingerprint, w.base_gen, w.t_has_base, w.parked
),
inserted AS (
  INSERT INTO "public"."jobshead" AS t ("job_id", "client_id", "template_id", "job_name", "job_status", "fee", "due_date", "notes", "extra", "source")
  SELECT s."job_id"::bigint, s."client_id"::integer, s."template_id"::integer, s."job_name"::character varying, s."job_status"::character varying, s."fee"::numeric(12,2), s."due_date"::date, s."notes"::text, s."extra"::jsonb, $6
    FROM src AS s
    JOIN (SELECT row_no FROM f_created_t_absent
          UNION ALL
          SELECT row_no FROM decided WHERE winner = 'source' AND f_present AND NOT t_present) AS w
      ON w.row_no = s.__bisync_row
  RETURNING t."job_id"::text COLLATE "C" AS key
),
parked AS (
  INSERT INTO "bisync".conflicts AS c (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."job_id"::bigint)::text), d.kind,
         jsonb_build_object($7::text,
                            CASE WHEN d.f_present THEN (SELECT to_jsonb(x) FROM (SELECT s."job_id"::bigint AS "job_id", s."client_id"::integer AS "client_id", s."template_id"::integer AS "template_id", s."job_name"::character varying AS "job_name", s."job_status"::character varying AS "job_status", s."fee"::numeric(12,2) AS "fee", s."due_date"::date AS "due_date", s."notes"::text AS "notes", s."extra"::jsonb AS "extra") AS x) END,
                            $8::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."job_id", t."client_id", t."template_id", t."job_name", t."job_status", t."fee", t."due_date", t."notes", t."extra" FROM "public"."jobshead" AS t WHERE t."job_id" = s."job_id"::bigint) AS x)),
         d.base_fp
    FROM decided AS d
    JOIN src AS s ON s.__bisync_row = d.row_no
   WHERE d.winner = 'park'
  ON CONFLICT (table_name, key) DO UPDATE
     SET kind = EXCLUDED.kind, versions = EXCLUDED.versions, base_fingerprint = EXCLUDED.base_fingerprint,
         last_detected = clock_timestamp()
   WHERE c.versions IS DISTINCT FROM EXCLUDED.versions
  RETURNING 1
),
cleared AS (
  DELETE FROM "bisync".conflicts AS c
   USING (SELECT key FROM both_equal WHERE parked
          UNION ALL
          SELECT key FROM both_deleted WHERE parked) AS x
   WHERE c.table_name = $3
     AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = x.key
  RETURNING 1
),
agreed AS (
  -- The new base: what both sides hold now (a NULL fingerprint records an agreed delete). Equal rows
  -- are recorded when the fresher copy or cloud's own copy does not say so already, so that
  -- cloud's copy comes to hold the agreed version too; once both copies do, a no-change rerun
  -- writes nothing. A written row is recorded with the fingerprint of the version written, computed once, in src.
  SELECT key, f_fp AS fingerprint, base_gen, t_has_base, parked FROM both_equal
   WHERE base_fp IS DISTINCT FROM f_fp OR t_base_fp IS DISTINCT FROM f_fp
  UNION ALL
  SELECT key, NULL, base_gen, t_has_base, parked FROM both_deleted WHERE base_fp IS NOT NULL OR t_base_fp IS NOT NULL
  UNION ALL
  SELECT key, fingerprint, base_gen, t_has_base, parked FROM updated
  UNION ALL
  SELECT i.key, x.f_fp, x.base_gen, x.t_has_base, x.parked FROM inserted AS i JOIN three AS x ON x.key = i.key
),
based_new AS (
  -- Keys cloud's copy does not hold yet (and no one else writes while this step holds its lock;
  -- bisync resolve only writes parked keys, which go below): a plain insert.
  INSERT INTO "bisync".base (table_name, key, fingerprint, generation)
  SELECT $3, a.key, a.fingerprint, a.base_gen + 1
    FROM agreed AS a
   WHERE NOT a.t_has_base AND NOT a.parked
  RETURNING 1
),
based AS (
  INSERT INTO "bisync".base AS b (table_name, key, fingerprint, generation)
  SELECT $3, a.key, a.fingerprint, a.base_gen + 1
    FROM agreed AS a
   WHERE a.t_has_base OR a.parked
  ON CONFLICT (table_name, key) DO UPDATE
     SET fingerprint = EXCLUDED.fingerprint, generation = EXCLUDED.generation, agreed_at = clock_timestamp()
  RETURNING 1
),
sent_back AS (
  -- What desktop's copy lacks: a key it holds with the agreed fingerprint already (a first sync's other direction, a
  -- copy only cloud's lagged behind) is left as it is there, at its older generation: the same version.
  SELECT a.* FROM agreed AS a
   WHERE NOT EXISTS (SELECT 1 FROM three AS x
                      WHERE x.key = a.key AND x.f_has_base AND x.f_base_fp IS NOT DISTINCT FROM a.fingerprint)
)
SELECT (SELECT count(*) FROM src WHERE __bisync_present)::bigint AS read,
       (SELECT count(*) FROM inserted)::bigint AS inserted,
       (SELECT count(*) FROM updated)::bigint AS updated,
       0::bigint AS deleted,
       (SELECT count(*) FROM both_equal WHERE NOT parked)::bigint AS unchanged,
       ((SELECT count(*) FROM f_unchanged_t_changed) + (SELECT count(*) FROM t_created_f_absent)
        + (SELECT count(*) FROM f_deleted_kept) + (SELECT count(*) FROM t_deleted_kept))::bigint AS protected,
       (SELECT count(*) FROM decided WHERE winner = 'park')::bigint AS conflicts,
       (SELECT count(*) FROM cleared)::bigint AS conflicts_cleared,
       ((SELECT count(*) FROM based) + (SELECT count(*) FROM based_new))::bigint AS base_written,
       -- The versions recorded above that desktop's copy (as read with the rows) does not hold yet, for that copy once
       -- this transaction has committed (record-source-base); none when there are more than the executor holds in
       -- memory: the next step into desktop records them.
       CASE WHEN (SELECT count(*) FROM sent_back) <= $9::bigint
            THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('key', key, 'fingerprint', fingerprint, 'generation', base_gen + 1)), '[]') FROM sent_back)
       END AS versions;

-- [cloud] only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'job_id'  (key column name job_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."job_id"),
       to_jsonb(s) - '__bisync_row' - '__bisync_cursor' - '__bisync_attempts' - '__bisync_first_seen',
       'error', $4, $5,
       s.__bisync_attempts + 1, coalesce(s.__bisync_first_seen, clock_timestamp())
  FROM "bisync_stage" AS s
 WHERE s.__bisync_row = $6
ON CONFLICT (table_name, direction, key) DO UPDATE
   SET row_data = EXCLUDED.row_data, reason = EXCLUDED.reason, error_code = EXCLUDED.error_code,
       error = EXCLUDED.error, attempts = EXCLUDED.attempts, last_tried = clock_timestamp()
RETURNING r.key, r.attempts;

-- [cloud] unmarked rows (source NULL) on cloud whose key desktop does not have: reported, never deleted
-- Unmarked rows on cloud (origin column NULL) whose key desktop does not have: no side claims them.
-- Forward never deletes them and reverse never sends them; they are reported so someone sets their marker.
SELECT count(*)::bigint AS unmarked
  FROM "public"."jobshead" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."job_id" = s."job_id"::bigint)
   -- only keys in buckets compared and read (checksum-first): a key of an equal bucket is missing from staging because it was not read
   AND (('x' || left(md5(convert_to((t."job_id"::text COLLATE "C")::text, 'UTF8')), 4))::bit(16)::int >> 6) = ANY ((SELECT current_setting('bisync.buckets')::int[])::int[]);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'jobshead'  (guarded relation 0 name)
-- Data-loss guard, first and cheap: how many rows this transaction (its own statements and every
-- trigger and foreign-key action they set off, never another session) deleted and updated in each
-- table the guard watches. When that is exactly the deletes and updates the step meant (none outside
-- cloud's table), no row of the other side was touched and the fingerprints below are not needed.
-- Counters live on each partition and inheritance child, so each table's are summed over them.
SELECT g.relation,
       sum(pg_stat_get_xact_tuples_deleted(d.oid))::bigint AS deleted,
       sum(pg_stat_get_xact_tuples_updated(d.oid))::bigint AS updated,
       current_setting('track_counts')::boolean AS counted
  FROM (VALUES (0, $1, $2)) AS g(relation, schema_name, table_name)
  JOIN pg_namespace AS n ON n.nspname = g.schema_name
  JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = g.table_name
 CROSS JOIN LATERAL (WITH RECURSIVE tree(oid) AS (
                       SELECT c.oid
                       UNION
                       SELECT i.inhrelid FROM pg_inherits AS i JOIN tree ON i.inhparent = tree.oid)
                     SELECT tree.oid FROM tree) AS d
 GROUP BY g.relation
 ORDER BY g.relation;

-- [cloud] the new watermark, in the same transaction as the data
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
--   $3 = <hold watermark, supplied while running>
--   $4 = <read horizon, supplied while running>
-- Watermark = newest cursor value among the rows read (kept below the read horizon); unchanged when nothing
-- was read, or when a transaction whose start this role cannot see held uncommitted writes to the table.
INSERT INTO "bisync".state AS st (table_name, direction, watermark, updated_at)
SELECT $1, $2,
       CASE WHEN max(s.__bisync_cursor) IS NULL OR $3::boolean THEN NULL
            ELSE least(max(s.__bisync_cursor), $4::timestamptz)
       END,
       clock_timestamp()
  FROM "bisync_stage" AS s
ON CONFLICT (table_name, direction) DO UPDATE
   SET watermark = coalesce(EXCLUDED.watermark, st.watermark),
       updated_at = EXCLUDED.updated_at
RETURNING to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS watermark;

-- [cloud] only when the merge inserted rows: advance the sequence behind job_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'jobshead'  (target table name)
--   $3 = 'job_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column job_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."job_id")::bigint AS max_key FROM "public"."jobshead" AS t) AS m
 WHERE q.seq IS NOT NULL
   AND m.max_key > coalesce(pg_sequence_last_value(q.seq::regclass), 0);

-- [cloud] only when the counts differ: rows the other side owns, with this step's changes, in an exported snapshot
--   $1 = 'D'  (origin value this direction writes)
-- Data-loss guard, inside the step: the rows the other side owns, counted and fingerprinted in this
-- statement's snapshot, which is exported so a second connection can take the same count without
-- this step's changes. Any difference is what this step did to them, never what other sessions did
-- meanwhile.
SELECT pg_export_snapshot() AS snapshot, g.relation, g.rows, g.fingerprint
  FROM (
        SELECT 0 AS relation, count(*)::bigint AS rows,
               0::bigint AS fingerprint
          FROM "public"."jobshead" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: a second connection to cloud
-- A second, read-only connection to cloud for the guard, in the snapshot the step exports.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- [cloud] guard: the snapshot the step exported
-- SET TRANSACTION SNAPSHOT takes no $n parameter: the executor puts the name pg_export_snapshot()
-- returned (checked against its fixed hex-and-dashes format) in place of the quoted placeholder.
SET TRANSACTION SNAPSHOT '<exported snapshot>';

-- [cloud] guard: the same text formats, so fingerprints compare
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true);

-- [cloud] guard: the same rows without this step's changes; any row removed or changed rolls the step back (exit 4)
--   $1 = 'D'  (origin value this direction writes)
-- Data-loss guard, outside the step: the same rows in the exported snapshot, where this step's
-- uncommitted changes are invisible.
SELECT g.relation, g.rows, g.fingerprint
  FROM (
        SELECT 0 AS relation, count(*)::bigint AS rows,
               0::bigint AS fingerprint
          FROM "public"."jobshead" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'jobshead'  (table)
--   $3 = 'forward'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no cursor columns on desktop: every row is read and compared; only changed rows are written'  (reason)
--   $7 = <plan hash, supplied while running>
--   $8 = <status, supplied while running>
--   $9 = <started at, supplied while running>
--   $10 = <read, supplied while running>
--   $11 = <inserted, supplied while running>
--   $12 = <updated, supplied while running>
--   $13 = <unchanged, supplied while running>
--   $14 = <protected, supplied while running>
--   $15 = <rejected, supplied while running>
--   $16 = <deleted, supplied while running>
--   $17 = NULL  (watermark before)
--   $18 = <watermark after, supplied while running>
--   $19 = <error, supplied while running>
--   $20 = <round trips, supplied while running>
--   $21 = <bytes sent, supplied while running>
--   $22 = <bytes received, supplied while running>
INSERT INTO "bisync".runs
  (run_id, table_name, direction, attempt, mode, reason, plan_hash, status, started_at,
   read_rows, inserted, updated, unchanged, protected, rejected, deleted,
   watermark_before, watermark_after, error, round_trips, bytes_sent, bytes_received)
VALUES ($1, $2, $3, $4, $5, $6,
        $7, $8, $9,
        $10, $11, $12, $13,
        $14, $15, $16,
        $17, $18, $19,
        $20, $21, $22);

-- [cloud] commit data, watermark and run together
COMMIT;

-- [desktop] only when the merge recorded base versions, after the commit on cloud: a short write transaction on desktop
-- A short write transaction on desktop, only after the commit on cloud: its copy of the base.
BEGIN ISOLATION LEVEL READ COMMITTED;

-- [desktop] transaction-local settings (search_path pinned)
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'UTC'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement.
-- TimeZone: desktop's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true);

-- [desktop] the same versions into desktop's copy of the base, where it is older (by generation)
--   $1 = 'jobshead'  (table)
--   $2 = <versions recorded on the target, supplied while running>
-- After the commit on cloud (never before it): the versions this step recorded in cloud's copy of the
-- base (SPEC 7) recorded in desktop's copy too, with the same generation, so that both copies hold what the two
-- sides agreed. Only where desktop's copy is older (a lower generation): a step into desktop that recorded
-- something since keeps it, so no lock is needed. If this never runs (a crash just before it), desktop's copy is
-- stale: the merge uses the fresher copy, and the next step into desktop brings its copy up to date.
INSERT INTO "bisync".base AS b (table_name, key, fingerprint, generation)
SELECT $1, a.key, a.fingerprint, a.generation
  FROM jsonb_to_recordset($2::jsonb) AS a(key text, fingerprint text, generation bigint)
ON CONFLICT (table_name, key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, generation = EXCLUDED.generation, agreed_at = clock_timestamp()
 WHERE b.generation < EXCLUDED.generation;

-- [desktop] commit desktop's copy of the base
COMMIT;
