-- bisync plan 698306d9e4789aefe8848fb44d93f95c7fd0c77a740feed3f55fce285f3dcd4e
-- config: sync.config.yaml; state schema: bisync; 2 steps
-- Parameters are listed above each statement; values are sent as $n parameters, never spliced into SQL.

-- ============================================================================
-- Step 1/2: climaster forward: desktop public.climaster → cloud public.climaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; checksum-first: both databases sum row hashes per bucket of keys (1,024 buckets), and only the rows of buckets that differ are read
-- write: upsert; deletes: keep; columns: client_id, org_id, loc_id, con_id, client_name, pan, email, opening_balance, onboarded_on, is_active
-- step hash: 340e8fb1615e7505bbc4691d6de72db37ef72318d6cde23d943d2d332b938b6c
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
--   $1 = 'climaster'  (table)
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
--   $1 = 'climaster'  (table)
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
--   $1 = 'D'  (origin value this direction writes)
-- Probe: this step's checksums on cloud (the statement below: its bucket checksums, as planned, summed over the
-- whole table instead of per bucket, so no key is hashed into a bucket and nothing is sorted): how many rows, and the sum.
-- Equal rows and sums on both databases mean every bucket's checksum is equal too (a difference in any bucket changes
-- the total, unless it cancels out exactly: a 64-bit coincidence, as one equal bucket already is): the step would read
-- no row, delete none and write none. Also how many of the rows the other side owns (what the step would
-- report unchanged and protected).
SELECT s.rows,
       s.others,
       s.checksum AS digest
  FROM (
-- cloud: over every row of the table, how many rows and one checksum (the sum a step's bucket checksums
-- compute per bucket, summed over all buckets), and how many of them the other side owns (the merge never
-- writes those: one equal to the source's row counts as protected without being read). the checksum is the sum of the first
-- 64 bits of each row's md5, so row order does not matter. A timestamptz counts as its UTC time, whatever zone the session is in.
SELECT count(*)::bigint AS rows,
       sum(('x' || left(r.row_hash, 16))::bit(64)::bigint)::text AS checksum,
       count(*) FILTER (WHERE r.others)::bigint AS others
  FROM (SELECT md5(convert_to(ROW(t."client_id",
                       t."org_id",
                       t."loc_id",
                       t."con_id",
                       t."client_name",
                       t."pan",
                       t."email",
                       t."opening_balance",
                       t."onboarded_on",
                       t."is_active",
                       -- unmarked: true never matches a row of the source (false), so the merge stamps it
                       t."source" IS NULL)::text, 'UTF8')) AS row_hash,
               t."source"::text <> $1 AS others
          FROM "public"."climaster" AS t) AS r
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
       pg_catalog.set_config('statement_timeout', $8, true);

-- [desktop] this step's checksums on desktop, summed over the table
-- Probe: this step's checksums on desktop (the statement below: its bucket checksums, as planned, summed over the
-- whole table instead of per bucket, so no key is hashed into a bucket and nothing is sorted): how many rows, and the sum.
-- Equal rows and sums on both databases mean every bucket's checksum is equal too (a difference in any bucket changes
-- the total, unless it cancels out exactly: a 64-bit coincidence, as one equal bucket already is): the step would read
-- no row, delete none and write none. Also what the step would report unchanged.
SELECT s.rows,
       s.checksum AS digest
  FROM (
-- desktop: over every row of the table, how many rows and one checksum (the sum a step's bucket checksums
-- compute per bucket, summed over all buckets). the checksum is the sum of the first
-- 64 bits of each row's md5, so row order does not matter. Each value's own text, cast to the target's numeric type where no value can fail the cast, a timestamptz as UTC time.
SELECT count(*)::bigint AS rows,
       sum(('x' || left(r.row_hash, 16))::bit(64)::bigint)::text AS checksum
  FROM (SELECT md5(convert_to(ROW(t."client_id",
                       t."org_id",
                       t."loc_id",
                       t."con_id",
                       t."client_name",
                       t."pan",
                       t."email",
                       t."opening_balance",
                       t."onboarded_on",
                       t."is_active",
                       -- not unmarked, as the target's marked rows
                       false)::text, 'UTF8')) AS row_hash
          FROM "public"."climaster" AS t) AS r
       ) AS s;

