-- bisync plan 6141ed97a8940103a832a30e561b252126f272f580972c214e7fb42d3fc891ef
-- config: sync.config.yaml; state schema: bisync; 23 steps
-- Parameters are listed above each statement; values are sent as $n parameters, never spliced into SQL.

-- ============================================================================
-- Step 1/23: orgmaster forward: desktop public.orgmaster → cloud public.orgmaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: org_id, org_name, gstin, city, is_active
-- step hash: f0df6b116701074f17e6d0a16f611bac2d274b4762a21430020ffe84ed1e38d7
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
--   $1 = 'orgmaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'orgmaster'  (table)
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
--   $1 = 'orgmaster'  (table)
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
  "org_id" text,
  "org_name" text,
  "gstin" text,
  "city" text,
  "is_active" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."org_id", f."org_name", f."gstin", f."city", f."is_active"
    FROM "public"."orgmaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("org_id", "org_name", "gstin", "city", "is_active") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'orgmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'org_id'  (key column name org_id)
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
 WHERE s."org_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("org_id");

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
         (t."org_id", t."org_name", t."gstin", t."city", t."is_active", t."source"::text)
           IS DISTINCT FROM
         (s."org_id"::integer, s."org_name"::character varying, s."gstin"::character varying, s."city"::text, s."is_active"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."orgmaster" AS t ON t."org_id" = s."org_id"::integer
),
updated AS (
  UPDATE "public"."orgmaster" AS t
     SET "org_name" = s."org_name"::character varying,
         "gstin" = s."gstin"::character varying,
         "city" = s."city"::text,
         "is_active" = s."is_active"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."org_id" = s."org_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."org_id", t."org_name", t."gstin", t."city", t."is_active", t."source"::text)
         IS DISTINCT FROM
         (s."org_id"::integer, s."org_name"::character varying, s."gstin"::character varying, s."city"::text, s."is_active"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."orgmaster" ("org_id", "org_name", "gstin", "city", "is_active", "source")
  SELECT s."org_id"::integer, s."org_name"::character varying, s."gstin"::character varying, s."city"::text, s."is_active"::boolean, $3
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
--   $1 = 'orgmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'org_id'  (key column name org_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."org_id"),
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
  FROM "public"."orgmaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."org_id" = s."org_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'orgmaster'  (guarded relation 0 name)
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
--   $1 = 'orgmaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind org_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'orgmaster'  (target table name)
--   $3 = 'org_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column org_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."org_id")::bigint AS max_key FROM "public"."orgmaster" AS t) AS m
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
          FROM "public"."orgmaster" AS t
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
          FROM "public"."orgmaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'orgmaster'  (table)
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
-- Step 2/23: locmaster forward: desktop public.locmaster → cloud public.locmaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: loc_id, org_id, loc_name, pincode, is_head_office
-- step hash: 16fa7cab9fd9d7e16db1c975b0eceec037cc94f1f1f84c7f2449d7da6c6d6311
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
--   $1 = 'locmaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'locmaster'  (table)
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
--   $1 = 'locmaster'  (table)
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
  "loc_id" text,
  "org_id" text,
  "loc_name" text,
  "pincode" text,
  "is_head_office" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."loc_id", f."org_id", f."loc_name", f."pincode", f."is_head_office"
    FROM "public"."locmaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("loc_id", "org_id", "loc_name", "pincode", "is_head_office") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'locmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'loc_id'  (key column name loc_id)
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
 WHERE s."loc_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("loc_id");

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
         (t."loc_id", t."org_id", t."loc_name", t."pincode", t."is_head_office", t."source"::text)
           IS DISTINCT FROM
         (s."loc_id"::integer, s."org_id"::integer, s."loc_name"::character varying, s."pincode"::bpchar, s."is_head_office"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."locmaster" AS t ON t."loc_id" = s."loc_id"::integer
),
updated AS (
  UPDATE "public"."locmaster" AS t
     SET "org_id" = s."org_id"::integer,
         "loc_name" = s."loc_name"::character varying,
         "pincode" = s."pincode"::bpchar,
         "is_head_office" = s."is_head_office"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."loc_id" = s."loc_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."loc_id", t."org_id", t."loc_name", t."pincode", t."is_head_office", t."source"::text)
         IS DISTINCT FROM
         (s."loc_id"::integer, s."org_id"::integer, s."loc_name"::character varying, s."pincode"::bpchar, s."is_head_office"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."locmaster" ("loc_id", "org_id", "loc_name", "pincode", "is_head_office", "source")
  SELECT s."loc_id"::integer, s."org_id"::integer, s."loc_name"::character varying, s."pincode"::bpchar, s."is_head_office"::boolean, $3
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
--   $1 = 'locmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'loc_id'  (key column name loc_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."loc_id"),
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
  FROM "public"."locmaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."loc_id" = s."loc_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'locmaster'  (guarded relation 0 name)
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
--   $1 = 'locmaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind loc_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'locmaster'  (target table name)
--   $3 = 'loc_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column loc_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."loc_id")::bigint AS max_key FROM "public"."locmaster" AS t) AS m
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
          FROM "public"."locmaster" AS t
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
          FROM "public"."locmaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'locmaster'  (table)
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
-- Step 3/23: conmaster forward: desktop public.conmaster → cloud public.conmaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: con_id, con_code, con_name, sort_order, remarks
-- step hash: dff9e74a309b976633c978854dcbccf3aa6f253bbb7306c139bbb1691697a52e
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
--   $1 = 'conmaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'conmaster'  (table)
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
--   $1 = 'conmaster'  (table)
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
  "con_id" text,
  "con_code" text,
  "con_name" text,
  "sort_order" text,
  "remarks" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."con_id", f."con_code", f."con_name", f."sort_order", f."remarks"
    FROM "public"."conmaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("con_id", "con_code", "con_name", "sort_order", "remarks") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'conmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'con_id'  (key column name con_id)
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
 WHERE s."con_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("con_id");

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
         (t."con_id", t."con_code", t."con_name", t."sort_order", t."remarks", t."source"::text)
           IS DISTINCT FROM
         (s."con_id"::integer, s."con_code"::character varying, s."con_name"::character varying, s."sort_order"::smallint, s."remarks"::text, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."conmaster" AS t ON t."con_id" = s."con_id"::integer
),
updated AS (
  UPDATE "public"."conmaster" AS t
     SET "con_code" = s."con_code"::character varying,
         "con_name" = s."con_name"::character varying,
         "sort_order" = s."sort_order"::smallint,
         "remarks" = s."remarks"::text,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."con_id" = s."con_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."con_id", t."con_code", t."con_name", t."sort_order", t."remarks", t."source"::text)
         IS DISTINCT FROM
         (s."con_id"::integer, s."con_code"::character varying, s."con_name"::character varying, s."sort_order"::smallint, s."remarks"::text, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."conmaster" ("con_id", "con_code", "con_name", "sort_order", "remarks", "source")
  SELECT s."con_id"::integer, s."con_code"::character varying, s."con_name"::character varying, s."sort_order"::smallint, s."remarks"::text, $3
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
--   $1 = 'conmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'con_id'  (key column name con_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."con_id"),
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
  FROM "public"."conmaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."con_id" = s."con_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'conmaster'  (guarded relation 0 name)
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
--   $1 = 'conmaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind con_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'conmaster'  (target table name)
--   $3 = 'con_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column con_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."con_id")::bigint AS max_key FROM "public"."conmaster" AS t) AS m
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
          FROM "public"."conmaster" AS t
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
          FROM "public"."conmaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'conmaster'  (table)
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
-- Step 4/23: mbstaff forward: desktop public.mbstaff → cloud public.mbstaff
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: staff_id, org_id, staff_name, designation, mobile, hourly_rate, joined_on, is_active
-- step hash: f00f1997f13c2f3734b773bf3c696cd8bf3b2235a9db7de14afd06c3f48df817
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
--   $1 = 'mbstaff'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'mbstaff'  (table)
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
--   $1 = 'mbstaff'  (table)
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
  "staff_id" text,
  "org_id" text,
  "staff_name" text,
  "designation" text,
  "mobile" text,
  "hourly_rate" text,
  "joined_on" text,
  "is_active" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."staff_id", f."org_id", f."staff_name", f."designation", f."mobile", f."hourly_rate", f."joined_on", f."is_active"
    FROM "public"."mbstaff" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("staff_id", "org_id", "staff_name", "designation", "mobile", "hourly_rate", "joined_on", "is_active") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'mbstaff'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'staff_id'  (key column name staff_id)
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
 WHERE s."staff_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("staff_id");

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
         (t."staff_id", t."org_id", t."staff_name", t."designation", t."mobile", t."hourly_rate", t."joined_on", t."is_active", t."source"::text)
           IS DISTINCT FROM
         (s."staff_id"::integer, s."org_id"::integer, s."staff_name"::character varying, s."designation"::character varying, s."mobile"::character varying, s."hourly_rate"::numeric(8,2), s."joined_on"::date, s."is_active"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."mbstaff" AS t ON t."staff_id" = s."staff_id"::integer
),
updated AS (
  UPDATE "public"."mbstaff" AS t
     SET "org_id" = s."org_id"::integer,
         "staff_name" = s."staff_name"::character varying,
         "designation" = s."designation"::character varying,
         "mobile" = s."mobile"::character varying,
         "hourly_rate" = s."hourly_rate"::numeric(8,2),
         "joined_on" = s."joined_on"::date,
         "is_active" = s."is_active"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."staff_id" = s."staff_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."staff_id", t."org_id", t."staff_name", t."designation", t."mobile", t."hourly_rate", t."joined_on", t."is_active", t."source"::text)
         IS DISTINCT FROM
         (s."staff_id"::integer, s."org_id"::integer, s."staff_name"::character varying, s."designation"::character varying, s."mobile"::character varying, s."hourly_rate"::numeric(8,2), s."joined_on"::date, s."is_active"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."mbstaff" ("staff_id", "org_id", "staff_name", "designation", "mobile", "hourly_rate", "joined_on", "is_active", "source")
  SELECT s."staff_id"::integer, s."org_id"::integer, s."staff_name"::character varying, s."designation"::character varying, s."mobile"::character varying, s."hourly_rate"::numeric(8,2), s."joined_on"::date, s."is_active"::boolean, $3
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
--   $1 = 'mbstaff'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'staff_id'  (key column name staff_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."staff_id"),
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
  FROM "public"."mbstaff" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."staff_id" = s."staff_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'mbstaff'  (guarded relation 0 name)
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
--   $1 = 'mbstaff'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind staff_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'mbstaff'  (target table name)
--   $3 = 'staff_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column staff_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."staff_id")::bigint AS max_key FROM "public"."mbstaff" AS t) AS m
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
          FROM "public"."mbstaff" AS t
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
          FROM "public"."mbstaff" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'mbstaff'  (table)
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
-- Step 5/23: taskmaster forward: desktop public.taskmaster → cloud public.taskmaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: task_id, task_name, category, std_hours, is_billable
-- step hash: b5146d7853273ad99d46513698af94db94afef5801f47a9460738fb50fe39758
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
--   $1 = 'taskmaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'taskmaster'  (table)
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
--   $1 = 'taskmaster'  (table)
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
  "task_id" text,
  "task_name" text,
  "category" text,
  "std_hours" text,
  "is_billable" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."task_id", f."task_name", f."category", f."std_hours", f."is_billable"
    FROM "public"."taskmaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("task_id", "task_name", "category", "std_hours", "is_billable") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'taskmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'task_id'  (key column name task_id)
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
 WHERE s."task_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("task_id");

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
         (t."task_id", t."task_name", t."category", t."std_hours", t."is_billable", t."source"::text)
           IS DISTINCT FROM
         (s."task_id"::integer, s."task_name"::character varying, s."category"::character varying, s."std_hours"::numeric(6,2), s."is_billable"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."taskmaster" AS t ON t."task_id" = s."task_id"::integer
),
updated AS (
  UPDATE "public"."taskmaster" AS t
     SET "task_name" = s."task_name"::character varying,
         "category" = s."category"::character varying,
         "std_hours" = s."std_hours"::numeric(6,2),
         "is_billable" = s."is_billable"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."task_id" = s."task_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."task_id", t."task_name", t."category", t."std_hours", t."is_billable", t."source"::text)
         IS DISTINCT FROM
         (s."task_id"::integer, s."task_name"::character varying, s."category"::character varying, s."std_hours"::numeric(6,2), s."is_billable"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."taskmaster" ("task_id", "task_name", "category", "std_hours", "is_billable", "source")
  SELECT s."task_id"::integer, s."task_name"::character varying, s."category"::character varying, s."std_hours"::numeric(6,2), s."is_billable"::boolean, $3
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
--   $1 = 'taskmaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'task_id'  (key column name task_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."task_id"),
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
  FROM "public"."taskmaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."task_id" = s."task_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'taskmaster'  (guarded relation 0 name)
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
--   $1 = 'taskmaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind task_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'taskmaster'  (target table name)
--   $3 = 'task_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column task_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."task_id")::bigint AS max_key FROM "public"."taskmaster" AS t) AS m
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
          FROM "public"."taskmaster" AS t
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
          FROM "public"."taskmaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'taskmaster'  (table)
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
-- Step 6/23: jobmaster forward: desktop public.jobmaster → cloud public.jobmaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: job_id, job_name, recurrence, default_fee, is_active
-- step hash: 72923f73d989f14e136e36e77f34802092c05c42a6fa99953368dc84c89bf13d
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
--   $1 = 'jobmaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'jobmaster'  (table)
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
--   $1 = 'jobmaster'  (table)
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
  "job_name" text,
  "recurrence" text,
  "default_fee" text,
  "is_active" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."job_id", f."job_name", f."recurrence", f."default_fee", f."is_active"
    FROM "public"."jobmaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("job_id", "job_name", "recurrence", "default_fee", "is_active") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'jobmaster'  (table)
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

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("job_id");

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
         (t."job_id", t."job_name", t."recurrence", t."default_fee", t."is_active", t."source"::text)
           IS DISTINCT FROM
         (s."job_id"::integer, s."job_name"::character varying, s."recurrence"::character varying, s."default_fee"::numeric(12,2), s."is_active"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."jobmaster" AS t ON t."job_id" = s."job_id"::integer
),
updated AS (
  UPDATE "public"."jobmaster" AS t
     SET "job_name" = s."job_name"::character varying,
         "recurrence" = s."recurrence"::character varying,
         "default_fee" = s."default_fee"::numeric(12,2),
         "is_active" = s."is_active"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."job_id" = s."job_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."job_id", t."job_name", t."recurrence", t."default_fee", t."is_active", t."source"::text)
         IS DISTINCT FROM
         (s."job_id"::integer, s."job_name"::character varying, s."recurrence"::character varying, s."default_fee"::numeric(12,2), s."is_active"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."jobmaster" ("job_id", "job_name", "recurrence", "default_fee", "is_active", "source")
  SELECT s."job_id"::integer, s."job_name"::character varying, s."recurrence"::character varying, s."default_fee"::numeric(12,2), s."is_active"::boolean, $3
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
--   $1 = 'jobmaster'  (table)
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
  FROM "public"."jobmaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."job_id" = s."job_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'jobmaster'  (guarded relation 0 name)
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
--   $1 = 'jobmaster'  (table)
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
--   $2 = 'jobmaster'  (target table name)
--   $3 = 'job_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column job_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."job_id")::bigint AS max_key FROM "public"."jobmaster" AS t) AS m
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
          FROM "public"."jobmaster" AS t
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
          FROM "public"."jobmaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'jobmaster'  (table)
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
-- Step 7/23: climaster forward: desktop public.climaster → cloud public.climaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: client_id, org_id, loc_id, con_id, client_name, pan, email, opening_balance, onboarded_on, is_active
-- step hash: 4a866dcbc96f5f6f130c78fa6080bc287350bb07c21f03cf70d1cacc69557b90
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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."client_id", f."org_id", f."loc_id", f."con_id", f."client_name", f."pan", f."email", f."opening_balance", f."onboarded_on", f."is_active"
    FROM "public"."climaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("client_id", "org_id", "loc_id", "con_id", "client_name", "pan", "email", "opening_balance", "onboarded_on", "is_active") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

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
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."client_id" = s."client_id"::integer);

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
-- Step 8/23: cliunimaster forward: desktop public.cliunimaster → cloud public.cliunimaster
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: cliu_id, client_id, unit_name, gstin, address
-- step hash: 9dffb20f26238d14ea20fe029e5ffbf65fd2bc9bbf9ce5d01513bb429320cf26
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
--   $1 = 'cliunimaster'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'cliunimaster'  (table)
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
--   $1 = 'cliunimaster'  (table)
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
  "cliu_id" text,
  "client_id" text,
  "unit_name" text,
  "gstin" text,
  "address" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."cliu_id", f."client_id", f."unit_name", f."gstin", f."address"
    FROM "public"."cliunimaster" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("cliu_id", "client_id", "unit_name", "gstin", "address") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'cliunimaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'cliu_id'  (key column name cliu_id)
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
 WHERE s."cliu_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("cliu_id");

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
         (t."cliu_id", t."client_id", t."unit_name", t."gstin", t."address", t."source"::text)
           IS DISTINCT FROM
         (s."cliu_id"::integer, s."client_id"::integer, s."unit_name"::character varying, s."gstin"::character varying, s."address"::text, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."cliunimaster" AS t ON t."cliu_id" = s."cliu_id"::integer
),
updated AS (
  UPDATE "public"."cliunimaster" AS t
     SET "client_id" = s."client_id"::integer,
         "unit_name" = s."unit_name"::character varying,
         "gstin" = s."gstin"::character varying,
         "address" = s."address"::text,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."cliu_id" = s."cliu_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."cliu_id", t."client_id", t."unit_name", t."gstin", t."address", t."source"::text)
         IS DISTINCT FROM
         (s."cliu_id"::integer, s."client_id"::integer, s."unit_name"::character varying, s."gstin"::character varying, s."address"::text, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."cliunimaster" ("cliu_id", "client_id", "unit_name", "gstin", "address", "source")
  SELECT s."cliu_id"::integer, s."client_id"::integer, s."unit_name"::character varying, s."gstin"::character varying, s."address"::text, $3
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
--   $1 = 'cliunimaster'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'cliu_id'  (key column name cliu_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."cliu_id"),
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
  FROM "public"."cliunimaster" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."cliu_id" = s."cliu_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'cliunimaster'  (guarded relation 0 name)
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
--   $1 = 'cliunimaster'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind cliu_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'cliunimaster'  (target table name)
--   $3 = 'cliu_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column cliu_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."cliu_id")::bigint AS max_key FROM "public"."cliunimaster" AS t) AS m
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
          FROM "public"."cliunimaster" AS t
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
          FROM "public"."cliunimaster" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'cliunimaster'  (table)
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
-- Step 9/23: jobshead forward: desktop public.jobshead → cloud public.jobshead
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: job_id, client_id, template_id, job_name, job_status, fee, due_date, notes, extra
-- step hash: c75b9a7099e3014a4319521add027bed81045262d11e95e02c0692f0763d21e9
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
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("job_id", "client_id", "template_id", "job_name", "job_status", "fee", "due_date", "notes", "extra", __bisync_present, __bisync_base_fp, __bisync_base_gen, __bisync_parked_kind) FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

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
 WHERE NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE (s."job_id"::bigint)::text COLLATE "C" = b.key);

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
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."job_id" = s."job_id"::bigint);

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

-- ============================================================================
-- Step 10/23: jobtasks forward: desktop public.jobtasks → cloud public.jobtasks
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: jt_id, job_id, task_id, staff_id, status, planned_hours, completed_on
-- step hash: 4133b26dceba29663c44883232ed80e4fe1205eaf73c5df6457095c8c02facd5
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
--   $1 = 'jobtasks'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'jobtasks'  (table)
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
--   $1 = 'jobtasks'  (table)
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
  "jt_id" text,
  "job_id" text,
  "task_id" text,
  "staff_id" text,
  "status" text,
  "planned_hours" text,
  "completed_on" text,
  __bisync_cursor     timestamptz,
  __bisync_present    boolean NOT NULL DEFAULT true,
  __bisync_base_fp    text,
  __bisync_base_gen   bigint,
  __bisync_parked_kind text,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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
--   $9 = 'jobtasks'  (table)
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

-- [desktop] stream the rows out of desktop, with desktop's copy of the base
-- Read every row, and every key desktop's copy of the base knows (a key in the base that desktop no longer has was deleted there),
-- each with desktop's base fingerprint and generation, and the kind of a conflict desktop holds parked for the key
-- (edits: both, SPEC 7: a key parked on either database is left alone). Every matching row, no window.
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT coalesce(f."jt_id"::text, b.key), f."job_id", f."task_id", f."staff_id", f."status", f."planned_hours", f."completed_on",
         fk.__bisync_key IS NOT NULL AS __bisync_present,
         b.fingerprint AS __bisync_base_fp,
         b.generation AS __bisync_base_gen,
         c.kind AS __bisync_parked_kind
    -- Each row's key as the base stores it, built once and used by both joins (in a relation of its own: no column
    -- of desktop's table can share its name); NULL where desktop has no row for a key of its base.
    FROM "public"."jobtasks" AS f
   CROSS JOIN LATERAL (SELECT f."jt_id"::text COLLATE "C" AS __bisync_key) AS fk
    FULL JOIN (SELECT key, fingerprint, generation
                 FROM "bisync".base
                WHERE table_name = (SELECT current_setting('bisync.base_table'))) AS b
      ON b.key = fk.__bisync_key
    LEFT JOIN "bisync".conflicts AS c
      ON c.table_name = (SELECT current_setting('bisync.base_table'))
     AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = coalesce(b.key, fk.__bisync_key)
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("jt_id", "job_id", "task_id", "staff_id", "status", "planned_hours", "completed_on", __bisync_present, __bisync_base_fp, __bisync_base_gen, __bisync_parked_kind) FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'jobtasks'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'jt_id'  (key column name jt_id)
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
 WHERE s."jt_id" = p.key ->> $3;

-- [cloud] keys cloud's base holds that desktop no longer has: deleted there
--   $1 = 'jobtasks'  (table)
-- After a full read: keys cloud's copy of the base holds as agreed, and keys cloud holds parked, that
-- desktop sent neither as a row nor from its own base. desktop deleted them (or never had them); the merge
-- decides what that means, and refreshes a parked key's versions.
INSERT INTO "bisync_stage" ("jt_id", __bisync_present)
SELECT b.key, false
  FROM (SELECT b.key FROM "bisync".base AS b
         WHERE b.table_name = $1 AND b.fingerprint IS NOT NULL
        UNION
        SELECT (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" FROM "bisync".conflicts AS c
         WHERE c.table_name = $1) AS b
 WHERE NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE (s."jt_id"::bigint)::text COLLATE "C" = b.key);

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan;
-- and of the staged row numbers, so the merge's range of them is estimated as the rows it holds (the three-way
-- merge joins them to cloud, its base and its conflicts: an estimate of a few rows would choose nested loops).
ANALYZE "bisync_stage" ("jt_id", __bisync_row);

-- [cloud] three-way merge: each row of the decision table (SPEC §7), conflicts, and the new base
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'jobtasks'  (table)
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
         (s."jt_id"::bigint)::text COLLATE "C" AS __bisync_key,
         CASE WHEN s.__bisync_present THEN md5(convert_to(row(s."jt_id", s."job_id", s."task_id", s."staff_id", s."status", s."planned_hours", s."completed_on")::text, 'UTF8')) END AS __bisync_fp
    FROM "bisync_stage" AS s
   WHERE s.__bisync_row BETWEEN $1 AND $2
),
three AS MATERIALIZED (
  SELECT s.__bisync_row AS row_no,
         s.__bisync_key AS key,
         s.__bisync_present AS f_present,
         t.ctid IS NOT NULL AS t_present,
         s.__bisync_fp AS f_fp,
         CASE WHEN t.ctid IS NOT NULL THEN md5(convert_to(row(t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on")::text, 'UTF8')) END AS t_fp,
         CASE WHEN coalesce(s.__bisync_base_gen, -1) > coalesce(b.generation, -1) THEN s.__bisync_base_fp ELSE b.fingerprint END AS base_fp,
         coalesce(greatest(s.__bisync_base_gen, b.generation), 0) AS base_gen,
         b.generation IS NOT NULL AS t_has_base,
         b.fingerprint AS t_base_fp,
         s.__bisync_base_gen IS NOT NULL AS f_has_base,
         s.__bisync_base_fp AS f_base_fp,
         c.key IS NOT NULL OR s.__bisync_parked_kind IS NOT NULL AS parked,
         coalesce(c.kind, s.__bisync_parked_kind) AS parked_kind
    FROM src AS s
    LEFT JOIN "public"."jobtasks" AS t ON t."jt_id" = s."jt_id"::bigint
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
  UPDATE "public"."jobtasks" AS t
     SET "job_id" = s."job_id"::bigint,
         "task_id" = s."task_id"::integer,
         "staff_id" = s."staff_id"::integer,
         "status" = s."status"::character varying,
         "planned_hours" = s."planned_hours"::numeric(6,2),
         "completed_on" = s."completed_on"::date
    FROM src AS s
    JOIN (SELECT row_no, t_fp, base_gen, t_has_base, parked FROM f_changed_t_unchanged
          UNION ALL
          SELECT row_no, t_fp, base_gen, t_has_base, parked FROM decided WHERE winner = 'source' AND f_present AND t_present) AS w
      ON w.row_no = s.__bisync_row
   WHERE t."jt_id" = s."jt_id"::bigint
     AND md5(convert_to(row(t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on")::text, 'UTF8')) = w.t_fp
  RETURNING s.__bisync_key AS key, s.__bisync_fp AS fingerprint, w.base_gen, w.t_has_base, w.parked
),
inserted AS (
  INSERT INTO "public"."jobtasks" AS t ("jt_id", "job_id", "task_id", "staff_id", "status", "planned_hours", "completed_on", "source")
  SELECT s."jt_id"::bigint, s."job_id"::bigint, s."task_id"::integer, s."staff_id"::integer, s."status"::character varying, s."planned_hours"::numeric(6,2), s."completed_on"::date, $6
    FROM src AS s
    JOIN (SELECT row_no FROM f_created_t_absent
          UNION ALL
          SELECT row_no FROM decided WHERE winner = 'source' AND f_present AND NOT t_present) AS w
      ON w.row_no = s.__bisync_row
  RETURNING t."jt_id"::text COLLATE "C" AS key
),
parked AS (
  INSERT INTO "bisync".conflicts AS c (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."jt_id"::bigint)::text), d.kind,
         jsonb_build_object($7::text,
                            CASE WHEN d.f_present THEN (SELECT to_jsonb(x) FROM (SELECT s."jt_id"::bigint AS "jt_id", s."job_id"::bigint AS "job_id", s."task_id"::integer AS "task_id", s."staff_id"::integer AS "staff_id", s."status"::character varying AS "status", s."planned_hours"::numeric(6,2) AS "planned_hours", s."completed_on"::date AS "completed_on") AS x) END,
                            $8::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on" FROM "public"."jobtasks" AS t WHERE t."jt_id" = s."jt_id"::bigint) AS x)),
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
--   $1 = 'jobtasks'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'jt_id'  (key column name jt_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."jt_id"),
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
  FROM "public"."jobtasks" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."jt_id" = s."jt_id"::bigint);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'jobtasks'  (guarded relation 0 name)
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
--   $1 = 'jobtasks'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind jt_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'jobtasks'  (target table name)
--   $3 = 'jt_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column jt_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."jt_id")::bigint AS max_key FROM "public"."jobtasks" AS t) AS m
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
          FROM "public"."jobtasks" AS t
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
          FROM "public"."jobtasks" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'jobtasks'  (table)
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
--   $1 = 'jobtasks'  (table)
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

-- ============================================================================
-- Step 11/23: taskchecklist forward: desktop public.taskchecklist → cloud public.taskchecklist
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: tc_id, task_id, item_no, item_text, is_mandatory
-- step hash: ff9a58418ffb503c0376036a517609e1fc3d0cce8d1a08b9b43db0cbf0b7c9fd
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
--   $1 = 'taskchecklist'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'taskchecklist'  (table)
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
--   $1 = 'taskchecklist'  (table)
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
  "tc_id" text,
  "task_id" text,
  "item_no" text,
  "item_text" text,
  "is_mandatory" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."tc_id", f."task_id", f."item_no", f."item_text", f."is_mandatory"
    FROM "public"."taskchecklist" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("tc_id", "task_id", "item_no", "item_text", "is_mandatory") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'taskchecklist'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'tc_id'  (key column name tc_id)
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
 WHERE s."tc_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("tc_id");

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
         (t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory", t."source"::text)
           IS DISTINCT FROM
         (s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."taskchecklist" AS t ON t."tc_id" = s."tc_id"::integer
),
updated AS (
  UPDATE "public"."taskchecklist" AS t
     SET "task_id" = s."task_id"::integer,
         "item_no" = s."item_no"::integer,
         "item_text" = s."item_text"::text,
         "is_mandatory" = s."is_mandatory"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."tc_id" = s."tc_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory", t."source"::text)
         IS DISTINCT FROM
         (s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."taskchecklist" ("tc_id", "task_id", "item_no", "item_text", "is_mandatory", "source")
  SELECT s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean, $3
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
--   $1 = 'taskchecklist'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'tc_id'  (key column name tc_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."tc_id"),
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
  FROM "public"."taskchecklist" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."tc_id" = s."tc_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'taskchecklist'  (guarded relation 0 name)
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
--   $1 = 'taskchecklist'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind tc_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'taskchecklist'  (target table name)
--   $3 = 'tc_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column tc_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."tc_id")::bigint AS max_key FROM "public"."taskchecklist" AS t) AS m
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
          FROM "public"."taskchecklist" AS t
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
          FROM "public"."taskchecklist" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'taskchecklist'  (table)
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
-- Step 12/23: workdiary forward: desktop public.workdiary → cloud public.workdiary
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: wd_id, staff_id, job_id, work_date, hours, description, billable
-- step hash: 2126549beae5a959428579267064691976fc3abfa40da0c07ce398523c8785c1
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
--   $1 = 'workdiary'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'workdiary'  (table)
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
--   $1 = 'workdiary'  (table)
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
  "wd_id" text,
  "staff_id" text,
  "job_id" text,
  "work_date" text,
  "hours" text,
  "description" text,
  "billable" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."wd_id", f."staff_id", f."job_id", f."work_date", f."hours", f."description", f."billable"
    FROM "public"."workdiary" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("wd_id", "staff_id", "job_id", "work_date", "hours", "description", "billable") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'workdiary'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'wd_id'  (key column name wd_id)
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
 WHERE s."wd_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("wd_id");

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
         (t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable", t."source"::text)
           IS DISTINCT FROM
         (s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."workdiary" AS t ON t."wd_id" = s."wd_id"::bigint
),
updated AS (
  UPDATE "public"."workdiary" AS t
     SET "staff_id" = s."staff_id"::integer,
         "job_id" = s."job_id"::bigint,
         "work_date" = s."work_date"::date,
         "hours" = s."hours"::numeric(5,2),
         "description" = s."description"::text,
         "billable" = s."billable"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."wd_id" = s."wd_id"::bigint
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable", t."source"::text)
         IS DISTINCT FROM
         (s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."workdiary" ("wd_id", "staff_id", "job_id", "work_date", "hours", "description", "billable", "source")
  SELECT s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean, $3
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
--   $1 = 'workdiary'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'wd_id'  (key column name wd_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."wd_id"),
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
  FROM "public"."workdiary" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."wd_id" = s."wd_id"::bigint);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'workdiary'  (guarded relation 0 name)
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
--   $1 = 'workdiary'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind wd_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'workdiary'  (target table name)
--   $3 = 'wd_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column wd_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."wd_id")::bigint AS max_key FROM "public"."workdiary" AS t) AS m
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
          FROM "public"."workdiary" AS t
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
          FROM "public"."workdiary" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'workdiary'  (table)
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
-- Step 13/23: reminder forward: desktop public.mbreminder → cloud public.reminder
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: rem_id, staff_id, client_id, remdate→reminder_date, title, is_done
-- step hash: 00b0b85f2d098c2e03f14b6f827184c767c6dc98a6387d4f2bfadb86b1bbd2a9
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
--   $1 = 'reminder'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'reminder'  (table)
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
--   $1 = 'reminder'  (table)
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
  "rem_id" text,
  "staff_id" text,
  "client_id" text,
  "reminder_date" text,
  "title" text,
  "is_done" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."rem_id", f."staff_id", f."client_id", f."remdate", f."title", f."is_done"
    FROM "public"."mbreminder" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("rem_id", "staff_id", "client_id", "reminder_date", "title", "is_done") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'reminder'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'rem_id'  (key column name rem_id)
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
 WHERE s."rem_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("rem_id");

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
         (t."rem_id", t."staff_id", t."client_id", t."reminder_date", t."title", t."is_done", t."source"::text)
           IS DISTINCT FROM
         (s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."reminder_date"::date, s."title"::character varying, s."is_done"::boolean, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."reminder" AS t ON t."rem_id" = s."rem_id"::integer
),
updated AS (
  UPDATE "public"."reminder" AS t
     SET "staff_id" = s."staff_id"::integer,
         "client_id" = s."client_id"::integer,
         "reminder_date" = s."reminder_date"::date,
         "title" = s."title"::character varying,
         "is_done" = s."is_done"::boolean,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."rem_id" = s."rem_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."rem_id", t."staff_id", t."client_id", t."reminder_date", t."title", t."is_done", t."source"::text)
         IS DISTINCT FROM
         (s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."reminder_date"::date, s."title"::character varying, s."is_done"::boolean, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."reminder" ("rem_id", "staff_id", "client_id", "reminder_date", "title", "is_done", "source")
  SELECT s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."reminder_date"::date, s."title"::character varying, s."is_done"::boolean, $3
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
--   $1 = 'reminder'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'rem_id'  (key column name rem_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."rem_id"),
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
  FROM "public"."reminder" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."rem_id" = s."rem_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'reminder'  (guarded relation 0 name)
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
--   $1 = 'reminder'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind rem_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'reminder'  (target table name)
--   $3 = 'rem_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column rem_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."rem_id")::bigint AS max_key FROM "public"."reminder" AS t) AS m
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
          FROM "public"."reminder" AS t
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
          FROM "public"."reminder" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'reminder'  (table)
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
-- Step 14/23: remdetail forward: desktop public.remdetail → cloud public.remdetail
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: remd_id, rem_id, channel, remind_before_days, note
-- step hash: c294c48286ccee47962be70c22551e6f6c2e62ec85187d66b8e88b6f7cbbfc2e
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
--   $1 = 'remdetail'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'remdetail'  (table)
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
--   $1 = 'remdetail'  (table)
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
  "remd_id" text,
  "rem_id" text,
  "channel" text,
  "remind_before_days" text,
  "note" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."remd_id", f."rem_id", f."channel", f."remind_before_days", f."note"
    FROM "public"."remdetail" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("remd_id", "rem_id", "channel", "remind_before_days", "note") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'remdetail'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'remd_id'  (key column name remd_id)
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
 WHERE s."remd_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("remd_id");

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
         (t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note", t."source"::text)
           IS DISTINCT FROM
         (s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."remdetail" AS t ON t."remd_id" = s."remd_id"::integer
),
updated AS (
  UPDATE "public"."remdetail" AS t
     SET "rem_id" = s."rem_id"::integer,
         "channel" = s."channel"::character varying,
         "remind_before_days" = s."remind_before_days"::smallint,
         "note" = s."note"::text,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."remd_id" = s."remd_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note", t."source"::text)
         IS DISTINCT FROM
         (s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."remdetail" ("remd_id", "rem_id", "channel", "remind_before_days", "note", "source")
  SELECT s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text, $3
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
--   $1 = 'remdetail'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'remd_id'  (key column name remd_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."remd_id"),
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
  FROM "public"."remdetail" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."remd_id" = s."remd_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'remdetail'  (guarded relation 0 name)
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
--   $1 = 'remdetail'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind remd_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'remdetail'  (target table name)
--   $3 = 'remd_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column remd_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."remd_id")::bigint AS max_key FROM "public"."remdetail" AS t) AS m
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
          FROM "public"."remdetail" AS t
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
          FROM "public"."remdetail" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'remdetail'  (table)
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
-- Step 15/23: learequest forward: desktop public.learequest → cloud public.learequest
-- mode: full — no cursor columns on desktop: every row is read and compared; only changed rows are written; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: lea_id, staff_id, leave_type, from_date, to_date, reason, status, approved_by
-- step hash: 4f982227b6ca5d537bf04aa1239b50d0dca5e91f8224dea7163cb36ac5d9a1b2
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
--   $1 = 'learequest'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] commit the bootstrap
COMMIT;

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
--   $1 = 'learequest'  (table)
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
--   $1 = 'learequest'  (table)
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
  "lea_id" text,
  "staff_id" text,
  "leave_type" text,
  "from_date" text,
  "to_date" text,
  "reason" text,
  "status" text,
  "approved_by" text,
  __bisync_cursor     timestamptz,

  __bisync_attempts   integer NOT NULL DEFAULT 0,
  __bisync_first_seen timestamptz,
  __bisync_row        bigint GENERATED ALWAYS AS IDENTITY
) ON COMMIT DROP;

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

-- [desktop] stream the rows out of desktop
-- Read every row. Every matching row, no window.
COPY (
  SELECT f."lea_id", f."staff_id", f."leave_type", f."from_date", f."to_date", f."reason", f."status", f."approved_by"
    FROM "public"."learequest" AS f
) TO STDOUT;

-- [cloud] stream them into staging on cloud
COPY "bisync_stage" ("lea_id", "staff_id", "leave_type", "from_date", "to_date", "reason", "status", "approved_by") FROM STDIN;

-- [desktop] end the read snapshot
COMMIT;

-- [cloud] retry rows rejected by earlier runs
--   $1 = 'learequest'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'lea_id'  (key column name lea_id)
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
 WHERE s."lea_id" = p.key ->> $3;

-- [cloud] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [cloud] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to cloud with a sensible plan.
ANALYZE "bisync_stage" ("lea_id");

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
         (t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by", t."source"::text)
           IS DISTINCT FROM
         (s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer, $3::text) AS changed
    FROM src AS s
    LEFT JOIN "public"."learequest" AS t ON t."lea_id" = s."lea_id"::integer
),
updated AS (
  UPDATE "public"."learequest" AS t
     SET "staff_id" = s."staff_id"::integer,
         "leave_type" = s."leave_type"::character varying,
         "from_date" = s."from_date"::date,
         "to_date" = s."to_date"::date,
         "reason" = s."reason"::text,
         "status" = s."status"::character varying,
         "approved_by" = s."approved_by"::integer,
         "source" = $3
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
   WHERE t."lea_id" = s."lea_id"::integer
     AND (t."source" IS NULL OR t."source"::text = $3)
     AND (t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by", t."source"::text)
         IS DISTINCT FROM
         (s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer, $3::text)
  RETURNING 1
),
inserted AS (
  INSERT INTO "public"."learequest" ("lea_id", "staff_id", "leave_type", "from_date", "to_date", "reason", "status", "approved_by", "source")
  SELECT s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer, $3
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
--   $1 = 'learequest'  (table)
--   $2 = 'forward'  (direction)
--   $3 = 'lea_id'  (key column name lea_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row cloud refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."lea_id"),
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
  FROM "public"."learequest" AS t
 WHERE t."source" IS NULL
   AND NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE t."lea_id" = s."lea_id"::integer);

-- [cloud] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'learequest'  (guarded relation 0 name)
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
--   $1 = 'learequest'  (table)
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

-- [cloud] only when the merge inserted rows: advance the sequence behind lea_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'learequest'  (target table name)
--   $3 = 'lea_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into cloud's key column lea_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so cloud's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."lea_id")::bigint AS max_key FROM "public"."learequest" AS t) AS m
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
          FROM "public"."learequest" AS t
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
          FROM "public"."learequest" AS t
         WHERE t."source"::text IS DISTINCT FROM $1
           AND t."source" IS NOT NULL
       ) AS g
 ORDER BY g.relation;

-- [cloud] guard: end the second connection's read
COMMIT;

-- [cloud] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'learequest'  (table)
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
-- Step 16/23: climaster reverse: cloud public.climaster → desktop public.climaster
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: client_id, org_id, loc_id, con_id, client_name, pan, email, opening_balance, onboarded_on, is_active
-- step hash: 3da5331d593517d9053d8b318a927953005722723f74fbb607e983cac4d0e09f
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."client_id", f."org_id", f."loc_id", f."con_id", f."client_name", f."pan", f."email", f."opening_balance", f."onboarded_on", f."is_active",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."climaster" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
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
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- ============================================================================
-- Step 17/23: jobshead reverse: cloud public.jobshead → desktop public.jobshead
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: job_id, client_id, template_id, job_name, job_status, fee, due_date, notes, extra
-- step hash: 4310832559aa2e97890f9a87acf4a7ae7ce5926ac542ec0af1aef02656399467
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
--   $1 = 'jobshead'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] on cloud: the forward step's row of state, which this step locks too
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'jobshead'  (table)
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
--   $1 = 'jobshead'  (table)
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
--   $2 = 'jobshead'  (source table)
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

-- [cloud] open the read snapshot on cloud, held until this step has committed on desktop
-- One snapshot for the rows and their cursor values.
-- edits: both: read-write only for the forward step's row lock taken next (a read-only transaction cannot lock a
-- row); read-only right after it. This transaction stays open until the step has committed on desktop.
BEGIN ISOLATION LEVEL REPEATABLE READ;

-- [cloud] transaction-local text formats and the read window
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = 'jobshead'  (table)
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
       pg_catalog.set_config('bisync.base_table', $9, true);

-- [cloud] forward and reverse of an edits: both table run one at a time: the forward step's row of state on cloud
--   $1 = 'jobshead'  (table)
--   $2 = 'forward'  (the other direction)
-- Forward and reverse of an edits: both table run one at a time: in its read transaction on cloud, this
-- step locks the row of bisync's state the forward step locks there, and holds it until it has committed on
-- desktop (the read's commit comes last). NOWAIT, like every step lock: while forward runs this fails with
-- lock_not_available (exit 3, nothing changed), and two runs never wait on each other. Only a role that can
-- write bisync's state can take this lock.
SELECT true AS locked
  FROM "bisync".state AS fw
 WHERE fw.table_name = $1
   AND fw.direction = $2
   FOR UPDATE NOWAIT;

-- [cloud] the rest of the read only reads
-- The forward step's lock is held: from here on this transaction only reads.
SET TRANSACTION READ ONLY;

-- [cloud] stream the rows out of cloud, with cloud's copy of the base
-- Read every row, and every key cloud's copy of the base knows (a key in the base that cloud no longer has was deleted there),
-- each with cloud's base fingerprint and generation, and the kind of a conflict cloud holds parked for the key
-- (edits: both, SPEC 7: a key parked on either database is left alone). Every matching row, no window.
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT coalesce(f."job_id"::text, b.key), f."client_id", f."template_id", f."job_name", f."job_status", f."fee", f."due_date", f."notes", f."extra",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor,
         fk.__bisync_key IS NOT NULL AS __bisync_present,
         b.fingerprint AS __bisync_base_fp,
         b.generation AS __bisync_base_gen,
         c.kind AS __bisync_parked_kind
    -- Each row's key as the base stores it, built once and used by both joins (in a relation of its own: no column
    -- of cloud's table can share its name); NULL where cloud has no row for a key of its base.
    FROM "public"."jobshead" AS f
   CROSS JOIN LATERAL (SELECT f."job_id"::text COLLATE "C" AS __bisync_key) AS fk
    FULL JOIN (SELECT key, fingerprint, generation
                 FROM "bisync".base
                WHERE table_name = (SELECT current_setting('bisync.base_table'))) AS b
      ON b.key = fk.__bisync_key
    LEFT JOIN "bisync".conflicts AS c
      ON c.table_name = (SELECT current_setting('bisync.base_table'))
     AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = coalesce(b.key, fk.__bisync_key)
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("job_id", "client_id", "template_id", "job_name", "job_status", "fee", "due_date", "notes", "extra", __bisync_cursor, __bisync_present, __bisync_base_fp, __bisync_base_gen, __bisync_parked_kind) FROM STDIN;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'jobshead'  (table)
--   $2 = 'reverse'  (direction)
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

-- [desktop] keys desktop's base holds that cloud no longer has: deleted there
--   $1 = 'jobshead'  (table)
-- After a full read: keys desktop's copy of the base holds as agreed, and keys desktop holds parked, that
-- cloud sent neither as a row nor from its own base. cloud deleted them (or never had them); the merge
-- decides what that means, and refreshes a parked key's versions.
INSERT INTO "bisync_stage" ("job_id", __bisync_present)
SELECT b.key, false
  FROM (SELECT b.key FROM "bisync".base AS b
         WHERE b.table_name = $1 AND b.fingerprint IS NOT NULL
        UNION
        SELECT (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" FROM "bisync".conflicts AS c
         WHERE c.table_name = $1) AS b
 WHERE NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE (s."job_id"::bigint)::text COLLATE "C" = b.key);

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan;
-- and of the staged row numbers, so the merge's range of them is estimated as the rows it holds (the three-way
-- merge joins them to desktop, its base and its conflicts: an estimate of a few rows would choose nested loops).
ANALYZE "bisync_stage" ("job_id", __bisync_row);

-- [desktop] three-way merge: each row of the decision table (SPEC §7), conflicts, and the new base
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'jobshead'  (table)
--   $4 = 'update-update'  (kind update-update)
--   $5 = 'insert-insert'  (kind insert-insert)
--   $6 = 'cloud'  (source database)
--   $7 = 'desktop'  (target database)
--   $8 = '10000'  (most versions sent back for the source copy)
-- Three-way merge (edits: both, SPEC 7) of staged rows $1..$2 into desktop, in one statement.
-- Each key is seen in three versions: cloud's (staged), desktop's, and the base: the fingerprint of the version
-- both sides last agreed on (the fresher, by generation, of cloud's copy read with the rows and desktop's copy).
-- No base (fingerprint NULL) means no agreed live row: never synced, or agreed deleted.
-- One CTE per row of the decision table, then the writes, the conflicts (park) and the new base:
--   both_equal               both sides hold the same version           nothing; record the base; a parked conflict clears itself
--   f_changed_t_unchanged    cloud changed, desktop did not          write cloud's version to desktop
--   f_unchanged_t_changed    desktop changed, cloud did not          nothing (desktop -> cloud carries it)
--   conflict_update_update   both changed, differently                 conflict update-update
--   f_created_t_absent       new on cloud, not on desktop, no base        insert it on desktop
--   t_created_f_absent       new on desktop, not on cloud, no base        nothing (desktop -> cloud carries it)
--   conflict_insert_insert   new on both sides, different              conflict insert-insert
--   f_deleted_kept           deleted on cloud (deletes: keep)           nothing: the delete is not carried
--   t_deleted_kept           deleted on desktop (deletes: keep)           nothing: never re-created on desktop
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
  -- cloud's version over desktop's, only while desktop still holds the version compared.
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
  INSERT INTO "public"."jobshead" AS t ("job_id", "client_id", "template_id", "job_name", "job_status", "fee", "due_date", "notes", "extra")
  SELECT s."job_id"::bigint, s."client_id"::integer, s."template_id"::integer, s."job_name"::character varying, s."job_status"::character varying, s."fee"::numeric(12,2), s."due_date"::date, s."notes"::text, s."extra"::jsonb
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
         jsonb_build_object($6::text,
                            CASE WHEN d.f_present THEN (SELECT to_jsonb(x) FROM (SELECT s."job_id"::bigint AS "job_id", s."client_id"::integer AS "client_id", s."template_id"::integer AS "template_id", s."job_name"::character varying AS "job_name", s."job_status"::character varying AS "job_status", s."fee"::numeric(12,2) AS "fee", s."due_date"::date AS "due_date", s."notes"::text AS "notes", s."extra"::jsonb AS "extra") AS x) END,
                            $7::text,
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
  -- are recorded when the fresher copy or desktop's own copy does not say so already, so that
  -- desktop's copy comes to hold the agreed version too; once both copies do, a no-change rerun
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
  -- Keys desktop's copy does not hold yet (and no one else writes while this step holds its lock;
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
  -- What cloud's copy lacks: a key it holds with the agreed fingerprint already (a first sync's other direction, a
  -- copy only desktop's lagged behind) is left as it is there, at its older generation: the same version.
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
       -- The versions recorded above that cloud's copy (as read with the rows) does not hold yet, for that copy once
       -- this transaction has committed (record-source-base); none when there are more than the executor holds in
       -- memory: the next step into cloud records them.
       CASE WHEN (SELECT count(*) FROM sent_back) <= $8::bigint
            THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('key', key, 'fingerprint', fingerprint, 'generation', base_gen + 1)), '[]') FROM sent_back)
       END AS versions;

-- [desktop] only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here
--   $1 = 'jobshead'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'job_id'  (key column name job_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
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

-- [desktop] rows this transaction deleted and updated in each guarded table: exactly what the step meant → the checks below are skipped
--   $1 = 'public'  (guarded relation 0 schema)
--   $2 = 'jobshead'  (guarded relation 0 name)
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
--   $1 = 'jobshead'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind job_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'jobshead'  (target table name)
--   $3 = 'job_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column job_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."job_id")::bigint AS max_key FROM "public"."jobshead" AS t) AS m
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
          FROM "public"."jobshead" AS t
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
          FROM "public"."jobshead" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'jobshead'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- [cloud] end the read snapshot and release the forward step's lock on cloud, after the commit on desktop
COMMIT;

-- [cloud] only when the merge recorded base versions, after the commit on desktop: a short write transaction on cloud
-- A short write transaction on cloud, only after the commit on desktop: its copy of the base.
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

-- [cloud] the same versions into cloud's copy of the base, where it is older (by generation)
--   $1 = 'jobshead'  (table)
--   $2 = <versions recorded on the target, supplied while running>
-- After the commit on desktop (never before it): the versions this step recorded in desktop's copy of the
-- base (SPEC 7) recorded in cloud's copy too, with the same generation, so that both copies hold what the two
-- sides agreed. Only where cloud's copy is older (a lower generation): a step into cloud that recorded
-- something since keeps it, so no lock is needed. If this never runs (a crash just before it), cloud's copy is
-- stale: the merge uses the fresher copy, and the next step into cloud brings its copy up to date.
INSERT INTO "bisync".base AS b (table_name, key, fingerprint, generation)
SELECT $1, a.key, a.fingerprint, a.generation
  FROM jsonb_to_recordset($2::jsonb) AS a(key text, fingerprint text, generation bigint)
ON CONFLICT (table_name, key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, generation = EXCLUDED.generation, agreed_at = clock_timestamp()
 WHERE b.generation < EXCLUDED.generation;

-- [cloud] commit cloud's copy of the base
COMMIT;

-- ============================================================================
-- Step 18/23: jobtasks reverse: cloud public.jobtasks → desktop public.jobtasks
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read; first run of this step: no checksum compare
-- write: upsert; deletes: keep; columns: jt_id, job_id, task_id, staff_id, status, planned_hours, completed_on
-- step hash: 50db50aaa98aca55a654f42fb5e2b4b1898f2df23be12e1ef54995f5b06edef9
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
--   $1 = 'jobtasks'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [cloud] on cloud: the forward step's row of state, which this step locks too
--   $1 = 'jobtasks'  (table)
--   $2 = 'forward'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'jobtasks'  (table)
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
--   $1 = 'jobtasks'  (table)
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
  "jt_id" text,
  "job_id" text,
  "task_id" text,
  "staff_id" text,
  "status" text,
  "planned_hours" text,
  "completed_on" text,
  __bisync_cursor     timestamptz,
  __bisync_present    boolean NOT NULL DEFAULT true,
  __bisync_base_fp    text,
  __bisync_base_gen   bigint,
  __bisync_parked_kind text,

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
--   $2 = 'jobtasks'  (source table)
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

-- [cloud] open the read snapshot on cloud, held until this step has committed on desktop
-- One snapshot for the rows and their cursor values.
-- edits: both: read-write only for the forward step's row lock taken next (a read-only transaction cannot lock a
-- row); read-only right after it. This transaction stays open until the step has committed on desktop.
BEGIN ISOLATION LEVEL REPEATABLE READ;

-- [cloud] transaction-local text formats and the read window
--   $1 = 'ISO, MDY'  (DateStyle)
--   $2 = 'pg_catalog, pg_temp'  (search_path)
--   $3 = 'America/New_York'  (TimeZone)
--   $4 = 'postgres'  (IntervalStyle)
--   $5 = '3'  (extra_float_digits)
--   $6 = 'hex'  (bytea_output)
--   $7 = '30000ms'  (lock_timeout)
--   $8 = '3600000ms'  (statement_timeout)
--   $9 = 'jobtasks'  (table)
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
       pg_catalog.set_config('bisync.base_table', $9, true);

-- [cloud] forward and reverse of an edits: both table run one at a time: the forward step's row of state on cloud
--   $1 = 'jobtasks'  (table)
--   $2 = 'forward'  (the other direction)
-- Forward and reverse of an edits: both table run one at a time: in its read transaction on cloud, this
-- step locks the row of bisync's state the forward step locks there, and holds it until it has committed on
-- desktop (the read's commit comes last). NOWAIT, like every step lock: while forward runs this fails with
-- lock_not_available (exit 3, nothing changed), and two runs never wait on each other. Only a role that can
-- write bisync's state can take this lock.
SELECT true AS locked
  FROM "bisync".state AS fw
 WHERE fw.table_name = $1
   AND fw.direction = $2
   FOR UPDATE NOWAIT;

-- [cloud] the rest of the read only reads
-- The forward step's lock is held: from here on this transaction only reads.
SET TRANSACTION READ ONLY;

-- [cloud] stream the rows out of cloud, with cloud's copy of the base
-- Read every row, and every key cloud's copy of the base knows (a key in the base that cloud no longer has was deleted there),
-- each with cloud's base fingerprint and generation, and the kind of a conflict cloud holds parked for the key
-- (edits: both, SPEC 7: a key parked on either database is left alone). Every matching row, no window.
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT coalesce(f."jt_id"::text, b.key), f."job_id", f."task_id", f."staff_id", f."status", f."planned_hours", f."completed_on",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor,
         fk.__bisync_key IS NOT NULL AS __bisync_present,
         b.fingerprint AS __bisync_base_fp,
         b.generation AS __bisync_base_gen,
         c.kind AS __bisync_parked_kind
    -- Each row's key as the base stores it, built once and used by both joins (in a relation of its own: no column
    -- of cloud's table can share its name); NULL where cloud has no row for a key of its base.
    FROM "public"."jobtasks" AS f
   CROSS JOIN LATERAL (SELECT f."jt_id"::text COLLATE "C" AS __bisync_key) AS fk
    FULL JOIN (SELECT key, fingerprint, generation
                 FROM "bisync".base
                WHERE table_name = (SELECT current_setting('bisync.base_table'))) AS b
      ON b.key = fk.__bisync_key
    LEFT JOIN "bisync".conflicts AS c
      ON c.table_name = (SELECT current_setting('bisync.base_table'))
     AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = coalesce(b.key, fk.__bisync_key)
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("jt_id", "job_id", "task_id", "staff_id", "status", "planned_hours", "completed_on", __bisync_cursor, __bisync_present, __bisync_base_fp, __bisync_base_gen, __bisync_parked_kind) FROM STDIN;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'jobtasks'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'jt_id'  (key column name jt_id)
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
 WHERE s."jt_id" = p.key ->> $3;

-- [desktop] keys desktop's base holds that cloud no longer has: deleted there
--   $1 = 'jobtasks'  (table)
-- After a full read: keys desktop's copy of the base holds as agreed, and keys desktop holds parked, that
-- cloud sent neither as a row nor from its own base. cloud deleted them (or never had them); the merge
-- decides what that means, and refreshes a parked key's versions.
INSERT INTO "bisync_stage" ("jt_id", __bisync_present)
SELECT b.key, false
  FROM (SELECT b.key FROM "bisync".base AS b
         WHERE b.table_name = $1 AND b.fingerprint IS NOT NULL
        UNION
        SELECT (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" FROM "bisync".conflicts AS c
         WHERE c.table_name = $1) AS b
 WHERE NOT EXISTS (SELECT 1 FROM "bisync_stage" AS s WHERE (s."jt_id"::bigint)::text COLLATE "C" = b.key);

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan;
-- and of the staged row numbers, so the merge's range of them is estimated as the rows it holds (the three-way
-- merge joins them to desktop, its base and its conflicts: an estimate of a few rows would choose nested loops).
ANALYZE "bisync_stage" ("jt_id", __bisync_row);

-- [desktop] three-way merge: each row of the decision table (SPEC §7), conflicts, and the new base
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'jobtasks'  (table)
--   $4 = 'update-update'  (kind update-update)
--   $5 = 'insert-insert'  (kind insert-insert)
--   $6 = 'cloud'  (source database)
--   $7 = 'desktop'  (target database)
--   $8 = '10000'  (most versions sent back for the source copy)
-- Three-way merge (edits: both, SPEC 7) of staged rows $1..$2 into desktop, in one statement.
-- Each key is seen in three versions: cloud's (staged), desktop's, and the base: the fingerprint of the version
-- both sides last agreed on (the fresher, by generation, of cloud's copy read with the rows and desktop's copy).
-- No base (fingerprint NULL) means no agreed live row: never synced, or agreed deleted.
-- One CTE per row of the decision table, then the writes, the conflicts (park) and the new base:
--   both_equal               both sides hold the same version           nothing; record the base; a parked conflict clears itself
--   f_changed_t_unchanged    cloud changed, desktop did not          write cloud's version to desktop
--   f_unchanged_t_changed    desktop changed, cloud did not          nothing (desktop -> cloud carries it)
--   conflict_update_update   both changed, differently                 conflict update-update
--   f_created_t_absent       new on cloud, not on desktop, no base        insert it on desktop
--   t_created_f_absent       new on desktop, not on cloud, no base        nothing (desktop -> cloud carries it)
--   conflict_insert_insert   new on both sides, different              conflict insert-insert
--   f_deleted_kept           deleted on cloud (deletes: keep)           nothing: the delete is not carried
--   t_deleted_kept           deleted on desktop (deletes: keep)           nothing: never re-created on desktop
--   both_deleted             deleted on both sides                      nothing; the base records the delete
-- A key with a parked conflict (on either database) is left alone until it is resolved or both sides become equal.
WITH src AS (
  SELECT s.*,
         (s."jt_id"::bigint)::text COLLATE "C" AS __bisync_key,
         CASE WHEN s.__bisync_present THEN md5(convert_to(row(s."jt_id", s."job_id", s."task_id", s."staff_id", s."status", s."planned_hours", s."completed_on")::text, 'UTF8')) END AS __bisync_fp
    FROM "bisync_stage" AS s
   WHERE s.__bisync_row BETWEEN $1 AND $2
),
three AS MATERIALIZED (
  SELECT s.__bisync_row AS row_no,
         s.__bisync_key AS key,
         s.__bisync_present AS f_present,
         t.ctid IS NOT NULL AS t_present,
         s.__bisync_fp AS f_fp,
         CASE WHEN t.ctid IS NOT NULL THEN md5(convert_to(row(t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on")::text, 'UTF8')) END AS t_fp,
         CASE WHEN coalesce(s.__bisync_base_gen, -1) > coalesce(b.generation, -1) THEN s.__bisync_base_fp ELSE b.fingerprint END AS base_fp,
         coalesce(greatest(s.__bisync_base_gen, b.generation), 0) AS base_gen,
         b.generation IS NOT NULL AS t_has_base,
         b.fingerprint AS t_base_fp,
         s.__bisync_base_gen IS NOT NULL AS f_has_base,
         s.__bisync_base_fp AS f_base_fp,
         c.key IS NOT NULL OR s.__bisync_parked_kind IS NOT NULL AS parked,
         coalesce(c.kind, s.__bisync_parked_kind) AS parked_kind
    FROM src AS s
    LEFT JOIN "public"."jobtasks" AS t ON t."jt_id" = s."jt_id"::bigint
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
  -- cloud's version over desktop's, only while desktop still holds the version compared.
  UPDATE "public"."jobtasks" AS t
     SET "job_id" = s."job_id"::bigint,
         "task_id" = s."task_id"::integer,
         "staff_id" = s."staff_id"::integer,
         "status" = s."status"::character varying,
         "planned_hours" = s."planned_hours"::numeric(6,2),
         "completed_on" = s."completed_on"::date
    FROM src AS s
    JOIN (SELECT row_no, t_fp, base_gen, t_has_base, parked FROM f_changed_t_unchanged
          UNION ALL
          SELECT row_no, t_fp, base_gen, t_has_base, parked FROM decided WHERE winner = 'source' AND f_present AND t_present) AS w
      ON w.row_no = s.__bisync_row
   WHERE t."jt_id" = s."jt_id"::bigint
     AND md5(convert_to(row(t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on")::text, 'UTF8')) = w.t_fp
  RETURNING s.__bisync_key AS key, s.__bisync_fp AS fingerprint, w.base_gen, w.t_has_base, w.parked
),
inserted AS (
  INSERT INTO "public"."jobtasks" AS t ("jt_id", "job_id", "task_id", "staff_id", "status", "planned_hours", "completed_on")
  SELECT s."jt_id"::bigint, s."job_id"::bigint, s."task_id"::integer, s."staff_id"::integer, s."status"::character varying, s."planned_hours"::numeric(6,2), s."completed_on"::date
    FROM src AS s
    JOIN (SELECT row_no FROM f_created_t_absent
          UNION ALL
          SELECT row_no FROM decided WHERE winner = 'source' AND f_present AND NOT t_present) AS w
      ON w.row_no = s.__bisync_row
  RETURNING t."jt_id"::text COLLATE "C" AS key
),
parked AS (
  INSERT INTO "bisync".conflicts AS c (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."jt_id"::bigint)::text), d.kind,
         jsonb_build_object($6::text,
                            CASE WHEN d.f_present THEN (SELECT to_jsonb(x) FROM (SELECT s."jt_id"::bigint AS "jt_id", s."job_id"::bigint AS "job_id", s."task_id"::integer AS "task_id", s."staff_id"::integer AS "staff_id", s."status"::character varying AS "status", s."planned_hours"::numeric(6,2) AS "planned_hours", s."completed_on"::date AS "completed_on") AS x) END,
                            $7::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."jt_id", t."job_id", t."task_id", t."staff_id", t."status", t."planned_hours", t."completed_on" FROM "public"."jobtasks" AS t WHERE t."jt_id" = s."jt_id"::bigint) AS x)),
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
  -- are recorded when the fresher copy or desktop's own copy does not say so already, so that
  -- desktop's copy comes to hold the agreed version too; once both copies do, a no-change rerun
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
  -- Keys desktop's copy does not hold yet (and no one else writes while this step holds its lock;
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
  -- What cloud's copy lacks: a key it holds with the agreed fingerprint already (a first sync's other direction, a
  -- copy only desktop's lagged behind) is left as it is there, at its older generation: the same version.
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
       -- The versions recorded above that cloud's copy (as read with the rows) does not hold yet, for that copy once
       -- this transaction has committed (record-source-base); none when there are more than the executor holds in
       -- memory: the next step into cloud records them.
       CASE WHEN (SELECT count(*) FROM sent_back) <= $8::bigint
            THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('key', key, 'fingerprint', fingerprint, 'generation', base_gen + 1)), '[]') FROM sent_back)
       END AS versions;

-- [desktop] only when the merge fails on a row: the merge is retried on halves of the row range in savepoints, and a single failing row is recorded here
--   $1 = 'jobtasks'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'jt_id'  (key column name jt_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."jt_id"),
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
--   $2 = 'jobtasks'  (guarded relation 0 name)
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
--   $1 = 'jobtasks'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind jt_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'jobtasks'  (target table name)
--   $3 = 'jt_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column jt_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."jt_id")::bigint AS max_key FROM "public"."jobtasks" AS t) AS m
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
          FROM "public"."jobtasks" AS t
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
          FROM "public"."jobtasks" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'jobtasks'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- [cloud] end the read snapshot and release the forward step's lock on cloud, after the commit on desktop
COMMIT;

-- [cloud] only when the merge recorded base versions, after the commit on desktop: a short write transaction on cloud
-- A short write transaction on cloud, only after the commit on desktop: its copy of the base.
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

-- [cloud] the same versions into cloud's copy of the base, where it is older (by generation)
--   $1 = 'jobtasks'  (table)
--   $2 = <versions recorded on the target, supplied while running>
-- After the commit on desktop (never before it): the versions this step recorded in desktop's copy of the
-- base (SPEC 7) recorded in cloud's copy too, with the same generation, so that both copies hold what the two
-- sides agreed. Only where cloud's copy is older (a lower generation): a step into cloud that recorded
-- something since keeps it, so no lock is needed. If this never runs (a crash just before it), cloud's copy is
-- stale: the merge uses the fresher copy, and the next step into cloud brings its copy up to date.
INSERT INTO "bisync".base AS b (table_name, key, fingerprint, generation)
SELECT $1, a.key, a.fingerprint, a.generation
  FROM jsonb_to_recordset($2::jsonb) AS a(key text, fingerprint text, generation bigint)
ON CONFLICT (table_name, key) DO UPDATE
   SET fingerprint = EXCLUDED.fingerprint, generation = EXCLUDED.generation, agreed_at = clock_timestamp()
 WHERE b.generation < EXCLUDED.generation;

-- [cloud] commit cloud's copy of the base
COMMIT;

-- ============================================================================
-- Step 19/23: taskchecklist reverse: cloud public.taskchecklist → desktop public.taskchecklist
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: tc_id, task_id, item_no, item_text, is_mandatory
-- step hash: f20869877247b9a6aa48333ab730a644e62424e6b842d65c302f6ebc721eef85
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
--   $1 = 'taskchecklist'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'taskchecklist'  (table)
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
--   $1 = 'taskchecklist'  (table)
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
  "tc_id" text,
  "task_id" text,
  "item_no" text,
  "item_text" text,
  "is_mandatory" text,
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
--   $2 = 'taskchecklist'  (source table)
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."tc_id", f."task_id", f."item_no", f."item_text", f."is_mandatory",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."taskchecklist" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("tc_id", "task_id", "item_no", "item_text", "is_mandatory", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'taskchecklist'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'tc_id'  (key column name tc_id)
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
 WHERE s."tc_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("tc_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'taskchecklist'  (table)
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
         (t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory")
           IS DISTINCT FROM
         (s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean) AS changed,
         (s."tc_id"::integer)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."taskchecklist" AS t ON t."tc_id" = s."tc_id"::integer
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."tc_id"::integer)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."tc_id"::integer)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."taskchecklist" AS t
     SET "task_id" = s."task_id"::integer,
         "item_no" = s."item_no"::integer,
         "item_text" = s."item_text"::text,
         "is_mandatory" = s."is_mandatory"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."tc_id" = s."tc_id"::integer
     AND (t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory")
         IS DISTINCT FROM
         (s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean)
  RETURNING t."tc_id"::text COLLATE "C" AS key, md5(convert_to(row(t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."taskchecklist" AS t ("tc_id", "task_id", "item_no", "item_text", "is_mandatory")
  SELECT s."tc_id"::integer, s."task_id"::integer, s."item_no"::integer, s."item_text"::text, s."is_mandatory"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."tc_id"::text COLLATE "C" AS key, md5(convert_to(row(t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."tc_id"::integer)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."tc_id"::integer AS "tc_id", s."task_id"::integer AS "task_id", s."item_no"::integer AS "item_no", s."item_text"::text AS "item_text", s."is_mandatory"::boolean AS "is_mandatory") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory" FROM "public"."taskchecklist" AS t WHERE t."tc_id" = s."tc_id"::integer) AS x)),
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
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."tc_id", t."task_id", t."item_no", t."item_text", t."is_mandatory")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."taskchecklist" AS t ON t."tc_id" = s."tc_id"::integer
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
--   $1 = 'taskchecklist'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'tc_id'  (key column name tc_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."tc_id"),
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
--   $2 = 'taskchecklist'  (guarded relation 0 name)
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
--   $1 = 'taskchecklist'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind tc_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'taskchecklist'  (target table name)
--   $3 = 'tc_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column tc_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."tc_id")::bigint AS max_key FROM "public"."taskchecklist" AS t) AS m
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
          FROM "public"."taskchecklist" AS t
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
          FROM "public"."taskchecklist" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'taskchecklist'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- ============================================================================
-- Step 20/23: workdiary reverse: cloud public.workdiary → desktop public.workdiary
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: wd_id, staff_id, job_id, work_date, hours, description, billable
-- step hash: e332e09d44afdf5ed5128980d610c7410250103996b05bb88eb067417aef24e9
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
--   $1 = 'workdiary'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'workdiary'  (table)
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
--   $1 = 'workdiary'  (table)
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
  "wd_id" text,
  "staff_id" text,
  "job_id" text,
  "work_date" text,
  "hours" text,
  "description" text,
  "billable" text,
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
--   $2 = 'workdiary'  (source table)
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."wd_id", f."staff_id", f."job_id", f."work_date", f."hours", f."description", f."billable",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."workdiary" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("wd_id", "staff_id", "job_id", "work_date", "hours", "description", "billable", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'workdiary'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'wd_id'  (key column name wd_id)
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
 WHERE s."wd_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("wd_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'workdiary'  (table)
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
         (t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable")
           IS DISTINCT FROM
         (s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean) AS changed,
         (s."wd_id"::bigint)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."workdiary" AS t ON t."wd_id" = s."wd_id"::bigint
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."wd_id"::bigint)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."wd_id"::bigint)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."workdiary" AS t
     SET "staff_id" = s."staff_id"::integer,
         "job_id" = s."job_id"::bigint,
         "work_date" = s."work_date"::date,
         "hours" = s."hours"::numeric(5,2),
         "description" = s."description"::text,
         "billable" = s."billable"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."wd_id" = s."wd_id"::bigint
     AND (t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable")
         IS DISTINCT FROM
         (s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean)
  RETURNING t."wd_id"::text COLLATE "C" AS key, md5(convert_to(row(t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."workdiary" AS t ("wd_id", "staff_id", "job_id", "work_date", "hours", "description", "billable")
  SELECT s."wd_id"::bigint, s."staff_id"::integer, s."job_id"::bigint, s."work_date"::date, s."hours"::numeric(5,2), s."description"::text, s."billable"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."wd_id"::text COLLATE "C" AS key, md5(convert_to(row(t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."wd_id"::bigint)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."wd_id"::bigint AS "wd_id", s."staff_id"::integer AS "staff_id", s."job_id"::bigint AS "job_id", s."work_date"::date AS "work_date", s."hours"::numeric(5,2) AS "hours", s."description"::text AS "description", s."billable"::boolean AS "billable") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable" FROM "public"."workdiary" AS t WHERE t."wd_id" = s."wd_id"::bigint) AS x)),
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
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."wd_id", t."staff_id", t."job_id", t."work_date", t."hours", t."description", t."billable")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."workdiary" AS t ON t."wd_id" = s."wd_id"::bigint
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
--   $1 = 'workdiary'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'wd_id'  (key column name wd_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."wd_id"),
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
--   $2 = 'workdiary'  (guarded relation 0 name)
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
--   $1 = 'workdiary'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind wd_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'workdiary'  (target table name)
--   $3 = 'wd_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column wd_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."wd_id")::bigint AS max_key FROM "public"."workdiary" AS t) AS m
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
          FROM "public"."workdiary" AS t
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
          FROM "public"."workdiary" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'workdiary'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- ============================================================================
-- Step 21/23: reminder reverse: cloud public.reminder → desktop public.mbreminder
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: rem_id, staff_id, client_id, reminder_date→remdate, title, is_done
-- step hash: 19f536a8656d44680a571119e5ae75cbe4549de107f42597c8196550aed2cfd1
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
--   $1 = 'reminder'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'reminder'  (table)
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
--   $1 = 'reminder'  (table)
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
  "rem_id" text,
  "staff_id" text,
  "client_id" text,
  "remdate" text,
  "title" text,
  "is_done" text,
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
--   $2 = 'reminder'  (source table)
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."rem_id", f."staff_id", f."client_id", f."reminder_date", f."title", f."is_done",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."reminder" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("rem_id", "staff_id", "client_id", "remdate", "title", "is_done", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'reminder'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'rem_id'  (key column name rem_id)
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
 WHERE s."rem_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("rem_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'reminder'  (table)
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
         (t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done")
           IS DISTINCT FROM
         (s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."remdate"::date, s."title"::character varying, s."is_done"::boolean) AS changed,
         (s."rem_id"::integer)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."mbreminder" AS t ON t."rem_id" = s."rem_id"::integer
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."rem_id"::integer)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."rem_id"::integer)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."mbreminder" AS t
     SET "staff_id" = s."staff_id"::integer,
         "client_id" = s."client_id"::integer,
         "remdate" = s."remdate"::date,
         "title" = s."title"::character varying,
         "is_done" = s."is_done"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."rem_id" = s."rem_id"::integer
     AND (t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done")
         IS DISTINCT FROM
         (s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."remdate"::date, s."title"::character varying, s."is_done"::boolean)
  RETURNING t."rem_id"::text COLLATE "C" AS key, md5(convert_to(row(t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."mbreminder" AS t ("rem_id", "staff_id", "client_id", "remdate", "title", "is_done")
  SELECT s."rem_id"::integer, s."staff_id"::integer, s."client_id"::integer, s."remdate"::date, s."title"::character varying, s."is_done"::boolean
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."rem_id"::text COLLATE "C" AS key, md5(convert_to(row(t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."rem_id"::integer)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."rem_id"::integer AS "rem_id", s."staff_id"::integer AS "staff_id", s."client_id"::integer AS "client_id", s."remdate"::date AS "remdate", s."title"::character varying AS "title", s."is_done"::boolean AS "is_done") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done" FROM "public"."mbreminder" AS t WHERE t."rem_id" = s."rem_id"::integer) AS x)),
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
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."rem_id", t."staff_id", t."client_id", t."remdate", t."title", t."is_done")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."mbreminder" AS t ON t."rem_id" = s."rem_id"::integer
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
--   $1 = 'reminder'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'rem_id'  (key column name rem_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."rem_id"),
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
--   $2 = 'mbreminder'  (guarded relation 0 name)
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
--   $1 = 'reminder'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind rem_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'mbreminder'  (target table name)
--   $3 = 'rem_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column rem_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."rem_id")::bigint AS max_key FROM "public"."mbreminder" AS t) AS m
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
          FROM "public"."mbreminder" AS t
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
          FROM "public"."mbreminder" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'reminder'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- ============================================================================
-- Step 22/23: remdetail reverse: cloud public.remdetail → desktop public.remdetail
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: remd_id, rem_id, channel, remind_before_days, note
-- step hash: c270993814f25ae99e85d4d8546dfebf4976f4a9a84b489704b3fb611fb2d1c1
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
--   $1 = 'remdetail'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'remdetail'  (table)
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
--   $1 = 'remdetail'  (table)
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
  "remd_id" text,
  "rem_id" text,
  "channel" text,
  "remind_before_days" text,
  "note" text,
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
--   $2 = 'remdetail'  (source table)
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."remd_id", f."rem_id", f."channel", f."remind_before_days", f."note",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."remdetail" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("remd_id", "rem_id", "channel", "remind_before_days", "note", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'remdetail'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'remd_id'  (key column name remd_id)
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
 WHERE s."remd_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("remd_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'remdetail'  (table)
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
         (t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note")
           IS DISTINCT FROM
         (s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text) AS changed,
         (s."remd_id"::integer)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."remdetail" AS t ON t."remd_id" = s."remd_id"::integer
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."remd_id"::integer)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."remd_id"::integer)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."remdetail" AS t
     SET "rem_id" = s."rem_id"::integer,
         "channel" = s."channel"::character varying,
         "remind_before_days" = s."remind_before_days"::smallint,
         "note" = s."note"::text
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."remd_id" = s."remd_id"::integer
     AND (t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note")
         IS DISTINCT FROM
         (s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text)
  RETURNING t."remd_id"::text COLLATE "C" AS key, md5(convert_to(row(t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."remdetail" AS t ("remd_id", "rem_id", "channel", "remind_before_days", "note")
  SELECT s."remd_id"::integer, s."rem_id"::integer, s."channel"::character varying, s."remind_before_days"::smallint, s."note"::text
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."remd_id"::text COLLATE "C" AS key, md5(convert_to(row(t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."remd_id"::integer)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."remd_id"::integer AS "remd_id", s."rem_id"::integer AS "rem_id", s."channel"::character varying AS "channel", s."remind_before_days"::smallint AS "remind_before_days", s."note"::text AS "note") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note" FROM "public"."remdetail" AS t WHERE t."remd_id" = s."remd_id"::integer) AS x)),
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
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."remd_id", t."rem_id", t."channel", t."remind_before_days", t."note")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."remdetail" AS t ON t."remd_id" = s."remd_id"::integer
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
--   $1 = 'remdetail'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'remd_id'  (key column name remd_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."remd_id"),
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
--   $2 = 'remdetail'  (guarded relation 0 name)
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
--   $1 = 'remdetail'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind remd_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'remdetail'  (target table name)
--   $3 = 'remd_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column remd_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."remd_id")::bigint AS max_key FROM "public"."remdetail" AS t) AS m
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
          FROM "public"."remdetail" AS t
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
          FROM "public"."remdetail" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'remdetail'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;

-- ============================================================================
-- Step 23/23: learequest reverse: cloud public.learequest → desktop public.learequest
-- mode: full — no watermark yet (first run, or nothing read so far): every row is read
-- write: upsert; deletes: keep; columns: lea_id, staff_id, leave_type, from_date, to_date, reason, status, approved_by
-- step hash: 0b7b9e6f8d0706a7166dde0ddf8ad523530fd8f84588f794543955373b6e5493
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
--   $1 = 'learequest'  (table)
--   $2 = 'reverse'  (direction)
-- This step's row of state, committed before the step runs so that the step can lock it (its
-- watermark stays NULL until the step has read something).
INSERT INTO "bisync".state (table_name, direction)
VALUES ($1, $2)
ON CONFLICT (table_name, direction) DO NOTHING;

-- [desktop] commit the bootstrap
COMMIT;

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
--   $1 = 'learequest'  (table)
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
--   $1 = 'learequest'  (table)
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
  "lea_id" text,
  "staff_id" text,
  "leave_type" text,
  "from_date" text,
  "to_date" text,
  "reason" text,
  "status" text,
  "approved_by" text,
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
--   $2 = 'learequest'  (source table)
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
--   $9 = 'M'  (origin value read)
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
       pg_catalog.set_config('bisync.origin', $9, true);

-- [cloud] stream the rows out of cloud
-- Read every row owned by this direction's source. Every matching row, no window.
-- Cursor values compare as instants: a timestamp or date cursor is cloud's local time (the TimeZone set above).
-- Each setting (bisync.*, set above) is read in a sub-select: once per statement, not parsed again for every row.
COPY (
  SELECT f."lea_id", f."staff_id", f."leave_type", f."from_date", f."to_date", f."reason", f."status", f."approved_by",
         greatest(f."updated_at", f."created_at")::timestamptz AS __bisync_cursor
    FROM "public"."learequest" AS f
   WHERE f."source"::text = (SELECT current_setting('bisync.origin'))
) TO STDOUT;

-- [desktop] stream them into staging on desktop
COPY "bisync_stage" ("lea_id", "staff_id", "leave_type", "from_date", "to_date", "reason", "status", "approved_by", __bisync_cursor) FROM STDIN;

-- [cloud] end the read snapshot
COMMIT;

-- [desktop] retry rows rejected by earlier runs
--   $1 = 'learequest'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'lea_id'  (key column name lea_id)
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
 WHERE s."lea_id" = p.key ->> $3;

-- [desktop] how many rows are staged
SELECT coalesce(max(__bisync_row), 0)::bigint AS last_row FROM "bisync_stage";

-- [desktop] planner statistics for the staged rows
-- Row count and key statistics for the staged rows, so the merge joins them to desktop with a sensible plan.
ANALYZE "bisync_stage" ("lea_id");

-- [desktop] insert new rows, update owned rows that differ
--   $1 = <first staged row, supplied while running>
--   $2 = <last staged row, supplied while running>
--   $3 = 'learequest'  (table)
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
         (t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by")
           IS DISTINCT FROM
         (s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer) AS changed,
         (s."lea_id"::integer)::text COLLATE "C" AS key,
         b.fingerprint AS base_fp,
         coalesce(b.generation, 0) AS base_gen,
         b.fingerprint IS NOT NULL AS written_by_bisync,
         c.key IS NOT NULL AS parked
    FROM src AS s
    LEFT JOIN "public"."learequest" AS t ON t."lea_id" = s."lea_id"::integer
    LEFT JOIN "bisync".base AS b ON b.table_name = $3 AND b.key = (s."lea_id"::integer)::text COLLATE "C"
    LEFT JOIN "bisync".conflicts AS c ON c.table_name = $3 AND (CASE WHEN jsonb_array_length(c.key) = 1 THEN c.key ->> 0 ELSE c.key::text END) COLLATE "C" = (s."lea_id"::integer)::text COLLATE "C"
),
held AS (
  -- Left alone: a parked key (until both sides hold the same row), and a differing row bisync did not write.
  SELECT c.__bisync_row, c.key, c.base_fp
    FROM classified AS c
   WHERE (c.parked AND NOT (c.present AND NOT c.changed))
      OR (c.present AND c.changed AND NOT c.written_by_bisync)
),
updated AS (
  UPDATE "public"."learequest" AS t
     SET "staff_id" = s."staff_id"::integer,
         "leave_type" = s."leave_type"::character varying,
         "from_date" = s."from_date"::date,
         "to_date" = s."to_date"::date,
         "reason" = s."reason"::text,
         "status" = s."status"::character varying,
         "approved_by" = s."approved_by"::integer
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND c.present AND c.owned AND c.changed
                        AND c.written_by_bisync AND NOT c.parked
   WHERE t."lea_id" = s."lea_id"::integer
     AND (t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by")
         IS DISTINCT FROM
         (s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer)
  RETURNING t."lea_id"::text COLLATE "C" AS key, md5(convert_to(row(t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by")::text, 'UTF8')) AS fingerprint
),
inserted AS (
  INSERT INTO "public"."learequest" AS t ("lea_id", "staff_id", "leave_type", "from_date", "to_date", "reason", "status", "approved_by")
  SELECT s."lea_id"::integer, s."staff_id"::integer, s."leave_type"::character varying, s."from_date"::date, s."to_date"::date, s."reason"::text, s."status"::character varying, s."approved_by"::integer
    FROM src AS s
    JOIN classified AS c ON c.__bisync_row = s.__bisync_row AND NOT c.present AND NOT c.parked
  RETURNING t."lea_id"::text COLLATE "C" AS key, md5(convert_to(row(t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by")::text, 'UTF8')) AS fingerprint
),
parked AS (
  INSERT INTO "bisync".conflicts AS p (table_name, key, kind, versions, base_fingerprint)
  SELECT $3, jsonb_build_array((s."lea_id"::integer)::text), $4,
         jsonb_build_object($5::text,
                            (SELECT to_jsonb(x) FROM (SELECT s."lea_id"::integer AS "lea_id", s."staff_id"::integer AS "staff_id", s."leave_type"::character varying AS "leave_type", s."from_date"::date AS "from_date", s."to_date"::date AS "to_date", s."reason"::text AS "reason", s."status"::character varying AS "status", s."approved_by"::integer AS "approved_by") AS x),
                            $6::text,
                            (SELECT to_jsonb(x) FROM (SELECT t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by" FROM "public"."learequest" AS t WHERE t."lea_id" = s."lea_id"::integer) AS x)),
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
    FROM (SELECT c.key, c.base_fp, md5(convert_to(row(t."lea_id", t."staff_id", t."leave_type", t."from_date", t."to_date", t."reason", t."status", t."approved_by")::text, 'UTF8')) AS fingerprint
            FROM classified AS c
            JOIN src AS s ON s.__bisync_row = c.__bisync_row
            JOIN "public"."learequest" AS t ON t."lea_id" = s."lea_id"::integer
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
--   $1 = 'learequest'  (table)
--   $2 = 'reverse'  (direction)
--   $3 = 'lea_id'  (key column name lea_id)
--   $4 = <SQLSTATE, supplied while running>
--   $5 = <error message, supplied while running>
--   $6 = <staged row, supplied while running>
-- A staged row desktop refused (constraint, bad value): kept in rejects with the reason and retried next run.
INSERT INTO "bisync".rejects AS r (table_name, direction, key, row_data, reason, error_code, error, attempts, first_seen)
SELECT $1, $2,
       jsonb_build_object($3::text, s."lea_id"),
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
--   $2 = 'learequest'  (guarded relation 0 name)
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
--   $1 = 'learequest'  (table)
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

-- [desktop] only when the merge inserted rows: advance the sequence behind lea_id, if any, to the largest key
--   $1 = 'public'  (target schema)
--   $2 = 'learequest'  (target table name)
--   $3 = 'lea_id'  (key column)
-- Keys (SPEC 7): this step inserted explicit values into desktop's key column lea_id. If that column takes its
-- default from a sequence (serial or identity), move the sequence to at least the largest key, so desktop's
-- application does not hand out a key it just received. Never moves a sequence backwards.
SELECT setval(q.seq, m.max_key) AS advanced_to
  FROM (SELECT pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), $3) AS seq) AS q
 CROSS JOIN (SELECT max(t."lea_id")::bigint AS max_key FROM "public"."learequest" AS t) AS m
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
          FROM "public"."learequest" AS t
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
          FROM "public"."learequest" AS t
       ) AS g
 ORDER BY g.relation;

-- [desktop] guard: end the second connection's read
COMMIT;

-- [desktop] one row in runs for this step
--   $1 = <run id, supplied while running>
--   $2 = 'learequest'  (table)
--   $3 = 'reverse'  (direction)
--   $4 = <attempt, supplied while running>
--   $5 = 'full'  (mode)
--   $6 = 'no watermark yet (first run, or nothing read so far): every row is read'  (reason)
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

-- [desktop] commit data, watermark and run together
COMMIT;