-- [cloud] only when the probe finds nothing to do: one row in runs for this step, which did not run
--   $1 = <run id, supplied while running>
--   $2 = 'climaster'  (table)
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
--   $1 = 'climaster'  (table)
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
--   $1 = 'climaster'  (table)
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
  "client_id" text,
  "org_id" text,
  "loc_id" text,
  "con_id" text,
  "client_name" text,
  "pan" text,
  "email" text,
  "opening_balance" text,
  "onboarded_on" text,
  "is_active" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

-- [cloud] checksum-first: rows and a checksum per bucket of keys on cloud
--   $1 = 'D'  (origin value this direction writes)
-- cloud: rows and a checksum per bucket of keys, and how many of them the other side owns (the merge never
-- writes those: one equal to the source's row counts as protected without being read). A key's bucket is the first 10 bits of the md5
-- of its text as UTF-8 (the same bytes in any database encoding); the checksum is the sum of the first
-- 64 bits of each row's md5, so row order does not matter. A timestamptz counts as its UTC time, whatever zone the session is in.
SELECT (('x' || left(r.key_hash, 4))::bit(16)::int >> 6) AS bucket,
       count(*)::bigint AS rows,
       sum(('x' || left(r.row_hash, 16))::bit(64)::bigint)::text AS checksum,
       count(*) FILTER (WHERE r.others)::bigint AS others
  FROM (SELECT md5(convert_to(ROW(t."client_id")::text, 'UTF8')) AS key_hash,
               md5(convert_to(ROW(t."client_id",
                       t."org_id",
                       t."loc_id",
                       t."con_id",
                       t."client_name",
                       t."pan",
                       t."email",
                       t."opening_balance",
                       t."onboarded_on",
                       t."is_active",
                       -- unmarked: true never matches a row of the source (false), so the merge stamps it
                       t."source" IS NULL)::text, 'UTF8')) AS row_hash,
               t."source"::text <> $1 AS others
          FROM "public"."climaster" AS t) AS r
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
       pg_catalog.set_config('statement_timeout', $8, true);

-- [desktop] checksum-first: rows and a checksum per bucket of keys on desktop
-- desktop: rows and a checksum per bucket of keys. A key's bucket is the first 10 bits of the md5
-- of its text as UTF-8 (the same bytes in any database encoding); the checksum is the sum of the first
-- 64 bits of each row's md5, so row order does not matter. Each value's own text, cast to the target's numeric type where no value can fail the cast, a timestamptz as UTC time.
SELECT (('x' || left(r.key_hash, 4))::bit(16)::int >> 6) AS bucket,
       count(*)::bigint AS rows,
       sum(('x' || left(r.row_hash, 16))::bit(64)::bigint)::text AS checksum
  FROM (SELECT md5(convert_to(ROW(t."client_id")::text, 'UTF8')) AS key_hash,
               md5(convert_to(ROW(t."client_id",
                       t."org_id",
                       t."loc_id",
                       t."con_id",
                       t."client_name",
                       t."pan",
                       t."email",
                       t."opening_balance",
                       t."onboarded_on",
                       t."is_active",
                       -- not unmarked, as the target's marked rows
                       false)::text, 'UTF8')) AS row_hash
          FROM "public"."climaster" AS t) AS r
 GROUP BY 1
 ORDER BY 1;

-- [desktop] the buckets whose checksums differ (compared in bisync); when none does, the copy below does not run
--   $1 = <differing buckets, supplied while running>
-- checksum-first: the key buckets whose checksums differ between desktop and cloud (an array of bucket
-- numbers, transaction-local): the read and the deletes below act only inside them.
SELECT pg_catalog.set_config('bisync.buckets', $1, true);

-- [desktop] stream the rows out of desktop
-- Read every row of the key buckets whose checksums differ. Every matching row, no window.
COPY (
  SELECT f."client_id", f."org_id", f."loc_id", f."con_id", f."client_name", f."pan", f."email", f."opening_balance", f."onboarded_on", f."is_active"
    FROM "public"."climaster" AS f
   -- checksum-first: only the keys of buckets whose checksums differ (set above); the others are equal on both sides
   WHERE (('x' || left(md5(convert_to(ROW(f."client_id")::text, 'UTF8')), 4))::bit(16)::int >> 6) = ANY ((SELECT current_setting('bisync.buckets')::int[])::int[])
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("client_id", "org_id", "loc_id", "con_id", "client_name", "pan", "email", "opening_balance", "onboarded_on", "is_active") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] the same buckets on the target: deletes and unmarked rows are looked for only inside them
--   $1 = <differing buckets, supplied while running>
-- checksum-first: the key buckets whose checksums differ between desktop and cloud (an array of bucket
-- numbers, transaction-local): the read and the deletes below act only inside them.
SELECT pg_catalog.set_config('bisync.buckets', $1, true);

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'climaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'client_id'  (key column name client_id)
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
 WHERE s."client_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("client_id");

-- [cloud] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'D'  (origin value this direction writes)
-- Merge staged rows $1..$2 into cloud in one statement:
-- insert keys cloud does not have; update existing rows this direction owns, only when they differ.
WITH src AS (
  SELECT s.*
    FROM "bisync_stage" AS s
   WHERE s.__bisync_row BETWEEN $1 AND $2
),
classified AS MATERIALIZED (
  -- Each staged row against the target row with its key (if any): present, owned, changed.
  SELECT s.__bisync_row,
         t.ctid IS NOT NULL AS present,
         (t."source" IS NULL OR t."source"::text = $3) AS owned,
         (t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active", t."source"::text)
           IS DISTINCT FROM
         (s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."climaster" AS t ON t."client_id" = s."client_id"::integer
),
updated AS (
  UPDATE "public"."climaster" AS t
     SET "org_id" = s."org_id"::integer,
         "loc_id" = s."loc_id"::integer,
         "con_id" = s."con_id"::integer,
         "client_name" = s."client_name"::character varying,
         "pan" = s."pan"::bpchar,
         "email" = s."email"::text,
         "opening_balance" = s."opening_balance"::numeric(14,2),
         "onboarded_on" = s."onboarded_on"::date,
         "is_active" = s."is_active"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."client_id" = s."client_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active", t."source"::text)
         IS DISTINCT FROM
         (s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."climaster" ("client_id", "org_id", "loc_id", "con_id", "client_name", "pan", "email", "opening_balance", "onboarded_on", "is_active", "source")
  SELECT s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean, $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present
  RETURNING 1
)
SELECT (SELECT count(*) FROM src)::bigint AS read,
       (SELECT count(*) FROM inserted)::bigint AS inserted,
       (SELECT count(*) FROM updated)::bigint AS updated,
       (SELECT count(*) FROM classified WHERE present AND owned AND NOT changed)::bigint AS unchanged,
       (SELECT count(*) FROM classified WHERE present AND NOT owned)::bigint AS protected,
       0::bigint AS conflicts;

-- [cloud] only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here
--   $1 = 'climaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'client_id'  (key column name client_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."client_id"),
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
  FROM "public"."climaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."client_id" = s."client_id"::integer)
   -- only keys in buckets compared and read (checksum-first): a key of an equal bucket is missing from staging because it was not read
   AND (('x' || left(md5(convert_to(ROW(t."client_id")::text, 'UTF8')), 4))::bit(16)::int >> 6) = ANY ((SELECT current_setting('bisync.buckets')::int[])::int[]);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'climaster'  (guarded relation 0 name)
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
--   $1 = 'climaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind client_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'climaster'  (target table name)
--   $3 = 'client_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column client_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."client_id")::bigint AS max_key FROM "public"."climaster" AS t) AS m
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
               coalesce(sum(hashtext(t::text)::bigint), 0)::bigint AS fingerprint
          FROM "public"."climaster" AS t
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
               coalesce(sum(hashtext(t::text)::bigint), 0)::bigint AS fingerprint
          FROM "public"."climaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'climaster'  (table)
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

-- ============================================================================
-- Step 2/2: climaster reverse: cloud public.climaster → desktop public.climaster
-- mode: incremental — watermark 2026-01-02T03:04:05.123456Z on updated_at, created_at, minus the lookback
-- write: upsert; deletes: keep; columns: client_id, org_id, loc_id, con_id, client_name, pan, email, opening_balance, onboarded_on, is_active
-- step hash: 367c502fb581f7da7075c9cdf9aa56a8f367f5e1042c794cccdc6020723acb48
-- ============================================================================

-- Bootstrap on desktop, only if bisync.state/runs/rejects/base/conflicts are missing:

-- [desktop] bootstrap bisync's state on desktop, only if it is missing
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

-- [desktop] refuse a state schema another role made or changed; stop here (rollback) when all its tables exist
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

-- [desktop] serialise concurrent bootstraps
--   $1 = 'bisync bootstrap bisync'  (bootstrap lock key)
-- Serialise bootstrap between concurrent runs (released at COMMIT).
SELECT pg_advisory_xact_lock(hashtext($1));

-- [desktop] create schema bisync and its tables
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

-- [desktop] check again: CREATE … IF NOT EXISTS would accept a schema created meanwhile by another role
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

-- [desktop] this step's row of state, for its lock (apply claims every step's row before the steps run)
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

-- The probe (the rows the read would take), run before any step, inside one transaction per database (BEGIN … COMMIT) shared with the other steps' probes.
-- When the probe finds nothing to do, the statements below do not run.
-- apply --probe auto (the default) probes only over a slow link: a round trip of 10 ms or more to either database while the catalog was read; --probe always | never.

-- [cloud] transaction-local text formats and this step's read window
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = '2026-01-02T03:04:05.123456Z'  (watermark)
--   $10 = '5 seconds'  (lookback)
--   $11 = 'M'  (origin value read)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement, and this step's read window.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true),
       pg_catalog.set_config('bisync.since', $9, true),
       pg_catalog.set_config('bisync.lookback', $10, true),
       pg_catalog.set_config('bisync.origin', $11, true);

-- [cloud] the rows this step would read on cloud: how many, and key and row hash of each
--   $1 = '2026-01-02T03:04:05.123456Z'  (watermark)
--   $2 = '1000'  (most rows probed)
-- Probe: the rows this step's read takes (the copy-out statement's query below, as planned, without the COPY):
-- how many, whether their newest cursor value is the watermark (so the step would leave it unchanged: one past it
-- moves it on, one behind it moves it back, as the newest value read),
-- and for at most 1000 of them (counted, never cut short: more rows than that and the step runs) the key's text and
-- a hash of the row as desktop holds it when nothing would change: md5 of the row of synced values, a timestamptz as its UTC time.
SELECT count(*)::bigint AS rows,
       (max(w.__bisync_cursor) IS NULL OR max(w.__bisync_cursor) = $1::timestamptz) AS not_newer,
       coalesce(json_agg(json_build_array(json_build_array(w."client_id"::text),
                                          md5(convert_to(ROW(w."client_id",
                       w."org_id",
                       w."loc_id",
                       w."con_id",
                       w."client_name",
                       w."pan",
                       w."email",
                       w."opening_balance",
                       w."onboarded_on",
                       w."is_active")::text, 'UTF8'))))
                  FILTER (WHERE w.__bisync_probe_n <= $2::bigint), '[]'::json)::text AS pairs
  FROM (SELECT i.*, row_number() OVER () AS __bisync_probe_n
          FROM (
  SELECT f."client_id", f."org_id", f."loc_id", f."con_id", f."client_name", f."pan", f."email", f."opening_balance", f."onboarded_on", f."is_active",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."climaster" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
   AND (greatest(f."updated_at", f."created_at")::timestamptz
            >= (SELECT current_setting('bisync.since')::timestamptz - current_setting('bisync.lookback')::interval)
          OR (f."updated_at" IS NULL AND f."created_at" IS NULL))
               ) AS i) AS w;

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

-- [desktop] no other run holds this step's lock (else the step runs, and reports it)
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction of the locked row)
-- Probe: is the row of bisync's state that this step locks free? SKIP LOCKED
-- never waits: while another run holds it this answers false, and the step then runs as planned (its own
-- lock answers lock_not_available: exit 3). Held by this probe's transaction only until the probe ends.
SELECT EXISTS (SELECT 1
                 FROM "bisync".state AS st
                WHERE st.table_name = $1
                  AND st.direction = $2
                  FOR UPDATE SKIP LOCKED) AS free;

-- [desktop] of those rows, how many desktop does not hold as they are
--   $1 = <window rows, supplied while running>
--   $2 = 'climaster'  (table)
-- Probe: of the rows cloud's read would take (keys and row hashes from the probe there), how many
-- desktop does not hold with the same hash (computed the same way). None: the merge would find every row unchanged and write nothing.
-- Collision safety: a row also counts as differing unless desktop's base holds its fingerprint and no conflict
-- is parked for its key (the merge would record the one and clear the other).
SELECT count(*) FILTER (WHERE t.row_hash IS DISTINCT FROM p.e ->> 1 OR NOT t.settled)::bigint AS differing
  FROM json_array_elements($1::json) AS p(e)
  LEFT JOIN LATERAL (SELECT md5(convert_to(ROW(t."client_id",
                       t."org_id",
                       t."loc_id",
                       t."con_id",
                       t."client_name",
                       t."pan",
                       t."email",
                       t."opening_balance",
                       t."onboarded_on",
                       t."is_active")::text, 'UTF8')) AS row_hash,
                            (SELECT b.fingerprint FROM "bisync".base AS b
                              WHERE b.table_name = $2 AND b.key = t."client_id"::text COLLATE "C")
                              IS NOT DISTINCT FROM md5(convert_to(row(t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")::text, 'UTF8'))
                            AND NOT EXISTS (SELECT 1 FROM "bisync".conflicts AS c
                                             WHERE c.table_name = $2 AND c.key = jsonb_build_array(t."client_id"::text)) AS settled
                       FROM "public"."climaster" AS t
                      WHERE t."client_id" = (p.e -> 0 ->> 0)::integer) AS t ON true;

-- [desktop] only when the probe finds nothing to do: one row in runs for this step, which did not run
--   $1 = <run id, supplied while running>
--   $2 = 'climaster'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'incremental'  (mode)
--   $6 = 'probe: every row the read would take is already on the target as it is: nothing to do, not run'  (reason)
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
--   $17 = '2026-01-02T03:04:05.123456Z'  (watermark before)
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

-- [desktop] open the write transaction on desktop
BEGIN ISOLATION LEVEL READ COMMITTED;

-- [desktop] transaction-local text formats
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

-- [desktop] one run per (table, direction) at a time
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
-- One run per (table, direction): lock this step's row of bisync's state, which only a role that can
-- write bisync's state can lock (an advisory lock, any role that can connect could take). A second
-- concurrent run gets lock_not_available and stops (exit 3); the lock ends with the transaction, or
-- with the connection of a run that was killed.
SELECT true AS locked
  FROM "bisync".state AS st
 WHERE st.table_name = $1
   AND st.direction = $2
   FOR UPDATE NOWAIT;

-- [desktop] the watermark this step starts from (must equal the planned one)
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
SELECT to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS watermark,
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS version
  FROM "bisync".state
 WHERE table_name = $1
   AND direction = $2;

-- [desktop] deferred constraints fail per merged batch, not at COMMIT
-- Deferrable constraints are checked at the end of each statement instead of at COMMIT, so a row
-- that breaks one fails inside the merge's savepoint and becomes a reject instead of failing the step.
SET CONSTRAINTS ALL IMMEDIATE;

-- [desktop] staging table, dropped at commit
-- Staging for the rows read from cloud: text columns, cast to the target's types in the merge,
-- so a value the target refuses becomes a reject instead of failing the whole COPY.
CREATE TEMPORARY TABLE "bisync_stage" (
  "client_id" text,
  "org_id" text,
  "loc_id" text,
  "con_id" text,
  "client_name" text,
  "pan" text,
  "email" text,
  "opening_balance" text,
  "onboarded_on" text,
  "is_active" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

-- [cloud] a short read-only transaction on cloud, before the read snapshot
-- The read horizon is read in a transaction of its own, before the snapshot of the rows is taken.
BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;

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

-- [cloud] oldest open transaction on cloud, read before the snapshot
--   $1 = 'public'  (source schema)
--   $2 = 'climaster'  (source table)
-- Before the snapshot, on cloud: the start of the oldest transaction still open there, as UTC text
-- (whatever the session's DateStyle and TimeZone); rows such a transaction commits later may carry older
-- cursor values, so the watermark stays below it. Without pg_read_all_stats other roles' starts are hidden:
-- then a transaction holding uncommitted writes to the table (pg_locks, readable by every role) whose
-- start is hidden holds the watermark where it is.
SELECT to_char(least(min(a.xact_start), statement_timestamp()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS horizon,
       EXISTS (SELECT 1
                 FROM pg_locks AS l
                 LEFT JOIN pg_stat_activity AS w ON w.pid = l.pid
                WHERE l.locktype = 'relation'
                  AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
                  AND l.relation = to_regclass(format('%I.%I', $1::text, $2::text))
                  AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
                  AND l.granted
                  AND l.pid IS DISTINCT FROM pg_backend_pid()
                  AND w.xact_start IS NULL) AS hold
  FROM pg_stat_activity AS a
 WHERE a.datname = current_database()
   AND a.pid <> pg_backend_pid()
   AND a.xact_start IS NOT NULL;

-- [cloud] end the short transaction
COMMIT;

-- [cloud] open the read snapshot on cloud
-- One snapshot for the rows and their cursor values.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- [cloud] transaction-local text formats and the read window
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = '2026-01-02T03:04:05.123456Z'  (watermark)
--   $10 = '5 seconds'  (lookback)
--   $11 = 'M'  (origin value read)
-- Transaction-local settings (pooler-safe): ISO text both sides read the same way, how long to wait for a lock or a statement, and this step's read window.
-- TimeZone: cloud's own (what its sessions get by default).
-- Every name is schema-qualified: this statement is resolved under the session's own search_path (the pin takes effect after it).
SELECT pg_catalog.set_config('DateStyle', $1, true),
       pg_catalog.set_config('search_path', $2, true), -- built-ins only: nothing another role created runs here
       pg_catalog.set_config('TimeZone', $3, true),
       pg_catalog.set_config('IntervalStyle', $4, true),
       pg_catalog.set_config('extra_float_digits', $5, true),
       pg_catalog.set_config('bytea_output', $6, true),
       pg_catalog.set_config('lock_timeout', $7, true),
       pg_catalog.set_config('statement_timeout', $8, true),
       pg_catalog.set_config('bisync.since', $9, true),
       pg_catalog.set_config('bisync.lookback', $10, true),
       pg_catalog.set_config('bisync.origin', $11, true);

-- [cloud] stream the rows out of cloud
-- Read rows at or after (watermark - lookback), and rows with no cursor value owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."client_id", f."org_id", f."loc_id", f."con_id", f."client_name", f."pan", f."email", f."opening_balance", f."onboarded_on", f."is_active",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."climaster" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
   AND (greatest(f."updated_at", f."created_at")::timestamptz
            >= (SELECT current_setting('bisync.since')::timestamptz - current_setting('bisync.lookback')::interval)
          OR (f."updated_at" IS NULL AND f."created_at" IS NULL))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("client_id", "org_id", "loc_id", "con_id", "client_name", "pan", "email", "opening_balance", "onboarded_on", "is_active", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'client_id'  (key column name client_id)
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
 WHERE s."client_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("client_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'climaster'  (table)
--   $4 = 'insert-insert'  (kind insert-insert)
--   $5 = 'cloud'  (source database)
--   $6 = 'desktop'  (target database)
-- Merge staged rows $1..$2 into desktop in one statement:
-- insert keys desktop does not have; update existing rows only when they differ.
-- Collision safety (SPEC 7, edits: owner): a row on desktop is overwritten only if bisync wrote it there (its key
-- has a fingerprint in desktop's base); a differing row bisync did not write is parked as an insert-insert conflict.
-- A parked key is left alone until it is resolved or both sides hold the same row. Every row written or
-- found equal is recorded in the base.
WITH src AS (
  SELECT s.*
    FROM "bisync_stage" AS s
   WHERE s.__bisync_row BETWEEN $1 AND $2
),
classified AS MATERIALIZED (
  -- Each staged row against the target row with its key (if any): present, owned, changed.
  SELECT s.__bisync_row,
         t.ctid IS NOT NULL AS present,
         true AS owned,
         (t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")
           IS DISTINCT FROM
         (s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean) AS changed,
         (s."client_id"::integer)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."climaster" AS t ON t."client_id" = s."client_id"::integer
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."client_id"::integer)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."client_id"::integer)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."climaster" AS t
     SET "org_id" = s."org_id"::integer,
         "loc_id" = s."loc_id"::integer,
         "con_id" = s."con_id"::integer,
         "client_name" = s."client_name"::character varying,
         "pan" = s."pan"::bpchar,
         "email" = s."email"::text,
         "opening_balance" = s."opening_balance"::numeric(14,2),
         "onboarded_on" = s."onboarded_on"::date,
         "is_active" = s."is_active"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."client_id" = s."client_id"::integer
     AND (t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")
         IS DISTINCT FROM
         (s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean)
  RETURNING t."client_id"::text COLLATE "C" AS key, md5(convert_to(row(t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."climaster" AS t ("client_id", "org_id", "loc_id", "con_id", "client_name", "pan", "email", "opening_balance", "onboarded_on", "is_active")
  SELECT s."client_id"::integer, s."org_id"::integer, s."loc_id"::integer, s."con_id"::integer, s."client_name"::character varying, s."pan"::bpchar, s."email"::text, s."opening_balance"::numeric(14,2), s."onboarded_on"::date, s."is_active"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."client_id"::text COLLATE "C" AS key, md5(convert_to(row(t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."client_id"::integer)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."client_id"::integer AS "client_id", s."org_id"::integer AS "org_id", s."loc_id"::integer AS "loc_id", s."con_id"::integer AS "con_id", s."client_name"::character varying AS "client_name", s."pan"::bpchar AS "pan", s."email"::text AS "email", s."opening_balance"::numeric(14,2) AS "opening_balance", s."onboarded_on"::date AS "onboarded_on", s."is_active"::boolean AS "is_active") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active" FROM "public"."climaster" AS t WHERE t."client_id" = s."client_id"::integer) AS x)),
         h.base_fp
    FROM held AS h
    JOIN src AS s ON s.__bisync_row = h.__bisync_row
  ON CONFLICT (table_name, key) DO UPDATE
     SET versions = EXCLUDED.versions, last_detected = clock_timestamp()
   WHERE p.versions IS DISTINCT FROM EXCLUDED.versions
  RETURNING 1
),
cleared AS (
  DELETE FROM "bisync".conflicts AS p
   USING classified AS c
   WHERE c.parked AND c.present AND NOT c.changed
     AND p.table_name = $3
     AND (CASE WHEN jsonb_array_length(p.key) = 1 THEN p.key ->> 0 ELSE p.key::text END) COLLATE "C" = c.key
  RETURNING 1
),
agreed AS MATERIALIZED (
  -- desktop's base: every row this step wrote, and every row it found equal (fingerprint as desktop holds it).
  SELECT key, fingerprint FROM inserted
  UNION ALL
  SELECT key, fingerprint FROM updated
  UNION ALL
  SELECT e.key, e.fingerprint
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."client_id", t."org_id", t."loc_id", t."con_id", t."client_name", t."pan", t."email", t."opening_balance", t."onboarded_on", t."is_active")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."climaster" AS t ON t."client_id" = s."client_id"::integer
           WHERE c.present AND NOT c.changed) AS e
   WHERE e.base_fp IS DISTINCT FROM e.fingerprint
),
based AS (
  INSERT INTO "bisync".base AS b (table_name, key, fingerprint, generation)
  SELECT $3, a.key, a.fingerprint, c.base_gen + 1
    FROM agreed AS a
    JOIN classified AS c ON c.key = a.key
  ON CONFLICT (table_name, key) DO UPDATE
     SET fingerprint = EXCLUDED.fingerprint, generation = EXCLUDED.generation, agreed_at = clock_timestamp()
  RETURNING 1
)
SELECT (SELECT count(*) FROM src)::bigint AS read,
       (SELECT count(*) FROM inserted)::bigint AS inserted,
       (SELECT count(*) FROM updated)::bigint AS updated,
       (SELECT count(*) FROM classified WHERE present AND owned AND NOT changed)::bigint AS unchanged,
       (SELECT count(*) FROM classified WHERE present AND NOT owned)::bigint AS protected,
       0::bigint AS conflicts,
       (SELECT count(*) FROM held)::bigint AS parked,
       (SELECT count(*) FROM cleared)::bigint AS conflicts_cleared,
       (SELECT count(*) FROM based)::bigint AS base_written;

-- [desktop] only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'client_id'  (key column name client_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."client_id"),
       to_jsonb(s) - '__bisync_row' - '__bisync_cursor' - '__bisync_attempts' - '__bisync_first_seen',
       'error', $4, $5,
       s.__bisync_attempts + 1, coalesce(s.__bisync_first_seen, clock_timestamp())
  FROM "bisync_stage" AS s
 WHERE s.__bisync_row = $6
ON CONFLICT (table_name, direction, key) DO UPDATE
   SET row_data = EXCLUDED.row_data, reason = EXCLUDED.reason, error_code = EXCLUDED.error_code,
       error = EXCLUDED.error, attempts = EXCLUDED.attempts, last_tried = clock_timestamp()
RETURNING r.key, r.attempts;

-- [desktop] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'climaster'  (guarded relation 0 name)
-- Data-loss guard, first and cheap: how many rows this transaction (its own statements and every
-- trigger and foreign-key action they set off, never another session) deleted and updated in each
-- table the guard watches. When that is exactly the deletes and updates the step meant (none outside
-- desktop's table), no row of the other side was touched and the fingerprints below are not needed.
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

-- [desktop] the new watermark, in the same transaction as the data
--   $1 = 'climaster'  (table)
--   $2 = 'reverse'  (direction)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind client_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'climaster'  (target table name)
--   $3 = 'client_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column client_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."client_id")::bigint AS max_key FROM "public"."climaster" AS t) AS m
 WHERE q.seq IS NOT NULL
   AND m.max_key > coalesce(pg_sequence_last_value(q.seq::regclass), 0);

-- [desktop] only when the counts differ: rows the other side owns, with this step's changes, in an exported snapshot
-- Data-loss guard, inside the step: the rows the other side owns, counted and fingerprinted in this
-- statement's snapshot, which is exported so a second connection can take the same count without
-- this step's changes. Any difference is what this step did to them, never what other sessions did
-- meanwhile.
SELECT pg_export_snapshot() AS snapshot, g.relation, g.rows, g.fingerprint
  FROM (
        SELECT 0 AS relation, count(*)::bigint AS rows,
               0::bigint AS fingerprint
          FROM "public"."climaster" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: a second connection to desktop
-- A second, read-only connection to desktop for the guard, in the snapshot the step exports.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- [desktop] guard: the snapshot the step exported
-- SET TRANSACTION SNAPSHOT takes no $n parameter: the executor puts the name pg_export_snapshot()
-- returned (checked against its fixed hex-and-dashes format) in place of the quoted placeholder.
SET TRANSACTION SNAPSHOT '<exported snapshot>';

-- [desktop] guard: the same text formats, so fingerprints compare
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

-- [desktop] guard: the same rows without this step's changes; any row removed or changed rolls the step back (exit 4)
-- Data-loss guard, outside the step: the same rows in the exported snapshot, where this step's
-- uncommitted changes are invisible.
SELECT g.relation, g.rows, g.fingerprint
  FROM (
        SELECT 0 AS relation, count(*)::bigint AS rows,
               0::bigint AS fingerprint
          FROM "public"."climaster" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'climaster'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'incremental'  (mode)
--   $6 = 'watermark 2026-01-02T03:04:05.123456Z on updated_at, created_at, minus the lookback'  (reason)
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
--   $17 = '2026-01-02T03:04:05.123456Z'  (watermark before)
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

-- [desktop] commit data, watermark and run together
COMMIT;
